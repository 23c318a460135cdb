//! Dead letters (a counter key -> letter, JSON) and quarantined
//! conversations (conversation id -> record, JSON) in the embedded store.

use fjall::Readable;

use super::keys;
use super::{corrupt, readable, row, EmbeddedStore};
use crate::store::{DeadLetter, QuarantineRecord, StoreError};

pub(super) async fn put_dead_letter(
    store: &EmbeddedStore,
    letter: DeadLetter,
) -> Result<(), StoreError> {
    let bytes = serde_json::to_vec(&letter).map_err(corrupt)?;
    store
        .writer
        .write(true, move |tx| {
            let t = tx.t;
            let last = match tx.tx.last_key_value(&t.dead_letters) {
                Some(g) => keys::value_u64(&g.key()?),
                None => None,
            };
            let next = last.map_or(1, |n| n + 1);
            tx.tx
                .insert(&t.dead_letters, next.to_be_bytes().to_vec(), bytes);
            Ok(())
        })
        .await?;
    Ok(())
}

/// Every dead letter, oldest first.
pub(super) fn dead_letters(store: &EmbeddedStore) -> Result<Vec<DeadLetter>, StoreError> {
    let snap = store.db.read_tx();
    let mut out = Vec::new();
    for g in snap.iter(&store.t.dead_letters) {
        let (_, v) = row(g)?;
        out.push(serde_json::from_slice::<DeadLetter>(&v).map_err(corrupt)?);
    }
    out.sort_by_key(|d| d.at_ms);
    Ok(out)
}

pub(super) async fn put_quarantine(
    store: &EmbeddedStore,
    record: QuarantineRecord,
) -> Result<(), StoreError> {
    let bytes = serde_json::to_vec(&record).map_err(corrupt)?;
    store
        .writer
        .write(true, move |tx| {
            tx.tx
                .insert(&tx.t.quarantine, keys::of(&record.conversation), bytes);
            Ok(())
        })
        .await?;
    Ok(())
}

pub(super) fn quarantine(
    store: &EmbeddedStore,
    id: &str,
) -> Result<Option<QuarantineRecord>, StoreError> {
    let snap = store.db.read_tx();
    let Some(v) = snap.get(&store.t.quarantine, keys::of(id))? else {
        return Ok(None);
    };
    serde_json::from_slice(&v).map(Some).map_err(corrupt)
}

pub(super) fn quarantines(store: &EmbeddedStore) -> Result<Vec<QuarantineRecord>, StoreError> {
    let snap = store.db.read_tx();
    let mut out = Vec::new();
    for g in snap.iter(&store.t.quarantine) {
        let (k, v) = row(g)?;
        // One that does not read is left out (logged), not every other.
        out.extend(readable::<QuarantineRecord>(&k, &v));
    }
    Ok(out)
}

pub(super) async fn remove_quarantine(store: &EmbeddedStore, id: &str) -> Result<(), StoreError> {
    let key = keys::of(id);
    store
        .writer
        .write(true, move |tx| {
            tx.tx.remove(&tx.t.quarantine, key);
            Ok(())
        })
        .await?;
    Ok(())
}
