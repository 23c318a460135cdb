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
    rows_of(store, kind.as_str())
}

/// The (key, value) rows of one kind of control row, in key order.
fn rows_of(store: &EmbeddedStore, kind: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
    let txn = store.db().begin_read().map_err(storage)?;
    let table = match txn.open_table(CONTROL) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(storage(e)),
    };
    let mut out = Vec::new();
    let range = table.range((kind, "")..).map_err(storage)?;
    for row in range {
        let (k, v) = row.map_err(storage)?;
        let (row_kind, key) = k.value();
        if row_kind != kind {
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

/// Rows deleted per write transaction while an integration is purged: the
/// turns of every other conversation commit between its steps.
const PURGE_STEP: usize = 4_096;

/// The kind of the control rows that note a purge under way (the key is
/// the integration): written with its first step, removed with its last.
const PURGING: &str = "purging";

/// Deletes every conversation of `integration` with its messages, dedup
/// ids, timers, takeover, quarantine and analytics, a few thousand rows per
/// write transaction (a large integration never holds the writer for
/// long); returns how many conversations went. A purge cut short by a stop
/// is finished by [`resume_purges`] at the next start.
pub(super) async fn purge_integration(
    store: &EmbeddedStore,
    integration: &str,
) -> Result<u64, StoreError> {
    Ok(purge_steps(store, integration, usize::MAX).await?.0)
}

impl EmbeddedStore {
    /// At most `steps` write steps of [`crate::store::Store::purge_integration`]:
    /// (conversations that went, whether the purge is done). What is left
    /// stays noted for [`crate::store::Store::resume_purges`], as after a stop.
    pub async fn purge_integration_steps(
        &self,
        integration: &str,
        steps: usize,
    ) -> Result<(u64, bool), StoreError> {
        purge_steps(self, integration, steps).await
    }
}

/// At most `steps` steps of a purge: (conversations that went, whether the
/// purge is done).
async fn purge_steps(
    store: &EmbeddedStore,
    integration: &str,
    steps: usize,
) -> Result<(u64, bool), StoreError> {
    let mut purged = 0u64;
    for _ in 0..steps {
        let integration = integration.to_string();
        let (conversations, done) = store
            .writer
            .write(true, move |txn| purge_step(txn, &integration, PURGE_STEP))
            .await?;
        purged += conversations;
        if done {
            return Ok((purged, true));
        }
    }
    Ok((purged, false))
}

/// Deletes up to `budget` rows of `integration`; returns the conversation
/// records among them and whether none is left.
fn purge_step(
    txn: &redb::WriteTransaction,
    integration: &str,
    budget: usize,
) -> Result<(u64, bool), redb::Error> {
    // Conversation ids are `{integration}:{customer}`: all of them sort
    // from `{integration}:` to just before `{integration};`.
    let (from, to) = (format!("{integration}:"), format!("{integration};"));
    let (from, to) = (from.as_str(), to.as_str());
    let mut left = budget;
    left -= take_out(
        txn.open_table(MESSAGES)?
            .extract_from_if((from, 0)..(to, 0), |_, _| true)?,
        left,
    )?;
    left -= take_out(
        txn.open_table(REMEMBERED)?
            .extract_from_if((from, 0, "")..(to, 0, ""), |_, _| true)?,
        left,
    )?;
    left -= take_out(
        txn.open_table(DEDUP)?
            .extract_from_if((from, "")..(to, ""), |_, _| true)?,
        left,
    )?;
    for table in [TIMERS, TAKEOVERS] {
        left -= take_out(
            txn.open_table(table)?
                .extract_from_if(from..to, |_, _| true)?,
            left,
        )?;
    }
    left -= take_out(
        txn.open_table(QUARANTINE)?
            .extract_from_if(from..to, |_, _| true)?,
        left,
    )?;
    left -= take_out(
        txn.open_table(ANALYTICS)?
            .extract_from_if((integration, 0)..=(integration, u32::MAX), |_, _| true)?,
        left,
    )?;
    let conversations = take_out(
        txn.open_table(CONVERSATIONS)?
            .extract_from_if(from..to, |_, _| true)?,
        left,
    )?;
    let done = conversations < left;
    let mut control = txn.open_table(CONTROL)?;
    if done {
        control.remove((PURGING, integration))?;
    } else {
        control.insert((PURGING, integration), [].as_slice())?;
    }
    Ok((conversations as u64, done))
}

/// The integrations whose purge is noted as under way.
fn noted_purges(store: &EmbeddedStore) -> Result<Vec<String>, StoreError> {
    Ok(rows_of(store, PURGING)?
        .into_iter()
        .map(|(k, _)| k)
        .collect())
}

/// Finishes the purge of `integration` if one is noted as under way (its
/// id is about to be used again); returns how many conversations went.
pub(super) async fn finish_purge(
    store: &EmbeddedStore,
    integration: &str,
) -> Result<u64, StoreError> {
    if noted_purges(store)?.iter().any(|i| i == integration) {
        return purge_integration(store, integration).await;
    }
    Ok(0)
}

/// Finishes the purges noted as under way, each on its own (one that fails
/// is told and left for the next start); an integration in `live` is
/// configured again with the same id, so its purge stops where it was and
/// what is left stays. Returns how many conversations went.
pub(super) async fn resume_purges(
    store: &EmbeddedStore,
    live: &[String],
) -> Result<u64, StoreError> {
    let mut purged = 0;
    for integration in noted_purges(store)? {
        if live.contains(&integration) {
            tracing::warn!(
                integration = %integration,
                "An integration purge cut short is not finished: an integration with this id is configured again, and keeps what is left"
            );
            store
                .writer
                .write(true, move |txn| {
                    txn.open_table(CONTROL)?
                        .remove((PURGING, integration.as_str()))?;
                    Ok(())
                })
                .await?;
            continue;
        }
        match purge_integration(store, &integration).await {
            Ok(n) => purged += n,
            Err(e) => {
                tracing::warn!(integration = %integration, error = %e, "Cannot finish an integration purge cut short; tried again at the next start")
            }
        }
    }
    Ok(purged)
}

/// Reads (and so removes) at most `budget` rows of an extraction.
fn take_out<T>(
    rows: impl Iterator<Item = Result<T, redb::StorageError>>,
    budget: usize,
) -> Result<usize, redb::Error> {
    let mut taken = 0;
    for row in rows.take(budget) {
        row?;
        taken += 1;
    }
    Ok(taken)
}
