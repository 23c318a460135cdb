//! Records that no longer read (damage, a bug of an earlier release): one
//! is left out of listings, counts and the quarantine list, never the
//! reason the others cannot be read.

use std::sync::Arc;

use super::keys;
use super::EmbeddedStore;
use crate::config::ChannelKind;
use crate::store::{ConversationFilter, ConversationRecord, QuarantineRecord, Store, TurnWrite};

async fn damage(store: &EmbeddedStore, table: &'static str, id: &str) {
    let key = keys::of(id);
    store
        .writer
        .write(true, move |tx| {
            let t = match table {
                "conversations" => &tx.t.conversations,
                _ => &tx.t.quarantine,
            };
            tx.tx.insert(t, key, b"{not json".to_vec());
            Ok(())
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn a_record_that_does_not_read_is_left_out_not_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path(), 8 << 20).unwrap();
    for id in ["fb:A", "fb:C"] {
        let customer = id.trim_start_matches("fb:");
        let state = ConversationRecord::new(id, "fb", ChannelKind::Messenger, customer, 1_000);
        store
            .commit_turn(Arc::new(TurnWrite::new(state)))
            .await
            .unwrap();
        store
            .put_quarantine(QuarantineRecord {
                conversation: id.to_string(),
                reason: "test".into(),
                since_ms: 1_000,
                failures: 3,
                events: Vec::new(),
            })
            .await
            .unwrap();
    }
    damage(&store, "conversations", "fb:B").await;
    damage(&store, "quarantine", "fb:B").await;
    let listed: Vec<String> = store
        .list_conversations(&ConversationFilter::default(), None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(listed, ["fb:A", "fb:C"]);
    assert_eq!(
        store.conversation_counts(&["fb".into()], 0).await.unwrap(),
        (3, 2)
    );
    let quarantined: Vec<String> = store
        .quarantines()
        .await
        .unwrap()
        .into_iter()
        .map(|q| q.conversation)
        .collect();
    assert_eq!(quarantined, ["fb:A", "fb:C"]);
}
