//! `POST /webhooks/gmail/{integration}`: Google Pub/Sub's push for a
//! Gmail mailbox. The OIDC token is checked first (401 when it does not
//! check out, 503 while Google's keys cannot be fetched), then the
//! envelope; the notification is put on the bus (keyed by the mailbox's own
//! conversation id) and only then answered 200, so Pub/Sub delivers again
//! whatever was not taken. The mail itself is read from the mailbox's
//! history by whichever instance owns that key.

use std::sync::Arc;

mod poll;
mod sync;
pub use poll::start;
pub use sync::{Cursor, Mailboxes};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;

use super::IngressState;
use crate::channels::gmail::push::{self, PushError};
use crate::channels::gmail::MAILBOX;
use crate::clock::now_ms;
use crate::config::ChannelKind;
use crate::event::{ConversationId, EventKind, InboundEvent};
use crate::telemetry::{self, WebhookOutcome};

fn reply(outcome: WebhookOutcome, status: StatusCode, body: &'static str) -> Response {
    super::answer("gmail", outcome, status, body)
}

/// The event that tells the mailbox's owner to read its history.
pub fn mailbox_event(integration: &str, history_id: u64) -> InboundEvent {
    let now = now_ms();
    InboundEvent {
        conversation: ConversationId::new(integration, MAILBOX),
        integration: integration.to_string(),
        channel: ChannelKind::Gmail,
        customer: MAILBOX.to_string(),
        timestamp_ms: now,
        received_at_ms: now,
        customer_name: None,
        kind: EventKind::Mailbox { history_id },
    }
}

#[tracing::instrument(skip_all, fields(integration = %integration))]
pub async fn receive(
    State(state): State<Arc<IngressState>>,
    Path(integration): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let mut config = state.integrations.get(&integration);
    if config.is_none() {
        // Perhaps created on another instance a moment ago.
        state.integrations.look_again().await;
        config = state.integrations.get(&integration);
    }
    let Some(config) = config.filter(|c| c.channel == ChannelKind::Gmail) else {
        return reply(
            WebhookOutcome::UnknownAccount,
            StatusCode::NOT_FOUND,
            "no Gmail integration with this id",
        );
    };
    let body = match body {
        Ok(b) => b,
        Err(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return reply(
                WebhookOutcome::TooLarge,
                StatusCode::PAYLOAD_TOO_LARGE,
                "body too large",
            )
        }
        Err(_) => {
            return reply(
                WebhookOutcome::Malformed,
                StatusCode::BAD_REQUEST,
                "unreadable body",
            )
        }
    };
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let checked = match state.push.verify(authorization, &config).await {
        Ok(()) => push::notification(&body, &config),
        Err(e) => Err(e),
    };
    let notification = match checked {
        Ok(n) => n,
        Err(e) => return refused(&e),
    };
    if state.overloaded() {
        telemetry::webhook_request("gmail", WebhookOutcome::Overloaded);
        return super::overloaded();
    }
    if !state.health.serves(&config.id) {
        return reply(
            WebhookOutcome::Unavailable,
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily unavailable",
        );
    }
    let event = mailbox_event(&config.id, notification.history_id);
    match state.bus.publish(std::slice::from_ref(&event)).await {
        Ok(()) => {
            telemetry::event_accepted(event.channel, &event.kind);
            reply(WebhookOutcome::Accepted, StatusCode::OK, "ok")
        }
        Err(e) => {
            tracing::warn!(error = %e, "Gmail push not accepted: bus unavailable");
            reply(
                WebhookOutcome::Unavailable,
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily unavailable",
            )
        }
    }
}

/// The answer to a push that does not check out, counted; the reason is
/// logged at debug (never the token).
fn refused(e: &PushError) -> Response {
    tracing::debug!(reason = e.label(), error = %e, "Gmail push refused");
    match e {
        PushError::KeysUnavailable(_) => {
            tracing::warn!(error = %e, "Gmail push not checked: Google's keys unavailable");
            reply(
                WebhookOutcome::Unavailable,
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily unavailable",
            )
        }
        // Pub/Sub would deliver it again and again: taken, not acted on.
        PushError::Mailbox => reply(WebhookOutcome::Ignored, StatusCode::OK, "not this mailbox"),
        PushError::Envelope(_) => reply(
            WebhookOutcome::Malformed,
            StatusCode::BAD_REQUEST,
            "not a Gmail notification",
        ),
        _ => reply(
            WebhookOutcome::Unauthorized,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
    }
}
