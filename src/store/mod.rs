//! The store: tenants' conversations, message logs, remembered message ids,
//! timers, takeovers, analytics and dead letters, behind one trait so
//! backends are chosen by config (`embedded`, `scylla`; per tenant through
//! [`tenants::TenantStores`]). Every backend runs the same conformance scenarios
//! (`tests/it/store_conformance.rs`).

pub mod embedded;
pub mod health;
pub mod records;
pub mod scylla;
pub mod tenants;

use std::sync::Arc;

use async_trait::async_trait;

pub use records::{
    Author, CommandOutcome, CommentRef, ConversationFilter, ConversationRecord, DailyCount,
    DeadLetter, Direction, DocumentRecord, MessageRecord, MessageStatus, Mode, OutboxItem,
    PendingComment, PendingInbound, QuarantineRecord, Rehydrated, TenantKeyRecord, TurnWrite,
};

/// A store failure. `retryable` tells a supervisor whether trying again can
/// help.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// An id longer than the store keeps (a key of the embedded store is at
    /// most 64 KiB); trying again cannot help.
    #[error("an id of {0} bytes is longer than the store keeps ({max} at most)", max = embedded::MAX_ID)]
    TooLong(usize),
}

impl StoreError {
    pub fn retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

impl From<embedded::GroupCommitError> for StoreError {
    fn from(e: embedded::GroupCommitError) -> Self {
        Self::Unavailable(e.to_string())
    }
}

impl From<fjall::Error> for StoreError {
    fn from(e: fjall::Error) -> Self {
        Self::Unavailable(e.to_string())
    }
}

impl From<redb::Error> for StoreError {
    fn from(e: redb::Error) -> Self {
        Self::Unavailable(e.to_string())
    }
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The conversation's state and remembered message ids (those whose
    /// window has not passed at `now_ms`), or `None` for a new conversation.
    async fn load_conversation(
        &self,
        id: &str,
        now_ms: u64,
    ) -> Result<Option<Rehydrated>, StoreError>;

    /// Applies everything one turn changed, atomically and durably: the
    /// state (and with it the conversation's next timer deadline), new
    /// remembered ids, new message-log lines and status changes. Shared,
    /// so a caller can try the same write again without copying it.
    async fn commit_turn(&self, write: Arc<TurnWrite>) -> Result<(), StoreError>;

    /// The message log of a conversation, oldest first, at most `limit`
    /// lines (the newest ones).
    async fn messages(&self, id: &str, limit: usize) -> Result<Vec<MessageRecord>, StoreError>;

    /// The stored state of one conversation.
    async fn conversation(&self, id: &str) -> Result<Option<ConversationRecord>, StoreError>;

    /// Conversations matching `filter`, ordered by id, starting after the
    /// id `after`, at most `limit`.
    async fn list_conversations(
        &self,
        filter: &ConversationFilter,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ConversationRecord>, StoreError>;

    /// How many conversations these integrations have, and how many of them
    /// saw activity at or after `active_since_ms`.
    async fn conversation_counts(
        &self,
        integrations: &[String],
        active_since_ms: u64,
    ) -> Result<(u64, u64), StoreError>;

    /// Conversations of these integrations a person has taken over:
    /// (conversation id, auto-resume time if any).
    async fn takeovers(
        &self,
        integrations: &[String],
    ) -> Result<Vec<(String, Option<u64>)>, StoreError>;

    /// The daily analytics rollups of these integrations from `from_day`
    /// (days since the epoch, UTC) on: (integration, counts).
    async fn daily_counts(
        &self,
        integrations: &[String],
        from_day: u32,
    ) -> Result<Vec<(String, DailyCount)>, StoreError>;

    /// Every conversation with a pending timer: (conversation id, due ms).
    async fn timers(&self) -> Result<Vec<(String, u64)>, StoreError>;

    /// Keeps an event that kept crashing its actor.
    async fn dead_letter(&self, letter: DeadLetter) -> Result<(), StoreError>;

    /// The dead letters, oldest first.
    async fn dead_letters(&self) -> Result<Vec<DeadLetter>, StoreError>;

    /// Keeps a quarantined conversation's record (replacing the one it had).
    async fn put_quarantine(&self, record: QuarantineRecord) -> Result<(), StoreError>;

    /// The conversation's quarantine, if it is quarantined.
    async fn quarantine(&self, id: &str) -> Result<Option<QuarantineRecord>, StoreError>;

    /// Every quarantined conversation.
    async fn quarantines(&self) -> Result<Vec<QuarantineRecord>, StoreError>;

    /// Lifts a conversation's quarantine (nothing if it has none).
    async fn remove_quarantine(&self, id: &str) -> Result<(), StoreError>;

    /// Whether the store can serve reads and writes now.
    async fn ready(&self) -> bool;

    /// Resolves once every turn committed before the call is on the disk.
    /// Turns are durable when committed unless the store syncs at an
    /// interval (`store.durability = "interval"`).
    async fn sync(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// At a clean stop: writes what the store keeps for a later write (an
    /// interval's sync, counts summed in memory). Called once, after the
    /// last turn.
    async fn close(&self) -> Result<(), StoreError> {
        self.sync().await
    }

    /// Whether committed turns may still be waiting for [`Store::sync`].
    fn syncs_later(&self) -> bool {
        false
    }

    /// Stores (or replaces) a knowledge-base document.
    async fn put_document(&self, doc: DocumentRecord) -> Result<(), StoreError>;

    /// Every knowledge-base document this store keeps.
    async fn documents(&self) -> Result<Vec<DocumentRecord>, StoreError>;

    /// Removes a document; false if there was none.
    async fn delete_document(&self, assistant: &str, id: &str) -> Result<bool, StoreError>;

    /// Stores a tenant API key (hashed).
    async fn put_tenant_key(&self, key: TenantKeyRecord) -> Result<(), StoreError>;

    /// The tenant key whose hash is `hash`, if any.
    async fn tenant_key(&self, hash: &str) -> Result<Option<TenantKeyRecord>, StoreError>;

    /// Revokes a tenant's key; false if it has none with that id.
    async fn delete_tenant_key(&self, tenant: &str, id: &str) -> Result<bool, StoreError>;

    /// Changes with every document written or removed: instances compare
    /// it to learn that another one changed the knowledge base.
    async fn knowledge_revision(&self) -> Result<u64, StoreError>;

    /// Stores (or replaces) a control record (see [`RecordKind`]).
    async fn put_record(
        &self,
        kind: RecordKind,
        key: &str,
        value: Vec<u8>,
    ) -> Result<(), StoreError>;

    /// Every control record of `kind`, by key.
    async fn records(&self, kind: RecordKind) -> Result<Vec<(String, Vec<u8>)>, StoreError>;

    /// Removes a control record; false if there was none.
    async fn delete_record(&self, kind: RecordKind, key: &str) -> Result<bool, StoreError>;

    /// Changes with every record of `kind` written or removed.
    async fn records_revision(&self, kind: RecordKind) -> Result<u64, StoreError>;

    /// Deletes every conversation of `integration` (messages, dedup ids,
    /// takeover, quarantine, analytics); returns how many went.
    async fn purge_integration(&self, integration: &str) -> Result<u64, StoreError>;

    /// Finishes the purge of `integration` a stop cut short, if there is
    /// one (its id is about to be used again); returns how many
    /// conversations went.
    async fn finish_purge(&self, _integration: &str) -> Result<u64, StoreError> {
        Ok(0)
    }

    /// Finishes the purges a stop cut short (a backend that purges in
    /// several steps keeps a note of each until it is done), except those
    /// of integrations in `live` (created again since: their note is
    /// dropped); returns how many conversations went.
    async fn resume_purges(&self, _live: &[String]) -> Result<u64, StoreError> {
        Ok(0)
    }

    /// One step of the retention sweep: in the conversations after `after`
    /// (at most `limit`), deletes the lines older than `before_ms` and
    /// forgets the remembered message ids whose window ended by `now_ms`.
    /// A backend whose rows expire by themselves does nothing.
    async fn purge_old_lines(
        &self,
        _now_ms: u64,
        _before_ms: u64,
        _after: Option<&str>,
        _limit: usize,
    ) -> Result<RetentionStep, StoreError> {
        Ok(RetentionStep::default())
    }

    /// Deletes the dead letters older than `before_ms`; returns how many.
    /// A backend whose letters expire by themselves does nothing.
    async fn purge_dead_letters(&self, _before_ms: u64) -> Result<u64, StoreError> {
        Ok(0)
    }

    /// The backend's name (`embedded`, `scylla`), for readiness reports.
    fn kind(&self) -> &'static str;

    /// Each backend's readiness, with the integrations it keeps: one
    /// tenant's unreachable backend must not stop the others'.
    async fn backends_ready(&self) -> Vec<BackendReady> {
        vec![BackendReady {
            kind: self.kind(),
            ready: self.ready().await,
            integrations: None,
        }]
    }
}

/// What one step of the retention sweep did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RetentionStep {
    /// Conversations looked at.
    pub conversations: usize,
    pub lines_removed: u64,
    /// Remembered message ids forgotten (their dedup window ended).
    pub ids_forgotten: u64,
    /// Where the next step starts; `None`: the sweep went round.
    pub next: Option<String>,
    /// The step stopped at its bound of rows: more is due now.
    pub full: bool,
}

/// Small records of the engine's control plane, by kind and key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// Integrations created at run time (secrets sealed): id -> record.
    Integrations,
    /// Admin API actions: time-ordered key -> entry.
    Audit,
    /// When each alert last went out: `{integration}:{kind}` -> ms.
    Alerts,
    /// Connect flows waiting for the person to pick Pages (tokens sealed).
    ConnectSessions,
    /// Where each Gmail mailbox has been read up to: integration -> cursor.
    Mailboxes,
}

impl RecordKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Integrations => "integrations",
            Self::Audit => "audit",
            Self::Alerts => "alerts",
            Self::ConnectSessions => "connect_sessions",
            Self::Mailboxes => "mailboxes",
        }
    }
}

/// One backend's readiness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendReady {
    pub kind: &'static str,
    pub ready: bool,
    /// The integrations whose conversations it keeps (`None`: all).
    pub integrations: Option<Vec<String>>,
}
