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

#[test]
fn standby_items_are_counted_and_not_taken() {
    let body = r#"{"object":"page","entry":[{"id":"P","time":1700000000000,"standby":[
      {"sender":{"id":"A"},"recipient":{"id":"P"},"timestamp":1700000000000,"message":{"mid":"m1","text":"for the other app"}}]}]}"#;
    let w = parse(body.as_bytes(), 0).expect("parses");
    assert_eq!(w.event_count(), 0);
    assert_eq!(w.skipped.len(), 1);
    assert_eq!(w.skipped[0].kind, SkipKind::Standby);
}

#[test]
fn times_in_seconds_strings_or_fractions_are_read_and_a_bad_one_loses_nothing() {
    // An entry time that cannot be read is no time: the entry is kept.
    let body = r#"{"object":"page","entry":[{"id":"P","time":{"odd":1},"messaging":[
      {"sender":{"id":"A"},"recipient":{"id":"P"},"timestamp":1700000000,"message":{"mid":"m1","text":"seconds"}},
      {"sender":{"id":"A"},"recipient":{"id":"P"},"timestamp":"1700000000001","message":{"mid":"m2","text":"string"}},
      {"sender":{"id":"A"},"recipient":{"id":"P"},"timestamp":1700000000002.0,"message":{"mid":"m3","text":"fraction"}},
      {"sender":{"id":"A"},"recipient":{"id":"P"},"timestamp":[],"message":{"mid":"m4","text":"none"}}]}]}"#;
    let w = parse(body.as_bytes(), 42).expect("parses");
    assert!(w.skipped.is_empty(), "{:?}", w.skipped);
    let times: Vec<u64> = w.entries[0].events.iter().map(|e| e.timestamp_ms).collect();
    assert_eq!(
        times,
        [1_700_000_000_000, 1_700_000_000_001, 1_700_000_000_002, 42]
    );
}

#[test]
fn a_postback_without_mid_or_any_time_keeps_its_key_when_delivered_again() {
    let body = r#"{"object":"page","entry":[{"id":"P","messaging":[
      {"sender":{"id":"A"},"recipient":{"id":"P"},"postback":{"title":"Get Started","payload":"GET_STARTED"}}]}]}"#;
    let mid = |now| match &parse(body.as_bytes(), now).unwrap().entries[0].events[0].kind {
        EventKind::Postback { mid, .. } => mid.clone(),
        other => panic!("{other:?}"),
    };
    let first = mid(1_700_000_000_000);
    assert!(first.as_deref().is_some_and(|m| m.starts_with("postback-")));
    assert_eq!(first, mid(1_700_000_009_000), "a redelivery later");
    // With Meta's time, the time tells two taps apart, as before.
    let timed = body.replace(r#""postback""#, r#""timestamp":1700000000000,"postback""#);
    match &parse(timed.as_bytes(), 5).unwrap().entries[0].events[0].kind {
        EventKind::Postback { mid, .. } => assert_eq!(mid, &None),
        other => panic!("{other:?}"),
    }
}
