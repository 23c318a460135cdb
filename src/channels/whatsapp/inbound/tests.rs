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
        r#""messages":[{"from":"16505551234","timestamp":"1749416383","type":"text","text":{"body":"no id"}},{"from":"16505551234","id":"wamid.X","timestamp":"soon","type":"text","text":{"body":"hi"}},{"from":"16505551234","id":"wamid.O","timestamp":"1749416383","type":"order","order":{"catalog_id":"1"}},{"from":"16505551234","id":"wamid.OK","timestamp":"1749416383","type":"text","text":{"body":"kept"}}],"statuses":[{"id":"wamid.S3","status":"warning","timestamp":"1750263773","recipient_id":"16505551234"},{"id":"wamid.S4","status":"read","timestamp":"1750263773","recipient_id":"16505551234"}]"#,
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
    // A time that cannot be read is the arrival's (see `clock::event_time`):
    // the customer's message is still taken.
    // An order is something the customer sent: taken, by its type.
    assert_eq!(mids, ["wamid.X", "wamid.O", "wamid.OK", "wamid.S4"]);
    assert_eq!(w.entries[0].events[0].timestamp_ms, u64::MAX);
    let EventKind::Message { attachments, .. } = &w.entries[0].events[1].kind else {
        panic!("{:?}", w.entries[0].events[1]);
    };
    assert_eq!(attachments[0].kind, "order");
    let kinds: Vec<_> = w.skipped.iter().map(|s| s.kind).collect();
    assert_eq!(kinds, [SkipKind::MalformedItem, SkipKind::UnknownStatus]);
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

/// Whatever the customer sent is answered, even what the engine cannot
/// read: a Flow's form answers, a type WhatsApp cannot show, a contact
/// card, a type newer than the engine. System notices are not.
#[test]
fn every_customer_message_type_is_taken_and_notices_are_not() {
    let body = webhook(
        r#""messages":[{"from":"1","id":"wamid.F","timestamp":"1749416383","type":"interactive","interactive":{"type":"nfm_reply","nfm_reply":{"name":"flow","body":"Sent","response_json":"{\"size\":\"M\"}"}}},{"from":"1","id":"wamid.U","timestamp":"1749416383","type":"unsupported","errors":[{"code":131051,"title":"Message type unknown"}]},{"from":"1","id":"wamid.C","timestamp":"1749416383","type":"contacts","contacts":[{"name":{"formatted_name":"Sam"}}]},{"from":"1","id":"wamid.N","timestamp":"1749416383","type":"brand_new_type","brand_new_type":{}},{"from":"1","id":"wamid.S","timestamp":"1749416383","type":"system","system":{"body":"changed number"}}]"#,
    );
    let w = parse(body.as_bytes(), 0).expect("parses");
    assert!(w.skipped.is_empty(), "{:?}", w.skipped);
    let got: Vec<(String, Option<String>, String, Option<String>)> = w.entries[0]
        .events
        .iter()
        .map(|e| match &e.kind {
            EventKind::Message {
                mid,
                text,
                attachments,
                ..
            } => (
                mid.clone(),
                text.clone(),
                attachments[0].kind.clone(),
                attachments[0].caption.clone(),
            ),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    let want = |mid: &str, text: Option<&str>, kind: &str, caption: Option<&str>| {
        (
            mid.to_string(),
            text.map(str::to_string),
            kind.to_string(),
            caption.map(str::to_string),
        )
    };
    assert_eq!(
        got,
        [
            want(
                "wamid.F",
                Some("Sent"),
                "form answer",
                Some(r#"{"size":"M"}"#)
            ),
            want("wamid.U", None, "message WhatsApp cannot show", None),
            want("wamid.C", None, "contact card", None),
            want("wamid.N", None, "brand_new_type", None),
        ]
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

/// A contact that cannot be read (no `wa_id`, a name that is not text)
/// loses only its name: the messages of the change are still taken.
#[test]
fn an_unreadable_contact_does_not_drop_the_messages() {
    let body = r#"{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"phone_number_id":"106540352242922"},"contacts":[{"profile":{"name":7}},{"profile":{"name":"Sheena Nelson"},"wa_id":"16505551234"}],"messages":[{"from":"16505551234","id":"wamid.C1","timestamp":"1749416383","type":"text","text":{"body":"hi"}}]},"field":"messages"}]}]}"#;
    let w = parse(body.as_bytes(), 0).expect("parses");
    assert_eq!(w.entries[0].events.len(), 1, "{:?}", w.skipped);
    assert_eq!(
        w.entries[0].events[0].customer_name.as_deref(),
        Some("Sheena Nelson")
    );
}

/// A message or status without its `timestamp` is kept (its time is the
/// arrival's, set at ingestion).
#[test]
fn a_message_and_a_status_without_a_timestamp_are_kept() {
    let w = parse(
        webhook(r#""messages":[{"from":"16505551234","id":"wamid.T","type":"text","text":{"body":"hi"}}],"statuses":[{"id":"wamid.S","status":"read","recipient_id":"16505551234"}]"#)
            .as_bytes(),
        0,
    )
    .expect("parses");
    assert_eq!(w.entries[0].events.len(), 2, "{:?}", w.skipped);
    assert!(w.entries[0]
        .events
        .iter()
        .all(|e| e.timestamp_ms == u64::MAX));
}
