//! A `store.redb` of an earlier release is moved into the embedded store
//! at open: every table comes back through the store as it was, the file
//! is gone, and what was moved stays after a restart. The store engine's
//! background threads are as configured.

use switchboard::config::ChannelKind;
use switchboard::store::embedded::EmbeddedStore;
use switchboard::store::{
    ConversationFilter, ConversationRecord, DeadLetter, Direction, DocumentRecord,
    QuarantineRecord, RecordKind, Store, TenantKeyRecord,
};

use crate::store_conformance::{line, NOW};

fn json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

/// Writes a store file as the earlier release kept it: the same tables,
/// keys and values.
fn earlier_release_file(path: &std::path::Path) -> ConversationRecord {
    use redb::TableDefinition as T;
    let conv = ConversationRecord::new("fb:U", "fb", ChannelKind::Messenger, "U", NOW);
    let db = redb::Database::create(path).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut t = txn
            .open_table(T::<&str, &[u8]>::new("conversations"))
            .unwrap();
        t.insert("fb:U", json(&conv).as_slice()).unwrap();
        let mut other = conv.clone();
        other.id = "fb:\u{0}odd".into();
        t.insert("fb:\u{0}odd", json(&other).as_slice()).unwrap();
        let mut t = txn
            .open_table(T::<(&str, u64), &[u8]>::new("messages"))
            .unwrap();
        for seq in [2u64, 1, 300] {
            t.insert(
                ("fb:U", seq),
                json(&line(seq, Direction::In, &format!("line {seq}"))).as_slice(),
            )
            .unwrap();
        }
        let mut t = txn
            .open_table(T::<(&str, u64, &str), ()>::new("remembered_ids"))
            .unwrap();
        t.insert(("fb:U", NOW + 60_000, "m_new"), ()).unwrap();
        let mut t = txn
            .open_table(T::<(&str, &str), u64>::new("dedup"))
            .unwrap();
        t.insert(("fb:U", "m_old"), NOW + 30_000).unwrap();
        t.insert(("fb:U", "m_gone"), NOW - 1).unwrap();
        let mut t = txn.open_table(T::<&str, u64>::new("timers")).unwrap();
        t.insert("fb:U", NOW + 5_000).unwrap();
        let mut t = txn.open_table(T::<&str, u64>::new("takeovers")).unwrap();
        t.insert("fb:U", 0).unwrap();
        t.insert("fb:W", NOW + 9_000).unwrap();
        let mut t = txn
            .open_table(T::<u64, &[u8]>::new("dead_letters"))
            .unwrap();
        for n in 1..=2u64 {
            let letter = DeadLetter {
                conversation: format!("fb:D{n}"),
                position: format!("0@{n}"),
                event: serde_json::json!({ "n": n }),
                error: "handling crashed".into(),
                at_ms: NOW + n,
            };
            t.insert(n, json(&letter).as_slice()).unwrap();
        }
        let mut t = txn.open_table(T::<&str, &[u8]>::new("quarantine")).unwrap();
        let q = QuarantineRecord {
            conversation: "fb:Q".into(),
            reason: "poison".into(),
            since_ms: NOW,
            failures: 3,
            events: vec![],
        };
        t.insert("fb:Q", json(&q).as_slice()).unwrap();
        let mut t = txn
            .open_table(T::<(&str, u32), [u64; 4]>::new("analytics"))
            .unwrap();
        t.insert(("fb", 1000), [5, 4, 3, 2]).unwrap();
        t.insert(("fbx", 1000), [9, 9, 9, 9]).unwrap();
        let mut t = txn
            .open_table(T::<(&str, &str), &[u8]>::new("documents"))
            .unwrap();
        let doc = DocumentRecord {
            assistant: "helper".into(),
            id: "hours".into(),
            tenant: None,
            title: "Hours".into(),
            text: "Open 9 to 5".into(),
            created_ms: NOW,
            vectors: vec![],
        };
        t.insert(("helper", "hours"), json(&doc).as_slice())
            .unwrap();
        let mut t = txn.open_table(T::<&str, u64>::new("revisions")).unwrap();
        t.insert("knowledge", 7).unwrap();
        t.insert("control:audit", 4).unwrap();
        let mut t = txn
            .open_table(T::<&str, &[u8]>::new("tenant_keys"))
            .unwrap();
        let key = TenantKeyRecord {
            id: "k1".into(),
            tenant: "acme".into(),
            hash: "h1".into(),
            created_ms: NOW,
        };
        t.insert("h1", json(&key).as_slice()).unwrap();
        let mut t = txn
            .open_table(T::<(&str, &str), &[u8]>::new("control"))
            .unwrap();
        t.insert(("audit", "0001"), b"{\"a\":1}".as_slice())
            .unwrap();
        t.insert(("purging", "old"), b"".as_slice()).unwrap();
    }
    txn.commit().unwrap();
    conv
}

#[tokio::test]
async fn a_store_file_of_an_earlier_release_is_moved_in_whole() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("store.redb");
    let conv = earlier_release_file(&file);
    for reopened in [false, true] {
        let s = EmbeddedStore::open(dir.path(), 8 << 20).unwrap();
        assert!(!file.exists(), "the earlier file is gone once moved in");
        let back = s.load_conversation("fb:U", NOW).await.unwrap().unwrap();
        assert_eq!(back.state.id, conv.id, "reopened: {reopened}");
        let mut ids: Vec<(String, u64)> = back.dedup.clone();
        ids.sort();
        assert_eq!(
            ids,
            [
                ("m_new".to_string(), NOW + 60_000),
                ("m_old".to_string(), NOW + 30_000)
            ],
            "live ids of both layouts, the expired one not"
        );
        let texts: Vec<String> = s
            .messages("fb:U", 10)
            .await
            .unwrap()
            .into_iter()
            .filter_map(|l| l.text)
            .collect();
        assert_eq!(texts, ["line 1", "line 2", "line 300"], "in sequence order");
        let all = s
            .list_conversations(&ConversationFilter::default(), None, 10)
            .await
            .unwrap();
        let listed: Vec<&str> = all.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(
            listed,
            ["fb:\u{0}odd", "fb:U"],
            "ids with any byte, in order"
        );
        assert_eq!(
            s.timers().await.unwrap(),
            [("fb:U".to_string(), NOW + 5_000)]
        );
        let mut takeovers = s.takeovers(&["fb".to_string()]).await.unwrap();
        takeovers.sort();
        assert_eq!(
            takeovers,
            [
                ("fb:U".to_string(), None),
                ("fb:W".to_string(), Some(NOW + 9_000))
            ]
        );
        let letters: Vec<String> = s
            .dead_letters()
            .await
            .unwrap()
            .into_iter()
            .map(|d| d.conversation)
            .collect();
        assert_eq!(letters[..2], ["fb:D1", "fb:D2"]);
        assert_eq!(s.quarantine("fb:Q").await.unwrap().unwrap().failures, 3);
        let days = s.daily_counts(&["fb".to_string()], 0).await.unwrap();
        assert_eq!(days.len(), 1, "another integration's rollup is not fb's");
        assert_eq!(
            (days[0].1.day, days[0].1.inbound, days[0].1.read),
            (1000, 5, 2)
        );
        assert_eq!(s.documents().await.unwrap()[0].text, "Open 9 to 5");
        assert_eq!(s.knowledge_revision().await.unwrap(), 7);
        assert_eq!(
            s.records_revision(RecordKind::Audit).await.unwrap(),
            if reopened { 5 } else { 4 }
        );
        assert_eq!(s.tenant_key("h1").await.unwrap().unwrap().tenant, "acme");
        assert_eq!(
            s.records(RecordKind::Audit).await.unwrap()[0],
            ("0001".to_string(), b"{\"a\":1}".to_vec())
        );
        if !reopened {
            // What is written after the move counts on from what was moved.
            s.dead_letter(DeadLetter {
                conversation: "fb:D3".into(),
                position: "0@3".into(),
                event: serde_json::json!({}),
                error: "again".into(),
                at_ms: NOW + 3,
            })
            .await
            .unwrap();
            s.put_record(RecordKind::Audit, "0002", b"{}".to_vec())
                .await
                .unwrap();
            let letters = s.dead_letters().await.unwrap();
            assert_eq!(letters.len(), 3, "numbered after the moved ones");
            // A purge noted as under way in the earlier file does not stand
            // in the way of a start.
            assert_eq!(s.resume_purges(&[]).await.unwrap(), 0);
            s.sync().await.unwrap();
        } else {
            assert_eq!(s.dead_letters().await.unwrap().len(), 3);
            assert_eq!(s.records(RecordKind::Audit).await.unwrap().len(), 2);
        }
        drop(s);
    }
}

/// A move cut short (the store already holds the rows, the earlier file is
/// still there) is done again whole at the next start: the same rows,
/// nothing doubled, what was written since kept.
#[tokio::test]
async fn a_move_cut_short_is_done_again_without_doubling() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("store.redb");
    earlier_release_file(&file);
    let s = EmbeddedStore::open(dir.path(), 8 << 20).unwrap();
    let letters = s.dead_letters().await.unwrap().len();
    drop(s);
    earlier_release_file(&file);
    let s = EmbeddedStore::open(dir.path(), 8 << 20).unwrap();
    assert!(!file.exists());
    assert_eq!(
        s.dead_letters().await.unwrap().len(),
        letters,
        "not doubled"
    );
    assert_eq!(s.messages("fb:U", 10).await.unwrap().len(), 3);
    assert_eq!(s.knowledge_revision().await.unwrap(), 7);
}

/// An id longer than the store keeps is refused with an error that says
/// so, and the store goes on.
#[tokio::test]
async fn an_id_too_long_for_a_key_is_refused_and_the_store_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let s = EmbeddedStore::open(dir.path(), 8 << 20).unwrap();
    let long = format!("fb:{}", "x".repeat(70_000));
    let conv = ConversationRecord::new(&long, "fb", ChannelKind::Messenger, "x", NOW);
    let refused = s
        .commit_turn(switchboard::store::TurnWrite::new(conv).into())
        .await
        .expect_err("refused");
    assert!(!refused.retryable(), "{refused}");
    assert!(
        refused.to_string().contains("longer than the store keeps"),
        "{refused}"
    );
    assert!(s.load_conversation(&long, NOW).await.is_err());
    let conv = ConversationRecord::new("fb:ok", "fb", ChannelKind::Messenger, "ok", NOW);
    s.commit_turn(switchboard::store::TurnWrite::new(conv).into())
        .await
        .unwrap();
    assert!(s.conversation("fb:ok").await.unwrap().is_some());
}

/// Threads of this process named `name`.
fn threads_named(name: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|tasks| {
            tasks
                .flatten()
                .filter(|t| {
                    std::fs::read_to_string(t.path().join("comm"))
                        .is_ok_and(|comm| comm.trim_end() == name)
                })
                .count()
        })
        .unwrap_or(0)
}

/// `store.background_threads` reaches the store engine: an engine
/// configured with 5 (never a default: the store engine's own is one per
/// core up to 4) runs its store's flushes and compactions on 5 threads.
/// Threads are counted in this process, so only where each test has a
/// process of its own (cargo-nextest, which `scripts/test.sh` uses).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_runs_its_store_on_the_background_threads_configured() {
    if std::env::var("NEXTEST_EXECUTION_MODE").as_deref() != Ok("process-per-test")
        || !std::path::Path::new("/proc/self/task").exists()
    {
        eprintln!("not one process per test (or no /proc): threads are not counted");
        return;
    }
    let edit: crate::support::Edit = std::sync::Arc::new(|config: String, _| {
        config.replacen("[store]\n", "[store]\nbackground_threads = 5\n", 1)
    });
    let desk = crate::support::Desk::start_edited(0, "", "", edit).await;
    desk.customer("p-threads", "m-threads", "hello").await;
    desk.settled("p-threads", 2).await;
    // A thread names itself once it runs: give the store engine's a moment.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while threads_named("fjall:worker") != 5 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(threads_named("fjall:worker"), 5);
}

/// The journal files of the store in `dir`.
fn journals(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    journal_files(&dir.join("store"))
}

/// The journal files of a store under `root` (copies kept aside left out).
pub fn journal_files(root: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut folders = vec![root.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() && !path.ends_with("repair") {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "jnl") {
                out.push(path);
            }
        }
    }
    out
}

/// Files kept under `store/repair/`.
fn kept(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let Ok(runs) = std::fs::read_dir(dir.join("store").join("repair")) else {
        return Vec::new();
    };
    runs.flatten()
        .flat_map(|run| std::fs::read_dir(run.path()).unwrap().flatten())
        .map(|f| f.path())
        .collect()
}

/// After a stop that was not clean, what the store engine cuts from a
/// journal it cannot read on is kept beside it (it would drop every
/// write after the damage without a word); a clean stop, or a crash that
/// left the journal whole, keeps nothing.
#[tokio::test]
async fn what_the_store_cuts_from_a_damaged_journal_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let open = || EmbeddedStore::open(dir.path(), 8 << 20).unwrap();
    let s = open();
    for i in 0..5 {
        let conv =
            ConversationRecord::new(&format!("fb:J{i}"), "fb", ChannelKind::Messenger, "J", NOW);
        s.commit_turn(switchboard::store::TurnWrite::new(conv).into())
            .await
            .unwrap();
    }
    drop(s);
    let s = open();
    assert!(s.conversation("fb:J4").await.unwrap().is_some());
    drop(s);
    assert!(kept(dir.path()).is_empty(), "a clean stop keeps nothing");

    // A crash (no clean close) that left the journal whole.
    std::fs::remove_file(dir.path().join("store").join("closed")).unwrap();
    let s = open();
    assert!(s.conversation("fb:J4").await.unwrap().is_some());
    drop(s);
    assert!(kept(dir.path()).is_empty(), "nothing was cut");

    // A crash, and the disk damaged the journal's first entry.
    std::fs::remove_file(dir.path().join("store").join("closed")).unwrap();
    let journal = journals(dir.path())
        .into_iter()
        .max_by_key(|j| std::fs::metadata(j).unwrap().len())
        .expect("the store keeps a journal");
    let mut bytes = std::fs::read(&journal).unwrap();
    bytes[0] = 5;
    std::fs::write(&journal, &bytes).unwrap();
    let s = open();
    let copies = kept(dir.path());
    assert_eq!(copies.len(), 1, "the journal as it was is kept: {copies:?}");
    assert_eq!(std::fs::read(&copies[0]).unwrap(), bytes);
    drop(s);
}
