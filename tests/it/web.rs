//! Website chat's socket protocol, without a browser: a visitor asks and
//! is answered; a message sent again with the same client id after a
//! reconnect is acknowledged and answered once; history and resume from a
//! sequence; another visitor sees nothing of it; a bad user hash and a
//! page from a disallowed origin are refused; a burst is slowed; a
//! person's message reaches the socket at once.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::support::*;

pub const ORIGIN: &str = "http://shop.test";
const SECRET: &str = "web-identity-secret-of-32-characters";

const WEB: &str = r##"
[[integrations]]
id = "acme-web"
tenant = "acme"
channel = "web"
assistant = "support"
allowed_origins = ["http://shop.test"]
identity_secret = "web-identity-secret-of-32-characters"
widget_title = "Acme help"
widget_color = "#aa3300"
"##;

pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open(desk: &Desk, origin: &str) -> Result<Socket, u16> {
    open_to(desk, "acme-web", origin).await
}

/// Opens a widget socket to web chat `integration`.
pub async fn open_to(desk: &Desk, integration: &str, origin: &str) -> Result<Socket, u16> {
    let url = format!("ws://{}/web/{integration}/ws", desk.engine.addr);
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("origin", origin.parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => Err(r.status().as_u16()),
        Err(e) => panic!("{e}"),
    }
}

/// The close code a socket ends with (waits up to 5 s for it to end).
async fn close_code(ws: &mut Socket) -> Option<u16> {
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                _ => return None,
            }
        }
    })
    .await
    .expect("the socket ends")
}

pub async fn say(ws: &mut Socket, frame: Value) {
    ws.send(Message::Text(frame.to_string().into()))
        .await
        .unwrap();
}

/// The next frame of `kind` (others skipped), within 10 s.
pub async fn next(ws: &mut Socket, kind: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let msg = tokio::time::timeout(left, ws.next())
            .await
            .unwrap_or_else(|_| panic!("no {kind} frame"))
            .unwrap()
            .unwrap();
        if let Message::Text(t) = msg {
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["type"] == kind {
                return v;
            }
        }
    }
}

/// Frames of `kind` arriving within `wait`.
async fn count(ws: &mut Socket, kind: &str, wait: Duration) -> usize {
    let mut n = 0;
    let deadline = tokio::time::Instant::now() + wait;
    while let Ok(Some(Ok(msg))) = tokio::time::timeout_at(deadline, ws.next()).await {
        if let Message::Text(t) = msg {
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["type"] == kind {
                n += 1;
            }
        }
    }
    n
}

pub async fn hello(ws: &mut Socket, visitor: Option<&str>, last_seq: u64) -> Value {
    let mut h = json!({"type": "hello", "last_seq": last_seq});
    if let Some(v) = visitor {
        h["visitor"] = json!(v);
    }
    say(ws, h).await;
    next(ws, "welcome").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_visitor_asks_and_a_resend_after_a_reconnect_is_answered_once() {
    let desk = Desk::start_with(0, "", WEB).await;
    let mut ws = open(&desk, ORIGIN).await.unwrap();
    let welcome = hello(&mut ws, None, 0).await;
    assert_eq!(welcome["title"], "Acme help");
    assert_eq!(welcome["color"], "#aa3300");
    let visitor = welcome["visitor"].as_str().unwrap().to_string();
    assert_eq!(visitor.len(), 32);
    say(
        &mut ws,
        json!({"type": "message", "client_id": "c1", "text": "what are your hours?"}),
    )
    .await;
    assert_eq!(next(&mut ws, "ack").await["client_id"], "c1");
    let reply = next(&mut ws, "message").await;
    assert_eq!(reply["text"], "We're open 9-5.");
    assert_eq!(reply["author"], "ai");
    let seq = reply["seq"].as_u64().unwrap();
    // The socket is cut; the widget sends the message again on a new one.
    drop(ws);
    let mut ws = open(&desk, ORIGIN).await.unwrap();
    let welcome = hello(&mut ws, Some(&visitor), seq).await;
    assert!(
        welcome["history"].as_array().unwrap().is_empty(),
        "{welcome}"
    );
    say(
        &mut ws,
        json!({"type": "message", "client_id": "c1", "text": "what are your hours?"}),
    )
    .await;
    assert_eq!(next(&mut ws, "ack").await["client_id"], "c1");
    assert_eq!(
        count(&mut ws, "message", Duration::from_secs(4)).await,
        0,
        "answered once"
    );
    // A new page load: the history, both lines, in order.
    let mut ws = open(&desk, ORIGIN).await.unwrap();
    let history = hello(&mut ws, Some(&visitor), 0).await["history"].clone();
    let lines: Vec<(&str, &str)> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["author"].as_str().unwrap(), l["text"].as_str().unwrap()))
        .collect();
    assert_eq!(
        lines,
        [
            ("visitor", "what are your hours?"),
            ("ai", "We're open 9-5.")
        ]
    );
    assert_eq!(history[0]["client_id"], "c1");
    // Another visitor sees none of it.
    let mut other = open(&desk, ORIGIN).await.unwrap();
    let welcome = hello(&mut other, Some("0123456789abcdef0123456789abcdef"), 0).await;
    assert!(welcome["history"].as_array().unwrap().is_empty());
    assert_ne!(welcome["conversation"], history[0]["conversation"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_of_other_origins_and_bad_user_hashes_are_refused() {
    let desk = Desk::start_with(0, "", WEB).await;
    assert_eq!(open(&desk, "https://evil.example").await.err(), Some(403));
    let mut ws = open(&desk, ORIGIN).await.unwrap();
    say(
        &mut ws,
        json!({"type": "hello", "user_id": "u-42", "user_hash": "00ff"}),
    )
    .await;
    let error = next(&mut ws, "error").await;
    assert!(
        error["reason"].as_str().unwrap().contains("user_hash"),
        "{error}"
    );
    // The right hash: the user's own conversation, on any device.
    let hash = switchboard::channels::web::identity::user_hash(SECRET, "u-42");
    let mut ws = open(&desk, ORIGIN).await.unwrap();
    say(
        &mut ws,
        json!({"type": "hello", "user_id": "u-42", "user_hash": hash}),
    )
    .await;
    let welcome = next(&mut ws, "welcome").await;
    assert_eq!(welcome["conversation"], "acme-web:u.u-42");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_is_slowed_and_a_persons_message_arrives_at_once() {
    let desk = Desk::start_with(0, "", WEB).await;
    let mut ws = open(&desk, ORIGIN).await.unwrap();
    let welcome = hello(&mut ws, None, 0).await;
    let conversation = welcome["conversation"].as_str().unwrap().to_string();
    for i in 0..11 {
        say(
            &mut ws,
            json!({"type": "message", "client_id": format!("b{i}"), "text": "hello"}),
        )
        .await;
    }
    let error = next(&mut ws, "error").await;
    assert_eq!(error["client_id"], "b10");
    assert_eq!(error["retry"], true);
    let id = conversation.replace(':', "%3A");
    let (status, body) = desk
        .post(
            &format!("/conversations/{id}/takeover"),
            json!({"by": "Sam"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = desk
        .post(
            &format!("/conversations/{id}/messages"),
            json!({"text": "Hi, I'm Sam from the team."}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let m = next(&mut ws, "message").await;
        if m["author"] == "agent" {
            assert_eq!(m["text"], "Hi, I'm Sam from the team.");
            assert_eq!(m["name"], "Sam", "the person's name: {m}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline);
    }
}

#[test]
fn the_shopify_extension_ships_the_same_widget() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let served = std::fs::read(root.join("src/ingest/web/widget.js")).unwrap();
    let shipped = std::fs::read(
        root.join("shopify/extensions/switchboard-chat/assets/switchboard-widget.js"),
    )
    .unwrap();
    assert!(
        served == shipped,
        "copy src/ingest/web/widget.js to the extension's assets"
    );
    let block = std::fs::read_to_string(
        root.join("shopify/extensions/switchboard-chat/blocks/chat-embed.liquid"),
    )
    .unwrap();
    assert!(block.contains("'switchboard-widget.js' | asset_url"));
    assert!(block.contains("\"target\": \"body\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_id_that_looks_like_a_reply_number_is_still_answered() {
    let desk = Desk::start_with(0, "", WEB).await;
    let mut ws = open(&desk, ORIGIN).await.unwrap();
    hello(&mut ws, None, 0).await;
    say(
        &mut ws,
        json!({"type": "message", "client_id": "c1", "text": "hours?"}),
    )
    .await;
    let seq = next(&mut ws, "message").await["seq"].as_u64().unwrap();
    // A client numbering its messages sends the reply's number as an id.
    say(
        &mut ws,
        json!({"type": "message", "client_id": seq.to_string(), "text": "and on Sunday, hours?"}),
    )
    .await;
    assert_eq!(next(&mut ws, "ack").await["client_id"], seq.to_string());
    let reply = next(&mut ws, "message").await;
    assert_eq!(reply["author"], "ai", "{reply}");
}

/// The engine stops: open widget sockets, past their hello or still
/// waiting to say it, are closed with 1012 (service restart, so the widget
/// reconnects), and the store is released: a new engine opens the same
/// data at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_engine_closes_widget_sockets_and_releases_its_store() {
    let desk = Desk::start_with(0, "", WEB).await;
    let mut ws = open(&desk, ORIGIN).await.unwrap();
    hello(&mut ws, None, 0).await;
    let mut quiet = open(&desk, ORIGIN).await.unwrap();
    let desk = tokio::time::timeout(Duration::from_secs(15), desk.restart(0, ""))
        .await
        .expect("the engine stops and starts again with sockets open");
    assert_eq!(close_code(&mut ws).await, Some(1012));
    assert_eq!(close_code(&mut quiet).await, Some(1012));
    // The new engine takes a visitor as before.
    let mut ws = open(&desk, ORIGIN).await.unwrap();
    hello(&mut ws, None, 0).await;
}

/// A socket takes the chat's settings of now, not of when it opened: once
/// its page's origin is removed, or the chat is deleted, the next frame
/// ends it with a reason (no acknowledgement promising an answer that will
/// never come), and the widget's new socket gets the new settings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_ends_when_its_chat_drops_its_origin_or_is_deleted() {
    crate::integrations::keys(crate::integrations::KEY1);
    let desk = Desk::start(0, "").await;
    let other = "http://other.test";
    let (status, body) = desk
        .post(
            "/integrations",
            json!({"id": "shop-web", "tenant": "acme", "channel": "web",
                   "assistant": "support", "allowed_origins": [ORIGIN, other],
                   "identity_secret": SECRET}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let mut ws = open_to(&desk, "shop-web", ORIGIN).await.unwrap();
    hello(&mut ws, None, 0).await;
    let (status, body) = desk
        .request(
            reqwest::Method::PATCH,
            "/integrations/shop-web",
            Some(json!({"allowed_origins": [other]})),
            "admin",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    say(
        &mut ws,
        json!({"type": "message", "client_id": "g1", "text": "hello?"}),
    )
    .await;
    let error = next(&mut ws, "error").await;
    assert!(
        error["reason"].as_str().unwrap().contains("changed"),
        "{error}"
    );
    assert!(ws
        .next()
        .await
        .is_none_or(|m| matches!(m, Ok(Message::Close(_)) | Err(_))));
    assert_eq!(open_to(&desk, "shop-web", ORIGIN).await.err(), Some(403));

    // A new identity key ends the sockets of signed-in users (their pages
    // must come back with a hash of the new key), not the anonymous ones.
    let mut anonymous = open_to(&desk, "shop-web", other).await.unwrap();
    hello(&mut anonymous, None, 0).await;
    let mut user = open_to(&desk, "shop-web", other).await.unwrap();
    let hash = switchboard::channels::web::identity::user_hash(SECRET, "u-7");
    say(
        &mut user,
        json!({"type": "hello", "user_id": "u-7", "user_hash": hash}),
    )
    .await;
    next(&mut user, "welcome").await;
    let (status, body) = desk
        .request(
            reqwest::Method::PATCH,
            "/integrations/shop-web",
            Some(json!({"identity_secret": "another-identity-secret-of-32-characters"})),
            "admin",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    say(
        &mut user,
        json!({"type": "message", "client_id": "g3", "text": "hello?"}),
    )
    .await;
    assert_eq!(next_any(&mut user).await["type"], "error");
    say(
        &mut anonymous,
        json!({"type": "message", "client_id": "g4", "text": "what are your hours?"}),
    )
    .await;
    assert_eq!(next(&mut anonymous, "ack").await["client_id"], "g4");

    let mut ws = open_to(&desk, "shop-web", other).await.unwrap();
    hello(&mut ws, None, 0).await;
    let (status, body) = desk
        .request(
            reqwest::Method::DELETE,
            "/integrations/shop-web",
            None,
            "admin",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    say(
        &mut ws,
        json!({"type": "message", "client_id": "g2", "text": "anyone there?"}),
    )
    .await;
    let frame = next_any(&mut ws).await;
    assert_eq!(frame["type"], "error", "not acknowledged: {frame}");
}

/// The next text frame, whatever its type, within 10 s.
async fn next_any(ws: &mut Socket) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a frame")
            .unwrap()
            .unwrap();
        if let Message::Text(t) = msg {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

/// Read marks sent sooner than the socket passes them on are kept, not
/// dropped: the newest reaches the conversation a few seconds later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_mark_sent_soon_after_another_is_passed_on_later() {
    let desk = Desk::start_with(0, "", WEB).await;
    let mut ws = open(&desk, ORIGIN).await.unwrap();
    let conversation = hello(&mut ws, None, 0).await["conversation"]
        .as_str()
        .unwrap()
        .to_string();
    // Each reply read as soon as it shows: the second mark comes within
    // seconds of the first.
    for (id, text) in [
        ("r1", "what are your hours?"),
        ("r2", "and on Sunday, what are your hours?"),
    ] {
        say(
            &mut ws,
            json!({"type": "message", "client_id": id, "text": text}),
        )
        .await;
        let seq = next(&mut ws, "message").await["seq"].as_u64().unwrap();
        say(&mut ws, json!({"type": "read", "seq": seq})).await;
    }
    let id = conversation.replace(':', "%3A");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = desk.get(&format!("/conversations/{id}")).await;
        assert_eq!(status, 200, "{body}");
        let read = body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["direction"] == "out" && m["status"] == "read")
            .count();
        if read == 2 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the second reply never marked read: {body}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
