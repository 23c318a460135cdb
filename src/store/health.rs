//! Which stores answer, as last checked (the ingress keeps it fresh):
//! webhooks and web chat messages of a tenant whose store is down are
//! turned away instead of piling up events that cannot be handled.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

/// The stores' last known readiness.
#[derive(Debug, Default)]
pub struct StoreHealth {
    state: RwLock<Arc<Down>>,
}

/// What does not answer.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Down {
    /// Every conversation's store is down.
    pub all: bool,
    /// Integrations whose store is down.
    pub integrations: HashSet<String>,
    /// The backends down, by kind.
    pub backends: Vec<&'static str>,
}

impl StoreHealth {
    pub fn down(&self) -> Arc<Down> {
        self.state
            .read()
            .map(|d| d.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Whether `integration`'s conversations can be handled now.
    pub fn serves(&self, integration: &str) -> bool {
        let down = self.down();
        !down.all && !down.integrations.contains(integration)
    }

    pub(crate) fn set(&self, down: Down) {
        match self.state.write() {
            Ok(mut d) => *d = Arc::new(down),
            Err(p) => *p.into_inner() = Arc::new(down),
        }
    }
}
