//! The stored forms of records.

use super::*;

/// What a new conversation's state and an inbound line cost on the
/// disk: only what they hold, read back whole; a state written by an
/// earlier release (every field present) still reads.
#[test]
fn empty_fields_are_not_written_and_read_back_as_defaults() {
    let state = ConversationRecord::new("acme-fb:C1", "acme-fb", Channel::Messenger, "C1", 7);
    let bytes = serde_json::to_vec(&state).unwrap();
    let text = String::from_utf8(bytes.clone()).unwrap();
    for absent in [
        "outbox",
        "pending",
        "undelivered",
        "reply_due_ms",
        "typing_refresh_ms",
    ] {
        assert!(!text.contains(absent), "{absent} in {text}");
    }
    assert!(bytes.len() < 200, "{} bytes: {text}", bytes.len());
    assert_eq!(
        serde_json::from_slice::<ConversationRecord>(&bytes).unwrap(),
        state
    );

    let earlier = r#"{"id":"a:C","integration":"a","channel":"messenger","customer":"C",
        "mode":"ai","message_count":0,"next_seq":1,"last_activity_ms":7,
        "last_inbound_ms":null,"pending":[],"reply_due_ms":null,"reply_delay_ms":0,
        "typing_refresh_ms":null,"outbox":[],"outbox_retry_ms":null,
        "undelivered":[],"unread":[]}"#;
    let read: ConversationRecord = serde_json::from_str(earlier).unwrap();
    assert_eq!(read.next_seq, 1);
    assert!(read.outbox.is_empty());

    let line = MessageRecord {
        seq: 1,
        direction: Direction::In,
        text: Some("hi".into()),
        time_ms: 7,
        status: MessageStatus::Received,
        mid: None,
        attachments: vec![],
        author: None,
        error: None,
    };
    let bytes = serde_json::to_vec(&line).unwrap();
    assert!(!String::from_utf8_lossy(&bytes).contains("attachments"));
    assert_eq!(
        serde_json::from_slice::<MessageRecord>(&bytes).unwrap(),
        line
    );
}
