//! Operators' commands travel on the bus like customer events (so they are
//! ordered with them and survive a crash); the admin API caller that
//! published one waits here for the conversation actor to report what came
//! of it. A command handled by another engine instance has no waiter here,
//! and its caller is told the command was accepted.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::oneshot;

use crate::sync::lock;

pub use crate::store::CommandOutcome;

/// Callers waiting for their command, by command id (several when a
/// request is retried with the same `Idempotency-Key`).
#[derive(Default)]
pub struct CommandWaiters {
    waiting: Mutex<HashMap<String, Vec<oneshot::Sender<CommandOutcome>>>>,
}

impl CommandWaiters {
    /// Registers a caller before its command is published.
    pub fn wait_for(&self, command: &str) -> oneshot::Receiver<CommandOutcome> {
        let (tx, rx) = oneshot::channel();
        lock(&self.waiting)
            .entry(command.to_string())
            .or_default()
            .push(tx);
        rx
    }

    /// Tells the callers (if they wait here) what came of their command.
    pub fn complete(&self, command: &str, outcome: CommandOutcome) {
        if let Some(waiters) = lock(&self.waiting).remove(command) {
            for tx in waiters {
                let _ = tx.send(outcome.clone());
            }
        }
    }

    /// A caller stopped waiting (its receiver is dropped).
    pub fn forget(&self, command: &str) {
        let mut waiting = lock(&self.waiting);
        if let Some(waiters) = waiting.get_mut(command) {
            waiters.retain(|tx| !tx.is_closed());
            if waiters.is_empty() {
                waiting.remove(command);
            }
        }
    }
}
