//! A conversation actor's task and mailbox: one tokio task and one
//! unbounded channel per resident conversation, nothing more. Measured
//! alone, a ractor actor costs about 7.2 KB of resident memory (two
//! channels, two one-shot ports, its supervision tree, its task); a task
//! with one channel costs about 1.1 KB. Conversations are most of what the
//! engine keeps in memory, and each new one's pages are zeroed by the
//! kernel on first touch, so this is CPU per new customer too. The
//! supervisor itself stays a ractor actor.
//!
//! Semantics kept from an actor: messages are handled one at a time in the
//! order sent; a stop is taken before any queued message (once the message
//! being handled is done) and runs the stop hook; an error or a panic in
//! the start or a handler ends the task without the stop hook, and the
//! supervisor is told which, as it is told of a stop.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use ractor::ActorProcessingErr;
use tokio::sync::{mpsc, Notify};

use super::{ConversationArgs, ConversationMsg, ConversationState};
use crate::conversation::supervisor::SupervisorMsg;

/// Each actor's own number, never reused in a process.
static NEXT_ACTOR: AtomicU64 = AtomicU64::new(1);

/// A conversation actor's address.
#[derive(Clone)]
pub struct ConversationRef {
    id: u64,
    tx: mpsc::UnboundedSender<ConversationMsg>,
    stop: Arc<Notify>,
}

/// The message could not be queued: the actor has ended.
#[derive(Debug, thiserror::Error)]
#[error("the conversation actor has ended")]
pub struct Ended;

impl ConversationRef {
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Queues `msg` behind the ones already sent.
    pub fn send_message(&self, msg: ConversationMsg) -> Result<(), Ended> {
        self.tx.send(msg).map_err(|_| Ended)
    }

    /// Stops the actor once the message it is handling is done; queued
    /// messages are not handled (the supervisor keeps their events).
    pub fn stop(&self) {
        self.stop.notify_one();
    }
}

/// How an actor ended.
pub enum Exit {
    /// Stopped (its stop hook ran).
    Stopped,
    /// Its start or a handler failed or panicked.
    Failed(ActorProcessingErr),
}

/// The actors alive, so the supervisor can wait for them when it stops.
#[derive(Debug, Default)]
pub struct Alive {
    count: AtomicUsize,
    none: Notify,
}

impl Alive {
    /// Waits until no actor is left, at most `limit`; whether none is.
    pub async fn wait_none(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let none = self.none.notified();
            if self.count.load(Ordering::Acquire) == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, none).await.is_err() {
                return self.count.load(Ordering::Acquire) == 0;
            }
        }
    }

    fn left(&self) {
        if self.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.none.notify_waiters();
        }
    }
}

/// Starts the actor for `args`; the supervisor hears of its end as
/// [`SupervisorMsg::Exited`].
pub fn spawn(args: ConversationArgs, alive: Arc<Alive>) -> ConversationRef {
    let (tx, rx) = mpsc::unbounded_channel();
    let me = ConversationRef {
        id: NEXT_ACTOR.fetch_add(1, Ordering::Relaxed),
        tx,
        stop: Arc::new(Notify::new()),
    };
    alive.count.fetch_add(1, Ordering::AcqRel);
    let supervisor = args.supervisor.clone();
    let actor = me.id;
    let state = ConversationState::new(args, me.clone());
    let stop = me.stop.clone();
    tokio::spawn(async move {
        // A panic is caught here and reported like an error.
        let exit = match AssertUnwindSafe(run(state, rx, stop)).catch_unwind().await {
            Ok(Ok(())) => Exit::Stopped,
            Ok(Err(e)) => Exit::Failed(e),
            Err(panic) => Exit::Failed(panic_message(panic).into()),
        };
        alive.left();
        let _ = supervisor.send_message(SupervisorMsg::Exited { actor, exit });
    });
    me
}

async fn run(
    mut state: ConversationState,
    mut rx: mpsc::UnboundedReceiver<ConversationMsg>,
    stop: Arc<Notify>,
) -> Result<(), ActorProcessingErr> {
    // Boxed, like every handler: an idle actor's task holds a pointer, not
    // the largest state machine any message could need.
    Box::pin(state.start()).await?;
    loop {
        tokio::select! {
            biased;
            () = stop.notified() => break,
            msg = rx.recv() => match msg {
                Some(msg) => state.handle(msg).await?,
                // Every address is gone (the actor holds its own, so only
                // at shutdown).
                None => break,
            },
        }
    }
    state.stopped();
    Ok(())
}

fn panic_message(panic: Box<dyn std::any::Any + Send>) -> String {
    let detail = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into());
    format!("the conversation actor panicked: {detail}")
}
