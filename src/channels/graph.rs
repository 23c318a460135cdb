//! The Graph API client shared by the Meta channels: JSON POSTs with the
//! access token as a Bearer header, retried under the one [`RetryPolicy`].

use std::time::Duration;

use serde_json::Value;

use super::meta_error::{SendError, SendErrorKind};
use super::retry::RetryPolicy;
use super::Sent;
use crate::config::{IntegrationConfig, OutboundConfig, Secret};
use crate::event::Channel;
use crate::fence::Fence;
use crate::telemetry::{self, SendOutcome};

pub struct GraphClient {
    http: reqwest::Client,
    base_url: String,
    policy: RetryPolicy,
}

/// Errors building the client.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the HTTP client: {0}")]
pub struct ClientBuildError(String);

impl GraphClient {
    pub fn new(base_url: &str, outbound: &OutboundConfig) -> Result<Self, ClientBuildError> {
        let http = reqwest::Client::builder()
            .timeout(outbound.request_timeout)
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(256)
            .tcp_nodelay(true)
            // A redirect would turn the POST into a bodiless GET whose 2xx
            // looks like a send: the platform APIs never redirect a call.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ClientBuildError(e.to_string()))?;
        Ok(Self {
            http,
            base_url: base_url.trim_end_matches('/').to_string(),
            policy: RetryPolicy::from_config(outbound),
        })
    }

    /// POSTs `body` to `{graph_base_url}/{path}`, retrying retryable
    /// failures with backoff up to the policy's attempts. Returns the JSON
    /// answer of the first success, or the last error.
    pub async fn post(
        &self,
        channel: Channel,
        path: &str,
        token: &Secret,
        body: &Value,
        fence: &Fence,
    ) -> Result<Value, SendError> {
        self.post_attempts(channel, path, token, body, self.policy.max_attempts, fence)
            .await
            .map(|(answer, _, _)| answer)
    }

    /// One attempt only, for best-effort calls (typing indicators) that
    /// must not hold up the reply behind them.
    pub async fn post_best_effort(
        &self,
        channel: Channel,
        path: &str,
        token: &Secret,
        body: &Value,
    ) -> Result<Value, SendError> {
        self.post_attempts(channel, path, token, body, 1, &Fence::none())
            .await
            .map(|(answer, _, _)| answer)
    }

    /// POSTs a message `body` to `path` for `integration` and returns the
    /// platform's id for it, found at `id_pointer` in the answer.
    pub async fn send_for_id(
        &self,
        integration: &IntegrationConfig,
        path: &str,
        body: &Value,
        id_pointer: &str,
        fence: &Fence,
    ) -> Result<Sent, SendError> {
        let (answer, at_ms, recording) = self
            .post_attempts(
                integration.channel,
                path,
                &integration.access_token,
                body,
                self.policy.max_attempts,
                fence,
            )
            .await?;
        let message_id = answer
            .pointer(id_pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        Ok(Sent {
            message_id,
            at_ms,
            recording,
        })
    }

    /// One attempt at an indicator (`typing_on`, WhatsApp typing) on the
    /// account's `/{account_id}/messages`: it must not hold up the reply.
    pub async fn indicate(
        &self,
        integration: &IntegrationConfig,
        body: &Value,
    ) -> Result<(), SendError> {
        self.post_best_effort(
            integration.channel,
            &messages_path(integration),
            &integration.access_token,
            body,
        )
        .await
        .map(|_| ())
    }

    async fn post_attempts(
        &self,
        channel: Channel,
        path: &str,
        token: &Secret,
        body: &Value,
        max_attempts: u32,
        fence: &Fence,
    ) -> Result<(Value, u64, crate::fence::Recording), SendError> {
        let url = format!("{}/{}", self.base_url, path);
        let mut attempt = 1;
        loop {
            let Ok(owned) = fence.enter() else {
                return Err(SendError::fenced());
            };
            let started = crate::clock::now_ms();
            let answer = self.post_once(&url, token, body).await;
            match answer {
                Ok(v) => {
                    telemetry::send_request(channel, SendOutcome::Ok);
                    // Kept as a write place until the send's mark is
                    // written.
                    return Ok((v, started, fence.recording(owned)));
                }
                Err(e) => {
                    // Not kept through the backoff: nothing is in flight then.
                    drop(owned);
                    telemetry::send_request(channel, e.kind);
                    // A `Retry-After` longer than the policy's longest pause
                    // ends the attempts: the part waits in the outbox
                    // (`outbound.retry_later`) instead of asking too early.
                    let asked = e.retry_after.unwrap_or_default();
                    if !e.retryable() || attempt >= max_attempts || asked > self.policy.max() {
                        return Err(e);
                    }
                    tracing::debug!(attempt, error = %e, "Retrying platform call");
                    tokio::time::sleep(self.policy.backoff(attempt).max(asked)).await;
                    attempt += 1;
                }
            }
        }
    }

    /// One GET of `{graph_base_url}/{path}` with `query`: a read, never
    /// retried here.
    pub async fn get(
        &self,
        path: &str,
        token: &Secret,
        query: &[(&str, &str)],
    ) -> Result<Value, SendError> {
        let url = format!("{}/{}", self.base_url, path);
        let response = self
            .http
            .get(&url)
            .query(query)
            .bearer_auth(token.expose())
            .send()
            .await
            .map_err(|e| SendError::transport(describe_reqwest(&e)))?;
        let status = response.status().as_u16();
        let bytes = crate::body::read(response, MAX_ANSWER)
            .await
            .map_err(|e| SendError::transport(describe_reqwest(&e)))?
            .bytes;
        if !(200..300).contains(&status) {
            return Err(SendError::from_response(status, &bytes));
        }
        serde_json::from_slice(&bytes)
            .map_err(|_| SendError::refused("the Graph API's answer is not JSON"))
    }

    /// One call. A request that provably never left (no connection) is a
    /// transport error, retried at once; one that may have reached the
    /// platform without a status coming back is ambiguous (never retried
    /// here: the caller confirms it first). A 2xx status means accepted,
    /// whatever the body says or however much of it arrived.
    async fn post_once(&self, url: &str, token: &Secret, body: &Value) -> Result<Value, SendError> {
        let response = self
            .http
            .post(url)
            .bearer_auth(token.expose())
            .json(body)
            .send()
            .await
            .map_err(|e| {
                if e.is_connect() {
                    SendError::transport(describe_reqwest(&e))
                } else {
                    SendError::ambiguous(describe_reqwest(&e))
                }
            })?;
        let status = response.status().as_u16();
        // Seconds (the HTTP-date form is not used by Meta).
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let bytes = crate::body::read(response, MAX_ANSWER)
            .await
            .map(|read| read.bytes);
        if (200..300).contains(&status) {
            return Ok(bytes
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or(Value::Null));
        }
        let mut error = SendError::from_response(status, bytes.as_deref().unwrap_or_default());
        error.retry_after = retry_after;
        // Only the platform's own refusals: a proxy's 408 or 499 may come
        // after it passed the request on (as a gateway's 502/504).
        if bytes.is_err()
            && error.kind == SendErrorKind::Rejected
            && matches!(status, 400 | 401 | 403 | 404)
        {
            // Refused (a 4xx: not taken, so another attempt cannot double
            // it), but why was cut off with the connection: it may have
            // been a limit, so the refusal is not taken as final.
            error.kind = SendErrorKind::Server;
            error.message = format!("the refusal was cut off mid-body: {}", error.message);
        }
        Err(error)
    }
}

/// Longest Graph API answer read, in bytes (Meta's answers are a few
/// hundred; a proxy's page or a wrong base URL may be anything). A longer
/// one is read up to here.
const MAX_ANSWER: usize = 256 * 1024;

/// `{account_id}/messages`: the Send API's and the WhatsApp Cloud API's
/// path alike.
pub fn messages_path(integration: &IntegrationConfig) -> String {
    format!("{}/messages", integration.account_id)
}

/// A transport error without the URL (which may carry ids) or any header.
fn describe_reqwest(e: &reqwest::Error) -> String {
    if e.is_connect() {
        "cannot connect to the platform API".into()
    } else if e.is_timeout() {
        "no answer within the request timeout".into()
    } else {
        "connection lost before the answer".into()
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A redirect is an answer, not a send: the POST is not followed as a
    /// bodiless GET whose 2xx would look like the message went out.
    #[tokio::test]
    async fn a_redirect_is_not_followed_into_a_send_that_never_happened() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut head = vec![0u8; 8192];
                    let n = socket.read(&mut head).await.unwrap_or(0);
                    let body = r#"{"message_id":"m_1"}"#;
                    let answer = if head[..n].starts_with(b"POST") {
                        "HTTP/1.1 302 Found\r\nLocation: /v21.0/elsewhere\r\ncontent-length: 0\r\n\r\n"
                            .to_string()
                    } else {
                        format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}", body.len())
                    };
                    let _ = socket.write_all(answer.as_bytes()).await;
                });
            }
        });
        let config = crate::config::load_from_str("", &[]).unwrap();
        let client = GraphClient::new(&format!("http://{addr}/v21.0"), &config.outbound).unwrap();
        let sent = client
            .post_best_effort(
                Channel::Messenger,
                "1/messages",
                &Secret::new("token"),
                &serde_json::json!({"message": {"text": "hi"}}),
            )
            .await;
        let refused = sent.expect_err("a redirect is not a send");
        assert_eq!(refused.status, 302, "{refused}");
        assert!(!refused.retryable(), "{refused}");
    }

    /// A server answering its n-th request with `answers[n]` (the last one
    /// from then on; one beginning with "CUT " is sent without it and the
    /// connection closed), keeping when each came.
    async fn scripted(
        answers: Vec<String>,
    ) -> (
        GraphClient,
        std::sync::Arc<std::sync::Mutex<Vec<std::time::Instant>>>,
    ) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let arrivals = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = arrivals.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let (seen, answers) = (seen.clone(), answers.clone());
                tokio::spawn(async move {
                    let mut head = vec![0u8; 8192];
                    while let Ok(n) = socket.read(&mut head).await {
                        if n == 0 {
                            return;
                        }
                        let nth = {
                            let mut seen = seen.lock().unwrap();
                            seen.push(std::time::Instant::now());
                            seen.len() - 1
                        };
                        let answer = &answers[nth.min(answers.len() - 1)];
                        // "CUT " first: the rest is written and the
                        // connection closed, mid-body if its length says so.
                        let (answer, cut) = match answer.strip_prefix("CUT ") {
                            Some(rest) => (rest, true),
                            None => (answer.as_str(), false),
                        };
                        if socket.write_all(answer.as_bytes()).await.is_err() || cut {
                            return;
                        }
                    }
                });
            }
        });
        let config = crate::config::load_from_str("", &[]).unwrap();
        let client = GraphClient::new(&format!("http://{addr}/v21.0"), &config.outbound).unwrap();
        (client, arrivals)
    }

    fn answer(status: &str, extra: &str, body: &str) -> String {
        format!(
            "HTTP/1.1 {status}\r\n{extra}content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
    }

    fn throttled(retry_after: u64) -> String {
        answer(
            "429 Too Many Requests",
            &format!("retry-after: {retry_after}\r\n"),
            r#"{"error":{"message":"(#4) Application request limit reached","code":4}}"#,
        )
    }

    async fn send(client: &GraphClient) -> Result<Value, SendError> {
        client
            .post(
                Channel::Messenger,
                "1/messages",
                &Secret::new("token"),
                &serde_json::json!({"message": {"text": "hi"}}),
                &Fence::none(),
            )
            .await
    }

    /// Throttled with `Retry-After: 1`: the next attempt waits the second
    /// Meta asked for, not the policy's shorter pause.
    #[tokio::test]
    async fn a_throttled_call_waits_the_retry_after_it_was_given() {
        let ok = answer("200 OK", "", r#"{"message_id":"m_2"}"#);
        let (client, arrivals) = scripted(vec![throttled(1), ok]).await;
        let sent = send(&client).await.expect("sent on the second attempt");
        assert_eq!(sent["message_id"], "m_2");
        let arrivals = arrivals.lock().unwrap().clone();
        assert_eq!(arrivals.len(), 2);
        let waited = arrivals[1] - arrivals[0];
        assert!(
            waited >= std::time::Duration::from_millis(950),
            "{waited:?}"
        );
    }

    /// A refusal whose body is cut off mid-way (its error code unknown) is
    /// tried again: a 4xx means the platform did not take the message, so
    /// another attempt cannot double it, and the reason may well have been
    /// a limit. A whole refusal is final.
    #[tokio::test]
    async fn a_refusal_cut_off_mid_body_is_tried_again() {
        let cut = format!(
            "CUT HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 120\r\n\r\n{}",
            r#"{"error":{"message":"(#6"#
        );
        let ok = answer("200 OK", "", r#"{"message_id":"m_3"}"#);
        let (client, arrivals) = scripted(vec![cut, ok]).await;
        let sent = send(&client).await.expect("sent on the second attempt");
        assert_eq!(sent["message_id"], "m_3");
        assert_eq!(arrivals.lock().unwrap().len(), 2);

        let whole = answer(
            "400 Bad Request",
            "",
            r#"{"error":{"message":"(#100) Invalid parameter","code":100}}"#,
        );
        let (client, arrivals) = scripted(vec![whole]).await;
        let refused = send(&client).await.expect_err("refused");
        assert!(!refused.retryable(), "{refused}");
        assert_eq!(arrivals.lock().unwrap().len(), 1, "asked once");
    }

    /// A `Retry-After` longer than the policy's longest pause ends the
    /// attempts at once (the part waits in the outbox), instead of asking
    /// again before the time the platform gave.
    #[tokio::test]
    async fn a_retry_after_longer_than_the_longest_pause_ends_the_attempts() {
        let (client, arrivals) = scripted(vec![throttled(3600)]).await;
        let refused = send(&client).await.expect_err("throttled");
        assert_eq!(
            refused.kind,
            crate::channels::meta_error::SendErrorKind::Throttled
        );
        assert_eq!(refused.retry_after, Some(Duration::from_secs(3600)));
        assert_eq!(arrivals.lock().unwrap().len(), 1, "asked once");
    }

    /// An answer far larger than any of Meta's (a proxy's page, a wrong
    /// base URL) is read only up to the cap: a 2xx still counts as sent
    /// (without an id), a gateway's page is still an unknown outcome.
    #[tokio::test]
    async fn a_huge_answer_is_read_up_to_the_cap_and_still_classified() {
        let huge = format!(r#"{{"message_id":"m_4","pad":"{}"}}"#, "x".repeat(4 << 20));
        let (client, _) = scripted(vec![answer("200 OK", "", &huge)]).await;
        let sent = send(&client).await.expect("sent");
        assert_eq!(sent, Value::Null, "its id cut off with the rest");
        let page = format!("<html>{}</html>", "y".repeat(4 << 20));
        let (client, arrivals) = scripted(vec![answer("502 Bad Gateway", "", &page)]).await;
        let lost = send(&client).await.expect_err("gateway");
        assert_eq!(
            lost.kind,
            crate::channels::meta_error::SendErrorKind::Ambiguous
        );
        assert_eq!(
            arrivals.lock().unwrap().len(),
            1,
            "never asked again at once"
        );
    }
}
