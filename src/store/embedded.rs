//! The embedded store: one redb file under `store.path`, no server. Writes
//! go through [`GroupCommit`], so concurrent turns share a transaction and
//! an fsync; reads use redb's snapshot transactions directly.

use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::{
    ConversationFilter, ConversationRecord, DailyCount, DeadLetter, DocumentRecord, MessageRecord,
    QuarantineRecord, RecordKind, Rehydrated, RetentionStep, Store, StoreError, TenantKeyRecord,
    TurnWrite,
};
use crate::group_commit::{self, GroupCommit};

const CONVERSATIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("conversations");
const MESSAGES: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("messages");
/// Remembered message ids as earlier versions kept them: (conversation,
/// mid) -> expiry ms. Read and swept until the last one expires; never
/// written.
const DEDUP: TableDefinition<(&str, &str), u64> = TableDefinition::new("dedup");
/// Remembered message ids: (conversation, expiry ms, mid). In expiry order
/// within a conversation, so rehydration reads only the live ones and the
/// retention sweep only the ones it forgets.
const REMEMBERED: TableDefinition<(&str, u64, &str), ()> = TableDefinition::new("remembered_ids");
const TIMERS: TableDefinition<&str, u64> = TableDefinition::new("timers");
const DEAD_LETTERS: TableDefinition<u64, &[u8]> = TableDefinition::new("dead_letters");
/// Conversations a person has: id -> auto-resume ms (0: none).
const TAKEOVERS: TableDefinition<&str, u64> = TableDefinition::new("takeovers");
/// Quarantined conversations: id -> record (JSON).
const QUARANTINE: TableDefinition<&str, &[u8]> = TableDefinition::new("quarantine");
/// Daily rollups: (integration, day) -> inbound, outbound, delivered, read.
const ANALYTICS: TableDefinition<(&str, u32), [u64; 4]> = TableDefinition::new("analytics");

pub mod compact;
mod documents;
mod records;
mod retention;
mod scan;
mod turn;

use scan::{prefixes, rows_of};

use turn::apply_turn;

pub struct EmbeddedStore {
    writer: GroupCommit,
    /// Turns are fsynced with their group commit (`true`), or later by
    /// [`Store::sync`].
    sync_each: bool,
    /// Turns committed without an fsync so far, and how many of them a
    /// completed sync covers.
    written: AtomicU64,
    synced: AtomicU64,
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
            txn.open_table(REMEMBERED).map_err(storage)?;
            txn.open_table(TIMERS).map_err(storage)?;
            txn.open_table(DEAD_LETTERS).map_err(storage)?;
            txn.open_table(TAKEOVERS).map_err(storage)?;
            txn.open_table(documents::DOCUMENTS).map_err(storage)?;
            txn.open_table(documents::REVISION).map_err(storage)?;
            txn.open_table(documents::TENANT_KEYS).map_err(storage)?;
            txn.open_table(ANALYTICS).map_err(storage)?;
            txn.open_table(QUARANTINE).map_err(storage)?;
        }
        txn.commit().map_err(storage)?;
        let writer = GroupCommit::start(Arc::new(db), "store")
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(Self {
            writer,
            sync_each: true,
            written: AtomicU64::new(0),
            synced: AtomicU64::new(0),
        })
    }

    /// Turns are committed without an fsync and reach the disk with the
    /// next [`Store::sync`] (`store.durability = "interval"`); a crash loses
    /// the turns since the last one (never a torn write: redb recovers to
    /// the last synced commit).
    pub fn sync_later(mut self) -> Self {
        self.sync_each = false;
        self
    }

    fn db(&self) -> &Database {
        self.writer.db()
    }
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
        // An id remembered more than once (in either layout) keeps its
        // latest expiry.
        let mut dedup = std::collections::BTreeMap::<String, u64>::new();
        let mut remember = |mid: &str, expires: u64| {
            let e = dedup.entry(mid.to_string()).or_default();
            *e = (*e).max(expires);
        };
        let remembered = txn.open_table(REMEMBERED).map_err(storage)?;
        let live = (id, now_ms.saturating_add(1), "")..;
        for row in remembered.range(live).map_err(storage)? {
            let (key, _) = row.map_err(storage)?;
            let (conv, expires, mid) = key.value();
            if conv != id {
                break;
            }
            remember(mid, expires);
        }
        let dedup_table = txn.open_table(DEDUP).map_err(storage)?;
        for row in dedup_table.range((id, "")..).map_err(storage)? {
            let (k, v) = row.map_err(storage)?;
            let (conv, mid) = k.value();
            if conv != id {
                break;
            }
            if v.value() > now_ms {
                remember(mid, v.value());
            }
        }
        let dedup = dedup.into_iter().collect();
        Ok(Some(Rehydrated { state, dedup }))
    }

    async fn commit_turn(&self, write: Arc<TurnWrite>) -> Result<(), StoreError> {
        let state = serde_json::to_vec(&write.state).map_err(corrupt)?;
        let durable = self.sync_each || write.sync;
        self.writer
            .write(durable, move |txn| apply_turn(txn, &write, &state))
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

    async fn conversation(&self, id: &str) -> Result<Option<ConversationRecord>, StoreError> {
        let txn = self.db().begin_read().map_err(storage)?;
        let table = txn.open_table(CONVERSATIONS).map_err(storage)?;
        match table.get(id).map_err(storage)? {
            Some(bytes) => Ok(Some(
                serde_json::from_slice(bytes.value()).map_err(corrupt)?,
            )),
            None => Ok(None),
        }
    }

    async fn list_conversations(
        &self,
        filter: &ConversationFilter,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ConversationRecord>, StoreError> {
        let txn = self.db().begin_read().map_err(storage)?;
        let table = txn.open_table(CONVERSATIONS).map_err(storage)?;
        let mut out = Vec::new();
        for prefix in prefixes(filter.integrations.as_deref()) {
            let start = match after {
                Some(a) if a >= prefix.as_str() => Bound::Excluded(a),
                _ => Bound::Included(prefix.as_str()),
            };
            for row in table
                .range::<&str>((start, Bound::Unbounded))
                .map_err(storage)?
            {
                let (k, v) = row.map_err(storage)?;
                if !k.value().starts_with(prefix.as_str()) {
                    break;
                }
                let record: ConversationRecord =
                    serde_json::from_slice(v.value()).map_err(corrupt)?;
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
        let txn = self.db().begin_read().map_err(storage)?;
        let table = txn.open_table(CONVERSATIONS).map_err(storage)?;
        let (mut total, mut active) = (0, 0);
        rows_of(&table, integrations, |_, v| {
            let record: ConversationRecord = serde_json::from_slice(v.value()).map_err(corrupt)?;
            total += 1;
            if record.last_activity_ms >= active_since_ms {
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
        let txn = self.db().begin_read().map_err(storage)?;
        let table = txn.open_table(TAKEOVERS).map_err(storage)?;
        let mut out = Vec::new();
        rows_of(&table, integrations, |id, v| {
            let resume = Some(v.value()).filter(|&t| t > 0);
            out.push((id.to_string(), resume));
            Ok(())
        })?;
        Ok(out)
    }

    async fn daily_counts(
        &self,
        integrations: &[String],
        from_day: u32,
    ) -> Result<Vec<(String, DailyCount)>, StoreError> {
        let txn = self.db().begin_read().map_err(storage)?;
        let table = txn.open_table(ANALYTICS).map_err(storage)?;
        let mut out = Vec::new();
        for integration in integrations {
            let id = integration.as_str();
            for row in table
                .range((id, from_day)..=(id, u32::MAX))
                .map_err(storage)?
            {
                let (k, v) = row.map_err(storage)?;
                let [inbound, outbound, delivered, read] = v.value();
                let day = k.value().1;
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
            out.push(serde_json::from_slice::<DeadLetter>(v.value()).map_err(corrupt)?);
        }
        out.sort_by_key(|d| d.at_ms);
        Ok(out)
    }

    async fn put_quarantine(&self, record: QuarantineRecord) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(&record).map_err(corrupt)?;
        self.writer
            .write(true, move |txn| {
                txn.open_table(QUARANTINE)?
                    .insert(record.conversation.as_str(), bytes.as_slice())?;
                Ok(())
            })
            .await?;
        Ok(())
    }

    async fn quarantine(&self, id: &str) -> Result<Option<QuarantineRecord>, StoreError> {
        let txn = self.db().begin_read().map_err(storage)?;
        let table = txn.open_table(QUARANTINE).map_err(storage)?;
        let Some(v) = table.get(id).map_err(storage)? else {
            return Ok(None);
        };
        serde_json::from_slice(v.value()).map(Some).map_err(corrupt)
    }

    async fn quarantines(&self) -> Result<Vec<QuarantineRecord>, StoreError> {
        let txn = self.db().begin_read().map_err(storage)?;
        let table = txn.open_table(QUARANTINE).map_err(storage)?;
        let mut out = Vec::new();
        for row in table.iter().map_err(storage)? {
            let (_, v) = row.map_err(storage)?;
            out.push(serde_json::from_slice(v.value()).map_err(corrupt)?);
        }
        Ok(out)
    }

    async fn remove_quarantine(&self, id: &str) -> Result<(), StoreError> {
        let id = id.to_string();
        self.writer
            .write(true, move |txn| {
                txn.open_table(QUARANTINE)?.remove(id.as_str())?;
                Ok(())
            })
            .await?;
        Ok(())
    }

    async fn put_document(&self, doc: DocumentRecord) -> Result<(), StoreError> {
        documents::put(self, doc).await
    }

    async fn documents(&self) -> Result<Vec<DocumentRecord>, StoreError> {
        documents::all(self)
    }

    async fn delete_document(&self, assistant: &str, id: &str) -> Result<bool, StoreError> {
        documents::delete(self, assistant, id).await
    }

    async fn knowledge_revision(&self) -> Result<u64, StoreError> {
        documents::revision(self)
    }

    async fn put_tenant_key(&self, key: TenantKeyRecord) -> Result<(), StoreError> {
        documents::put_key(self, key).await
    }

    async fn tenant_key(&self, hash: &str) -> Result<Option<TenantKeyRecord>, StoreError> {
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
        records::put(self, kind, key, value).await
    }

    async fn records(&self, kind: RecordKind) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        records::all(self, kind)
    }

    async fn delete_record(&self, kind: RecordKind, key: &str) -> Result<bool, StoreError> {
        records::delete(self, kind, key).await
    }

    async fn records_revision(&self, kind: RecordKind) -> Result<u64, StoreError> {
        records::revision(self, kind)
    }

    async fn purge_integration(&self, integration: &str) -> Result<u64, StoreError> {
        records::purge_integration(self, integration).await
    }

    async fn finish_purge(&self, integration: &str) -> Result<u64, StoreError> {
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
        let after = after.map(str::to_string);
        retention::sweep_step(self, now_ms, before_ms, after, limit).await
    }

    async fn purge_dead_letters(&self, before_ms: u64) -> Result<u64, StoreError> {
        retention::purge_dead_letters(self, before_ms).await
    }

    /// Readable, and the writer not stuck in a commit (a disk that hangs).
    fn kind(&self) -> &'static str {
        "embedded"
    }

    async fn ready(&self) -> bool {
        self.db().begin_read().is_ok() && !self.writer.stalled(group_commit::STALL_AFTER)
    }
}
