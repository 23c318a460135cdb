//! The Graph API simulator and the load harness against the real engine
//! in-process: Meta's shapes and refusals, injected faults, receipts sent
//! back, and a short load run answered exactly once.

use std::time::Duration;

use serde_json::{json, Value};
use switchboard::app::{self, RunningEngine};
use switchboard::tools::loadgen::{Loadgen, LoadgenOptions};
use switchboard::tools::sim::validate::CallKind;
use switchboard::tools::sim::{Fault, Faults, ReceiptTarget, Sim, SimOptions};

use crate::support::*;

async fn engine_for(graph_base_url: &str, dir: &std::path::Path) -> RunningEngine {
    let toml = config_toml(dir, graph_base_url, "127.0.0.1:0", "127.0.0.1:0", 0);
    let config = switchboard::config::load_from_str(&toml, &[]).unwrap();
    app::start(config).await.expect("engine starts")
}

fn webhook_url(engine: &RunningEngine) -> String {
    format!("http://{}/webhooks/meta/main", engine.addr)
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn recorded_sim() -> SimOptions {
    SimOptions {
        record_limit: 10_000,
        ..SimOptions::default()
    }
}

#[tokio::test]
async fn sim_refuses_malformed_calls_in_metas_shape_and_records_every_call() {
    let sim = Sim::start("127.0.0.1:0", recorded_sim()).await.unwrap();
    let http = reqwest::Client::new();
    let url = format!("{}/{PAGE}/messages", sim.base_url());
    let post = |body: Value, token: Option<&str>| {
        let mut req = http.post(&url).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };

    let ok = post(
        json!({"recipient":{"id":"C1"},"messaging_type":"RESPONSE","message":{"text":"hi"}}),
        Some(TOKEN),
    )
    .await
    .unwrap();
    assert_eq!(ok.status(), 200);
    let answer: Value = ok.json().await.unwrap();
    assert_eq!(answer["recipient_id"], "C1");
    assert!(answer["message_id"].as_str().unwrap().starts_with("m_"));

    let missing_recipient = post(json!({"message":{"text":"hi"}}), Some(TOKEN))
        .await
        .unwrap();
    assert_eq!(missing_recipient.status(), 400);
    let error: Value = missing_recipient.json().await.unwrap();
    assert_eq!(error["error"]["code"], 100);
    assert_eq!(error["error"]["type"], "OAuthException");
    assert!(error["error"]["fbtrace_id"].is_string());

    let no_token = post(
        json!({"recipient":{"id":"C1"},"message":{"text":"hi"}}),
        None,
    )
    .await
    .unwrap();
    assert_eq!(no_token.status(), 401);
    assert_eq!(
        no_token.json::<Value>().await.unwrap()["error"]["code"],
        190
    );

    let listed: Value = http
        .get(format!("http://{}/_sim/calls?recipient=C1", sim.addr))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let calls = listed["calls"].as_array().unwrap();
    assert_eq!(
        calls.len(),
        2,
        "the accepted and the tokenless call to C1: {calls:#?}"
    );
    assert_eq!(calls[0]["status"], 200);
    assert_eq!(calls[0]["kind"], "message");
    assert_eq!(calls[1]["status"], 401);
    assert_eq!(sim.calls().len(), 3);
}

#[tokio::test]
async fn sim_faults_are_set_over_http_and_validated() {
    let sim = Sim::start("127.0.0.1:0", recorded_sim()).await.unwrap();
    let http = reqwest::Client::new();
    let faults_url = format!("http://{}/_sim/faults", sim.addr);
    let bad = http
        .post(&faults_url)
        .json(&json!({"server_error_rate": 2.0}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let set = http
        .post(&faults_url)
        .json(&json!({"throttle_rate": 1.0}))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 200);
    let throttled = http
        .post(format!("{}/PNID/messages", sim.base_url()))
        .bearer_auth(TOKEN)
        .json(&json!({"messaging_product":"whatsapp","recipient_type":"individual","to":"15550001","type":"text","text":{"body":"hi"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(throttled.status(), 429);
    assert_eq!(
        throttled.json::<Value>().await.unwrap()["error"]["code"],
        130429
    );
}

#[tokio::test]
async fn engine_rides_out_injected_faults_and_answers_once() {
    let sim = Sim::start(
        "127.0.0.1:0",
        SimOptions {
            faults: Faults {
                // The reply meets a 500 and a 613, then goes through.
                next: [Fault::ServerError, Fault::Throttled].into(),
                ..Faults::default()
            },
            ..recorded_sim()
        },
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_for(&sim.base_url(), dir.path()).await;
    let status = post_webhook(
        &webhook_url(&engine),
        messages_body(&[("C_FAULT", "m_f1", "What are your hours?")]),
        Some(APP_SECRET),
    )
    .await;
    assert_eq!(status, 200);
    wait_until("the reply", || sim.accepted(CallKind::Message) == 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let calls: Vec<_> = sim
        .calls()
        .into_iter()
        .filter(|c| c.recipient.as_deref() == Some("C_FAULT"))
        .collect();
    let statuses: Vec<u16> = calls.iter().map(|c| c.status).collect();
    assert_eq!(statuses, [500, 400, 200], "{calls:#?}");
    assert_eq!(sim.accepted(CallKind::Message), 1, "answered exactly once");
    engine.shutdown().await;
}

#[tokio::test]
async fn sim_sends_signed_delivery_and_read_webhooks_the_engine_accepts() {
    // Each needs the other's address: reserve the simulator's port first.
    let reserved = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let sim_addr = reserved.local_addr().unwrap();
    drop(reserved);
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_for(&format!("http://{sim_addr}/v21.0"), dir.path()).await;
    let sim = Sim::start(
        &sim_addr.to_string(),
        SimOptions {
            receipts: Some(ReceiptTarget {
                url: webhook_url(&engine),
                app_secret: APP_SECRET.into(),
                read: true,
                delay: Duration::from_millis(20),
                instagram: Default::default(),
                echoes: false,
                app_id: 0,
            }),
            ..recorded_sim()
        },
    )
    .await
    .unwrap();
    post_webhook(
        &webhook_url(&engine),
        messages_body(&[("C_R", "m_r1", "What are your hours?")]),
        Some(APP_SECRET),
    )
    .await;
    wait_until("a delivery and a read webhook accepted", || {
        sim.receipts_sent().0 >= 2
    })
    .await;
    assert_eq!(sim.receipts_sent().1, 0, "no receipt webhook refused");
    engine.shutdown().await;
}

#[tokio::test]
async fn short_load_run_is_answered_exactly_once() {
    let options = LoadgenOptions {
        target: String::new(),
        app_secret: APP_SECRET.into(),
        page: Some(PAGE.into()),
        instagram: Some(IG_ACCOUNT.into()),
        whatsapp: Some(PHONE.into()),
        instagram_share: 0.25,
        whatsapp_share: 0.2,
        sink: "127.0.0.1:0".into(),
        rate: 400.0,
        ramp_from: Some(100.0),
        duration: Duration::from_secs(3),
        customers: 60,
        round_robin: false,
        duplicates: 0.1,
        batch_max: 5,
        bursts: 0.05,
        burst_size: 3,
        out_of_order: 0.3,
        receipts: 0.1,
        retries: 2,
        max_in_flight: 2000,
        drain: Duration::from_secs(15),
        seed: 7,
        json: true,
        quiet: true,
        ..LoadgenOptions::default()
    };
    let mut harness = Loadgen::bind(options).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_for(&format!("http://{}/v21.0", harness.sink_addr()), dir.path()).await;
    harness.options.target = webhook_url(&engine);
    let report = harness.run().await.unwrap();
    assert!(report.replies_expected > 200, "{report}");
    assert!(report.duplicates_sent > 0, "{report}");
    assert_eq!(report.webhooks_failed, 0, "{report}");
    assert_eq!(report.replies_missing, 0, "{report}");
    assert_eq!(report.replies_duplicated, 0, "{report}");
    assert_eq!(report.replies_received, report.replies_expected);
    let json = serde_json::to_value(&report).unwrap();
    for field in [
        "offered_rate",
        "achieved_rate",
        "replies_expected",
        "replies_received",
        "replies_missing",
        "replies_duplicated",
    ] {
        assert!(json[field].is_number(), "{field} in {json}");
    }
    for field in ["ack_latency_ms", "e2e_latency_ms"] {
        for p in ["p50", "p99", "p999", "max"] {
            assert!(json[field][p].is_number(), "{field}.{p} in {json}");
        }
    }
    engine.shutdown().await;
}

#[tokio::test]
async fn loadgen_refuses_options_it_cannot_run() {
    let options = LoadgenOptions {
        target: "http://127.0.0.1:1/webhooks/meta/main".into(),
        app_secret: "s".into(),
        sink: "127.0.0.1:0".into(),
        rate: 10.0,
        duration: Duration::from_secs(1),
        customers: 1,
        retries: 0,
        max_in_flight: 1,
        drain: Duration::from_secs(1),
        quiet: true,
        ..LoadgenOptions::default()
    };
    let err = Loadgen::bind(options.clone()).await.err().unwrap();
    assert!(err.to_string().contains("--page"), "{err}");
    let with_page = LoadgenOptions {
        page: Some("P".into()),
        ..options
    };
    let harness = Loadgen::bind(with_page).await.unwrap();
    let err = harness.run().await.err().unwrap();
    assert!(err.to_string().contains("does not answer"), "{err}");
}

#[tokio::test]
async fn the_demo_shows_every_scene_and_answers_everyone_once() {
    let mut transcript = Vec::new();
    let report = switchboard::tools::demo::run(&mut transcript)
        .await
        .expect("the demo completes");
    let text = String::from_utf8(transcript).unwrap();
    assert!(report.exactly_once(), "{text}");
    for scene in [
        "1. A question, answered",
        "2. Meta redelivers",
        "3. A long answer, split",
        "4. A person takes over",
        "mode ai",
        "Every customer answered exactly once",
    ] {
        assert!(text.contains(scene), "missing {scene:?} in:\n{text}");
    }
}
