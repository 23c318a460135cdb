//! Operators' commands travel on the bus like customer events (so they are
//! ordered with them and survive a crash); the admin API caller that
//! published one waits here for the conversation actor to report what came
//! of it. A command handled by another engine instance has no waiter here,
//! and its caller is told the command was accepted.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::oneshot;

use crate::sync::lock;

/// What came of a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandOutcome {
    /// Takeover or resume applied and stored.
    Applied,
    /// A person's message was accepted by the platform.
    Sent { message_id: String },
    /// Not allowed (the messaging window); nothing was sent.
    Refused(String),
    /// The platform refused the message.
    Failed(String),
    /// The platform kept failing: the message waits in the outbox.
    Queued,
}

/// Callers waiting for their command, by command id.
#[derive(Default)]
pub struct CommandWaiters {
    waiting: Mutex<HashMap<String, oneshot::Sender<CommandOutcome>>>,
}

impl CommandWaiters {
    /// Registers a caller before its command is published.
    pub fn wait_for(&self, command: &str) -> oneshot::Receiver<CommandOutcome> {
        let (tx, rx) = oneshot::channel();
        lock(&self.waiting).insert(command.to_string(), tx);
        rx
    }

    /// Tells the caller (if it waits here) what came of its command.
    pub fn complete(&self, command: &str, outcome: CommandOutcome) {
        if let Some(tx) = lock(&self.waiting).remove(command) {
            let _ = tx.send(outcome);
        }
    }

    /// The caller stopped waiting.
    pub fn forget(&self, command: &str) {
        lock(&self.waiting).remove(command);
    }
}
