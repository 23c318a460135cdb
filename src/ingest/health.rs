//! Store and bus health as ingress sees it: which stores answer (checked
//! every half second, per backend, so one tenant's unreachable ScyllaDB
//! turns away that tenant's webhooks only) and `/readyz`, which names the
//! backend that is down.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;

use super::IngressState;
pub use crate::store::health::{Down, StoreHealth};
use crate::store::{BackendReady, Store};

fn summarize(backends: &[BackendReady]) -> Down {
    let mut down = Down::default();
    for b in backends.iter().filter(|b| !b.ready) {
        down.backends.push(b.kind);
        match &b.integrations {
            None => down.all = true,
            Some(ids) => down.integrations.extend(ids.iter().cloned()),
        }
    }
    if !backends.is_empty() && backends.iter().all(|b| !b.ready) {
        down.all = true;
    }
    down
}

/// Checks the stores every half second and keeps `health` current.
pub async fn watch_store(store: Arc<dyn Store>, health: Arc<StoreHealth>) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tick.tick().await;
        let backends = store.backends_ready().await;
        for b in &backends {
            crate::telemetry::store_available(b.kind, b.ready);
        }
        let now = summarize(&backends);
        let before = health.down();
        if now.backends != before.backends {
            if now.backends.is_empty() {
                tracing::info!("Stores available again");
            } else {
                tracing::warn!(backends = ?now.backends, "Store unavailable: its tenants' webhooks get 503 until it answers");
            }
        }
        health.set(now);
    }
}

/// `GET /readyz`: 200 while the bus and at least one store answer (a
/// tenant's store that is down is named in the body); 503 otherwise.
pub async fn readyz(State(state): State<Arc<IngressState>>) -> (StatusCode, String) {
    if !state.bus.ready().await {
        return (StatusCode::SERVICE_UNAVAILABLE, "bus unavailable".into());
    }
    let down = state.health.down();
    if down.all {
        let kinds = down.backends.join(", ");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("store unavailable: {kinds}"),
        );
    }
    if down.backends.is_empty() {
        return (StatusCode::OK, "ready".into());
    }
    let mut integrations: Vec<&String> = down.integrations.iter().collect();
    integrations.sort();
    (
        StatusCode::OK,
        format!(
            "ready; store unavailable: {} (integrations {})",
            down.backends.join(", "),
            integrations
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_backend_down_names_its_integrations_only() {
        let down = summarize(&[
            BackendReady {
                kind: "embedded",
                ready: true,
                integrations: Some(vec!["a".into()]),
            },
            BackendReady {
                kind: "scylla",
                ready: false,
                integrations: Some(vec!["b".into()]),
            },
        ]);
        assert!(!down.all);
        assert_eq!(down.backends, ["scylla"]);
        assert!(down.integrations.contains("b") && !down.integrations.contains("a"));
        let single = summarize(&[BackendReady {
            kind: "embedded",
            ready: false,
            integrations: None,
        }]);
        assert!(single.all);
    }
}
