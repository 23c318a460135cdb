//! Control records in the embedded store ((kind, key) -> bytes, with a
//! revision per kind bumped in the same transaction as every change), and
//! the purge of one integration's conversations.

use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use super::documents::REVISION;
use super::{
    storage, EmbeddedStore, ANALYTICS, CONVERSATIONS, DEDUP, MESSAGES, QUARANTINE, REMEMBERED,
    TAKEOVERS, TIMERS,
};
use crate::store::{RecordKind, StoreError};

const CONTROL: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("control");

fn revision_key(kind: RecordKind) -> String {
    format!("control:{}", kind.as_str())
}

fn bump(txn: &redb::WriteTransaction, kind: RecordKind) -> Result<(), redb::Error> {
    let mut t = txn.open_table(REVISION)?;
    let key = revision_key(kind);
    let next = t.get(key.as_str())?.map_or(0, |v| v.value()) + 1;
    t.insert(key.as_str(), next)?;
    Ok(())
}

pub(super) async fn put(
    store: &EmbeddedStore,
    kind: RecordKind,
    key: &str,
    value: Vec<u8>,
) -> Result<(), StoreError> {
    let key = key.to_string();
    store
        .writer
        .write(true, move |txn| {
            txn.open_table(CONTROL)?
                .insert((kind.as_str(), key.as_str()), value.as_slice())?;
            bump(txn, kind)
        })
        .await?;
    Ok(())
}

pub(super) fn all(
    store: &EmbeddedStore,
    kind: RecordKind,
) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
    let txn = store.db().begin_read().map_err(storage)?;
    let table = match txn.open_table(CONTROL) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(storage(e)),
    };
    let mut out = Vec::new();
    let range = table.range((kind.as_str(), "")..).map_err(storage)?;
    for row in range {
        let (k, v) = row.map_err(storage)?;
        let (row_kind, key) = k.value();
        if row_kind != kind.as_str() {
            break;
        }
        out.push((key.to_string(), v.value().to_vec()));
    }
    Ok(out)
}

pub(super) async fn delete(
    store: &EmbeddedStore,
    kind: RecordKind,
    key: &str,
) -> Result<bool, StoreError> {
    let key = key.to_string();
    let removed = store
        .writer
        .write(true, move |txn| {
            let removed = txn
                .open_table(CONTROL)?
                .remove((kind.as_str(), key.as_str()))?
                .is_some();
            if removed {
                bump(txn, kind)?;
            }
            Ok(removed)
        })
        .await?;
    Ok(removed)
}

pub(super) fn revision(store: &EmbeddedStore, kind: RecordKind) -> Result<u64, StoreError> {
    let txn = store.db().begin_read().map_err(storage)?;
    let table = match txn.open_table(REVISION) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(0),
        Err(e) => return Err(storage(e)),
    };
    Ok(table
        .get(revision_key(kind).as_str())
        .map_err(storage)?
        .map_or(0, |v| v.value()))
}

/// Deletes every conversation of `integration` with its messages, dedup
/// ids, timers, takeover, quarantine and analytics; returns how many
/// conversations went.
pub(super) async fn purge_integration(
    store: &EmbeddedStore,
    integration: &str,
) -> Result<u64, StoreError> {
    let prefix = format!("{integration}:");
    let integration = integration.to_string();
    let purged = store
        .writer
        .write(true, move |txn| {
            let mine = |id: &str| id.starts_with(&prefix);
            let mut purged = 0u64;
            txn.open_table(CONVERSATIONS)?.retain(|id, _| {
                let keep = !mine(id);
                purged += u64::from(!keep);
                keep
            })?;
            txn.open_table(MESSAGES)?.retain(|(id, _), _| !mine(id))?;
            txn.open_table(DEDUP)?.retain(|(id, _), _| !mine(id))?;
            txn.open_table(REMEMBERED)?
                .retain(|(id, _, _), _| !mine(id))?;
            txn.open_table(TIMERS)?.retain(|id, _| !mine(id))?;
            txn.open_table(TAKEOVERS)?.retain(|id, _| !mine(id))?;
            txn.open_table(QUARANTINE)?.retain(|id, _| !mine(id))?;
            txn.open_table(ANALYTICS)?
                .retain(|(i, _), _| i != integration.as_str())?;
            Ok(purged)
        })
        .await?;
    Ok(purged)
}
