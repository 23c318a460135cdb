//! `GET/POST /webhooks/meta/{app}`: Meta's subscription handshake and
//! signed event delivery for Messenger and Instagram.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::{answer, IngressState};
use crate::channels::webhook::{self, ParsedWebhook};
use crate::clock::now_ms;
use crate::config::AppConfig;
use crate::event::{ConversationId, EventKind, InboundEvent};
use crate::telemetry::{self, WebhookOutcome};

/// Subscription verification: echo `hub.challenge` when the token matches.
pub async fn verify(
    State(state): State<Arc<IngressState>>,
    Path(app): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(app) = state.apps.get(&app) else {
        return answer(
            "meta",
            WebhookOutcome::UnknownApp,
            StatusCode::NOT_FOUND,
            "unknown app",
        );
    };
    let mode_ok = q.get("hub.mode").map(String::as_str) == Some("subscribe");
    let token_ok = q.get("hub.verify_token").is_some_and(|t| {
        webhook::constant_time_eq(t.as_bytes(), app.verify_token.expose().as_bytes())
    });
    match (mode_ok, token_ok, q.get("hub.challenge")) {
        (true, true, Some(challenge)) => answer(
            "meta",
            WebhookOutcome::Verified,
            StatusCode::OK,
            challenge.clone(),
        ),
        _ => answer(
            "meta",
            WebhookOutcome::VerifyRejected,
            StatusCode::FORBIDDEN,
            "verification failed",
        ),
    }
}

/// Event delivery. 200 only after every event is durably on the bus.
#[tracing::instrument(skip_all, fields(app = %app))]
pub async fn receive(
    State(state): State<Arc<IngressState>>,
    Path(app): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Some(app_config) = state.apps.get(&app) else {
        return answer(
            "meta",
            WebhookOutcome::UnknownApp,
            StatusCode::NOT_FOUND,
            "unknown app",
        );
    };
    let body = match body {
        Ok(b) => b,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return answer(
                "meta",
                WebhookOutcome::TooLarge,
                StatusCode::PAYLOAD_TOO_LARGE,
                "body too large",
            );
        }
        Err(rejection) => {
            return answer(
                "meta",
                WebhookOutcome::Malformed,
                StatusCode::BAD_REQUEST,
                rejection.body_text(),
            );
        }
    };
    let signature = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok());
    if !webhook::verify_signature(app_config.app_secret.expose().as_bytes(), &body, signature) {
        return answer(
            "meta",
            WebhookOutcome::BadSignature,
            StatusCode::UNAUTHORIZED,
            "invalid signature",
        );
    }
    let received_at = now_ms();
    let parsed = match webhook::parse(&body, received_at) {
        Ok(p) => p,
        // Signed by the app, so Meta's: another of the app's subscriptions
        // (permissions, user, application) sent to this URL. Refused, Meta
        // would send it again for days; taken, there is nothing to do.
        Err(e @ webhook::ParseError::UnsupportedObject(_)) => {
            tracing::debug!(app = %app_config.id, error = %e, "Webhook of an object the engine does not serve; taken and left");
            return answer(
                "meta",
                WebhookOutcome::Ignored,
                StatusCode::OK,
                "EVENT_RECEIVED",
            );
        }
        Err(e) => {
            return answer(
                "meta",
                WebhookOutcome::Malformed,
                StatusCode::BAD_REQUEST,
                e.to_string(),
            )
        }
    };
    let channel = parsed.object.channel_label();
    for skipped in &parsed.skipped {
        telemetry::item_skipped(channel, skipped.kind, &skipped.detail);
    }
    let unknown = |e: &webhook::ParsedEntry| {
        state
            .integrations
            .by_account(&app_config.id, &e.account_id)
            .is_none()
    };
    // Perhaps connected on another instance a moment ago.
    let looked = !parsed.entries.iter().any(unknown) || state.integrations.look_again().await;
    // An unknown account this instance cannot be sure of (the store did not
    // answer, or holds an integration it cannot use now): refused below, so
    // that Meta delivers it again.
    let doubtful = parsed.entries.iter().any(|e| {
        unknown(e) && (!looked || state.integrations.doubtful(&app_config.id, &e.account_id))
    });
    // A batch of only notifications the engine does not take (WhatsApp's
    // template and account updates, items skipped above) names no account
    // to look for: it is taken (200), or Meta would send it again for days.
    let names_accounts = !parsed.entries.is_empty();
    let (events, known_entries) = to_events(&state, app_config, parsed, received_at);
    if known_entries == 0 && doubtful {
        return answer(
            channel,
            WebhookOutcome::Unavailable,
            StatusCode::SERVICE_UNAVAILABLE,
            "this account's integration cannot be used now",
        );
    }
    if known_entries == 0 && names_accounts {
        // Still unknown after a fresh look at the store: an account of the
        // app nobody connected (a number added to a WhatsApp business
        // account, the Instagram account of a Page connected for Messenger,
        // a deleted integration). Taken and counted: refused, Meta would
        // send it again for days and count it against the app's webhooks.
        return answer(
            channel,
            WebhookOutcome::UnknownAccount,
            StatusCode::OK,
            "EVENT_RECEIVED",
        );
    }
    // Reports on sent messages (echoes, statuses) are taken even when the
    // engine is behind: they are what confirms sends whose answer was lost.
    if state.overloaded() && !events.iter().all(|e| e.kind.is_report()) {
        refused(&state, &events);
        telemetry::webhook_request(channel, WebhookOutcome::Overloaded);
        return super::overloaded();
    }
    // Events of tenants whose store does not answer are not taken: the
    // webhook gets 503 and Meta delivers it again (the others' events in
    // it, taken now, are recognised as handled then).
    let (events, held): (Vec<_>, Vec<_>) = events
        .into_iter()
        .partition(|e| state.health.serves(&e.integration));
    refused(&state, &held);
    if events.is_empty() && !held.is_empty() {
        return answer(
            channel,
            WebhookOutcome::Unavailable,
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily unavailable",
        );
    }
    match state.bus.publish(&events).await {
        Ok(()) => {
            for e in &events {
                telemetry::event_accepted(e.channel, &e.kind);
            }
            // The others' events taken now are recognised when Meta brings
            // the whole batch again.
            if !held.is_empty() || doubtful {
                return answer(
                    channel,
                    WebhookOutcome::Unavailable,
                    StatusCode::SERVICE_UNAVAILABLE,
                    "temporarily unavailable for some accounts",
                );
            }
            answer(
                channel,
                WebhookOutcome::Accepted,
                StatusCode::OK,
                "EVENT_RECEIVED",
            )
        }
        Err(e) => {
            refused(&state, &events);
            tracing::warn!(error = %e, "Webhook not accepted: bus unavailable");
            answer(
                channel,
                WebhookOutcome::Unavailable,
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily unavailable",
            )
        }
    }
}

/// Remembers that reports among `events` (echoes, statuses: what confirms
/// a send whose answer was lost) were turned away: Meta delivers them again
/// later, and a part waiting for one is not resent meanwhile.
fn refused(state: &IngressState, events: &[InboundEvent]) {
    if events.iter().any(|e| e.kind.is_report()) {
        state.refusals.refused(now_ms());
    }
}

/// Ties entries to integrations and builds bus events, in timestamp order
/// per conversation (absorbing out-of-order delivery inside one batch).
/// Entries for accounts no integration has are skipped and counted.
pub fn to_events(
    state: &IngressState,
    app: &AppConfig,
    parsed: ParsedWebhook,
    received_at: u64,
) -> (Vec<InboundEvent>, usize) {
    let mut events = Vec::with_capacity(parsed.event_count());
    let mut known = 0;
    let channel_label = parsed.object.channel_label();
    for entry in parsed.entries {
        let Some(integration) = state.integrations.by_account(&app.id, &entry.account_id) else {
            telemetry::entry_skipped(channel_label);
            continue;
        };
        known += 1;
        for mut e in entry.events {
            if let EventKind::Echo {
                app_id, own_app, ..
            } = &mut e.kind
            {
                *own_app = app.sent_by_this_app(*app_id);
            }
            events.push(InboundEvent {
                conversation: ConversationId::new(&integration.id, &e.customer),
                integration: integration.id.clone(),
                channel: integration.channel,
                customer: e.customer,
                timestamp_ms: crate::clock::event_time(e.timestamp_ms, received_at),
                received_at_ms: received_at,
                customer_name: e.customer_name,
                kind: e.kind,
            });
        }
    }
    // Stable: same-timestamp events keep Meta's order.
    events.sort_by(|a, b| {
        a.conversation
            .cmp(&b.conversation)
            .then(a.timestamp_ms.cmp(&b.timestamp_ms))
    });
    (events, known)
}
