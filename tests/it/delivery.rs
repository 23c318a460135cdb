//! Delivery truth against a Graph API that misbehaves the way real networks
//! do: a 200 that comes after the engine's timeout, a 200 cut in the middle
//! of its body, a 200 that is HTML. Meta accepted each of these; the
//! simulator then echoes the message back (with the engine's part id, as
//! Meta does), and the customer must get the reply exactly once, without
//! the echo taking the conversation over.

use std::time::Duration;

use serde_json::{json, Value};
use switchboard::app::{self, RunningEngine};
use switchboard::tools::sim::validate::CallKind;
use switchboard::tools::sim::{Fault, Faults, ReceiptTarget, Sim, SimOptions};

use crate::support::*;

/// The engine's request timeout here; late answers come well after it.
const REQUEST_TIMEOUT: &str = "400ms";
const LATE_MS: u64 = 1500;
/// How long an unconfirmed part waits for its echo before it is resent.
const CONFIRM_WAIT: &str = "4s";

/// An engine whose Graph API is a simulator that answers with `fault` once
/// and sends echoes (and, with `receipts`, delivery statuses) back.
struct Bench {
    sim: Sim,
    engine: RunningEngine,
    _dir: tempfile::TempDir,
}

impl Bench {
    async fn start(fault: Option<Fault>, echoes: bool) -> Self {
        Self::start_with(fault, echoes, "", CONFIRM_WAIT).await
    }

    /// Like [`Bench::start`], with `server` added to the `[server]` section
    /// and another `outbound.confirm_wait`.
    async fn start_with(
        fault: Option<Fault>,
        echoes: bool,
        server: &str,
        confirm_wait: &str,
    ) -> Self {
        // Each needs the other's address: the simulator's port first.
        let reserved = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let sim_addr = reserved.local_addr().unwrap();
        drop(reserved);
        let dir = tempfile::tempdir().unwrap();
        let toml = config_toml(
            dir.path(),
            &format!("http://{sim_addr}/v21.0"),
            "127.0.0.1:0",
            "127.0.0.1:0",
            0,
        )
        .replace(
            "confirm_wait = \"1s\"",
            &format!("confirm_wait = \"{confirm_wait}\"\nrequest_timeout = \"{REQUEST_TIMEOUT}\""),
        )
        .replace(
            "max_body_bytes = 65536",
            &format!("max_body_bytes = 65536\n{server}"),
        );
        let config = switchboard::config::load_from_str(&toml, &[]).unwrap();
        let engine = app::start(config).await.expect("engine starts");
        let sim = Sim::start(
            &sim_addr.to_string(),
            SimOptions {
                record_limit: 1000,
                faults: Faults {
                    next: fault.into_iter().collect(),
                    late_ms: LATE_MS,
                    ..Faults::default()
                },
                receipts: Some(ReceiptTarget {
                    url: format!("http://{}/webhooks/meta/main", engine.addr),
                    app_secret: APP_SECRET.into(),
                    read: false,
                    delay: Duration::from_millis(20),
                    instagram: Default::default(),
                    echoes,
                    app_id: 555,
                }),
                ..SimOptions::default()
            },
        )
        .await
        .unwrap();
        Self {
            sim,
            engine,
            _dir: dir,
        }
    }

    /// Asserts how many parts were sent again after their wait.
    async fn assert_resent(&self, n: u64) {
        let metrics = self.metrics().await;
        let resent = counted(
            &metrics,
            "switchboard_ambiguous_sends_total",
            "outcome=\"resent\"",
        );
        assert_eq!(resent, n, "{metrics}");
    }

    fn url(&self) -> String {
        format!("http://{}/webhooks/meta/main", self.engine.addr)
    }

    /// Replies the simulator accepted for `recipient` (whatever their
    /// answer looked like on the way back).
    fn replies_to(&self, recipient: &str) -> Vec<String> {
        self.sim
            .calls()
            .into_iter()
            .filter(|c| {
                c.status == 200
                    && c.recipient.as_deref() == Some(recipient)
                    && matches!(c.kind, Some(CallKind::Message | CallKind::WhatsappMessage))
            })
            .map(|c| c.text.unwrap_or_default())
            .collect()
    }

    async fn wait_for_replies(&self, recipient: &str, n: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while self.replies_to(recipient).len() < n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {n} replies to {recipient}: {:#?}",
                self.sim.calls()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn metrics(&self) -> String {
        reqwest::get(format!("http://{}/metrics", self.engine.metrics_addr))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    async fn conversation(&self, id: &str) -> Value {
        let r = reqwest::Client::new()
            .get(format!(
                "http://{}/api/v1/conversations/{id}",
                self.engine.addr
            ))
            .bearer_auth("admin")
            .send()
            .await
            .unwrap();
        r.json().await.unwrap()
    }

    /// Waits past the confirmation wait, so a resend would have happened.
    async fn past_the_wait(&self) {
        tokio::time::sleep(Duration::from_millis(4_000 + LATE_MS)).await;
    }
}

/// A webhook request whose body never comes: the engine refuses it (408)
/// once its request timeout passes. The connection stays open while the
/// returned stream lives.
async fn stalled_webhook(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpStream> {
    use tokio::io::AsyncWriteExt;
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(b"POST /webhooks/meta/main HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{")
        .await?;
    Ok(stream)
}

/// An engine whose Graph API answers its first send too late and sends no
/// echoes, with `server` settings and `confirm_wait`.
async fn late_answer_bench(server: &str, confirm_wait: &str) -> Bench {
    Bench::start_with(Some(Fault::LateAnswer), false, server, confirm_wait).await
}

fn counted(metrics: &str, name: &str, labels: &str) -> u64 {
    metrics
        .lines()
        .find(|l| l.starts_with(&format!("{name}{{")) && l.contains(labels))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A WhatsApp text webhook from `wa_id`.
fn whatsapp_message(wa_id: &str, wamid: &str, text: &str) -> Vec<u8> {
    let ts = (switchboard::clock::now_ms() / 1000).to_string();
    serde_json::to_vec(&json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "WABA", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550001", "phone_number_id": PHONE},
            "contacts": [{"profile": {"name": "Ana"}, "wa_id": wa_id}],
            "messages": [{"from": wa_id, "id": wamid, "timestamp": ts, "type": "text", "text": {"body": text}}]
        }}]}]
    }))
    .unwrap()
}

#[tokio::test]
async fn a_200_after_the_timeout_is_confirmed_by_its_echo_and_not_sent_again() {
    let b = Bench::start(Some(Fault::LateAnswer), true).await;
    let body = messages_body(&[("C_LATE", "m_late", "What are your hours?")]);
    assert_eq!(post_webhook(&b.url(), body, Some(APP_SECRET)).await, 200);
    b.wait_for_replies("C_LATE", 1).await;
    b.past_the_wait().await;
    assert_eq!(b.replies_to("C_LATE").len(), 1, "answered exactly once");
    let metrics = b.metrics().await;
    assert_eq!(
        counted(
            &metrics,
            "switchboard_ambiguous_sends_total",
            "outcome=\"confirmed\""
        ),
        1,
        "{metrics}"
    );
    assert_eq!(
        counted(
            &metrics,
            "switchboard_ambiguous_sends_total",
            "outcome=\"resent\""
        ),
        0
    );
    let view = b.conversation("acme-fb:C_LATE").await;
    assert_eq!(view["mode"], "ai", "the engine's own echo is no takeover");
    // Confirmed at the platform's stamp, so the delivery receipt the
    // platform sent after it covers it.
    assert_eq!(view["messages"][1]["status"], "delivered", "{view:#}");
    b.engine.shutdown().await;
}

#[tokio::test]
async fn a_200_cut_mid_body_is_sent_and_its_echo_is_no_takeover() {
    let b = Bench::start(Some(Fault::CutAnswer), true).await;
    let body = messages_body(&[("C_CUT", "m_cut", "What are your hours?")]);
    assert_eq!(post_webhook(&b.url(), body, Some(APP_SECRET)).await, 200);
    b.wait_for_replies("C_CUT", 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The AI still answers: the echo of its own message took nothing over.
    let body = messages_body(&[("C_CUT", "m_cut2", "And on Sunday?")]);
    assert_eq!(post_webhook(&b.url(), body, Some(APP_SECRET)).await, 200);
    b.wait_for_replies("C_CUT", 2).await;
    b.past_the_wait().await;
    assert_eq!(b.replies_to("C_CUT").len(), 2, "each message answered once");
    let view = b.conversation("acme-fb:C_CUT").await;
    assert_eq!(view["mode"], "ai", "{view:#}");
    b.engine.shutdown().await;
}

#[tokio::test]
async fn a_200_with_an_html_body_on_whatsapp_is_sent_once_and_learns_its_id_from_statuses() {
    let b = Bench::start(Some(Fault::HtmlAnswer), true).await;
    let body = whatsapp_message("15551230001", "wamid.IN1", "What are your hours?");
    assert_eq!(post_webhook(&b.url(), body, Some(APP_SECRET)).await, 200);
    b.wait_for_replies("15551230001", 1).await;
    // The `sent` and `delivered` statuses carry the part id: the part
    // learns its wamid and is marked delivered.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let view = b.conversation("acme-wa:15551230001").await;
        if view["messages"][1]["status"] == "delivered" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{view:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    b.past_the_wait().await;
    assert_eq!(b.replies_to("15551230001").len(), 1);
    b.engine.shutdown().await;
}

#[tokio::test]
async fn a_late_200_on_whatsapp_is_confirmed_by_its_status() {
    let b = Bench::start(Some(Fault::LateAnswer), true).await;
    let body = whatsapp_message("15551230002", "wamid.IN2", "What are your hours?");
    assert_eq!(post_webhook(&b.url(), body, Some(APP_SECRET)).await, 200);
    b.wait_for_replies("15551230002", 1).await;
    b.past_the_wait().await;
    assert_eq!(b.replies_to("15551230002").len(), 1);
    let metrics = b.metrics().await;
    assert_eq!(
        counted(
            &metrics,
            "switchboard_ambiguous_sends_total",
            "outcome=\"confirmed\""
        ),
        1,
        "{metrics}"
    );
    b.engine.shutdown().await;
}

/// The window confirmation cannot close: Meta accepted the message but
/// neither its answer nor its echo ever came. The part is resent once the
/// wait has passed (and counted), so the customer is answered even if the
/// first send was in fact lost.
#[tokio::test]
async fn without_any_confirmation_the_part_is_resent_after_the_wait() {
    let b = Bench::start(Some(Fault::LateAnswer), false).await;
    let body = messages_body(&[("C_LOST", "m_lost", "What are your hours?")]);
    assert_eq!(post_webhook(&b.url(), body, Some(APP_SECRET)).await, 200);
    b.wait_for_replies("C_LOST", 2).await;
    b.assert_resent(1).await;
    b.engine.shutdown().await;
}

/// `user` comments "What are your hours?" (comment `comment`) under the
/// Page's post `post`: Meta's feed webhook, taken with 200.
async fn comment_asks(b: &Bench, user: &str, post: &str, comment: &str) {
    let now = switchboard::clock::now_ms();
    let feed = serde_json::to_vec(&json!({"object": "page", "entry": [{"id": PAGE, "time": now, "changes": [
        {"field": "feed", "value": {"from": {"id": user, "name": "Ana"}, "post_id": format!("{PAGE}_{post}"),
         "comment_id": comment, "item": "comment", "verb": "add", "created_time": now / 1000,
         "message": "What are your hours?"}}]}]}))
    .unwrap();
    assert_eq!(post_webhook(&b.url(), feed, Some(APP_SECRET)).await, 200);
}

/// A public reply has no echo or status: one whose answer came after the
/// timeout is found among the comment's replies once the wait has passed,
/// and not posted again.
#[tokio::test]
async fn a_lost_answer_to_a_public_reply_is_found_under_the_comment_not_posted_twice() {
    let b = Bench::start(Some(Fault::LateAnswer), false).await;
    comment_asks(&b, "USER_C", "9", "9_1").await;
    let posted = || {
        b.sim
            .calls()
            .into_iter()
            .filter(|c| c.status == 200 && c.kind == Some(CallKind::PageCommentReply))
            .count()
    };
    // Past the confirmation wait (4 s) and the late answer (1.5 s).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
    while tokio::time::Instant::now() < deadline {
        assert!(posted() <= 1, "posted again: {:#?}", b.sim.calls());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(posted(), 1);
    b.assert_resent(0).await;
    b.engine.shutdown().await;
}

/// A public reply whose call never reached Meta (a gateway answered 504)
/// looks like one whose answer was lost: once the wait has passed it is
/// looked for under the comment, not found, and posted again. The
/// customer gets exactly one public reply.
#[tokio::test]
async fn a_public_reply_lost_on_its_way_is_posted_again_once() {
    let b = Bench::start(Some(Fault::GatewayTimeout), false).await;
    comment_asks(&b, "USER_G", "8", "8_1").await;
    let replies = |status: u16| {
        b.sim
            .calls()
            .into_iter()
            .filter(|c| c.status == status && c.kind == Some(CallKind::PageCommentReply))
            .count()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while replies(200) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never posted again: {:#?}",
            b.sim.calls()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(replies(504), 1, "{:#?}", b.sim.calls());
    b.past_the_wait().await;
    assert_eq!(
        replies(200),
        1,
        "posted once more, not twice: {:#?}",
        b.sim.calls()
    );
    b.assert_resent(1).await;
    b.engine.shutdown().await;
}

/// Meta delivers a refused webhook again later, and the echo that confirms
/// a send may be among them: after the engine turned a webhook away (here a
/// request whose body never came, 408), a part waiting for its echo is not
/// resent until `outbound.confirm_wait` has passed since, and the echo
/// delivered again in that time settles it. The customer gets one reply.
#[tokio::test]
async fn an_echo_redelivered_after_a_refusal_is_waited_for_and_nothing_is_resent() {
    let b = late_answer_bench("request_timeout = \"3s\"", CONFIRM_WAIT).await;
    let started = tokio::time::Instant::now();
    let body = messages_body(&[("C_REFUSED", "m_refused", "What are your hours?")]);
    assert_eq!(post_webhook(&b.url(), body, Some(APP_SECRET)).await, 200);
    b.wait_for_replies("C_REFUSED", 1).await;
    let part_id = b
        .sim
        .calls()
        .into_iter()
        .find(|c| c.recipient.as_deref() == Some("C_REFUSED"))
        .and_then(|c| c.body["message"]["metadata"].as_str().map(str::to_string))
        .expect("the reply carries its part id");
    // A webhook whose body never comes: refused when the server's request
    // timeout passes (3 s), before the part's wait (4 s) is over.
    let stalled = stalled_webhook(b.engine.addr).await.unwrap();
    // Past the part's own wait (about 4.4 s), well within the wait after
    // the refusal (about 7 s): Meta's redelivery of the echo arrives.
    tokio::time::sleep_until(started + Duration::from_millis(5_000)).await;
    let echo = page_body(vec![json!({
        "sender": {"id": PAGE}, "recipient": {"id": "C_REFUSED"},
        "timestamp": switchboard::clock::now_ms(),
        "message": {"is_echo": true, "app_id": 555, "mid": "m.echo.refused",
                    "metadata": part_id, "text": "We're open 9-5."}
    })]);
    assert_eq!(post_webhook(&b.url(), echo, Some(APP_SECRET)).await, 200);
    b.past_the_wait().await;
    assert_eq!(b.replies_to("C_REFUSED").len(), 1, "answered exactly once");
    let metrics = b.metrics().await;
    let ambiguous = |outcome: &str| {
        counted(
            &metrics,
            "switchboard_ambiguous_sends_total",
            &format!("outcome=\"{outcome}\""),
        )
    };
    assert_eq!(
        (ambiguous("confirmed"), ambiguous("resent")),
        (1, 0),
        "{metrics}"
    );
    drop(stalled);
    b.engine.shutdown().await;
}

/// Refusals that never stop (a client whose requests always time out)
/// hold a part waiting for its echo at most six `outbound.confirm_wait`s:
/// the customer still gets the reply while they go on.
#[tokio::test]
async fn refusals_that_never_stop_hold_a_resend_only_so_long() {
    let b = late_answer_bench("request_timeout = \"300ms\"", "1s").await;
    let started = tokio::time::Instant::now();
    // A request every 200 ms whose body never comes: a 408 (a refusal)
    // every few hundred milliseconds, for 20 s.
    let addr = b.engine.addr;
    let refusals = tokio::spawn(async move {
        let mut open = Vec::new();
        while started.elapsed() < Duration::from_secs(20) {
            if let Ok(stalled) = stalled_webhook(addr).await {
                open.push(stalled);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let body = messages_body(&[("C_HELD", "m_held", "What are your hours?")]);
    assert_eq!(post_webhook(&b.url(), body, Some(APP_SECRET)).await, 200);
    // Due after about 1.4 s, held by the refusals at most 6 s more.
    b.wait_for_replies("C_HELD", 2).await;
    assert!(
        started.elapsed() < Duration::from_secs(18),
        "resent only after the refusals stopped ({:?})",
        started.elapsed()
    );
    refusals.abort();
    b.engine.shutdown().await;
}

/// Echoes: one with the engine's app id (no part id) is the engine's own;
/// one from another app (the Page inbox) is a person answering.
#[tokio::test]
async fn only_other_apps_echoes_take_a_conversation_over() {
    let graph = GraphSim::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = local_config(dir.path(), &graph, 0);
    config.apps[0].meta_app_id = Some("555000000000001".into());
    let engine = app::start(config).await.unwrap();
    let url = format!("http://{}/webhooks/meta/main", engine.addr);
    let echo = |mid: &str, app_id: u64| {
        page_body(vec![json!({
            "sender": {"id": PAGE}, "recipient": {"id": "C_ECHO"},
            "timestamp": switchboard::clock::now_ms(),
            "message": {"is_echo": true, "app_id": app_id, "mid": mid, "text": "Sent by us"}
        })])
    };
    let msg = messages_body(&[("C_ECHO", "m_e1", "hi")]);
    assert_eq!(post_webhook(&url, msg, Some(APP_SECRET)).await, 200);
    graph
        .wait_for("the answer", |_| !graph.texts_to("C_ECHO").is_empty())
        .await;
    assert_eq!(
        post_webhook(&url, echo("m_own", 555000000000001), Some(APP_SECRET)).await,
        200
    );
    let msg = messages_body(&[("C_ECHO", "m_e2", "hours?")]);
    assert_eq!(post_webhook(&url, msg, Some(APP_SECRET)).await, 200);
    graph
        .wait_for("the second answer", |_| graph.texts_to("C_ECHO").len() == 2)
        .await;
    // The Page inbox's app: a person answered.
    assert_eq!(
        post_webhook(&url, echo("m_inbox", 263902037430900), Some(APP_SECRET)).await,
        200
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = reqwest::Client::new()
            .get(format!(
                "http://{}/api/v1/conversations/acme-fb:C_ECHO",
                engine.addr
            ))
            .bearer_auth("admin")
            .send()
            .await
            .unwrap();
        let view: Value = r.json().await.unwrap();
        if view["mode"] == "human" {
            assert_eq!(view["taken_over_by"], "inbox");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{view:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    engine.shutdown().await;
}
