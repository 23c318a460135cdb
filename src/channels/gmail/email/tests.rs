use serde_json::json;

use super::*;

fn b64(s: &[u8]) -> String {
    BASE64URL.encode(s)
}

fn message(
    labels: &[&str],
    headers: &[(&str, &str)],
    payload_parts: serde_json::Value,
) -> GmailMessage {
    let headers: Vec<_> = headers
        .iter()
        .map(|(n, v)| json!({"name": n, "value": v}))
        .collect();
    serde_json::from_value(json!({
        "id": "m1",
        "threadId": "t1",
        "labelIds": labels,
        "historyId": "1200",
        "internalDate": "1700000000000",
        "payload": {
            "mimeType": "multipart/mixed",
            "headers": headers,
            "body": {"size": 0},
            "parts": payload_parts,
        }
    }))
    .unwrap()
}

fn customer_mail(extra: &[(&str, &str)]) -> GmailMessage {
    let mut headers = vec![
        ("From", "\"Lee, Ann\" <Ann@Example.com>"),
        ("To", "support@acme.example"),
        ("Subject", "Lamp broken"),
        ("Message-ID", "<abc@example.com>"),
    ];
    headers.extend_from_slice(extra);
    message(
        &["INBOX", "UNREAD"],
        &headers,
        json!([
            {"mimeType": "multipart/alternative", "body": {"size": 0}, "parts": [
                {"mimeType": "text/plain", "body": {"size": 10, "data": b64(b"My lamp is broken.\r\n\r\nOn Mon, 1 Jan 2024, Acme <support@acme.example> wrote:\r\n> Thanks for your order\r\n")}},
                {"mimeType": "text/html", "body": {"size": 10, "data": b64(b"<p>My lamp is <b>broken</b>.</p>")}}
            ]},
            {"mimeType": "application/pdf", "filename": "receipt.pdf", "body": {"size": 5242880, "attachmentId": "att-1"}}
        ]),
    )
}

#[test]
fn a_customer_email_is_read_with_its_words_only_and_its_files() {
    let e = Email::read(&customer_mail(&[]));
    assert_eq!(e.kind("support@acme.example"), EmailKind::Customer);
    assert_eq!(
        e.from,
        Some(("ann@example.com".to_string(), Some("Lee, Ann".to_string())))
    );
    assert_eq!(e.text, "My lamp is broken.");
    assert_eq!(e.subject, "Lamp broken");
    assert_eq!(e.header("message-id"), Some("<abc@example.com>"));
    assert_eq!(e.history_id, 1200);
    assert_eq!(e.files.len(), 1);
    assert_eq!(e.files[0].name, "receipt.pdf");
    assert_eq!(e.files[0].size, 5_242_880);
    assert_eq!(e.files[0].attachment_id.as_deref(), Some("att-1"));
}

#[test]
fn html_only_mail_is_converted_to_text() {
    let m = message(
        &["INBOX"],
        &[("From", "bob@example.com")],
        json!([{"mimeType": "text/html", "body": {"size": 3, "data": b64(b"<div>Where is <i>my order</i>?</div>")}}]),
    );
    let e = Email::read(&m);
    assert!(
        e.text.contains("Where is") && e.text.contains("my order"),
        "{}",
        e.text
    );
    assert!(!e.text.contains('<'));
}

#[test]
fn own_mail_drafts_auto_replies_and_lists_are_not_answered() {
    let mailbox = "support@acme.example";
    let sent = message(
        &["SENT"],
        &[
            ("From", "support@acme.example"),
            ("X-Switchboard-Part", " p-7 "),
        ],
        json!([]),
    );
    assert_eq!(
        Email::read(&sent).kind(mailbox),
        EmailKind::OwnSent {
            part: Some("p-7".into())
        }
    );
    // A forged sender is not the mailbox's own mail.
    let forged = message(
        &["INBOX"],
        &[
            ("From", "Support <support@acme.example>"),
            ("X-Switchboard-Part", "p-7"),
        ],
        json!([]),
    );
    assert_eq!(
        Email::read(&forged).kind(mailbox),
        EmailKind::Skipped("from_mailbox")
    );
    let draft = message(&["DRAFT"], &[("From", "ann@example.com")], json!([]));
    assert_eq!(
        Email::read(&draft).kind(mailbox),
        EmailKind::Skipped("draft")
    );
    for header in [
        ("Auto-Submitted", "auto-replied"),
        ("Precedence", "bulk"),
        ("Precedence", "list"),
        ("List-Id", "<news.example.com>"),
    ] {
        let e = Email::read(&customer_mail(&[header]));
        assert!(
            matches!(e.kind(mailbox), EmailKind::Skipped(_)),
            "{header:?} must be skipped"
        );
    }
    let human = Email::read(&customer_mail(&[("Auto-Submitted", "no")]));
    assert_eq!(human.kind(mailbox), EmailKind::Customer);
}

#[test]
fn quoted_history_is_trimmed_in_its_common_forms() {
    assert_eq!(trim_quoted("Yes please\n\n> earlier\n> more"), "Yes please");
    assert_eq!(
        trim_quoted("Yes\nOn Tue, Jan 2, 2024 at 10:00 AM Acme Support <s@a.example>\nwrote:\nold"),
        "Yes"
    );
    assert_eq!(
        trim_quoted("Fine.\n\n-----Original Message-----\nFrom: x"),
        "Fine."
    );
    assert_eq!(
        trim_quoted("Thanks\r\nFrom: Acme\r\nSent: Monday\r\nold"),
        "Thanks"
    );
    assert_eq!(trim_quoted("Only this"), "Only this");
}

#[test]
fn addresses_and_base64_in_both_alphabets_are_read() {
    assert_eq!(
        parse_address("ann@example.com"),
        Some(("ann@example.com".into(), None))
    );
    assert_eq!(parse_address("not an address"), None);
    assert_eq!(parse_address("<>"), None);
    assert_eq!(decode_base64("aGk_"), Some(vec![b'h', b'i', 0x3f]));
    assert_eq!(decode_base64("aGk/"), Some(vec![b'h', b'i', 0x3f]));
    assert_eq!(decode_base64("aGk="), Some(b"hi".to_vec()));
    assert_eq!(decode_base64("aGk"), Some(b"hi".to_vec()));
    assert_eq!(decode_base64("!!"), None);
}

#[test]
fn a_message_without_payload_or_with_odd_fields_does_not_fail() {
    let m: GmailMessage = serde_json::from_value(json!({"id": "x", "historyId": 5})).unwrap();
    let e = Email::read(&m);
    assert_eq!(e.kind("s@a.example"), EmailKind::Skipped("no_sender"));
    assert!(
        serde_json::from_value::<GmailMessage>(json!({"id": "x", "historyId": "nope"})).is_err()
    );
}
