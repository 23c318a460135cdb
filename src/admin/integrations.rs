//! `/api/v1/integrations`: each integration's settings as configured and
//! whether its access token still works (Meta answered 190 to its last
//! call: it needs a new token in the config).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::Json;
use serde::Serialize;

use super::analytics::integrations_of;
use super::AdminError;
use crate::config::ChannelKind;
use crate::conversation::EngineContext;

#[derive(Debug, Serialize)]
pub struct IntegrationView {
    pub id: String,
    pub tenant: String,
    pub channel: ChannelKind,
    pub account_id: String,
    pub enabled: bool,
    /// `ok`, or `expired` after Meta refused the token (code 190) until a
    /// call with it succeeds again.
    pub token: &'static str,
    pub escalation_keywords: Vec<String>,
    pub auto_resume_after: String,
    pub away_message: Option<String>,
}

/// `GET /integrations?tenant=`
pub async fn list(
    State(ctx): State<Arc<EngineContext>>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<serde_json::Value>, AdminError> {
    let only = integrations_of(&ctx, params.get("tenant").map(String::as_str), None)?;
    let integrations: Vec<IntegrationView> = ctx
        .config
        .integrations
        .iter()
        .filter(|i| only.as_ref().is_none_or(|ids| ids.contains(&i.id)))
        .map(|i| IntegrationView {
            id: i.id.clone(),
            tenant: i.tenant.clone(),
            channel: i.channel,
            account_id: i.account_id.clone(),
            enabled: i.enabled,
            token: if ctx.token_is_expired(&i.id) {
                "expired"
            } else {
                "ok"
            },
            escalation_keywords: i.escalation_keywords.clone(),
            auto_resume_after: crate::config::off_or_duration_text(i.auto_resume_after),
            away_message: i.away_message.clone(),
        })
        .collect();
    Ok(Json(serde_json::json!({ "integrations": integrations })))
}
