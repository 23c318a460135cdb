//! Faults the simulator injects on request, each with Meta's own error
//! shape: a share of 5xx, throttling (613 on Messenger / Instagram, 130429
//! on WhatsApp), an expired token (190), window errors (10 / 2018278 on
//! Messenger / Instagram, 131047 on WhatsApp) and added latency; and the
//! ways a real network loses an answer to a call Meta accepted: a 200 that
//! comes too late, one cut in the middle of its body, one that is HTML;
//! and a call lost on its way, answered 504 by a gateway.
//!
//! Shares are probabilities in `0.0..=1.0` drawn per call; `next` faults
//! are deterministic: each of the next calls that can fail gets the next
//! one in the list (tests use these).

use std::collections::VecDeque;

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::validate::{CallKind, Refusal};

/// One kind of injected failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    ServerError,
    Throttled,
    TokenExpired,
    WindowClosed,
    /// The call is accepted (the customer gets the message, its echo and
    /// statuses follow) but the 200 comes after `late_ms`.
    LateAnswer,
    /// Accepted; the 200's status line and headers arrive, then the
    /// connection drops in the middle of the body.
    CutAnswer,
    /// Accepted; the 200's body is an HTML page, not Meta's JSON.
    HtmlAnswer,
    /// Never reaches Meta: a gateway in between answers 504 with its own
    /// HTML page (the engine cannot tell this from a lost answer).
    GatewayTimeout,
}

impl Fault {
    /// Whether the call is accepted and only its answer is damaged.
    pub fn accepts(self) -> bool {
        matches!(self, Self::LateAnswer | Self::CutAnswer | Self::HtmlAnswer)
    }
}

impl Fault {
    /// Meta's answer for this fault on a call of `kind` (the damaged
    /// answers refuse nothing: see [`Fault::accepts`]).
    pub fn refusal(self, kind: CallKind) -> Refusal {
        let whatsapp = matches!(kind, CallKind::WhatsappMessage | CallKind::WhatsappRead);
        match self {
            Self::ServerError => Refusal {
                status: 500,
                code: 2,
                subcode: None,
                message: "An unexpected error has occurred. Please retry your request later."
                    .into(),
                transient: true,
            },
            Self::Throttled if whatsapp => Refusal {
                status: 429,
                code: 130429,
                subcode: None,
                message: "(#130429) Rate limit hit".into(),
                transient: false,
            },
            Self::Throttled => Refusal {
                status: 400,
                code: 613,
                subcode: None,
                message: "(#613) Calls to this api have exceeded the rate limit.".into(),
                transient: false,
            },
            Self::TokenExpired => Refusal {
                status: 401,
                code: 190,
                subcode: Some(463),
                message: "Error validating access token: Session has expired.".into(),
                transient: false,
            },
            Self::WindowClosed if whatsapp => Refusal {
                status: 400,
                code: 131047,
                subcode: None,
                message: "(#131047) Re-engagement message: more than 24 hours have passed since the recipient last replied".into(),
                transient: false,
            },
            Self::GatewayTimeout => Refusal {
                status: 504,
                code: 0,
                subcode: None,
                message: "Gateway Timeout".into(),
                transient: true,
            },
            Self::WindowClosed | Self::LateAnswer | Self::CutAnswer | Self::HtmlAnswer => {
                Refusal {
                    status: 400,
                    code: 10,
                    subcode: Some(2018278),
                    message: "(#10) This message is sent outside of allowed window.".into(),
                    transient: false,
                }
            }
        }
    }
}

/// The fault settings, replaced as a whole by `POST /_sim/faults`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Share of calls answered with a transient 500.
    pub server_error_rate: f64,
    /// Share of calls throttled (613 / 130429).
    pub throttle_rate: f64,
    /// Share of calls refused with an expired token (190).
    pub token_expired_rate: f64,
    /// Share of replies refused as outside the messaging window.
    pub window_rate: f64,
    /// Added to every answer, in milliseconds.
    pub latency_ms: u64,
    /// Share of message calls accepted whose 200 comes `late_ms` late.
    pub late_rate: f64,
    /// Share of message calls accepted whose 200 is cut mid-body.
    pub cut_rate: f64,
    /// Share of message calls accepted whose 200 is an HTML page.
    pub html_rate: f64,
    /// How late a late answer is, in milliseconds (default 3000).
    pub late_ms: u64,
    /// Deterministic faults for the next calls, in order.
    pub next: VecDeque<Fault>,
}

/// Why a fault setting was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{field} must be between 0 and 1, got {value}")]
pub struct FaultsError {
    pub field: &'static str,
    pub value: f64,
}

impl Faults {
    pub fn validate(&self) -> Result<(), FaultsError> {
        for (field, value) in [
            ("server_error_rate", self.server_error_rate),
            ("throttle_rate", self.throttle_rate),
            ("token_expired_rate", self.token_expired_rate),
            ("window_rate", self.window_rate),
            ("late_rate", self.late_rate),
            ("cut_rate", self.cut_rate),
            ("html_rate", self.html_rate),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(FaultsError { field, value });
            }
        }
        Ok(())
    }

    /// Decides the fate of one valid call: `None` lets it through.
    pub fn draw(&mut self, kind: CallKind) -> Option<Fault> {
        if let Some(f) = self.next.pop_front() {
            return Some(f);
        }
        let mut rng = rand::rng();
        let mut hit = |rate: f64| rate > 0.0 && rng.random_bool(rate.min(1.0));
        if hit(self.server_error_rate) {
            Some(Fault::ServerError)
        } else if hit(self.throttle_rate) {
            Some(Fault::Throttled)
        } else if hit(self.token_expired_rate) {
            Some(Fault::TokenExpired)
        } else if kind.is_reply() && hit(self.window_rate) {
            Some(Fault::WindowClosed)
        } else if kind.is_reply() && hit(self.late_rate) {
            Some(Fault::LateAnswer)
        } else if kind.is_reply() && hit(self.cut_rate) {
            Some(Fault::CutAnswer)
        } else if kind.is_reply() && hit(self.html_rate) {
            Some(Fault::HtmlAnswer)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_faults_come_first_then_shares_apply() {
        let mut f = Faults {
            next: [Fault::Throttled, Fault::TokenExpired].into(),
            ..Faults::default()
        };
        assert_eq!(f.draw(CallKind::Message), Some(Fault::Throttled));
        assert_eq!(f.draw(CallKind::Message), Some(Fault::TokenExpired));
        assert_eq!(f.draw(CallKind::Message), None);
        f.server_error_rate = 1.0;
        assert_eq!(f.draw(CallKind::Message), Some(Fault::ServerError));
    }

    #[test]
    fn codes_follow_the_channel() {
        assert_eq!(Fault::Throttled.refusal(CallKind::Message).code, 613);
        assert_eq!(
            Fault::Throttled.refusal(CallKind::WhatsappMessage).code,
            130429
        );
        let w = Fault::WindowClosed.refusal(CallKind::Message);
        assert_eq!((w.code, w.subcode), (10, Some(2018278)));
        assert_eq!(
            Fault::WindowClosed.refusal(CallKind::WhatsappMessage).code,
            131047
        );
    }

    #[test]
    fn shares_outside_zero_one_are_refused() {
        let f = Faults {
            throttle_rate: 1.5,
            ..Faults::default()
        };
        assert_eq!(
            f.validate(),
            Err(FaultsError {
                field: "throttle_rate",
                value: 1.5
            })
        );
    }
}
