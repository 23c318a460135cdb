//! `GET /api/v1/stream?tenant=&integration=`: server-sent events naming
//! each conversation whose turn was just written on this instance (a new
//! message, a delivery or read mark, a takeover or resume), for the
//! operators' console to reload it. A tenant key hears its own tenant only.
//! A stream that falls more than a few thousand changes behind gets one
//! `resync` event (load everything again) instead of the changes it missed.
//! At most [`MAX_STREAMS`] are open at once, [`MAX_STREAMS_PER_TENANT`] of
//! them a tenant key's; they end when the engine stops (and the listener
//! stops waiting for them after `engine.shutdown_grace`), and a tenant key's
//! within [`KEY_CHECK`] of the key's revocation.

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
/// Streams of one tenant's keys open at once in this process, at most (one
/// tenant cannot take every place).
const MAX_STREAMS_PER_TENANT: usize = 32;
/// How often a tenant key's stream checks that the key still exists.
const KEY_CHECK: Duration = Duration::from_secs(5);
static OPEN: AtomicUsize = AtomicUsize::new(0);
static BY_TENANT: std::sync::Mutex<std::collections::BTreeMap<String, usize>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

/// Counts a stream as open (and its tenant's, for a tenant key) until it is
/// dropped, however it ends.
struct Open {
    tenant: Option<String>,
}

impl Open {
    fn take(tenant: Option<&str>) -> Result<Self, String> {
        OPEN.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < MAX_STREAMS).then_some(n + 1)
        })
        .map_err(|_| format!("{MAX_STREAMS} console streams are open on this instance"))?;
        // From here the place is given back by this value's drop, whatever
        // is returned: one value, one place.
        let mut open = Open { tenant: None };
        if let Some(t) = tenant {
            let mut by = crate::sync::lock(&BY_TENANT);
            let n = by.entry(t.to_string()).or_insert(0);
            if *n >= MAX_STREAMS_PER_TENANT {
                return Err(format!(
                    "{MAX_STREAMS_PER_TENANT} console streams of this tenant are open on this instance"
                ));
            }
            *n += 1;
            open.tenant = Some(t.to_string());
        }
        Ok(open)
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        OPEN.fetch_sub(1, Ordering::AcqRel);
        if let Some(t) = &self.tenant {
            let mut by = crate::sync::lock(&BY_TENANT);
            if let Some(n) = by.get_mut(t) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    by.remove(t);
                }
            }
        }
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
    key: Option<axum::Extension<super::keys::KeyHash>>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, AdminError> {
    let tenant = params.get("tenant").cloned();
    let integration = params.get("integration").cloned();
    // Unknown tenants and integrations are refused as the listing does.
    super::analytics::integrations_of(&ctx, tenant.as_deref(), integration.as_deref())?;
    // A tenant key's request always names its tenant (see keys::scope).
    let key = key.map(|axum::Extension(k)| k.0);
    let open = Open::take(key.as_ref().and(tenant.as_deref()))
        .map_err(|why| AdminError::Unavailable(format!("{why}; try again later")))?;
    let changes = ctx.changes.subscribe();
    let stopping = ctx.stopping.subscribe();
    let mut check = tokio::time::interval_at(tokio::time::Instant::now() + KEY_CHECK, KEY_CHECK);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let watch = Watch {
        _open: open,
        ctx,
        tenant,
        integration,
    };
    let state = (changes, stopping, check, key, watch);
    let events = futures_util::stream::unfold(
        state,
        |(mut changes, mut stopping, mut check, key, watch)| async {
            loop {
                let change = tokio::select! {
                    change = changes.recv() => Some(change),
                    // The engine is stopping: the stream ends (the console
                    // reconnects to an instance that runs).
                    _ = stopping.wait_for(|stop| *stop) => return None,
                    _ = check.tick(), if key.is_some() => None,
                };
                let Some(change) = change else {
                    // A revoked key hears nothing more (a store that does not
                    // answer now ends nothing).
                    let hash = key.as_deref().unwrap_or_default();
                    if matches!(watch.ctx.store.tenant_key(hash).await, Ok(None)) {
                        return None;
                    }
                    continue;
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
                return Some((Ok(event), (changes, stopping, check, key, watch)));
            }
        },
    );
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Places are counted here and in other tests of this process: only
    /// what this test adds is compared.
    #[test]
    fn every_place_taken_is_given_back_once() {
        let before = OPEN.load(Ordering::Acquire);
        for _ in 0..3 {
            let tenant = Open::take(Some("counted-tenant")).unwrap();
            let admin = Open::take(None).unwrap();
            assert!(OPEN.load(Ordering::Acquire) >= before + 2);
            drop(tenant);
            drop(admin);
        }
        assert_eq!(OPEN.load(Ordering::Acquire), before);
        let held: Vec<Open> = (0..MAX_STREAMS_PER_TENANT)
            .map(|_| Open::take(Some("busy-tenant")).unwrap())
            .collect();
        assert!(Open::take(Some("busy-tenant")).is_err(), "a tenant's share");
        assert!(
            Open::take(Some("other-tenant")).is_ok(),
            "others still get one"
        );
        drop(held);
        assert!(Open::take(Some("busy-tenant")).is_ok(), "given back");
        assert_eq!(OPEN.load(Ordering::Acquire), before);
    }
}
