//! The real binary killed with SIGKILL after every webhook got its 200
//! (replies still delayed), then restarted: every customer is answered
//! exactly once, on the embedded bus and on Kafka.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::*;

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The real binary serving `config`; its logs go to the test's stderr at
/// `warn` (`SWITCHBOARD_TEST_ENGINE_LOG` sets another filter).
pub fn spawn_engine(config: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["serve", "--config"])
        .arg(config)
        .env(
            "SWITCHBOARD_LOG",
            std::env::var("SWITCHBOARD_TEST_ENGINE_LOG").unwrap_or("warn".into()),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("binary starts")
}

pub async fn wait_ready(port: u16) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/readyz")).await {
            if r.status() == 200 {
                return;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "engine not ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn sigkill_after_acks_loses_and_duplicates_nothing() {
    sigkill_after_acks("").await;
}

/// The same on the Kafka bus: what the killed instance had not committed
/// is delivered again after the restart, and answered once.
#[tokio::test]
async fn sigkill_on_kafka_loses_and_duplicates_nothing() {
    let Some(brokers) = crate::kafka::broker() else {
        return;
    };
    let bus = crate::kafka::kafka_bus_section(
        &brokers,
        &crate::kafka::unique("sb-crash"),
        &crate::kafka::unique("sb-crash-group"),
        "",
    );
    sigkill_after_acks(&bus).await;
}

/// The same with the Kafka settings every deployment starts with (12
/// partitions, a 10 s session), the engine killed a second after it
/// started: the restarted instance must take the partitions its dead
/// predecessor held, not sit idle with none (on Tansu it rejoins the group
/// to get them).
#[tokio::test]
async fn sigkill_and_restart_on_kafka_with_default_settings_answers_everyone() {
    let Some(brokers) = crate::kafka::broker() else {
        return;
    };
    let bus = format!(
        "\n[bus]\nkind = \"kafka\"\n[bus.kafka]\nbrokers = \"{brokers}\"\ntopic = \"{}\"\ngroup_id = \"{}\"\n",
        crate::kafka::unique("sb-defaults"),
        crate::kafka::unique("sb-defaults-group"),
    );
    sigkill_after(&bus, Duration::from_secs(1)).await;
}

/// 40 customers, each webhook acknowledged, replies delayed 1.5 s; SIGKILL;
/// restart: every customer answered exactly once. `extra` is appended to
/// the config (another bus).
async fn sigkill_after_acks(extra: &str) {
    sigkill_after(extra, Duration::ZERO).await;
}

/// [`sigkill_after_acks`], the webhooks sent `settle` after the engine is
/// ready.
async fn sigkill_after(extra: &str, settle: Duration) {
    let graph = GraphSim::start().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let toml = config_toml(
        dir.path(),
        &graph.base_url(),
        &format!("127.0.0.1:{port}"),
        &format!("127.0.0.1:{}", free_port()),
        1500,
    ) + extra;
    let config = dir.path().join("switchboard.toml");
    std::fs::write(&config, toml).unwrap();

    let mut engine = spawn_engine(&config);
    wait_ready(port).await;
    tokio::time::sleep(settle).await;
    let url = format!("http://127.0.0.1:{port}/webhooks/meta/main");
    let customers: Vec<String> = (0..40).map(|i| format!("CUST_{i}")).collect();
    for (i, c) in customers.iter().enumerate() {
        let mid = format!("m_crash_{i}");
        let body = messages_body(&[(c.as_str(), mid.as_str(), "hours?")]);
        assert_eq!(post_webhook(&url, body, Some(APP_SECRET)).await, 200);
    }
    // Every webhook is acknowledged; the replies are still waiting out
    // their 1.5 s delay. Kill without warning.
    engine.kill().unwrap();
    engine.wait().unwrap();
    let before = graph.texts().len();

    let mut engine = KillOnDrop(spawn_engine(&config));
    wait_ready(port).await;
    // Long enough for a broker that still counts the killed member to be
    // made to let go (a session timeout and a rejoin).
    graph
        .wait_for_everyone(&customers, Duration::from_secs(45))
        .await;
    // Let anything that would be sent twice arrive.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    engine.kill();
    for c in &customers {
        assert_eq!(
            graph.texts_to(c).len(),
            1,
            "{c} answered exactly once ({before} before the kill)"
        );
    }
}

/// A stopped engine has closed its data files when `shutdown` returns, so
/// the same process can start a new one on them at once.
#[tokio::test]
async fn a_stopped_engine_releases_its_data_at_once() {
    let mut desk = Desk::start(0, "").await;
    for round in 0..5 {
        desk.customer("PSID_RS", &format!("m_rs{round}"), "hours?")
            .await;
        desk.graph
            .wait_for("the answer", |_| {
                desk.graph.texts_to("PSID_RS").len() == round + 1
            })
            .await;
        desk = desk.restart(0, "").await;
    }
    desk.engine.shutdown().await;
}
