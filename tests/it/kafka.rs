//! The Kafka bus against a real Kafka-protocol broker (Tansu, started by
//! `scripts/test.sh`; any Kafka with `SWITCHBOARD_TEST_KAFKA=host:port`).
//! Without a broker address these tests fail, saying how to get one, unless
//! `SWITCHBOARD_SKIP_KAFKA=1` asks to leave them out (they then print
//! SKIPPED: a skipped test is not a passed one).

use std::sync::Arc;
use std::time::Duration;

use switchboard::app;
use switchboard::config::KafkaConfig;

use crate::bus_conformance::{
    acknowledged_events_survive_a_restart, order_and_resume_after_finished_prefix, Backend,
};
use crate::support::*;

pub fn broker() -> Option<String> {
    match std::env::var("SWITCHBOARD_TEST_KAFKA") {
        Ok(b) if !b.is_empty() => Some(b),
        _ if std::env::var("SWITCHBOARD_SKIP_KAFKA").as_deref() == Ok("1") => {
            eprintln!("SKIPPED: SWITCHBOARD_SKIP_KAFKA=1, no broker");
            None
        }
        _ => panic!(
            "no Kafka broker: run ./scripts/test.sh (it starts one), set \
             SWITCHBOARD_TEST_KAFKA=host:port, or SWITCHBOARD_SKIP_KAFKA=1 to leave these tests out"
        ),
    }
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}-{}", std::process::id(), rand::random::<u32>())
}

fn kafka_config(brokers: &str, topic: &str, group: &str) -> KafkaConfig {
    KafkaConfig {
        brokers: brokers.into(),
        topic: topic.into(),
        group_id: group.into(),
        partitions: 3,
        replication_factor: 1,
        instance_id: String::new(),
        linger_ms: 1,
        publish_timeout_ms: 5000,
        session_timeout_ms: 6000,
        fetch_wait_max_ms: 5,
        assignment_strategy: "cooperative-sticky".into(),
        max_poll_interval_ms: 60_000,
    }
}

/// Tansu 0.6 answers a fetch from an offset inside a record batch with
/// nothing (Kafka returns the batch and the client skips the records before
/// the offset), so resuming in the middle of a webhook's batch cannot be
/// tested against it: that case runs against a real Kafka only.
pub fn broker_is_tansu() -> bool {
    std::env::var("SWITCHBOARD_TEST_KAFKA_IS_TANSU").as_deref() == Ok("1")
}

/// A topic and group of the test's own.
fn fresh_topic(brokers: &str) -> Backend {
    Backend::Kafka(kafka_config(
        brokers,
        &unique("sb-bus"),
        &unique("sb-group"),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_bus_keeps_conversation_order_and_resumes_after_the_finished_prefix() {
    let Some(brokers) = broker() else { return };
    let backend = fresh_topic(&brokers);
    order_and_resume_after_finished_prefix(&backend, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_bus_delivers_acknowledged_events_after_a_restart() {
    let Some(brokers) = broker() else { return };
    acknowledged_events_survive_a_restart(&fresh_topic(&brokers)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_bus_resumes_inside_a_webhooks_batch() {
    let Some(brokers) = broker() else { return };
    if broker_is_tansu() {
        eprintln!(
            "SKIPPED on Tansu: a fetch from an offset inside a record batch returns nothing; \
             run with SWITCHBOARD_TEST_KAFKA pointing at a real Kafka"
        );
        return;
    }
    let backend = fresh_topic(&brokers);
    order_and_resume_after_finished_prefix(&backend, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_on_kafka_answers_every_customer_once() {
    let Some(brokers) = broker() else { return };
    let graph = GraphSim::start().await;
    let dir = tempfile::tempdir().unwrap();
    let toml = kafka_toml(
        dir.path(),
        &graph,
        &brokers,
        &unique("sb-engine"),
        &unique("sb-engine-group"),
        "",
    );
    let config = switchboard::config::load_from_str(&toml, &[]).unwrap();
    let engine = app::start(config).await.expect("engine starts on Kafka");
    let url = format!("http://{}/webhooks/meta/main", engine.addr);
    answer_each_once(&graph, &[url], "K", 20).await;
    engine.shutdown().await;
}

/// Operators' commands travel on Kafka like customer events: a takeover
/// is applied (the caller gets the conversation back), silences the AI, and
/// resume brings it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn takeover_and_resume_travel_on_kafka() {
    let Some(brokers) = broker() else { return };
    let bus = kafka_bus_section(&brokers, &unique("sb-admin"), &unique("sb-admin-group"), "");
    let desk = Desk::start_with(0, "", &bus).await;
    desk.customer("PSID_KT", "m_kt1", "hours?").await;
    // Answered, and the answer written. (Published before the partitions
    // were assigned, the message counts as one a previous owner may have
    // answered: its reply waits `confirm_wait` for an echo first.)
    desk.graph
        .wait_for("the first answer", |_| {
            desk.graph.texts_to("PSID_KT").len() == 1
        })
        .await;
    desk.settled("PSID_KT", 2).await;
    let (status, view) = desk
        .post(
            "/conversations/acme-fb:PSID_KT/takeover",
            serde_json::json!({}),
        )
        .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["mode"], "human");
    desk.customer("PSID_KT", "m_kt2", "hours again?").await;
    desk.wait_conversation("PSID_KT", "the second message", |c| c["message_count"] == 3)
        .await;
    let (status, view) = desk
        .post(
            "/conversations/acme-fb:PSID_KT/resume",
            serde_json::json!({}),
        )
        .await;
    assert_eq!((status, view["mode"].as_str()), (200, Some("ai")), "{view}");
    desk.customer("PSID_KT", "m_kt3", "and now?").await;
    desk.graph
        .wait_for("the answer after resume", |_| {
            desk.graph.texts_to("PSID_KT").len() == 2
        })
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        desk.graph.texts_to("PSID_KT").len(),
        2,
        "nothing answered twice"
    );
    // Stopped, an engine on Kafka releases its embedded store at once too.
    let desk = desk.restart(0, "").await;
    assert_eq!(desk.conversation("PSID_KT").await["mode"], "ai");
    desk.engine.shutdown().await;
}

/// `n` customers (ids `{prefix}{i}`) each send one message, redelivered
/// once, round-robin over `urls`; each is answered exactly once.
async fn answer_each_once(graph: &GraphSim, urls: &[String], prefix: &str, n: usize) {
    for i in 0..n {
        let body = messages_body(&[(&format!("{prefix}{i}"), &format!("m_{prefix}{i}"), "hours?")]);
        post_until_accepted(&urls[i % urls.len()], body.clone()).await;
        // Meta redelivers it, to whichever instance.
        post_until_accepted(&urls[(i + 1) % urls.len()], body).await;
    }
    graph
        .wait_for("every reply", |_| graph.texts().len() >= n)
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    for i in 0..n {
        assert_eq!(
            graph.texts_to(&format!("{prefix}{i}")).len(),
            1,
            "customer {prefix}{i} answered once"
        );
    }
}

pub fn kafka_toml(
    dir: &std::path::Path,
    graph: &GraphSim,
    brokers: &str,
    topic: &str,
    group: &str,
    extra: &str,
) -> String {
    config_toml(dir, &graph.base_url(), "127.0.0.1:0", "127.0.0.1:0", 0)
        + &kafka_bus_section(brokers, topic, group, extra)
}

/// The `[bus]` section of an engine config on Kafka; `extra` lines go into
/// `[bus.kafka]`.
pub fn kafka_bus_section(brokers: &str, topic: &str, group: &str, extra: &str) -> String {
    format!(
        "\n[bus]\nkind = \"kafka\"\n[bus.kafka]\nbrokers = \"{brokers}\"\ntopic = \"{topic}\"\ngroup_id = \"{group}\"\npartitions = 6\nsession_timeout_ms = 6000\n{extra}\n"
    )
}

/// Posts until the engine takes it (a 503 is what Meta retries).
async fn post_until_accepted(url: &str, body: Vec<u8>) {
    for _ in 0..60 {
        if post_webhook(url, body.clone(), Some(APP_SECRET)).await == 200 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("webhook never accepted by {url}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_the_partitions_and_answer_every_customer_once() {
    let Some(brokers) = broker() else { return };
    let graph = GraphSim::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (topic, group) = (unique("sb-two"), unique("sb-two-group"));
    // One store for both, as the ScyllaDB store would be.
    let first = switchboard::config::load_from_str(
        &kafka_toml(dir.path(), &graph, &brokers, &topic, &group, ""),
        &[],
    )
    .unwrap();
    let store: Arc<dyn switchboard::store::Store> = Arc::new(
        switchboard::store::embedded::EmbeddedStore::open(
            &first.store.path,
            first.store.cache_bytes(),
        )
        .unwrap(),
    );
    let second = switchboard::config::load_from_str(
        &kafka_toml(dir.path(), &graph, &brokers, &topic, &group, ""),
        &[],
    )
    .unwrap();
    let a = app::start_with_store(first, store.clone()).await.unwrap();
    let b = app::start_with_store(second, store.clone()).await.unwrap();
    let urls = [
        format!("http://{}/webhooks/meta/main", a.addr),
        format!("http://{}/webhooks/meta/main", b.addr),
    ];
    answer_each_once(&graph, &urls, "T", 40).await;
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_stopped_webhooks_get_503_and_flow_again_when_it_is_back() {
    let Some(_) = broker() else { return };
    // A broker of this test's own, so it can be stopped (SIGSTOP: it stops
    // answering, as an unreachable broker does) and resumed.
    let Ok(tansu) = std::env::var("SWITCHBOARD_TANSU_BIN") else {
        eprintln!("SKIPPED: SWITCHBOARD_TANSU_BIN not set (scripts/test.sh sets it)");
        return;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let broker = std::process::Command::new(tansu)
        .args([
            "broker",
            "--listener-url",
            &format!("tcp://127.0.0.1:{port}"),
            "--advertised-listener-url",
            &format!("tcp://127.0.0.1:{port}"),
            "--storage-engine",
            "memory://tansu/",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let broker = KillOnDrop(broker);
    let brokers = format!("127.0.0.1:{port}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let graph = GraphSim::start().await;
    let dir = tempfile::tempdir().unwrap();
    let toml = kafka_toml(
        dir.path(),
        &graph,
        &brokers,
        &unique("sb-down"),
        &unique("sb-down-group"),
        "publish_timeout_ms = 1500",
    );
    let engine = app::start(switchboard::config::load_from_str(&toml, &[]).unwrap())
        .await
        .unwrap();
    let url = format!("http://{}/webhooks/meta/main", engine.addr);
    post_until_accepted(&url, messages_body(&[("D0", "m_d0", "hours?")])).await;
    graph
        .wait_for("the first reply", |_| graph.texts_to("D0").len() == 1)
        .await;

    let pid = broker.0.id().to_string();
    let signal = |sig: &str| {
        std::process::Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap();
    };
    signal("-STOP");
    let status = post_webhook(
        &url,
        messages_body(&[("D1", "m_d1", "hours?")]),
        Some(APP_SECRET),
    )
    .await;
    assert_eq!(
        status, 503,
        "not acknowledged while the broker does not answer"
    );
    let ready = reqwest::get(format!("http://{}/readyz", engine.addr))
        .await
        .unwrap()
        .status();
    assert_eq!(ready, 503, "not ready while the broker does not answer");

    signal("-CONT");
    post_until_accepted(&url, messages_body(&[("D1", "m_d1", "hours?")])).await;
    graph
        .wait_for("the reply after the broker came back", |_| {
            graph.texts_to("D1").len() == 1
        })
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(graph.texts_to("D1").len(), 1, "answered once");
    engine.shutdown().await;
}

/// A rebalance while a reply is in flight: instance A is sending (the
/// Graph API holds its answer for 5 s, longer than A may wait for its
/// events before releasing the partition), and instance B joins the group.
/// A lets no new call start, waits for the one in flight and writes what
/// came of it before the partition moves; B does not answer the customer
/// again, and every other customer is answered once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebalance_never_doubles_a_reply_that_is_in_flight() {
    let Some(brokers) = broker() else { return };
    let strategy = if broker_is_tansu() {
        "assignment_strategy = \"roundrobin\""
    } else {
        ""
    };
    let (topic, group) = (unique("sb-inflight"), unique("sb-inflight-group"));
    // The simulator's port first: the engines call it, it echoes to them.
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
    ) + &kafka_bus_section(&brokers, &topic, &group, strategy);
    let config = || switchboard::config::load_from_str(&toml, &[]).unwrap();
    let first = config();
    let store: Arc<dyn switchboard::store::Store> = Arc::new(
        switchboard::store::embedded::EmbeddedStore::open(
            &first.store.path,
            first.store.cache_bytes(),
        )
        .unwrap(),
    );
    let a = app::start_with_store(first, store.clone()).await.unwrap();
    let url_a = format!("http://{}/webhooks/meta/main", a.addr);
    let sim = switchboard::tools::sim::Sim::start(
        &sim_addr.to_string(),
        switchboard::tools::sim::SimOptions {
            record_limit: 1000,
            faults: switchboard::tools::sim::Faults {
                next: [switchboard::tools::sim::Fault::LateAnswer].into(),
                late_ms: 5_000,
                ..Default::default()
            },
            receipts: Some(switchboard::tools::sim::ReceiptTarget {
                url: url_a.clone(),
                app_secret: APP_SECRET.into(),
                read: false,
                delay: Duration::from_millis(20),
                instagram: Default::default(),
                echoes: true,
                app_id: 0,
            }),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    // A owns every partition before the first message.
    tokio::time::sleep(Duration::from_secs(2)).await;
    post_until_accepted(&url_a, messages_body(&[("INFLIGHT", "m_if", "hours?")])).await;
    let replies = |to: &str| {
        sim.calls()
            .into_iter()
            .filter(|c| {
                c.status == 200
                    && c.recipient.as_deref() == Some(to)
                    && c.kind == Some(switchboard::tools::sim::validate::CallKind::Message)
            })
            .count()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while replies("INFLIGHT") == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the send never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The reply is in flight (its answer 5 s away): B joins.
    let b = app::start_with_store(config(), store.clone())
        .await
        .unwrap();
    let url_b = format!("http://{}/webhooks/meta/main", b.addr);
    for i in 0..10 {
        let url = if i % 2 == 0 { &url_a } else { &url_b };
        post_until_accepted(
            url,
            messages_body(&[(&format!("AFTER{i}"), &format!("m_af{i}"), "hours?")]),
        )
        .await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    while (0..10).any(|i| replies(&format!("AFTER{i}")) == 0) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not every customer answered: {:#?}",
            sim.calls()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Past the late answer, a confirmation wait and a replay's hold.
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(
        replies("INFLIGHT"),
        1,
        "the reply in flight is not sent again"
    );
    for i in 0..10 {
        assert_eq!(replies(&format!("AFTER{i}")), 1, "AFTER{i} answered once");
    }
    a.shutdown().await;
    b.shutdown().await;
}
