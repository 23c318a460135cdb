//! Every statement of the scylla store, prepared once when it opens:
//! idempotent (the driver may retry them) and with a request timeout.

use std::time::Duration;

use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;

use super::unavailable;
use crate::store::StoreError;

pub(super) struct Statements {
    pub(super) upsert_conversation: PreparedStatement,
    pub(super) insert_message: PreparedStatement,
    pub(super) set_status: PreparedStatement,
    pub(super) set_failure: PreparedStatement,
    pub(super) upsert_timer: PreparedStatement,
    pub(super) delete_timer: PreparedStatement,
    pub(super) upsert_takeover: PreparedStatement,
    pub(super) delete_takeover: PreparedStatement,
    pub(super) upsert_index: PreparedStatement,
    pub(super) select_index: PreparedStatement,
    pub(super) select_index_after: PreparedStatement,
    pub(super) select_conversation: PreparedStatement,
    pub(super) select_dedup: PreparedStatement,
    pub(super) select_messages: PreparedStatement,
    pub(super) select_timers: PreparedStatement,
    pub(super) insert_dead_letter: PreparedStatement,
    pub(super) select_dead_letters: PreparedStatement,
    pub(super) select_conversations: PreparedStatement,
    pub(super) select_takeovers: PreparedStatement,
    pub(super) upsert_quarantine: PreparedStatement,
    pub(super) select_quarantine: PreparedStatement,
    pub(super) select_quarantines: PreparedStatement,
    pub(super) delete_quarantine: PreparedStatement,
}

/// Prepares `cql`: idempotent (the driver may retry it), with a timeout.
pub(super) async fn prepare(
    session: &Session,
    cql: String,
    timeout: Duration,
) -> Result<PreparedStatement, StoreError> {
    let mut p = session.prepare(cql).await.map_err(unavailable)?;
    p.set_is_idempotent(true);
    p.set_request_timeout(Some(timeout));
    Ok(p)
}

impl Statements {
    pub(super) async fn prepare(
        session: &Session,
        ks: &str,
        timeout: Duration,
    ) -> Result<Self, StoreError> {
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
            upsert_timer: prepare(format!(
                "INSERT INTO {ks}.timer_shards (shard, conversation, due_ms) VALUES (?, ?, ?)"
            ))
            .await?,
            delete_timer: prepare(format!(
                "DELETE FROM {ks}.timer_shards WHERE shard = ? AND conversation = ?"
            ))
            .await?,
            upsert_takeover: prepare(format!(
                "INSERT INTO {ks}.takeovers_by_integration (integration, conversation, resume_ms) \
                 VALUES (?, ?, ?)"
            ))
            .await?,
            delete_takeover: prepare(format!(
                "DELETE FROM {ks}.takeovers_by_integration WHERE integration = ? AND conversation = ?"
            ))
            .await?,
            upsert_index: prepare(format!(
                "INSERT INTO {ks}.conversation_index (integration, id, last_activity_ms) \
                 VALUES (?, ?, ?)"
            ))
            .await?,
            select_index: prepare(format!(
                "SELECT id, last_activity_ms FROM {ks}.conversation_index WHERE integration = ?"
            ))
            .await?,
            select_index_after: prepare(format!(
                "SELECT id, last_activity_ms FROM {ks}.conversation_index \
                 WHERE integration = ? AND id > ?"
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
            select_timers: prepare(format!(
                "SELECT conversation, due_ms FROM {ks}.timer_shards WHERE shard = ?"
            ))
            .await?,
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
                "SELECT conversation, resume_ms FROM {ks}.takeovers_by_integration \
                 WHERE integration = ?"
            ))
            .await?,
            upsert_quarantine: prepare(format!(
                "INSERT INTO {ks}.quarantine (conversation, record) VALUES (?, ?)"
            ))
            .await?,
            select_quarantine: prepare(format!(
                "SELECT record FROM {ks}.quarantine WHERE conversation = ?"
            ))
            .await?,
            select_quarantines: prepare(format!("SELECT record FROM {ks}.quarantine")).await?,
            delete_quarantine: prepare(format!(
                "DELETE FROM {ks}.quarantine WHERE conversation = ?"
            ))
            .await?,
        })
    }
}
