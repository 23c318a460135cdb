//! HTTP ingress: Meta's webhook verification and delivery routes, health
//! and readiness. A webhook is answered 200 only once every event in it is
//! durably on the bus; a client's mistake gets its status and is counted,
//! never logged as an error.

mod meta;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;

use crate::bus::Bus;
use crate::config::{AppConfig, Config, IntegrationConfig};
use crate::store::Store;

/// What the ingress routes need.
pub struct IngressState {
    pub apps: HashMap<String, AppConfig>,
    /// (app id, account id) -> integration.
    pub accounts: HashMap<(String, String), Arc<IntegrationConfig>>,
    pub bus: Arc<dyn Bus>,
    pub store: Arc<dyn Store>,
    /// Whether the store answered its last check (kept fresh by
    /// [`watch_store`]): while it does not, webhooks get 503 instead of
    /// piling up events that cannot be handled.
    pub store_ready: Arc<AtomicBool>,
}

impl IngressState {
    pub fn new(config: &Config, bus: Arc<dyn Bus>, store: Arc<dyn Store>) -> Self {
        Self {
            apps: config
                .apps
                .iter()
                .map(|a| (a.id.clone(), a.clone()))
                .collect(),
            accounts: config
                .integrations
                .iter()
                .map(|i| ((i.app.clone(), i.account_id.clone()), Arc::new(i.clone())))
                .collect(),
            bus,
            store,
            store_ready: Arc::new(AtomicBool::new(true)),
        }
    }
}

/// Checks the store every half second and keeps `store_ready` current.
pub async fn watch_store(store: Arc<dyn Store>, ready: Arc<AtomicBool>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(500));
    loop {
        tick.tick().await;
        let now = store.ready().await;
        let before = ready.swap(now, Ordering::Relaxed);
        if before && !now {
            tracing::warn!("Store unavailable: webhooks get 503 until it answers");
        } else if now && !before {
            tracing::info!("Store available again");
        }
    }
}

/// The public router: webhooks, `/healthz`, `/readyz`.
pub fn router(state: Arc<IngressState>, max_body_bytes: usize) -> Router {
    Router::new()
        .route(
            "/webhooks/meta/{app}",
            get(meta::verify).post(meta::receive),
        )
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(state)
}

async fn readyz(
    axum::extract::State(state): axum::extract::State<Arc<IngressState>>,
) -> (StatusCode, &'static str) {
    let bus = state.bus.ready().await;
    let store = state.store.ready().await;
    match (bus, store) {
        (true, true) => (StatusCode::OK, "ready"),
        (false, _) => (StatusCode::SERVICE_UNAVAILABLE, "bus unavailable"),
        (_, false) => (StatusCode::SERVICE_UNAVAILABLE, "store unavailable"),
    }
}
