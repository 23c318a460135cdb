//! What goes wrong with a Gmail call, and how an HTTP answer or a
//! transport failure maps to it.

use serde::Deserialize;

/// What went wrong with a Gmail call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GmailError {
    /// The refresh token was refused (`invalid_grant`, revoked, or the
    /// OAuth client is wrong): the mailbox must be connected again.
    #[error("Google refused the mailbox's refresh token: {0}")]
    Expired(String),
    /// The stored history id is too old for Gmail (404): resync.
    #[error("the mailbox's history id is too old for Gmail")]
    HistoryGone,
    #[error("Gmail is rate limiting the mailbox")]
    Throttled,
    #[error("Gmail failed: {0}")]
    Server(String),
    /// The request provably never left.
    #[error("cannot reach Gmail: {0}")]
    Transport(String),
    /// The request may have reached Gmail; no answer says whether.
    #[error("no answer from Gmail: {0}")]
    Ambiguous(String),
    #[error("Gmail refused the call: {0}")]
    Rejected(String),
    #[error("this instance no longer owns the mailbox's conversation")]
    Fenced,
}

impl GmailError {
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            Self::Throttled | Self::Server(_) | Self::Transport(_) | Self::Ambiguous(_)
        )
    }
}

/// One request: its body on a 2xx (empty when cut after the status), or
/// the error.
pub(super) async fn once(request: reqwest::RequestBuilder) -> Result<bytes::Bytes, GmailError> {
    match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            match response.bytes().await {
                Ok(b) if (200..300).contains(&status) => Ok(b),
                // Accepted, though the body was cut.
                Err(_) if (200..300).contains(&status) => Ok(bytes::Bytes::new()),
                Ok(b) => Err(from_status(status, &b)),
                Err(_) => Err(from_status(status, b"")),
            }
        }
        Err(e) if e.is_connect() => Err(transport(&e)),
        Err(e) => Err(GmailError::Ambiguous(describe(&e))),
    }
}

pub(super) fn from_status(status: u16, body: &[u8]) -> GmailError {
    #[derive(Deserialize, Default)]
    struct Reason {
        #[serde(default)]
        reason: String,
    }
    #[derive(Deserialize, Default)]
    struct Detail {
        #[serde(default)]
        message: String,
        #[serde(default)]
        errors: Vec<Reason>,
    }
    #[derive(Deserialize, Default)]
    struct Body {
        #[serde(default)]
        error: Detail,
    }
    let b: Body = serde_json::from_slice(body).unwrap_or_default();
    let message = truncate(&b.error.message);
    // Google's usage limits: per second, per user, per day, the mailbox's
    // sending limit. They pass; the reply waits and is tried again.
    let limited = b.error.errors.iter().any(|e| {
        matches!(
            e.reason.as_str(),
            "rateLimitExceeded"
                | "userRateLimitExceeded"
                | "dailyLimitExceeded"
                | "quotaExceeded"
                | "limitExceeded"
        )
    }) || {
        let m = message.to_ascii_lowercase();
        m.contains("rate limit") || m.contains("limit exceeded") || m.contains("quota exceeded")
    };
    match status {
        429 => GmailError::Throttled,
        403 if limited => GmailError::Throttled,
        500..=599 => GmailError::Server(format!("{status} {message}")),
        _ => GmailError::Rejected(format!("{status} {message}")),
    }
}

pub(super) fn transport(e: &reqwest::Error) -> GmailError {
    if e.is_connect() {
        GmailError::Transport("cannot connect".into())
    } else {
        GmailError::Ambiguous(describe(e))
    }
}

pub(super) fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "no answer within the request timeout".into()
    } else {
        "connection lost before the answer".into()
    }
}

pub(super) fn truncate(s: &str) -> String {
    s.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_limits_pass_and_are_tried_again_other_refusals_are_final() {
        let daily = br#"{"error":{"code":403,"message":"Daily Limit Exceeded","errors":[{"domain":"usageLimits","reason":"dailyLimitExceeded"}]}}"#;
        assert!(matches!(from_status(403, daily), GmailError::Throttled));
        let sending = br#"{"error":{"code":403,"message":"Mail sending limit exceeded"}}"#;
        assert!(matches!(from_status(403, sending), GmailError::Throttled));
        let denied = br#"{"error":{"code":403,"message":"Request had insufficient authentication scopes.","errors":[{"reason":"insufficientPermissions"}]}}"#;
        assert!(matches!(from_status(403, denied), GmailError::Rejected(_)));
    }
}
