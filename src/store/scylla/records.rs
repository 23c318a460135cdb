//! Control records on ScyllaDB: `control_records` (by kind, key) and
//! `control_revision` (by kind, the time of the last change in µs); and
//! the purge of one integration's conversations.

use futures_util::TryStreamExt;
use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;

use super::{corrupt, has_row, read_revision, unavailable};
use crate::store::{RecordKind, StoreError};

/// A revision unlike the one before it: readers look for a change, not an
/// order, so two bumps in one microsecond must not write the same value.
/// The time in µs, then 8 bits counting this instance's bumps from a
/// random start (two instances in one µs differ but for 1 in 256).
pub(super) fn new_revision() -> i64 {
    static BUMPS: std::sync::OnceLock<std::sync::atomic::AtomicU8> = std::sync::OnceLock::new();
    let bumps = BUMPS.get_or_init(|| std::sync::atomic::AtomicU8::new(rand::random()));
    let n = bumps.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());
    let micros = i64::try_from(micros).unwrap_or(i64::MAX).min(i64::MAX >> 8);
    (micros << 8) | i64::from(n)
}

/// The kind of the control records that note a purge under way (the key
/// is the integration).
const PURGING: &str = "purging";

pub(super) struct RecordStatements {
    upsert: PreparedStatement,
    select: PreparedStatement,
    select_one: PreparedStatement,
    delete: PreparedStatement,
    bump: PreparedStatement,
    revision: PreparedStatement,
    conversations: PreparedStatement,
    /// Deletes of one conversation's rows, table by table.
    purge: Vec<PreparedStatement>,
    /// Deletes of a conversation's rows in the integration's index
    /// partitions (the conversation index last: an interrupted purge is
    /// found again by the next one).
    purge_indexed: Vec<PreparedStatement>,
    keyspace: String,
}

impl RecordStatements {
    pub(super) async fn prepare(session: &Session, ks: &str) -> Result<Self, StoreError> {
        let p = |cql: String| async move { session.prepare(cql).await.map_err(unavailable) };
        let mut purge = Vec::new();
        for (table, column) in [
            ("messages", "conversation"),
            ("dedup", "conversation"),
            ("quarantine", "conversation"),
            ("conversations", "id"),
        ] {
            purge.push(p(format!("DELETE FROM {ks}.{table} WHERE {column} = ?")).await?);
        }
        Ok(Self {
            upsert: p(format!(
                "INSERT INTO {ks}.control_records (kind, key, value) VALUES (?, ?, ?)"
            ))
            .await?,
            select: p(format!(
                "SELECT key, value FROM {ks}.control_records WHERE kind = ?"
            ))
            .await?,
            select_one: p(format!(
                "SELECT key FROM {ks}.control_records WHERE kind = ? AND key = ?"
            ))
            .await?,
            delete: p(format!(
                "DELETE FROM {ks}.control_records WHERE kind = ? AND key = ?"
            ))
            .await?,
            bump: p(format!(
                "INSERT INTO {ks}.control_revision (kind, revision) VALUES (?, ?)"
            ))
            .await?,
            revision: p(format!(
                "SELECT revision FROM {ks}.control_revision WHERE kind = ?"
            ))
            .await?,
            conversations: p(format!(
                "SELECT id FROM {ks}.conversation_index WHERE integration = ?"
            ))
            .await?,
            purge,
            purge_indexed: vec![
                p(format!(
                    "DELETE FROM {ks}.takeovers_by_integration \
                     WHERE integration = ? AND conversation = ?"
                ))
                .await?,
                p(format!(
                    "DELETE FROM {ks}.conversation_index WHERE integration = ? AND id = ?"
                ))
                .await?,
            ],
            keyspace: ks.to_string(),
        })
    }

    async fn bump(&self, session: &Session, kind: RecordKind) -> Result<(), StoreError> {
        let at = new_revision();
        session
            .execute_unpaged(&self.bump, (kind.as_str(), at))
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    pub(super) async fn put(
        &self,
        session: &Session,
        kind: RecordKind,
        key: &str,
        value: Vec<u8>,
    ) -> Result<(), StoreError> {
        session
            .execute_unpaged(&self.upsert, (kind.as_str(), key, value))
            .await
            .map_err(unavailable)?;
        self.bump(session, kind).await
    }

    pub(super) async fn all(
        &self,
        session: &Session,
        kind: RecordKind,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.rows_of(session, kind.as_str()).await
    }

    /// Every (key, value) of the control records of `kind`.
    async fn rows_of(
        &self,
        session: &Session,
        kind: &str,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let rows = session
            .execute_iter(self.select.clone(), (kind,))
            .await
            .map_err(unavailable)?
            .rows_stream::<(String, Vec<u8>)>()
            .map_err(corrupt)?;
        rows.try_collect().await.map_err(unavailable)
    }

    pub(super) async fn delete(
        &self,
        session: &Session,
        kind: RecordKind,
        key: &str,
    ) -> Result<bool, StoreError> {
        if !has_row(session, &self.select_one, (kind.as_str(), key), key).await? {
            return Ok(false);
        }
        session
            .execute_unpaged(&self.delete, (kind.as_str(), key))
            .await
            .map_err(unavailable)?;
        self.bump(session, kind).await?;
        Ok(true)
    }

    pub(super) async fn revision(
        &self,
        session: &Session,
        kind: RecordKind,
    ) -> Result<u64, StoreError> {
        read_revision(session, &self.revision, (kind.as_str(),)).await
    }

    /// Deletes every conversation of `integration` with its rows and its
    /// analytics; returns how many conversations went. A note (control
    /// record of kind `purging`) says it is under way until it is done, so
    /// a purge cut short (a timeout, a stop) is finished by
    /// [`Self::finish_purge`] or [`Self::resume_purges`].
    pub(super) async fn purge_integration(
        &self,
        session: &Session,
        integration: &str,
        purge_timer: &PreparedStatement,
    ) -> Result<u64, StoreError> {
        Ok(self
            .purge_at_most(session, integration, purge_timer, usize::MAX)
            .await?
            .0)
    }

    /// At most `limit` conversations of a purge: (how many went, whether
    /// the purge is done; if not, its note stays).
    pub(super) async fn purge_at_most(
        &self,
        session: &Session,
        integration: &str,
        purge_timer: &PreparedStatement,
        limit: usize,
    ) -> Result<(u64, bool), StoreError> {
        session
            .execute_unpaged(&self.upsert, (PURGING, integration, Vec::<u8>::new()))
            .await
            .map_err(unavailable)?;
        // The integration's partition of the conversation index lists them.
        let rows = session
            .execute_iter(self.conversations.clone(), (integration,))
            .await
            .map_err(unavailable)?
            .rows_stream::<(String,)>()
            .map_err(corrupt)?;
        let rows: Vec<(String,)> = rows.try_collect().await.map_err(unavailable)?;
        let mut purged = 0;
        for (id,) in rows.iter().take(limit) {
            self.purge_one(session, integration, id, purge_timer)
                .await?;
            purged += 1;
        }
        if rows.len() > limit {
            return Ok((purged, false));
        }
        // Once more: a turn that was still being written as its
        // conversation's rows went wrote them again (without an index row
        // when its state was not new that day, so no later purge finds it).
        for (id,) in &rows {
            self.purge_one(session, integration, id, purge_timer)
                .await?;
        }
        // Counters are best effort (see counters.rs): so is their purge.
        let cql = format!(
            "DELETE FROM {}.analytics WHERE integration = ?",
            self.keyspace
        );
        if let Err(e) = session.query_unpaged(cql, (integration,)).await {
            tracing::warn!(integration, error = %e, "Analytics of a purged integration not deleted");
        }
        session
            .execute_unpaged(&self.delete, (PURGING, integration))
            .await
            .map_err(unavailable)?;
        Ok((purged, true))
    }

    /// One conversation's rows, its timer and its index rows.
    async fn purge_one(
        &self,
        session: &Session,
        integration: &str,
        id: &str,
        purge_timer: &PreparedStatement,
    ) -> Result<(), StoreError> {
        for statement in &self.purge {
            session
                .execute_unpaged(statement, (id,))
                .await
                .map_err(unavailable)?;
        }
        session
            .execute_unpaged(purge_timer, (super::timer_shard(id), id))
            .await
            .map_err(unavailable)?;
        // Row by row: the index partitions of an integration that stays in
        // service (history purged) keep taking rows.
        for statement in &self.purge_indexed {
            session
                .execute_unpaged(statement, (integration, id))
                .await
                .map_err(unavailable)?;
        }
        Ok(())
    }

    /// Finishes the purge of `integration` if one is noted as under way.
    pub(super) async fn finish_purge(
        &self,
        session: &Session,
        integration: &str,
        purge_timer: &PreparedStatement,
    ) -> Result<u64, StoreError> {
        if !has_row(
            session,
            &self.select_one,
            (PURGING, integration),
            integration,
        )
        .await?
        {
            return Ok(0);
        }
        self.purge_integration(session, integration, purge_timer)
            .await
    }

    /// Finishes every purge noted as under way, but those of `live`
    /// integrations (created again since), whose notes are dropped.
    pub(super) async fn resume_purges(
        &self,
        session: &Session,
        live: &[String],
        purge_timer: &PreparedStatement,
    ) -> Result<u64, StoreError> {
        let noted = self.rows_of(session, PURGING).await?;
        let mut purged = 0;
        for (integration, _) in noted {
            if live.contains(&integration) {
                tracing::warn!(
                    integration = %integration,
                    "An integration purge cut short is not finished: an integration with this id is configured again, and keeps what is left"
                );
                session
                    .execute_unpaged(&self.delete, (PURGING, integration.as_str()))
                    .await
                    .map_err(unavailable)?;
                continue;
            }
            tracing::info!(integration = %integration, "Finishing a purge a stop cut short");
            match self
                .purge_integration(session, &integration, purge_timer)
                .await
            {
                Ok(n) => purged += n,
                Err(e) => {
                    tracing::warn!(integration = %integration, error = %e, "Cannot finish an integration purge cut short; tried again at the next start")
                }
            }
        }
        Ok(purged)
    }
}

impl super::ScyllaStore {
    /// At most `conversations` conversations of a purge of `integration`:
    /// (how many went, whether it is done). What is left stays noted, as
    /// after a stop.
    pub async fn purge_integration_partly(
        &self,
        integration: &str,
        conversations: usize,
    ) -> Result<(u64, bool), StoreError> {
        self.records
            .purge_at_most(
                &self.session,
                integration,
                &self.st.delete_timer,
                conversations,
            )
            .await
    }
}
