//! Quarantine: a conversation whose actor keeps failing outside any one
//! event (its stored state cannot be read, a timer-driven turn keeps
//! failing) would be restarted forever, and its unfinished events would
//! hold back the bus's commit for every other conversation. After
//! `engine.max_event_attempts` such failures in a row the supervisor takes
//! it out of service: its events go into its quarantine record in the
//! store (with the reason) and are finished on the bus; events that arrive
//! later join them. The operator's resume (`POST .../resume`, which travels
//! on the bus like every command) lifts it: the kept events are published
//! again, in order, and the conversation is handled as usual.

use std::sync::Arc;
use std::time::Instant;

use super::supervisor::SupervisorState;
use crate::bus::Delivery;
use crate::clock::now_ms;
use crate::event::{AgentAction, ConversationId, EventKind, InboundEvent};
use crate::store::{QuarantineRecord, StoreError};
use crate::telemetry;

/// Takes conversation `id` out of service after its last failure
/// (`reason`). When the store cannot keep its record, the events stay in
/// flight and the conversation is tried again later: returns false.
pub(super) async fn start(state: &mut SupervisorState, id: &Arc<str>, reason: &str) -> bool {
    let Some(entry) = state.entries.get_mut(id) else {
        return true;
    };
    let events: Vec<Delivery> = entry.inflight.drain(..).map(|(d, _)| d).collect();
    let failures = entry.outside_failures;
    let fence = entry.fence.clone();
    let kept = keep(state, id, reason, failures, &events, &fence).await;
    let Some(entry) = state.entries.get_mut(id) else {
        return true;
    };
    match kept {
        Ok(()) => {
            entry.quarantined = true;
            state.quarantined_here.insert(id.clone(), Instant::now());
            let Some(entry) = state.entries.get_mut(id) else {
                return true;
            };
            entry.actor = None;
            entry.stopping = false;
            telemetry::quarantined(&id, failures, reason);
            state.args.ctx.alert(
                ConversationId::integration_of(id),
                crate::alerts::AlertKind::Quarantined,
                format!("conversation {id} was quarantined after {failures} failures: {reason}"),
            );
            for d in events {
                state.args.inflight.add_permits(1);
                state.args.ctx.bus.finished(d.position);
            }
            true
        }
        Err(e) => {
            tracing::error!(conversation = %id, error = %e, "Cannot quarantine the conversation; it is tried again");
            entry.inflight = events.into_iter().map(|d| (d, 0)).collect();
            entry.outside_failures = 0;
            false
        }
    }
}

/// Keeps the events a quarantined conversation holds in flight (ones the
/// store could not take when they came). Returns whether none is left.
pub(super) async fn keep_waiting(state: &mut SupervisorState, id: &Arc<str>) -> bool {
    let Some(entry) = state.entries.get_mut(id) else {
        return true;
    };
    if entry.inflight.is_empty() {
        return true;
    }
    let events: Vec<Delivery> = entry.inflight.drain(..).map(|(d, _)| d).collect();
    let fence = entry.fence.clone();
    let kept = keep(state, id, "", 0, &events, &fence).await;
    let Some(entry) = state.entries.get_mut(id) else {
        return true;
    };
    match kept {
        Ok(()) => {
            for d in events {
                state.args.inflight.add_permits(1);
                state.args.ctx.bus.finished(d.position);
            }
            true
        }
        Err(e) => {
            tracing::warn!(conversation = %id, error = %e, "Cannot keep the events of a quarantined conversation yet");
            entry.inflight = events.into_iter().map(|d| (d, 0)).collect();
            false
        }
    }
}

/// What became of a delivery [`intercept`] looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Intercepted {
    /// Not quarantined (any more): delivered as usual.
    No,
    /// Kept with the conversation's other events.
    Kept,
    /// Quarantined, but the store could not take it: it waits in flight
    /// and is tried again ([`keep_waiting`]).
    Waiting,
}

/// Adds `events` to the conversation's quarantine record (creating it).
async fn keep(
    state: &SupervisorState,
    id: &str,
    reason: &str,
    failures: u32,
    events: &[Delivery],
    fence: &crate::fence::Fence,
) -> Result<(), StoreError> {
    let store = &state.args.ctx.store;
    let mut record = store
        .quarantine(id)
        .await?
        .unwrap_or_else(|| QuarantineRecord {
            conversation: id.to_string(),
            reason: String::new(),
            since_ms: now_ms(),
            failures: 0,
            events: Vec::new(),
        });
    if !reason.is_empty() {
        record.reason = reason.to_string();
        record.failures = failures;
    }
    record.events.extend(events.iter().map(|d| d.event.clone()));
    let _owned = fence
        .enter_write()
        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
    store.put_quarantine(record).await
}

/// Handles a delivery for a quarantined conversation here instead of in an
/// actor: kept with the others, or (an operator's resume) lifting the
/// quarantine first.
pub(super) async fn intercept(
    state: &mut SupervisorState,
    id: &Arc<str>,
    d: &Delivery,
) -> Intercepted {
    let resume = matches!(
        d.event.kind,
        EventKind::Agent {
            action: AgentAction::Resume,
            ..
        }
    );
    if resume {
        // The record is looked for even when this instance does not know
        // of it (quarantined before the partition came here).
        if let Err(e) = release(state, id).await {
            tracing::warn!(conversation = %id, error = %e, "Cannot lift the quarantine yet; the resume goes to the conversation as it is");
        }
        return Intercepted::No;
    }
    if !state.entries.get(id).is_some_and(|e| e.quarantined) {
        return Intercepted::No;
    }
    // Resumed on another instance since this one learnt of it: handled.
    if let Ok(None) = state.args.ctx.store.quarantine(id).await {
        forget(state, id);
        return Intercepted::No;
    }
    match keep(state, id, "", 0, std::slice::from_ref(d), &d.fence).await {
        Ok(()) => {
            state.args.inflight.add_permits(1);
            state.args.ctx.bus.finished(d.position);
            Intercepted::Kept
        }
        Err(e) => {
            // Not lost: it waits in flight until the store takes it.
            tracing::warn!(conversation = %id, error = %e, "Cannot keep an event of a quarantined conversation yet");
            if let Some(entry) = state.entries.get_mut(id) {
                entry.inflight.push_back((d.clone(), 0));
            }
            Intercepted::Waiting
        }
    }
}

/// Lifts the quarantine of `id`, if any: its kept events are published
/// again (in order, after the resume), then the record is removed.
async fn release(state: &mut SupervisorState, id: &Arc<str>) -> Result<(), StoreError> {
    let ctx = state.args.ctx.clone();
    if let Some(record) = ctx.store.quarantine(id).await? {
        let events: Vec<InboundEvent> = record.events;
        ctx.bus
            .publish(&events)
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        // A failure here leaves the record: a later resume publishes its
        // events again, and the conversation recognises them as handled.
        ctx.store.remove_quarantine(id).await?;
        tracing::info!(conversation = %id, events = events.len(), "Quarantine lifted; its events are handled again");
    }
    forget(state, id);
    Ok(())
}

/// The conversation is not quarantined (any more): it is handled again,
/// its failures counted afresh.
pub(super) fn forget(state: &mut SupervisorState, id: &str) {
    state.quarantined_here.remove(id);
    if let Some(entry) = state.entries.get_mut(id) {
        entry.quarantined = false;
        entry.outside_failures = 0;
        entry.failures = 0;
    }
}
