//! `GET /api/v1/stream?tenant=&integration=`: server-sent events naming
//! each conversation whose turn was just written on this instance (a new
//! message, a delivery or read mark, a takeover or resume), for the
//! operators' console to reload it. A tenant key hears its own tenant only.
//! A stream that falls more than a few thousand changes behind gets one
//! `resync` event (load everything again) instead of the changes it missed.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use super::AdminError;
use crate::conversation::EngineContext;
use crate::event::ConversationId;

/// Which conversations a stream passes on.
struct Watch {
    ctx: Arc<EngineContext>,
    tenant: Option<String>,
    integration: Option<String>,
}

impl Watch {
    fn sees(&self, conversation: &str) -> bool {
        let integration = ConversationId::integration_of(conversation);
        if self
            .integration
            .as_deref()
            .is_some_and(|i| i != integration)
        {
            return false;
        }
        match &self.tenant {
            None => true,
            Some(t) => self
                .ctx
                .integrations
                .get(integration)
                .is_some_and(|i| &i.tenant == t),
        }
    }
}

pub async fn stream(
    State(ctx): State<Arc<EngineContext>>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, AdminError> {
    let tenant = params.get("tenant").cloned();
    let integration = params.get("integration").cloned();
    // Unknown tenants and integrations are refused as the listing does.
    super::analytics::integrations_of(&ctx, tenant.as_deref(), integration.as_deref())?;
    let changes = ctx.changes.subscribe();
    let stopping = ctx.stopping.subscribe();
    let watch = Watch {
        ctx,
        tenant,
        integration,
    };
    let state = (changes, stopping, watch);
    let events = futures_util::stream::unfold(state, |(mut changes, mut stopping, watch)| async {
        loop {
            let change = tokio::select! {
                change = changes.recv() => change,
                // The engine is stopping: the stream ends (the console
                // reconnects to an instance that runs).
                _ = stopping.wait_for(|stop| *stop) => return None,
            };
            let event = match change {
                Ok(id) if watch.sees(&id) => Event::default().event("conversation").data(
                    json!({"id": &*id, "integration": ConversationId::integration_of(&id)})
                        .to_string(),
                ),
                Ok(_) => continue,
                Err(RecvError::Lagged(missed)) => Event::default()
                    .event("resync")
                    .data(json!({ "missed": missed }).to_string()),
                Err(RecvError::Closed) => return None,
            };
            return Some((Ok(event), (changes, stopping, watch)));
        }
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
