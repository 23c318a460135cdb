//! The store conformance suite: each scenario is written once against the
//! `Store` trait and run for every backend:
//! - `embedded`: always;
//! - `kassandra`: the smoke subset, against kassandra (an in-memory
//!   single-node CQL server, protocol v4) started on 127.0.0.1 by this test
//!   process. It ignores TTL, gets clustering-range filters wrong and has no
//!   counters, so scenarios that depend on those are real-server-only;
//! - `scylla`: every scenario against a real ScyllaDB at `SCYLLA_URI`
//!   (`host:port[,host:port]`). These are `#[ignore]`d, so without
//!   `SCYLLA_URI` they show as skipped, never as passed; `scripts/test.sh`
//!   runs them when `SCYLLA_URI` is set.

use std::net::SocketAddr;
use std::sync::Arc;

use switchboard::config::{ChannelKind, ScyllaConfig};
use switchboard::store::embedded::EmbeddedStore;
use switchboard::store::scylla::{self, ScyllaStore};
use switchboard::store::{
    ConversationFilter, ConversationRecord, DailyCount, DeadLetter, Direction, MessageRecord,
    MessageStatus, Mode, Store, TurnWrite,
};

use crate::kafka::unique;

/// A store under test, with whatever must outlive it.
pub struct Under {
    pub store: Arc<dyn Store>,
    _dir: Option<tempfile::TempDir>,
}

async fn embedded() -> Under {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path(), 8 << 20).unwrap();
    Under {
        store: Arc::new(store),
        _dir: Some(dir),
    }
}

/// The kassandra server of this test process.
pub fn kassandra() -> SocketAddr {
    crate::cql_server::kassandra().expect("kassandra started")
}

pub use crate::cql_server::schema_for_kassandra;

/// Store settings for a fresh keyspace on `nodes`.
pub fn scylla_config(nodes: Vec<String>, single_test_node: bool) -> ScyllaConfig {
    ScyllaConfig {
        nodes,
        keyspace: unique("sb").replace('-', "_"),
        replication: "{'class': 'SimpleStrategy', 'replication_factor': 1}".into(),
        request_timeout_ms: 5_000,
        await_schema_agreement: !single_test_node,
        apply_schema: !single_test_node,
        // As the engine opens it: message lines with a time to live.
        message_ttl: Some(std::time::Duration::from_secs(90 * 86_400)),
        dead_letter_ttl: Some(std::time::Duration::from_secs(30 * 86_400)),
    }
}

async fn on_kassandra() -> Under {
    let config = scylla_config(vec![kassandra().to_string()], true);
    scylla::apply_statements(&config, &schema_for_kassandra(&config))
        .await
        .expect("schema on kassandra");
    let store = ScyllaStore::open_on_schema(&config)
        .await
        .expect("store on kassandra");
    Under {
        store: Arc::new(store),
        _dir: None,
    }
}

async fn real_scylla() -> Under {
    let Ok(uri) = std::env::var("SCYLLA_URI") else {
        panic!("SCYLLA_URI is not set: point it at a ScyllaDB (docker compose -f docker/compose.yaml up scylla) to run this");
    };
    let nodes = uri.split(',').map(|s| s.trim().to_string()).collect();
    let store = ScyllaStore::open(&scylla_config(nodes, false))
        .await
        .expect("store on ScyllaDB");
    Under {
        store: Arc::new(store),
        _dir: None,
    }
}

pub const NOW: u64 = 1_000 * 86_400_000;

fn record(id: &str, integration: &str) -> ConversationRecord {
    let customer = id.split_once(':').map_or(id, |(_, c)| c);
    ConversationRecord::new(id, integration, ChannelKind::Messenger, customer, NOW)
}

pub fn line(seq: u64, direction: Direction, text: &str) -> MessageRecord {
    MessageRecord {
        seq,
        direction,
        text: Some(text.into()),
        time_ms: NOW + seq,
        status: MessageStatus::Received,
        mid: Some(format!("m{seq}")),
        attachments: vec![],
        author: None,
        error: None,
    }
}

/// A turn writing `state` with new lines and remembered ids.
fn turn(state: &ConversationRecord, lines: Vec<MessageRecord>, ids: &[(&str, u64)]) -> TurnWrite {
    let mut w = TurnWrite::new(state.clone());
    w.messages = lines;
    w.dedup = ids.iter().map(|(i, e)| (i.to_string(), *e)).collect();
    w.deadline_changed = false;
    w.takeover_changed = false;
    w
}

/// Retention (embedded store): lines older than the cutoff go, newer ones
/// stay, in steps of a few conversations that go round.
#[tokio::test]
async fn retention_sweeps_old_lines_in_steps() {
    let under = embedded().await;
    let s = under.store;
    let day = 86_400_000;
    for i in 0..5 {
        let id = format!("fb:R{i}");
        let mut lines = Vec::new();
        for (seq, age_days) in [(1, 100), (2, 95), (3, 10), (4, 1)] {
            let mut l = line(seq, Direction::In, "x");
            l.time_ms = NOW - age_days * day;
            lines.push(l);
        }
        s.commit_turn(turn(&record(&id, "fb"), lines, &[]).into())
            .await
            .unwrap();
    }
    let cutoff = NOW - 90 * day;
    let (mut after, mut removed, mut steps) = (None::<String>, 0, 0);
    loop {
        let step = s
            .purge_old_lines(NOW, cutoff, after.as_deref(), 2)
            .await
            .unwrap();
        removed += step.lines_removed;
        steps += 1;
        after = step.next;
        if after.is_none() {
            break;
        }
    }
    assert_eq!((removed, steps), (10, 3));
    for i in 0..5 {
        let kept: Vec<u64> = s
            .messages(&format!("fb:R{i}"), 10)
            .await
            .unwrap()
            .iter()
            .map(|m| m.seq)
            .collect();
        assert_eq!(kept, [3, 4]);
    }
    let again = s.purge_old_lines(NOW, cutoff, None, 100).await.unwrap();
    assert_eq!((again.conversations, again.lines_removed), (5, 0));
}

/// Retention (embedded store) of a conversation with more old lines than
/// one step deletes: each step stays within its bound of rows (no turn
/// waits behind one huge deletion) and says more is due; the sweep goes on
/// in the same conversation and ends with every old line gone.
#[tokio::test]
async fn retention_of_a_long_conversation_goes_in_bounded_steps() {
    let under = embedded().await;
    let s = under.store;
    let day = 86_400_000;
    for (id, n) in [("fb:L0", 10_000u64), ("fb:L1", 3)] {
        let lines = (1..=n)
            .map(|seq| {
                let mut l = line(seq, Direction::In, "x");
                l.time_ms = NOW - 100 * day + seq;
                l
            })
            .collect();
        s.commit_turn(turn(&record(id, "fb"), lines, &[]).into())
            .await
            .unwrap();
    }
    let cutoff = NOW - 90 * day;
    let (mut after, mut removed, mut steps, mut full) = (None::<String>, 0, 0, 0);
    loop {
        let step = s
            .purge_old_lines(NOW, cutoff, after.as_deref(), 200)
            .await
            .unwrap();
        assert!(step.lines_removed <= 4_096, "{step:?}");
        removed += step.lines_removed;
        steps += 1;
        full += usize::from(step.full);
        after = step.next;
        if after.is_none() {
            break;
        }
        assert!(steps < 20, "the sweep never ends");
    }
    assert_eq!(removed, 10_003);
    assert!(full >= 2, "{full} full steps in {steps}");
    assert!(s.messages("fb:L0", 10).await.unwrap().is_empty());
    assert!(s.messages("fb:L1", 10).await.unwrap().is_empty());
}

/// Purging an integration (embedded store) with more rows than one write
/// step: everything of its conversations goes, over several steps, and
/// nothing of the integrations whose ids sort right beside it.
#[tokio::test]
async fn purging_a_large_integration_goes_in_steps_and_spares_its_neighbours() {
    let under = embedded().await;
    let s = under.store;
    let lines = |n: u64| (1..=n).map(|q| line(q, Direction::In, "x")).collect();
    let ids: Vec<(String, u64)> = (0..3_000)
        .map(|i| (format!("m-{i}"), NOW + 60_000))
        .collect();
    let ids: Vec<(&str, u64)> = ids.iter().map(|(m, e)| (m.as_str(), *e)).collect();
    for (id, integration, n) in [
        ("gone:A", "gone", 9_000),
        ("gone:B", "gone", 2),
        ("gone2:A", "gone2", 3),
        ("gonea:A", "gonea", 3),
    ] {
        s.commit_turn(turn(&record(id, integration), lines(n), &ids).into())
            .await
            .unwrap();
    }
    assert_eq!(s.purge_integration("gone").await.unwrap(), 2);
    for id in ["gone:A", "gone:B"] {
        assert!(s.conversation(id).await.unwrap().is_none());
        assert!(s.messages(id, 10).await.unwrap().is_empty());
        assert!(s.load_conversation(id, NOW).await.unwrap().is_none());
    }
    for id in ["gone2:A", "gonea:A"] {
        assert_eq!(s.messages(id, 10).await.unwrap().len(), 3);
        let kept = s.load_conversation(id, NOW).await.unwrap().unwrap();
        assert_eq!(kept.dedup.len(), 3_000, "{id}");
    }
    assert_eq!(s.purge_integration("gone").await.unwrap(), 0);
}

/// A purge cut short by a stop (embedded store) is finished at the next
/// start, and only that one.
#[tokio::test]
async fn a_purge_cut_short_is_finished_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path(), 8 << 20).unwrap();
    let lines = |n: u64| (1..=n).map(|q| line(q, Direction::In, "x")).collect();
    for (id, integration, n) in [
        ("gone:A", "gone", 9_000),
        ("gone:B", "gone", 2),
        ("kept:A", "kept", 3),
    ] {
        store
            .commit_turn(turn(&record(id, integration), lines(n), &[]).into())
            .await
            .unwrap();
    }
    assert_eq!(
        store.purge_integration_steps("gone", 1).await.unwrap(),
        (0, false)
    );
    assert_eq!(store.messages("kept:A", 10).await.unwrap().len(), 3);
    drop(store);
    let store = EmbeddedStore::open(dir.path(), 8 << 20).unwrap();
    assert!(
        store.conversation("gone:A").await.unwrap().is_some(),
        "not done yet"
    );
    assert_eq!(store.resume_purges(&["kept".into()]).await.unwrap(), 2);
    for id in ["gone:A", "gone:B"] {
        assert!(store.conversation(id).await.unwrap().is_none());
        assert!(store.messages(id, 10).await.unwrap().is_empty());
    }
    assert_eq!(store.messages("kept:A", 10).await.unwrap().len(), 3);
    assert_eq!(
        store.resume_purges(&[]).await.unwrap(),
        0,
        "nothing left noted"
    );
    // Cut short again, and an integration of the same id put in the config
    // file before the next start: the purge stops where it was (its note
    // dropped), what is left stays.
    store
        .commit_turn(turn(&record("kept:B", "kept"), lines(9_000), &[]).into())
        .await
        .unwrap();
    assert_eq!(
        store.purge_integration_steps("kept", 1).await.unwrap(),
        (0, false)
    );
    assert_eq!(store.resume_purges(&["kept".into()]).await.unwrap(), 0);
    assert!(store.conversation("kept:B").await.unwrap().is_some());
    assert_eq!(
        store.finish_purge("kept").await.unwrap(),
        0,
        "its note dropped"
    );
    assert!(store.conversation("kept:B").await.unwrap().is_some());
    // Cut short, then the id used again (created through the API) before
    // any start: what is left of the earlier one goes first.
    assert_eq!(
        store.purge_integration_steps("kept", 1).await.unwrap(),
        (0, false)
    );
    assert_eq!(store.finish_purge("other").await.unwrap(), 0);
    assert_eq!(store.finish_purge("kept").await.unwrap(), 2);
    assert!(store.conversation("kept:B").await.unwrap().is_none());
    assert!(store.messages("kept:A", 10).await.unwrap().is_empty());
}

/// Remembered message ids (embedded store): the retention sweep forgets
/// those whose window ended and keeps the rest, which a rehydrated
/// conversation still knows; none of its lines are touched.
#[tokio::test]
async fn retention_sweep_forgets_ids_past_their_window() {
    let under = embedded().await;
    let s = under.store;
    // Ids that are prefixes of one another: each sweep and read stays in
    // its own conversation.
    let convs = ["fb:D1", "fb:D10", "fb:D100"];
    for id in convs {
        let (old, now, live) = (format!("old{id}"), format!("now{id}"), format!("live{id}"));
        let ids = [
            (old.as_str(), NOW - 1),
            (now.as_str(), NOW),
            (live.as_str(), NOW + 60_000),
        ];
        let w = turn(&record(id, "fb"), vec![line(1, Direction::In, "x")], &ids);
        s.commit_turn(w.into()).await.unwrap();
    }
    let (mut after, mut forgotten) = (None::<String>, 0);
    loop {
        let step = s
            .purge_old_lines(NOW, 0, after.as_deref(), 2)
            .await
            .unwrap();
        forgotten += step.ids_forgotten;
        assert_eq!(step.lines_removed, 0);
        after = step.next;
        if after.is_none() {
            break;
        }
    }
    assert_eq!(forgotten, 6, "two ids of each conversation had expired");
    for id in convs {
        let back = s.load_conversation(id, NOW - 10).await.unwrap().unwrap();
        let mids: Vec<&str> = back.dedup.iter().map(|(m, _)| m.as_str()).collect();
        assert_eq!(
            mids,
            [format!("live{id}")],
            "only its own live id is left, even read as of earlier"
        );
        assert_eq!(s.messages(id, 10).await.unwrap().len(), 1);
    }
    let again = s.purge_old_lines(NOW, 0, None, 100).await.unwrap();
    assert_eq!(again.ids_forgotten, 0);
}

/// Remembered ids a store file of an earlier version holds (one row per
/// id, keyed by conversation and mid) are still known after an upgrade,
/// and forgotten by the sweep once their window ends.
#[tokio::test]
async fn remembered_ids_of_an_earlier_version_are_read_and_swept() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = redb::Database::create(dir.path().join("store.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let def: redb::TableDefinition<(&str, &str), u64> = redb::TableDefinition::new("dedup");
            let mut t = txn.open_table(def).unwrap();
            t.insert(("fb:U", "m_gone"), NOW - 1).unwrap();
            t.insert(("fb:U", "m_kept"), NOW + 60_000).unwrap();
            t.insert(("fb:V", "m_other"), NOW - 1).unwrap();
            // Remembered again below with a later expiry: the later one holds.
            t.insert(("fb:U", "m_new"), NOW + 1).unwrap();
        }
        txn.commit().unwrap();
    }
    let s = EmbeddedStore::open(dir.path(), 8 << 20).unwrap();
    s.commit_turn(turn(&record("fb:U", "fb"), vec![], &[("m_new", NOW + 5)]).into())
        .await
        .unwrap();
    s.commit_turn(turn(&record("fb:V", "fb"), vec![], &[]).into())
        .await
        .unwrap();
    let mids = |r: &switchboard::store::Rehydrated| {
        let mut m: Vec<String> = r.dedup.iter().map(|(m, _)| m.clone()).collect();
        m.sort();
        m
    };
    let before = s.load_conversation("fb:U", NOW).await.unwrap().unwrap();
    assert_eq!(
        mids(&before),
        ["m_kept", "m_new"],
        "expired ids are not rehydrated"
    );
    let earlier = s
        .load_conversation("fb:U", NOW - 10)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        mids(&earlier),
        ["m_gone", "m_kept", "m_new"],
        "not yet swept"
    );
    let m_new: Vec<u64> = before
        .dedup
        .iter()
        .filter(|(m, _)| m == "m_new")
        .map(|(_, e)| *e)
        .collect();
    assert_eq!(
        m_new,
        [NOW + 5],
        "an id remembered twice keeps its later expiry"
    );
    let step = s.purge_old_lines(NOW, 0, None, 100).await.unwrap();
    assert_eq!(step.ids_forgotten, 2);
    let after = s
        .load_conversation("fb:U", NOW - 10)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(mids(&after), ["m_kept", "m_new"], "m_gone was deleted");
    let step = s.purge_old_lines(NOW + 10, 0, None, 100).await.unwrap();
    assert_eq!(
        step.ids_forgotten, 2,
        "m_new's window ended, in both layouts"
    );
}

/// Dead letters and audit entries go after their own retention, the
/// newer ones stay (embedded store; ScyllaDB's expire by time to live).
#[tokio::test]
async fn old_dead_letters_and_audit_entries_go() {
    let under = embedded().await;
    let s = under.store;
    let day = 86_400_000;
    for (i, age) in [(1u64, 40), (2, 35), (3, 2)] {
        s.dead_letter(DeadLetter {
            conversation: format!("fb:{i}"),
            position: format!("0@{i}"),
            event: serde_json::json!({"n": i}),
            error: "handling crashed".into(),
            at_ms: NOW - age * day,
        })
        .await
        .unwrap();
        let key = format!("{:015}-{i:08x}", NOW - age * day);
        s.put_record(switchboard::store::RecordKind::Audit, &key, b"{}".to_vec())
            .await
            .unwrap();
    }
    assert_eq!(s.purge_dead_letters(NOW - 30 * day).await.unwrap(), 2);
    let left: Vec<String> = s
        .dead_letters()
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.conversation)
        .collect();
    assert_eq!(left, ["fb:3"]);
    let removed = switchboard::admin::audit::purge(s.as_ref(), NOW - 30 * day)
        .await
        .unwrap();
    assert_eq!(removed, 2);
    let audit = s
        .records(switchboard::store::RecordKind::Audit)
        .await
        .unwrap();
    assert_eq!(audit.len(), 1);
}

/// `compact` gives the space of deleted lines back to the file system, and
/// refuses a store an engine holds.
#[tokio::test]
async fn compact_returns_the_space_of_deleted_lines() {
    let dir = tempfile::tempdir().unwrap();
    let compact = || switchboard::store::embedded::compact::compact_dir(dir.path());
    let store = EmbeddedStore::open(dir.path(), 8 << 20).unwrap();
    // Text that does not compress, as real lines mostly do not at this size.
    let mut seed = 7u64;
    let mut text = || -> String {
        (0..2000)
            .map(|_| {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                char::from(b'a' + (seed >> 59) as u8 % 26)
            })
            .collect()
    };
    for i in 0..300 {
        let mut l = line(1, Direction::In, &text());
        l.time_ms = 1;
        let w = turn(&record(&format!("fb:C{i}"), "fb"), vec![l], &[]);
        store.commit_turn(w.into()).await.unwrap();
    }
    let busy = compact();
    assert!(
        busy.unwrap_err()
            .to_string()
            .contains("engine still running"),
        "an open store is not compacted"
    );
    assert!(
        !dir.path().join("store").join("repair").exists(),
        "nor are the journals of a running engine copied"
    );
    drop(store);
    // The lines go from the journal into the store's table files.
    let written = compact().unwrap();
    assert!(written[0].after > 300 * 2000, "{written:?}");
    let store = EmbeddedStore::open(dir.path(), 8 << 20).unwrap();
    let mut after = None;
    loop {
        let step = store
            .purge_old_lines(NOW, NOW, after.as_deref(), 100)
            .await
            .unwrap();
        after = step.next;
        if after.is_none() {
            break;
        }
    }
    assert!(store.messages("fb:C7", 10).await.unwrap().is_empty());
    drop(store);
    let files = compact().unwrap();
    let tables = files.iter().find(|f| f.path.ends_with("store")).unwrap();
    assert!(
        tables.after * 3 < tables.before,
        "{} -> {} bytes",
        tables.before,
        tables.after
    );
}

// ---- scenarios -----------------------------------------------------------

/// A turn comes back whole: state, remembered ids, the log in order.
async fn turn_round_trip(under: Under) {
    let s = under.store;
    let mut state = record("fb:A", "fb");
    state.message_count = 2;
    state.next_seq = 3;
    let w = turn(
        &state,
        vec![
            line(1, Direction::In, "hi"),
            line(2, Direction::Out, "hello"),
        ],
        &[("m1", NOW + 60_000)],
    );
    s.commit_turn(w.into()).await.unwrap();
    let back = s.load_conversation("fb:A", NOW).await.unwrap().unwrap();
    assert_eq!(back.state, state);
    assert_eq!(back.dedup, vec![("m1".to_string(), NOW + 60_000)]);
    assert_eq!(s.conversation("fb:A").await.unwrap(), Some(state));
    let lines = s.messages("fb:A", 10).await.unwrap();
    let texts: Vec<_> = lines.iter().map(|m| m.text.clone().unwrap()).collect();
    assert_eq!(texts, ["hi", "hello"]);
    assert!(s
        .load_conversation("fb:nobody", NOW)
        .await
        .unwrap()
        .is_none());
    assert!(s.ready().await);
}

/// The newest lines, oldest first, when the log is longer than asked.
async fn latest_lines_first_to_last(under: Under) {
    let s = under.store;
    let state = record("fb:L", "fb");
    let lines = (1..=30)
        .map(|i| line(i, Direction::In, &format!("n{i}")))
        .collect();
    s.commit_turn(turn(&state, lines, &[]).into())
        .await
        .unwrap();
    let last = s.messages("fb:L", 5).await.unwrap();
    let seqs: Vec<_> = last.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, [26, 27, 28, 29, 30]);
}

/// Delivery, read and failure marks change the lines they name.
async fn status_marks(under: Under) {
    let s = under.store;
    let state = record("fb:S", "fb");
    let mut sent = line(1, Direction::Out, "one");
    sent.status = MessageStatus::Sent;
    let mut sent2 = line(2, Direction::Out, "two");
    sent2.status = MessageStatus::Sent;
    s.commit_turn(turn(&state, vec![sent, sent2], &[]).into())
        .await
        .unwrap();
    let mut w = turn(&state, vec![], &[]);
    w.status_updates = vec![(1, MessageStatus::Read)];
    w.failures = vec![(2, "Re-engagement message (code 131047)".into())];
    s.commit_turn(w.into()).await.unwrap();
    let lines = s.messages("fb:S", 10).await.unwrap();
    assert_eq!(lines[0].status, MessageStatus::Read);
    assert_eq!(lines[1].status, MessageStatus::Failed);
    assert_eq!(
        lines[1].error.as_deref(),
        Some("Re-engagement message (code 131047)")
    );
}

/// Remembered ids past their window are not handed back.
async fn expired_ids_are_forgotten(under: Under) {
    let s = under.store;
    let state = record("fb:D", "fb");
    let w = turn(
        &state,
        vec![],
        &[("old", NOW - 1), ("fresh", NOW + 3_600_000)],
    );
    s.commit_turn(w.into()).await.unwrap();
    let back = s.load_conversation("fb:D", NOW).await.unwrap().unwrap();
    assert_eq!(back.dedup, vec![("fresh".to_string(), NOW + 3_600_000)]);
}

/// The timer index follows the conversation's next deadline.
async fn timers_follow_the_deadline(under: Under) {
    let s = under.store;
    let mut state = record("fb:T", "fb");
    state.reply_due_ms = Some(NOW + 5_000);
    let mut w = turn(&state, vec![], &[]);
    w.deadline_changed = true;
    s.commit_turn(w.into()).await.unwrap();
    assert_eq!(
        s.timers().await.unwrap(),
        vec![("fb:T".into(), NOW + 5_000)]
    );
    state.reply_due_ms = Some(NOW + 9_000);
    let mut w = turn(&state, vec![], &[]);
    w.deadline_changed = true;
    w.previous_deadline = Some(NOW + 5_000);
    s.commit_turn(w.into()).await.unwrap();
    assert_eq!(
        s.timers().await.unwrap(),
        vec![("fb:T".into(), NOW + 9_000)]
    );
    state.reply_due_ms = None;
    let mut w = turn(&state, vec![], &[]);
    w.deadline_changed = true;
    w.previous_deadline = Some(NOW + 9_000);
    s.commit_turn(w.into()).await.unwrap();
    assert!(s.timers().await.unwrap().is_empty());
}

/// The takeover index follows the mode.
async fn takeover_index(under: Under) {
    let s = under.store;
    let mut state = record("fb:H", "fb");
    state.mode = Mode::Human;
    state.auto_resume_ms = Some(NOW + 600_000);
    let mut w = turn(&state, vec![], &[]);
    w.takeover_changed = true;
    s.commit_turn(w.into()).await.unwrap();
    assert_eq!(
        s.takeovers(&["fb".into()]).await.unwrap(),
        vec![("fb:H".to_string(), Some(NOW + 600_000))]
    );
    state.mode = Mode::Ai;
    state.auto_resume_ms = None;
    let mut w = turn(&state, vec![], &[]);
    w.takeover_changed = true;
    s.commit_turn(w.into()).await.unwrap();
    assert!(s.takeovers(&["fb".into()]).await.unwrap().is_empty());
}

/// Listing by filter, in id order, paged; counts per integration.
async fn listing_and_counts(under: Under) {
    let s = under.store;
    for (id, integration, human) in [
        ("fb:1", "fb", false),
        ("fb:2", "fb", true),
        ("fb:3", "fb", false),
        ("ig:1", "ig", false),
    ] {
        let mut state = record(id, integration);
        if human {
            state.mode = Mode::Human;
        }
        if integration == "ig" {
            state.channel = ChannelKind::Instagram;
            state.last_activity_ms = NOW - 10 * 86_400_000;
        }
        s.commit_turn(turn(&state, vec![], &[]).into())
            .await
            .unwrap();
    }
    let ids = |list: Vec<ConversationRecord>| list.into_iter().map(|c| c.id).collect::<Vec<_>>();
    let all = ConversationFilter::default();
    assert_eq!(
        ids(s.list_conversations(&all, None, 10).await.unwrap()),
        ["fb:1", "fb:2", "fb:3", "ig:1"]
    );
    assert_eq!(
        ids(s.list_conversations(&all, Some("fb:2"), 2).await.unwrap()),
        ["fb:3", "ig:1"]
    );
    let fb_ai = ConversationFilter {
        integrations: Some(vec!["fb".into()]),
        channel: Some(ChannelKind::Messenger),
        mode: Some(Mode::Ai),
    };
    assert_eq!(
        ids(s.list_conversations(&fb_ai, None, 10).await.unwrap()),
        ["fb:1", "fb:3"]
    );
    let fb_and_ig = ConversationFilter {
        integrations: Some(vec!["ig".into(), "fb".into()]),
        ..ConversationFilter::default()
    };
    assert_eq!(
        ids(s.list_conversations(&fb_and_ig, None, 10).await.unwrap()),
        ["fb:1", "fb:2", "fb:3", "ig:1"]
    );
    let both = ["fb".to_string(), "ig".to_string()];
    assert_eq!(
        s.conversation_counts(&both, NOW - 86_400_000)
            .await
            .unwrap(),
        (4, 3)
    );
}

/// Dead letters are kept, oldest first.
/// Documents are kept, listed, removed once; every change moves the
/// revision other instances poll.
async fn knowledge_documents(under: Under) {
    let s = under.store;
    let doc = |assistant: &str, id: &str| switchboard::store::DocumentRecord {
        assistant: assistant.into(),
        id: id.into(),
        tenant: Some("acme".into()),
        title: format!("Title {id}"),
        text: "We ship in two days.".into(),
        created_ms: NOW,
        vectors: vec![vec![0.6, 0.8]],
    };
    let r0 = s.knowledge_revision().await.unwrap();
    s.put_document(doc("a", "d1")).await.unwrap();
    let r1 = s.knowledge_revision().await.unwrap();
    assert_ne!(r0, r1);
    s.put_document(doc("b", "d2")).await.unwrap();
    let mut all = s.documents().await.unwrap();
    all.sort_by(|x, y| x.id.cmp(&y.id));
    assert_eq!(all, [doc("a", "d1"), doc("b", "d2")]);
    // Changes made one right after the other each move the revision (an
    // instance that read it between them reloads again).
    let r2 = s.knowledge_revision().await.unwrap();
    assert_ne!(r2, r1);
    assert!(s.delete_document("a", "d1").await.unwrap());
    let r3 = s.knowledge_revision().await.unwrap();
    assert_ne!(r3, r2);
    s.put_document(doc("c", "d3")).await.unwrap();
    assert!(s.delete_document("c", "d3").await.unwrap());
    assert_ne!(s.knowledge_revision().await.unwrap(), r3);
    assert!(!s.delete_document("a", "d1").await.unwrap());
    assert!(!s.delete_document("b", "d1").await.unwrap());
    assert_eq!(s.documents().await.unwrap(), [doc("b", "d2")]);
}

/// A key is found by its hash and revoked by its tenant only.
async fn tenant_keys(under: Under) {
    let s = under.store;
    let key = switchboard::store::TenantKeyRecord {
        id: "key_1".into(),
        tenant: "acme".into(),
        hash: "ab12".into(),
        created_ms: NOW,
    };
    s.put_tenant_key(key.clone()).await.unwrap();
    assert_eq!(s.tenant_key("ab12").await.unwrap(), Some(key));
    assert_eq!(s.tenant_key("ffff").await.unwrap(), None);
    assert!(!s.delete_tenant_key("globex", "key_1").await.unwrap());
    assert!(s.delete_tenant_key("acme", "key_1").await.unwrap());
    assert_eq!(s.tenant_key("ab12").await.unwrap(), None);
}

/// Control records by kind and key, with a revision that moves with every
/// change; and a purge that takes one integration's conversations only.
/// Writes conversation `id` with every kind of row a conversation has:
/// state, lines, dedup ids, a takeover, a timer, a quarantine.
async fn every_kind_of_row(s: &dyn Store, id: &str, integration: &str) {
    let mut state = record(id, integration);
    state.mode = Mode::Human;
    state.auto_resume_ms = Some(NOW + 600_000);
    state.reply_due_ms = Some(NOW + 9_000);
    let mut w = turn(
        &state,
        vec![line(1, Direction::In, "hi")],
        &[("m1", NOW + 60_000)],
    );
    w.takeover_changed = true;
    w.deadline_changed = true;
    s.commit_turn(w.into()).await.unwrap();
    s.put_quarantine(switchboard::store::QuarantineRecord {
        conversation: id.to_string(),
        reason: "test".into(),
        since_ms: NOW,
        failures: 3,
        events: Vec::new(),
    })
    .await
    .unwrap();
}

async fn control_records_and_purge(under: Under) {
    use switchboard::store::RecordKind;
    let s = under.store;
    let before = s.records_revision(RecordKind::Integrations).await.unwrap();
    s.put_record(RecordKind::Integrations, "acme-fb2", b"one".to_vec())
        .await
        .unwrap();
    s.put_record(RecordKind::Audit, "0001", b"audit".to_vec())
        .await
        .unwrap();
    let after = s.records_revision(RecordKind::Integrations).await.unwrap();
    assert_ne!(before, after);
    assert_eq!(
        s.records(RecordKind::Integrations).await.unwrap(),
        [("acme-fb2".to_string(), b"one".to_vec())]
    );
    assert!(!s
        .delete_record(RecordKind::Integrations, "nope")
        .await
        .unwrap());
    assert!(s
        .delete_record(RecordKind::Integrations, "acme-fb2")
        .await
        .unwrap());
    assert!(s
        .records(RecordKind::Integrations)
        .await
        .unwrap()
        .is_empty());
    assert_ne!(
        s.records_revision(RecordKind::Integrations).await.unwrap(),
        after
    );
    assert_eq!(s.records(RecordKind::Audit).await.unwrap().len(), 1);

    // Every kind of row a conversation has: state, lines, dedup ids, a
    // takeover, a quarantine.
    for (id, integration) in [("gone:A", "gone"), ("gone:B", "gone"), ("kept:A", "kept")] {
        every_kind_of_row(s.as_ref(), id, integration).await;
    }
    assert_eq!(s.purge_integration("gone").await.unwrap(), 2);
    let takeovers: Vec<String> = s
        .takeovers(&["gone".into(), "kept".into()])
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.0)
        .collect();
    assert_eq!(takeovers, ["kept:A"]);
    let timers: Vec<String> = s.timers().await.unwrap().into_iter().map(|t| t.0).collect();
    assert_eq!(timers, ["kept:A"]);
    let everything = ConversationFilter {
        integrations: Some(vec!["gone".into(), "kept".into()]),
        ..ConversationFilter::default()
    };
    let listed: Vec<String> = s
        .list_conversations(&everything, None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(listed, ["kept:A"]);
    assert!(s.quarantine("gone:A").await.unwrap().is_none());
    assert!(s.quarantine("kept:A").await.unwrap().is_some());
    assert!(s.conversation("gone:A").await.unwrap().is_none());
    assert!(s.messages("gone:B", 10).await.unwrap().is_empty());
    assert!(s.conversation("kept:A").await.unwrap().is_some());
    assert_eq!(s.messages("kept:A", 10).await.unwrap().len(), 1);
}

/// A tenant's listing pages through its integrations' conversations in id
/// order (on ScyllaDB: a range read of each integration's index partition,
/// never a table scan).
async fn listing_pages_by_integration(under: Under) {
    let s = under.store;
    for id in ["fb:1", "fb:2", "fb:3", "ig:1", "ig:2", "zz:1"] {
        let integration = id.split(':').next().unwrap();
        s.commit_turn(turn(&record(id, integration), vec![], &[]).into())
            .await
            .unwrap();
    }
    let ids = |list: Vec<ConversationRecord>| list.into_iter().map(|c| c.id).collect::<Vec<_>>();
    let fb_and_ig = ConversationFilter {
        integrations: Some(vec!["ig".into(), "fb".into()]),
        ..ConversationFilter::default()
    };
    let mut pages = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = ids(s
            .list_conversations(&fb_and_ig, after.as_deref(), 2)
            .await
            .unwrap());
        if page.is_empty() {
            break;
        }
        after = page.last().cloned();
        pages.push(page);
    }
    assert_eq!(
        pages,
        [vec!["fb:1", "fb:2"], vec!["fb:3", "ig:1"], vec!["ig:2"]]
    );
    // A cursor past an integration's ids skips it.
    assert_eq!(
        ids(s
            .list_conversations(&fb_and_ig, Some("fb:9"), 5)
            .await
            .unwrap()),
        ["ig:1", "ig:2"]
    );
}

async fn dead_letters_in_order(under: Under) {
    let s = under.store;
    for (i, at) in [(2u64, NOW + 2), (1, NOW + 1)] {
        s.dead_letter(DeadLetter {
            conversation: format!("fb:{i}"),
            position: format!("0@{i}"),
            event: serde_json::json!({"n": i}),
            error: "handling crashed".into(),
            at_ms: at,
        })
        .await
        .unwrap();
    }
    let letters = s.dead_letters().await.unwrap();
    let order: Vec<_> = letters.iter().map(|d| d.conversation.as_str()).collect();
    assert_eq!(order, ["fb:1", "fb:2"]);
    assert_eq!(letters[0].event, serde_json::json!({"n": 1}));
}

/// Writing the same turn twice (a replay) leaves what one write left.
async fn a_replayed_turn_changes_nothing(under: Under) {
    let s = under.store;
    let mut state = record("fb:R", "fb");
    state.reply_due_ms = Some(NOW + 1_000);
    let mut w = turn(
        &state,
        vec![line(1, Direction::In, "hi")],
        &[("m1", NOW + 60_000)],
    );
    w.deadline_changed = true;
    s.commit_turn(w.clone().into()).await.unwrap();
    s.commit_turn(w.into()).await.unwrap();
    assert_eq!(s.messages("fb:R", 10).await.unwrap().len(), 1);
    let back = s.load_conversation("fb:R", NOW).await.unwrap().unwrap();
    assert_eq!(back.dedup.len(), 1);
    assert_eq!(
        s.timers().await.unwrap(),
        vec![("fb:R".into(), NOW + 1_000)]
    );
}

/// Daily analytics rollups add up per integration and day.
async fn analytics_rollups(under: Under) {
    let s = under.store;
    let state = record("fb:N", "fb");
    let day = DailyCount::day_of(NOW);
    for _ in 0..2 {
        let mut w = turn(&state, vec![], &[]);
        w.counts = vec![DailyCount {
            day,
            inbound: 1,
            outbound: 2,
            delivered: 1,
            read: 1,
        }];
        s.commit_turn(w.into()).await.unwrap();
    }
    let counts = s.daily_counts(&["fb".into()], day).await.unwrap();
    assert_eq!(counts.len(), 1);
    let c = counts[0].1;
    assert_eq!(
        (c.day, c.inbound, c.outbound, c.delivered, c.read),
        (day, 2, 4, 2, 2)
    );
    assert!(s
        .daily_counts(&["fb".into()], day + 1)
        .await
        .unwrap()
        .is_empty());
}

// ---- the matrix ----------------------------------------------------------

/// `scenario: smoke` runs on embedded, real ScyllaDB and kassandra;
/// `scenario: real_only` leaves kassandra out (with the reason).
macro_rules! conformance {
    ($($scenario:ident: $kassandra:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test]
            async fn embedded() {
                super::$scenario(super::embedded().await).await
            }

            #[tokio::test]
            #[ignore = "needs SCYLLA_URI: a real ScyllaDB (see README, Testing)"]
            async fn scylla() {
                super::$scenario(super::real_scylla().await).await
            }

            conformance!(@kassandra $scenario $kassandra);
        }
    )*};
    (@kassandra $scenario:ident smoke) => {
        #[tokio::test]
        async fn kassandra() {
            super::$scenario(super::on_kassandra().await).await
        }
    };
    (@kassandra $scenario:ident real_only) => {};
}

conformance! {
    turn_round_trip: smoke,
    // kassandra returns a partition in ascending clustering order whatever
    // the table's CLUSTERING ORDER, so "the newest N" comes back oldest.
    latest_lines_first_to_last: real_only,
    status_marks: smoke,
    expired_ids_are_forgotten: smoke,
    timers_follow_the_deadline: smoke,
    takeover_index: smoke,
    listing_and_counts: smoke,
    // kassandra cannot bind a clustering-range restriction (`id > ?`).
    listing_pages_by_integration: real_only,
    dead_letters_in_order: smoke,
    a_replayed_turn_changes_nothing: smoke,
    // Counters: kassandra has no counter type.
    analytics_rollups: real_only,
    knowledge_documents: smoke,
    tenant_keys: smoke,
    control_records_and_purge: smoke,
}

/// A keyspace an earlier release wrote (conversations without index rows,
/// timers bucketed by hour, takeovers keyed by conversation) is upgraded
/// once: listed by integration, its timer and takeover found again; a
/// second upgrade reads nothing.
async fn upgrade_of_an_earlier_keyspace(config: ScyllaConfig) {
    use ::scylla::client::session_builder::SessionBuilder;
    let session = SessionBuilder::new()
        .known_nodes(&config.nodes)
        .build()
        .await
        .unwrap();
    let ks = &config.keyspace;
    let mut state = record("old:C", "old");
    state.reply_due_ms = Some(NOW + 5_000);
    session
        .query_unpaged(
            format!("INSERT INTO {ks}.conversations (id, integration, state) VALUES (?, ?, ?)"),
            ("old:C", "old", serde_json::to_vec(&state).unwrap()),
        )
        .await
        .unwrap();
    let due = (NOW + 5_000) as i64;
    session
        .query_unpaged(
            format!("INSERT INTO {ks}.timers (bucket, due_ms, conversation) VALUES (?, ?, ?)"),
            (due / 3_600_000, due, "old:C"),
        )
        .await
        .unwrap();
    session
        .query_unpaged(
            format!("INSERT INTO {ks}.takeovers (conversation, resume_ms) VALUES (?, ?)"),
            ("old:C", 0_i64),
        )
        .await
        .unwrap();

    let done = scylla::upgrade(&config).await.unwrap();
    assert_eq!((done.conversations, done.timers, done.takeovers), (1, 1, 1));
    let s = ScyllaStore::open_on_schema(&config).await.unwrap();
    let old = ConversationFilter {
        integrations: Some(vec!["old".into()]),
        ..ConversationFilter::default()
    };
    let listed = s.list_conversations(&old, None, 10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        s.timers().await.unwrap(),
        vec![("old:C".to_string(), NOW + 5_000)]
    );
    assert_eq!(
        s.takeovers(&["old".into()]).await.unwrap(),
        vec![("old:C".to_string(), None)]
    );
    assert_eq!(
        s.conversation_counts(&["old".into()], 0).await.unwrap(),
        (1, 1)
    );
    assert_eq!(
        scylla::upgrade(&config).await.unwrap(),
        scylla::Upgraded::default(),
        "the marker stops a second upgrade"
    );
}

#[tokio::test]
async fn upgrade_of_an_earlier_keyspace_on_kassandra() {
    let config = scylla_config(vec![kassandra().to_string()], true);
    scylla::apply_statements(&config, &schema_for_kassandra(&config))
        .await
        .unwrap();
    upgrade_of_an_earlier_keyspace(config).await;
}

#[tokio::test]
#[ignore = "needs SCYLLA_URI: a real ScyllaDB (see README, Testing)"]
async fn upgrade_of_an_earlier_keyspace_on_scylla() {
    let uri = std::env::var("SCYLLA_URI").expect("SCYLLA_URI");
    let config = scylla_config(
        uri.split(',').map(|s| s.trim().to_string()).collect(),
        false,
    );
    scylla::migrate(&config).await.unwrap();
    upgrade_of_an_earlier_keyspace(config).await;
}

/// A purge of the ScyllaDB store cut short (a timeout, a stop) stays noted
/// and is finished by the next start (`resume_purges`), or before its id is
/// used again (`finish_purge`); another integration's rows stay.
async fn a_scylla_purge_cut_short_is_finished(s: ScyllaStore) {
    for (id, integration) in [
        ("gone:A", "gone"),
        ("gone:B", "gone"),
        ("again:A", "again"),
        ("again:B", "again"),
        ("kept:A", "kept"),
    ] {
        every_kind_of_row(&s, id, integration).await;
    }
    assert_eq!(
        s.purge_integration_partly("gone", 1).await.unwrap(),
        (1, false)
    );
    assert_eq!(
        s.purge_integration_partly("again", 1).await.unwrap(),
        (1, false)
    );
    let left = |id: &'static str| {
        let s = &s;
        async move { s.conversation(id).await.unwrap().is_some() }
    };
    assert!(left("gone:A").await || left("gone:B").await, "not done yet");
    // "again" is used again: what is left of it goes first.
    assert_eq!(s.finish_purge("again").await.unwrap(), 1);
    assert!(!left("again:A").await && !left("again:B").await);
    assert_eq!(
        s.finish_purge("again").await.unwrap(),
        0,
        "its note is gone"
    );
    assert_eq!(s.resume_purges(&["kept".into()]).await.unwrap(), 1);
    assert!(!left("gone:A").await && !left("gone:B").await);
    assert!(s.messages("gone:A", 10).await.unwrap().is_empty());
    assert!(left("kept:A").await);
    assert_eq!(
        s.resume_purges(&[]).await.unwrap(),
        0,
        "nothing noted any more"
    );
}

#[tokio::test]
async fn a_scylla_purge_cut_short_is_finished_on_kassandra() {
    let config = scylla_config(vec![kassandra().to_string()], true);
    scylla::apply_statements(&config, &schema_for_kassandra(&config))
        .await
        .unwrap();
    let store = ScyllaStore::open_on_schema(&config).await.unwrap();
    a_scylla_purge_cut_short_is_finished(store).await;
}

#[tokio::test]
#[ignore = "needs SCYLLA_URI: a real ScyllaDB (see README, Testing)"]
async fn a_scylla_purge_cut_short_is_finished_on_scylla() {
    let uri = std::env::var("SCYLLA_URI").expect("SCYLLA_URI");
    let config = scylla_config(
        uri.split(',').map(|s| s.trim().to_string()).collect(),
        false,
    );
    scylla::migrate(&config).await.unwrap();
    let store = ScyllaStore::open_on_schema(&config).await.unwrap();
    a_scylla_purge_cut_short_is_finished(store).await;
}

/// The ScyllaDB store's analytics counts, written once a second, are
/// written at a clean stop (`close`): a store opened afterwards reads
/// them, none lost to the stop.
#[tokio::test]
#[ignore = "needs SCYLLA_URI: a real ScyllaDB (see README, Testing)"]
async fn analytics_counts_survive_a_clean_stop_on_scylla() {
    let uri = std::env::var("SCYLLA_URI").expect("SCYLLA_URI");
    let config = scylla_config(
        uri.split(',').map(|s| s.trim().to_string()).collect(),
        false,
    );
    let day = DailyCount::day_of(NOW);
    let s = ScyllaStore::open(&config).await.unwrap();
    let mut w = turn(&record("fb:S", "fb"), vec![], &[]);
    w.counts = vec![DailyCount {
        day,
        inbound: 3,
        outbound: 0,
        delivered: 0,
        read: 0,
    }];
    s.commit_turn(w.into()).await.unwrap();
    s.close().await.unwrap();
    drop(s);
    let again = ScyllaStore::open(&config).await.unwrap();
    let counts = again.daily_counts(&["fb".into()], day).await.unwrap();
    assert_eq!(counts.first().map(|c| c.1.inbound), Some(3), "{counts:?}");
}
