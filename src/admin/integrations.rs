//! `/api/v1/integrations`: connected accounts, those of the config file and
//! those created at run time (kept in the store, secrets sealed), with
//! where each comes from and whether its access token still works.
//! Secrets are write-only: answered as `"****"` and their last 4
//! characters. Changes apply at once on this instance and within
//! `engine.integrations_poll` on every other.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde_json::{json, Value};

use super::analytics::integrations_of;
use super::bodies;
use super::keys::Caller;
use super::AdminError;
use crate::conversation::EngineContext;
use crate::integrations::{masked, Entry, IntegrationError, Origin};

impl From<IntegrationError> for AdminError {
    fn from(e: IntegrationError) -> Self {
        match e {
            IntegrationError::Store(e) => AdminError::Store(e),
            IntegrationError::Invalid(_) | IntegrationError::Seal(_) => {
                AdminError::Unprocessable(e.to_string())
            }
            IntegrationError::FromConfig(_) => AdminError::Conflict(e.to_string()),
        }
    }
}

/// An integration as the API shows it: every setting, the token masked,
/// its origin and its token's health.
pub fn view(ctx: &EngineContext, entry: &Entry) -> Value {
    let c = &entry.config;
    let mut v = serde_json::to_value(c.as_ref()).unwrap_or_else(|_| json!({ "id": c.id }));
    let health = ctx.integrations.tokens.state(&c.id);
    if let Value::Object(fields) = &mut v {
        fields.insert("access_token".into(), json!(masked(&c.access_token)));
        fields.insert("origin".into(), json!(entry.origin));
        fields.insert("token".into(), json!(health.status));
        fields.insert("token_health".into(), json!(health));
        fields.insert(
            "auto_resume_after".into(),
            json!(crate::config::off_or_duration_text(c.auto_resume_after)),
        );
    }
    v
}

/// The integration `id` as the caller may see it (another tenant's is 404).
fn visible(ctx: &EngineContext, caller: &Caller, id: &str) -> Result<Entry, AdminError> {
    ctx.integrations
        .entry(id)
        .filter(|e| match caller {
            Caller::Admin => true,
            Caller::Tenant(t) => &e.config.tenant == t,
        })
        .ok_or_else(|| AdminError::NotFound(format!("no integration {id:?}")))
}

/// `GET /integrations?tenant=`
pub async fn list(
    State(ctx): State<Arc<EngineContext>>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, AdminError> {
    let only = integrations_of(&ctx, params.get("tenant").map(String::as_str), None)?;
    let integrations: Vec<Value> = ctx
        .integrations
        .entries()
        .iter()
        .filter(|e| only.as_ref().is_none_or(|ids| ids.contains(&e.config.id)))
        .map(|e| view(&ctx, e))
        .collect();
    Ok(Json(json!({ "integrations": integrations })))
}

/// `GET /integrations/{id}`
pub async fn show(
    State(ctx): State<Arc<EngineContext>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, AdminError> {
    Ok(Json(view(&ctx, &visible(&ctx, &caller, &id)?)))
}

/// `POST /integrations`: the same fields as `[[integrations]]`.
pub async fn create(
    State(ctx): State<Arc<EngineContext>>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), AdminError> {
    // A tenant key connects its accounts through the connect flow, where
    // Meta's dialog proves they are its own: naming any account id here
    // would let it take another business's Page.
    if let Caller::Tenant(_) = &caller {
        return Err(AdminError::NotFound(
            "no such admin API route for a tenant key: connect accounts with POST /api/v1/tenants/{tenant}/connect".into(),
        ));
    }
    let config = bodies::integration(&body)?;
    if ctx.integrations.contains_key(&config.id) {
        return Err(AdminError::Conflict(format!(
            "an integration with id {:?} exists",
            config.id
        )));
    }
    ctx.integrations.put(&config).await?;
    ctx.integrations.tokens.reset(&config.id);
    push_profile(&ctx, &config.id);
    let entry = visible(&ctx, &Caller::Admin, &config.id)?;
    tracing::info!(integration = %config.id, tenant = %config.tenant, "Integration created");
    Ok((StatusCode::CREATED, Json(view(&ctx, &entry))))
}

/// `PATCH /integrations/{id}`: the fields given change, the others stay
/// (a new `access_token` reconnects: settings and history are kept).
pub async fn update(
    State(ctx): State<Arc<EngineContext>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, AdminError> {
    let entry = visible(&ctx, &caller, &id)?;
    let patch = bodies::integration_patch(&body)?;
    let current = &entry.config;
    let Value::Object(mut fields) = serde_json::to_value(current.as_ref())
        .map_err(|e| AdminError::Unprocessable(e.to_string()))?
    else {
        return Err(AdminError::Unprocessable(
            "integration is not an object".into(),
        ));
    };
    // Secrets serialise redacted: the current values stand for the ones a
    // patch leaves out.
    for (name, secret) in [
        ("access_token", &current.access_token),
        ("oauth_client_secret", &current.oauth_client_secret),
        ("refresh_token", &current.refresh_token),
        ("identity_secret", &current.identity_secret),
    ] {
        fields.insert(name.into(), json!(secret.expose()));
    }
    // The masked token an answer shows, sent back whole, is not a token.
    let masked_back = patch
        .get("access_token")
        .and_then(Value::as_str)
        .is_some_and(|t| t.starts_with("****"));
    if masked_back {
        return Err(AdminError::Unprocessable(
            "access_token: that is the masked token an answer shows; send the token itself, or leave it out".into(),
        ));
    }
    // A new token (or Gmail refresh token) is a reconnection.
    let new_token = ["access_token", "refresh_token", "oauth_client_secret"]
        .iter()
        .any(|k| patch.contains_key(*k));
    for (k, v) in patch {
        match k.as_str() {
            "id" if v != json!(id) => {
                return Err(AdminError::Unprocessable("id: cannot be changed".into()))
            }
            "tenant" if v != json!(current.tenant) => {
                return Err(AdminError::Unprocessable(
                    "tenant: cannot be changed".into(),
                ))
            }
            // A key may point alerts at public HTTPS endpoints only (never
            // at the engine's own network: a name is resolved to public
            // addresses only whenever an alert goes).
            "alert_webhook" if matches!(caller, Caller::Tenant(_)) => {
                if !v.is_null() && !crate::alerts::public_https(v.as_str().unwrap_or_default()) {
                    return Err(AdminError::Unprocessable(
                        "alert_webhook: a tenant key sets an https:// URL of a public host".into(),
                    ));
                }
                fields.insert("alert_webhook_public_only".into(), json!(true));
                fields.insert(k, v);
            }
            "alert_webhook" => {
                fields.insert("alert_webhook_public_only".into(), json!(false));
                fields.insert(k, v);
            }
            // The account is proven by the connect flow, not by a key.
            "account_id" | "app"
                if matches!(caller, Caller::Tenant(_))
                    && v != fields.get(k.as_str()).cloned().unwrap_or_default() =>
            {
                return Err(AdminError::Unprocessable(format!(
                    "{k}: cannot be changed with a tenant key (connect the account again)"
                )))
            }
            // Its conversations' customer ids belong to the channel.
            "channel" if v != json!(current.channel) => {
                return Err(AdminError::Unprocessable(
                    "channel: cannot be changed (create another integration)".into(),
                ))
            }
            "origin" | "token" | "token_health" | "alert_webhook_public_only" => {}
            _ => {
                fields.insert(k, v);
            }
        }
    }
    let config = bodies::integration_of(fields)?;
    ctx.integrations.put(&config).await?;
    if new_token {
        ctx.integrations.tokens.reset(&id);
    }
    push_profile(&ctx, &id);
    tracing::info!(integration = %id, "Integration changed");
    Ok(Json(view(&ctx, &visible(&ctx, &caller, &id)?)))
}

/// `DELETE /integrations/{id}?history=keep|purge`: the integration stops
/// at once; its conversations are kept (the default) or deleted.
pub async fn delete(
    State(ctx): State<Arc<EngineContext>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, AdminError> {
    let entry = visible(&ctx, &caller, &id)?;
    let purge = match params.get("history").map(String::as_str) {
        None | Some("keep") => false,
        Some("purge") => true,
        Some(other) => {
            return Err(AdminError::BadRequest(format!(
                "history must be \"keep\" or \"purge\", not {other:?}"
            )))
        }
    };
    // A config integration cannot go; a stored change to it is undone.
    ctx.integrations.delete(&id).await?;
    let purged = if purge && entry.origin == Origin::Api {
        // On its own task: a purge outlasting this request (its timeout,
        // a caller that hangs up) goes on to the end.
        let (store, gone) = (ctx.store.clone(), id.clone());
        tokio::spawn(async move { store.purge_integration(&gone).await })
            .await
            .map_err(|e| {
                crate::store::StoreError::Unavailable(format!("the purge stopped: {e}"))
            })??
    } else {
        0
    };
    tracing::info!(integration = %id, purged, "Integration deleted");
    Ok(Json(
        json!({ "deleted": id, "conversations_purged": purged }),
    ))
}

/// Pushes a Messenger integration's greeting and Get Started button.
fn push_profile(ctx: &EngineContext, id: &str) {
    if let Some(integration) = ctx.integrations.get(id) {
        tokio::spawn(crate::channels::messenger::profiles::push_all(
            ctx.outbound.clone(),
            vec![integration],
        ));
    }
}

/// `POST /tenants/{tenant}/connect` with `{"assistant", "channels"}`: a
/// signed, expiring link that lets a person connect the tenant's Pages.
pub async fn connect_link(
    State(ctx): State<Arc<EngineContext>>,
    Path(tenant): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), AdminError> {
    let body = bodies::link(&body)?;
    if !ctx.config.tenants.iter().any(|t| t.id == tenant) {
        return Err(AdminError::NotFound(format!("no tenant {tenant:?}")));
    }
    match ctx.config.assistant(&body.assistant) {
        None => {
            return Err(AdminError::Unprocessable(format!(
                "assistant: no assistant with id {:?}",
                body.assistant
            )))
        }
        Some(a) if a.tenant.as_deref().is_some_and(|t| t != tenant) => {
            return Err(AdminError::Unprocessable(format!(
                "assistant: {:?} belongs to another tenant",
                body.assistant
            )))
        }
        Some(_) => {}
    }
    if body.channels.is_empty() {
        return Err(AdminError::Unprocessable(
            "channels: name at least one".into(),
        ));
    }
    let url =
        crate::connect::link(&ctx, &tenant, &body.assistant, &body.channels).ok_or_else(|| {
            AdminError::Conflict(
                "the connect flow is off: set connect.public_url and connect.app".into(),
            )
        })?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "url": url, "expires_in_seconds": ctx.config.connect.link_ttl.as_secs() })),
    ))
}
