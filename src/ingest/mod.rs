//! HTTP ingress: Meta's webhook verification and delivery routes, health
//! and readiness. A webhook is answered 200 only once every event in it is
//! durably on the bus; a client's mistake gets its status and is counted,
//! never logged as an error. When the engine cannot keep up (the bus's
//! backlog passes its bound) or a tenant's store is down, webhooks get 503
//! (with `Retry-After`) and Meta delivers them again later.

pub mod gmail;
mod health;
mod meta;
pub mod web;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{BoxError, Router};
use tower::ServiceBuilder;

pub use health::{watch_store, StoreHealth};

use crate::bus::Bus;
use crate::clock::now_ms;
use crate::config::{AppConfig, Config};
use crate::integrations::Integrations;
use crate::refusals::Refusals;
use crate::telemetry::{self, WebhookOutcome};

/// What the ingress routes need.
pub struct IngressState {
    pub apps: HashMap<String, AppConfig>,
    /// Every integration, by (app, account) among others.
    pub integrations: Arc<Integrations>,
    pub bus: Arc<dyn Bus>,
    /// Which stores answer (kept fresh by [`watch_store`]): the webhooks of
    /// tenants whose store does not answer get 503 instead of piling up
    /// events that cannot be handled.
    pub health: Arc<StoreHealth>,
    /// The bus backlog past which webhooks get 503: events not yet taken
    /// by the engine, and the age of the oldest.
    pub max_backlog_events: u64,
    pub max_backlog_age: Duration,
    /// When a webhook was last refused (a part waiting for its echo is not
    /// sent again while the echo may be among the refused).
    pub refusals: Arc<Refusals>,
    /// Checks the OIDC tokens of Gmail's Pub/Sub pushes.
    pub push: crate::channels::gmail::push::PushVerifier,
}

/// Where the platforms deliver their webhooks.
const WEBHOOKS: &str = "/webhooks/";

/// How long Meta (or any client) is asked to wait before retrying.
pub const RETRY_AFTER_SECONDS: u64 = 5;

impl IngressState {
    pub fn new(
        config: &Config,
        integrations: Arc<Integrations>,
        bus: Arc<dyn Bus>,
        health: Arc<StoreHealth>,
        refusals: Arc<Refusals>,
    ) -> Self {
        Self {
            apps: config
                .apps
                .iter()
                .map(|a| (a.id.clone(), a.clone()))
                .collect(),
            integrations,
            bus,
            health,
            max_backlog_events: config.server.max_backlog_events,
            max_backlog_age: config.server.max_backlog_age,
            refusals,
            push: crate::channels::gmail::push::PushVerifier::new(&config.google.jwks_url),
        }
    }

    /// Whether the bus is further behind than its bound.
    pub fn overloaded(&self) -> bool {
        over_bound(
            self.bus.backlog(),
            self.max_backlog_events,
            self.max_backlog_age,
        )
    }
}

/// Whether `backlog` passes the bound of `server.max_backlog_events` /
/// `server.max_backlog_age` (webhooks and web chat messages are refused).
pub(crate) fn over_bound(backlog: crate::bus::Backlog, max_events: u64, max_age: Duration) -> bool {
    backlog.events > max_events || backlog.oldest_ms > max_age.as_millis() as u64
}

/// Answers an ingress request with `status` and `body`, counted in
/// `switchboard_webhook_requests_total{channel, outcome}`.
pub(crate) fn answer(
    channel: &'static str,
    outcome: WebhookOutcome,
    status: StatusCode,
    body: impl Into<String>,
) -> Response {
    telemetry::webhook_request(channel, outcome);
    (status, body.into()).into_response()
}

/// Limits of the listener itself.
#[derive(Debug, Clone, Copy)]
pub struct ListenerLimits {
    pub max_body_bytes: usize,
    /// Requests handled at once; more get 503 at once.
    pub max_concurrent_requests: usize,
    /// A request (body included) that takes longer gets 408.
    pub request_timeout: Duration,
}

impl ListenerLimits {
    pub fn from_config(config: &Config) -> Self {
        Self {
            max_body_bytes: config.server.max_body_bytes,
            max_concurrent_requests: config.server.max_concurrent_requests,
            request_timeout: config.server.request_timeout,
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
        .route(
            "/webhooks/gmail/{integration}",
            axum::routing::post(gmail::receive),
        )
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(health::readyz))
        .with_state(state)
}

/// Bounds every route of the listener: at most `max_concurrent_requests`
/// at once (the rest shed with 503 and `Retry-After`, never queued in
/// memory) and `request_timeout` each (408).
pub fn limit(app: Router, limits: ListenerLimits, refusals: Arc<Refusals>) -> Router {
    app.layer(
        ServiceBuilder::new()
            .layer(HandleErrorLayer::new(move |uri: Uri, err: BoxError| {
                // A webhook turned away is delivered again later; the other
                // routes' callers are not the platforms.
                if uri.path().starts_with(WEBHOOKS) {
                    refusals.refused(now_ms());
                }
                refuse(err)
            }))
            .load_shed()
            .concurrency_limit(limits.max_concurrent_requests.max(1))
            .timeout(limits.request_timeout),
    )
}

/// While the engine stops, webhooks (Meta's, Gmail's pushes, new web chat
/// sockets) get 503 with `Retry-After` and `/readyz` 503: nothing new is
/// taken while the events already taken are finished, and the platforms
/// deliver the refused ones again (to this instance once restarted, or to
/// another). Everything else is still answered.
pub fn refuse_while_stopping(
    app: Router,
    stopping: tokio::sync::watch::Receiver<bool>,
    refusals: Arc<Refusals>,
) -> Router {
    app.layer(axum::middleware::from_fn(
        move |request: axum::extract::Request, next: axum::middleware::Next| {
            let stopped = *stopping.borrow();
            let refusals = refusals.clone();
            async move {
                let path = request.uri().path();
                let taken = path.starts_with(WEBHOOKS)
                    || path == "/readyz"
                    || (path.starts_with("/web/") && path.ends_with("/ws"));
                if !(stopped && taken) {
                    return next.run(request).await;
                }
                if path.starts_with(WEBHOOKS) {
                    refusals.refused(now_ms());
                    telemetry::webhook_request("any", WebhookOutcome::Unavailable);
                }
                retry_later("stopping, retry later")
            }
        },
    ))
}

async fn refuse(err: BoxError) -> Response {
    if err.is::<tower::timeout::error::Elapsed>() {
        return (StatusCode::REQUEST_TIMEOUT, "request took too long").into_response();
    }
    telemetry::webhook_request("any", WebhookOutcome::Overloaded);
    overloaded()
}

/// 503 with `Retry-After`.
pub fn overloaded() -> Response {
    retry_later("overloaded, retry later")
}

/// 503 with `Retry-After` and `why` as the body.
fn retry_later(why: &'static str) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, RETRY_AFTER_SECONDS.to_string())],
        why,
    )
        .into_response()
}
