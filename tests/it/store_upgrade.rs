//! A `store.redb` of an earlier release is moved into the embedded store
//! at open: every table comes back through the store as it was, the file
//! is gone, and what was moved stays after a restart.

use switchboard::config::ChannelKind;
use switchboard::store::embedded::EmbeddedStore;
use switchboard::store::{
    ConversationFilter, ConversationRecord, DeadLetter, Direction, DocumentRecord, MessageRecord,
    MessageStatus, QuarantineRecord, RecordKind, Store, TenantKeyRecord,
};

const NOW: u64 = 1_000 * 86_400_000;

fn line(seq: u64, text: &str) -> MessageRecord {
    MessageRecord {
        seq,
        direction: Direction::In,
        text: Some(text.into()),
        time_ms: NOW + seq,
        status: MessageStatus::Received,
        mid: Some(format!("m{seq}")),
        attachments: vec![],
        author: None,
        error: None,
    }
}

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
                json(&line(seq, &format!("line {seq}"))).as_slice(),
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
            // The purge noted as under way in the earlier file is finished.
            assert_eq!(s.resume_purges(&[]).await.unwrap(), 0);
            s.sync().await.unwrap();
        } else {
            assert_eq!(s.dead_letters().await.unwrap().len(), 3);
            assert_eq!(s.records(RecordKind::Audit).await.unwrap().len(), 2);
        }
        drop(s);
    }
}
