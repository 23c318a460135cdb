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
mod quarantine;
pub mod shaping;
pub mod supervisor;
pub mod timers;
pub mod turn;
pub mod window;

#[cfg(test)]
mod policy_tests;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::assistant::Assistant;
use crate::bus::Bus;
use crate::channels::Outbound;
use crate::config::{Config, IntegrationConfig};
use crate::store::Store;

/// What every conversation actor shares.
pub struct EngineContext {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub bus: Arc<dyn Bus>,
    pub outbound: Outbound,
    pub assistants: HashMap<String, Arc<dyn Assistant>>,
    pub integrations: HashMap<String, Arc<IntegrationConfig>>,
    /// Admin API callers waiting for their command to be applied here.
    pub commands: commands::CommandWaiters,
    /// The assistants' knowledge bases.
    pub knowledge: Arc<crate::knowledge::Knowledge>,
    /// Integrations whose access token the platform refused (code 190),
    /// until a call with it succeeds again.
    pub token_expired: HashMap<String, AtomicBool>,
}

impl EngineContext {
    /// Records how the platform took an integration's token.
    pub fn token_refused(&self, integration: &str, refused: bool) {
        if let Some(flag) = self.token_expired.get(integration) {
            let was = flag.swap(refused, Ordering::Relaxed);
            if was && !refused {
                tracing::info!(integration, "Access token accepted again");
            }
        }
    }

    /// Whether the integration's token was refused and not accepted since.
    pub fn token_is_expired(&self, integration: &str) -> bool {
        self.token_expired
            .get(integration)
            .is_some_and(|f| f.load(Ordering::Relaxed))
    }
}

impl EngineContext {
    pub fn new(
        config: Arc<Config>,
        store: Arc<dyn Store>,
        bus: Arc<dyn Bus>,
        outbound: Outbound,
    ) -> Result<Self, crate::assistant::BuildError> {
        let assistants = config
            .assistants
            .iter()
            .map(|a| crate::assistant::build(a).map(|b| (a.id.clone(), Arc::from(b))))
            .collect::<Result<_, _>>()?;
        let knowledge = Arc::new(crate::knowledge::Knowledge::new(&config, store.clone()));
        let integrations = config
            .integrations
            .iter()
            .map(|i| (i.id.clone(), Arc::new(i.clone())))
            .collect();
        let token_expired = config
            .integrations
            .iter()
            .map(|i| (i.id.clone(), AtomicBool::new(false)))
            .collect();
        Ok(Self {
            config,
            store,
            bus,
            outbound,
            assistants,
            integrations,
            commands: commands::CommandWaiters::default(),
            knowledge,
            token_expired,
        })
    }
}
