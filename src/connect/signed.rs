//! Signed, expiring tokens of the connect flow: the invitation a connect
//! link carries and the OAuth `state` Meta hands back. A token is
//! `base64url(JSON).sha256=hex(HMAC-SHA256)` keyed with the connect app's
//! secret; a token of one kind is never taken for the other.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::channels::webhook::{sign, verify_signature};
use crate::config::ChannelKind;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// `invite` or `state`.
    pub kind: String,
    pub tenant: String,
    pub assistant: String,
    pub channels: Vec<ChannelKind>,
    pub expires_ms: u64,
    /// Makes every token different.
    pub nonce: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GrantError {
    #[error("this link was altered or is not a connect link; ask for a new one")]
    Tampered,
    #[error("this link has expired; start again")]
    Expired,
}

impl Grant {
    pub fn new(
        kind: &str,
        tenant: &str,
        assistant: &str,
        channels: &[ChannelKind],
        expires_ms: u64,
    ) -> Self {
        Self {
            kind: kind.to_string(),
            tenant: tenant.to_string(),
            assistant: assistant.to_string(),
            channels: channels.to_vec(),
            expires_ms,
            nonce: hex::encode(rand::random::<[u8; 12]>()),
        }
    }

    /// The token for this grant.
    pub fn seal(&self, key: &[u8]) -> String {
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default());
        let mac = sign(key, body.as_bytes());
        format!("{body}.{mac}")
    }

    /// The grant a token of `kind` holds, if its signature is right and
    /// it has not expired at `now_ms`.
    pub fn open(key: &[u8], token: &str, kind: &str, now_ms: u64) -> Result<Self, GrantError> {
        let (body, mac) = token.split_once('.').ok_or(GrantError::Tampered)?;
        if !verify_signature(key, body.as_bytes(), Some(mac)) {
            return Err(GrantError::Tampered);
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| GrantError::Tampered)?;
        let grant: Grant = serde_json::from_slice(&bytes).map_err(|_| GrantError::Tampered)?;
        if grant.kind != kind {
            return Err(GrantError::Tampered);
        }
        if grant.expires_ms <= now_ms {
            return Err(GrantError::Expired);
        }
        Ok(grant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tampered_expired_and_misused_tokens_are_refused() {
        let g = Grant::new("state", "acme", "support", &[ChannelKind::Messenger], 2_000);
        let token = g.seal(b"app-secret");
        assert_eq!(
            Grant::open(b"app-secret", &token, "state", 1_000),
            Ok(g.clone())
        );
        assert_eq!(
            Grant::open(b"app-secret", &token, "state", 2_000),
            Err(GrantError::Expired)
        );
        assert_eq!(
            Grant::open(b"other", &token, "state", 1_000),
            Err(GrantError::Tampered)
        );
        assert_eq!(
            Grant::open(b"app-secret", &token, "invite", 1_000),
            Err(GrantError::Tampered)
        );
        // Another tenant in the body, the old signature kept.
        let mut other = g;
        other.tenant = "globex".into();
        let forged = format!(
            "{}.{}",
            other.seal(b"x").split_once('.').unwrap().0,
            token.split_once('.').unwrap().1
        );
        assert_eq!(
            Grant::open(b"app-secret", &forged, "state", 1_000),
            Err(GrantError::Tampered)
        );
        for junk in ["", ".", "a.b", "é.sha256=00"] {
            assert!(Grant::open(b"app-secret", junk, "state", 1_000).is_err());
        }
    }
}
