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
    #[serde(default)]
    contacts: Vec<Contact>,
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
    /// Seconds since the epoch, as a string.
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
    #[serde(default)]
    button_reply: Option<Choice>,
    #[serde(default)]
    list_reply: Option<Choice>,
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

fn seconds_ms(s: &str) -> Result<u64, String> {
    s.parse::<u64>()
        .map(|t| t * 1000)
        .map_err(|_| format!("timestamp {s:?} is not a number of seconds"))
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
        .into_iter()
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

/// Message types that carry nothing to answer (system notices, deleted
/// messages, types the platform itself cannot show).
const IGNORED_TYPES: &[&str] = &[
    "system",
    "unsupported",
    "unknown",
    "ephemeral",
    "request_welcome",
];

fn message(
    raw: &RawValue,
    names: &HashMap<String, String>,
) -> Result<Option<PlatformEvent>, ItemError> {
    let m: Message = serde_json::from_str(raw.get()).map_err(|e| malformed(e.to_string()))?;
    let timestamp_ms = seconds_ms(&m.timestamp).map_err(malformed)?;
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
            let choice = i
                .button_reply
                .or(i.list_reply)
                .ok_or_else(|| malformed("interactive message without a button or list reply"))?;
            text = Some(choice.title);
            quick_reply = Some(choice.id);
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
        other => {
            return Err((
                SkipKind::UnknownMessageType,
                format!("type {:?}", other.chars().take(40).collect::<String>()),
            ))
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
        timestamp_ms: seconds_ms(&s.timestamp).map_err(malformed)?,
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
mod tests {
    use crate::channels::webhook::{parse, SkipKind, WebhookObject};
    use crate::event::{Attachment, EventKind, ReportedStatus};

    /// A webhook in the Cloud API reference's shape around `value`'s
    /// `messages` or `statuses`.
    fn webhook(items: &str) -> String {
        format!(
            r#"{{"object":"whatsapp_business_account","entry":[{{"id":"102290129340398","changes":[{{"value":{{"messaging_product":"whatsapp","metadata":{{"display_phone_number":"15550783881","phone_number_id":"106540352242922"}},"contacts":[{{"profile":{{"name":"Sheena Nelson"}},"wa_id":"16505551234"}}],{items}}},"field":"messages"}}]}}]}}"#
        )
    }

    fn only_event(items: &str) -> crate::channels::webhook::PlatformEvent {
        let w = parse(webhook(items).as_bytes(), 0).expect("parses");
        assert_eq!(w.object, WebhookObject::Whatsapp);
        assert_eq!(w.entries[0].account_id, "106540352242922");
        assert_eq!(w.entries[0].events.len(), 1);
        w.entries[0].events[0].clone()
    }

    #[test]
    fn text_with_the_contact_name() {
        let e = only_event(
            r#""messages":[{"from":"16505551234","id":"wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=","timestamp":"1749416383","type":"text","text":{"body":"Does it come in another color?"}}]"#,
        );
        assert_eq!(e.customer, "16505551234");
        assert_eq!(e.customer_name.as_deref(), Some("Sheena Nelson"));
        assert_eq!(e.timestamp_ms, 1_749_416_383_000);
        assert_eq!(
            e.kind,
            EventKind::Message {
                mid: "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=".into(),
                text: Some("Does it come in another color?".into()),
                attachments: vec![],
                quick_reply: None
            }
        );
    }

    #[test]
    fn media_are_kept_as_references() {
        for (kind, object, caption) in [
            (
                "image",
                r#""image":{"caption":"Is this in stock?","mime_type":"image/jpeg","sha256":"SHA","id":"1003383421387256"}"#,
                Some("Is this in stock?"),
            ),
            (
                "audio",
                r#""audio":{"mime_type":"audio/ogg; codecs=opus","sha256":"SHA","id":"1003383421387256","voice":true}"#,
                None,
            ),
            (
                "video",
                r#""video":{"mime_type":"video/mp4","sha256":"SHA","id":"1003383421387256"}"#,
                None,
            ),
            (
                "document",
                r#""document":{"caption":"Invoice","filename":"invoice.pdf","mime_type":"application/pdf","sha256":"SHA","id":"1003383421387256"}"#,
                Some("Invoice"),
            ),
        ] {
            let e = only_event(&format!(
                r#""messages":[{{"from":"16505551234","id":"wamid.M","timestamp":"1749416383","type":"{kind}",{object}}}]"#
            ));
            match e.kind {
                EventKind::Message {
                    attachments, text, ..
                } => {
                    assert_eq!(text, None);
                    assert_eq!(attachments.len(), 1);
                    assert_eq!(attachments[0].kind, kind);
                    assert_eq!(attachments[0].id.as_deref(), Some("1003383421387256"));
                    assert_eq!(attachments[0].url, None);
                    assert_eq!(attachments[0].caption.as_deref(), caption);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn location_interactive_replies_and_reactions() {
        let e = only_event(
            r#""messages":[{"from":"16505551234","id":"wamid.L","timestamp":"1749416383","type":"location","location":{"address":"1 Hacker Way, Menlo Park, CA 94025","latitude":37.483307,"longitude":-122.148981,"name":"Main Office"}}]"#,
        );
        match e.kind {
            EventKind::Message { attachments, .. } => assert_eq!(
                attachments,
                vec![Attachment {
                    kind: "location".into(),
                    url: Some("https://maps.google.com/?q=37.483307,-122.148981".into()),
                    caption: Some("Main Office, 1 Hacker Way, Menlo Park, CA 94025".into()),
                    ..Attachment::default()
                }]
            ),
            other => panic!("unexpected {other:?}"),
        }
        for interactive in [
            r#"{"type":"button_reply","button_reply":{"id":"change-button","title":"Change"}}"#,
            r#"{"type":"list_reply","list_reply":{"id":"change-button","title":"Change","description":"Pick another"}}"#,
        ] {
            let e = only_event(&format!(
                r#""messages":[{{"context":{{"from":"15550783881","id":"wamid.CTX"}},"from":"16505551234","id":"wamid.I","timestamp":"1749416383","type":"interactive","interactive":{interactive}}}]"#
            ));
            match e.kind {
                EventKind::Message {
                    text, quick_reply, ..
                } => {
                    assert_eq!(text.as_deref(), Some("Change"));
                    assert_eq!(quick_reply.as_deref(), Some("change-button"));
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        let e = only_event(
            r#""messages":[{"from":"16505551234","id":"wamid.R","timestamp":"1749416383","type":"reaction","reaction":{"message_id":"wamid.OURS","emoji":"\ud83d\ude00"}}]"#,
        );
        assert_eq!(
            e.kind,
            EventKind::Reaction {
                mid: "wamid.R".into(),
                target: "wamid.OURS".into(),
                emoji: Some("😀".into())
            }
        );
    }

    #[test]
    fn statuses_report_on_the_business_messages() {
        let w = parse(
            webhook(r#""statuses":[{"id":"wamid.S1","status":"delivered","timestamp":"1750263773","recipient_id":"16505551234","biz_opaque_callback_data":"sb1.part","pricing":{"billable":true,"pricing_model":"PMP","category":"utility"}},{"id":"wamid.S2","status":"failed","timestamp":"1750263774","recipient_id":"16505551234","errors":[{"code":131047,"title":"Re-engagement message","message":"Re-engagement message","error_data":{"details":"Message failed to send because more than 24 hours have passed since the customer last replied to this number."}}]}]"#)
                .as_bytes(),
            0,
        )
        .expect("parses");
        let kinds: Vec<_> = w.entries[0].events.iter().map(|e| e.kind.clone()).collect();
        assert_eq!(
            kinds,
            vec![
                EventKind::Status {
                    mid: "wamid.S1".into(),
                    status: ReportedStatus::Delivered,
                    error: None,
                    part: Some("sb1.part".into()),
                },
                EventKind::Status {
                    mid: "wamid.S2".into(),
                    status: ReportedStatus::Failed,
                    error: Some("Re-engagement message (code 131047)".into()),
                    part: None,
                },
            ]
        );
        assert_eq!(w.entries[0].events[0].customer, "16505551234");
    }

    #[test]
    fn odd_items_are_skipped_with_their_place_and_the_batch_kept() {
        let body = webhook(
            r#""messages":[{"from":"16505551234","id":"wamid.X","timestamp":"soon","type":"text","text":{"body":"hi"}},{"from":"16505551234","id":"wamid.O","timestamp":"1749416383","type":"order","order":{"catalog_id":"1"}},{"from":"16505551234","id":"wamid.OK","timestamp":"1749416383","type":"text","text":{"body":"kept"}}],"statuses":[{"id":"wamid.S3","status":"warning","timestamp":"1750263773","recipient_id":"16505551234"},{"id":"wamid.S4","status":"read","timestamp":"1750263773","recipient_id":"16505551234"}]"#,
        );
        let w = parse(body.as_bytes(), 0).expect("only the envelope is refused");
        let mids: Vec<_> = w.entries[0]
            .events
            .iter()
            .map(|e| match &e.kind {
                EventKind::Message { mid, .. } | EventKind::Status { mid, .. } => mid.clone(),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(mids, ["wamid.OK", "wamid.S4"]);
        let kinds: Vec<_> = w.skipped.iter().map(|s| s.kind).collect();
        assert_eq!(
            kinds,
            [
                SkipKind::MalformedItem,
                SkipKind::UnknownMessageType,
                SkipKind::UnknownStatus
            ]
        );
        assert!(
            w.skipped[0].detail.contains("changes[0]"),
            "{:?}",
            w.skipped
        );
        assert!(
            w.skipped[0].detail.contains("messages[0]"),
            "{:?}",
            w.skipped
        );
    }

    #[test]
    fn unknown_change_fields_are_skipped_known_ones_ignored() {
        let body = r#"{"object":"whatsapp_business_account","entry":[{"id":"WABA","changes":[{"field":"message_template_status_update","value":{"event":"APPROVED"}},{"field":"brand_new_field","value":{}}]}]}"#;
        let w = parse(body.as_bytes(), 0).expect("parses");
        assert_eq!(w.event_count(), 0);
        assert_eq!(w.skipped.len(), 1);
        assert_eq!(w.skipped[0].kind, SkipKind::UnknownField);
    }
}
