//! WhatsApp Cloud API webhooks (`object = "whatsapp_business_account"`):
//! each `changes[]` item with `field = "messages"` carries, for one phone
//! number (`metadata.phone_number_id`, the integration's account), the
//! customers' messages (text, media, location, interactive replies,
//! reactions), their contact names, and statuses of the business's
//! messages (sent, delivered, read, failed).

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::channels::webhook::{ParsedEntry, PlatformEvent, RawChange, RawEntry, SkipKind, Skips};
use crate::event::{Attachment, EventKind, ReportedStatus};

#[derive(Deserialize)]
struct Value<'a> {
    metadata: Metadata,
    /// Read one by one: a contact that cannot be read loses only its name.
    #[serde(default, borrow)]
    contacts: Vec<&'a RawValue>,
    #[serde(default, borrow)]
    messages: Vec<&'a RawValue>,
    #[serde(default, borrow)]
    statuses: Vec<&'a RawValue>,
}

#[derive(Deserialize)]
struct Metadata {
    phone_number_id: String,
}

#[derive(Deserialize)]
struct Contact {
    wa_id: String,
    #[serde(default)]
    profile: Option<Profile>,
}

#[derive(Deserialize)]
struct Profile {
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
struct Message {
    from: String,
    id: String,
    /// Seconds since the epoch, as a string (missing: the arrival time).
    #[serde(default)]
    timestamp: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<Text>,
    #[serde(default)]
    image: Option<Media>,
    #[serde(default)]
    audio: Option<Media>,
    #[serde(default)]
    video: Option<Media>,
    #[serde(default)]
    document: Option<Media>,
    #[serde(default)]
    sticker: Option<Media>,
    #[serde(default)]
    location: Option<Location>,
    #[serde(default)]
    interactive: Option<Interactive>,
    #[serde(default)]
    button: Option<Button>,
    #[serde(default)]
    reaction: Option<Reaction>,
}

#[derive(Deserialize)]
struct Text {
    body: String,
}

#[derive(Deserialize)]
struct Media {
    id: String,
    #[serde(default)]
    mime_type: Option<String>,
    #[serde(default)]
    caption: Option<String>,
    #[serde(default)]
    filename: Option<String>,
}

#[derive(Deserialize)]
struct Location {
    latitude: f64,
    longitude: f64,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    address: Option<String>,
}

#[derive(Deserialize)]
struct Interactive {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    button_reply: Option<Choice>,
    #[serde(default)]
    list_reply: Option<Choice>,
    /// A WhatsApp Flow's answers.
    #[serde(default)]
    nfm_reply: Option<FlowReply>,
}

#[derive(Deserialize)]
struct FlowReply {
    #[serde(default)]
    body: Option<String>,
    /// The form's answers, as JSON text.
    #[serde(default)]
    response_json: Option<String>,
}

#[derive(Deserialize)]
struct Choice {
    id: String,
    title: String,
}

#[derive(Deserialize)]
struct Button {
    #[serde(default)]
    payload: Option<String>,
    text: String,
}

#[derive(Deserialize)]
struct Reaction {
    message_id: String,
    #[serde(default)]
    emoji: Option<String>,
}

#[derive(Deserialize)]
struct Status {
    id: String,
    status: String,
    #[serde(default)]
    timestamp: String,
    recipient_id: String,
    #[serde(default)]
    errors: Vec<StatusError>,
    /// The part id the engine sent with the message.
    #[serde(default)]
    biz_opaque_callback_data: Option<String>,
}

#[derive(Deserialize)]
struct StatusError {
    #[serde(default)]
    code: Option<i64>,
    #[serde(default)]
    title: Option<String>,
}

/// A `timestamp` (seconds, as a string) in milliseconds; one that is not
/// a time milliseconds can hold gives `u64::MAX`, which ingestion takes as
/// the webhook's arrival (`clock::event_time`): the message is still taken.
fn seconds_ms(s: &str) -> u64 {
    s.trim()
        .parse::<u64>()
        .ok()
        .and_then(|t| t.checked_mul(1000))
        .unwrap_or(u64::MAX)
}

/// `changes[]` fields of a WhatsApp Business Account webhook the engine
/// knowingly leaves alone (account, template and quality updates).
const IGNORED_FIELDS: &[&str] = &[
    "account_alerts",
    "account_review_update",
    "account_update",
    "business_capability_update",
    "message_template_quality_update",
    "message_template_status_update",
    "phone_number_name_update",
    "phone_number_quality_update",
    "security",
    "template_category_update",
];

type ItemError = (SkipKind, String);

fn malformed(why: impl Into<String>) -> ItemError {
    (SkipKind::MalformedItem, why.into())
}

/// The events of one WhatsApp entry, one parsed entry per phone number.
/// A change, message or status that cannot be read is skipped (see
/// [`Skips`]); the rest of the entry is kept.
pub(crate) fn parse_entry(entry: RawEntry<'_>, skips: &mut Skips) -> Vec<ParsedEntry> {
    let mut out = Vec::new();
    for (i, raw) in entry.changes.iter().enumerate() {
        let place = format!("changes[{i}] of entry {}", entry.id);
        match parse_change(raw, &place, skips) {
            Ok(Some(parsed)) => out.push(parsed),
            Ok(None) => {}
            Err((kind, why)) => skips.push(kind, format!("{place}: {why}")),
        }
    }
    out
}

fn parse_change(
    raw: &RawValue,
    place: &str,
    skips: &mut Skips,
) -> Result<Option<ParsedEntry>, ItemError> {
    let change: RawChange<'_> =
        serde_json::from_str(raw.get()).map_err(|e| malformed(e.to_string()))?;
    match change.field.as_ref() {
        "messages" => {}
        field if IGNORED_FIELDS.contains(&field) => return Ok(None),
        field => {
            return Err((
                SkipKind::UnknownField,
                format!("field {:?}", field.chars().take(40).collect::<String>()),
            ))
        }
    }
    let value: Value<'_> = serde_json::from_str(change.value.map_or("null", RawValue::get))
        .map_err(|e| malformed(format!("value: {e}")))?;
    let names: HashMap<String, String> = value
        .contacts
        .iter()
        .filter_map(|raw| serde_json::from_str::<Contact>(raw.get()).ok())
        .filter_map(|c| Some((c.wa_id, c.profile?.name?)))
        .collect();
    let mut events = Vec::with_capacity(value.messages.len() + value.statuses.len());
    for (j, raw) in value.messages.iter().enumerate() {
        match message(raw, &names) {
            Ok(Some(event)) => events.push(event),
            Ok(None) => {}
            Err((kind, why)) => skips.push(kind, format!("{place}, messages[{j}]: {why}")),
        }
    }
    for (j, raw) in value.statuses.iter().enumerate() {
        match status(raw) {
            Ok(event) => events.push(event),
            Err((kind, why)) => skips.push(kind, format!("{place}, statuses[{j}]: {why}")),
        }
    }
    Ok(Some(ParsedEntry {
        account_id: value.metadata.phone_number_id,
        events,
    }))
}

fn attachment(kind: &str, media: Media) -> Attachment {
    Attachment {
        kind: kind.to_string(),
        url: None,
        id: Some(media.id),
        mime_type: media.mime_type,
        caption: media.caption.or(media.filename),
    }
}

/// Message types that carry nothing from the customer to answer (system
/// notices, disappearing-message notices, a first opening of the chat).
/// Every other type is something the customer sent, answered even when the
/// engine cannot read it (a type WhatsApp cannot show, a contact card, an
/// order, a type newer than this engine).
const IGNORED_TYPES: &[&str] = &["system", "ephemeral", "request_welcome"];

/// Longest form answer passed on from a WhatsApp Flow, in characters.
const MAX_FLOW_ANSWER: usize = 2000;

/// What the customer sent, when the engine cannot read more of it than its
/// type.
fn unreadable(kind: &str) -> Attachment {
    Attachment {
        kind: kind.trim().chars().take(40).collect(),
        ..Attachment::default()
    }
}

fn message(
    raw: &RawValue,
    names: &HashMap<String, String>,
) -> Result<Option<PlatformEvent>, ItemError> {
    let m: Message = serde_json::from_str(raw.get()).map_err(|e| malformed(e.to_string()))?;
    let timestamp_ms = seconds_ms(&m.timestamp);
    let mut text = None;
    let mut attachments = Vec::new();
    let mut quick_reply = None;
    let kind = match m.kind.as_str() {
        "text" => {
            text = m.text.map(|t| t.body);
            None
        }
        "image" | "audio" | "video" | "document" | "sticker" => {
            let media = match m.kind.as_str() {
                "image" => m.image,
                "audio" => m.audio,
                "video" => m.video,
                "document" => m.document,
                _ => m.sticker,
            }
            .ok_or_else(|| {
                malformed(format!("{} message without its {} object", m.kind, m.kind))
            })?;
            attachments.push(attachment(&m.kind, media));
            None
        }
        "location" => {
            let l = m
                .location
                .ok_or_else(|| malformed("location message without location"))?;
            let place = [l.name, l.address]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>();
            attachments.push(Attachment {
                kind: "location".into(),
                url: Some(format!(
                    "https://maps.google.com/?q={},{}",
                    l.latitude, l.longitude
                )),
                caption: (!place.is_empty()).then(|| place.join(", ")),
                ..Attachment::default()
            });
            None
        }
        "interactive" => {
            let i = m
                .interactive
                .ok_or_else(|| malformed("interactive message without interactive"))?;
            if let Some(choice) = i.button_reply.or(i.list_reply) {
                text = Some(choice.title);
                quick_reply = Some(choice.id);
            } else if let Some(flow) = i.nfm_reply {
                text = flow.body.filter(|b| !b.trim().is_empty());
                attachments.push(Attachment {
                    kind: "form answer".into(),
                    caption: flow
                        .response_json
                        .map(|j| j.chars().take(MAX_FLOW_ANSWER).collect()),
                    ..Attachment::default()
                });
            } else {
                attachments.push(unreadable(&format!("interactive {}", i.kind)));
            }
            None
        }
        "button" => {
            let b = m
                .button
                .ok_or_else(|| malformed("button message without button"))?;
            quick_reply = b.payload;
            text = Some(b.text);
            None
        }
        "reaction" => {
            let r = m
                .reaction
                .ok_or_else(|| malformed("reaction message without reaction"))?;
            Some(EventKind::Reaction {
                mid: m.id.clone(),
                target: r.message_id,
                emoji: r.emoji.filter(|e| !e.is_empty()),
            })
        }
        ignored if IGNORED_TYPES.contains(&ignored) => return Ok(None),
        "unsupported" | "unknown" => {
            attachments.push(unreadable("message WhatsApp cannot show"));
            None
        }
        "contacts" => {
            attachments.push(unreadable("contact card"));
            None
        }
        other => {
            attachments.push(unreadable(other));
            None
        }
    };
    let kind = kind.unwrap_or(EventKind::Message {
        mid: m.id,
        text,
        attachments,
        quick_reply,
    });
    Ok(Some(PlatformEvent {
        customer_name: names.get(&m.from).cloned(),
        customer: m.from,
        timestamp_ms,
        kind,
    }))
}

fn status(raw: &RawValue) -> Result<PlatformEvent, ItemError> {
    let s: Status = serde_json::from_str(raw.get()).map_err(|e| malformed(e.to_string()))?;
    let status = match s.status.as_str() {
        "sent" => ReportedStatus::Sent,
        "delivered" => ReportedStatus::Delivered,
        "read" => ReportedStatus::Read,
        "failed" => ReportedStatus::Failed,
        other => {
            return Err((
                SkipKind::UnknownStatus,
                format!("status {:?}", other.chars().take(40).collect::<String>()),
            ))
        }
    };
    let error = s.errors.into_iter().next().map(|e| {
        format!(
            "{} (code {})",
            e.title.unwrap_or_else(|| "failed".into()),
            e.code.unwrap_or(0)
        )
    });
    Ok(PlatformEvent {
        customer: s.recipient_id,
        timestamp_ms: seconds_ms(&s.timestamp),
        customer_name: None,
        kind: EventKind::Status {
            mid: s.id,
            status,
            error,
            part: s.biz_opaque_callback_data,
        },
    })
}

#[cfg(test)]
mod tests;
