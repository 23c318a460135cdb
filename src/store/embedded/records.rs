//! Control records in the embedded store ((kind, key) -> bytes, with a
//! revision per kind bumped in the same transaction as every change), and
//! the purge of one integration's conversations.

use fjall::Readable;

use super::documents::{bump, read_revision};
use super::group_commit::Tx;
use super::keys::{self, Key, Parts};
use super::{bad_key, row, EmbeddedStore};
use crate::store::{RecordKind, StoreError};

fn revision_name(kind: RecordKind) -> String {
    format!("control:{}", kind.as_str())
}

fn control_key(kind: &str, key: &str) -> Vec<u8> {
    Key::new().str(kind).str(key).done()
}

pub(super) async fn put(
    store: &EmbeddedStore,
    kind: RecordKind,
    key: &str,
    value: Vec<u8>,
) -> Result<(), StoreError> {
    let k = control_key(kind.as_str(), key);
    store
        .writer
        .write(true, move |tx| {
            tx.tx.insert(&tx.t.control, k, value);
            bump(tx, &revision_name(kind))
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
    let snap = store.db.read_tx();
    let mut out = Vec::new();
    for g in snap.prefix(&store.t.control, keys::of(kind)) {
        let (k, v) = row(g)?;
        let mut parts = Parts::new(&k);
        let (Some(_), Some(key)) = (parts.str(), parts.str()) else {
            return Err(bad_key("control"));
        };
        out.push((key, v.to_vec()));
    }
    Ok(out)
}

pub(super) async fn delete(
    store: &EmbeddedStore,
    kind: RecordKind,
    key: &str,
) -> Result<bool, StoreError> {
    let k = control_key(kind.as_str(), key);
    let removed = store
        .writer
        .write(true, move |tx| {
            if tx.tx.take(&tx.t.control, k)?.is_none() {
                return Ok(false);
            }
            bump(tx, &revision_name(kind))?;
            Ok(true)
        })
        .await?;
    Ok(removed)
}

pub(super) fn revision(store: &EmbeddedStore, kind: RecordKind) -> Result<u64, StoreError> {
    read_revision(store, &revision_name(kind))
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
    // Where each table's deletions got to: a step starts after them rather
    // than step again over the deletion marks of the steps before.
    let mut cursors = Cursors::default();
    for _ in 0..steps {
        let from_start = cursors.0.iter().all(Option::is_none);
        let integration = integration.to_string();
        let (conversations, done, moved) = store
            .writer
            .write(true, move |tx| {
                let mut cursors = cursors;
                let (n, done) = purge_step(tx, &integration, &mut cursors, PURGE_STEP)?;
                Ok((n, done, cursors))
            })
            .await?;
        cursors = moved;
        purged += conversations;
        if done && from_start {
            return Ok((purged, true));
        }
        if done {
            // Nothing left past the cursors: one more pass from the start
            // finds any row written behind them meanwhile (a conversation
            // that was still finishing a turn).
            cursors = Cursors::default();
        }
    }
    Ok((purged, false))
}

/// Deletes up to `budget` rows of `integration`; returns the conversation
/// records among them and whether none is left.
/// The last key a purge deleted in each table it deletes from.
#[derive(Default)]
struct Cursors([Option<Vec<u8>>; 7]);

fn purge_step(
    tx: &mut Tx<'_>,
    integration: &str,
    cursors: &mut Cursors,
    budget: usize,
) -> Result<(u64, bool), fjall::Error> {
    let t = tx.t;
    // Conversation ids are `{integration}:{customer}`: the keys of all of
    // them begin alike.
    let ids = Key::new().str_start(&format!("{integration}:")).done();
    let analytics = keys::of(integration);
    let [messages, remembered, timers, takeovers, quarantine, rollups, conversations] =
        &mut cursors.0;
    let mut left = budget;
    for (table, start, cursor) in [
        (&t.messages, &ids, messages),
        (&t.remembered, &ids, remembered),
        (&t.timers, &ids, timers),
        (&t.takeovers, &ids, takeovers),
        (&t.quarantine, &ids, quarantine),
        (&t.analytics, &analytics, rollups),
    ] {
        left -= take_out(tx, table, start, cursor, left)?;
    }
    let conversations = take_out(tx, &t.conversations, &ids, conversations, left)?;
    let done = conversations < left;
    let noted = control_key(PURGING, integration);
    if done {
        tx.tx.remove(&t.control, noted);
    } else {
        tx.tx.insert(&t.control, noted, Vec::new());
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
                .write(true, move |tx| {
                    tx.tx
                        .remove(&tx.t.control, control_key(PURGING, &integration));
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

/// Deletes at most `budget` rows of `table` whose keys begin with
/// `start` and come after `cursor`, moving `cursor` to the last one;
/// returns how many.
fn take_out(
    tx: &mut Tx<'_>,
    table: &fjall::SingleWriterTxKeyspace,
    start: &[u8],
    cursor: &mut Option<Vec<u8>>,
    budget: usize,
) -> Result<usize, fjall::Error> {
    use std::ops::Bound;
    let from = match cursor {
        Some(after) => Bound::Excluded(after.clone()),
        None => Bound::Included(start.to_vec()),
    };
    let end = Bound::Excluded(keys::past(start));
    let mut doomed = Vec::new();
    for g in tx.tx.range(table, (from, end)).take(budget) {
        doomed.push(g.key()?);
    }
    let taken = doomed.len();
    if let Some(last) = doomed.last() {
        *cursor = Some(last.to_vec());
    }
    for key in doomed {
        tx.tx.remove(table, key);
    }
    Ok(taken)
}
