//! Retention of the embedded store: a sweep over the conversations, a few
//! hundred per step, deleting each one's lines older than the cutoff and
//! forgetting its remembered ids whose window ended. A conversation's lines
//! are in sequence order and their times only grow, and its remembered ids
//! are in expiry order, so a step reads only the rows it deletes and one
//! more per conversation and table; the sweep visits conversations (not
//! rows), so it keeps up with any rate of new rows.

use std::ops::Bound;

use fjall::Readable;
use serde::Deserialize;

use super::keys::{self, Key, Parts};
use super::EmbeddedStore;
use crate::store::{RetentionStep, StoreError};

/// Rows one step deletes at most (a write of the writer thread: a
/// conversation with years of lines is swept over several steps, and no
/// turn waits behind one huge deletion).
pub(super) const ROWS_PER_STEP: usize = 4_096;

/// The one field of a line the sweep reads.
#[derive(Deserialize)]
struct LineTime {
    time_ms: u64,
}

pub(super) async fn sweep_step(
    store: &EmbeddedStore,
    now_ms: u64,
    before_ms: u64,
    after: Option<String>,
    limit: usize,
) -> Result<RetentionStep, StoreError> {
    let step = store
        .writer
        .write(false, move |tx| {
            let t = tx.t;
            let start = match &after {
                Some(a) => Bound::Excluded(keys::of(a)),
                None => Bound::Unbounded,
            };
            let (mut ids, mut read) = (Vec::with_capacity(limit), 0);
            for g in tx
                .tx
                .range::<Vec<u8>, _>(&t.conversations, (start, Bound::Unbounded))
                .take(limit)
            {
                read += 1;
                // A key that does not read is skipped: retention never guesses.
                if let Some(id) = Parts::new(&g.key()?).str() {
                    ids.push(id);
                }
            }
            let (mut removed, mut forgotten) = (0u64, 0u64);
            let mut doomed = Vec::new();
            // The conversation where the step ran out of rows (it is swept
            // again by the next step, from its start).
            let mut full_at = None;
            'sweep: for (at, id) in ids.iter().enumerate() {
                if doomed.len() >= ROWS_PER_STEP {
                    full_at = Some(at);
                    break;
                }
                let expired = Key::new().str(id).u64(now_ms.saturating_add(1)).done();
                for g in tx.tx.range(&t.remembered, keys::of(id)..expired) {
                    if doomed.len() >= ROWS_PER_STEP {
                        full_at = Some(at);
                        break 'sweep;
                    }
                    doomed.push((&t.remembered, g.key()?));
                    forgotten += 1;
                }
                for g in tx.tx.prefix(&t.messages, keys::of(id)) {
                    if doomed.len() >= ROWS_PER_STEP {
                        full_at = Some(at);
                        break 'sweep;
                    }
                    let (key, value) = g.into_inner()?;
                    // A line that cannot be read is kept (and ends the
                    // conversation's step).
                    let time =
                        serde_json::from_slice::<LineTime>(&value).map_or(u64::MAX, |l| l.time_ms);
                    if time >= before_ms {
                        break;
                    }
                    doomed.push((&t.messages, key));
                    removed += 1;
                }
            }
            for (table, key) in doomed {
                tx.tx.remove(table, key);
            }
            // A full window goes on after its last id, even when some of
            // its keys could not be read; a step out of rows goes on at the
            // conversation it stopped in (after the empty id: from the
            // start).
            let next = match full_at {
                Some(0) => Some(after.clone().unwrap_or_default()),
                Some(at) => ids.get(at - 1).cloned(),
                None if read >= limit => ids.last().cloned(),
                None => None,
            };
            Ok(RetentionStep {
                conversations: full_at.unwrap_or(ids.len()),
                full: full_at.is_some(),
                lines_removed: removed,
                ids_forgotten: forgotten,
                next,
            })
        })
        .await?;
    Ok(step)
}

/// The one field of a dead letter the purge reads.
#[derive(Deserialize)]
struct LetterTime {
    at_ms: u64,
}

/// Deletes the dead letters older than `before_ms`: they are kept in the
/// order they came, so the oldest are first and the purge stops at the
/// first one it keeps.
pub(super) async fn purge_dead_letters(
    store: &EmbeddedStore,
    before_ms: u64,
) -> Result<u64, StoreError> {
    let removed = store
        .writer
        .write(false, move |tx| {
            let t = tx.t;
            let mut old = Vec::new();
            for g in tx.tx.iter(&t.dead_letters) {
                let (key, value) = g.into_inner()?;
                let at = serde_json::from_slice::<LetterTime>(&value).map_or(u64::MAX, |l| l.at_ms);
                if at >= before_ms {
                    break;
                }
                old.push(key);
            }
            let n = old.len() as u64;
            for key in old {
                tx.tx.remove(&t.dead_letters, key);
            }
            Ok(n)
        })
        .await?;
    Ok(removed)
}
