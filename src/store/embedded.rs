//! The embedded store: one redb file under `store.path`, no server. Writes
//! go through [`GroupCommit`], so concurrent turns share a transaction and
//! an fsync; reads use redb's snapshot transactions directly.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};

use super::group_commit::GroupCommit;
use super::{DeadLetter, MessageRecord, Rehydrated, Store, StoreError, TurnWrite};

const CONVERSATIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("conversations");
const MESSAGES: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("messages");
const DEDUP: TableDefinition<(&str, &str), u64> = TableDefinition::new("dedup");
const TIMERS: TableDefinition<&str, u64> = TableDefinition::new("timers");
const DEAD_LETTERS: TableDefinition<u64, &[u8]> = TableDefinition::new("dead_letters");

pub struct EmbeddedStore {
    writer: GroupCommit,
}

fn corrupt(e: serde_json::Error) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

fn storage(e: impl Into<redb::Error>) -> StoreError {
    StoreError::from(e.into())
}

impl EmbeddedStore {
    /// Opens (or creates) `store.redb` in `dir`, with a page cache of
    /// `cache_bytes` (reads, and the write buffer of the group commits).
    pub fn open(dir: &Path, cache_bytes: usize) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))
        })?;
        let db = redb::Builder::new()
            .set_cache_size(cache_bytes)
            .create(dir.join("store.redb"))
            .map_err(storage)?;
        // Create the tables so reads never meet a missing one.
        let txn = db.begin_write().map_err(storage)?;
        {
            txn.open_table(CONVERSATIONS).map_err(storage)?;
            txn.open_table(MESSAGES).map_err(storage)?;
            txn.open_table(DEDUP).map_err(storage)?;
            txn.open_table(TIMERS).map_err(storage)?;
            txn.open_table(DEAD_LETTERS).map_err(storage)?;
        }
        txn.commit().map_err(storage)?;
        let writer = GroupCommit::start(Arc::new(db), "store")
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(Self { writer })
    }

    fn db(&self) -> &Database {
        self.writer.db()
    }
}

fn apply_turn(txn: &WriteTransaction, w: &TurnWrite, state: &[u8]) -> Result<(), redb::Error> {
    let id = w.state.id.as_str();
    txn.open_table(CONVERSATIONS)?.insert(id, state)?;
    if w.deadline_changed {
        let mut timers = txn.open_table(TIMERS)?;
        match w.state.next_deadline() {
            Some(due) => {
                timers.insert(id, due)?;
            }
            None => {
                timers.remove(id)?;
            }
        }
    }
    if !w.dedup.is_empty() {
        let mut dedup = txn.open_table(DEDUP)?;
        for (mid, expires) in &w.dedup {
            dedup.insert((id, mid.as_str()), *expires)?;
        }
    }
    if !w.messages.is_empty() || !w.status_updates.is_empty() {
        let mut messages = txn.open_table(MESSAGES)?;
        for m in &w.messages {
            let bytes = serde_json::to_vec(m).unwrap_or_default();
            messages.insert((id, m.seq), bytes.as_slice())?;
        }
        for (seq, status) in &w.status_updates {
            let current = messages
                .get((id, *seq))?
                .and_then(|v| serde_json::from_slice::<MessageRecord>(v.value()).ok());
            if let Some(mut record) = current {
                record.status = *status;
                let bytes = serde_json::to_vec(&record).unwrap_or_default();
                messages.insert((id, *seq), bytes.as_slice())?;
            }
        }
    }
    Ok(())
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn load_conversation(
        &self,
        id: &str,
        now_ms: u64,
    ) -> Result<Option<Rehydrated>, StoreError> {
        let txn = self.db().begin_read().map_err(storage)?;
        let conversations = txn.open_table(CONVERSATIONS).map_err(storage)?;
        let Some(bytes) = conversations.get(id).map_err(storage)? else {
            return Ok(None);
        };
        let state = serde_json::from_slice(bytes.value()).map_err(corrupt)?;
        let dedup_table = txn.open_table(DEDUP).map_err(storage)?;
        let mut dedup = Vec::new();
        for row in dedup_table.range((id, "")..).map_err(storage)? {
            let (k, v) = row.map_err(storage)?;
            let (conv, mid) = k.value();
            if conv != id {
                break;
            }
            if v.value() > now_ms {
                dedup.push((mid.to_string(), v.value()));
            }
        }
        Ok(Some(Rehydrated { state, dedup }))
    }

    async fn commit_turn(&self, write: TurnWrite) -> Result<(), StoreError> {
        let state = serde_json::to_vec(&write.state).map_err(corrupt)?;
        self.writer
            .write(true, move |txn| apply_turn(txn, &write, &state))
            .await?;
        Ok(())
    }

    async fn messages(&self, id: &str, limit: usize) -> Result<Vec<MessageRecord>, StoreError> {
        let txn = self.db().begin_read().map_err(storage)?;
        let table = txn.open_table(MESSAGES).map_err(storage)?;
        let mut out = Vec::new();
        for row in table
            .range((id, 0)..=(id, u64::MAX))
            .map_err(storage)?
            .rev()
        {
            if out.len() >= limit {
                break;
            }
            let (_, v) = row.map_err(storage)?;
            out.push(serde_json::from_slice(v.value()).map_err(corrupt)?);
        }
        out.reverse();
        Ok(out)
    }

    async fn timers(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let txn = self.db().begin_read().map_err(storage)?;
        let table = txn.open_table(TIMERS).map_err(storage)?;
        let mut out = Vec::new();
        for row in table.iter().map_err(storage)? {
            let (k, v) = row.map_err(storage)?;
            out.push((k.value().to_string(), v.value()));
        }
        Ok(out)
    }

    async fn dead_letter(&self, letter: DeadLetter) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(&letter).map_err(corrupt)?;
        self.writer
            .write(true, move |txn| {
                let mut table = txn.open_table(DEAD_LETTERS)?;
                let next = table.last()?.map(|(k, _)| k.value() + 1).unwrap_or(1);
                table.insert(next, bytes.as_slice())?;
                Ok(())
            })
            .await?;
        Ok(())
    }

    async fn dead_letters(&self) -> Result<Vec<DeadLetter>, StoreError> {
        let txn = self.db().begin_read().map_err(storage)?;
        let table = txn.open_table(DEAD_LETTERS).map_err(storage)?;
        let mut out = Vec::new();
        for row in table.iter().map_err(storage)? {
            let (_, v) = row.map_err(storage)?;
            out.push(serde_json::from_slice(v.value()).map_err(corrupt)?);
        }
        Ok(out)
    }

    async fn purge_expired(&self, now_ms: u64) -> Result<u64, StoreError> {
        let removed = self
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

    async fn ready(&self) -> bool {
        self.db().begin_read().is_ok()
    }
}
