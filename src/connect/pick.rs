//! Step 4 of the connect flow: the person's pick becomes integrations
//! (created, or reconnected with the new token), and the app is subscribed
//! to the webhooks of each Page and WhatsApp Business Account.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use serde_json::json;

use super::meta::Page;
use super::signed::GrantError;
use super::{off, page, refused, session_binding, Connect, PendingNumber, Session};
use crate::clock::now_ms;
use crate::config::{AppConfig, ChannelKind, IntegrationConfig, Secret};
use crate::conversation::EngineContext;
use crate::store::RecordKind;

/// `POST /connect/meta/pages` (form: `session`, `page`…).
pub(super) async fn pick(
    State(s): State<Arc<Connect>>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let Some(app) = s.app() else { return off() };
    let session_id = form
        .iter()
        .find(|(k, _)| k == "session")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let mut chosen: Vec<&str> = form
        .iter()
        .filter(|(k, _)| k == "page")
        .map(|(_, v)| v.as_str())
        .collect();
    let store = &s.ctx.store;
    let session = match store.records(RecordKind::ConnectSessions).await {
        Ok(records) => records
            .into_iter()
            .find(|(k, _)| !session_id.is_empty() && *k == session_id)
            .and_then(|(_, v)| serde_json::from_slice::<Session>(&v).ok()),
        Err(e) => {
            tracing::warn!(error = %e, "Connect flow: sessions unavailable");
            return page::error(StatusCode::SERVICE_UNAVAILABLE, "Try again in a moment.");
        }
    };
    let Some(session) = session.filter(|x| x.expires_ms > now_ms()) else {
        return refused(GrantError::Expired);
    };
    // Pages only when the form offered them.
    if !session
        .channels
        .iter()
        .any(|c| matches!(c, ChannelKind::Messenger | ChannelKind::Instagram))
    {
        chosen.clear();
    }
    // Used once: of two posts of the same form, the one whose delete
    // removed the session goes on.
    match store
        .delete_record(RecordKind::ConnectSessions, &session_id)
        .await
    {
        Ok(true) => {}
        Ok(false) => return refused(GrantError::Expired),
        Err(e) => {
            tracing::warn!(error = %e, "Connect flow: session not removed");
            return page::error(StatusCode::SERVICE_UNAVAILABLE, "Try again in a moment.");
        }
    }
    let Some(keys) = s.ctx.integrations.keys() else {
        return page::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "SWITCHBOARD_KEYS is not set.",
        );
    };
    let meta = s.meta(app);
    let (mut connected, mut failed) = (Vec::new(), Vec::new());
    for p in session
        .pages
        .iter()
        .filter(|p| chosen.contains(&p.id.as_str()))
    {
        let token = match keys.open(&p.token, session_binding(&session.tenant, &session_id)) {
            Ok(t) => t,
            Err(_) => {
                failed.push(format!("{}: its token could not be read", p.name));
                continue;
            }
        };
        let mut accounts = Vec::new();
        if session.channels.contains(&ChannelKind::Messenger) {
            accounts.push((ChannelKind::Messenger, p.id.clone()));
        }
        if session.channels.contains(&ChannelKind::Instagram) {
            accounts.extend(p.instagram.clone().map(|ig| (ChannelKind::Instagram, ig)));
        }
        let mut ours = false;
        for (channel, account) in accounts {
            match connect_account(&s.ctx, &session, app, channel, &account, &token).await {
                Ok(outcome) => {
                    ours = true;
                    connected.push(format!("{} ({}): {outcome}", p.name, channel.as_str()))
                }
                Err(why) => failed.push(format!("{} ({}): {why}", p.name, channel.as_str())),
            }
        }
        // A Page none of whose accounts is this tenant's is not subscribed:
        // its messages must not start flowing to whoever has it.
        if !ours {
            continue;
        }
        let subscribing = Page {
            id: p.id.clone(),
            name: p.name.clone(),
            access_token: token,
            instagram_business_account: None,
        };
        if let Err(e) = meta.subscribe(&subscribing).await {
            failed.push(format!(
                "{}: webhooks not subscribed ({e}); connect it again",
                p.name
            ));
        }
    }
    let numbers: Vec<&PendingNumber> = session
        .numbers
        .iter()
        .filter(|n| form.iter().any(|(k, v)| k == "number" && *v == n.id))
        .collect();
    if !numbers.is_empty() {
        let user = session.user_token.as_deref().and_then(|t| {
            keys.open(t, session_binding(&session.tenant, &session_id))
                .ok()
        });
        match user {
            None => failed.push("WhatsApp: the token could not be read".into()),
            Some(user) => {
                let mut subscribed: Vec<&str> = Vec::new();
                for n in numbers {
                    match connect_account(
                        &s.ctx,
                        &session,
                        app,
                        ChannelKind::Whatsapp,
                        &n.id,
                        &user,
                    )
                    .await
                    {
                        Ok(outcome) => connected.push(format!("{} (whatsapp): {outcome}", n.name)),
                        Err(why) => {
                            // Not this tenant's: its account is not subscribed.
                            failed.push(format!("{} (whatsapp): {why}", n.name));
                            continue;
                        }
                    }
                    if !subscribed.contains(&n.waba.as_str()) {
                        subscribed.push(&n.waba);
                        if let Err(e) = meta.subscribe_waba(&n.waba, &user).await {
                            failed.push(format!(
                                "{}: webhooks not subscribed ({e}); connect it again",
                                n.name
                            ));
                        }
                    }
                }
            }
        }
    }
    tracing::info!(tenant = %session.tenant, connected = connected.len(), failed = failed.len(), "Connect flow finished");
    page::done(&connected, &failed)
}

/// Creates the integration of `account`, or gives the one that exists a new
/// token (settings and history kept).
async fn connect_account(
    ctx: &EngineContext,
    session: &Session,
    app: &AppConfig,
    channel: ChannelKind,
    account: &str,
    token: &Secret,
) -> Result<String, String> {
    let integrations = &ctx.integrations;
    // Through any app: an account answered for two tenants would have its
    // customers answered twice.
    let elsewhere = integrations
        .values()
        .into_iter()
        .any(|i| i.account_id == account && i.tenant != session.tenant);
    if elsewhere {
        return Err("already connected to another account".into());
    }
    if let Some(existing) = integrations.by_account(&app.id, account) {
        if existing.tenant != session.tenant {
            return Err("already connected to another account".into());
        }
        let mut config = (*existing).clone();
        config.access_token = token.clone();
        integrations.put(&config).await.map_err(|e| e.to_string())?;
        integrations.tokens.reset(&config.id);
        return Ok(format!("reconnected as {}", config.id));
    }
    let short = match channel {
        ChannelKind::Instagram => "ig",
        ChannelKind::Whatsapp => "wa",
        _ => "fb",
    };
    let base: String = format!("{}-{short}-{account}", session.tenant)
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    // Never the id of an integration deleted with its history kept: its
    // conversations would be this one's (perhaps another tenant's: tenant
    // ids differing only in case or punctuation give the same id).
    let mut id = base.clone();
    let mut n = 2;
    while integrations.contains_key(&id) || has_history(ctx, &id).await? {
        id = format!("{base}-{n}");
        n += 1;
    }
    let config: IntegrationConfig = serde_json::from_value(json!({
        "id": id,
        "tenant": session.tenant,
        "channel": channel,
        "app": app.id,
        "account_id": account,
        "access_token": token.expose(),
        "assistant": session.assistant,
    }))
    .map_err(|e| e.to_string())?;
    integrations.put(&config).await.map_err(|e| e.to_string())?;
    integrations.tokens.reset(&config.id);
    Ok(format!("connected as {id}"))
}

/// Whether conversations of integration `id` are in the store.
async fn has_history(ctx: &EngineContext, id: &str) -> Result<bool, String> {
    let (total, _) = ctx
        .store
        .conversation_counts(&[id.to_string()], 0)
        .await
        .map_err(|e| e.to_string())?;
    Ok(total > 0)
}
