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
    #[serde(default)]
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
        match parse_messaging(raw, entry_time) {
            Ok(Some(event)) => events.push(event),
            Ok(None) => {}
            Err((kind, why)) => {
                skips.push(kind, format!("messaging[{i}] of entry {}: {why}", entry.id))
            }
        }
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

fn parse_messaging(raw: &RawValue, entry_time: u64) -> ItemResult {
    let m: RawMessaging = serde_json::from_str(raw.get()).map_err(|e| malformed(e.to_string()))?;
    let timestamp_ms = m.timestamp.unwrap_or(entry_time);
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
        (
            customer,
            EventKind::Postback {
                mid: pb.mid,
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
mod tests {
    use crate::channels::webhook::{parse, SkipKind, WebhookObject};
    use crate::event::{Attachment, EventKind};

    // Payloads follow Meta's Messenger Platform webhook reference.
    const TEXT: &str = r#"{"object":"page","entry":[{"id":"PAGE_ID","time":1583173667623,"messaging":[{"sender":{"id":"PSID_1"},"recipient":{"id":"PAGE_ID"},"timestamp":1583173666767,"message":{"mid":"m_toDnmD9L","text":"What are your hours?"}}]}]}"#;

    #[test]
    fn single_text_message() {
        let w = parse(TEXT.as_bytes(), 0).expect("parses");
        assert_eq!(w.object, WebhookObject::Page);
        assert_eq!(w.entries.len(), 1);
        assert_eq!(w.entries[0].account_id, "PAGE_ID");
        let e = &w.entries[0].events[0];
        assert_eq!(e.customer, "PSID_1");
        assert_eq!(e.timestamp_ms, 1583173666767);
        assert_eq!(
            e.kind,
            EventKind::Message {
                mid: "m_toDnmD9L".into(),
                text: Some("What are your hours?".into()),
                attachments: vec![],
                quick_reply: None
            }
        );
    }

    #[test]
    fn batched_entries_and_events() {
        let body = r#"{"object":"page","entry":[
          {"id":"P1","time":1,"messaging":[
            {"sender":{"id":"A"},"recipient":{"id":"P1"},"timestamp":10,"message":{"mid":"m1","text":"one"}},
            {"sender":{"id":"B"},"recipient":{"id":"P1"},"timestamp":11,"message":{"mid":"m2","text":"two"}}]},
          {"id":"P2","time":2,"messaging":[
            {"sender":{"id":"C"},"recipient":{"id":"P2"},"timestamp":12,"message":{"mid":"m3","text":"three"}}]}]}"#;
        let w = parse(body.as_bytes(), 0).expect("parses");
        assert_eq!(w.entries.len(), 2);
        assert_eq!(w.event_count(), 3);
        let customers: Vec<_> = w
            .entries
            .iter()
            .flat_map(|e| e.events.iter().map(|ev| ev.customer.clone()))
            .collect();
        assert_eq!(customers, ["A", "B", "C"]);
    }

    #[test]
    fn escaped_unicode_text() {
        let body = r#"{"object":"page","entry":[{"id":"P","time":1,"messaging":[{"sender":{"id":"A"},"recipient":{"id":"P"},"timestamp":1,"message":{"mid":"m","text":"\u00bfHola? \ud83d\ude00 caf\u00e9 \"quoted\""}}]}]}"#;
        let w = parse(body.as_bytes(), 0).expect("parses");
        match &w.entries[0].events[0].kind {
            EventKind::Message { text, .. } => {
                assert_eq!(text.as_deref(), Some("¿Hola? 😀 café \"quoted\""))
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn echo_belongs_to_the_recipient() {
        let body = r#"{"object":"page","entry":[{"id":"P","time":1,"messaging":[{"sender":{"id":"P"},"recipient":{"id":"PSID_9"},"timestamp":5,"message":{"is_echo":true,"app_id":1517776481860111,"metadata":"x","mid":"m_echo","text":"from the inbox"}}]}]}"#;
        let w = parse(body.as_bytes(), 0).expect("parses");
        let e = &w.entries[0].events[0];
        assert_eq!(e.customer, "PSID_9");
        assert_eq!(
            e.kind,
            EventKind::Echo {
                mid: "m_echo".into(),
                text: Some("from the inbox".into()),
                app_id: Some(1517776481860111),
                metadata: Some("x".into()),
                own_app: false,
            }
        );
    }

    #[test]
    fn delivery_read_and_postback() {
        let body = r#"{"object":"page","entry":[{"id":"P","time":1,"messaging":[
          {"sender":{"id":"A"},"recipient":{"id":"P"},"timestamp":7,"delivery":{"mids":["mid.1458668856218:ed81099e15d3f4f233"],"watermark":1458668856253}},
          {"sender":{"id":"A"},"recipient":{"id":"P"},"timestamp":8,"read":{"watermark":1458668856253}},
          {"sender":{"id":"A"},"recipient":{"id":"P"},"timestamp":9,"postback":{"mid":"m_pb","title":"Get Started","payload":"GET_STARTED"}}]}]}"#;
        let w = parse(body.as_bytes(), 0).expect("parses");
        let kinds: Vec<_> = w.entries[0].events.iter().map(|e| e.kind.clone()).collect();
        assert_eq!(
            kinds,
            vec![
                EventKind::Delivery {
                    watermark: 1458668856253,
                    mids: vec!["mid.1458668856218:ed81099e15d3f4f233".into()]
                },
                EventKind::Read {
                    watermark: 1458668856253
                },
                EventKind::Postback {
                    mid: Some("m_pb".into()),
                    title: Some("Get Started".into()),
                    payload: "GET_STARTED".into()
                },
            ]
        );
    }

    #[test]
    fn attachments_quick_replies_and_unknown_events() {
        let body = r#"{"object":"instagram","entry":[{"id":"IG","time":1,"messaging":[
          {"sender":{"id":"A"},"recipient":{"id":"IG"},"timestamp":7,"message":{"mid":"m_img","attachments":[{"type":"image","payload":{"url":"https://cdn.example/x.jpg"}}]}},
          {"sender":{"id":"A"},"recipient":{"id":"IG"},"timestamp":8,"message":{"mid":"m_qr","text":"Yes","quick_reply":{"payload":"YES"}}},
          {"sender":{"id":"A"},"recipient":{"id":"IG"},"timestamp":9,"reaction":{"mid":"m_img","action":"react","reaction":"love"}}]}]}"#;
        let w = parse(body.as_bytes(), 0).expect("parses");
        assert_eq!(w.object, WebhookObject::Instagram);
        assert_eq!(w.entries[0].events.len(), 2, "the reaction is skipped");
        match &w.entries[0].events[0].kind {
            EventKind::Message { attachments, .. } => assert_eq!(
                attachments,
                &vec![Attachment {
                    kind: "image".into(),
                    url: Some("https://cdn.example/x.jpg".into()),
                    ..Attachment::default()
                }]
            ),
            other => panic!("unexpected {other:?}"),
        }
        match &w.entries[0].events[1].kind {
            EventKind::Message { quick_reply, .. } => {
                assert_eq!(quick_reply.as_deref(), Some("YES"))
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn instagram_messaging_seen_names_the_message() {
        // Instagram Messaging webhook reference, `messaging_seen`.
        let body = r#"{"object":"instagram","entry":[{"id":"IG","time":1569262486134,"messaging":[{"sender":{"id":"IGSID"},"recipient":{"id":"IG"},"timestamp":1569262485349,"read":{"mid":"aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQxNDA"}}]}]}"#;
        let w = parse(body.as_bytes(), 0).expect("parses");
        assert_eq!(
            w.entries[0].events[0].kind,
            EventKind::Status {
                mid: "aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQxNDA".into(),
                status: crate::event::ReportedStatus::Read,
                error: None,
                part: None,
            }
        );
    }

    #[test]
    fn items_without_their_ids_are_skipped_and_the_rest_kept() {
        let body = r#"{"object":"page","entry":[{"id":"P","time":1,"messaging":[
          {"recipient":{"id":"P"},"timestamp":1,"message":{"mid":"m","text":"x"}},
          {"sender":{"id":"A"},"recipient":{"id":"P"},"timestamp":1,"message":{"text":"x"}},
          {"sender":{"id":"A"},"recipient":{"id":"P"},"timestamp":2,"message":{"mid":"m2","text":"kept"}}]}]}"#;
        let w = parse(body.as_bytes(), 0).expect("only the envelope is refused");
        assert_eq!(w.event_count(), 1);
        let kinds: Vec<_> = w.skipped.iter().map(|s| s.kind).collect();
        assert_eq!(kinds, [SkipKind::MalformedItem, SkipKind::MalformedItem]);
        assert!(
            w.skipped[0].detail.contains("sender.id missing"),
            "{:?}",
            w.skipped
        );
    }

    #[test]
    fn unknown_items_are_skipped_and_counted_known_ignored_ones_are_not() {
        let body = r#"{"object":"page","entry":[{"id":"P","time":1,"messaging":[
          {"sender":{"id":"A"},"recipient":{"id":"P"},"timestamp":1,"brand_new_event":{"x":1}},
          {"sender":{"id":"A"},"recipient":{"id":"P"},"timestamp":1,"optin":{"ref":"r"}},
          {"sender":{"id":"A"},"recipient":{"id":"P"},"timestamp":2,"message":{"mid":"m2","text":"kept"}}]}]}"#;
        let w = parse(body.as_bytes(), 0).expect("parses");
        assert_eq!(w.event_count(), 1);
        assert_eq!(w.skipped.len(), 1, "{:?}", w.skipped);
        assert_eq!(w.skipped[0].kind, SkipKind::UnknownItem);
        assert!(w.skipped[0].detail.contains("brand_new_event"));
    }
}
