//! Conversations: one supervised actor per `{integration}:{customer}`.
//!
//! - [`supervisor`] routes bus deliveries and timer wakes to the actors,
//!   spawns and rehydrates them, restarts them with backoff, moves an event
//!   that keeps crashing its actor to the dead letters, and passivates idle
//!   ones.
//! - [`actor`] performs one conversation's I/O: store writes, typing
//!   indicators, assistant calls, Send API calls.
//! - [`turn`] is the policy without I/O (dedup, rate limit, coalescing,
//!   outbox); [`takeover`] and [`window`] are its human-takeover and
//!   messaging-window rules; [`shaping`] formats replies; [`timers`] keeps
//!   deadlines; [`commands`] lets an admin API caller wait for its command.

pub mod actor;
pub mod commands;
pub mod dedup;
mod entry;
pub mod intake;
mod quarantine;
pub mod shaping;
pub mod supervisor;
pub mod synced;
pub mod timers;
pub mod turn;
pub mod window;

#[cfg(test)]
mod policy_tests;

use std::collections::HashMap;
use std::sync::Arc;

use crate::alerts::Alerts;
use crate::assistant::Assistant;
use crate::bus::Bus;
use crate::channels::Outbound;
use crate::config::Config;
use crate::fence::Fence;
use crate::integrations::Integrations;
use crate::store::Store;

/// What every conversation actor shares.
pub struct EngineContext {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub bus: Arc<dyn Bus>,
    pub outbound: Outbound,
    pub assistants: HashMap<String, Arc<dyn Assistant>>,
    /// Every integration (config file and run time), with its token's
    /// health.
    pub integrations: Arc<Integrations>,
    /// Admin API callers waiting for their command to be applied here.
    pub commands: commands::CommandWaiters,
    /// The assistants' knowledge bases.
    pub knowledge: Arc<crate::knowledge::Knowledge>,
    pub alerts: Arc<Alerts>,
    /// Woken when a turn changed a takeover (the takeovers gauge recounts).
    pub takeover_changes: Arc<tokio::sync::Notify>,
    /// When a webhook was last refused: a part waiting for its
    /// confirmation is not sent again until none was for
    /// `outbound.confirm_wait` (the confirmation may be among them).
    pub refusals: Arc<crate::refusals::Refusals>,
    /// Whether deliveries taken from the bus wait to be handed over.
    pub intake: Arc<intake::Intake>,
    /// Reads Gmail mailboxes' new mail when told they changed (set once
    /// at start).
    pub mailboxes: std::sync::OnceLock<Arc<dyn MailboxSync>>,
    /// The id of each conversation whose turn was written on this instance
    /// (the operators' console follows it; see `admin/stream.rs`).
    pub changes: tokio::sync::broadcast::Sender<Arc<str>>,
    /// Set once the engine starts to stop: long-lived responses (console
    /// streams) end so the listener can close.
    pub stopping: tokio::sync::watch::Sender<bool>,
    /// Widget sockets open now (the upgrade answered, the socket not yet
    /// ended): a stopping engine waits for them before it lets go of the
    /// store, so a new engine can open the same data at once.
    pub sockets: tokio_util::task::TaskTracker,
    /// Which stores answer (kept fresh by the ingress's store watch): web
    /// chat messages of a tenant whose store is down are refused, as its
    /// webhooks are.
    pub health: Arc<crate::store::health::StoreHealth>,
}

/// Changes kept for a console stream that has fallen behind; past this it
/// is told to load everything again.
const CHANGES_KEPT: usize = 4096;

/// Reads a mailbox's new mail onto the bus (the Gmail channel's sync).
#[async_trait::async_trait]
pub trait MailboxSync: Send + Sync {
    /// Reads what changed in `integration`'s mailbox since it was last
    /// read, inside `fence`. An error is retried.
    async fn sync(&self, integration: &str, fence: &Fence) -> Result<(), String>;
}

impl EngineContext {
    pub fn new(
        config: Arc<Config>,
        store: Arc<dyn Store>,
        bus: Arc<dyn Bus>,
        outbound: Outbound,
        integrations: Arc<Integrations>,
    ) -> Result<Self, crate::assistant::BuildError> {
        let assistants = config
            .assistants
            .iter()
            .map(|a| crate::assistant::build(a).map(|b| (a.id.clone(), Arc::from(b))))
            .collect::<Result<_, _>>()?;
        let knowledge = Arc::new(crate::knowledge::Knowledge::new(&config, store.clone()));
        let alerts = Arc::new(Alerts::new(config.alerts.clone(), store.clone()));
        Ok(Self {
            config,
            store,
            bus,
            outbound,
            assistants,
            integrations,
            commands: commands::CommandWaiters::default(),
            knowledge,
            alerts,
            takeover_changes: Arc::new(tokio::sync::Notify::new()),
            refusals: Arc::new(crate::refusals::Refusals::new(crate::clock::now_ms())),
            intake: Arc::default(),
            mailboxes: std::sync::OnceLock::new(),
            changes: tokio::sync::broadcast::channel(CHANGES_KEPT).0,
            stopping: tokio::sync::watch::channel(false).0,
            sockets: tokio_util::task::TaskTracker::new(),
            health: Arc::default(),
        })
    }

    /// Raises an alert for `integration`, if it is known.
    pub fn alert(&self, integration: &str, kind: crate::alerts::AlertKind, message: String) {
        if let Some(i) = self.integrations.get(integration) {
            self.alerts.raise(&i, kind, message);
        }
    }
}
