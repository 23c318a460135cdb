//! A failed, stopped or fenced actor: restarts with backoff, events that
//! keep crashing to the dead letters, a conversation that keeps failing
//! outside any one event to quarantine.

use super::*;

pub(super) fn schedule_respawn(
    myself: &ActorRef<SupervisorMsg>,
    entry: &mut Entry,
    id: &Arc<str>,
    max: Duration,
) {
    let backoff = Duration::from_millis(50)
        .saturating_mul(1u32 << entry.failures.min(16))
        .min(max);
    entry.respawn_scheduled = true;
    let id = id.clone();
    myself.send_after(backoff, move || SupervisorMsg::Respawn(id));
}

pub(super) async fn respawn(
    myself: &ActorRef<SupervisorMsg>,
    state: &mut SupervisorState,
    id: Arc<str>,
) {
    let Some(entry) = state.entries.get_mut(&id) else {
        return;
    };
    entry.respawn_scheduled = false;
    if entry.quarantined {
        // Events it could not keep yet: tried again.
        if !quarantine::keep_waiting(state, &id).await {
            if let Some(entry) = state.entries.get_mut(&id) {
                schedule_respawn(myself, entry, &id, Duration::from_secs(1));
            }
        }
    } else if entry.actor.is_none() {
        spawn(myself, state, id).await;
    }
}

/// The conversation of an actor that is gone, its entry no longer counted
/// as running (`None` when nothing is known of it).
fn stopped(state: &mut SupervisorState, actor: u64) -> Option<Arc<str>> {
    let id = state.by_actor.remove(&actor)?;
    let entry = state.entries.get_mut(&id)?;
    entry.actor = None;
    entry.stopping = false;
    Some(id)
}

pub(super) async fn on_failed(
    myself: &ActorRef<SupervisorMsg>,
    state: &mut SupervisorState,
    actor: u64,
    error: String,
    transient: bool,
) {
    let max_attempts = state.args.ctx.config.engine.max_event_attempts;
    let backoff_max = state.args.ctx.config.engine.restart_backoff_max;
    let Some(id) = stopped(state, actor) else {
        return;
    };
    let Some(entry) = state.entries.get_mut(&id) else {
        return;
    };
    entry.failures += 1;
    let blamed = entry.current.swap(NO_EVENT, Ordering::AcqRel);
    entry.interrupted = (blamed != NO_EVENT).then_some(blamed);
    telemetry::actor_failed(&id, &error, entry.failures);
    let mut poison = None;
    let blamed_event = entry
        .inflight
        .iter()
        .position(|(d, _)| d.position.offset == blamed);
    match blamed_event {
        _ if transient => {}
        Some(idx) => {
            entry.inflight[idx].1 += 1;
            if entry.inflight[idx].1 >= max_attempts {
                poison = entry.inflight.remove(idx);
            }
        }
        None => {
            entry.outside_failures += 1;
            if entry.outside_failures >= max_attempts && quarantine::start(state, &id, &error).await
            {
                return;
            }
        }
    }
    if let Some((d, _)) = poison {
        let letter = DeadLetter {
            conversation: id.to_string(),
            position: d.position.to_string(),
            event: serde_json::to_value(&d.event).unwrap_or_default(),
            error: error.clone(),
            at_ms: now_ms(),
        };
        match state.args.ctx.store.dead_letter(letter).await {
            Ok(()) => {
                telemetry::dead_lettered(&id, &d.position);
                state.args.ctx.alert(
                    ConversationId::integration_of(&id),
                    crate::alerts::AlertKind::DeadLetters,
                    format!("an event of conversation {id} went to the dead letters: {error}"),
                );
                state.args.inflight.add_permits(1);
                state.args.ctx.bus.finished(d.position);
            }
            Err(e) => {
                tracing::error!(conversation = %id, error = %e, "Cannot store dead letter; the event stays in flight");
                if let Some(entry) = state.entries.get_mut(&id) {
                    entry.inflight.push_front((d, 0));
                }
            }
        }
    }
    if let Some(entry) = state.entries.get_mut(&id) {
        schedule_respawn(myself, entry, &id, backoff_max);
    }
}

pub(super) async fn on_terminated(
    myself: &ActorRef<SupervisorMsg>,
    state: &mut SupervisorState,
    actor: u64,
) {
    let Some(id) = stopped(state, actor) else {
        return;
    };
    let Some(entry) = state.entries.get_mut(&id) else {
        return;
    };
    match entry.after_stop(state.args.ctx.bus.partitioned()) {
        AfterStop::Respawn => spawn(myself, state, id).await,
        AfterStop::HandToOwner => {
            state.entries.remove(&id);
            hand_to_owner(&state.args.ctx, &id);
        }
        AfterStop::Forget => {
            state.entries.remove(&id);
        }
    }
}

/// The actor was refused a send or write: its partition moved. Events
/// fetched under the old ownership are dropped (the new owner has them);
/// any fetched since get a fresh actor.
pub(super) async fn on_fenced(
    myself: &ActorRef<SupervisorMsg>,
    state: &mut SupervisorState,
    actor: u64,
) {
    let Some(id) = stopped(state, actor) else {
        return;
    };
    let Some(entry) = state.entries.get_mut(&id) else {
        return;
    };
    let before = entry.inflight.len();
    entry.inflight.retain(|(d, _)| d.fence.is_current());
    state
        .args
        .inflight
        .add_permits(before - entry.inflight.len());
    tracing::info!(conversation = %id, "Conversation stopped: its partition moved to another instance");
    if entry.inflight.is_empty() {
        let wake = entry.wake_pending;
        state.entries.remove(&id);
        if wake {
            hand_to_owner(&state.args.ctx, &id);
        }
    } else {
        spawn(myself, state, id).await;
    }
}
