//! Retention of the embedded store's message log: a sweep over the
//! conversations, a few hundred per step, deleting each one's lines older
//! than the cutoff. A conversation's lines are in sequence order and their
//! times only grow, so a step reads only the lines it deletes and one more
//! per conversation; the sweep visits conversations (not lines), so it
//! keeps up with any rate of new lines.

use std::ops::Bound;

use redb::ReadableTable;
use serde::Deserialize;

use super::{EmbeddedStore, CONVERSATIONS, DEAD_LETTERS, DEDUP, MESSAGES};
use crate::store::{RetentionStep, StoreError};

/// The one field of a line the sweep reads.
#[derive(Deserialize)]
struct LineTime {
    time_ms: u64,
}

pub(super) async fn purge_old_lines(
    store: &EmbeddedStore,
    before_ms: u64,
    after: Option<String>,
    limit: usize,
) -> Result<RetentionStep, StoreError> {
    let step = store
        .writer
        .write(false, move |txn| {
            let ids: Vec<String> = {
                let conversations = txn.open_table(CONVERSATIONS)?;
                let start = match &after {
                    Some(a) => Bound::Excluded(a.as_str()),
                    None => Bound::Unbounded,
                };
                let mut ids = Vec::with_capacity(limit);
                for row in conversations.range::<&str>((start, Bound::Unbounded))? {
                    if ids.len() >= limit {
                        break;
                    }
                    ids.push(row?.0.value().to_string());
                }
                ids
            };
            let mut messages = txn.open_table(MESSAGES)?;
            let mut removed = 0u64;
            for id in &ids {
                let mut old = Vec::new();
                for row in messages.range((id.as_str(), 0)..=(id.as_str(), u64::MAX))? {
                    let (key, value) = row?;
                    // A line that cannot be read is kept (and ends the
                    // conversation's step): retention never guesses.
                    let time = serde_json::from_slice::<LineTime>(value.value())
                        .map_or(u64::MAX, |l| l.time_ms);
                    if time >= before_ms {
                        break;
                    }
                    old.push(key.value().1);
                }
                for seq in old {
                    messages.remove((id.as_str(), seq))?;
                    removed += 1;
                }
            }
            let next = if ids.len() >= limit {
                ids.last().cloned()
            } else {
                None
            };
            Ok(RetentionStep {
                conversations: ids.len(),
                lines_removed: removed,
                next,
            })
        })
        .await?;
    Ok(step)
}

/// Forgets remembered message ids past their dedup window.
pub(super) async fn purge_expired_ids(
    store: &EmbeddedStore,
    now_ms: u64,
) -> Result<u64, StoreError> {
    let removed = store
        .writer
        .write(false, move |txn| {
            let mut table = txn.open_table(DEDUP)?;
            let mut removed = 0u64;
            table.retain(|_, expires| {
                let keep = expires > now_ms;
                if !keep {
                    removed += 1;
                }
                keep
            })?;
            Ok(removed)
        })
        .await?;
    Ok(removed)
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
        .write(false, move |txn| {
            let mut table = txn.open_table(DEAD_LETTERS)?;
            let mut old = Vec::new();
            for row in table.iter()? {
                let (key, value) = row?;
                let at = serde_json::from_slice::<LetterTime>(value.value())
                    .map_or(u64::MAX, |l| l.at_ms);
                if at >= before_ms {
                    break;
                }
                old.push(key.value());
            }
            for key in &old {
                table.remove(*key)?;
            }
            Ok(old.len() as u64)
        })
        .await?;
    Ok(removed)
}
