//! Each channel end to end against the Graph API simulator (which checks
//! every call against Meta's documented shapes): WhatsApp, Instagram DMs
//! and comments, Facebook Page comments, attachments both ways.

use std::time::Duration;

use serde_json::{json, Value};
use switchboard::app::{self, RunningEngine};
use switchboard::clock::now_ms;
use switchboard::tools::sim::validate::CallKind;
use switchboard::tools::sim::{RecordedCall, Sim, SimOptions};

use crate::support::*;

const WA_ID: &str = "16505551234";
const HOURS: &str = "We're open 9-5.";

struct Shop {
    sim: Sim,
    engine: RunningEngine,
    _dir: tempfile::TempDir,
    http: reqwest::Client,
}

impl Shop {
    /// An engine with the test config's Messenger, Instagram and WhatsApp
    /// integrations (`wa_settings` added to the WhatsApp one), calling the
    /// simulator.
    async fn start(wa_settings: &str) -> Self {
        let sim = Sim::start(
            "127.0.0.1:0",
            SimOptions {
                record_limit: 10_000,
                ..SimOptions::default()
            },
        )
        .await
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let toml = config_toml(dir.path(), &sim.base_url(), "127.0.0.1:0", "127.0.0.1:0", 0)
            .replacen(
                &format!("account_id = \"{PHONE}\"\n"),
                &format!("account_id = \"{PHONE}\"\n{wa_settings}\n"),
                1,
            );
        let config = switchboard::config::load_from_str(&toml, &[]).expect("valid config");
        let engine = app::start(config).await.expect("engine starts");
        Self {
            sim,
            engine,
            _dir: dir,
            http: reqwest::Client::new(),
        }
    }

    async fn webhook(&self, body: Value) {
        let url = format!("http://{}/webhooks/meta/main", self.engine.addr);
        let status = post_webhook(&url, serde_json::to_vec(&body).unwrap(), Some(APP_SECRET)).await;
        assert_eq!(status, 200, "{body}");
    }

    /// Accepted calls of `kind`.
    fn calls(&self, kind: CallKind) -> Vec<RecordedCall> {
        self.sim
            .calls()
            .into_iter()
            .filter(|c| c.kind == Some(kind) && c.status == 200)
            .collect()
    }

    async fn wait_calls(&self, kind: CallKind, n: usize) -> Vec<RecordedCall> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let calls = self.calls(kind);
            if calls.len() >= n {
                return calls;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "waiting for {n} {kind:?} calls: {:#?}",
                self.sim.calls()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn api(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("http://{}/api/v1{path}", self.engine.addr))
            .bearer_auth("admin");
        if let Some(b) = body {
            request = request.json(&b);
        }
        let r = request.send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    /// Waits until conversation `id` has `n` logged lines.
    async fn conversation(&self, id: &str, n: u64) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let (status, view) = self
                .api(reqwest::Method::GET, &format!("/conversations/{id}"), None)
                .await;
            if status == 200 && view["message_count"] == n {
                tokio::time::sleep(Duration::from_millis(100)).await;
                return view;
            }
            assert!(tokio::time::Instant::now() < deadline, "{id}: {view:#}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A WhatsApp webhook with `value` fields (`messages`, `statuses`).
fn whatsapp(value: Value) -> Value {
    let mut v = json!({
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE},
        "contacts": [{"profile": {"name": "Sheena Nelson"}, "wa_id": WA_ID}],
    });
    if let (Some(v), Some(extra)) = (v.as_object_mut(), value.as_object()) {
        v.extend(extra.clone());
    }
    json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA_1", "changes": [{"field": "messages", "value": v}]}]})
}

fn wa_text(wamid: &str, text: &str, at_ms: u64) -> Value {
    whatsapp(json!({"messages": [{
        "from": WA_ID, "id": wamid, "timestamp": (at_ms / 1000).to_string(),
        "type": "text", "text": {"body": text}
    }]}))
}

#[tokio::test]
async fn whatsapp_is_answered_once_after_its_typing_indicator() {
    let shop = Shop::start("response_delay_ms = 300").await;
    let message = wa_text("wamid.Q1", "What are your hours?", now_ms());
    shop.webhook(message.clone()).await;
    shop.webhook(message).await; // Meta redelivers the same wamid
    let replies = shop.wait_calls(CallKind::WhatsappMessage, 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let replies_now = shop.calls(CallKind::WhatsappMessage);
    assert_eq!(replies_now.len(), 1, "the duplicate wamid is answered once");
    assert_eq!(replies[0].body["to"], WA_ID);
    assert_eq!(replies[0].body["text"]["body"], HOURS);
    assert_eq!(replies[0].account.as_deref(), Some(PHONE));
    let typing = shop.calls(CallKind::WhatsappRead);
    assert!(
        !typing.is_empty(),
        "typing indicator before the delayed reply"
    );
    assert_eq!(typing[0].body["message_id"], "wamid.Q1");
    assert_eq!(typing[0].body["typing_indicator"]["type"], "text");
    let view = shop.conversation(&format!("acme-wa:{WA_ID}"), 2).await;
    assert_eq!(view["customer_name"], "Sheena Nelson");
    assert_eq!(view["channel"], "whatsapp");
    shop.engine.shutdown().await;
}

/// WhatsApp's notifications the engine does not take (a template's status,
/// an account update) are acknowledged with 200, not refused: Meta would
/// send them again for days.
#[tokio::test]
async fn whatsapp_notifications_without_messages_are_acknowledged() {
    let shop = Shop::start("").await;
    for (field, value) in [
        (
            "message_template_status_update",
            json!({"event": "APPROVED", "message_template_id": 1_234_567_890_u64,
                   "message_template_name": "order_update", "message_template_language": "en_US",
                   "reason": "NONE"}),
        ),
        (
            "account_update",
            json!({"phone_number": "15550783881", "event": "VERIFIED_ACCOUNT"}),
        ),
    ] {
        shop.webhook(json!({"object": "whatsapp_business_account", "entry": [{
            "id": "WABA_1", "time": now_ms() / 1000,
            "changes": [{"field": field, "value": value}]
        }]}))
        .await;
    }
    shop.webhook(json!({"object": "whatsapp_business_account", "entry": []}))
        .await;
    shop.engine.shutdown().await;
}

#[tokio::test]
async fn whatsapp_statuses_mark_delivery_and_read() {
    let shop = Shop::start("").await;
    shop.webhook(wa_text("wamid.Q2", "hours?", now_ms())).await;
    let reply = shop.wait_calls(CallKind::WhatsappMessage, 1).await;
    let wamid = reply[0].response["messages"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let id = format!("acme-wa:{WA_ID}");
    shop.conversation(&id, 2).await;
    let status = |s: &str| {
        whatsapp(json!({"statuses": [{
            "id": wamid, "status": s, "timestamp": (now_ms() / 1000).to_string(),
            "recipient_id": WA_ID
        }]}))
    };
    shop.webhook(status("delivered")).await;
    shop.webhook(status("read")).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, view) = shop
            .api(reqwest::Method::GET, &format!("/conversations/{id}"), None)
            .await;
        if view["messages"][1]["status"] == "read" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{view:#}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, stats) = shop
        .api(reqwest::Method::GET, "/analytics?integration=acme-wa", None)
        .await;
    assert_eq!(
        (
            stats["outbound"].as_u64(),
            stats["delivered"].as_u64(),
            stats["read"].as_u64()
        ),
        (Some(1), Some(1), Some(1)),
        "{stats}"
    );
    shop.engine.shutdown().await;
}

#[tokio::test]
async fn whatsapp_after_24_hours_a_person_is_sent_as_the_template() {
    let shop = Shop::start(
        "whatsapp_template = \"agent_follow_up\"\nwhatsapp_template_language = \"en_GB\"",
    )
    .await;
    shop.webhook(wa_text("wamid.OLD", "hello?", now_ms() - 25 * 3_600_000))
        .await;
    let id = format!("acme-wa:{WA_ID}");
    shop.conversation(&id, 1).await;
    assert!(
        shop.calls(CallKind::WhatsappMessage).is_empty(),
        "the AI stays silent"
    );
    let (status, body) = shop
        .api(
            reqwest::Method::POST,
            &format!("/conversations/{id}/messages"),
            Some(json!({"text": "Sorry for the wait! Your order shipped today."})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let sent = shop.calls(CallKind::WhatsappMessage);
    assert_eq!(sent[0].body["type"], "template");
    assert_eq!(sent[0].body["template"]["name"], "agent_follow_up");
    assert_eq!(sent[0].body["template"]["language"]["code"], "en_GB");
    assert_eq!(
        sent[0].body["template"]["components"][0]["parameters"][0]["text"],
        "Sorry for the wait! Your order shipped today."
    );
    shop.engine.shutdown().await;
}

#[tokio::test]
async fn whatsapp_without_a_template_refuses_a_late_message_with_409() {
    let shop = Shop::start("").await;
    shop.webhook(wa_text("wamid.OLD2", "hello?", now_ms() - 25 * 3_600_000))
        .await;
    let id = format!("acme-wa:{WA_ID}");
    shop.conversation(&id, 1).await;
    let (status, body) = shop
        .api(
            reqwest::Method::POST,
            &format!("/conversations/{id}/messages"),
            Some(json!({"text": "Still there?"})),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("template"),
        "{body}"
    );
    shop.engine.shutdown().await;
}

fn instagram(entry: Value) -> Value {
    json!({"object": "instagram", "entry": [entry]})
}

#[tokio::test]
async fn instagram_direct_messages_and_comments_are_answered_the_accounts_own_never() {
    let shop = Shop::start("").await;
    shop.webhook(instagram(
        json!({"id": IG_ACCOUNT, "time": now_ms(), "messaging": [{
            "sender": {"id": "IGSID_1"}, "recipient": {"id": IG_ACCOUNT}, "timestamp": now_ms(),
            "message": {"mid": "ig_m1", "text": "what are your hours?"}
        }]}),
    ))
    .await;
    let dm = shop.wait_calls(CallKind::Message, 1).await;
    assert_eq!(dm[0].account.as_deref(), Some(IG_ACCOUNT));
    assert_eq!(dm[0].recipient.as_deref(), Some("IGSID_1"));

    let comment = |from: &str, id: &str, text: &str| {
        instagram(
            json!({"id": IG_ACCOUNT, "time": now_ms(), "changes": [{"field": "comments", "value": {
                "from": {"id": from, "username": "someone"}, "media": {"id": "MEDIA_1", "media_product_type": "FEED"},
                "id": id, "text": text
            }}]}),
        )
    };
    shop.webhook(comment(IG_ACCOUNT, "c_own", "New drop! Ask us about hours"))
        .await;
    shop.webhook(comment("IGSID_2", "c_1", "What are your hours?"))
        .await;
    shop.webhook(comment("IGSID_2", "c_1", "What are your hours?"))
        .await;
    let replies = shop.wait_calls(CallKind::CommentReply, 1).await;
    assert_eq!(replies[0].path, "/v21.0/c_1/replies");
    assert_eq!(replies[0].body["message"], HOURS);
    let view = shop.conversation("acme-ig:IGSID_2", 2).await;
    assert_eq!(view["customer_name"], "someone");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        shop.calls(CallKind::CommentReply).len(),
        1,
        "a redelivered comment is answered once, the account's own never"
    );
    let (status, _) = shop
        .api(
            reqwest::Method::GET,
            &format!("/conversations/acme-ig:{IG_ACCOUNT}"),
            None,
        )
        .await;
    assert_eq!(
        status, 404,
        "the account's own comment is not a conversation"
    );
    shop.engine.shutdown().await;
}

#[tokio::test]
async fn a_page_comment_is_answered_under_it() {
    let shop = Shop::start("").await;
    let feed = |from: &str, comment_id: &str| {
        json!({"object": "page", "entry": [{"id": PAGE, "time": now_ms(), "changes": [{"field": "feed", "value": {
            "from": {"id": from, "name": "Ana"}, "post_id": format!("{PAGE}_77"), "comment_id": comment_id,
            "item": "comment", "verb": "add", "created_time": now_ms() / 1000, "message": "Are you open on Sunday? hours?"
        }}]}]})
    };
    shop.webhook(feed(PAGE, "77_1")).await;
    shop.webhook(feed("USER_9", "77_2")).await;
    let replies = shop.wait_calls(CallKind::PageCommentReply, 1).await;
    assert_eq!(replies[0].path, "/v21.0/77_2/comments");
    assert_eq!(replies[0].body["message"], HOURS);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(shop.calls(CallKind::PageCommentReply).len(), 1);
    shop.engine.shutdown().await;
}

#[tokio::test]
async fn an_attachment_is_acknowledged_and_listed() {
    let shop = Shop::start("").await;
    let url = "https://scontent.xx.fbcdn.net/v/t1.15752-9/photo.jpg?oh=abc";
    shop.webhook(
        json!({"object": "page", "entry": [{"id": PAGE, "time": now_ms(), "messaging": [{
            "sender": {"id": "PSID_ATT"}, "recipient": {"id": PAGE}, "timestamp": now_ms(),
            "message": {"mid": "m_att", "attachments": [{"type": "image", "payload": {"url": url}}]}
        }]}]}),
    )
    .await;
    let reply = shop.wait_calls(CallKind::Message, 1).await;
    let text = reply[0].body["message"]["text"].as_str().unwrap();
    assert!(text.starts_with("Thanks for the image"), "{text}");
    let view = shop.conversation("acme-fb:PSID_ATT", 2).await;
    let attachment = &view["messages"][0]["attachments"][0];
    assert_eq!(attachment["type"], "image");
    assert_eq!(attachment["url"], url);
    assert_eq!(attachment["link_expires"], true);
    // WhatsApp media arrive as ids, which also expire.
    shop.webhook(whatsapp(json!({"messages": [{
        "from": WA_ID, "id": "wamid.IMG", "timestamp": (now_ms() / 1000).to_string(), "type": "image",
        "image": {"caption": "this one", "mime_type": "image/jpeg", "sha256": "x", "id": "1003383421387256"}
    }]})))
    .await;
    let view = shop.conversation(&format!("acme-wa:{WA_ID}"), 2).await;
    let attachment = &view["messages"][0]["attachments"][0];
    assert_eq!(
        (
            attachment["id"].as_str(),
            attachment["caption"].as_str(),
            attachment["link_expires"].as_bool()
        ),
        (Some("1003383421387256"), Some("this one"), Some(true))
    );
    shop.engine.shutdown().await;
}

#[tokio::test]
async fn a_person_sends_files_where_the_channel_takes_them_and_gets_422_where_not() {
    let shop = Shop::start("").await;
    shop.webhook(instagram(
        json!({"id": IG_ACCOUNT, "time": now_ms(), "messaging": [{
            "sender": {"id": "IGSID_F"}, "recipient": {"id": IG_ACCOUNT}, "timestamp": now_ms(),
            "message": {"mid": "ig_f1", "text": "can you send the manual?"}
        }]}),
    ))
    .await;
    shop.webhook(wa_text("wamid.F1", "manual please", now_ms()))
        .await;
    shop.conversation("acme-ig:IGSID_F", 2).await;
    shop.conversation(&format!("acme-wa:{WA_ID}"), 2).await;
    let send = |id: String, kind: &str| {
        let body =
            json!({"attachment": {"type": kind, "url": "https://files.example.com/manual.pdf"}});
        let shop = &shop;
        async move {
            shop.api(
                reqwest::Method::POST,
                &format!("/conversations/{id}/messages"),
                Some(body),
            )
            .await
        }
    };
    let (status, body) = send("acme-ig:IGSID_F".into(), "file").await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("instagram"),
        "{body}"
    );
    let (status, body) = send("acme-ig:IGSID_F".into(), "image").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = send(format!("acme-wa:{WA_ID}"), "file").await;
    assert_eq!(status, 200, "{body}");
    let ig = shop.calls(CallKind::Message);
    let last = ig.last().unwrap();
    assert_eq!(last.body["message"]["attachment"]["type"], "image");
    assert_eq!(
        last.body["message"]["attachment"]["payload"]["url"],
        "https://files.example.com/manual.pdf"
    );
    let wa = shop.calls(CallKind::WhatsappMessage);
    let last = wa.last().unwrap();
    assert_eq!(last.body["type"], "document");
    assert_eq!(
        last.body["document"]["link"],
        "https://files.example.com/manual.pdf"
    );
    let view = shop.conversation("acme-ig:IGSID_F", 3).await;
    assert_eq!(view["messages"][2]["attachments"][0]["type"], "image");
    assert_eq!(view["messages"][2]["author"], "agent");
    shop.engine.shutdown().await;
}

#[tokio::test]
async fn a_refused_token_shows_on_the_integration_until_a_call_succeeds() {
    let shop = Shop::start("").await;
    shop.sim.set_faults(switchboard::tools::sim::Faults {
        next: [switchboard::tools::sim::Fault::TokenExpired].into(),
        ..switchboard::tools::sim::Faults::default()
    });
    let token_of = |list: &Value, id: &str| {
        list["integrations"]
            .as_array()
            .and_then(|l| l.iter().find(|i| i["id"] == id))
            .map(|i| i["token"].as_str().unwrap_or_default().to_string())
    };
    let message = |mid: &str| {
        json!({"object": "page", "entry": [{"id": PAGE, "time": now_ms(), "messaging": [{
            "sender": {"id": "PSID_TOK"}, "recipient": {"id": PAGE}, "timestamp": now_ms(),
            "message": {"mid": mid, "text": "hours?"}
        }]}]})
    };
    shop.webhook(message("m_tok1")).await;
    let view = shop.conversation("acme-fb:PSID_TOK", 2).await;
    assert_eq!(view["messages"][1]["status"], "failed", "{view}");
    let (status, list) = shop
        .api(reqwest::Method::GET, "/integrations?tenant=acme", None)
        .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(token_of(&list, "acme-fb").as_deref(), Some("expired"));
    let fb = list["integrations"]
        .as_array()
        .and_then(|l| l.iter().find(|i| i["id"] == "acme-fb"))
        .cloned()
        .unwrap();
    assert_eq!(
        fb["auto_resume_after"], "24h",
        "as a config writes it: {fb}"
    );
    assert_eq!(token_of(&list, "acme-wa").as_deref(), Some("ok"));
    // A new token is in place (the simulator accepts again): the next reply
    // goes out and the integration is fine again.
    shop.webhook(message("m_tok2")).await;
    shop.wait_calls(CallKind::Message, 1).await;
    shop.conversation("acme-fb:PSID_TOK", 4).await;
    let (_, list) = shop.api(reqwest::Method::GET, "/integrations", None).await;
    assert_eq!(token_of(&list, "acme-fb").as_deref(), Some("ok"));
    shop.engine.shutdown().await;
}

/// One item the engine does not know inside a signed batch does not turn
/// the whole webhook into a 400 (Meta would redeliver the same body
/// forever): it is skipped and counted, and everything else in the batch is
/// answered as usual, on every channel.
#[tokio::test]
async fn unknown_items_in_a_batch_are_skipped_and_the_rest_answered() {
    let shop = Shop::start("").await;
    // WhatsApp: a status value and a message type never seen before, and
    // a malformed message, beside a real message.
    let mut wa = whatsapp(json!({
        "messages": [
            {"from": WA_ID, "id": "wamid.ODD", "timestamp": (now_ms() / 1000).to_string(), "type": "order", "order": {"catalog_id": "1"}},
            {"from": WA_ID, "timestamp": "1750263773", "type": "text", "text": {"body": "no id"}},
            {"from": WA_ID, "id": "wamid.REAL", "timestamp": (now_ms() / 1000).to_string(), "type": "text", "text": {"body": "What are your hours?"}}
        ],
        "statuses": [{"id": "wamid.X", "status": "warning", "timestamp": "1750263773", "recipient_id": WA_ID}]
    }));
    wa["entry"][0]["changes"]
        .as_array_mut()
        .unwrap()
        .push(json!({"field": "brand_new_field", "value": {"x": 1}}));
    shop.webhook(wa).await;
    let replies = shop.wait_calls(CallKind::WhatsappMessage, 1).await;
    assert_eq!(replies[0].recipient.as_deref(), Some(WA_ID));
    // Messenger: an unknown messaging item and one without its sender.
    shop.webhook(json!({"object": "page", "entry": [{"id": PAGE, "time": now_ms(), "messaging": [
        {"sender": {"id": "PSID_ODD"}, "recipient": {"id": PAGE}, "timestamp": now_ms(), "brand_new_event": {"x": 1}},
        {"recipient": {"id": PAGE}, "timestamp": now_ms(), "message": {"mid": "m_nosender", "text": "x"}},
        {"sender": {"id": "PSID_ODD"}, "recipient": {"id": PAGE}, "timestamp": now_ms(), "message": {"mid": "m_odd_real", "text": "hours?"}}
    ]}]}))
    .await;
    // Instagram: an unknown `changes` field beside a comment.
    shop.webhook(instagram(json!({"id": IG_ACCOUNT, "time": now_ms(), "changes": [
        {"field": "brand_new_field", "value": {"x": 1}},
        {"field": "comments", "value": {"from": {"id": "IGSID_ODD", "username": "odd"}, "media": {"id": "M"}, "id": "c_odd", "text": "hours?"}}
    ]})))
    .await;
    shop.wait_calls(CallKind::Message, 1).await;
    shop.wait_calls(CallKind::CommentReply, 1).await;
    let metrics = reqwest::get(format!("http://{}/metrics", shop.engine.metrics_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for (channel, kind) in [
        ("whatsapp", "unknown_status"),
        ("whatsapp", "malformed_item"),
        ("whatsapp", "unknown_field"),
        ("messenger", "unknown_item"),
        ("messenger", "malformed_item"),
        ("instagram", "unknown_field"),
    ] {
        let label = format!(
            "switchboard_webhook_items_skipped_total{{channel=\"{channel}\",kind=\"{kind}\"}}"
        );
        assert!(metrics.contains(&label), "{label} counted:\n{metrics}");
    }
    shop.engine.shutdown().await;
}
