//! Meta's webhook envelope: the `X-Hub-Signature-256` check and the
//! `{"object": ..., "entry": [...]}` batch, split into per-account entries
//! of platform events.

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use super::{messenger, whatsapp};
use crate::event::EventKind;

/// Why a webhook body was refused (the 400's one-line reason).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("body is not valid JSON: {0}")]
    Json(String),
    #[error("unsupported object \"{0}\"")]
    UnsupportedObject(String),
    #[error("{0}")]
    Invalid(String),
}

/// Which product sent the webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookObject {
    Page,
    Instagram,
    Whatsapp,
}

impl WebhookObject {
    /// The `channel` metric label.
    pub fn channel_label(self) -> &'static str {
        match self {
            Self::Page => "messenger",
            Self::Instagram => "instagram",
            Self::Whatsapp => "whatsapp",
        }
    }
}

/// One event as the platform described it, before it is tied to an
/// integration.
#[derive(Debug, Clone, PartialEq)]
pub struct PlatformEvent {
    pub customer: String,
    pub timestamp_ms: u64,
    pub kind: EventKind,
    /// The customer's name, when the platform gives it.
    pub customer_name: Option<String>,
}

/// The events of one entry, for one business account (Page, IG account,
/// WhatsApp phone number).
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedEntry {
    pub account_id: String,
    pub events: Vec<PlatformEvent>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ParsedWebhook {
    pub object: WebhookObject,
    pub entries: Vec<ParsedEntry>,
}

impl ParsedWebhook {
    pub fn event_count(&self) -> usize {
        self.entries.iter().map(|e| e.events.len()).sum()
    }
}

/// Largest batch Meta sends (entries per webhook).
pub const MAX_ENTRIES: usize = 1000;

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    object: std::borrow::Cow<'a, str>,
    #[serde(default)]
    entry: Vec<messenger::RawEntry>,
}

/// Parses a webhook body. `now_ms` stands in for a missing timestamp.
pub fn parse(body: &[u8], now_ms: u64) -> Result<ParsedWebhook, ParseError> {
    let envelope: Envelope<'_> =
        serde_json::from_slice(body).map_err(|e| ParseError::Json(e.to_string()))?;
    let object = match envelope.object.as_ref() {
        "page" => WebhookObject::Page,
        "instagram" => WebhookObject::Instagram,
        "whatsapp_business_account" => WebhookObject::Whatsapp,
        other => return Err(ParseError::UnsupportedObject(truncate(other))),
    };
    if envelope.entry.len() > MAX_ENTRIES {
        return Err(ParseError::Invalid(format!(
            "{} entries, more than the {MAX_ENTRIES} Meta sends",
            envelope.entry.len()
        )));
    }
    let mut entries = Vec::with_capacity(envelope.entry.len());
    for entry in envelope.entry {
        match object {
            WebhookObject::Whatsapp => entries.extend(whatsapp::parse_entry(entry)?),
            _ => entries.push(messenger::parse_entry(entry, object, now_ms)?),
        }
    }
    Ok(ParsedWebhook { object, entries })
}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

/// Checks `X-Hub-Signature-256: sha256=<hex>` over the raw body, in
/// constant time.
pub fn verify_signature(secret: &[u8], body: &[u8], header: Option<&str>) -> bool {
    let Some(hex_sig) = header.and_then(|h| h.trim().strip_prefix("sha256=")) else {
        return false;
    };
    let Ok(expected) = hex::decode(hex_sig) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

/// Compares secrets without revealing, by timing, how much of them matched.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Signs a body the way Meta does (for the simulator, the load harness and
/// tests).
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_roundtrip_and_rejections() {
        let body = br#"{"object":"page","entry":[]}"#;
        let sig = sign(b"s3cret", body);
        assert!(verify_signature(b"s3cret", body, Some(&sig)));
        assert!(!verify_signature(b"other", body, Some(&sig)));
        assert!(!verify_signature(b"s3cret", b"tampered", Some(&sig)));
        assert!(!verify_signature(b"s3cret", body, None));
        assert!(!verify_signature(b"s3cret", body, Some("sha1=abc")));
        assert!(!verify_signature(b"s3cret", body, Some("sha256=zz")));
    }

    #[test]
    fn rejects_unsupported_object_and_bad_json() {
        assert!(matches!(
            parse(br#"{"object":"user","entry":[]}"#, 0),
            Err(ParseError::UnsupportedObject(_))
        ));
        assert!(matches!(parse(b"{not json", 0), Err(ParseError::Json(_))));
        assert!(matches!(
            parse(br#"{"entry":[]}"#, 0),
            Err(ParseError::Json(_))
        ));
    }
}
