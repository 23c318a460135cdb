//! Knowledge-base documents in the embedded store: (assistant, id) ->
//! record (JSON), and a revision counter bumped in the same transaction as
//! every change.

use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use super::{corrupt, storage, EmbeddedStore};
use crate::store::{DocumentRecord, StoreError};

pub(super) const DOCUMENTS: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("documents");
/// One row, "knowledge" -> revision.
pub(super) const REVISION: TableDefinition<&str, u64> = TableDefinition::new("revisions");

fn bump(txn: &redb::WriteTransaction) -> Result<(), redb::Error> {
    let mut t = txn.open_table(REVISION)?;
    let next = t.get("knowledge")?.map_or(0, |v| v.value()) + 1;
    t.insert("knowledge", next)?;
    Ok(())
}

pub(super) async fn put(store: &EmbeddedStore, doc: DocumentRecord) -> Result<(), StoreError> {
    let bytes = serde_json::to_vec(&doc).map_err(corrupt)?;
    store
        .writer
        .write(true, move |txn| {
            txn.open_table(DOCUMENTS)?
                .insert((doc.assistant.as_str(), doc.id.as_str()), bytes.as_slice())?;
            bump(txn)
        })
        .await?;
    Ok(())
}

pub(super) fn all(store: &EmbeddedStore) -> Result<Vec<DocumentRecord>, StoreError> {
    let txn = store.db().begin_read().map_err(storage)?;
    let table = txn.open_table(DOCUMENTS).map_err(storage)?;
    let mut out = Vec::new();
    for row in table.iter().map_err(storage)? {
        let (_, v) = row.map_err(storage)?;
        out.push(serde_json::from_slice(v.value()).map_err(corrupt)?);
    }
    Ok(out)
}

pub(super) async fn delete(
    store: &EmbeddedStore,
    assistant: &str,
    id: &str,
) -> Result<bool, StoreError> {
    let (assistant, id) = (assistant.to_string(), id.to_string());
    let removed = store
        .writer
        .write(true, move |txn| {
            let removed = txn
                .open_table(DOCUMENTS)?
                .remove((assistant.as_str(), id.as_str()))?
                .is_some();
            if removed {
                bump(txn)?;
            }
            Ok(removed)
        })
        .await?;
    Ok(removed)
}

pub(super) fn revision(store: &EmbeddedStore) -> Result<u64, StoreError> {
    let txn = store.db().begin_read().map_err(storage)?;
    let table = txn.open_table(REVISION).map_err(storage)?;
    Ok(table
        .get("knowledge")
        .map_err(storage)?
        .map_or(0, |v| v.value()))
}
