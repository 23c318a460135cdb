//! Knowledge-base documents in the embedded store: (assistant, id) ->
//! record (JSON), and a revision counter bumped in the same transaction as
//! every change. Also the tenants' API keys: key hash -> record (JSON).

use fjall::Readable;

use super::group_commit::Tx;
use super::keys::{self, Key};
use super::{corrupt, row, EmbeddedStore};
use crate::store::{DocumentRecord, StoreError, TenantKeyRecord};

/// Adds one to revision counter `name`.
pub(super) fn bump(tx: &mut Tx<'_>, name: &str) -> Result<(), fjall::Error> {
    let key = keys::of(name);
    let next = tx
        .tx
        .get(&tx.t.revisions, &key)?
        .and_then(|v| keys::value_u64(&v))
        .map_or(0, |n| n)
        + 1;
    tx.tx
        .insert(&tx.t.revisions, key, next.to_be_bytes().to_vec());
    Ok(())
}

/// Revision counter `name` (0 before its first change).
pub(super) fn read_revision(store: &EmbeddedStore, name: &str) -> Result<u64, StoreError> {
    let snap = store.db.read_tx();
    Ok(snap
        .get(&store.t.revisions, keys::of(name))?
        .and_then(|v| keys::value_u64(&v))
        .unwrap_or(0))
}

const KNOWLEDGE: &str = "knowledge";

fn doc_key(assistant: &str, id: &str) -> Vec<u8> {
    Key::new().str(assistant).str(id).done()
}

pub(super) async fn put(store: &EmbeddedStore, doc: DocumentRecord) -> Result<(), StoreError> {
    let bytes = serde_json::to_vec(&doc).map_err(corrupt)?;
    store
        .writer
        .write(true, move |tx| {
            tx.tx
                .insert(&tx.t.documents, doc_key(&doc.assistant, &doc.id), bytes);
            bump(tx, KNOWLEDGE)
        })
        .await?;
    Ok(())
}

pub(super) fn all(store: &EmbeddedStore) -> Result<Vec<DocumentRecord>, StoreError> {
    let snap = store.db.read_tx();
    let mut out = Vec::new();
    for g in snap.iter(&store.t.documents) {
        let (_, v) = row(g)?;
        out.push(serde_json::from_slice(&v).map_err(corrupt)?);
    }
    Ok(out)
}

pub(super) async fn delete(
    store: &EmbeddedStore,
    assistant: &str,
    id: &str,
) -> Result<bool, StoreError> {
    let key = doc_key(assistant, id);
    let removed = store
        .writer
        .write(true, move |tx| {
            if tx.tx.take(&tx.t.documents, key)?.is_none() {
                return Ok(false);
            }
            bump(tx, KNOWLEDGE)?;
            Ok(true)
        })
        .await?;
    Ok(removed)
}

pub(super) fn revision(store: &EmbeddedStore) -> Result<u64, StoreError> {
    read_revision(store, KNOWLEDGE)
}

pub(super) async fn put_key(store: &EmbeddedStore, key: TenantKeyRecord) -> Result<(), StoreError> {
    let bytes = serde_json::to_vec(&key).map_err(corrupt)?;
    store
        .writer
        .write(true, move |tx| {
            tx.tx.insert(&tx.t.tenant_keys, keys::of(&key.hash), bytes);
            Ok(())
        })
        .await?;
    Ok(())
}

pub(super) fn key(
    store: &EmbeddedStore,
    hash: &str,
) -> Result<Option<TenantKeyRecord>, StoreError> {
    let snap = store.db.read_tx();
    match snap.get(&store.t.tenant_keys, keys::of(hash))? {
        Some(v) => serde_json::from_slice(&v).map(Some).map_err(corrupt),
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
        .write(true, move |tx| {
            let mut found = None;
            for g in tx.tx.iter(&tx.t.tenant_keys) {
                let (k, v) = g.into_inner()?;
                if let Ok(record) = serde_json::from_slice::<TenantKeyRecord>(&v) {
                    if record.tenant == tenant && record.id == id {
                        found = Some(k);
                        break;
                    }
                }
            }
            match found {
                Some(hash) => {
                    tx.tx.remove(&tx.t.tenant_keys, hash);
                    Ok(true)
                }
                None => Ok(false),
            }
        })
        .await?;
    Ok(removed)
}
