//! The engine in-process against the Graph API simulator: what a Page's customers
//! and Meta's webhook delivery see.

use std::time::Duration;

use switchboard::app::{self, RunningEngine};

use crate::support::*;

struct Harness {
    graph: GraphSim,
    engine: RunningEngine,
    _dir: tempfile::TempDir,
}

impl Harness {
    async fn start(delay_ms: u64) -> Self {
        let graph = GraphSim::start().await;
        let dir = tempfile::tempdir().unwrap();
        let config = local_config(dir.path(), &graph, delay_ms);
        let engine = app::start(config).await.expect("engine starts");
        Self {
            graph,
            engine,
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/webhooks/meta/main", self.engine.addr)
    }

    /// A customer asks about the hours; waits for a text reply.
    async fn ask_and_wait_for_reply(&self, psid: &str, mid: &str) {
        let body = messages_body(&[(psid, mid, "What are your hours?")]);
        assert_eq!(post_webhook(&self.url(), body, Some(APP_SECRET)).await, 200);
        self.graph
            .wait_for("the reply", |calls| {
                calls.iter().any(|c| c.text().is_some())
            })
            .await;
    }
}

#[tokio::test]
async fn instant_undelayed_answer_is_sent_without_a_typing_indicator() {
    let h = Harness::start(0).await;
    h.ask_and_wait_for_reply("PSID_I", "m_i1").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let calls = h.graph.calls();
    assert!(
        calls.iter().all(|c| !c.is_typing()),
        "no typing_on before an instant answer: {calls:#?}"
    );
    h.engine.shutdown().await;
}

#[tokio::test]
async fn reply_is_preceded_by_typing_and_uses_the_send_api_shape() {
    let h = Harness::start(200).await;
    h.ask_and_wait_for_reply("PSID_A", "m_1").await;
    let calls = h.graph.calls();
    assert!(calls[0].is_typing(), "typing_on comes first: {calls:#?}");
    assert_eq!(calls[0].body["recipient"]["id"], "PSID_A");
    let reply = &calls[1];
    assert_eq!(reply.account, PAGE);
    assert_eq!(
        reply.token,
        Some(switchboard::tools::sim::fingerprint(TOKEN))
    );
    assert_eq!(reply.body["messaging_type"], "RESPONSE");
    assert_eq!(reply.body["recipient"]["id"], "PSID_A");
    assert_eq!(reply.text(), Some("We're open 9-5."));
    h.engine.shutdown().await;
}

#[tokio::test]
async fn a_message_delivered_three_times_is_answered_once() {
    let h = Harness::start(0).await;
    for _ in 0..3 {
        let body = messages_body(&[("PSID_D", "m_dup", "hello")]);
        assert_eq!(post_webhook(&h.url(), body, Some(APP_SECRET)).await, 200);
    }
    // A later, different message proves the conversation is still served.
    let body = messages_body(&[("PSID_D", "m_next", "hours?")]);
    assert_eq!(post_webhook(&h.url(), body, Some(APP_SECRET)).await, 200);
    h.graph
        .wait_for("two replies", |_| h.graph.texts_to("PSID_D").len() >= 2)
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let texts: Vec<_> = h
        .graph
        .texts_to("PSID_D")
        .iter()
        .map(|c| c.text().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        texts,
        ["Thanks! A teammate will reply soon.", "We're open 9-5."]
    );
    h.engine.shutdown().await;
}

#[tokio::test]
async fn every_customer_of_a_batch_is_answered() {
    let h = Harness::start(0).await;
    let body = messages_body(&[
        ("C1", "m_c1", "hi"),
        ("C2", "m_c2", "hours"),
        ("C3", "m_c3", "hey"),
    ]);
    assert_eq!(post_webhook(&h.url(), body, Some(APP_SECRET)).await, 200);
    h.graph
        .wait_for("three replies", |_| h.graph.texts().len() >= 3)
        .await;
    for c in ["C1", "C2", "C3"] {
        assert_eq!(h.graph.texts_to(c).len(), 1, "{c} answered once");
    }
    h.engine.shutdown().await;
}

#[tokio::test]
async fn bad_requests_get_their_status_and_no_answer() {
    let h = Harness::start(0).await;
    let body = || messages_body(&[("EVIL", "m_evil", "hours")]);
    assert_eq!(
        post_webhook(&h.url(), body(), Some("wrong-secret")).await,
        401,
        "forged"
    );
    assert_eq!(post_webhook(&h.url(), body(), None).await, 401, "missing");
    let garbage = b"{\"object\":\"page\",\"entry\":[{".to_vec();
    assert_eq!(
        post_webhook(&h.url(), garbage, Some(APP_SECRET)).await,
        400,
        "malformed"
    );
    let huge = vec![b' '; 70_000];
    assert_eq!(
        post_webhook(&h.url(), huge, Some(APP_SECRET)).await,
        413,
        "oversized"
    );
    let other_app = format!("http://{}/webhooks/meta/nope", h.engine.addr);
    assert_eq!(
        post_webhook(&other_app, body(), Some(APP_SECRET)).await,
        404,
        "unknown app"
    );
    // Signed by the app but of an object the engine does not serve (the
    // app's permissions subscription sent to the same URL): taken, or Meta
    // would send it again for days.
    let permissions = br#"{"object":"permissions","entry":[{"id":"1","time":1,"changes":[{"field":"email","value":{"verb":"granted"}}]}]}"#.to_vec();
    assert_eq!(
        post_webhook(&h.url(), permissions, Some(APP_SECRET)).await,
        200,
        "another object"
    );
    // A valid message after all that is answered: nothing was poisoned.
    let ok = messages_body(&[("GOOD", "m_good", "hours")]);
    assert_eq!(post_webhook(&h.url(), ok, Some(APP_SECRET)).await, 200);
    h.graph
        .wait_for("the good reply", |_| !h.graph.texts_to("GOOD").is_empty())
        .await;
    assert!(h.graph.texts_to("EVIL").is_empty());

    let metrics = reqwest::get(format!("http://{}/metrics", h.engine.metrics_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for outcome in [
        "bad_signature",
        "malformed",
        "too_large",
        "unknown_app",
        "ignored",
        "accepted",
    ] {
        assert!(
            metrics.contains(&format!("outcome=\"{outcome}\"")),
            "{outcome} counted:\n{metrics}"
        );
    }
    h.engine.shutdown().await;
}

#[tokio::test]
async fn subscription_handshake() {
    let h = Harness::start(0).await;
    let base = format!("{}?hub.mode=subscribe&hub.challenge=1158201444", h.url());
    let ok = reqwest::get(format!("{base}&hub.verify_token=verify-me"))
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().await.unwrap(), "1158201444");
    let bad = reqwest::get(format!("{base}&hub.verify_token=nope"))
        .await
        .unwrap();
    assert_eq!(bad.status(), 403);
    let ready = reqwest::get(format!("http://{}/readyz", h.engine.addr))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    h.engine.shutdown().await;
}

#[tokio::test]
async fn server_errors_are_retried_and_the_reply_is_delivered_once() {
    let h = Harness::start(0).await;
    h.graph.fail_next_calls(2);
    let body = messages_body(&[("PSID_R", "m_r", "hours")]);
    assert_eq!(post_webhook(&h.url(), body, Some(APP_SECRET)).await, 200);
    h.graph
        .wait_for("the reply", |_| !h.graph.texts_to("PSID_R").is_empty())
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let failed = h.graph.calls().iter().filter(|c| c.status == 500).count();
    assert_eq!(failed, 2, "two 500s were met");
    assert_eq!(
        h.graph.texts_to("PSID_R").len(),
        1,
        "delivered exactly once"
    );
    h.engine.shutdown().await;
}

#[tokio::test]
async fn a_passivated_conversation_comes_back_with_its_memory() {
    let h = Harness::start(0).await;
    let first = || messages_body(&[("PSID_S", "m_sleep_1", "hours")]);
    assert_eq!(post_webhook(&h.url(), first(), Some(APP_SECRET)).await, 200);
    h.graph
        .wait_for("the first reply", |_| h.graph.texts_to("PSID_S").len() == 1)
        .await;
    // The test config passivates after 2 s idle; give the sweep time to run.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    // Meta redelivers the first message to the rehydrated conversation, then a new one.
    assert_eq!(post_webhook(&h.url(), first(), Some(APP_SECRET)).await, 200);
    let second = messages_body(&[("PSID_S", "m_sleep_2", "hello")]);
    assert_eq!(post_webhook(&h.url(), second, Some(APP_SECRET)).await, 200);
    h.graph
        .wait_for("the second reply", |_| {
            h.graph.texts_to("PSID_S").len() >= 2
        })
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let texts: Vec<_> = h
        .graph
        .texts_to("PSID_S")
        .iter()
        .map(|c| c.text().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        texts,
        ["We're open 9-5.", "Thanks! A teammate will reply soon."]
    );
    h.engine.shutdown().await;
}

/// A message whose timestamp is far in the future (year 10000) is answered
/// and shown with its arrival time: the conversation's view and the
/// console's list still render.
#[tokio::test]
async fn a_message_from_the_far_future_is_answered_and_shown_at_its_arrival() {
    let desk = Desk::start(0, "").await;
    let before = switchboard::clock::now_ms();
    desk.customer_at("PSID_F", "m_f1", "hours?", 253_402_300_800_000)
        .await;
    let view = desk.settled("PSID_F", 2).await;
    let shown = view["last_activity"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        shown.starts_with(&switchboard::clock::rfc3339(before)[..4]),
        "{view:#}"
    );
    let (status, list) = desk.get("/conversations").await;
    assert_eq!(status, 200, "{list}");
    desk.engine.shutdown().await;
}
