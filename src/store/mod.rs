//! The store: tenants' conversations, message logs, remembered message ids,
//! timers and dead letters, behind one trait so backends are chosen by
//! config. Every backend runs the same conformance scenarios
//! (`tests/it/store_conformance.rs`).

pub mod embedded;
pub mod group_commit;
pub mod records;

use async_trait::async_trait;

pub use records::{
    ConversationRecord, DeadLetter, Direction, MessageRecord, MessageStatus, Mode, OutboxItem,
    PendingInbound, Rehydrated, TurnWrite,
};

/// A store failure. `retryable` tells a supervisor whether trying again can
/// help.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl StoreError {
    pub fn retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

impl From<group_commit::GroupCommitError> for StoreError {
    fn from(e: group_commit::GroupCommitError) -> Self {
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
    /// remembered ids, new message-log lines and status changes.
    async fn commit_turn(&self, write: TurnWrite) -> Result<(), StoreError>;

    /// The message log of a conversation, oldest first, at most `limit`
    /// lines (the newest ones).
    async fn messages(&self, id: &str, limit: usize) -> Result<Vec<MessageRecord>, StoreError>;

    /// Every conversation with a pending timer: (conversation id, due ms).
    async fn timers(&self) -> Result<Vec<(String, u64)>, StoreError>;

    /// Keeps an event that kept crashing its actor.
    async fn dead_letter(&self, letter: DeadLetter) -> Result<(), StoreError>;

    /// The dead letters, oldest first.
    async fn dead_letters(&self) -> Result<Vec<DeadLetter>, StoreError>;

    /// Forgets remembered message ids whose window passed before `now_ms`;
    /// returns how many.
    async fn purge_expired(&self, now_ms: u64) -> Result<u64, StoreError>;

    /// Whether the store can serve reads and writes now.
    async fn ready(&self) -> bool;
}
