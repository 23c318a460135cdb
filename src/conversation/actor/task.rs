//! A conversation actor's task and mailbox: one tokio task and one
//! queue (see `mailbox.rs`) per resident conversation, nothing more. Measured
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
//! supervisor is told which, as it is told of a stop. The actor holds only
//! a weak address of itself: once the supervisor's addresses are gone (it
//! ended, even by failing), the mailbox closes and the actor stops.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use ractor::ActorProcessingErr;
use tokio::sync::Notify;
use tokio::task::AbortHandle;

mod mailbox;
use mailbox::{Mailbox, Next, Receiving};

/// Each actor's own number, never reused in a process.
static NEXT_ACTOR: AtomicU64 = AtomicU64::new(1);

/// What runs in an actor's task.
pub trait Behaviour: Send + 'static {
    type Msg: Send + 'static;

    /// Runs before the first message.
    fn start(&mut self) -> impl Future<Output = Result<(), ActorProcessingErr>> + Send;

    /// Handles one message.
    fn handle(
        &mut self,
        msg: Self::Msg,
    ) -> impl Future<Output = Result<(), ActorProcessingErr>> + Send;

    /// Runs once the actor stops (not after a failure).
    fn stopped(&mut self);
}

/// An actor's address.
pub struct ActorAddr<M> {
    id: u64,
    mailbox: Arc<Mailbox<M>>,
    task: AbortHandle,
}

impl<M> Clone for ActorAddr<M> {
    fn clone(&self) -> Self {
        self.mailbox.add_sender();
        Self {
            id: self.id,
            mailbox: self.mailbox.clone(),
            task: self.task.clone(),
        }
    }
}

impl<M> Drop for ActorAddr<M> {
    fn drop(&mut self) {
        self.mailbox.drop_sender();
    }
}

/// An actor's address that does not keep it alive (what it holds of
/// itself).
pub struct WeakAddr<M> {
    mailbox: Arc<Mailbox<M>>,
}

impl<M> Clone for WeakAddr<M> {
    fn clone(&self) -> Self {
        Self {
            mailbox: self.mailbox.clone(),
        }
    }
}

/// The message could not be queued: the actor has ended.
#[derive(Debug, thiserror::Error)]
#[error("the conversation actor has ended")]
pub struct Ended;

impl<M> ActorAddr<M> {
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Queues `msg` behind the ones already sent.
    pub fn send_message(&self, msg: M) -> Result<(), Ended> {
        self.mailbox.push(msg, false).map_err(|_| Ended)
    }

    /// Stops the actor once the message it is handling is done; queued
    /// messages are not handled (the supervisor keeps their events).
    pub fn stop(&self) {
        self.mailbox.stop();
    }

    /// Ends the actor's task now, wherever it is (a last resort at shutdown).
    pub fn abort(&self) {
        self.task.abort();
    }
}

impl<M> WeakAddr<M> {
    /// Queues `msg` if the actor is still running.
    pub fn send_message(&self, msg: M) -> Result<(), Ended> {
        self.mailbox.push(msg, true).map_err(|_| Ended)
    }
}

/// How an actor ended.
pub enum Exit {
    /// Stopped (its stop hook ran).
    Stopped,
    /// Its start or a handler failed or panicked.
    Failed(ActorProcessingErr),
}

/// The actors alive, so their supervisor can wait for them when it stops.
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
}

/// Counts an actor as alive until dropped (however its task ends: done,
/// panicked or aborted).
struct Living(Arc<Alive>);

impl Living {
    fn new(alive: Arc<Alive>) -> Self {
        alive.count.fetch_add(1, Ordering::AcqRel);
        Self(alive)
    }
}

impl Drop for Living {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.none.notify_waiters();
        }
    }
}

/// Starts an actor: `make` builds its behaviour from its weak address;
/// `exited` hears how it ended.
pub fn spawn<B, F, E>(make: F, alive: Arc<Alive>, exited: E) -> ActorAddr<B::Msg>
where
    B: Behaviour,
    F: FnOnce(WeakAddr<B::Msg>) -> B,
    E: FnOnce(u64, Exit) + Send + 'static,
{
    let mailbox = Arc::new(Mailbox::new());
    let id = NEXT_ACTOR.fetch_add(1, Ordering::Relaxed);
    // Boxed: a value captured by the task and then moved into `run` would
    // be laid out twice in the task's state machine (as the capture and as
    // `run`'s argument), and the task would hold the behaviour in place of
    // a pointer: about 2 KB more per conversation (measured with a heap
    // profile).
    let behaviour = Box::new(make(WeakAddr {
        mailbox: mailbox.clone(),
    }));
    let living = Living::new(alive);
    let task = tokio::spawn({
        let receiving = Receiving(mailbox.clone());
        async move {
            let _living = living;
            // A panic is caught here and reported like an error.
            let exit = match AssertUnwindSafe(run(behaviour, receiving.0.clone()))
                .catch_unwind()
                .await
            {
                Ok(Ok(())) => Exit::Stopped,
                Ok(Err(e)) => Exit::Failed(e),
                Err(panic) => Exit::Failed(panic_message(panic).into()),
            };
            // Closed before the supervisor hears of the end: from then on
            // every send fails, so it keeps what it would have sent.
            drop(receiving);
            exited(id, exit);
        }
    });
    ActorAddr {
        id,
        mailbox,
        task: task.abort_handle(),
    }
}

async fn run<B: Behaviour>(
    mut behaviour: Box<B>,
    mailbox: Arc<Mailbox<B::Msg>>,
) -> Result<(), ActorProcessingErr> {
    // Boxed, like every handler: an idle actor's task holds a pointer, not
    // the largest state machine any message could need.
    Box::pin(behaviour.start()).await?;
    // Until a stop, or every strong address is gone (its supervisor ended).
    while let Next::Msg(msg) = mailbox.next().await {
        behaviour.handle(msg).await?;
    }
    behaviour.stopped();
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

#[cfg(test)]
mod tests;
