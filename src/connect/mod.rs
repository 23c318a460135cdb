//! The Meta connect flow: a business connects its Facebook Pages (and
//! their linked Instagram accounts) in a browser.
//!
//! 1. An operator asks the admin API for a connect link
//!    (`POST /api/v1/tenants/{tenant}/connect`): `GET /connect/meta/{tenant}?invite=…`,
//!    signed and expiring, so nobody can attach a Page to a tenant without it.
//! 2. The link redirects to Meta's OAuth dialog with the least scopes the
//!    chosen channels need and a signed, expiring `state`.
//! 3. `GET /connect/meta/callback` checks the state, exchanges the code for
//!    a user token and that for a long-lived one, reads the Pages with their
//!    tokens (kept sealed in the store meanwhile) and shows a form to pick.
//! 4. `POST /connect/meta/pages` creates (or, for an account already
//!    connected, gives a new token to, keeping settings and history) one
//!    integration per Page and per linked Instagram account, and subscribes
//!    the app to each Page's webhook fields. With WhatsApp asked for, the
//!    numbers of the WhatsApp Business Accounts the token may manage are
//!    offered too, connected with the long-lived token, and their accounts
//!    subscribed.

mod meta;
pub mod page;
mod pick;
pub mod signed;

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};

use crate::clock::now_ms;
use crate::config::{AppConfig, ChannelKind};
use crate::conversation::EngineContext;
use crate::integrations::sealed::Binding;
use crate::store::RecordKind;
use meta::MetaClient;
use signed::{Grant, GrantError};

/// The key that signs invitations and states: derived from the app's
/// secret, so they are never signed the way Meta signs webhooks.
pub fn grant_key(app_secret: &str) -> Vec<u8> {
    crate::channels::webhook::sign(app_secret.as_bytes(), b"switchboard-connect-grant").into_bytes()
}

/// The cookie that binds a flow's `state` to the browser that started it.
const COOKIE: &str = "sb_connect";

/// The value of cookie `name` in the request.
fn cookie(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// The scopes each channel needs, and no more.
pub fn scopes(channels: &[ChannelKind]) -> Vec<&'static str> {
    let mut scopes = vec!["pages_show_list", "pages_manage_metadata"];
    for c in channels {
        let more: &[&str] = match c {
            ChannelKind::Messenger => &["pages_messaging"],
            ChannelKind::Instagram => &[
                "instagram_basic",
                "instagram_manage_messages",
                "instagram_manage_comments",
                "pages_messaging",
            ],
            ChannelKind::Whatsapp => &[
                "whatsapp_business_messaging",
                "whatsapp_business_management",
            ],
            _ => &[],
        };
        for s in more {
            if !scopes.contains(s) {
                scopes.push(s);
            }
        }
    }
    scopes
}

struct Connect {
    ctx: Arc<EngineContext>,
    http: reqwest::Client,
}

impl Connect {
    fn app(&self) -> Option<&AppConfig> {
        let c = &self.ctx.config.connect;
        if c.public_url.is_empty() {
            return None;
        }
        self.ctx.config.apps.iter().find(|a| a.id == c.app)
    }

    fn redirect_uri(&self) -> String {
        format!(
            "{}/connect/meta/callback",
            self.ctx.config.connect.public_url.trim_end_matches('/')
        )
    }

    fn meta<'a>(&'a self, app: &'a AppConfig) -> MetaClient<'a> {
        MetaClient {
            http: &self.http,
            graph: &self.ctx.config.meta.graph_base_url,
            app_id: app.meta_app_id.as_deref().unwrap_or_default(),
            app_secret: app.app_secret.expose(),
        }
    }
}

/// The public routes of the flow (answered 404 while it is off).
pub fn router(ctx: Arc<EngineContext>) -> Router {
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(15))
        .build()
        .unwrap_or_default();
    Router::new()
        .route("/connect/meta/callback", get(callback))
        .route("/connect/meta/pages", post(pick::pick))
        .route("/connect/meta/{tenant}", get(start))
        .with_state(Arc::new(Connect { ctx, http }))
}

fn off() -> Response {
    page::error(
        StatusCode::NOT_FOUND,
        "Connecting accounts is not set up on this server (connect.public_url).",
    )
}

fn refused(e: GrantError) -> Response {
    page::error(StatusCode::FORBIDDEN, &e.to_string())
}

/// A connect link for `tenant` (made by the admin API).
pub fn link(
    ctx: &EngineContext,
    tenant: &str,
    assistant: &str,
    channels: &[ChannelKind],
) -> Option<String> {
    let c = &ctx.config.connect;
    let app = ctx.config.apps.iter().find(|a| a.id == c.app)?;
    if c.public_url.is_empty() {
        return None;
    }
    let expires = now_ms() + c.link_ttl.as_millis() as u64;
    let invite = Grant::new("invite", tenant, assistant, channels, expires)
        .seal(&grant_key(app.app_secret.expose()));
    link_url(&c.public_url, tenant, &invite)
}

/// `{public_url}/connect/meta/{tenant}?invite={invite}`, the tenant's id
/// encoded as a path segment (a space, `/`, `?` or `#` in it must not break
/// the link).
fn link_url(public_url: &str, tenant: &str, invite: &str) -> Option<String> {
    let mut url = reqwest::Url::parse(public_url.trim_end_matches('/')).ok()?;
    url.path_segments_mut()
        .ok()?
        .pop_if_empty()
        .extend(["connect", "meta", tenant]);
    url.query_pairs_mut().append_pair("invite", invite);
    Some(url.to_string())
}

#[cfg(test)]
mod link_tests {
    #[test]
    fn a_tenant_id_is_one_path_segment_of_the_link() {
        assert_eq!(
            super::link_url("https://sb.example/base/", "acme", "abc").as_deref(),
            Some("https://sb.example/base/connect/meta/acme?invite=abc")
        );
        assert_eq!(
            super::link_url("https://sb.example", "acme co/x?#", "abc").as_deref(),
            Some("https://sb.example/connect/meta/acme%20co%2Fx%3F%23?invite=abc")
        );
    }
}

/// `GET /connect/meta/{tenant}?invite=`: off to Meta's dialog.
async fn start(
    State(s): State<Arc<Connect>>,
    Path(tenant): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(app) = s.app() else { return off() };
    let key = &grant_key(app.app_secret.expose());
    let invite = match Grant::open(
        key,
        q.get("invite").map_or("", String::as_str),
        "invite",
        now_ms(),
    ) {
        Ok(g) if g.tenant == tenant => g,
        Ok(_) => return refused(GrantError::Tampered),
        Err(e) => return refused(e),
    };
    let c = &s.ctx.config.connect;
    let expires = now_ms() + c.state_ttl.as_millis() as u64;
    let grant = Grant::new(
        "state",
        &tenant,
        &invite.assistant,
        &invite.channels,
        expires,
    );
    // The state is bound to this browser: the callback needs the cookie
    // with the state's nonce, so a flow started by someone else (their
    // invitation, their state) cannot be finished in a victim's browser.
    let secure = if c.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{COOKIE}={}; Path=/connect/meta; Max-Age={}; HttpOnly; SameSite=Lax{secure}",
        grant.nonce,
        c.state_ttl.as_secs()
    );
    let state = grant.seal(key);
    let Ok(mut dialog) = reqwest::Url::parse(&c.dialog_url) else {
        return page::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "connect.dialog_url is not a URL",
        );
    };
    dialog
        .query_pairs_mut()
        .append_pair("client_id", app.meta_app_id.as_deref().unwrap_or_default())
        .append_pair("redirect_uri", &s.redirect_uri())
        .append_pair("state", &state)
        .append_pair("response_type", "code")
        .append_pair("scope", &scopes(&invite.channels).join(","));
    (
        StatusCode::FOUND,
        [
            (header::LOCATION, dialog.to_string()),
            (header::SET_COOKIE, cookie),
        ],
    )
        .into_response()
}

/// A flow between Meta's dialog and the person's pick, kept in the store
/// (Page tokens sealed) so the form may be sent to any instance.
#[derive(Serialize, Deserialize)]
struct Session {
    tenant: String,
    assistant: String,
    channels: Vec<ChannelKind>,
    expires_ms: u64,
    pages: Vec<PendingPage>,
    /// WhatsApp numbers, used with the long-lived user token.
    #[serde(default)]
    numbers: Vec<PendingNumber>,
    /// The long-lived user token, sealed (when there are numbers).
    #[serde(default)]
    user_token: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct PendingNumber {
    id: String,
    name: String,
    waba: String,
}

#[derive(Serialize, Deserialize)]
struct PendingPage {
    id: String,
    name: String,
    instagram: Option<String>,
    token: String,
}

fn session_binding<'a>(tenant: &'a str, session: &'a str) -> Binding<'a> {
    Binding {
        tenant,
        integration: session,
        field: "connect_page_token",
    }
}

/// Removes the sessions of flows nobody finished (their tokens with them).
async fn forget_expired_sessions(ctx: &EngineContext) {
    let Ok(records) = ctx.store.records(RecordKind::ConnectSessions).await else {
        return;
    };
    let now = now_ms();
    for (key, value) in records {
        let expired =
            serde_json::from_slice::<Session>(&value).map_or(true, |x| x.expires_ms <= now);
        if expired {
            if let Err(e) = ctx
                .store
                .delete_record(RecordKind::ConnectSessions, &key)
                .await
            {
                tracing::debug!(error = %e, "Connect flow: an old session not removed");
            }
        }
    }
}

/// `GET /connect/meta/callback?code=&state=` (or `?error=` when the person
/// said no).
async fn callback(
    State(s): State<Arc<Connect>>,
    headers: axum::http::HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(app) = s.app() else { return off() };
    let key = &grant_key(app.app_secret.expose());
    let grant = match Grant::open(
        key,
        q.get("state").map_or("", String::as_str),
        "state",
        now_ms(),
    ) {
        Ok(g) => g,
        Err(e) => return refused(e),
    };
    if cookie(&headers, COOKIE).as_deref() != Some(grant.nonce.as_str()) {
        return page::error(
            StatusCode::FORBIDDEN,
            "This connection was started in another browser; start again from your connect link.",
        );
    }
    if q.contains_key("error") {
        return page::error(
            StatusCode::OK,
            "Facebook's dialog was cancelled; nothing was connected.",
        );
    }
    let Some(code) = q.get("code").filter(|c| !c.is_empty()) else {
        return page::error(
            StatusCode::BAD_REQUEST,
            "Facebook sent no authorization code; start again.",
        );
    };
    let Some(keys) = s.ctx.integrations.keys() else {
        return page::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "This server cannot keep tokens yet (SWITCHBOARD_KEYS is not set).",
        );
    };
    let meta = s.meta(app);
    let wants_whatsapp = grant.channels.contains(&ChannelKind::Whatsapp);
    let found = async {
        let user = meta.exchange_code(code, &s.redirect_uri()).await?;
        let long = meta.long_lived(&user).await?;
        let pages = meta.pages(&long).await?;
        let numbers = if wants_whatsapp {
            meta.whatsapp_numbers(&long).await?
        } else {
            Vec::new()
        };
        Ok::<_, meta::MetaError>((long, pages, numbers))
    }
    .await;
    let (long, pages, numbers) = match found {
        Ok(found) => found,
        Err(e) => {
            tracing::warn!(tenant = %grant.tenant, error = %e, "Connect flow: Meta refused");
            return page::error(StatusCode::BAD_GATEWAY, &e.to_string());
        }
    };
    let session_id = hex::encode(rand::random::<[u8; 16]>());
    let mut pending = Vec::new();
    for p in &pages {
        let binding = session_binding(&grant.tenant, &session_id);
        let Ok(token) = keys.seal(p.access_token.expose(), binding) else {
            return page::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "A token could not be sealed.",
            );
        };
        pending.push(PendingPage {
            id: p.id.clone(),
            name: p.name.clone(),
            instagram: p.instagram_business_account.as_ref().map(|l| l.id.clone()),
            token,
        });
    }
    let user_token = if numbers.is_empty() {
        None
    } else {
        match keys.seal(long.expose(), session_binding(&grant.tenant, &session_id)) {
            Ok(t) => Some(t),
            Err(_) => {
                return page::error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "A token could not be sealed.",
                )
            }
        }
    };
    let session = Session {
        tenant: grant.tenant.clone(),
        assistant: grant.assistant.clone(),
        channels: grant.channels.clone(),
        expires_ms: grant.expires_ms,
        pages: pending,
        numbers: numbers
            .into_iter()
            .map(|n| PendingNumber {
                name: format!("{} {}", n.verified_name, n.display_phone_number)
                    .trim()
                    .to_string(),
                id: n.id,
                waba: n.waba,
            })
            .collect(),
        user_token,
    };
    forget_expired_sessions(&s.ctx).await;
    let stored = match serde_json::to_vec(&session) {
        Ok(bytes) => {
            s.ctx
                .store
                .put_record(RecordKind::ConnectSessions, &session_id, bytes)
                .await
        }
        Err(e) => Err(crate::store::StoreError::Corrupt(e.to_string())),
    };
    if let Err(e) = stored {
        tracing::warn!(error = %e, "Connect flow: session not stored");
        return page::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "The server could not keep your choice; try again.",
        );
    }
    let wants_pages = session
        .channels
        .iter()
        .any(|c| matches!(c, ChannelKind::Messenger | ChannelKind::Instagram));
    let choices: Vec<page::Choice> = session
        .pages
        .iter()
        .filter(|_| wants_pages)
        .map(|p| page::Choice {
            field: "page",
            id: &p.id,
            name: &p.name,
            instagram: p
                .instagram
                .as_deref()
                .filter(|_| session.channels.contains(&ChannelKind::Instagram)),
        })
        .chain(session.numbers.iter().map(|n| page::Choice {
            field: "number",
            id: &n.id,
            name: &n.name,
            instagram: None,
        }))
        .collect();
    page::pick(&session.tenant, &session_id, &choices)
}
