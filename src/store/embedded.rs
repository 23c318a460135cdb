//! The embedded store: a fjall database (an LSM tree per table, one
//! journal) in `store/` under `store.path`, no server. Writes go through
//! [`GroupCommit`], so concurrent turns share a transaction and an fsync;
//! reads use snapshots. A `store.redb` of an earlier release is moved in
//! at open ([`migrate`]).

use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use fjall::{Guard, Readable, SingleWriterTxDatabase, Slice};

use super::{
    ConversationFilter, ConversationRecord, DailyCount, DeadLetter, DocumentRecord, MessageRecord,
    QuarantineRecord, RecordKind, Rehydrated, RetentionStep, Store, StoreError, TenantKeyRecord,
    TurnWrite,
};

pub mod compact;
#[cfg(test)]
mod damaged_tests;
mod documents;
mod group_commit;
mod keys;
mod letters;
mod migrate;
mod records;
mod repair;
mod retention;
mod scan;
mod tables;
mod turn;

use group_commit::GroupCommit;
pub use group_commit::GroupCommitError;
pub use keys::MAX_ID;
use keys::{fit, Key, Parts};
use scan::{prefixes, rows_of};
use tables::Tables;
use turn::apply_turn;

/// The folder of the store's database under `store.path`.
pub const FOLDER: &str = "store";

pub struct EmbeddedStore {
    db: SingleWriterTxDatabase,
    t: Arc<Tables>,
    /// The database's folder (`store/`).
    folder: std::path::PathBuf,
    writer: GroupCommit,
    /// Turns are fsynced with their group commit (`true`), or later by
    /// [`Store::sync`].
    sync_each: bool,
    /// Turns committed without an fsync so far, and how many of them a
    /// completed sync covers.
    written: AtomicU64,
    synced: AtomicU64,
}

/// A stored record, or `None` (logged with its key) when it does not read.
fn readable<T: serde::de::DeserializeOwned>(key: &[u8], value: &[u8]) -> Option<T> {
    match serde_json::from_slice(value) {
        Ok(v) => Some(v),
        Err(e) => {
            let key = String::from_utf8_lossy(key);
            tracing::warn!(key = %key, error = %e, "A stored record does not read; left out");
            None
        }
    }
}

fn corrupt(e: serde_json::Error) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

/// A key a table holds that does not read as its layout.
fn bad_key(table: &str) -> StoreError {
    StoreError::Corrupt(format!("a key of table {table} cannot be read"))
}

/// One row of an iteration.
fn row(g: Guard) -> Result<(Slice, Slice), StoreError> {
    Ok(g.into_inner()?)
}

impl EmbeddedStore {
    /// Opens (or creates) the store in `dir` (its database in `store/`),
    /// with a block cache of `cache_bytes` and the store engine's default
    /// background threads; a `store.redb` an earlier release left there is
    /// moved in first.
    pub fn open(dir: &Path, cache_bytes: usize) -> Result<Self, StoreError> {
        Self::open_with_threads(dir, cache_bytes, 0)
    }

    /// [`EmbeddedStore::open`] with `threads` background threads for
    /// flushes and compactions (`store.background_threads`; 0: the store
    /// engine's default, one per core up to 4).
    pub fn open_with_threads(
        dir: &Path,
        cache_bytes: usize,
        threads: usize,
    ) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))
        })?;
        let folder = dir.join(FOLDER);
        let db = repair::open(&folder, cache_bytes as u64, threads).map_err(|e| {
            let hint = if matches!(e, fjall::Error::Locked) {
                " (another engine is using it)"
            } else {
                ""
            };
            StoreError::Unavailable(format!(
                "cannot open the store in {}{hint}: {e}",
                folder.display()
            ))
        })?;
        let t = Arc::new(Tables::open(
            &db,
            tables::memtable_bytes(cache_bytes as u64),
        )?);
        migrate::from_redb(dir, &db, &t)?;
        let writer = GroupCommit::start(db.clone(), t.clone())
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(Self {
            db,
            t,
            folder,
            writer,
            sync_each: true,
            written: AtomicU64::new(0),
            synced: AtomicU64::new(0),
        })
    }

    /// Turns are committed without an fsync (handed to the operating
    /// system, so an engine crash keeps them) and reach the disk with the
    /// next [`Store::sync`] (`store.durability = "interval"`); a power loss
    /// loses the turns since the last one (never a torn write: the journal
    /// is read back to its last whole commit).
    pub fn sync_later(mut self) -> Self {
        self.sync_each = false;
        self
    }

    /// Starts a group commit no sooner than `delay` after the previous
    /// one started (`store.group_commit_delay`): under load the turns of
    /// that time share one commit and one sync.
    pub fn with_group_delay(self, delay: std::time::Duration) -> Self {
        self.writer.set_group_delay(delay);
        self
    }
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn load_conversation(
        &self,
        id: &str,
        now_ms: u64,
    ) -> Result<Option<Rehydrated>, StoreError> {
        fit([id])?;
        let snap = self.db.read_tx();
        let Some(bytes) = snap.get(&self.t.conversations, keys::of(id))? else {
            return Ok(None);
        };
        let state = serde_json::from_slice(&bytes).map_err(corrupt)?;
        // An id remembered more than once keeps its latest expiry.
        let mut dedup = std::collections::BTreeMap::<String, u64>::new();
        let live = Key::new().str(id).u64(now_ms.saturating_add(1)).done();
        let end = keys::past(&keys::of(id));
        for g in snap.range(&self.t.remembered, live..end) {
            let (key, _) = row(g)?;
            let mut parts = Parts::new(&key);
            let (Some(_), Some(expires), Some(mid)) = (parts.str(), parts.u64(), parts.str())
            else {
                return Err(bad_key("remembered_ids"));
            };
            let e = dedup.entry(mid).or_default();
            *e = (*e).max(expires);
        }
        let dedup = dedup.into_iter().collect();
        Ok(Some(Rehydrated { state, dedup }))
    }

    async fn commit_turn(&self, write: Arc<TurnWrite>) -> Result<(), StoreError> {
        fit([write.state.id.as_str(), write.state.integration.as_str()])?;
        fit(write.dedup.iter().map(|(mid, _)| mid.as_str()))?;
        let state = serde_json::to_vec(&write.state).map_err(corrupt)?;
        let durable = self.sync_each || write.sync;
        self.writer
            .write(durable, move |tx| apply_turn(tx, &write, state))
            .await?;
        if !durable {
            self.written.fetch_add(1, Ordering::AcqRel);
        }
        Ok(())
    }

    async fn sync(&self) -> Result<(), StoreError> {
        let target = self.written.load(Ordering::Acquire);
        if self.synced.load(Ordering::Acquire) >= target {
            return Ok(());
        }
        // A durable commit makes every earlier one durable with it.
        self.writer.write(true, |_| Ok(())).await?;
        self.synced.fetch_max(target, Ordering::AcqRel);
        Ok(())
    }

    fn syncs_later(&self) -> bool {
        !self.sync_each
    }

    async fn messages(&self, id: &str, limit: usize) -> Result<Vec<MessageRecord>, StoreError> {
        fit([id])?;
        let snap = self.db.read_tx();
        let mut out = Vec::new();
        for g in snap.prefix(&self.t.messages, keys::of(id)).rev() {
            if out.len() >= limit {
                break;
            }
            let (_, v) = row(g)?;
            out.push(serde_json::from_slice(&v).map_err(corrupt)?);
        }
        out.reverse();
        Ok(out)
    }

    async fn conversation(&self, id: &str) -> Result<Option<ConversationRecord>, StoreError> {
        fit([id])?;
        let snap = self.db.read_tx();
        match snap.get(&self.t.conversations, keys::of(id))? {
            Some(bytes) => Ok(Some(serde_json::from_slice(&bytes).map_err(corrupt)?)),
            None => Ok(None),
        }
    }

    async fn list_conversations(
        &self,
        filter: &ConversationFilter,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ConversationRecord>, StoreError> {
        fit(after)?;
        fit(filter.integrations.iter().flatten().map(String::as_str))?;
        let snap = self.db.read_tx();
        let mut out = Vec::new();
        for prefix in prefixes(filter.integrations.as_deref()) {
            let first = Key::new().str_start(&prefix).done();
            let start = match after {
                Some(a) if a >= prefix.as_str() => Bound::Excluded(keys::of(a)),
                _ => Bound::Included(first.clone()),
            };
            let end = if prefix.is_empty() {
                Bound::Unbounded
            } else {
                Bound::Excluded(keys::past(&first))
            };
            for g in snap.range(&self.t.conversations, (start, end)) {
                let (k, v) = row(g)?;
                // One record that does not read is left out (logged), not
                // the whole listing: it is the quarantine's to show.
                let Some(record) = readable::<ConversationRecord>(&k, &v) else {
                    continue;
                };
                if filter.matches(&record) {
                    out.push(record);
                    if out.len() >= limit {
                        return Ok(out);
                    }
                }
            }
        }
        Ok(out)
    }

    async fn conversation_counts(
        &self,
        integrations: &[String],
        active_since_ms: u64,
    ) -> Result<(u64, u64), StoreError> {
        fit(integrations.iter().map(String::as_str))?;
        let snap = self.db.read_tx();
        let (mut total, mut active) = (0, 0);
        rows_of(&snap, &self.t.conversations, integrations, |id, v| {
            // A record that does not read still counts (as ScyllaDB's
            // index counts it), as not active.
            total += 1;
            if readable::<ConversationRecord>(id.as_bytes(), v)
                .is_some_and(|r| r.last_activity_ms >= active_since_ms)
            {
                active += 1;
            }
            Ok(())
        })?;
        Ok((total, active))
    }

    async fn takeovers(
        &self,
        integrations: &[String],
    ) -> Result<Vec<(String, Option<u64>)>, StoreError> {
        fit(integrations.iter().map(String::as_str))?;
        let snap = self.db.read_tx();
        let mut out = Vec::new();
        rows_of(&snap, &self.t.takeovers, integrations, |id, v| {
            let resume = keys::value_u64(v).ok_or_else(|| bad_key("takeovers"))?;
            out.push((id, Some(resume).filter(|&t| t > 0)));
            Ok(())
        })?;
        Ok(out)
    }

    async fn daily_counts(
        &self,
        integrations: &[String],
        from_day: u32,
    ) -> Result<Vec<(String, DailyCount)>, StoreError> {
        fit(integrations.iter().map(String::as_str))?;
        let snap = self.db.read_tx();
        let mut out = Vec::new();
        for integration in integrations {
            let from = Key::new().str(integration).u32(from_day).done();
            let end = keys::past(&keys::of(integration));
            for g in snap.range(&self.t.analytics, from..end) {
                let (k, v) = row(g)?;
                let mut parts = Parts::new(&k);
                let (Some(_), Some(day)) = (parts.str(), parts.u32()) else {
                    return Err(bad_key("analytics"));
                };
                let [inbound, outbound, delivered, read] =
                    tables::sums_of(&v).ok_or_else(|| bad_key("analytics"))?;
                out.push((
                    integration.clone(),
                    DailyCount {
                        day,
                        inbound,
                        outbound,
                        delivered,
                        read,
                    },
                ));
            }
        }
        Ok(out)
    }

    async fn timers(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let snap = self.db.read_tx();
        let mut out = Vec::new();
        for g in snap.iter(&self.t.timers) {
            let (k, v) = row(g)?;
            let id = Parts::new(&k).str().ok_or_else(|| bad_key("timers"))?;
            out.push((id, keys::value_u64(&v).ok_or_else(|| bad_key("timers"))?));
        }
        Ok(out)
    }

    async fn dead_letter(&self, letter: DeadLetter) -> Result<(), StoreError> {
        letters::put_dead_letter(self, letter).await
    }

    async fn dead_letters(&self) -> Result<Vec<DeadLetter>, StoreError> {
        letters::dead_letters(self)
    }

    async fn put_quarantine(&self, record: QuarantineRecord) -> Result<(), StoreError> {
        fit([record.conversation.as_str()])?;
        letters::put_quarantine(self, record).await
    }

    async fn quarantine(&self, id: &str) -> Result<Option<QuarantineRecord>, StoreError> {
        fit([id])?;
        letters::quarantine(self, id)
    }

    async fn quarantines(&self) -> Result<Vec<QuarantineRecord>, StoreError> {
        letters::quarantines(self)
    }

    async fn remove_quarantine(&self, id: &str) -> Result<(), StoreError> {
        fit([id])?;
        letters::remove_quarantine(self, id).await
    }

    async fn put_document(&self, doc: DocumentRecord) -> Result<(), StoreError> {
        fit([doc.assistant.as_str(), doc.id.as_str()])?;
        documents::put(self, doc).await
    }

    async fn documents(&self) -> Result<Vec<DocumentRecord>, StoreError> {
        documents::all(self)
    }

    async fn delete_document(&self, assistant: &str, id: &str) -> Result<bool, StoreError> {
        fit([assistant, id])?;
        documents::delete(self, assistant, id).await
    }

    async fn knowledge_revision(&self) -> Result<u64, StoreError> {
        documents::revision(self)
    }

    async fn put_tenant_key(&self, key: TenantKeyRecord) -> Result<(), StoreError> {
        fit([key.hash.as_str()])?;
        documents::put_key(self, key).await
    }

    async fn tenant_key(&self, hash: &str) -> Result<Option<TenantKeyRecord>, StoreError> {
        fit([hash])?;
        documents::key(self, hash)
    }

    async fn delete_tenant_key(&self, tenant: &str, id: &str) -> Result<bool, StoreError> {
        documents::delete_key(self, tenant, id).await
    }

    async fn put_record(
        &self,
        kind: RecordKind,
        key: &str,
        value: Vec<u8>,
    ) -> Result<(), StoreError> {
        fit([key])?;
        records::put(self, kind, key, value).await
    }

    async fn records(&self, kind: RecordKind) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        records::all(self, kind)
    }

    async fn delete_record(&self, kind: RecordKind, key: &str) -> Result<bool, StoreError> {
        fit([key])?;
        records::delete(self, kind, key).await
    }

    async fn records_revision(&self, kind: RecordKind) -> Result<u64, StoreError> {
        records::revision(self, kind)
    }

    async fn purge_integration(&self, integration: &str) -> Result<u64, StoreError> {
        fit([integration])?;
        records::purge_integration(self, integration).await
    }

    async fn finish_purge(&self, integration: &str) -> Result<u64, StoreError> {
        fit([integration])?;
        records::finish_purge(self, integration).await
    }

    async fn resume_purges(&self, live: &[String]) -> Result<u64, StoreError> {
        records::resume_purges(self, live).await
    }

    async fn purge_old_lines(
        &self,
        now_ms: u64,
        before_ms: u64,
        after: Option<&str>,
        limit: usize,
    ) -> Result<RetentionStep, StoreError> {
        fit(after)?;
        let after = after.map(str::to_string);
        retention::sweep_step(self, now_ms, before_ms, after, limit).await
    }

    async fn purge_dead_letters(&self, before_ms: u64) -> Result<u64, StoreError> {
        retention::purge_dead_letters(self, before_ms).await
    }

    fn kind(&self) -> &'static str {
        "embedded"
    }

    /// The writer not stuck in a commit (a disk that hangs) and its journal
    /// still taking writes.
    async fn ready(&self) -> bool {
        !self.writer.stalled(crate::sync::STALL_AFTER) && !self.writer.broken()
    }
}
