//! The Gmail API client: an access token per mailbox from its refresh
//! token (refreshed a minute before it expires, and once more when Gmail
//! answers 401), every call paced by the mailbox's quota in Gmail's units
//! (`google.quota_units_per_second`), throttling and server errors retried
//! with backoff.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde::Deserialize;

mod calls;
pub use super::error::GmailError;
use super::error::{describe, once, truncate};
use crate::config::{GoogleConfig, IntegrationConfig, OutboundConfig};
use crate::fence::Fence;
pub use calls::HistoryPage;

/// Gmail's quota cost of each call, in units.
pub(super) mod units {
    pub const HISTORY: u32 = 2;
    pub const GET: u32 = 5;
    pub const LIST: u32 = 5;
    pub const SEND: u32 = 100;
    pub const WATCH: u32 = 100;
    pub const PROFILE: u32 = 1;
}

/// Attempts at a retryable call.
const ATTEMPTS: u32 = 4;

struct AccessToken {
    value: String,
    until: Instant,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Deserialize, Default)]
struct OAuthError {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// The Gmail API, shared by every mailbox.
pub struct GmailApi {
    http: reqwest::Client,
    base: String,
    token_url: String,
    units_per_second: u32,
    /// A send's answer is awaited this long (`outbound.request_timeout`);
    /// reads, attachments of up to 25 MB among them, longer.
    send_timeout: Duration,
    read_timeout: Duration,
    tokens: Mutex<HashMap<String, Arc<AccessToken>>>,
    pacers: Mutex<HashMap<String, Arc<DefaultDirectRateLimiter>>>,
}

impl GmailApi {
    pub fn new(google: &GoogleConfig, outbound: &OutboundConfig) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_secs(60))
            // A redirected POST would become a GET whose 2xx looks like a
            // send: Google's APIs never redirect a call.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Self {
            http,
            base: format!(
                "{}/gmail/v1/users/me",
                google.gmail_base_url.trim_end_matches('/')
            ),
            token_url: google.token_url.clone(),
            units_per_second: google.quota_units_per_second,
            send_timeout: outbound.request_timeout,
            read_timeout: outbound.request_timeout.max(Duration::from_secs(120)),
            tokens: Mutex::new(HashMap::new()),
            pacers: Mutex::new(HashMap::new()),
        }
    }

    /// Waits until the mailbox's quota has `units` for a call.
    async fn paced(&self, integration: &str, units: u32) {
        let pacer = {
            let Ok(mut pacers) = self.pacers.lock() else {
                return;
            };
            pacers
                .entry(integration.to_string())
                .or_insert_with(|| {
                    let rate = NonZeroU32::new(self.units_per_second).unwrap_or(NonZeroU32::MIN);
                    Arc::new(RateLimiter::direct(Quota::per_second(rate)))
                })
                .clone()
        };
        let n = NonZeroU32::new(units.min(self.units_per_second).max(1)).unwrap_or(NonZeroU32::MIN);
        // `n` never exceeds the burst, so this only waits.
        let _ = pacer.until_n_ready(n).await;
    }

    /// The mailbox's access token, refreshed when it is about to expire.
    async fn access_token(
        &self,
        integration: &IntegrationConfig,
    ) -> Result<Arc<AccessToken>, GmailError> {
        let key = token_key(integration);
        let cached = self
            .tokens
            .lock()
            .ok()
            .and_then(|t| t.get(&key).cloned())
            .filter(|t| t.until > Instant::now() + Duration::from_secs(60));
        if let Some(t) = cached {
            return Ok(t);
        }
        let form = [
            ("grant_type", "refresh_token"),
            (
                "client_id",
                integration.oauth_client_id.as_deref().unwrap_or_default(),
            ),
            ("client_secret", integration.oauth_client_secret.expose()),
            ("refresh_token", integration.refresh_token.expose()),
        ];
        // Bounded like a send: a token endpoint that never answers must
        // not hold the mailbox (or a reply) for ever.
        let response = self
            .http
            .post(&self.token_url)
            .form(&form)
            .timeout(self.send_timeout)
            .send()
            .await
            .map_err(|e| token_transport(&e))?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(|e| token_transport(&e))?;
        if !(200..300).contains(&status) {
            let err: OAuthError = serde_json::from_slice(&bytes).unwrap_or_default();
            return Err(match (status, err.error.as_str()) {
                (_, "invalid_grant" | "invalid_client" | "unauthorized_client") => {
                    GmailError::Expired(match err.error_description {
                        Some(d) => format!("{}: {}", err.error, truncate(&d)),
                        None => err.error,
                    })
                }
                (429, _) => GmailError::Throttled,
                // Nothing is sent with a refresh: tried again later, never
                // an unknown outcome of a send.
                (s, _) if s >= 500 => GmailError::Transport(format!("token endpoint status {s}")),
                (s, e) => GmailError::Rejected(format!("token endpoint status {s} {e}")),
            });
        }
        let answer: TokenAnswer = serde_json::from_slice(&bytes).map_err(|_| {
            GmailError::Transport("the token endpoint's answer is not a token".into())
        })?;
        let token = Arc::new(AccessToken {
            value: answer.access_token,
            until: Instant::now()
                + Duration::from_secs(answer.expires_in.unwrap_or(3600).min(86_400)),
        });
        if let Ok(mut t) = self.tokens.lock() {
            t.insert(key, token.clone());
        }
        Ok(token)
    }

    fn forget_token(&self, integration: &IntegrationConfig) {
        if let Ok(mut t) = self.tokens.lock() {
            t.remove(&token_key(integration));
        }
    }

    /// One call with retries: a 401 refreshes the token once; throttling,
    /// server errors and calls that never left are tried again with
    /// backoff. `retry_ambiguous` is false for sends: a send whose answer
    /// was lost, or that met a server error (it may have gone out), is
    /// confirmed, not repeated.
    async fn call(
        &self,
        integration: &IntegrationConfig,
        units: u32,
        request: impl Fn(&reqwest::Client, &str) -> reqwest::RequestBuilder,
        retry_ambiguous: bool,
        fence: &Fence,
    ) -> Result<bytes::Bytes, GmailError> {
        let mut attempt = 1;
        let mut refreshed = false;
        loop {
            self.paced(&integration.id, units).await;
            let token = self.access_token(integration).await?;
            let Ok(owned) = fence.enter() else {
                return Err(GmailError::Fenced);
            };
            let timeout = if retry_ambiguous {
                self.read_timeout
            } else {
                self.send_timeout
            };
            let call = request(&self.http, &self.base)
                .bearer_auth(&token.value)
                .timeout(timeout);
            let answer = once(call, retry_ambiguous).await;
            // Not kept through the backoff: nothing is in flight then.
            drop(owned);
            let err = match answer {
                Ok(b) => return Ok(b),
                Err(GmailError::Rejected(m)) if m.starts_with("401") && !refreshed => {
                    self.forget_token(integration);
                    refreshed = true;
                    continue;
                }
                Err(e) => e,
            };
            let again = match &err {
                GmailError::Ambiguous(_) | GmailError::Server(_) if !retry_ambiguous => false,
                e => e.retryable(),
            };
            if !again || attempt >= ATTEMPTS {
                return Err(err);
            }
            tokio::time::sleep(Duration::from_millis(200 * 2u64.pow(attempt))).await;
            attempt += 1;
        }
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        integration: &IntegrationConfig,
        units: u32,
        path: &str,
        query: &[(&str, String)],
        fence: &Fence,
    ) -> Result<T, GmailError> {
        let bytes = self
            .call(
                integration,
                units,
                |http, base| http.get(format!("{base}{path}")).query(query),
                true,
                fence,
            )
            .await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| GmailError::Server(format!("unreadable answer to {path}: {e}")))
    }
}

/// A token refresh that failed on the way: nothing was sent with it, so
/// it is tried again later (never an unknown outcome).
fn token_transport(e: &reqwest::Error) -> GmailError {
    GmailError::Transport(format!("token endpoint: {}", describe(e)))
}

/// Access tokens are kept by integration and refresh token: a new refresh
/// token (another mailbox, a reconnection) never uses the old one's.
fn token_key(integration: &IntegrationConfig) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(integration.refresh_token.expose().as_bytes());
    format!("{}:{}", integration.id, hex::encode(&digest[..8]))
}

/// An id as one URL path segment: Gmail's ids are letters, digits, `-`
/// and `_`; anything else is refused before a call.
pub(super) fn path_segment(id: &str) -> Result<&str, GmailError> {
    if !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Ok(id)
    } else {
        Err(GmailError::Rejected("not a Gmail id".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A token endpoint that takes the request and never answers fails the
    /// refresh within `outbound.request_timeout`, as a failure to try again
    /// (nothing was sent), instead of holding the mailbox for ever.
    #[tokio::test]
    async fn a_token_endpoint_that_never_answers_fails_within_the_timeout() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let held = tokio::spawn(async move {
            let mut sockets = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                sockets.push(socket);
            }
        });
        let toml = format!(
            r#"
[google]
token_url = "http://{addr}/token"
[outbound]
request_timeout = "300ms"
[[assistants]]
id = "support"
kind = "rules"
fallback = "Thanks!"
[[tenants]]
id = "acme"
[[integrations]]
id = "acme-mail"
tenant = "acme"
channel = "gmail"
account_id = "help@acme.example"
assistant = "support"
oauth_client_id = "client-1.apps.googleusercontent.com"
oauth_client_secret = "client-secret-1"
refresh_token = "refresh-1"
push_audience = "https://engine.acme.example/webhooks/gmail"
push_service_account = "push@acme.iam.gserviceaccount.com"
"#
        );
        let config = crate::config::load_from_str(&toml, &[]).unwrap();
        let api = GmailApi::new(&config.google, &config.outbound);
        let refreshed = tokio::time::timeout(
            Duration::from_secs(10),
            api.access_token(&config.integrations[0]),
        )
        .await
        .expect("the refresh gives up by itself");
        match refreshed {
            Err(GmailError::Transport(_)) => {}
            Err(other) => panic!("not a failure to try again: {other}"),
            Ok(_) => panic!("no token can come from it"),
        }
        held.abort();
    }
}
