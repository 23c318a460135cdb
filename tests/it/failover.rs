//! Two engine processes in one consumer group on Kafka, sharing one
//! ScyllaDB-protocol store (kassandra, in this test process): one is killed
//! with SIGKILL under load, the other takes its partitions, and every
//! customer is answered exactly once: replayed events are recognised,
//! delayed replies the dead instance had planned are sent by the survivor.

use std::time::Duration;

use crate::crash::{free_port, spawn_engine, wait_ready};
use crate::kafka::{broker, broker_is_tansu, kafka_bus_section, unique};
use crate::store_conformance::{kassandra, schema_for_kassandra, scylla_config};
use crate::support::*;

/// The test config with its store on `nodes` / `keyspace` and its bus on
/// Kafka.
fn instance_toml(
    dir: &std::path::Path,
    graph: &GraphSim,
    port: u16,
    store: &switchboard::config::ScyllaConfig,
    bus: &str,
) -> String {
    let base = config_toml(
        dir,
        &graph.base_url(),
        &format!("127.0.0.1:{port}"),
        &format!("127.0.0.1:{}", free_port()),
        800,
    );
    let path_line = format!("[store]\npath = \"{}\"\n", dir.join("data").display());
    let scylla = format!(
        "[store]\nkind = \"scylla\"\npath = \"{}\"\n[store.scylla]\nnodes = [\"{}\"]\nkeyspace = \"{}\"\nreplication = \"{}\"\nawait_schema_agreement = false\napply_schema = false\n",
        dir.join("data").display(),
        store.nodes[0],
        store.keyspace,
        store.replication
    );
    assert!(
        base.contains(&path_line),
        "the test config's [store] section"
    );
    base.replace(&path_line, &scylla) + bus
}

/// Why an attempt could not judge the engine.
#[derive(Debug)]
struct Wedged;

/// The consumer group's state as its coordinator reports it.
fn group_state(brokers: &str, group: &str) -> Option<String> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .ok()?;
    let groups = consumer
        .fetch_group_list(Some(group), Duration::from_secs(2))
        .ok()?;
    groups.groups().first().map(|g| g.state().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_instance_killed_under_load_the_other_answers_everyone_once() {
    let Some(brokers) = broker() else { return };
    // Tansu 0.6 sometimes wedges the group after the killed member is
    // evicted: the survivor's partitions are revoked and the coordinator
    // reports the group "Unknown" from then on, rejoining or not (about 1
    // attempt in 5 here; see README, Testing). Such an attempt says nothing
    // of the engine: it is run again on a fresh topic and group, at most 4
    // times. Against a real Kafka there is one attempt.
    let attempts = if broker_is_tansu() { 4 } else { 1 };
    for attempt in 1..=attempts {
        match killed_under_load(&brokers).await {
            Ok(()) => return,
            Err(Wedged) if attempt < attempts => {
                eprintln!("Tansu wedged the consumer group (state \"Unknown\"): attempt {attempt} says nothing of the engine; trying again on a fresh topic and group");
            }
            Err(Wedged) => panic!("Tansu wedged the consumer group in {attempts} attempts"),
        }
    }
}

async fn killed_under_load(brokers: &str) -> Result<(), Wedged> {
    let store = scylla_config(vec![kassandra().to_string()], true);
    switchboard::store::scylla::apply_statements(&store, &schema_for_kassandra(&store))
        .await
        .expect("schema on kassandra");
    // Tansu 0.6 with cooperative-sticky assignment sometimes leaves the
    // surviving member with no partitions after the other is evicted (about
    // 1 run in 7 here; never in 8 runs with the eager protocol): on Tansu
    // this test uses `roundrobin`, against a real Kafka the default.
    let strategy = if broker_is_tansu() {
        eprintln!("Tansu: the failover test uses assignment_strategy = \"roundrobin\" (see README, Testing)");
        "assignment_strategy = \"roundrobin\"\nmax_poll_interval_ms = 8000"
    } else {
        ""
    };
    let group = unique("sb-failover-group");
    let bus = kafka_bus_section(brokers, &unique("sb-failover"), &group, strategy);
    let graph = GraphSim::start().await;
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (port_a, port_b) = (free_port(), free_port());
    let config_a = dir_a.path().join("a.toml");
    let config_b = dir_b.path().join("b.toml");
    std::fs::write(
        &config_a,
        instance_toml(dir_a.path(), &graph, port_a, &store, &bus),
    )
    .unwrap();
    std::fs::write(
        &config_b,
        instance_toml(dir_b.path(), &graph, port_b, &store, &bus),
    )
    .unwrap();
    let mut a = KillOnDrop(spawn_engine(&config_a));
    let mut b = KillOnDrop(spawn_engine(&config_b));
    wait_ready(port_a).await;
    wait_ready(port_b).await;
    // Let the group settle so both instances own partitions.
    tokio::time::sleep(Duration::from_secs(4)).await;

    let url = |port: u16| format!("http://127.0.0.1:{port}/webhooks/meta/main");
    let customers: Vec<String> = (0..60).map(|i| format!("FO_{i}")).collect();
    let post = |i: usize, port: u16| {
        let body = messages_body(&[(customers[i].as_str(), &format!("m_fo_{i}"), "hours?")]);
        let url = url(port);
        async move {
            for _ in 0..80 {
                if post_webhook(&url, body.clone(), Some(APP_SECRET)).await == 200 {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            panic!("webhook never accepted by {url}");
        }
    };
    // Half the customers, spread over both instances; replies wait 800 ms.
    for i in 0..30 {
        post(i, if i % 2 == 0 { port_a } else { port_b }).await;
    }
    // A dies with events uncommitted and replies planned but not sent.
    a.kill();
    // The load goes on at B, and Meta redelivers some of what A had taken.
    for i in 30..60 {
        post(i, port_b).await;
    }
    for i in (0..30).step_by(4) {
        post(i, port_b).await;
    }
    // A session timeout for the dead member to expire, a rebalance, and on
    // a broker that leaves its partitions unassigned the survivor's rejoin.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(45);
    let mut unknown_since: Option<tokio::time::Instant> = None;
    while !customers.iter().all(|c| !graph.texts_to(c).is_empty()) {
        if broker_is_tansu() {
            let brokers = brokers.to_string();
            let group = group.clone();
            let state = tokio::task::spawn_blocking(move || group_state(&brokers, &group))
                .await
                .ok()
                .flatten();
            if state.as_deref() == Some("Unknown") {
                let since = *unknown_since.get_or_insert_with(tokio::time::Instant::now);
                if since.elapsed() > Duration::from_secs(20) {
                    return Err(Wedged);
                }
            } else {
                unknown_since = None;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not every customer answered: {} replies",
            graph.texts().len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Anything that would be sent twice arrives meanwhile.
    tokio::time::sleep(Duration::from_secs(3)).await;
    b.kill();
    for c in &customers {
        assert_eq!(graph.texts_to(c).len(), 1, "{c} answered exactly once");
    }
    Ok(())
}
