//! The bus conformance suite: each scenario written once against the `Bus`
//! trait and run for every backend (the embedded log always; Kafka with a
//! broker, see `kafka.rs`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use switchboard::bus::embedded::EmbeddedBus;
use switchboard::bus::kafka::KafkaBus;
use switchboard::bus::{Bus, Delivery};
use switchboard::config::{ChannelKind, KafkaConfig};
use switchboard::event::{EventKind, InboundEvent};

/// Where a scenario's bus lives; opened again for restarts.
pub enum Backend {
    Embedded(PathBuf),
    Kafka(KafkaConfig),
}

impl Backend {
    pub async fn open(&self) -> Arc<dyn Bus> {
        match self {
            Backend::Kafka(config) => {
                KafkaBus::open(config, std::time::Duration::from_secs(2)).unwrap()
            }
            Backend::Embedded(dir) => {
                // A closed bus releases its file once its writer thread ends.
                for _ in 0..100 {
                    if let Ok(bus) = EmbeddedBus::open(dir) {
                        return bus;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                panic!("cannot reopen the embedded bus in {}", dir.display())
            }
        }
    }
}

pub fn event(conversation: usize, n: usize) -> InboundEvent {
    InboundEvent {
        conversation: switchboard::event::ConversationId::new(
            "acme-fb",
            &format!("C{conversation}"),
        ),
        integration: "acme-fb".into(),
        channel: ChannelKind::Messenger,
        customer: format!("C{conversation}"),
        timestamp_ms: 1_700_000_000_000 + n as u64,
        received_at_ms: 1_700_000_000_000 + n as u64,
        customer_name: None,
        kind: EventKind::Message {
            mid: format!("m_{conversation}_{n}"),
            text: Some(format!("message {n}")),
            attachments: vec![],
            quick_reply: None,
        },
    }
}

pub async fn receive(rx: &mut tokio::sync::mpsc::Receiver<Delivery>, n: usize) -> Vec<Delivery> {
    let mut out = Vec::new();
    while out.len() < n {
        match tokio::time::timeout(Duration::from_secs(30), rx.recv()).await {
            Ok(Some(d)) => out.push(d),
            other => panic!("got {} of {n} deliveries, then {other:?}", out.len()),
        }
    }
    out
}

pub fn mid(d: &Delivery) -> String {
    match &d.event.kind {
        EventKind::Message { mid, .. } => mid.clone(),
        other => panic!("unexpected {other:?}"),
    }
}

/// 30 events of 3 conversations; all finished but one; after a restart the
/// bus resumes at that event. `one_batch`: published as one webhook (one
/// record batch per partition), else one publish per event.
pub async fn order_and_resume_after_finished_prefix(backend: &Backend, one_batch: bool) {
    let bus = backend.open().await;
    let mut rx = bus.subscribe().await.unwrap();
    let events: Vec<InboundEvent> = (0..30).map(|n| event(n % 3, n)).collect();
    // The topic is created in the background: publishing may need a retry.
    let batches: Vec<&[InboundEvent]> = if one_batch {
        vec![&events[..]]
    } else {
        events.chunks(1).collect()
    };
    for batch in batches {
        let mut published = false;
        for _ in 0..30 {
            if bus.publish(batch).await.is_ok() {
                published = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        assert!(published, "the broker acknowledged the events");
    }
    let got = receive(&mut rx, 30).await;

    // Per conversation, the order of publishing.
    let mut per_conv: HashMap<String, Vec<String>> = HashMap::new();
    for d in &got {
        per_conv
            .entry(d.event.conversation.to_string())
            .or_default()
            .push(mid(d));
    }
    for c in 0..3 {
        let expected: Vec<String> = (0..30)
            .filter(|n| n % 3 == c)
            .map(|n| format!("m_{c}_{n}"))
            .collect();
        assert_eq!(per_conv[&format!("acme-fb:C{c}")], expected);
    }

    // Everything finished except one event of conversation 0: after a
    // restart of the group member, that event and the later ones of its
    // partition come again, nothing before it.
    let held = got.iter().find(|d| mid(d) == "m_0_12").unwrap().position;
    for d in &got {
        if d.position != held {
            bus.finished(d.position);
        }
    }
    bus.flush_commits().await.unwrap();
    bus.close().await;
    drop(rx);
    drop(bus);
    let again = backend.open().await;
    let mut rx = again.subscribe().await.unwrap();
    let first = receive(&mut rx, 1).await;
    assert_eq!(first[0].position, held, "resumes at the unfinished event");
    assert_eq!(mid(&first[0]), "m_0_12");
    let later_in_partition = got
        .iter()
        .filter(|d| d.position.partition == held.partition && d.position.offset > held.offset)
        .count();
    let rest = receive(&mut rx, later_in_partition).await;
    assert!(rest.iter().all(|d| d.position.partition == held.partition));
    again.close().await;
}

/// Published and acknowledged, not yet consumed, then the bus restarts:
/// every event is delivered after the restart, none twice.
pub async fn acknowledged_events_survive_a_restart(backend: &Backend) {
    let bus = backend.open().await;
    let events: Vec<InboundEvent> = (0..10).map(|n| event(n % 2, n)).collect();
    let mut published = false;
    for _ in 0..30 {
        if bus.publish(&events).await.is_ok() {
            published = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(published, "the bus acknowledged the events");
    bus.close().await;
    drop(bus);

    let again = backend.open().await;
    let mut rx = again.subscribe().await.unwrap();
    let got = receive(&mut rx, 10).await;
    let mut mids: Vec<String> = got.iter().map(mid).collect();
    mids.sort();
    let mut expected: Vec<String> = events
        .iter()
        .map(|e| match &e.kind {
            EventKind::Message { mid, .. } => mid.clone(),
            _ => String::new(),
        })
        .collect();
    expected.sort();
    assert_eq!(mids, expected);
    let extra = tokio::time::timeout(Duration::from_millis(500), rx.recv()).await;
    assert!(extra.is_err(), "nothing delivered twice: {extra:?}");
    again.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_bus_delivers_acknowledged_events_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    acknowledged_events_survive_a_restart(&Backend::Embedded(dir.path().to_path_buf())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_bus_keeps_conversation_order_and_resumes_after_the_finished_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::Embedded(dir.path().to_path_buf());
    order_and_resume_after_finished_prefix(&backend, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_bus_resumes_inside_a_webhooks_batch() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::Embedded(dir.path().to_path_buf());
    order_and_resume_after_finished_prefix(&backend, true).await;
}

/// The embedded bus is behind (a part waiting for its echo is not resent)
/// while it hands over what an earlier run left, and while accepted events
/// wait more than a moment for the engine; not once they are taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_bus_is_behind_while_replaying_or_while_events_wait() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::Embedded(dir.path().to_path_buf());
    let bus = backend.open().await;
    bus.publish(&[event(0, 0)]).await.unwrap();
    assert!(!bus.behind(0), "an event accepted a moment ago");
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert!(bus.behind(0), "an event waiting over a second");
    bus.close().await;
    drop(bus);

    let again = backend.open().await;
    assert!(
        again.behind(0),
        "the earlier run's event is not handed over yet"
    );
    let mut rx = again.subscribe().await.unwrap();
    receive(&mut rx, 1).await;
    // Marked handed over just after the queue took it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while again.behind(0) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "still behind once handed over"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    again.close().await;
}

/// A store folder of an earlier release keeps its bus in `bus.redb`: the
/// events it had not finished are delivered (as replays) by the log that
/// takes its place, the finished ones are not, and the old file is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_bus_takes_over_the_unfinished_events_of_an_old_bus_file() {
    use redb::TableDefinition;
    const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
    const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
    let dir = tempfile::tempdir().unwrap();
    {
        let db = redb::Database::create(dir.path().join("bus.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut log = txn.open_table(LOG).unwrap();
            for n in 0..4 {
                log.insert(n as u64, event(1, n).encode().as_slice())
                    .unwrap();
            }
            txn.open_table(META)
                .unwrap()
                .insert("committed", 2)
                .unwrap();
        }
        txn.commit().unwrap();
    }
    let bus = Backend::Embedded(dir.path().to_path_buf()).open().await;
    assert!(!dir.path().join("bus.redb").exists());
    let mut rx = bus.subscribe().await.unwrap();
    let got = receive(&mut rx, 2).await;
    assert_eq!(got.iter().map(mid).collect::<Vec<_>>(), ["m_1_2", "m_1_3"]);
    assert!(
        got.iter().all(|d| d.replay),
        "an earlier run may have handled them"
    );
    bus.publish(&[event(1, 4)]).await.unwrap();
    let got = receive(&mut rx, 1).await;
    assert_eq!(mid(&got[0]), "m_1_4");
    assert!(!got[0].replay);
    bus.close().await;
}
