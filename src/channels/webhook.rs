//! Meta's webhook envelope: the `X-Hub-Signature-256` check and the
//! `{"object": ..., "entry": [...]}` batch, split into per-account entries
//! of platform events.
//!
//! Only the envelope can make a webhook a 400 (not JSON, an `object` the
//! engine does not serve, no `entry`): Meta redelivers a refused body as it
//! is, so one item the engine does not understand must not hold back the
//! rest of the batch. Such items are skipped and reported in
//! [`ParsedWebhook::skipped`]; the platform modules parse each entry, each
//! `messaging` item and each `changes` item on its own.

use std::borrow::Cow;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use super::{messenger, whatsapp};
use crate::event::EventKind;
use crate::telemetry::Label;

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

/// What kind of batch item was skipped (the `kind` label of
/// `switchboard_webhook_items_skipped_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SkipKind {
    /// An entry without the fields every entry has (`id`).
    MalformedEntry,
    /// A known kind of item with a required field missing or mistyped.
    MalformedItem,
    /// A `messaging` item of a kind the engine does not know.
    UnknownItem,
    /// A `changes[]` field the engine does not handle.
    UnknownField,
    /// A Page's `standby` item: a message in a thread another app of the
    /// Page controls (Meta's handover protocol); that app answers it.
    Standby,
    /// A WhatsApp status value the engine does not know.
    UnknownStatus,
}

impl Label for SkipKind {
    fn label(self) -> &'static str {
        match self {
            Self::MalformedEntry => "malformed_entry",
            Self::MalformedItem => "malformed_item",
            Self::UnknownItem => "unknown_item",
            Self::UnknownField => "unknown_field",
            Self::Standby => "standby",
            Self::UnknownStatus => "unknown_status",
        }
    }
}

/// A batch item the engine did not take, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Skipped {
    pub kind: SkipKind,
    /// Where and what, for the debug log (no message text).
    pub detail: String,
}

/// Collects the items a parse skipped.
#[derive(Debug, Default)]
pub(crate) struct Skips(pub(crate) Vec<Skipped>);

impl Skips {
    pub(crate) fn push(&mut self, kind: SkipKind, detail: impl Into<String>) {
        self.0.push(Skipped {
            kind,
            detail: detail.into(),
        });
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ParsedWebhook {
    pub object: WebhookObject,
    pub entries: Vec<ParsedEntry>,
    /// Items left out; the rest of the batch is accepted as usual.
    pub skipped: Vec<Skipped>,
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
    object: Cow<'a, str>,
    #[serde(borrow)]
    entry: Option<Vec<&'a RawValue>>,
}

/// One `entry` of a Page, Instagram or WhatsApp webhook; its items are
/// parsed one by one by the platform modules.
#[derive(Deserialize)]
pub(crate) struct RawEntry<'a> {
    #[serde(deserialize_with = "id_string")]
    pub(crate) id: String,
    /// Only a fallback for items without their own time: one that cannot
    /// be read is left out, never the entry.
    #[serde(default, deserialize_with = "lenient_time")]
    pub(crate) time: Option<u64>,
    #[serde(default, borrow)]
    pub(crate) messaging: Vec<&'a RawValue>,
    /// Items of threads another app of the Page controls: counted, not taken.
    #[serde(default, borrow)]
    pub(crate) standby: Vec<&'a RawValue>,
    /// `changes[]`: comments, feed items, WhatsApp messages and statuses.
    #[serde(default, borrow)]
    pub(crate) changes: Vec<&'a RawValue>,
}

/// One `changes[]` item: its `field` and the `value` its module reads.
#[derive(Deserialize)]
pub(crate) struct RawChange<'a> {
    #[serde(borrow)]
    pub(crate) field: Cow<'a, str>,
    #[serde(borrow)]
    pub(crate) value: Option<&'a RawValue>,
}

/// Meta sends most ids as strings, a few as numbers; accept both.
pub(crate) fn id_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        S(String),
        N(u64),
    }
    Ok(match Id::deserialize(d)? {
        Id::S(s) => s,
        Id::N(n) => n.to_string(),
    })
}

/// A time as a whole number, a number with a fraction or a string of
/// digits; anything else is no time (`None`) rather than an unreadable item.
pub(crate) fn lenient_time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Time {
        N(u64),
        F(f64),
        S(String),
        Other(serde::de::IgnoredAny),
    }
    Ok(match Time::deserialize(d)? {
        Time::N(n) => Some(n),
        // Saturating: a negative, huge or not-a-number value is out of range.
        Time::F(f) if f.is_finite() && f >= 0.0 => Some(f as u64),
        Time::S(s) => s.trim().parse().ok(),
        Time::F(_) | Time::Other(_) => None,
    })
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
    let Some(raw_entries) = envelope.entry else {
        return Err(ParseError::Invalid("no \"entry\" list".into()));
    };
    if raw_entries.len() > MAX_ENTRIES {
        return Err(ParseError::Invalid(format!(
            "{} entries, more than the {MAX_ENTRIES} Meta sends",
            raw_entries.len()
        )));
    }
    let mut entries = Vec::with_capacity(raw_entries.len());
    let mut skips = Skips::default();
    for (i, raw) in raw_entries.into_iter().enumerate() {
        let entry: RawEntry<'_> = match serde_json::from_str(raw.get()) {
            Ok(e) => e,
            Err(e) => {
                skips.push(SkipKind::MalformedEntry, format!("entry[{i}]: {e}"));
                continue;
            }
        };
        match object {
            WebhookObject::Whatsapp => entries.extend(whatsapp::parse_entry(entry, &mut skips)),
            _ => entries.push(messenger::parse_entry(entry, object, now_ms, &mut skips)),
        }
    }
    Ok(ParsedWebhook {
        object,
        entries,
        skipped: skips.0,
    })
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

/// Compares secrets without revealing, by timing, how much of them matched
/// or how long the expected one is: both sides are hashed to 32 bytes
/// first, and the digests are compared in full.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let (x, y) = (Sha256::digest(a), Sha256::digest(b));
    x.iter()
        .zip(y.iter())
        .fold(0u8, |acc, (p, q)| acc | (p ^ q))
        == 0
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
    fn secrets_compare_equal_only_when_equal() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
    }

    #[test]
    fn only_the_envelope_is_refused() {
        assert!(matches!(
            parse(br#"{"object":"user","entry":[]}"#, 0),
            Err(ParseError::UnsupportedObject(_))
        ));
        assert!(matches!(parse(b"{not json", 0), Err(ParseError::Json(_))));
        assert!(matches!(
            parse(br#"{"entry":[]}"#, 0),
            Err(ParseError::Json(_))
        ));
        assert!(matches!(
            parse(br#"{"object":"page"}"#, 0),
            Err(ParseError::Invalid(_))
        ));
    }

    #[test]
    fn an_entry_without_an_id_is_skipped_and_the_rest_kept() {
        let body = br#"{"object":"page","entry":[
          {"time":1,"messaging":[]},
          {"id":"P","time":1,"messaging":[{"sender":{"id":"A"},"recipient":{"id":"P"},"timestamp":1,"message":{"mid":"m1","text":"hi"}}]}]}"#;
        let w = parse(body, 0).expect("parses");
        assert_eq!(w.event_count(), 1);
        assert_eq!(w.skipped.len(), 1);
        assert_eq!(w.skipped[0].kind, SkipKind::MalformedEntry);
    }
}

/// Timestamps too large to be milliseconds: found by the `meta_webhook`
/// fuzz target (a multiplication overflow in debug builds, a wrapped time
/// in release).
#[cfg(test)]
mod fuzz_finds {
    use super::parse;

    #[test]
    fn a_whatsapp_timestamp_past_u64_milliseconds_is_read_without_a_panic() {
        let body = r#"{"object":"whatsapp_business_account","entry":[{"id":"WABA","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"phone_number_id":"PHONE_1"},"messages":[{"from":"491","id":"wamid.A","timestamp":"18446744073709551","type":"text","text":{"body":"hi"}}]}}]}]}"#;
        // The message is kept (its time taken as the webhook's arrival).
        let parsed = parse(body.as_bytes(), 1).unwrap();
        assert_eq!(parsed.event_count(), 1);
        // Past what milliseconds can hold, or not a number at all: kept too.
        for timestamp in ["18446744073709552", "1749416383.5", ""] {
            let body = body.replace("18446744073709551", timestamp);
            let parsed = parse(body.as_bytes(), 1).unwrap();
            assert_eq!(parsed.event_count(), 1, "{timestamp:?}");
        }
    }

    #[test]
    fn a_comment_time_past_u64_milliseconds_takes_the_entrys_time() {
        let body = r#"{"object":"page","entry":[{"id":"PAGE","time":5,"changes":[{"field":"feed","value":{"from":{"id":"U1","name":"Ann"},"item":"comment","verb":"add","comment_id":"1_2","post_id":"PAGE_1","message":"open?","created_time":18446744073709551}}]}]}"#;
        let parsed = parse(body.as_bytes(), 1).unwrap();
        assert_eq!(parsed.event_count(), 1);
    }
}
