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

/// A web form's mail names the customer in `Reply-To`: sent by a form
/// service, or by the mailbox to itself, it is the customer's and is
/// answered to them.
#[test]
fn a_form_mail_is_answered_to_its_reply_to_address() {
    let mailbox = "support@acme.example";
    let form = |from: &str| {
        message(
            &["INBOX"],
            &[
                ("From", from),
                ("Reply-To", "\"Ann Lee\" <Ann@Example.com>"),
            ],
            json!([{"mimeType": "text/plain", "body": {"size": 5, "data": b64(b"Where is my order?")}}]),
        )
    };
    for from in ["Shop forms <mailer@forms.example>", "support@acme.example"] {
        let e = Email::read(&form(from));
        assert_eq!(e.kind(mailbox), EmailKind::Customer, "{from}");
        assert_eq!(
            e.customer(mailbox),
            Some(("ann@example.com".to_string(), Some("Ann Lee".to_string())))
        );
    }
    // A reply-to naming the mailbox itself changes nothing.
    let own = message(
        &["INBOX"],
        &[
            ("From", "support@acme.example"),
            ("Reply-To", "support@acme.example"),
        ],
        json!([]),
    );
    assert_eq!(
        Email::read(&own).kind(mailbox),
        EmailKind::Skipped("from_mailbox")
    );
}

/// Delivery failures and addresses that take no answers are not answered
/// (an answer would bounce, or start a loop with a mail system).
#[test]
fn bounces_and_no_reply_senders_are_not_answered() {
    let mailbox = "support@acme.example";
    let bounce = Email::read(&customer_mail(&[("Return-Path", "<>")]));
    assert_eq!(bounce.kind(mailbox), EmailKind::Skipped("bounce"));
    for (from, why) in [
        (
            "Mail Delivery Subsystem <MAILER-DAEMON@example.com>",
            "bounce",
        ),
        ("no-reply@shop.example", "no_reply"),
        ("Do Not Reply <do_not_reply@bank.example>", "no_reply"),
    ] {
        let m = message(&["INBOX"], &[("From", from)], json!([]));
        assert_eq!(
            Email::read(&m).kind(mailbox),
            EmailKind::Skipped(why),
            "{from}"
        );
    }
}

/// Words written below or between `>` quoted lines are the customer's.
#[test]
fn answers_written_under_a_quote_are_kept() {
    assert_eq!(
        trim_quoted("On Tue, 2 Jan 2024, Acme <support@acme.example> wrote:\n> Your order number?\nIt's #4521"),
        "It's #4521"
    );
    assert_eq!(
        trim_quoted("Hi\n\nOn Tue, 2 Jan 2024 at 10:00, Acme <s@a.example>\nwrote:\n> Which colour?\nBlue\n> And the size?\nLarge"),
        "Hi\n\nBlue\nLarge"
    );
}

/// `html` as text, read on a 256 KiB stack (a deep recursion would
/// overflow it).
fn on_a_small_stack(html: String) -> String {
    std::thread::Builder::new()
        .stack_size(256 << 10)
        .spawn(move || html_text(&html))
        .unwrap()
        .join()
        .expect("no stack overflow")
}

/// HTML nested far deeper than any real email is read by dropping its
/// tags, on a small stack: the converter's recursion never meets it.
#[test]
fn deeply_nested_html_is_read_without_deep_recursion() {
    let html = format!(
        "<table><tr><td>{}Where is my order?{}</td></tr></table>",
        "<div>".repeat(20_000),
        "</div>".repeat(20_000)
    );
    assert!(html_deeper_than(&html, MAX_HTML_DEPTH));
    assert!(!html_deeper_than("<p>a<br>b<img src=x/></p><hr>", 1));
    // Read as a parser reads them: `<div/>` opens a div, a closing tag of
    // nothing open closes nothing; a `p` after a `p` closes it.
    assert!(html_deeper_than(&"<div/>".repeat(300), MAX_HTML_DEPTH));
    assert!(html_deeper_than(&"<div></b>".repeat(300), MAX_HTML_DEPTH));
    assert!(!html_deeper_than(&"<p>line".repeat(300), MAX_HTML_DEPTH));
    // A closing tag a parser ignores (not the element open last) closes
    // nothing here either; comments and script text are not markup.
    assert!(html_deeper_than(
        &"<div><marquee></div>".repeat(300),
        MAX_HTML_DEPTH
    ));
    assert!(html_deeper_than(&"<x-a></x-b>".repeat(300), MAX_HTML_DEPTH));
    assert!(html_deeper_than(
        &"<div><!-- ></div> -->".repeat(300),
        MAX_HTML_DEPTH
    ));
    assert!(html_deeper_than(
        &"<div><script></div></script>".repeat(300),
        MAX_HTML_DEPTH
    ));
    assert!(!html_deeper_than(
        &"<div><p>a</div>".repeat(300),
        MAX_HTML_DEPTH
    ));
    assert!(!html_deeper_than("<b>a<i>b</b>c</i>", MAX_HTML_DEPTH));
    assert_eq!(on_a_small_stack(html), "Where is my order?");
    assert_eq!(strip_tags("<p>Fish &amp; chips</p>"), "Fish & chips");
    assert_eq!(strip_tags("<script>if(a<b){}</script>Hi"), "Hi");
    assert_eq!(strip_tags("<style/>Hi <title>x"), "Hi x");
    assert_eq!(strip_tags("a < b, no tag"), "a < b, no tag");
    assert_eq!(
        strip_tags("<html><head><title>T</title><style>p{color:red}</style></head><body><p>Where is it?</p><p>On Tue, Acme wrote:</p><blockquote>old</blockquote></body></html>"),
        "Where is it?\n\nOn Tue, Acme wrote:\n\nold"
    );
    let deep = format!("{}Where?", "<div/>".repeat(20_000));
    assert_eq!(on_a_small_stack(deep), "Where?");
}

/// Mail in the charsets customers' mail programs still use is read as
/// they wrote it.
#[test]
fn text_in_other_charsets_is_read_as_written() {
    assert_eq!(
        decode_text(&[0xCF, 0xF0, 0xE8, 0xE2, 0xE5, 0xF2], "windows-1251"),
        "Привет"
    );
    assert_eq!(
        decode_text(&[0xF0, 0xD2, 0xC9, 0xD7, 0xC5, 0xD4], "koi8-r"),
        "Привет"
    );
    assert_eq!(
        decode_text(&[0x80, 0x20, 0x93, 0x61, 0x94], "windows-1252"),
        "€ “a”"
    );
    assert_eq!(decode_text(&[0x80], "iso-8859-1"), "€");
    // こんにちは in Shift_JIS.
    let sjis = [0x82, 0xB1, 0x82, 0xF1, 0x82, 0xC9, 0x82, 0xBF, 0x82, 0xCD];
    assert_eq!(decode_text(&sjis, "shift_jis"), "こんにちは");
    assert_eq!(decode_text("héllo".as_bytes(), "x-unknown"), "héllo");
}

/// A header naming several addresses: the first is the one answered.
#[test]
fn the_first_of_several_reply_to_addresses_is_answered() {
    let mailbox = "support@acme.example";
    for (reply_to, want) in [
        ("a@x.example,b@y.example", ("a@x.example", None)),
        (
            "\"Lee, Ann\" <Ann@X.example>, Bob <b@y.example>",
            ("ann@x.example", Some("Lee, Ann")),
        ),
    ] {
        let m = message(
            &["INBOX"],
            &[("From", "forms@f.example"), ("Reply-To", reply_to)],
            json!([]),
        );
        let e = Email::read(&m);
        assert_eq!(
            e.customer(mailbox),
            Some((want.0.to_string(), want.1.map(str::to_string))),
            "{reply_to}"
        );
    }
    assert_eq!(parse_address("a@x.example,b@y.example"), None);
}
