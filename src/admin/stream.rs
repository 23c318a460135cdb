//! `GET /api/v1/stream?tenant=&integration=`: server-sent events naming
//! each conversation whose turn was just written on this instance (a new
//! message, a delivery or read mark, a takeover or resume), for the
//! operators' console to reload it. A tenant key hears its own tenant only.
//! A stream that falls more than a few thousand changes behind gets one
//! `resync` event (load everything again) instead of the changes it missed.
//! At most [`MAX_STREAMS`] are open at once; they end when the engine stops
//! (and the listener stops waiting for them after `engine.shutdown_grace`).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
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

/// Streams open at once in this process, at most; more are refused with
/// 503 (each holds a connection and a place in the changes channel).
const MAX_STREAMS: usize = 256;
static OPEN: AtomicUsize = AtomicUsize::new(0);

/// Counts a stream as open until it is dropped, however it ends.
struct Open;

impl Open {
    fn take() -> Option<Self> {
        OPEN.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < MAX_STREAMS).then_some(n + 1)
        })
        .ok()
        .map(|_| Open)
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        OPEN.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Which conversations a stream passes on.
struct Watch {
    _open: Open,
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
    let open = Open::take().ok_or_else(|| {
        AdminError::Unavailable(format!(
            "{MAX_STREAMS} console streams are open on this instance; try again later"
        ))
    })?;
    let changes = ctx.changes.subscribe();
    let stopping = ctx.stopping.subscribe();
    let watch = Watch {
        _open: open,
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
                // How many were missed is not said: they were every
                // tenant's.
                Err(RecvError::Lagged(_)) => Event::default().event("resync").data("{}"),
                Err(RecvError::Closed) => return None,
            };
            return Some((Ok(event), (changes, stopping, watch)));
        }
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
