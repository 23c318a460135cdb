//! Knowledge-base documents on ScyllaDB: `documents` (by assistant, id) and
//! `knowledge_revision` (one row, the time of the last change in ms); and
//! the tenants' API keys (`tenant_keys`, by hash).

use futures_util::TryStreamExt;
use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;

use super::{corrupt, has_row, read_revision, unavailable};
use crate::store::{DocumentRecord, StoreError, TenantKeyRecord};

pub(super) struct DocumentStatements {
    upsert: PreparedStatement,
    select_all: PreparedStatement,
    select_one: PreparedStatement,
    delete: PreparedStatement,
    bump: PreparedStatement,
    revision: PreparedStatement,
    upsert_key: PreparedStatement,
    select_key: PreparedStatement,
    select_keys: PreparedStatement,
    delete_key: PreparedStatement,
}

impl DocumentStatements {
    pub(super) async fn prepare(session: &Session, ks: &str) -> Result<Self, StoreError> {
        let p = |cql: String| async move { session.prepare(cql).await.map_err(unavailable) };
        Ok(Self {
            upsert: p(format!(
                "INSERT INTO {ks}.documents (assistant, id, record) VALUES (?, ?, ?)"
            ))
            .await?,
            select_all: p(format!("SELECT record FROM {ks}.documents")).await?,
            select_one: p(format!(
                "SELECT id FROM {ks}.documents WHERE assistant = ? AND id = ?"
            ))
            .await?,
            delete: p(format!(
                "DELETE FROM {ks}.documents WHERE assistant = ? AND id = ?"
            ))
            .await?,
            bump: p(format!(
                "INSERT INTO {ks}.knowledge_revision (k, revision) VALUES (?, ?)"
            ))
            .await?,
            revision: p(format!(
                "SELECT revision FROM {ks}.knowledge_revision WHERE k = ?"
            ))
            .await?,
            upsert_key: p(format!(
                "INSERT INTO {ks}.tenant_keys (hash, tenant, id, created_ms) VALUES (?, ?, ?, ?)"
            ))
            .await?,
            select_key: p(format!(
                "SELECT hash, tenant, id, created_ms FROM {ks}.tenant_keys WHERE hash = ?"
            ))
            .await?,
            select_keys: p(format!(
                "SELECT hash, tenant, id, created_ms FROM {ks}.tenant_keys"
            ))
            .await?,
            delete_key: p(format!("DELETE FROM {ks}.tenant_keys WHERE hash = ?")).await?,
        })
    }

    async fn bump(&self, session: &Session) -> Result<(), StoreError> {
        let at = super::records::new_revision();
        session
            .execute_unpaged(&self.bump, (0i32, at))
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    pub(super) async fn put(
        &self,
        session: &Session,
        doc: DocumentRecord,
    ) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(&doc).map_err(corrupt)?;
        session
            .execute_unpaged(&self.upsert, (doc.assistant, doc.id, bytes))
            .await
            .map_err(unavailable)?;
        self.bump(session).await
    }

    pub(super) async fn all(&self, session: &Session) -> Result<Vec<DocumentRecord>, StoreError> {
        let rows = session
            .execute_iter(self.select_all.clone(), ())
            .await
            .map_err(unavailable)?
            .rows_stream::<(Vec<u8>,)>()
            .map_err(corrupt)?;
        let rows: Vec<_> = rows.try_collect().await.map_err(unavailable)?;
        rows.into_iter()
            .map(|(bytes,)| serde_json::from_slice(&bytes).map_err(corrupt))
            .collect()
    }

    pub(super) async fn delete(
        &self,
        session: &Session,
        assistant: &str,
        id: &str,
    ) -> Result<bool, StoreError> {
        if !has_row(session, &self.select_one, (assistant, id), id).await? {
            return Ok(false);
        }
        session
            .execute_unpaged(&self.delete, (assistant, id))
            .await
            .map_err(unavailable)?;
        self.bump(session).await?;
        Ok(true)
    }

    pub(super) async fn revision(&self, session: &Session) -> Result<u64, StoreError> {
        read_revision(session, &self.revision, (0i32,)).await
    }

    pub(super) async fn put_key(
        &self,
        session: &Session,
        key: TenantKeyRecord,
    ) -> Result<(), StoreError> {
        let created = i64::try_from(key.created_ms).unwrap_or(i64::MAX);
        session
            .execute_unpaged(&self.upsert_key, (key.hash, key.tenant, key.id, created))
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    pub(super) async fn key(
        &self,
        session: &Session,
        hash: &str,
    ) -> Result<Option<TenantKeyRecord>, StoreError> {
        let rows = session
            .execute_unpaged(&self.select_key, (hash,))
            .await
            .map_err(unavailable)?
            .into_rows_result()
            .map_err(corrupt)?;
        // Compared again: a server that ignores the key restriction must not
        // hand out another key's tenant.
        let found = rows
            .rows::<(String, String, String, i64)>()
            .map_err(corrupt)?
            .filter_map(Result::ok)
            .find(|(h, ..)| h == hash);
        Ok(found.map(|(hash, tenant, id, created)| TenantKeyRecord {
            hash,
            tenant,
            id,
            created_ms: u64::try_from(created).unwrap_or(0),
        }))
    }

    pub(super) async fn delete_key(
        &self,
        session: &Session,
        tenant: &str,
        id: &str,
    ) -> Result<bool, StoreError> {
        let rows = session
            .execute_iter(self.select_keys.clone(), ())
            .await
            .map_err(unavailable)?
            .rows_stream::<(String, String, String, i64)>()
            .map_err(corrupt)?;
        let rows: Vec<_> = rows.try_collect().await.map_err(unavailable)?;
        let Some((hash, ..)) = rows.into_iter().find(|(_, t, i, _)| t == tenant && i == id) else {
            return Ok(false);
        };
        session
            .execute_unpaged(&self.delete_key, (hash,))
            .await
            .map_err(unavailable)?;
        Ok(true)
    }
}
