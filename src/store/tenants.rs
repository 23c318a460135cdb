//! Tenants on different backends in one engine: each conversation's calls
//! go to its tenant's store (by the integration in its id); calls about
//! every conversation (timers, takeovers, listings, dead letters) ask every
//! backend and merge the answers.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;

use super::{
    BackendReady, ConversationFilter, ConversationRecord, DailyCount, DeadLetter, DocumentRecord,
    MessageRecord, QuarantineRecord, RecordKind, Rehydrated, RetentionStep, Store, StoreError,
    TenantKeyRecord, TurnWrite,
};
use crate::event::ConversationId;

/// One backend and the integrations whose conversations it keeps.
pub struct Backend {
    pub store: Arc<dyn Store>,
    pub integrations: Vec<String>,
    /// The tenants whose knowledge-base documents it keeps.
    pub tenants: Vec<String>,
}

pub struct TenantStores {
    backends: Vec<Backend>,
    /// Integration id -> index in `backends`.
    by_integration: HashMap<String, usize>,
}

impl TenantStores {
    /// `backends` must not be empty; the first also takes conversations of
    /// integrations no backend lists (none, for a validated config).
    pub fn new(backends: Vec<Backend>) -> Self {
        let by_integration = backends
            .iter()
            .enumerate()
            .flat_map(|(i, b)| b.integrations.iter().map(move |id| (id.clone(), i)))
            .collect();
        Self {
            backends,
            by_integration,
        }
    }

    /// The store of a tenant's documents (the first backend for none).
    fn for_tenant(&self, tenant: Option<&str>) -> Result<&Arc<dyn Store>, StoreError> {
        let index = tenant
            .and_then(|t| {
                self.backends
                    .iter()
                    .position(|b| b.tenants.iter().any(|x| x == t))
            })
            .unwrap_or(0);
        self.backends
            .get(index)
            .map(|b| &b.store)
            .ok_or_else(|| StoreError::Unavailable("no store configured".into()))
    }

    fn for_conversation(&self, id: &str) -> Result<&Arc<dyn Store>, StoreError> {
        self.for_integration(ConversationId::integration_of(id))
    }

    /// The backend that keeps `integration`'s conversations.
    fn for_integration(&self, integration: &str) -> Result<&Arc<dyn Store>, StoreError> {
        let index = self.by_integration.get(integration).copied().unwrap_or(0);
        self.backends
            .get(index)
            .map(|b| &b.store)
            .ok_or_else(|| StoreError::Unavailable("no store configured".into()))
    }

    /// Each backend with the asked integrations it keeps.
    fn split<'a>(
        &'a self,
        integrations: &'a [String],
    ) -> impl Iterator<Item = (&'a Arc<dyn Store>, Vec<String>)> + 'a {
        // An integration no backend lists (one created at run time) is
        // the first backend's, as its conversations are.
        self.backends.iter().enumerate().map(move |(index, b)| {
            let mine = integrations
                .iter()
                .filter(|i| self.by_integration.get(i.as_str()).copied().unwrap_or(0) == index)
                .cloned()
                .collect();
            (&b.store, mine)
        })
    }
}

#[async_trait]
impl Store for TenantStores {
    async fn load_conversation(
        &self,
        id: &str,
        now_ms: u64,
    ) -> Result<Option<Rehydrated>, StoreError> {
        self.for_conversation(id)?
            .load_conversation(id, now_ms)
            .await
    }

    async fn commit_turn(&self, write: Arc<TurnWrite>) -> Result<(), StoreError> {
        self.for_conversation(&write.state.id)?
            .commit_turn(write)
            .await
    }

    async fn messages(&self, id: &str, limit: usize) -> Result<Vec<MessageRecord>, StoreError> {
        self.for_conversation(id)?.messages(id, limit).await
    }

    async fn conversation(&self, id: &str) -> Result<Option<ConversationRecord>, StoreError> {
        self.for_conversation(id)?.conversation(id).await
    }

    async fn list_conversations(
        &self,
        filter: &ConversationFilter,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ConversationRecord>, StoreError> {
        let mut all = Vec::new();
        for b in &self.backends {
            all.extend(b.store.list_conversations(filter, after, limit).await?);
        }
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all.truncate(limit);
        Ok(all)
    }

    async fn conversation_counts(
        &self,
        integrations: &[String],
        active_since_ms: u64,
    ) -> Result<(u64, u64), StoreError> {
        let (mut total, mut active) = (0, 0);
        for (store, mine) in self.split(integrations) {
            if mine.is_empty() {
                continue;
            }
            let (t, a) = store.conversation_counts(&mine, active_since_ms).await?;
            total += t;
            active += a;
        }
        Ok((total, active))
    }

    async fn takeovers(
        &self,
        integrations: &[String],
    ) -> Result<Vec<(String, Option<u64>)>, StoreError> {
        let mut all = Vec::new();
        for (store, mine) in self.split(integrations) {
            if !mine.is_empty() {
                all.extend(store.takeovers(&mine).await?);
            }
        }
        Ok(all)
    }

    async fn daily_counts(
        &self,
        integrations: &[String],
        from_day: u32,
    ) -> Result<Vec<(String, DailyCount)>, StoreError> {
        let mut all = Vec::new();
        for (store, mine) in self.split(integrations) {
            if !mine.is_empty() {
                all.extend(store.daily_counts(&mine, from_day).await?);
            }
        }
        Ok(all)
    }

    async fn timers(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let mut all = Vec::new();
        for b in &self.backends {
            all.extend(b.store.timers().await?);
        }
        Ok(all)
    }

    async fn dead_letter(&self, letter: DeadLetter) -> Result<(), StoreError> {
        self.for_conversation(&letter.conversation)?
            .dead_letter(letter)
            .await
    }

    async fn dead_letters(&self) -> Result<Vec<DeadLetter>, StoreError> {
        let mut all = Vec::new();
        for b in &self.backends {
            all.extend(b.store.dead_letters().await?);
        }
        all.sort_by_key(|d| d.at_ms);
        Ok(all)
    }

    async fn put_quarantine(&self, record: QuarantineRecord) -> Result<(), StoreError> {
        self.for_conversation(&record.conversation)?
            .put_quarantine(record)
            .await
    }

    async fn quarantine(&self, id: &str) -> Result<Option<QuarantineRecord>, StoreError> {
        self.for_conversation(id)?.quarantine(id).await
    }

    async fn quarantines(&self) -> Result<Vec<QuarantineRecord>, StoreError> {
        let mut all = Vec::new();
        for b in &self.backends {
            all.extend(b.store.quarantines().await?);
        }
        Ok(all)
    }

    async fn remove_quarantine(&self, id: &str) -> Result<(), StoreError> {
        self.for_conversation(id)?.remove_quarantine(id).await
    }

    async fn put_document(&self, doc: DocumentRecord) -> Result<(), StoreError> {
        self.for_tenant(doc.tenant.as_deref())?
            .put_document(doc)
            .await
    }

    async fn documents(&self) -> Result<Vec<DocumentRecord>, StoreError> {
        let mut all = Vec::new();
        for b in &self.backends {
            all.extend(b.store.documents().await?);
        }
        Ok(all)
    }

    async fn delete_document(&self, assistant: &str, id: &str) -> Result<bool, StoreError> {
        let mut removed = false;
        for b in &self.backends {
            removed |= b.store.delete_document(assistant, id).await?;
        }
        Ok(removed)
    }

    /// Tenant keys live in the first (default) backend.
    async fn put_tenant_key(&self, key: TenantKeyRecord) -> Result<(), StoreError> {
        self.for_tenant(None)?.put_tenant_key(key).await
    }

    async fn tenant_key(&self, hash: &str) -> Result<Option<TenantKeyRecord>, StoreError> {
        self.for_tenant(None)?.tenant_key(hash).await
    }

    async fn delete_tenant_key(&self, tenant: &str, id: &str) -> Result<bool, StoreError> {
        self.for_tenant(None)?.delete_tenant_key(tenant, id).await
    }

    async fn knowledge_revision(&self) -> Result<u64, StoreError> {
        let mut sum = 0u64;
        for b in &self.backends {
            sum = sum.wrapping_add(b.store.knowledge_revision().await?);
        }
        Ok(sum)
    }

    // Control records live in the first backend.
    async fn put_record(
        &self,
        kind: RecordKind,
        key: &str,
        value: Vec<u8>,
    ) -> Result<(), StoreError> {
        self.for_tenant(None)?.put_record(kind, key, value).await
    }

    async fn records(&self, kind: RecordKind) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.for_tenant(None)?.records(kind).await
    }

    async fn delete_record(&self, kind: RecordKind, key: &str) -> Result<bool, StoreError> {
        self.for_tenant(None)?.delete_record(kind, key).await
    }

    async fn records_revision(&self, kind: RecordKind) -> Result<u64, StoreError> {
        self.for_tenant(None)?.records_revision(kind).await
    }

    async fn purge_integration(&self, integration: &str) -> Result<u64, StoreError> {
        self.for_integration(integration)?
            .purge_integration(integration)
            .await
    }

    /// Each backend takes the step from the same place; the next step
    /// starts where the least advanced one stopped.
    async fn purge_old_lines(
        &self,
        now_ms: u64,
        before_ms: u64,
        after: Option<&str>,
        limit: usize,
    ) -> Result<RetentionStep, StoreError> {
        let mut total = RetentionStep::default();
        let mut next: Option<String> = None;
        for b in &self.backends {
            let step = b
                .store
                .purge_old_lines(now_ms, before_ms, after, limit)
                .await?;
            total.conversations += step.conversations;
            total.lines_removed += step.lines_removed;
            total.ids_forgotten += step.ids_forgotten;
            total.full |= step.full;
            if let Some(n) = step.next {
                next = Some(match next {
                    Some(current) if current <= n => current,
                    _ => n,
                });
            }
        }
        total.next = next;
        Ok(total)
    }

    async fn finish_purge(&self, integration: &str) -> Result<u64, StoreError> {
        self.for_integration(integration)?
            .finish_purge(integration)
            .await
    }

    async fn resume_purges(&self, live: &[String]) -> Result<u64, StoreError> {
        let mut purged = 0;
        for b in &self.backends {
            purged += b.store.resume_purges(live).await?;
        }
        Ok(purged)
    }

    async fn purge_dead_letters(&self, before_ms: u64) -> Result<u64, StoreError> {
        let mut removed = 0;
        for b in &self.backends {
            removed += b.store.purge_dead_letters(before_ms).await?;
        }
        Ok(removed)
    }

    async fn ready(&self) -> bool {
        for b in &self.backends {
            if !b.store.ready().await {
                return false;
            }
        }
        true
    }

    async fn sync(&self) -> Result<(), StoreError> {
        for b in &self.backends {
            b.store.sync().await?;
        }
        Ok(())
    }

    /// Every backend closes, also after one fails (the first error is
    /// said).
    async fn close(&self) -> Result<(), StoreError> {
        let mut first = Ok(());
        for b in &self.backends {
            if let Err(e) = b.store.close().await {
                first = first.and(Err(e));
            }
        }
        first
    }

    fn syncs_later(&self) -> bool {
        self.backends.iter().any(|b| b.store.syncs_later())
    }

    fn kind(&self) -> &'static str {
        "tenants"
    }

    async fn backends_ready(&self) -> Vec<BackendReady> {
        let mut out = Vec::with_capacity(self.backends.len());
        for b in &self.backends {
            out.push(BackendReady {
                kind: b.store.kind(),
                ready: b.store.ready().await,
                integrations: Some(b.integrations.clone()),
            });
        }
        out
    }
}
