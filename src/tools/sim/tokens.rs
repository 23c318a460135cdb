//! The Graph API's `GET /debug_token` in Meta's shape, and the simulator's
//! control of what it says (`POST /_sim/tokens`: `{"<token>": {"valid":
//! false, "subcode": 460}}` or `{"<token>": {"expires_in": 172800}}`).
//! Unknown tokens are valid, never expire, and their data access ends in
//! 90 days, as a Page token's does.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::SimState;
use crate::clock::now_ms;
use crate::sync::lock;

/// What the simulator says of one token.
#[derive(Debug, Clone, Deserialize)]
pub struct TokenFate {
    #[serde(default = "yes")]
    pub valid: bool,
    #[serde(default)]
    pub subcode: Option<i64>,
    /// Seconds from now until it expires.
    #[serde(default)]
    pub expires_in: Option<u64>,
}

fn yes() -> bool {
    true
}

#[derive(Default)]
pub struct Tokens(std::sync::Mutex<HashMap<String, TokenFate>>);

pub(super) async fn control(
    State(state): State<Arc<SimState>>,
    Json(fates): Json<HashMap<String, TokenFate>>,
) -> StatusCode {
    lock(&state.tokens.0).extend(fates);
    StatusCode::NO_CONTENT
}

pub(super) async fn debug_token(
    State(state): State<Arc<SimState>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let (Some(input), Some(app)) = (q.get("input_token"), q.get("access_token")) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": {"message": "(#100) The parameter input_token is required", "type": "OAuthException", "code": 100}})),
        )
            .into_response();
    };
    if !app.contains('|') {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": {"message": "(#100) You must provide an app access token", "type": "OAuthException", "code": 100}})),
        )
            .into_response();
    }
    let now = now_ms() / 1000;
    let fate = lock(&state.tokens.0).get(input).cloned();
    let data: Value = match fate {
        Some(TokenFate {
            valid: false,
            subcode,
            ..
        }) => json!({
            "app_id": app.split('|').next().unwrap_or_default(),
            "type": "PAGE",
            "is_valid": false,
            "error": {"code": 190, "message": "Error validating access token", "subcode": subcode},
            "scopes": [],
        }),
        other => json!({
            "app_id": app.split('|').next().unwrap_or_default(),
            "type": "PAGE",
            "application": "Simulated app",
            "is_valid": true,
            "expires_at": other.and_then(|f| f.expires_in).map_or(0, |s| now + s),
            "data_access_expires_at": now + 90 * 86_400,
            "scopes": ["pages_messaging", "pages_manage_metadata", "pages_show_list"],
        }),
    };
    Json(json!({ "data": data })).into_response()
}
