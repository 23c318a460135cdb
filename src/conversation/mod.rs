//! Conversations: one supervised actor per `{integration}:{customer}`.
//!
//! - [`supervisor`] routes bus deliveries and timer wakes to the actors,
//!   spawns and rehydrates them, restarts them with backoff, moves an event
//!   that keeps crashing its actor to the dead letters, and passivates idle
//!   ones.
//! - [`actor`] performs one conversation's I/O: store writes, typing
//!   indicators, assistant calls, Send API calls.
//! - [`turn`] is the policy without I/O (dedup, rate limit, coalescing,
//!   outbox); [`shaping`] formats replies; [`timers`] keeps deadlines.

pub mod actor;
pub mod dedup;
pub mod shaping;
pub mod supervisor;
pub mod timers;
pub mod turn;

use std::collections::HashMap;
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
}

impl EngineContext {
    pub fn new(
        config: Arc<Config>,
        store: Arc<dyn Store>,
        bus: Arc<dyn Bus>,
        outbound: Outbound,
    ) -> Self {
        let assistants = config
            .assistants
            .iter()
            .filter_map(|a| crate::assistant::build(a).map(|b| (a.id.clone(), Arc::from(b))))
            .collect();
        let integrations = config
            .integrations
            .iter()
            .map(|i| (i.id.clone(), Arc::new(i.clone())))
            .collect();
        Self {
            config,
            store,
            bus,
            outbound,
            assistants,
            integrations,
        }
    }
}

/// Splits a conversation id into integration and customer.
pub fn split_id(id: &str) -> Option<(&str, &str)> {
    id.split_once(':')
}
