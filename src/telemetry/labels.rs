//! Metric label values as enums: every value a label can take is written
//! once, next to the variant it names.

/// A value of a metric label (`outcome`, `kind`): a short snake_case word
/// from a fixed set.
pub trait Label: Copy {
    fn label(self) -> &'static str;
}

/// Outcome of one webhook request, the `outcome` label of
/// `switchboard_webhook_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookOutcome {
    Accepted,
    Verified,
    VerifyRejected,
    BadSignature,
    Malformed,
    UnknownApp,
    UnknownAccount,
    TooLarge,
    Unavailable,
    /// The engine is behind: 503 with `Retry-After`.
    Overloaded,
    /// A push whose OIDC token or subscription does not check out (401).
    Unauthorized,
    /// Accepted and dropped: a push for another mailbox.
    Ignored,
}

impl Label for WebhookOutcome {
    fn label(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Verified => "verified",
            Self::VerifyRejected => "verify_rejected",
            Self::BadSignature => "bad_signature",
            Self::Malformed => "malformed",
            Self::UnknownApp => "unknown_app",
            Self::UnknownAccount => "unknown_account",
            Self::TooLarge => "too_large",
            Self::Unavailable => "unavailable",
            Self::Overloaded => "overloaded",
            Self::Unauthorized => "unauthorized",
            Self::Ignored => "ignored",
        }
    }
}

/// What became of a reply part, the `outcome` label of
/// `switchboard_replies_total` (a platform's refusal is labelled by its
/// `SendErrorKind` instead).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyOutcome {
    Sent,
    /// Sent, but the platform's answer was lost: waits for its echo.
    Unconfirmed,
    /// The platform kept failing: the part waits in the outbox.
    RetryLater,
    /// A human has the conversation: nothing is sent.
    HumanMode,
    /// The messaging window is closed and no tag allows the send.
    WindowClosed,
}

impl Label for ReplyOutcome {
    fn label(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Unconfirmed => "unconfirmed",
            Self::RetryLater => "retry_later",
            Self::HumanMode => "human_mode",
            Self::WindowClosed => "window_closed",
        }
    }
}

/// Outcome of one platform call, the `outcome` label of
/// `switchboard_send_requests_total` (a failure is labelled by its
/// `SendErrorKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendOutcome {
    Ok,
}

impl Label for SendOutcome {
    fn label(self) -> &'static str {
        match self {
            Self::Ok => "ok",
        }
    }
}

/// What became of a send whose outcome was not known (the `outcome` label
/// of `switchboard_ambiguous_sends_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmbiguousOutcome {
    /// The platform's answer was lost (or a restart found the part): the
    /// part waits for its echo or status.
    Unconfirmed,
    /// An echo or a status named the part: it is not sent again.
    Confirmed,
    /// Nothing confirmed it within `outbound.confirm_wait`: sent again.
    Resent,
}

impl Label for AmbiguousOutcome {
    fn label(self) -> &'static str {
        match self {
            Self::Unconfirmed => "unconfirmed",
            Self::Confirmed => "confirmed",
            Self::Resent => "resent",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_snake(s: &str) -> bool {
        !s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase() || c == '_')
    }

    #[test]
    fn label_values_are_snake_case() {
        let all = [
            WebhookOutcome::Accepted.label(),
            WebhookOutcome::VerifyRejected.label(),
            WebhookOutcome::Overloaded.label(),
            ReplyOutcome::RetryLater.label(),
            ReplyOutcome::WindowClosed.label(),
            SendOutcome::Ok.label(),
            AmbiguousOutcome::Resent.label(),
        ];
        assert!(all.iter().all(|s| is_snake(s)), "{all:?}");
    }
}

/// How one request to a model server ended, the `outcome` label of
/// `switchboard_assistant_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssistantOutcome {
    Ok,
    Unauthorized,
    QuotaExceeded,
    RateLimited,
    ServerError,
    ContextLengthExceeded,
    Refused,
    Stalled,
    Timeout,
    Unreachable,
    BadAnswer,
}

impl Label for AssistantOutcome {
    fn label(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Unauthorized => "unauthorized",
            Self::QuotaExceeded => "quota_exceeded",
            Self::RateLimited => "rate_limited",
            Self::ServerError => "server_error",
            Self::ContextLengthExceeded => "context_length_exceeded",
            Self::Refused => "refused",
            Self::Stalled => "stalled",
            Self::Timeout => "timeout",
            Self::Unreachable => "unreachable",
            Self::BadAnswer => "bad_answer",
        }
    }
}
