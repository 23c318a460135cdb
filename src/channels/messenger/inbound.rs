//! Parsing of `entry[].messaging[]` events (Messenger and Instagram DMs):
//! messages, echoes, postbacks, deliveries and reads (Instagram's
//! `messaging_seen` names the message read). Event types the engine does
//! not act on (reactions, referrals, opt-ins, ...) are skipped.

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::channels::comments;
use crate::channels::webhook::{
    id_string, ParsedEntry, PlatformEvent, RawEntry, SkipKind, Skips, WebhookObject,
};
use crate::event::{Attachment, EventKind, ReportedStatus};

#[derive(Deserialize)]
struct RawMessaging {
    #[serde(default)]
    sender: Option<Party>,
    #[serde(default)]
    recipient: Option<Party>,
    #[serde(default, deserialize_with = "crate::channels::webhook::lenient_time")]
    timestamp: Option<u64>,
    #[serde(default)]
    message: Option<RawMessage>,
    #[serde(default)]
    postback: Option<RawPostback>,
    #[serde(default)]
    delivery: Option<RawDelivery>,
    #[serde(default)]
    read: Option<RawRead>,
}

#[derive(Deserialize)]
struct Party {
    #[serde(deserialize_with = "id_string")]
    id: String,
}

#[derive(Deserialize)]
struct RawMessage {
    mid: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    is_echo: bool,
    #[serde(default)]
    is_deleted: bool,
    #[serde(default)]
    app_id: Option<u64>,
    #[serde(default)]
    metadata: Option<String>,
    #[serde(default)]
    attachments: Vec<RawAttachment>,
    #[serde(default)]
    quick_reply: Option<RawQuickReply>,
}

#[derive(Deserialize)]
struct RawAttachment {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    payload: Option<RawAttachmentPayload>,
}

#[derive(Deserialize)]
struct RawAttachmentPayload {
    #[serde(default)]
    url: Option<String>,
}

#[derive(Deserialize)]
struct RawQuickReply {
    payload: String,
}

#[derive(Deserialize)]
struct RawPostback {
    #[serde(default)]
    mid: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    payload: Option<String>,
}

#[derive(Deserialize)]
struct RawDelivery {
    #[serde(default)]
    mids: Vec<String>,
    #[serde(default)]
    watermark: Option<u64>,
}

#[derive(Deserialize)]
struct RawRead {
    #[serde(default)]
    watermark: Option<u64>,
    /// Instagram: the message seen.
    #[serde(default)]
    mid: Option<String>,
}

/// `messaging` item fields of events the engine knowingly leaves alone
/// (reactions on Messenger, opt-ins, referrals, handover protocol, ...).
const IGNORED_ITEMS: &[&str] = &[
    "reaction",
    "optin",
    "referral",
    "account_linking",
    "pass_thread_control",
    "take_thread_control",
    "request_thread_control",
    "app_roles",
    "policy_enforcement",
    "game_play",
    "message_edit",
    "response_feedback",
    "messaging_feedback",
    "checkout_update",
    "payment",
];

/// The `messaging` events and comment `changes` of a Page or Instagram
/// entry; an item that cannot be read is skipped (see [`Skips`]).
pub(crate) fn parse_entry(
    entry: RawEntry<'_>,
    object: WebhookObject,
    now_ms: u64,
    skips: &mut Skips,
) -> ParsedEntry {
    // Milliseconds for messaging; Instagram's `comments` changes give
    // seconds.
    let entry_time = entry.time.map_or(now_ms, crate::clock::seconds_or_ms);
    let mut events = Vec::with_capacity(entry.messaging.len());
    for (i, raw) in entry.messaging.iter().enumerate() {
        match parse_messaging(raw, entry_time, entry.time.is_some()) {
            Ok(Some(event)) => events.push(event),
            Ok(None) => {}
            Err((kind, why)) => {
                skips.push(kind, format!("messaging[{i}] of entry {}: {why}", entry.id))
            }
        }
    }
    for i in 0..entry.standby.len() {
        skips.push(
            SkipKind::Standby,
            format!(
                "standby[{i}] of entry {}: another app controls the thread",
                entry.id
            ),
        );
    }
    for (i, raw) in entry.changes.iter().enumerate() {
        match comments::parse_change(object, &entry.id, raw, entry_time) {
            Ok(Some(event)) => events.push(event),
            Ok(None) => {}
            Err((kind, why)) => {
                skips.push(kind, format!("changes[{i}] of entry {}: {why}", entry.id))
            }
        }
    }
    ParsedEntry {
        account_id: entry.id,
        events,
    }
}

type ItemResult = Result<Option<PlatformEvent>, (SkipKind, String)>;

fn malformed(why: impl Into<String>) -> (SkipKind, String) {
    (SkipKind::MalformedItem, why.into())
}

/// An item with none of the event fields the engine handles: one it
/// knowingly leaves alone, or one it does not know (skipped and counted).
fn unknown_item(raw: &RawValue) -> ItemResult {
    let fields: std::collections::BTreeMap<&str, serde::de::IgnoredAny> =
        serde_json::from_str(raw.get()).unwrap_or_default();
    if fields.keys().any(|k| IGNORED_ITEMS.contains(k)) {
        return Ok(None);
    }
    let named: Vec<&str> = fields
        .keys()
        .copied()
        .filter(|k| !matches!(*k, "sender" | "recipient" | "timestamp"))
        .take(4)
        .collect();
    Err((
        SkipKind::UnknownItem,
        format!("no event field the engine knows (has {named:?})"),
    ))
}

fn parse_messaging(raw: &RawValue, entry_time: u64, has_entry_time: bool) -> ItemResult {
    let m: RawMessaging = serde_json::from_str(raw.get()).map_err(|e| malformed(e.to_string()))?;
    let timestamp_ms = m.timestamp.map_or(entry_time, crate::clock::seconds_or_ms);
    let sender = m.sender.map(|p| p.id);
    let recipient = m.recipient.map(|p| p.id);
    let customer_from = |who: Option<String>, role: &str| {
        who.filter(|s| !s.is_empty())
            .ok_or_else(|| malformed(format!("{role}.id missing")))
    };
    let (customer, kind) = if let Some(msg) = m.message {
        if msg.is_deleted {
            return Ok(None);
        }
        let mid = msg
            .mid
            .filter(|s| !s.is_empty())
            .ok_or_else(|| malformed("message.mid missing"))?;
        if msg.is_echo {
            // The page sent it: the customer is the recipient.
            let customer = customer_from(recipient, "recipient")?;
            (
                customer,
                EventKind::Echo {
                    mid,
                    text: msg.text,
                    app_id: msg.app_id,
                    metadata: msg.metadata,
                    own_app: false,
                },
            )
        } else {
            let customer = customer_from(sender, "sender")?;
            let attachments = msg
                .attachments
                .into_iter()
                .map(|a| Attachment {
                    kind: a.kind,
                    url: a.payload.and_then(|p| p.url),
                    ..Attachment::default()
                })
                .collect();
            (
                customer,
                EventKind::Message {
                    mid,
                    text: msg.text,
                    attachments,
                    quick_reply: msg.quick_reply.map(|q| q.payload),
                },
            )
        }
    } else if let Some(pb) = m.postback {
        let customer = customer_from(sender, "sender")?;
        let payload = pb.payload.or_else(|| pb.title.clone()).unwrap_or_default();
        // Without its mid a postback is told apart by its time; without a
        // time of Meta's either, by its own bytes, so that Meta's redelivery
        // of it is recognised (the arrival time differs every time).
        let mid = pb.mid.filter(|m| !m.is_empty()).or_else(|| {
            (m.timestamp.is_none() && !has_entry_time).then(|| {
                use sha2::Digest;
                let digest = sha2::Sha256::digest(raw.get().as_bytes());
                format!("postback-{}", hex::encode(&digest[..12]))
            })
        });
        (
            customer,
            EventKind::Postback {
                mid,
                title: pb.title,
                payload,
            },
        )
    } else if let Some(d) = m.delivery {
        let customer = customer_from(sender, "sender")?;
        (
            customer,
            EventKind::Delivery {
                watermark: d.watermark.unwrap_or(timestamp_ms),
                mids: d.mids,
            },
        )
    } else if let Some(r) = m.read {
        let customer = customer_from(sender, "sender")?;
        let kind = match (r.watermark, r.mid) {
            (None, Some(mid)) => EventKind::Status {
                mid,
                status: ReportedStatus::Read,
                error: None,
                part: None,
            },
            (watermark, _) => EventKind::Read {
                watermark: watermark.unwrap_or(timestamp_ms),
            },
        };
        (customer, kind)
    } else {
        return unknown_item(raw);
    };
    Ok(Some(PlatformEvent {
        customer,
        timestamp_ms,
        kind,
        customer_name: None,
    }))
}

#[cfg(test)]
mod tests;
