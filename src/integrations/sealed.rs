//! Secrets sealed at rest: XChaCha20-Poly1305 under a key ring from the
//! environment (`SWITCHBOARD_KEYS`: `id:base64-of-32-bytes`, comma-separated;
//! the first key seals, every key opens).
//!
//! A sealed secret is framed as version (1 byte), key id (length byte, then
//! the id), nonce (24 bytes), ciphertext with its tag, and stored as
//! base64. The tenant, the integration and the field are bound as
//! associated data: a sealed token copied to another integration's record
//! does not open.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;

use crate::config::Secret;

/// The environment variable holding the key ring.
pub const KEYS_ENV: &str = "SWITCHBOARD_KEYS";
const VERSION: u8 = 1;
const NONCE_LEN: usize = 24;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("{KEYS_ENV}: {0}")]
    BadKeyRing(String),
    #[error("secrets cannot be stored: no key ring (set {KEYS_ENV} to `id:base64-of-32-bytes`)")]
    NoKeys,
    #[error("a secret is sealed with key '{0}', which {KEYS_ENV} does not hold")]
    UnknownKey(String),
    #[error("a sealed secret is damaged, or belongs to another integration")]
    Damaged,
}

/// What a sealed secret belongs to (its associated data).
#[derive(Debug, Clone, Copy)]
pub struct Binding<'a> {
    pub tenant: &'a str,
    pub integration: &'a str,
    pub field: &'a str,
}

impl Binding<'_> {
    fn associated_data(&self) -> Vec<u8> {
        let mut ad = b"switchboard-secret\0".to_vec();
        for part in [self.tenant, self.integration, self.field] {
            ad.extend_from_slice(&(part.len() as u32).to_be_bytes());
            ad.extend_from_slice(part.as_bytes());
        }
        ad
    }
}

/// The keys: the first seals, all open.
pub struct KeyRing {
    keys: Vec<(String, XChaCha20Poly1305)>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("KeyRing").field("ids", &ids).finish()
    }
}

impl KeyRing {
    /// Reads `id:base64,id:base64`; never echoes a key in an error.
    pub fn parse(text: &str) -> Result<Self, SealError> {
        let mut keys: Vec<(String, XChaCha20Poly1305)> = Vec::new();
        for (n, entry) in text.split(',').map(str::trim).enumerate() {
            if entry.is_empty() {
                continue;
            }
            let Some((id, b64)) = entry.split_once(':') else {
                return Err(SealError::BadKeyRing(format!(
                    "entry {} is not `id:base64-of-32-bytes`",
                    n + 1
                )));
            };
            let id = id.trim();
            if id.is_empty()
                || id.len() > 64
                || !id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(SealError::BadKeyRing(format!(
                    "entry {}: a key id is 1 to 64 letters, digits, '-' or '_'",
                    n + 1
                )));
            }
            let bytes = STANDARD
                .decode(b64.trim())
                .map_err(|_| SealError::BadKeyRing(format!("key '{id}' is not base64")))?;
            if bytes.len() != 32 {
                return Err(SealError::BadKeyRing(format!(
                    "key '{id}' is {} bytes; it must be 32",
                    bytes.len()
                )));
            }
            if keys.iter().any(|(k, _)| k == id) {
                return Err(SealError::BadKeyRing(format!(
                    "key id '{id}' appears twice"
                )));
            }
            let cipher = XChaCha20Poly1305::new_from_slice(&bytes)
                .map_err(|_| SealError::BadKeyRing(format!("key '{id}' is not usable")))?;
            keys.push((id.to_string(), cipher));
        }
        if keys.is_empty() {
            return Err(SealError::BadKeyRing("no key in it".into()));
        }
        Ok(Self { keys })
    }

    /// The key ring from `SWITCHBOARD_KEYS`, `None` when it is unset or empty.
    pub fn from_env() -> Result<Option<Self>, SealError> {
        match std::env::var(KEYS_ENV) {
            Ok(v) if !v.trim().is_empty() => Self::parse(&v).map(Some),
            _ => Ok(None),
        }
    }

    /// The id of the key that seals.
    pub fn newest(&self) -> &str {
        self.keys.first().map_or("", |(id, _)| id.as_str())
    }

    /// Seals `plain` for `binding` under the newest key.
    pub fn seal(&self, plain: &str, binding: Binding<'_>) -> Result<String, SealError> {
        let (id, cipher) = self.keys.first().ok_or(SealError::NoKeys)?;
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let ad = binding.associated_data();
        let sealed = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plain.as_bytes(),
                    aad: &ad,
                },
            )
            .map_err(|_| SealError::Damaged)?;
        let mut frame = Vec::with_capacity(2 + id.len() + NONCE_LEN + sealed.len());
        frame.push(VERSION);
        frame.push(id.len() as u8);
        frame.extend_from_slice(id.as_bytes());
        frame.extend_from_slice(&nonce);
        frame.extend_from_slice(&sealed);
        Ok(STANDARD.encode(frame))
    }

    /// Opens a sealed secret made for `binding`.
    pub fn open(&self, sealed: &str, binding: Binding<'_>) -> Result<Secret, SealError> {
        let bytes = STANDARD.decode(sealed).map_err(|_| SealError::Damaged)?;
        let frame = Frame::parse(&bytes)?;
        let cipher = self
            .keys
            .iter()
            .find(|(id, _)| id == frame.key_id)
            .map(|(_, c)| c)
            .ok_or_else(|| SealError::UnknownKey(frame.key_id.to_string()))?;
        let ad = binding.associated_data();
        let plain = cipher
            .decrypt(
                XNonce::from_slice(frame.nonce),
                Payload {
                    msg: frame.ciphertext,
                    aad: &ad,
                },
            )
            .map_err(|_| SealError::Damaged)?;
        String::from_utf8(plain)
            .map(Secret::new)
            .map_err(|_| SealError::Damaged)
    }
}

/// The id of the key a sealed secret was made with.
pub fn key_id_of(sealed: &str) -> Result<String, SealError> {
    let bytes = STANDARD.decode(sealed).map_err(|_| SealError::Damaged)?;
    Frame::parse(&bytes).map(|f| f.key_id.to_string())
}

struct Frame<'a> {
    key_id: &'a str,
    nonce: &'a [u8],
    ciphertext: &'a [u8],
}

impl<'a> Frame<'a> {
    fn parse(bytes: &'a [u8]) -> Result<Self, SealError> {
        let (&version, rest) = bytes.split_first().ok_or(SealError::Damaged)?;
        if version != VERSION {
            return Err(SealError::Damaged);
        }
        let (&id_len, rest) = rest.split_first().ok_or(SealError::Damaged)?;
        let id_len = usize::from(id_len);
        if rest.len() < id_len + NONCE_LEN + 16 {
            return Err(SealError::Damaged);
        }
        let (id, rest) = rest.split_at(id_len);
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let key_id = std::str::from_utf8(id).map_err(|_| SealError::Damaged)?;
        Ok(Self {
            key_id,
            nonce,
            ciphertext,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(text: &str) -> KeyRing {
        KeyRing::parse(text).unwrap()
    }
    const K1: &str = "k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    const K2: &str = "k2:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
    const AT: Binding<'static> = Binding {
        tenant: "acme",
        integration: "acme-fb",
        field: "access_token",
    };

    #[test]
    fn a_sealed_secret_opens_only_for_its_integration() {
        let r = ring(K1);
        let sealed = r.seal("EAAB-token", AT).unwrap();
        assert!(!sealed.contains("EAAB"));
        assert_eq!(r.open(&sealed, AT).unwrap().expose(), "EAAB-token");
        let other = Binding {
            integration: "globex-fb",
            ..AT
        };
        assert_eq!(r.open(&sealed, other).unwrap_err(), SealError::Damaged);
        assert_ne!(
            sealed,
            r.seal("EAAB-token", AT).unwrap(),
            "a fresh nonce each time"
        );
    }

    #[test]
    fn the_first_key_seals_and_every_key_opens() {
        let old = ring(K1);
        let sealed = old.seal("t", AT).unwrap();
        let both = ring(&format!("{K2},{K1}"));
        assert_eq!(both.open(&sealed, AT).unwrap().expose(), "t");
        assert_eq!(key_id_of(&both.seal("t", AT).unwrap()).unwrap(), "k2");
        assert_eq!(
            ring(K2).open(&sealed, AT).unwrap_err(),
            SealError::UnknownKey("k1".into())
        );
    }

    #[test]
    fn bad_key_rings_and_frames_are_refused_without_echoing_keys() {
        for bad in [
            "",
            "k1",
            "k1:not base64!",
            "k1:AAAA",
            "bad id:AAAA",
            &format!("{K1},{K1}"),
        ] {
            let e = KeyRing::parse(bad).unwrap_err().to_string();
            assert!(!e.contains("AAAAAAAA"), "{e}");
        }
        let r = ring(K1);
        for frame in ["", "!!", "AQ==", &STANDARD.encode([1u8, 200, 1, 2])] {
            assert!(r.open(frame, AT).is_err());
        }
    }
}
