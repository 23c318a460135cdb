//! The one place that maps Meta's error responses (HTTP status, `code`,
//! `error_subcode`) to what the engine does about them.
//!
//! Codes from Meta's Graph API, Messenger Platform and WhatsApp Cloud API
//! error references: throttling (4, 17, 32, 613, 80001, 80002, 80006, 80007,
//! 130429, 131056) and 5xx are retried with backoff, except a gateway's 502
//! or 504 without Meta's error body (an unknown outcome: Meta may have sent
//! it); an expired or invalid token (190) marks the integration expired;
//! window errors (10 with subcode 2018278, 2534022, 131047) are refused,
//! never retried.

use crate::config::ChannelKind;
use crate::telemetry::Label;

/// What kind of failure a platform call met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendErrorKind {
    /// Rate limited by the platform: retry later.
    Throttled,
    /// The platform failed (5xx, transient flag): retry.
    Server,
    /// The request provably never left (connection refused, DNS, TLS):
    /// retry at once.
    Transport,
    /// The request may have reached the platform, but no status came back
    /// (a timeout after the bytes left, a connection lost before the
    /// answer, a gateway's 502/504): the part is unconfirmed, never retried
    /// at once.
    Ambiguous,
    /// The access token expired or was revoked: the integration needs a new one.
    TokenExpired,
    /// Outside the messaging window: not sent, never retried.
    WindowClosed,
    /// Any other refusal (bad recipient, permission, malformed call).
    Rejected,
    /// The channel has no outbound client in this build.
    Unsupported,
    /// Not attempted: this instance no longer owns the conversation.
    Fenced,
}

/// The `outcome` metric label.
impl Label for SendErrorKind {
    fn label(self) -> &'static str {
        match self {
            Self::Throttled => "throttled",
            Self::Server => "server_error",
            Self::Transport => "transport_error",
            Self::Ambiguous => "ambiguous",
            Self::TokenExpired => "token_expired",
            Self::WindowClosed => "window_closed",
            Self::Rejected => "rejected",
            Self::Unsupported => "unsupported",
            Self::Fenced => "fenced",
        }
    }
}

/// A failed platform call.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{} (HTTP {status}, code {code}): {message}", kind.label())]
pub struct SendError {
    pub kind: SendErrorKind,
    pub status: u16,
    pub code: i64,
    pub subcode: Option<i64>,
    pub message: String,
    /// The platform's `Retry-After`, when it gave one.
    pub retry_after: Option<std::time::Duration>,
    /// Not attempted: the account rests after the platform throttled it
    /// (nothing failed; its part waits the rest out).
    pub resting: bool,
}

impl SendError {
    /// Whether the same call may succeed if tried again.
    pub fn retryable(&self) -> bool {
        matches!(
            self.kind,
            SendErrorKind::Throttled | SendErrorKind::Server | SendErrorKind::Transport
        )
    }

    pub fn transport(message: impl Into<String>) -> Self {
        Self::without_answer(SendErrorKind::Transport, message)
    }

    /// The request may have reached the platform; no answer says whether.
    pub fn ambiguous(message: impl Into<String>) -> Self {
        Self::without_answer(SendErrorKind::Ambiguous, message)
    }

    fn without_answer(kind: SendErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            status: 0,
            code: 0,
            subcode: None,
            message: message.into(),
            retry_after: None,
            resting: false,
        }
    }

    /// Not attempted: the platform throttles the account, which rests for
    /// `left` more.
    pub(crate) fn resting(left: std::time::Duration) -> Self {
        let mut e = Self::without_answer(
            SendErrorKind::Throttled,
            format!(
                "not attempted: the platform throttles this account for {} s more",
                left.as_secs().max(1)
            ),
        );
        e.retry_after = Some(left);
        e.resting = true;
        e
    }

    /// Not attempted: the conversation's partition moved to another
    /// instance.
    pub fn fenced() -> Self {
        Self::without_answer(SendErrorKind::Fenced, crate::fence::Fenced.to_string())
    }

    /// Refused before any call (the part cannot be sent on this channel).
    pub fn refused(message: impl Into<String>) -> Self {
        Self {
            kind: SendErrorKind::Rejected,
            status: 0,
            code: 0,
            subcode: None,
            message: message.into(),
            retry_after: None,
            resting: false,
        }
    }

    pub fn unsupported(channel: ChannelKind) -> Self {
        Self {
            kind: SendErrorKind::Unsupported,
            status: 0,
            code: 0,
            subcode: None,
            message: format!("no outbound client for channel {}", channel.as_str()),
            retry_after: None,
            resting: false,
        }
    }

    /// Maps an HTTP error response from the Graph API.
    pub fn from_response(status: u16, body: &[u8]) -> Self {
        let parsed = MetaErrorDetail::read(body);
        // A gateway's or proxy's timeout (502, 504, 408, 499) without Meta's
        // error body: it gave up waiting for Meta, which may well have sent
        // it. (Other 5xx are retried: an unknown outcome waits for a
        // confirmation that a part without one, a comment reply, never
        // gets.)
        let gateway = parsed.is_none() && matches!(status, 408 | 499 | 502 | 504);
        let (code, subcode, message, transient) = match parsed {
            Some(e) => (
                e.code.unwrap_or(0),
                e.error_subcode,
                e.message.unwrap_or_default(),
                e.is_transient.unwrap_or(false),
            ),
            None => (
                0,
                None,
                format!("unparsed error body ({} bytes)", body.len()),
                false,
            ),
        };
        let kind = if gateway {
            SendErrorKind::Ambiguous
        } else {
            classify(status, code, subcode, transient)
        };
        Self {
            kind,
            status,
            code,
            subcode,
            message: truncate(&message, 300),
            retry_after: None,
            resting: false,
        }
    }
}

fn classify(status: u16, code: i64, subcode: Option<i64>, transient: bool) -> SendErrorKind {
    match (code, subcode) {
        // Application, user, Page and API throttling; the business-use-case
        // limits of Pages (80001), Instagram (80002), Messenger (80006) and
        // WhatsApp Business Accounts (80007); WhatsApp throughput and pair
        // limits, and its spam rate limit (131048).
        (4 | 17 | 32 | 613 | 80001 | 80002 | 80006 | 80007 | 130429 | 131048 | 131056, _) => {
            SendErrorKind::Throttled
        }
        (190, _) => SendErrorKind::TokenExpired,
        (10, Some(2018278)) | (2534022, _) | (_, Some(2534022)) | (131047, _) => {
            SendErrorKind::WindowClosed
        }
        _ if status == 429 => SendErrorKind::Throttled,
        // Meta's temporary failures, whatever the status: unknown and
        // transient errors (1, 2), a temporary send failure (1200), WhatsApp's
        // generic and temporarily unavailable errors (131000, 133004).
        _ if status >= 500 || transient || matches!(code, 1 | 2 | 1200 | 131000 | 133004) => {
            SendErrorKind::Server
        }
        _ => SendErrorKind::Rejected,
    }
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// Meta's error object (`{"error": {"message", "type", "code",
/// "error_subcode", "is_transient", "fbtrace_id"}}`).
struct MetaErrorDetail {
    message: Option<String>,
    code: Option<i64>,
    error_subcode: Option<i64>,
    is_transient: Option<bool>,
}

impl MetaErrorDetail {
    /// Meta's error in `body`, read field by field (a code sent as a string
    /// is still a code); `None` when the body is not Meta's: a proxy's own
    /// `{"error": ...}` carries none of Meta's `code`, `type` or
    /// `fbtrace_id`.
    fn read(body: &[u8]) -> Option<Self> {
        let v: serde_json::Value = serde_json::from_slice(body).ok()?;
        let e = v.get("error")?.as_object()?;
        let number = |key: &str| {
            e.get(key).and_then(|x| {
                x.as_i64()
                    .or_else(|| x.as_str().and_then(|s| s.trim().parse().ok()))
            })
        };
        let code = number("code");
        let meta = code.is_some() || e.contains_key("type") || e.contains_key("fbtrace_id");
        if !meta {
            return None;
        }
        Some(Self {
            message: e
                .get("message")
                .and_then(|m| m.as_str())
                .map(str::to_string),
            code,
            error_subcode: number("error_subcode"),
            is_transient: e.get("is_transient").and_then(|t| t.as_bool()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(status: u16, body: &str) -> SendError {
        SendError::from_response(status, body.as_bytes())
    }

    #[test]
    fn maps_meta_codes() {
        let e = err(
            400,
            r#"{"error":{"message":"(#613) Calls to this api have exceeded the rate limit.","type":"OAuthException","code":613,"fbtrace_id":"A"}}"#,
        );
        assert_eq!(e.kind, SendErrorKind::Throttled);
        assert!(e.retryable());
        let e = err(
            400,
            r#"{"error":{"message":"Error validating access token: Session has expired","type":"OAuthException","code":190,"error_subcode":463}}"#,
        );
        assert_eq!(e.kind, SendErrorKind::TokenExpired);
        assert!(!e.retryable());
        let e = err(
            400,
            r#"{"error":{"message":"(#10) This message is sent outside of allowed window.","type":"OAuthException","code":10,"error_subcode":2018278}}"#,
        );
        assert_eq!(e.kind, SendErrorKind::WindowClosed);
        let e = err(
            400,
            r#"{"error":{"message":"Re-engagement message","code":131047}}"#,
        );
        assert_eq!(e.kind, SendErrorKind::WindowClosed);
        let e = err(
            400,
            r#"{"error":{"message":"(#100) No matching user found","type":"OAuthException","code":100,"error_subcode":2018001}}"#,
        );
        assert_eq!(e.kind, SendErrorKind::Rejected);
        assert!(!e.retryable());
        assert_eq!(err(503, "<html>").kind, SendErrorKind::Server);
        for code in [80001, 80002, 80006, 80007] {
            let body = format!(r#"{{"error":{{"message":"(#{code}) rate limit","code":{code}}}}}"#);
            assert_eq!(err(400, &body).kind, SendErrorKind::Throttled, "{code}");
        }
        assert_eq!(
            err(504, "<html>Gateway Time-out</html>").kind,
            SendErrorKind::Ambiguous,
            "a gateway timed out waiting for Meta, which may have sent it"
        );
        assert_eq!(err(502, "").kind, SendErrorKind::Ambiguous);
        assert_eq!(err(429, "{}").kind, SendErrorKind::Throttled);
        let e = err(
            500,
            r#"{"error":{"message":"An unexpected error has occurred.","code":2,"is_transient":true}}"#,
        );
        assert!(e.retryable());
    }

    #[test]
    fn a_proxy_s_answer_is_not_meta_s_and_meta_s_temporary_codes_are_retried() {
        // A proxy timing out, with or without a JSON body of its own: the
        // request may have reached Meta.
        for (status, body) in [
            (408, ""),
            (499, ""),
            (504, r#"{"error":{"message":"upstream timeout"}}"#),
            (502, r#"{"error":{}}"#),
        ] {
            assert_eq!(
                err(status, body).kind,
                SendErrorKind::Ambiguous,
                "{status} {body}"
            );
        }
        // A code sent as a string is still Meta's code.
        let e = err(
            400,
            r#"{"error":{"message":"(#613) Calls to this api have exceeded the rate limit.","type":"OAuthException","code":"613"}}"#,
        );
        assert_eq!(e.kind, SendErrorKind::Throttled);
        for code in [1200, 131000, 133004] {
            let body =
                format!(r#"{{"error":{{"message":"temporary","code":{code},"fbtrace_id":"A"}}}}"#);
            assert_eq!(err(400, &body).kind, SendErrorKind::Server, "{code}");
        }
        let spam = r#"{"error":{"message":"(#131048) Spam rate limit hit","type":"OAuthException","code":131048}}"#;
        assert_eq!(err(400, spam).kind, SendErrorKind::Throttled);
    }

    #[test]
    fn display_is_one_readable_line() {
        let e = err(
            400,
            r#"{"error":{"message":"(#100) No matching user found","code":100}}"#,
        );
        assert_eq!(
            e.to_string(),
            "rejected (HTTP 400, code 100): (#100) No matching user found"
        );
    }
}
