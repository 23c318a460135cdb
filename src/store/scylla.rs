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
//! replay. The day's analytics counters follow in a counter batch.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::TryStreamExt;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::serialize::row::SerializeRow;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;

use super::{
    ConversationFilter, ConversationRecord, DailyCount, DeadLetter, MessageRecord, MessageStatus,
    Mode, Rehydrated, Store, StoreError, TurnWrite,
};
use crate::config::ScyllaConfig;

/// The schema, with `{keyspace}` and `{replication}` to fill in.
pub const SCHEMA: &str = include_str!("schema.cql");

/// Hours per timer bucket.
const TIMER_BUCKET_MS: u64 = 3_600_000;

type Values = Vec<Box<dyn SerializeRow + Send + Sync>>;

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

/// The schema's statements for `config`, in order.
pub fn schema_statements(config: &ScyllaConfig) -> Vec<String> {
    SCHEMA
        .replace("{keyspace}", &config.keyspace)
        .replace("{replication}", &config.replication)
        .split("\n;")
        .map(|s| {
            s.lines()
                .filter(|l| !l.trim_start().starts_with("--"))
                .collect::<Vec<_>>()
                .join("\n")
                .trim()
                .to_string()
        })
        .filter(|s| !s.is_empty())
        .collect()
}

struct Statements {
    upsert_conversation: PreparedStatement,
    insert_message: PreparedStatement,
    set_status: PreparedStatement,
    set_failure: PreparedStatement,
    insert_timer: PreparedStatement,
    delete_timer: PreparedStatement,
    upsert_takeover: PreparedStatement,
    delete_takeover: PreparedStatement,
    select_conversation: PreparedStatement,
    select_dedup: PreparedStatement,
    select_messages: PreparedStatement,
    select_timers: PreparedStatement,
    insert_dead_letter: PreparedStatement,
    select_dead_letters: PreparedStatement,
    select_conversations: PreparedStatement,
    select_takeovers: PreparedStatement,
}

/// Prepares `cql`: idempotent (the driver may retry it), with a timeout.
async fn prepare(
    session: &Session,
    cql: String,
    timeout: Duration,
) -> Result<PreparedStatement, StoreError> {
    let mut p = session.prepare(cql).await.map_err(unavailable)?;
    p.set_is_idempotent(true);
    p.set_request_timeout(Some(timeout));
    Ok(p)
}

/// The analytics statements, prepared on first use: counter updates (not
/// idempotent, so never retried by the driver) and the rollup read.
struct CounterStatements {
    add: PreparedStatement,
    select: PreparedStatement,
}

impl Statements {
    async fn prepare(session: &Session, ks: &str, timeout: Duration) -> Result<Self, StoreError> {
        let prepare = |cql: String| prepare(session, cql, timeout);
        Ok(Self {
            upsert_conversation: prepare(format!(
                "INSERT INTO {ks}.conversations (id, integration, state) VALUES (?, ?, ?)"
            ))
            .await?,
            insert_message: prepare(format!(
                "INSERT INTO {ks}.messages (conversation, seq, body, status, error) VALUES (?, ?, ?, ?, ?)"
            ))
            .await?,
            set_status: prepare(format!(
                "UPDATE {ks}.messages SET status = ? WHERE conversation = ? AND seq = ?"
            ))
            .await?,
            set_failure: prepare(format!(
                "UPDATE {ks}.messages SET status = ?, error = ? WHERE conversation = ? AND seq = ?"
            ))
            .await?,
            insert_timer: prepare(format!(
                "INSERT INTO {ks}.timers (bucket, due_ms, conversation) VALUES (?, ?, ?)"
            ))
            .await?,
            delete_timer: prepare(format!(
                "DELETE FROM {ks}.timers WHERE bucket = ? AND due_ms = ? AND conversation = ?"
            ))
            .await?,
            upsert_takeover: prepare(format!(
                "INSERT INTO {ks}.takeovers (conversation, resume_ms) VALUES (?, ?)"
            ))
            .await?,
            delete_takeover: prepare(format!(
                "DELETE FROM {ks}.takeovers WHERE conversation = ?"
            ))
            .await?,
            select_conversation: prepare(format!(
                "SELECT state FROM {ks}.conversations WHERE id = ?"
            ))
            .await?,
            select_dedup: prepare(format!(
                "SELECT id, expires_ms FROM {ks}.dedup WHERE conversation = ?"
            ))
            .await?,
            select_messages: prepare(format!(
                "SELECT seq, body, status, error FROM {ks}.messages WHERE conversation = ?"
            ))
            .await?,
            select_timers: prepare(format!("SELECT conversation, due_ms FROM {ks}.timers")).await?,
            insert_dead_letter: prepare(format!(
                "INSERT INTO {ks}.dead_letters (day, at_ms, conversation, position, event, error) \
                 VALUES (?, ?, ?, ?, ?, ?)"
            ))
            .await?,
            select_dead_letters: prepare(format!(
                "SELECT at_ms, conversation, position, event, error FROM {ks}.dead_letters"
            ))
            .await?,
            select_conversations: prepare(format!(
                "SELECT id, integration, state FROM {ks}.conversations"
            ))
            .await?,
            select_takeovers: prepare(format!(
                "SELECT conversation, resume_ms FROM {ks}.takeovers"
            ))
            .await?,
        })
    }
}

pub struct ScyllaStore {
    session: Session,
    st: Statements,
    counters: tokio::sync::OnceCell<CounterStatements>,
    /// Remembered-id inserts by TTL (whole minutes): the TTL is the
    /// integration's dedup window, so there are a handful.
    dedup_inserts: tokio::sync::Mutex<HashMap<i32, PreparedStatement>>,
    keyspace: String,
    timeout: Duration,
    /// Counter updates failed once already (logged once, then at debug).
    counts_failed: AtomicBool,
}

/// Connects to the cluster.
async fn connect(config: &ScyllaConfig) -> Result<Session, StoreError> {
    SessionBuilder::new()
        .known_nodes(&config.nodes)
        .connection_timeout(Duration::from_millis(config.request_timeout_ms.max(1_000)))
        .auto_await_schema_agreement(config.await_schema_agreement)
        .build()
        .await
        .map_err(|e| StoreError::Unavailable(format!("cannot connect to ScyllaDB: {e}")))
}

/// Applies the schema (every statement `IF NOT EXISTS`).
pub async fn migrate(config: &ScyllaConfig) -> Result<usize, StoreError> {
    apply_statements(config, &schema_statements(config)).await
}

/// Applies these schema statements, in order.
pub async fn apply_statements(
    config: &ScyllaConfig,
    statements: &[String],
) -> Result<usize, StoreError> {
    let session = connect(config).await?;
    apply_schema(&session, statements).await
}

async fn apply_schema(session: &Session, statements: &[String]) -> Result<usize, StoreError> {
    for cql in statements {
        session
            .query_unpaged(cql.as_str(), ())
            .await
            .map_err(|e| StoreError::Unavailable(format!("schema: {e}")))?;
    }
    Ok(statements.len())
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
        Self::prepared(session, config).await
    }

    /// Connects to a keyspace whose schema is already applied.
    pub async fn open_on_schema(config: &ScyllaConfig) -> Result<Self, StoreError> {
        Self::prepared(connect(config).await?, config).await
    }

    async fn prepared(session: Session, config: &ScyllaConfig) -> Result<Self, StoreError> {
        let timeout = Duration::from_millis(config.request_timeout_ms);
        let st = Statements::prepare(&session, &config.keyspace, timeout).await?;
        Ok(Self {
            session,
            st,
            counters: tokio::sync::OnceCell::new(),
            dedup_inserts: tokio::sync::Mutex::new(HashMap::new()),
            keyspace: config.keyspace.clone(),
            timeout,
            counts_failed: AtomicBool::new(false),
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

    async fn counter_statements(&self) -> Result<&CounterStatements, StoreError> {
        self.counters
            .get_or_try_init(|| async {
                let ks = &self.keyspace;
                let mut add = prepare(
                    &self.session,
                    format!(
                        "UPDATE {ks}.analytics SET inbound = inbound + ?, outbound = outbound + ?, \
                         delivered = delivered + ?, reads = reads + ? WHERE integration = ? AND day = ?"
                    ),
                    self.timeout,
                )
                .await?;
                add.set_is_idempotent(false);
                let select = prepare(
                    &self.session,
                    format!(
                        "SELECT day, inbound, outbound, delivered, reads FROM {ks}.analytics WHERE integration = ?"
                    ),
                    self.timeout,
                )
                .await?;
                Ok(CounterStatements { add, select })
            })
            .await
    }

    /// The statements and values of one turn (also how the write path is
    /// measured: statements and bytes per event).
    pub async fn turn_batch(
        &self,
        w: &TurnWrite,
        now_ms: u64,
    ) -> Result<(Batch, Values), StoreError> {
        let id = w.state.id.clone();
        let mut batch = Batch::new(BatchType::Logged);
        let mut values: Values = Vec::new();
        let state = serde_json::to_vec(&w.state).map_err(corrupt)?;
        batch.append_statement(self.st.upsert_conversation.clone());
        values.push(Box::new((id.clone(), w.state.integration.clone(), state)));
        for m in &w.messages {
            let body = serde_json::to_vec(m).map_err(corrupt)?;
            batch.append_statement(self.st.insert_message.clone());
            values.push(Box::new((
                id.clone(),
                ms(m.seq),
                body,
                status_text(m.status),
                m.error.clone(),
            )));
        }
        for (seq, status) in &w.status_updates {
            batch.append_statement(self.st.set_status.clone());
            values.push(Box::new((status_text(*status), id.clone(), ms(*seq))));
        }
        for (seq, why) in &w.failures {
            batch.append_statement(self.st.set_failure.clone());
            values.push(Box::new((
                status_text(MessageStatus::Failed),
                why.clone(),
                id.clone(),
                ms(*seq),
            )));
        }
        for (mid, expires) in &w.dedup {
            let minutes = expires.saturating_sub(now_ms).div_ceil(60_000).max(1);
            let ttl = i32::try_from(minutes * 60).unwrap_or(i32::MAX);
            batch.append_statement(self.dedup_insert(ttl).await?);
            values.push(Box::new((id.clone(), mid.clone(), ms(*expires))));
        }
        if w.deadline_changed {
            if let Some(old) = w.previous_deadline {
                batch.append_statement(self.st.delete_timer.clone());
                values.push(Box::new((ms(old / TIMER_BUCKET_MS), ms(old), id.clone())));
            }
            if let Some(due) = w.state.next_deadline() {
                batch.append_statement(self.st.insert_timer.clone());
                values.push(Box::new((ms(due / TIMER_BUCKET_MS), ms(due), id.clone())));
            }
        }
        if w.takeover_changed {
            if w.state.mode == Mode::Human {
                batch.append_statement(self.st.upsert_takeover.clone());
                values.push(Box::new((
                    id.clone(),
                    ms(w.state.auto_resume_ms.unwrap_or(0)),
                )));
            } else {
                batch.append_statement(self.st.delete_takeover.clone());
                values.push(Box::new((id.clone(),)));
            }
        }
        Ok((batch, values))
    }

    async fn add_counts(&self, integration: &str, counts: &[DailyCount]) {
        if counts.is_empty() {
            return;
        }
        let result = match self.counter_statements().await {
            Ok(st) => self.counter_batch(st, integration, counts).await,
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            if self.counts_failed.swap(true, Ordering::Relaxed) {
                tracing::debug!(error = %e, "Analytics counters not updated");
            } else {
                tracing::warn!(error = %e, "Analytics counters not updated (logged once)");
            }
        }
    }

    async fn counter_batch(
        &self,
        st: &CounterStatements,
        integration: &str,
        counts: &[DailyCount],
    ) -> Result<(), StoreError> {
        let mut batch = Batch::new(BatchType::Counter);
        let mut values: Values = Vec::new();
        for c in counts {
            batch.append_statement(st.add.clone());
            values.push(Box::new((
                ms(c.inbound),
                ms(c.outbound),
                ms(c.delivered),
                ms(c.read),
                integration.to_string(),
                i32::try_from(c.day).unwrap_or(i32::MAX),
            )));
        }
        self.session
            .batch(&batch, values)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn scan_conversations(&self) -> Result<Vec<ConversationRecord>, StoreError> {
        let rows = self
            .session
            .execute_iter(self.st.select_conversations.clone(), ())
            .await
            .map_err(unavailable)?
            .rows_stream::<(String, Option<String>, Option<Vec<u8>>)>()
            .map_err(corrupt)?;
        let rows: Vec<_> = rows.try_collect().await.map_err(unavailable)?;
        let mut out = Vec::with_capacity(rows.len());
        for (_, _, state) in rows {
            if let Some(bytes) = state {
                out.push(serde_json::from_slice(&bytes).map_err(corrupt)?);
            }
        }
        Ok(out)
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

    async fn commit_turn(&self, write: TurnWrite) -> Result<(), StoreError> {
        let now = crate::clock::now_ms();
        let (batch, values) = self.turn_batch(&write, now).await?;
        self.session
            .batch(&batch, values)
            .await
            .map_err(unavailable)?;
        self.add_counts(&write.state.integration, &write.counts)
            .await;
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

    /// A scan of the whole table, sorted by id (the admin API's listing;
    /// fine for thousands of conversations, slow for millions).
    async fn list_conversations(
        &self,
        filter: &ConversationFilter,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ConversationRecord>, StoreError> {
        let mut all: Vec<ConversationRecord> = self
            .scan_conversations()
            .await?
            .into_iter()
            .filter(|c| filter.matches(c) && after.is_none_or(|a| c.id.as_str() > a))
            .collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all.truncate(limit);
        Ok(all)
    }

    async fn conversation_counts(
        &self,
        integrations: &[String],
        active_since_ms: u64,
    ) -> Result<(u64, u64), StoreError> {
        let mut total = 0;
        let mut active = 0;
        for c in self.scan_conversations().await? {
            if integrations.contains(&c.integration) {
                total += 1;
                if c.last_activity_ms >= active_since_ms {
                    active += 1;
                }
            }
        }
        Ok((total, active))
    }

    async fn takeovers(&self) -> Result<Vec<(String, Option<u64>)>, StoreError> {
        let rows = self
            .session
            .execute_iter(self.st.select_takeovers.clone(), ())
            .await
            .map_err(unavailable)?
            .rows_stream::<(String, Option<i64>)>()
            .map_err(corrupt)?;
        let rows: Vec<_> = rows.try_collect().await.map_err(unavailable)?;
        Ok(rows
            .into_iter()
            .map(|(id, resume)| (id, resume.map(unsigned).filter(|&t| t > 0)))
            .collect())
    }

    async fn daily_counts(
        &self,
        integrations: &[String],
        from_day: u32,
    ) -> Result<Vec<(String, DailyCount)>, StoreError> {
        let st = self.counter_statements().await?;
        let mut out = Vec::new();
        for integration in integrations {
            let rows = self
                .session
                .execute_iter(st.select.clone(), (integration.as_str(),))
                .await
                .map_err(unavailable)?
                .rows_stream::<(i32, Option<i64>, Option<i64>, Option<i64>, Option<i64>)>()
                .map_err(corrupt)?;
            let rows: Vec<_> = rows.try_collect().await.map_err(unavailable)?;
            for (day, inbound, outbound, delivered, read) in rows {
                let day = u32::try_from(day).unwrap_or(0);
                if day < from_day {
                    continue;
                }
                let n = |v: Option<i64>| unsigned(v.unwrap_or(0));
                out.push((
                    integration.clone(),
                    DailyCount {
                        day,
                        inbound: n(inbound),
                        outbound: n(outbound),
                        delivered: n(delivered),
                        read: n(read),
                    },
                ));
            }
        }
        Ok(out)
    }

    async fn timers(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let rows = self
            .session
            .execute_iter(self.st.select_timers.clone(), ())
            .await
            .map_err(unavailable)?
            .rows_stream::<(String, i64)>()
            .map_err(corrupt)?;
        let rows: Vec<_> = rows.try_collect().await.map_err(unavailable)?;
        Ok(rows
            .into_iter()
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

    /// Remembered ids expire by their TTL; nothing to do here.
    async fn purge_expired(&self, _now_ms: u64) -> Result<u64, StoreError> {
        Ok(0)
    }

    async fn ready(&self) -> bool {
        self.session
            .execute_unpaged(&self.st.select_conversation, ("",))
            .await
            .is_ok()
    }
}
