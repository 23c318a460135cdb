//! The ScyllaDB store, for high-throughput tenants: any engine instance can
//! rehydrate a conversation when Kafka partitions move. Schema in
//! `schema.cql` (applied idempotently at start and by `switchboard
//! migrate`); every statement is prepared once, token-aware (the driver
//! routes by partition key), idempotent (so the driver may retry it), with
//! a request timeout. No lightweight transactions anywhere.
//!
//! One turn is one logged batch (conversation state, message-log lines and
//! their status changes, remembered ids with their TTL, the timer index,
//! the takeover index): atomic across those partitions, and harmless to
//! replay. The analytics counters are summed and written once a second
//! ([`counters`]).

mod counters;
mod documents;
mod listing;
mod records;
mod rows;
mod schema;
mod statements;
mod turn;
mod upgrade;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::{StreamExt, TryStreamExt};
use scylla::client::session::Session;
use scylla::serialize::row::SerializeRow;
use scylla::statement::prepared::PreparedStatement;

use super::{
    ConversationFilter, ConversationRecord, DailyCount, DeadLetter, DocumentRecord, MessageRecord,
    MessageStatus, QuarantineRecord, RecordKind, Rehydrated, Store, StoreError, TenantKeyRecord,
    TurnWrite,
};
use crate::config::ScyllaConfig;
use counters::Counters;
pub use listing::TIMER_SHARDS;
use listing::{distinct, timer_shard};
use rows::{has_row, read_revision};
use schema::{apply_schema, connect};
pub use schema::{apply_statements, migrate, schema_statements, upgrade, SCHEMA};
use statements::{prepare, Statements};
pub use turn::TurnBatch;
pub use upgrade::Upgraded;

/// Bound values of a batch, one boxed row per statement.
type Values = Vec<Box<dyn SerializeRow + Send + Sync>>;

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

pub struct ScyllaStore {
    session: Arc<Session>,
    st: Statements,
    docs: documents::DocumentStatements,
    records: records::RecordStatements,
    counters: Counters,
    /// Remembered-id inserts by TTL (whole minutes): the TTL is the
    /// integration's dedup window, so there are a handful.
    dedup_inserts: tokio::sync::Mutex<HashMap<i32, PreparedStatement>>,
    keyspace: String,
    timeout: Duration,
}

fn status_text(status: MessageStatus) -> String {
    match serde_json::to_value(status) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

fn status_of(text: &str) -> Option<MessageStatus> {
    serde_json::from_value(serde_json::Value::String(text.to_string())).ok()
}

fn ms(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn unsigned(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl ScyllaStore {
    /// Connects, applies the schema and prepares every statement.
    pub async fn open(config: &ScyllaConfig) -> Result<Self, StoreError> {
        let session = connect(config).await?;
        apply_schema(&session, &schema_statements(config)).await?;
        upgrade::upgrade(&session, &config.keyspace).await?;
        Self::prepared(session, config).await
    }

    /// Connects to a keyspace whose schema is already applied.
    pub async fn open_on_schema(config: &ScyllaConfig) -> Result<Self, StoreError> {
        Self::prepared(connect(config).await?, config).await
    }

    async fn prepared(session: Session, config: &ScyllaConfig) -> Result<Self, StoreError> {
        let timeout = Duration::from_millis(config.request_timeout_ms);
        let st = Statements::prepare(&session, &config.keyspace, timeout).await?;
        let docs = documents::DocumentStatements::prepare(&session, &config.keyspace).await?;
        let records = records::RecordStatements::prepare(&session, &config.keyspace).await?;
        let session = Arc::new(session);
        Ok(Self {
            counters: Counters::start(session.clone(), &config.keyspace, timeout),
            session,
            st,
            docs,
            records,
            dedup_inserts: tokio::sync::Mutex::new(HashMap::new()),
            keyspace: config.keyspace.clone(),
            timeout,
        })
    }

    /// The insert of a remembered id living `ttl` seconds.
    async fn dedup_insert(&self, ttl: i32) -> Result<PreparedStatement, StoreError> {
        let mut cache = self.dedup_inserts.lock().await;
        if let Some(p) = cache.get(&ttl) {
            return Ok(p.clone());
        }
        let ks = &self.keyspace;
        let p = prepare(
            &self.session,
            format!(
                "INSERT INTO {ks}.dedup (conversation, id, expires_ms) VALUES (?, ?, ?) USING TTL {ttl}"
            ),
            self.timeout,
        )
        .await?;
        cache.insert(ttl, p.clone());
        Ok(p)
    }
}

#[async_trait]
impl Store for ScyllaStore {
    async fn load_conversation(
        &self,
        id: &str,
        now_ms: u64,
    ) -> Result<Option<Rehydrated>, StoreError> {
        let Some(state) = self.conversation(id).await? else {
            return Ok(None);
        };
        let rows = self
            .session
            .execute_iter(self.st.select_dedup.clone(), (id,))
            .await
            .map_err(unavailable)?
            .rows_stream::<(String, i64)>()
            .map_err(corrupt)?;
        let rows: Vec<_> = rows.try_collect().await.map_err(unavailable)?;
        let dedup = rows
            .into_iter()
            .map(|(mid, expires)| (mid, unsigned(expires)))
            // TTL removes them; checked here too.
            .filter(|(_, expires)| *expires > now_ms)
            .collect();
        Ok(Some(Rehydrated { state, dedup }))
    }

    async fn commit_turn(&self, write: Arc<TurnWrite>) -> Result<(), StoreError> {
        let now = crate::clock::now_ms();
        let turn = self.turn_batch(&write, now).await?;
        self.session
            .batch(&turn.batch, turn.values)
            .await
            .map_err(unavailable)?;
        self.counters.add(&write.state.integration, &write.counts);
        Ok(())
    }

    async fn messages(&self, id: &str, limit: usize) -> Result<Vec<MessageRecord>, StoreError> {
        // Newest first from the table: the first `limit` rows, a page or
        // two at most.
        let mut statement = self.st.select_messages.clone();
        statement.set_page_size(i32::try_from(limit.clamp(1, 1_000)).unwrap_or(1_000));
        let mut rows = self
            .session
            .execute_iter(statement, (id,))
            .await
            .map_err(unavailable)?
            .rows_stream::<(i64, Option<Vec<u8>>, Option<String>, Option<String>)>()
            .map_err(corrupt)?;
        let mut out = Vec::new();
        while out.len() < limit {
            let Some((_, body, status, error)) = rows.try_next().await.map_err(unavailable)? else {
                break;
            };
            let Some(body) = body else { continue };
            let mut m: MessageRecord = serde_json::from_slice(&body).map_err(corrupt)?;
            if let Some(s) = status.as_deref().and_then(status_of) {
                m.status = s;
            }
            if error.is_some() {
                m.error = error;
            }
            out.push(m);
        }
        // Newest first from the table; oldest first here.
        out.sort_by_key(|m| m.seq);
        Ok(out)
    }

    async fn conversation(&self, id: &str) -> Result<Option<ConversationRecord>, StoreError> {
        let result = self
            .session
            .execute_unpaged(&self.st.select_conversation, (id,))
            .await
            .map_err(unavailable)?
            .into_rows_result()
            .map_err(corrupt)?;
        match result
            .maybe_first_row::<(Option<Vec<u8>>,)>()
            .map_err(corrupt)?
        {
            Some((Some(bytes),)) => Ok(Some(serde_json::from_slice(&bytes).map_err(corrupt)?)),
            _ => Ok(None),
        }
    }

    /// Per integration, its partition of the conversation index, paged
    /// in id order from `after`, and each listed conversation's state read
    /// by key; with no integrations given (the admin token's listing of
    /// everything), a paged scan of the whole table.
    async fn list_conversations(
        &self,
        filter: &ConversationFilter,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ConversationRecord>, StoreError> {
        match filter.integrations.as_deref() {
            Some(integrations) => self.list_by_index(integrations, filter, after, limit).await,
            None => self.list_by_scan(filter, after, limit).await,
        }
    }

    /// Counted from the integrations' index partitions.
    async fn conversation_counts(
        &self,
        integrations: &[String],
        active_since_ms: u64,
    ) -> Result<(u64, u64), StoreError> {
        let mut total = 0;
        let mut active = 0;
        for integration in &distinct(integrations) {
            let mut ids = self.index_rows(integration, None).await?;
            while let Some((_, last)) = ids.try_next().await.map_err(unavailable)? {
                total += 1;
                if last.is_some_and(|t| unsigned(t) >= active_since_ms) {
                    active += 1;
                }
            }
        }
        Ok((total, active))
    }

    async fn takeovers(
        &self,
        integrations: &[String],
    ) -> Result<Vec<(String, Option<u64>)>, StoreError> {
        let mut out = Vec::new();
        for integration in &distinct(integrations) {
            let rows = self
                .session
                .execute_iter(self.st.select_takeovers.clone(), (integration,))
                .await
                .map_err(unavailable)?
                .rows_stream::<(String, Option<i64>)>()
                .map_err(corrupt)?;
            let rows: Vec<_> = rows.try_collect().await.map_err(unavailable)?;
            out.extend(
                rows.into_iter()
                    .map(|(id, resume)| (id, resume.map(unsigned).filter(|&t| t > 0))),
            );
        }
        Ok(out)
    }

    async fn daily_counts(
        &self,
        integrations: &[String],
        from_day: u32,
    ) -> Result<Vec<(String, DailyCount)>, StoreError> {
        let mut out = Vec::new();
        for integration in integrations {
            for c in self.counters.read(integration, from_day).await? {
                out.push((integration.clone(), c));
            }
        }
        Ok(out)
    }

    /// Shard by shard, a few at a time.
    async fn timers(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let shards = futures_util::stream::iter(0..TIMER_SHARDS)
            .map(|shard| async move {
                let rows = self
                    .session
                    .execute_iter(self.st.select_timers.clone(), (shard,))
                    .await
                    .map_err(unavailable)?
                    .rows_stream::<(String, i64)>()
                    .map_err(corrupt)?;
                rows.try_collect::<Vec<_>>().await.map_err(unavailable)
            })
            .buffer_unordered(8)
            .try_collect::<Vec<_>>()
            .await?;
        Ok(shards
            .into_iter()
            .flatten()
            .map(|(id, due)| (id, unsigned(due)))
            .collect())
    }

    async fn dead_letter(&self, letter: DeadLetter) -> Result<(), StoreError> {
        let event = serde_json::to_vec(&letter.event).map_err(corrupt)?;
        let day = i32::try_from(DailyCount::day_of(letter.at_ms)).unwrap_or(0);
        self.session
            .execute_unpaged(
                &self.st.insert_dead_letter,
                (
                    day,
                    ms(letter.at_ms),
                    letter.conversation,
                    letter.position,
                    event,
                    letter.error,
                ),
            )
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn dead_letters(&self) -> Result<Vec<DeadLetter>, StoreError> {
        let rows = self
            .session
            .execute_iter(self.st.select_dead_letters.clone(), ())
            .await
            .map_err(unavailable)?
            .rows_stream::<(i64, String, String, Option<Vec<u8>>, Option<String>)>()
            .map_err(corrupt)?;
        let rows: Vec<_> = rows.try_collect().await.map_err(unavailable)?;
        let mut out = Vec::with_capacity(rows.len());
        for (at, conversation, position, event, error) in rows {
            let event = match event {
                Some(bytes) => serde_json::from_slice(&bytes).map_err(corrupt)?,
                None => serde_json::Value::Null,
            };
            out.push(DeadLetter {
                conversation,
                position,
                event,
                error: error.unwrap_or_default(),
                at_ms: unsigned(at),
            });
        }
        out.sort_by_key(|d| d.at_ms);
        Ok(out)
    }

    async fn put_quarantine(&self, record: QuarantineRecord) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(&record).map_err(corrupt)?;
        self.session
            .execute_unpaged(&self.st.upsert_quarantine, (record.conversation, bytes))
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn quarantine(&self, id: &str) -> Result<Option<QuarantineRecord>, StoreError> {
        let rows = self
            .session
            .execute_unpaged(&self.st.select_quarantine, (id,))
            .await
            .map_err(unavailable)?
            .into_rows_result()
            .map_err(corrupt)?;
        let Some((bytes,)) = rows.maybe_first_row::<(Vec<u8>,)>().map_err(corrupt)? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes).map(Some).map_err(corrupt)
    }

    async fn quarantines(&self) -> Result<Vec<QuarantineRecord>, StoreError> {
        let rows = self
            .session
            .execute_iter(self.st.select_quarantines.clone(), ())
            .await
            .map_err(unavailable)?
            .rows_stream::<(Vec<u8>,)>()
            .map_err(corrupt)?;
        let rows: Vec<_> = rows.try_collect().await.map_err(unavailable)?;
        rows.into_iter()
            .map(|(bytes,)| serde_json::from_slice(&bytes).map_err(corrupt))
            .collect()
    }

    async fn remove_quarantine(&self, id: &str) -> Result<(), StoreError> {
        self.session
            .execute_unpaged(&self.st.delete_quarantine, (id,))
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    fn kind(&self) -> &'static str {
        "scylla"
    }

    async fn put_record(
        &self,
        kind: RecordKind,
        key: &str,
        value: Vec<u8>,
    ) -> Result<(), StoreError> {
        self.records.put(&self.session, kind, key, value).await
    }

    async fn records(&self, kind: RecordKind) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.records.all(&self.session, kind).await
    }

    async fn delete_record(&self, kind: RecordKind, key: &str) -> Result<bool, StoreError> {
        self.records.delete(&self.session, kind, key).await
    }

    async fn records_revision(&self, kind: RecordKind) -> Result<u64, StoreError> {
        self.records.revision(&self.session, kind).await
    }

    async fn purge_integration(&self, integration: &str) -> Result<u64, StoreError> {
        self.records
            .purge_integration(&self.session, integration, &self.st.delete_timer)
            .await
    }

    /// The analytics counts waiting for their write go now.
    async fn close(&self) -> Result<(), StoreError> {
        self.counters.flush().await
    }

    async fn finish_purge(&self, id: &str) -> Result<u64, StoreError> {
        let timer = &self.st.delete_timer;
        self.records.finish_purge(&self.session, id, timer).await
    }

    async fn resume_purges(&self, live: &[String]) -> Result<u64, StoreError> {
        let timer = &self.st.delete_timer;
        self.records.resume_purges(&self.session, live, timer).await
    }

    async fn put_document(&self, doc: DocumentRecord) -> Result<(), StoreError> {
        self.docs.put(&self.session, doc).await
    }

    async fn documents(&self) -> Result<Vec<DocumentRecord>, StoreError> {
        self.docs.all(&self.session).await
    }

    async fn delete_document(&self, assistant: &str, id: &str) -> Result<bool, StoreError> {
        self.docs.delete(&self.session, assistant, id).await
    }

    async fn knowledge_revision(&self) -> Result<u64, StoreError> {
        self.docs.revision(&self.session).await
    }

    async fn put_tenant_key(&self, key: TenantKeyRecord) -> Result<(), StoreError> {
        self.docs.put_key(&self.session, key).await
    }

    async fn tenant_key(&self, hash: &str) -> Result<Option<TenantKeyRecord>, StoreError> {
        self.docs.key(&self.session, hash).await
    }

    async fn delete_tenant_key(&self, tenant: &str, id: &str) -> Result<bool, StoreError> {
        self.docs.delete_key(&self.session, tenant, id).await
    }

    async fn ready(&self) -> bool {
        self.session
            .execute_unpaged(&self.st.select_conversation, ("",))
            .await
            .is_ok()
    }
}
