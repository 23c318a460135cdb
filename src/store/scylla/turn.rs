//! One turn as one logged batch: conversation state, message-log lines and
//! their status changes, remembered ids with their TTL, the timer index and
//! the takeover index.

use scylla::serialize::row::SerializeRow;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;

use super::{corrupt, ms, status_text, timer_shard, ScyllaStore, Values};
use crate::store::{MessageStatus, Mode, StoreError, TurnWrite};

/// One turn's logged batch, and what it carries.
pub struct TurnBatch {
    pub batch: Batch,
    pub(super) values: Values,
    /// Statements in the batch.
    pub statements: usize,
    /// Bytes of bound values (blobs, text, numbers), without framing.
    pub value_bytes: usize,
}

impl Default for TurnBatch {
    fn default() -> Self {
        Self {
            batch: Batch::new(BatchType::Logged),
            values: Vec::new(),
            statements: 0,
            value_bytes: 0,
        }
    }
}

impl TurnBatch {
    fn push(
        &mut self,
        statement: &PreparedStatement,
        values: impl SerializeRow + Send + Sync + 'static,
        bytes: usize,
    ) {
        self.batch.append_statement(statement.clone());
        self.values.push(Box::new(values));
        self.statements += 1;
        self.value_bytes += bytes;
    }
}

impl ScyllaStore {
    /// The statements and values of one turn (also how the write path is
    /// measured: statements and bytes per event).
    pub async fn turn_batch(&self, w: &TurnWrite, now_ms: u64) -> Result<TurnBatch, StoreError> {
        let id = w.state.id.as_str();
        let mut t = TurnBatch::default();
        let state = serde_json::to_vec(&w.state).map_err(corrupt)?;
        let bytes = id.len() + w.state.integration.len() + state.len();
        t.push(
            &self.st.upsert_conversation,
            (id.to_string(), w.state.integration.clone(), state),
            bytes,
        );
        for m in &w.messages {
            let body = serde_json::to_vec(m).map_err(corrupt)?;
            let status = status_text(m.status);
            let bytes =
                id.len() + 8 + body.len() + status.len() + m.error.as_ref().map_or(0, String::len);
            t.push(
                &self.st.insert_message,
                (id.to_string(), ms(m.seq), body, status, m.error.clone()),
                bytes,
            );
        }
        for (seq, status) in &w.status_updates {
            let status = status_text(*status);
            let bytes = status.len() + id.len() + 8;
            t.push(
                &self.st.set_status,
                (status, id.to_string(), ms(*seq)),
                bytes,
            );
        }
        for (seq, why) in &w.failures {
            let status = status_text(MessageStatus::Failed);
            let bytes = status.len() + why.len() + id.len() + 8;
            t.push(
                &self.st.set_failure,
                (status, why.clone(), id.to_string(), ms(*seq)),
                bytes,
            );
        }
        for (mid, expires) in &w.dedup {
            let minutes = expires.saturating_sub(now_ms).div_ceil(60_000).max(1);
            let ttl = i32::try_from(minutes * 60).unwrap_or(i32::MAX);
            let insert = self.dedup_insert(ttl).await?;
            let bytes = id.len() + mid.len() + 8;
            t.push(&insert, (id.to_string(), mid.clone(), ms(*expires)), bytes);
        }
        let integration = w.state.integration.as_str();
        // Once per conversation and active day: not a write per turn into
        // the integration's partition.
        if w.index_changed {
            t.push(
                &self.st.upsert_index,
                (
                    integration.to_string(),
                    id.to_string(),
                    ms(w.state.last_activity_ms),
                ),
                integration.len() + id.len() + 8,
            );
        }
        if w.deadline_changed {
            let shard = timer_shard(id);
            match w.state.next_deadline() {
                // One row per conversation: a new deadline overwrites it.
                Some(due) => t.push(
                    &self.st.upsert_timer,
                    (shard, id.to_string(), ms(due)),
                    id.len() + 12,
                ),
                None => t.push(&self.st.delete_timer, (shard, id.to_string()), id.len() + 4),
            }
        }
        if w.takeover_changed {
            let bytes = integration.len() + id.len() + 8;
            if w.state.mode == Mode::Human {
                let resume = ms(w.state.auto_resume_ms.unwrap_or(0));
                t.push(
                    &self.st.upsert_takeover,
                    (integration.to_string(), id.to_string(), resume),
                    bytes,
                );
            } else {
                t.push(
                    &self.st.delete_takeover,
                    (integration.to_string(), id.to_string()),
                    bytes,
                );
            }
        }
        Ok(t)
    }
}
