//! The simulator's own routes (not part of Meta's API): recorded calls,
//! faults and counts.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::validate::CallKind;
use super::{Faults, RecordedCall, SimState, KINDS};
use crate::sync::lock;

pub(super) fn routes() -> Router<Arc<SimState>> {
    Router::new()
        .route("/_sim/calls", get(list_calls).delete(clear_calls))
        .route("/_sim/faults", get(get_faults).post(set_faults))
        .route("/_sim/stats", get(stats))
        .route("/_sim/model", get(model_stats).post(model_control))
        .route("/_sim/model/requests", get(model_requests))
}

async fn model_control(
    State(state): State<Arc<SimState>>,
    Json(control): Json<super::model::ModelControl>,
) -> Json<Value> {
    state.model.control(control);
    Json(state.model.stats())
}

async fn model_stats(State(state): State<Arc<SimState>>) -> Json<Value> {
    Json(state.model.stats())
}

async fn model_requests(State(state): State<Arc<SimState>>) -> Json<Value> {
    Json(json!({ "requests": state.model.requests() }))
}

#[derive(Deserialize)]
struct CallFilter {
    recipient: Option<String>,
    account: Option<String>,
    kind: Option<String>,
}

async fn list_calls(
    State(state): State<Arc<SimState>>,
    Query(filter): Query<CallFilter>,
) -> Json<Value> {
    let calls: Vec<RecordedCall> = lock(&state.calls)
        .iter()
        .filter(|c| {
            filter
                .recipient
                .as_ref()
                .is_none_or(|r| c.recipient.as_ref() == Some(r))
                && filter
                    .account
                    .as_ref()
                    .is_none_or(|a| c.account.as_ref() == Some(a))
                && filter
                    .kind
                    .as_ref()
                    .is_none_or(|k| c.kind.map(CallKind::as_str) == Some(k.as_str()))
        })
        .cloned()
        .collect();
    Json(json!({ "calls": calls }))
}

async fn clear_calls(State(state): State<Arc<SimState>>) -> StatusCode {
    lock(&state.calls).clear();
    StatusCode::NO_CONTENT
}

async fn get_faults(State(state): State<Arc<SimState>>) -> Json<Faults> {
    Json(lock(&state.faults).clone())
}

async fn set_faults(State(state): State<Arc<SimState>>, body: Bytes) -> Response {
    let faults: Faults = match serde_json::from_slice(&body) {
        Ok(f) => f,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": format!("faults: {e}")})),
            )
                .into_response()
        }
    };
    if let Err(e) = faults.validate() {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": e.to_string()})),
        )
            .into_response();
    }
    *lock(&state.faults) = faults.clone();
    Json(faults).into_response()
}

async fn stats(State(state): State<Arc<SimState>>) -> Json<Value> {
    let mut accepted = serde_json::Map::new();
    for (i, kind) in KINDS.iter().enumerate() {
        accepted.insert(
            kind.as_str().into(),
            state.accepted[i].load(Ordering::Relaxed).into(),
        );
    }
    Json(json!({
        "accepted": accepted,
        "refused": state.refused.load(Ordering::Relaxed),
        "receipt_webhooks": {
            "accepted": state.receipt_counts.accepted.load(Ordering::Relaxed),
            "failed": state.receipt_counts.failed.load(Ordering::Relaxed),
        },
    }))
}
