//! A conversation actor's mailbox: a queue under a lock and one wake-up.
//!
//! tokio's unbounded channel costs about 1 KB per channel before its first
//! message (its shared state is padded to cache lines, and its first block
//! holds 32 slots); most resident conversations have nothing queued, so
//! that was the largest single part of what each one held. This queue
//! holds no allocation while it is empty, and carries the stop request too.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

use tokio::sync::Notify;

/// The queue and who can still add to it.
struct Queue<M> {
    msgs: VecDeque<M>,
    /// Strong addresses alive; at 0 the actor is told to stop.
    senders: usize,
    /// The actor was asked to stop.
    stop: bool,
    /// The actor's loop has ended: nothing more is taken.
    closed: bool,
}

/// Shared by the actor's addresses and its loop.
pub(super) struct Mailbox<M> {
    queue: Mutex<Queue<M>>,
    /// Woken on every message, on a stop and when the last sender goes (one
    /// waiter: the actor's loop).
    wake: Notify,
}

/// What the actor's loop takes next.
pub(super) enum Next<M> {
    Msg(M),
    /// A stop was asked for.
    Stop,
    /// Every strong address is gone.
    Orphaned,
}

/// Nothing could be queued: the actor's loop has ended.
pub(super) struct Closed;

impl<M> Mailbox<M> {
    /// A mailbox with one strong sender.
    pub fn new() -> Self {
        Self {
            queue: Mutex::new(Queue {
                msgs: VecDeque::new(),
                senders: 1,
                stop: false,
                closed: false,
            }),
            wake: Notify::new(),
        }
    }

    /// The queue, even after a panic while it was held (nothing is left
    /// half-changed under it).
    fn lock(&self) -> MutexGuard<'_, Queue<M>> {
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues `msg`; `weak` senders only while a strong one is alive.
    pub fn push(&self, msg: M, weak: bool) -> Result<(), Closed> {
        let mut queue = self.lock();
        if queue.closed || (weak && queue.senders == 0) {
            return Err(Closed);
        }
        queue.msgs.push_back(msg);
        drop(queue);
        self.wake.notify_one();
        Ok(())
    }

    pub fn stop(&self) {
        self.lock().stop = true;
        self.wake.notify_one();
    }

    pub fn add_sender(&self) {
        self.lock().senders += 1;
    }

    pub fn drop_sender(&self) {
        let mut queue = self.lock();
        queue.senders = queue.senders.saturating_sub(1);
        let last = queue.senders == 0;
        drop(queue);
        if last {
            self.wake.notify_one();
        }
    }

    /// Waits for what comes next: a stop before any queued message, then
    /// the messages in order, then the end once no strong sender is left.
    pub async fn next(&self) -> Next<M> {
        loop {
            {
                let mut queue = self.lock();
                if queue.stop {
                    return Next::Stop;
                }
                if let Some(msg) = queue.msgs.pop_front() {
                    if queue.msgs.is_empty() {
                        // An idle actor holds no queue memory.
                        queue.msgs = VecDeque::new();
                    }
                    return Next::Msg(msg);
                }
                if queue.senders == 0 {
                    return Next::Orphaned;
                }
            }
            // A wake-up between the check and this wait is kept as a permit.
            self.wake.notified().await;
        }
    }

    /// The loop has ended (however): later messages are refused and queued
    /// ones dropped.
    pub fn close(&self) {
        let mut queue = self.lock();
        queue.closed = true;
        let left = std::mem::take(&mut queue.msgs);
        drop(queue);
        drop(left);
    }
}

/// Closes the mailbox when the actor's task ends, even by a panic or an
/// abort (before its first poll too: the task owns it from the start).
pub(super) struct Receiving<M>(pub std::sync::Arc<Mailbox<M>>);

impl<M> Drop for Receiving<M> {
    fn drop(&mut self) {
        self.0.close();
    }
}
