//! The simulator's stand-in for Google's signing of Pub/Sub push tokens:
//! two RSA keys made for the simulator (never Google's), the first
//! published at `/oauth2/v3/certs` as Google publishes its own, the second
//! published nowhere (a token signed with it must be refused), and the
//! Gmail push a Pub/Sub subscription would send.

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use crate::channels::gmail::email::BASE64URL;
use crate::clock::now_ms;

/// The published key's id.
pub const KEY_ID: &str = "sim-key-a";
/// Modulus of the published key (base64url); its exponent is 65537.
const KEY_N: &str = include_str!("key_a.n");
const KEY_A: &[u8] = include_bytes!("key_a.pem");
/// A key Google does not publish.
const KEY_B: &[u8] = include_bytes!("key_b.pem");

/// The JWKS the simulator serves.
pub fn jwks() -> Value {
    json!({"keys": [{
        "kid": KEY_ID, "kty": "RSA", "alg": "RS256", "use": "sig",
        "n": KEY_N.trim(), "e": "AQAB"
    }]})
}

/// What a push token claims, and how it is signed.
#[derive(Debug, Clone)]
pub struct PushClaims {
    pub audience: String,
    pub email: String,
    pub email_verified: bool,
    pub issuer: String,
    /// Seconds from now until it expires (negative: already expired).
    pub expires_in: i64,
    /// Signed with the key Google does not publish.
    pub unpublished_key: bool,
}

impl PushClaims {
    /// A valid token's claims for `audience` and `service_account`.
    pub fn valid(audience: &str, service_account: &str) -> Self {
        Self {
            audience: audience.to_string(),
            email: service_account.to_string(),
            email_verified: true,
            issuer: "https://accounts.google.com".to_string(),
            expires_in: 3600,
            unpublished_key: false,
        }
    }

    /// The signed token (RS256, `kid` of the published key).
    pub fn sign(&self) -> String {
        let now = (now_ms() / 1000) as i64;
        let claims = json!({
            "aud": self.audience,
            "azp": "113774264463038321964",
            "email": self.email,
            "email_verified": self.email_verified,
            "exp": now + self.expires_in,
            "iat": now - 10,
            "iss": self.issuer,
            "sub": "113774264463038321964",
        });
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(KEY_ID.to_string());
        let pem = if self.unpublished_key { KEY_B } else { KEY_A };
        EncodingKey::from_rsa_pem(pem)
            .and_then(|key| jsonwebtoken::encode(&header, &claims, &key))
            .unwrap_or_default()
    }
}

/// The body of a Gmail push: `message.data` is base64url JSON with the
/// mailbox and its history id.
pub fn push_body(mailbox: &str, history_id: u64, subscription: &str) -> Vec<u8> {
    let data = json!({"emailAddress": mailbox, "historyId": history_id});
    let body = json!({
        "message": {
            "data": BASE64URL.encode(data.to_string()),
            "messageId": format!("{}", now_ms()),
            "publishTime": crate::clock::rfc3339(now_ms()),
            "attributes": {}
        },
        "subscription": subscription,
    });
    body.to_string().into_bytes()
}
