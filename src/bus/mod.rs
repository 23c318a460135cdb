//! The bus: where accepted webhook events become durable before Meta gets
//! its 200, and from where conversation actors consume them. Backends sit
//! behind one trait; offsets are committed only for the contiguous prefix
//! of finished events per partition ([`progress`]), so a crash replays from
//! the last commit and idempotent handling makes the replay harmless.

pub mod embedded;
pub mod kafka;
mod legacy;
pub mod log;
pub mod progress;

use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::event::InboundEvent;
use crate::fence::Fence;

/// Where an event sits on the bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Position {
    pub partition: u32,
    pub offset: u64,
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.partition, self.offset)
    }
}

/// A change in which partitions this instance consumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ownership {
    Assigned(Vec<u32>),
    Revoked(Vec<u32>),
}

/// One event handed to the engine.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub position: Position,
    pub event: InboundEvent,
    /// The event may have been handled before (delivered by a previous
    /// run or owner that did not finish it, or to an actor that crashed):
    /// replies it plans are held until confirmed or
    /// `outbound.confirm_wait` has passed.
    pub replay: bool,
    /// The partition ownership it was delivered under: sends and writes
    /// for it are refused once the partition has moved.
    pub fence: Fence,
}

/// Events that wait longer than this (ms) mean the engine is behind.
pub const BEHIND_AFTER_MS: u64 = 1_000;

/// Deliveries queued between a bus and the engine, at most (the bus holds
/// the rest, durably).
pub const DELIVERY_QUEUE: usize = 4096;

/// Events accepted and not yet taken by the engine: the overload signal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backlog {
    pub events: u64,
    /// How long the oldest of them has waited, in ms.
    pub oldest_ms: u64,
}

/// A bus failure. Retryable ones are answered with 503 (Meta retries).
#[derive(Debug, Clone, thiserror::Error)]
pub enum BusError {
    #[error("bus unavailable: {0}")]
    Unavailable(String),
    #[error("bus already has a consumer")]
    AlreadySubscribed,
    #[error("an event of {0} bytes is over the bus's limit")]
    TooLarge(usize),
}

impl BusError {
    pub fn retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

#[async_trait]
pub trait Bus: Send + Sync + 'static {
    /// Appends `events` in order and returns once every one is durable.
    async fn publish(&self, events: &[InboundEvent]) -> Result<(), BusError>;

    /// Starts delivery: first everything after the last commit (replay),
    /// then new events, in log order per partition, through a queue of at
    /// most [`DELIVERY_QUEUE`] (the backlog stays on the bus). One consumer
    /// per bus.
    async fn subscribe(&self) -> Result<mpsc::Receiver<Delivery>, BusError>;

    /// Marks a delivered event finished (handled and persisted). The
    /// contiguous finished prefix is committed in the background.
    fn finished(&self, position: Position);

    /// Commits the finished prefix now (graceful shutdown).
    async fn flush_commits(&self) -> Result<(), BusError>;

    /// Events delivered or appended and not yet committed.
    fn lag(&self) -> u64;

    /// Events accepted and not yet taken by the engine, and the age of the
    /// oldest: when the engine cannot keep up, this grows.
    fn backlog(&self) -> Backlog;

    /// Whether the engine has not yet taken what the bus holds for
    /// `partition`: events wait longer than a moment (the engine is behind),
    /// or events that an earlier run or owner may have handled are still
    /// being replayed. A part waiting for its echo or status is not resent
    /// meanwhile: the confirmation may be among them.
    fn behind(&self, _partition: u32) -> bool {
        false
    }

    /// Whether publishing can succeed now.
    async fn ready(&self) -> bool;

    /// Partitions moving to or from this instance (rebalances), once a
    /// revoked partition's delivered events were waited for: the engine
    /// stops the actors of revoked partitions (another instance owns them
    /// now) and picks up the pending timers of assigned ones. Taken once; a
    /// bus without partition ownership has none.
    fn ownership(&self) -> Option<mpsc::UnboundedReceiver<Ownership>> {
        None
    }

    /// Whether conversations are owned by partition (and so perhaps by
    /// another instance): a timer of a conversation not resident here is
    /// then handed to its owner through the bus.
    fn partitioned(&self) -> bool {
        false
    }

    /// Stops consuming and leaves the consumer group (graceful shutdown,
    /// after [`Bus::flush_commits`]).
    async fn close(&self) {}
}
