//! Google Pub/Sub pushes for Gmail: the OIDC token that authenticates
//! each one (RS256, signed by one of Google's keys, for the configured
//! audience and service account) and the envelope that says which mailbox
//! changed.
//!
//! Google's keys (JWKS) are fetched from `google.jwks_url`, kept, and
//! fetched again when a token names a key not among them (Google rotates
//! them), at most once every few seconds however many tokens name unknown
//! keys.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use super::email::{decode_base64, number_or_text};
use crate::config::IntegrationConfig;

/// The issuers Google's OIDC tokens carry.
pub const ISSUERS: [&str; 2] = ["accounts.google.com", "https://accounts.google.com"];

/// How soon unknown keys may be fetched again.
const REFETCH_AFTER: Duration = Duration::from_secs(10);

/// Why a push was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    #[error("no bearer token in the Authorization header")]
    MissingToken,
    #[error("the token is not a valid RS256 JWT: {0}")]
    Malformed(String),
    #[error("the token names a key Google does not publish")]
    UnknownKey,
    #[error("the token's signature does not verify")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is for another audience")]
    Audience,
    #[error("the token is from another issuer")]
    Issuer,
    #[error(
        "the token is not the configured push service account's, or its email is not verified"
    )]
    ServiceAccount,
    #[error("the push names another subscription")]
    Subscription,
    #[error("the push is for another mailbox")]
    Mailbox,
    #[error("the push body is not a Pub/Sub Gmail notification: {0}")]
    Envelope(String),
    #[error("Google's signing keys cannot be fetched now: {0}")]
    KeysUnavailable(String),
}

impl PushError {
    /// Refused for good (401 / 400) or not checkable now (503: Pub/Sub
    /// delivers it again).
    pub fn retryable(&self) -> bool {
        matches!(self, Self::KeysUnavailable(_))
    }

    /// The `reason` metric label.
    pub fn label(&self) -> &'static str {
        match self {
            Self::MissingToken => "missing_token",
            Self::Malformed(_) => "malformed_token",
            Self::UnknownKey => "unknown_key",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::Audience => "audience",
            Self::Issuer => "issuer",
            Self::ServiceAccount => "service_account",
            Self::Subscription => "subscription",
            Self::Mailbox => "mailbox",
            Self::Envelope(_) => "envelope",
            Self::KeysUnavailable(_) => "keys_unavailable",
        }
    }
}

/// What a push says: this mailbox changed, up to this history id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub email_address: String,
    pub history_id: u64,
}

#[derive(Deserialize)]
struct Envelope {
    message: PubSubMessage,
    #[serde(default)]
    subscription: Option<String>,
}

#[derive(Deserialize)]
struct PubSubMessage {
    #[serde(default)]
    data: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GmailData {
    email_address: String,
    #[serde(deserialize_with = "number_or_text")]
    history_id: u64,
}

/// Reads a push body for `integration`: its subscription (when one is
/// configured) and mailbox must be the integration's.
pub fn notification(
    body: &[u8],
    integration: &IntegrationConfig,
) -> Result<Notification, PushError> {
    let envelope: Envelope =
        serde_json::from_slice(body).map_err(|e| PushError::Envelope(e.to_string()))?;
    if let Some(wanted) = integration.push_subscription.as_deref() {
        if envelope.subscription.as_deref() != Some(wanted) {
            return Err(PushError::Subscription);
        }
    }
    let data = envelope
        .message
        .data
        .as_deref()
        .and_then(decode_base64)
        .ok_or_else(|| PushError::Envelope("message.data is missing or not base64".into()))?;
    let data: GmailData = serde_json::from_slice(&data)
        .map_err(|e| PushError::Envelope(format!("message.data: {e}")))?;
    if !data
        .email_address
        .trim()
        .eq_ignore_ascii_case(integration.account_id.trim())
    {
        return Err(PushError::Mailbox);
    }
    Ok(Notification {
        email_address: data.email_address,
        history_id: data.history_id,
    })
}

#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    email_verified: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Jwks {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    kty: String,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
}

#[derive(Default)]
struct KeyCache {
    keys: HashMap<String, DecodingKey>,
    fetched: Option<Instant>,
    /// The last fetch that failed, and why.
    failed: Option<(Instant, String)>,
}

/// Verifies push tokens against Google's published keys.
pub struct PushVerifier {
    jwks_url: String,
    http: reqwest::Client,
    cache: Mutex<KeyCache>,
    /// One fetch at a time.
    fetching: tokio::sync::Mutex<()>,
}

impl PushVerifier {
    pub fn new(jwks_url: &str) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        Self {
            jwks_url: jwks_url.to_string(),
            http,
            cache: Mutex::new(KeyCache::default()),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    /// Checks the `Authorization` header's token for `integration`.
    pub async fn verify(
        &self,
        authorization: Option<&str>,
        integration: &IntegrationConfig,
    ) -> Result<(), PushError> {
        let token = authorization
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(PushError::MissingToken)?;
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| PushError::Malformed(e.to_string()))?;
        if header.alg != Algorithm::RS256 {
            return Err(PushError::Malformed(format!("{:?}, not RS256", header.alg)));
        }
        let kid = header.kid.ok_or(PushError::UnknownKey)?;
        let key = self.key(&kid).await?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&ISSUERS);
        let audience = integration.push_audience.as_deref().unwrap_or_default();
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.leeway = 30;
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            match e.kind() {
                K::InvalidSignature => PushError::BadSignature,
                K::ExpiredSignature => PushError::Expired,
                K::InvalidAudience => PushError::Audience,
                K::InvalidIssuer => PushError::Issuer,
                K::MissingRequiredClaim(c) if c == "aud" => PushError::Audience,
                K::MissingRequiredClaim(c) if c == "iss" => PushError::Issuer,
                K::MissingRequiredClaim(_) => PushError::Expired,
                other => PushError::Malformed(format!("{other:?}")),
            }
        })?;
        let verified = match data.claims.email_verified {
            Some(serde_json::Value::Bool(b)) => b,
            Some(serde_json::Value::String(s)) => s == "true",
            _ => false,
        };
        let wanted = integration
            .push_service_account
            .as_deref()
            .unwrap_or_default();
        let email_ok = data
            .claims
            .email
            .as_deref()
            .is_some_and(|e| !wanted.is_empty() && e.eq_ignore_ascii_case(wanted));
        if !(verified && email_ok) {
            return Err(PushError::ServiceAccount);
        }
        Ok(())
    }

    /// The key `kid`, fetching Google's keys when it is not known.
    async fn key(&self, kid: &str) -> Result<DecodingKey, PushError> {
        if let Some(k) = self.cached(kid) {
            return Ok(k);
        }
        let _one = self.fetching.lock().await;
        // Fetched meanwhile, or fetched too recently to try again.
        if let Some(k) = self.cached(kid) {
            return Ok(k);
        }
        let (recent, failed) = match self.cache.lock() {
            Ok(c) => (
                c.fetched.is_some_and(|t| t.elapsed() < REFETCH_AFTER),
                c.failed
                    .as_ref()
                    .filter(|(t, _)| t.elapsed() < REFETCH_AFTER)
                    .map(|(_, e)| e.clone()),
            ),
            Err(_) => (false, None),
        };
        if let Some(e) = failed {
            // Not asked again at once, whoever sends tokens.
            return Err(PushError::KeysUnavailable(e));
        }
        if recent {
            return Err(PushError::UnknownKey);
        }
        let keys = match self.fetch().await {
            Ok(k) => k,
            Err(e) => {
                if let (Ok(mut c), PushError::KeysUnavailable(why)) = (self.cache.lock(), &e) {
                    c.failed = Some((Instant::now(), why.clone()));
                }
                return Err(e);
            }
        };
        let found = keys.get(kid).cloned();
        if let Ok(mut c) = self.cache.lock() {
            c.keys = keys;
            c.fetched = Some(Instant::now());
            c.failed = None;
        }
        found.ok_or(PushError::UnknownKey)
    }

    fn cached(&self, kid: &str) -> Option<DecodingKey> {
        self.cache
            .lock()
            .ok()
            .and_then(|c| c.keys.get(kid).cloned())
    }

    async fn fetch(&self) -> Result<HashMap<String, DecodingKey>, PushError> {
        let unavailable = |e: String| PushError::KeysUnavailable(e);
        let response = self.http.get(&self.jwks_url).send().await.map_err(|e| {
            unavailable(if e.is_timeout() {
                "timed out".into()
            } else {
                "cannot connect".into()
            })
        })?;
        if !response.status().is_success() {
            return Err(unavailable(format!(
                "status {}",
                response.status().as_u16()
            )));
        }
        let jwks: Jwks = response
            .json()
            .await
            .map_err(|_| unavailable("the key set is not JSON".into()))?;
        let mut keys = HashMap::new();
        for k in jwks.keys {
            let (Some(kid), Some(n), Some(e)) = (k.kid, k.n, k.e) else {
                continue;
            };
            if k.kty != "RSA" {
                continue;
            }
            if let Ok(key) = DecodingKey::from_rsa_components(&n, &e) {
                keys.insert(kid, key);
            }
        }
        if keys.is_empty() {
            return Err(unavailable("the key set has no RSA key".into()));
        }
        Ok(keys)
    }
}
