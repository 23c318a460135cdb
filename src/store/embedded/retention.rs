//! Retention of the embedded store: a sweep over the conversations, a few
//! hundred per step, deleting each one's lines older than the cutoff and
//! forgetting its remembered ids whose window ended. A conversation's lines
//! are in sequence order and their times only grow, and its remembered ids
//! are in expiry order, so a step reads only the rows it deletes and one
//! more per conversation and table; the sweep visits conversations (not
//! rows), so it keeps up with any rate of new rows.

use std::ops::Bound;

use redb::ReadableTable;
use serde::Deserialize;

use super::{EmbeddedStore, CONVERSATIONS, DEAD_LETTERS, DEDUP, MESSAGES, REMEMBERED};
use crate::store::{RetentionStep, StoreError};

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
            let mut remembered = txn.open_table(REMEMBERED)?;
            let mut legacy = txn.open_table(DEDUP)?;
            let (mut removed, mut forgotten) = (0u64, 0u64);
            for id in &ids {
                forgotten += forget_ids(&mut remembered, &mut legacy, id, now_ms)?;
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
                ids_forgotten: forgotten,
                next,
            })
        })
        .await?;
    Ok(step)
}

/// Forgets conversation `id`'s remembered message ids whose window ended
/// by `now_ms`, in both layouts; returns how many.
fn forget_ids(
    remembered: &mut redb::Table<(&str, u64, &str), ()>,
    legacy: &mut redb::Table<(&str, &str), u64>,
    id: &str,
    now_ms: u64,
) -> Result<u64, redb::Error> {
    let mut expired = Vec::new();
    for row in remembered.range((id, 0, "")..(id, now_ms.saturating_add(1), ""))? {
        let (key, _) = row?;
        let (_, expires, mid) = key.value();
        expired.push((expires, mid.to_string()));
    }
    for (expires, mid) in &expired {
        remembered.remove((id, *expires, mid.as_str()))?;
    }
    let mut old = Vec::new();
    for row in legacy.range((id, "")..)? {
        let (key, expires) = row?;
        let (conv, mid) = key.value();
        if conv != id {
            break;
        }
        if expires.value() <= now_ms {
            old.push(mid.to_string());
        }
    }
    for mid in &old {
        legacy.remove((id, mid.as_str()))?;
    }
    Ok((expired.len() + old.len()) as u64)
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
