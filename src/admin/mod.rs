//! The admin API under `/api/v1` (see the README): conversations (list,
//! read), takeover, resume, a person's messages, and analytics. Every route
//! needs `Authorization: Bearer <admin.token>`; errors are JSON
//! `{"error": "..."}` with their status.
//!
//! Commands (takeover, resume, messages) are published on the bus keyed by
//! the conversation, like customer events, so the conversation's actor
//! applies them in order and exactly once, wherever it runs; the caller
//! waits a few seconds for the outcome and is told `202 accepted` when the
//! conversation is handled by another instance or takes longer.

mod analytics;
pub mod audit;
pub mod bodies;
mod conversations;
mod documents;
mod integrations;
mod keys;
mod recent;
mod stream;
mod views;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::bus::BusError;
use crate::channels::webhook::constant_time_eq;
use crate::conversation::EngineContext;
use crate::store::StoreError;

/// An admin API failure: its status and one readable sentence.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("the platform refused the message: {0}")]
    Platform(String),
    #[error("{0}")]
    Upstream(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("the store is unavailable; try again")]
    Store(#[from] StoreError),
    #[error("the bus is unavailable; try again")]
    Bus(#[from] BusError),
}

impl AdminError {
    fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unsupported(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Platform(_) | Self::Upstream(_) => StatusCode::BAD_GATEWAY,
            Self::Store(_) | Self::Bus(_) | Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        match &self {
            Self::Store(e) => tracing::warn!(error = %e, "Admin API: store unavailable"),
            Self::Bus(e) => tracing::warn!(error = %e, "Admin API: bus unavailable"),
            _ => {}
        }
        let status = self.status();
        (status, Json(json!({ "error": self.to_string() }))).into_response()
    }
}

/// The `/api/v1` routes, to be nested by the caller.
pub fn router(ctx: Arc<EngineContext>) -> Router {
    Router::new()
        .route("/conversations", get(conversations::list))
        .route("/conversations/{id}", get(conversations::show))
        .route(
            "/conversations/{id}/takeover",
            post(conversations::takeover),
        )
        .route("/conversations/{id}/resume", post(conversations::resume))
        .route("/conversations/{id}/messages", post(conversations::message))
        .route(
            "/conversations/{id}/attachments/{key}",
            get(conversations::attachment),
        )
        .route("/quarantine", get(conversations::quarantined))
        .route("/analytics", get(analytics::show))
        .route("/stream", get(stream::stream))
        .route("/audit", get(audit::list))
        .route(
            "/integrations",
            get(integrations::list).post(integrations::create),
        )
        .route(
            "/integrations/{id}",
            get(integrations::show)
                .patch(integrations::update)
                .delete(integrations::delete),
        )
        .route(
            "/assistants/{id}/documents",
            get(documents::list)
                .post(documents::add)
                .layer(axum::extract::DefaultBodyLimit::max(
                    crate::knowledge::MAX_DOCUMENT_BYTES + 64 * 1024,
                )),
        )
        .route(
            "/assistants/{id}/documents/{doc}",
            axum::routing::delete(documents::delete),
        )
        .route("/tenants/{tenant}/keys", post(keys::create))
        .route(
            "/tenants/{tenant}/connect",
            post(integrations::connect_link),
        )
        .route(
            "/tenants/{tenant}/keys/{id}",
            axum::routing::delete(keys::revoke),
        )
        .fallback(|| async { AdminError::NotFound("no such admin API route".into()) })
        .layer(middleware::from_fn_with_state(ctx.clone(), authorize))
        .with_state(ctx)
}

/// Lets a request through with the admin token, or with a tenant's key
/// narrowed to that tenant (see [`keys`]).
async fn authorize(
    State(ctx): State<Arc<EngineContext>>,
    request: Request,
    next: Next,
) -> Result<Response, AdminError> {
    let token = ctx.config.admin.token.expose();
    if token.is_empty() {
        return Err(AdminError::Unauthorized(
            "the admin API is disabled: set admin.token",
        ));
    }
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(given) = given else {
        return Err(AdminError::Unauthorized(
            "missing Authorization: Bearer <admin token or tenant key>",
        ));
    };
    // Nested under /api/v1 (see app.rs): the audit names the whole path.
    let (method, path) = (
        request.method().clone(),
        format!("/api/v1{}", request.uri().path()),
    );
    if constant_time_eq(given.as_bytes(), token.as_bytes()) {
        let mut request = request;
        request.extensions_mut().insert(keys::Caller::Admin);
        let response = next.run(request).await;
        let status = response.status().as_u16();
        audit::record(&ctx, &keys::Caller::Admin, None, &method, &path, status).await;
        return Ok(response);
    }
    let Some(key) = keys::key_of(&ctx, given).await? else {
        return Err(AdminError::Unauthorized("the bearer token is not valid"));
    };
    let caller = keys::Caller::Tenant(key.tenant.clone());
    let key_id = audit::KeyId(key.id);
    let response = match keys::scope(&ctx, &key.tenant, request) {
        Ok(mut request) => {
            request.extensions_mut().insert(caller.clone());
            request.extensions_mut().insert(key_id.clone());
            request
                .extensions_mut()
                .insert(keys::KeyHash(key.hash.clone()));
            next.run(request).await
        }
        Err(e) => e.into_response(),
    };
    let status = response.status().as_u16();
    audit::record(&ctx, &caller, Some(&key_id), &method, &path, status).await;
    Ok(response)
}
