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
    /// A daily or sending limit of the mailbox is spent: nothing is tried
    /// again for [`OVER_LIMIT_WAIT`].
    #[error("the mailbox's Gmail daily or sending limit is spent: {0}")]
    OverLimit(String),
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

/// How long replies wait once a mailbox's daily or sending limit is spent.
pub const OVER_LIMIT_WAIT: std::time::Duration = std::time::Duration::from_secs(3600);

impl GmailError {
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            Self::Throttled | Self::Server(_) | Self::Transport(_) | Self::Ambiguous(_)
        )
    }

    /// A read whose answer was cut short (again and again, for one file,
    /// it is that file's own failure).
    pub fn cut(&self) -> bool {
        matches!(self, Self::Ambiguous(m) if m == CUT)
    }
}

/// One request: its body on a 2xx (empty when cut after the status), or
/// the error.
/// Past this a 2xx answer is refused: Gmail takes mail of at most 50 MB
/// with its attachments, about 68 MB as the API's base64 JSON.
pub(super) const MAX_ANSWER: usize = 100 << 20;

/// Why a read whose answer was cut short failed.
pub const CUT: &str = "connection lost in the middle of the answer";

/// What is read of an error's answer (its reason and message).
const MAX_ERROR_ANSWER: usize = 64 << 10;

/// `read`: the call only reads (a 2xx cut short is then an unknown outcome
/// to try again, never an empty answer: a message or attachment is not
/// taken for an unreadable one because a connection dropped).
pub(super) async fn once(
    request: reqwest::RequestBuilder,
    read: bool,
) -> Result<bytes::Bytes, GmailError> {
    once_within(request, MAX_ANSWER, read).await
}

/// [`once`] with a 2xx answer refused past `cap` bytes.
async fn once_within(
    request: reqwest::RequestBuilder,
    cap: usize,
    read: bool,
) -> Result<bytes::Bytes, GmailError> {
    match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let ok = (200..300).contains(&status);
            let cap = if ok { cap } else { MAX_ERROR_ANSWER };
            match crate::body::read(response, cap).await {
                Ok(b) if ok && !b.whole => Err(GmailError::Rejected(format!(
                    "{status} answer larger than {cap} bytes"
                ))),
                Ok(b) if ok => Ok(bytes::Bytes::from(b.bytes)),
                Err(_) if ok && read => Err(GmailError::Ambiguous(CUT.into())),
                // Accepted, though the body was cut.
                Err(_) if ok => Ok(bytes::Bytes::new()),
                Ok(b) => Err(from_status(status, &b.bytes)),
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
    // Google's usage limits: per second and per user (they pass in
    // seconds), per day and the mailbox's sending limit (hours).
    let reasons: Vec<&str> = b.error.errors.iter().map(|e| e.reason.as_str()).collect();
    let lower = message.to_ascii_lowercase();
    // By Google's reason, or the words of the daily and sending limits
    // ("quota exceeded" alone may be a per-minute quota).
    let daily = reasons
        .iter()
        .any(|r| matches!(*r, "dailyLimitExceeded" | "limitExceeded"))
        || lower.contains("daily limit")
        || lower.contains("sending limit")
        || lower.contains("(mail sending)");
    let limited = daily
        || reasons.iter().any(|r| {
            matches!(
                *r,
                "rateLimitExceeded" | "userRateLimitExceeded" | "quotaExceeded"
            )
        })
        || lower.contains("rate limit")
        || lower.contains("quota exceeded");
    match status {
        // Google says a spent sending limit with a 429 too.
        429 if daily => GmailError::OverLimit(message),
        429 => GmailError::Throttled,
        403 if daily => GmailError::OverLimit(message),
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
        assert!(matches!(from_status(403, daily), GmailError::OverLimit(_)));
        let sending = br#"{"error":{"code":403,"message":"Mail sending limit exceeded"}}"#;
        assert!(matches!(
            from_status(403, sending),
            GmailError::OverLimit(_)
        ));
        let user = br#"{"error":{"code":403,"message":"User-rate limit exceeded","errors":[{"reason":"userRateLimitExceeded"}]}}"#;
        assert!(matches!(from_status(403, user), GmailError::Throttled));
        // A spent limit waits an hour in the outbox, not tried every few seconds.
        let e = crate::channels::gmail::reply::send_error(from_status(403, daily));
        assert_eq!(e.kind, crate::channels::SendErrorKind::Throttled);
        assert_eq!(e.retry_after, Some(OVER_LIMIT_WAIT));
        let denied = br#"{"error":{"code":403,"message":"Request had insufficient authentication scopes.","errors":[{"reason":"insufficientPermissions"}]}}"#;
        assert!(matches!(from_status(403, denied), GmailError::Rejected(_)));
    }

    /// A server that answers every request with `answer` and closes.
    async fn serving(answer: String) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let answer = answer.clone();
                tokio::spawn(async move {
                    let mut head = vec![0u8; 8192];
                    let _ = socket.read(&mut head).await;
                    let _ = socket.write_all(answer.as_bytes()).await;
                });
            }
        });
        format!("http://{addr}/gmail/v1/users/me/messages/m1")
    }

    fn http(status: &str, body: &str) -> String {
        format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
    }

    /// An answer past the cap (a wrong base URL, a server that
    /// misbehaves) is refused for good instead of held whole; an error
    /// page of any size is still classified by its status.
    #[tokio::test]
    async fn answers_are_read_with_a_bound_and_still_classified() {
        let client = reqwest::Client::new();
        let big = format!(r#"{{"id":"m1","raw":"{}"}}"#, "x".repeat(4096));
        let url = serving(http("200 OK", &big)).await;
        let e = once_within(client.get(&url), 1024, true)
            .await
            .expect_err("too large");
        assert!(matches!(e, GmailError::Rejected(_)), "{e:?}");
        assert!(!e.retryable());
        assert_eq!(
            once_within(client.get(&url), 1 << 20, true)
                .await
                .expect("whole")
                .len(),
            big.len()
        );
        let page = format!("<html>{}</html>", "y".repeat(1 << 20));
        let url = serving(http("503 Service Unavailable", &page)).await;
        let e = once(client.get(&url), true).await.expect_err("server");
        assert!(matches!(e, GmailError::Server(_)), "{e:?}");
        assert!(e.retryable());
    }

    /// A 2xx whose connection drops mid-body: a read is tried again (the
    /// message or attachment is not taken for an unreadable one), a send
    /// was accepted.
    #[tokio::test]
    async fn a_2xx_cut_mid_body_is_tried_again_when_reading() {
        let client = reqwest::Client::new();
        let cut = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 10000\r\n\r\n{\"data\":\"abc";
        let url = serving(cut.to_string()).await;
        let e = once(client.get(&url), true).await.expect_err("cut");
        assert!(matches!(e, GmailError::Ambiguous(_)), "{e:?}");
        assert!(e.retryable());
        assert!(once(client.get(&url), false)
            .await
            .expect("sent")
            .is_empty());
    }

    /// Google answers a spent sending limit with a 429 too: the reply
    /// waits an hour, not a few seconds.
    #[test]
    fn a_429_for_the_sending_limit_waits_an_hour() {
        let body = br#"{"error":{"code":429,"message":"User-rate limit exceeded.  Retry after 2026-12-08T15:00:00.000Z (Mail sending)","errors":[{"reason":"rateLimitExceeded"}]}}"#;
        assert!(matches!(from_status(429, body), GmailError::OverLimit(_)));
        let per_second =
            br#"{"error":{"code":429,"message":"Too many concurrent requests for user"}}"#;
        assert!(matches!(
            from_status(429, per_second),
            GmailError::Throttled
        ));
    }
}
