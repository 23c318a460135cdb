//! Tokens and the connect flow in Meta's shapes: `GET /debug_token` (what
//! it says of a token is set with `POST /_sim/tokens`: `{"<token>":
//! {"valid": false, "subcode": 460}}` or `{"<token>": {"expires_in":
//! 172800}}`; unknown tokens are valid, never expire, and their data access
//! ends in 90 days, as a Page token's does), `GET /oauth/access_token`
//! (a code, or `grant_type=fb_exchange_token`), `GET /me/accounts` (three
//! Pages: the first with a linked Instagram account, the third without a
//! token) and
//! `POST /{page}/subscribed_apps`; `GET /_sim/connect` lists the
//! subscriptions made.

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
pub struct Tokens(
    std::sync::Mutex<HashMap<String, TokenFate>>,
    /// (page, subscribed fields) of every subscription made.
    std::sync::Mutex<Vec<(String, String)>>,
);

pub(super) fn routes() -> axum::Router<Arc<SimState>> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/{v}/debug_token", get(debug_token))
        .route("/{v}/oauth/access_token", get(access_token))
        .route("/{v}/me/accounts", get(accounts))
        .route("/{v}/{page}/subscribed_apps", post(subscribe))
        .route("/{v}/{page}/phone_numbers", get(phone_numbers))
        .route("/_sim/tokens", post(control))
        .route("/_sim/connect", get(connect_calls))
}

fn oauth_error(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": {"message": message, "type": "OAuthException", "code": 100, "fbtrace_id": "SIM"}})),
    )
        .into_response()
}

/// A code for a user token, or a user token for a long-lived one.
async fn access_token(Query(q): Query<HashMap<String, String>>) -> Response {
    if !q.contains_key("client_id") || !q.contains_key("client_secret") {
        return oauth_error("Missing client_id or client_secret parameter.");
    }
    if q.get("grant_type").map(String::as_str) == Some("fb_exchange_token") {
        let Some(short) = q.get("fb_exchange_token") else {
            return oauth_error("Missing fb_exchange_token parameter.");
        };
        let long = format!("EAAL{}", short.trim_start_matches("EAAU"));
        return Json(
            json!({"access_token": long, "token_type": "bearer", "expires_in": 5_183_944}),
        )
        .into_response();
    }
    match (q.get("code"), q.get("redirect_uri")) {
        (Some(code), Some(_)) if !code.is_empty() && !code.starts_with("bad") => {
            Json(json!({"access_token": format!("EAAU{code}"), "token_type": "bearer", "expires_in": 5_400}))
                .into_response()
        }
        (Some(_), Some(_)) => {
            oauth_error("This authorization code has been used or has expired.")
        }
        _ => oauth_error("Missing redirect_uri or code parameter."),
    }
}

/// The Pages the user manages, each with its Page token.
async fn accounts(Query(q): Query<HashMap<String, String>>) -> Response {
    let Some(user) = q.get("access_token") else {
        return oauth_error(
            "An active access token must be used to query information about the current user.",
        );
    };
    let suffix: String = user.chars().rev().take(6).collect();
    Json(json!({
        "data": [
            {"id": "PAGE_C1", "name": "Acme <Shoes> & Co", "category": "Retail",
             "access_token": format!("EAAP-PAGE_C1-{suffix}"),
             "tasks": ["ANALYZE", "ADVERTISE", "MESSAGING", "MODERATE", "CREATE_CONTENT", "MANAGE"],
             "instagram_business_account": {"id": "IG_C1"}},
            {"id": "PAGE_C2", "name": "Acme Outlet", "category": "Retail",
             "access_token": format!("EAAP-PAGE_C2-{suffix}"),
             "tasks": ["MESSAGING", "MANAGE"]},
            // A Page the user may only look at: no token.
            {"id": "PAGE_C3", "name": "Acme Archive", "category": "Retail", "tasks": ["ANALYZE"]}
        ],
        "paging": {"cursors": {"before": "QVFIU", "after": "QVFIR"}}
    }))
    .into_response()
}

async fn subscribe(
    State(state): State<Arc<SimState>>,
    axum::extract::Path((_, page)): axum::extract::Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: axum::http::HeaderMap,
) -> Response {
    let token = q.get("access_token").cloned().or_else(|| {
        headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_string)
    });
    let allowed = token.is_some_and(|t| {
        t.starts_with(&format!("EAAP-{page}-"))
            || (page.starts_with("WABA") && t.starts_with("EAAL"))
    });
    if !allowed {
        return oauth_error("(#210) A page access token is required to request this resource.");
    }
    let fields = q.get("subscribed_fields").cloned().unwrap_or_default();
    lock(&state.tokens.1).push((page, fields));
    Json(json!({"success": true})).into_response()
}

async fn connect_calls(State(state): State<Arc<SimState>>) -> Json<Value> {
    let subscribed = lock(&state.tokens.1).clone();
    Json(json!({ "subscribed": subscribed }))
}

async fn control(
    State(state): State<Arc<SimState>>,
    Json(fates): Json<HashMap<String, TokenFate>>,
) -> StatusCode {
    lock(&state.tokens.0).extend(fates);
    StatusCode::NO_CONTENT
}

async fn debug_token(
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
            "scopes": ["pages_messaging", "pages_manage_metadata", "pages_show_list",
                       "whatsapp_business_management", "whatsapp_business_messaging"],
            // A user's token names the WhatsApp Business Account it may use.
            "granular_scopes": if input.starts_with("EAAP") { json!([]) } else { json!([
                {"scope": "whatsapp_business_management", "target_ids": ["WABA_C1"]},
                {"scope": "whatsapp_business_messaging", "target_ids": ["WABA_C1"]}
            ]) },
        }),
    };
    Json(json!({ "data": data })).into_response()
}

/// A WhatsApp Business Account's phone numbers (a long-lived user token).
async fn phone_numbers(
    axum::extract::Path((_, waba)): axum::extract::Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if !q.get("access_token").is_some_and(|t| t.starts_with("EAAL")) {
        return oauth_error("(#200) Permissions error");
    }
    if waba != "WABA_C1" {
        return Json(json!({"data": []})).into_response();
    }
    Json(json!({"data": [
        {"id": "PHONE_C1", "display_phone_number": "+1 555-0100", "verified_name": "Acme Support",
         "quality_rating": "GREEN", "code_verification_status": "VERIFIED"}
    ]}))
    .into_response()
}
