//! Knowledge-base documents in the embedded store: (assistant, id) ->
//! record (JSON), and a revision counter bumped in the same transaction as
//! every change. Also the tenants' API keys: key hash -> record (JSON).

use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use super::{corrupt, storage, EmbeddedStore};
use crate::store::{DocumentRecord, StoreError, TenantKeyRecord};

pub(super) const DOCUMENTS: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("documents");
pub(super) const TENANT_KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("tenant_keys");
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

pub(super) async fn put_key(store: &EmbeddedStore, key: TenantKeyRecord) -> Result<(), StoreError> {
    let bytes = serde_json::to_vec(&key).map_err(corrupt)?;
    store
        .writer
        .write(true, move |txn| {
            txn.open_table(TENANT_KEYS)?
                .insert(key.hash.as_str(), bytes.as_slice())?;
            Ok(())
        })
        .await?;
    Ok(())
}

pub(super) fn key(
    store: &EmbeddedStore,
    hash: &str,
) -> Result<Option<TenantKeyRecord>, StoreError> {
    let txn = store.db().begin_read().map_err(storage)?;
    let table = txn.open_table(TENANT_KEYS).map_err(storage)?;
    match table.get(hash).map_err(storage)? {
        Some(v) => serde_json::from_slice(v.value()).map(Some).map_err(corrupt),
        None => Ok(None),
    }
}

pub(super) async fn delete_key(
    store: &EmbeddedStore,
    tenant: &str,
    id: &str,
) -> Result<bool, StoreError> {
    let (tenant, id) = (tenant.to_string(), id.to_string());
    let removed = store
        .writer
        .write(true, move |txn| {
            let mut table = txn.open_table(TENANT_KEYS)?;
            let mut found = None;
            for row in table.iter()? {
                let (k, v) = row?;
                if let Ok(record) = serde_json::from_slice::<TenantKeyRecord>(v.value()) {
                    if record.tenant == tenant && record.id == id {
                        found = Some(k.value().to_string());
                        break;
                    }
                }
            }
            match found {
                Some(hash) => {
                    table.remove(hash.as_str())?;
                    Ok(true)
                }
                None => Ok(false),
            }
        })
        .await?;
    Ok(removed)
}
