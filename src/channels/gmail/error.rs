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
    struct Detail {
        #[serde(default)]
        message: String,
    }
    #[derive(Deserialize, Default)]
    struct Body {
        #[serde(default)]
        error: Detail,
    }
    let b: Body = serde_json::from_slice(body).unwrap_or_default();
    let message = truncate(&b.error.message);
    match status {
        429 => GmailError::Throttled,
        403 if message.to_ascii_lowercase().contains("rate limit") => GmailError::Throttled,
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
