//! The conversation supervisor: routes deliveries and wakes to conversation
//! actors, spawning (and so rehydrating) them on demand; restarts a failed
//! actor with backoff and hands it its unfinished events again; moves an
//! event that crashed its actor `max_event_attempts` times to the dead
//! letters (the conversation goes on); passivates idle actors.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::sync::Semaphore;

mod failures;
mod mailbox;
use failures::{on_failed, on_fenced, on_terminated, respawn, schedule_respawn};

use super::actor::{
    self as conversation_actor, Alive, ConversationArgs, ConversationMsg, Exit, NO_EVENT,
};
pub(super) use super::entry::Entry;
use super::entry::{AfterStop, WakeAction};
use super::timers::{TimerHandle, WakeSink};
use super::{quarantine, EngineContext};
use crate::assistant::AssistantError;
use crate::bus::{Delivery, Position};
use crate::clock::now_ms;
use crate::event::ConversationId;
use crate::fence::Fenced;
use crate::store::{DeadLetter, StoreError};
use crate::telemetry;

pub enum SupervisorMsg {
    Deliver(Box<Delivery>),
    Wake(Arc<str>),
    Finished(Arc<str>, Position),
    Respawn(Arc<str>),
    Sweep,
    /// These bus partitions now belong to another instance: stop the actors
    /// of their conversations.
    Revoked(Vec<u32>),
    /// Events handed out and not finished, and resident actors.
    Stats(RpcReplyPort<(usize, usize)>),
    /// These conversations, and no others, were quarantined in the store
    /// when it was read (at that instant).
    Quarantined(Vec<String>, Instant),
    /// A Gmail mailbox's read (see `mailbox.rs`) has ended.
    MailboxRead(Box<mailbox::ReadEnded>),
    /// A conversation's actor (numbered `actor`) has ended.
    Exited {
        actor: u64,
        exit: Exit,
    },
}

pub struct SupervisorArgs {
    pub ctx: Arc<EngineContext>,
    pub timers: TimerHandle,
    /// One permit per event the consumer may still take; returned when an
    /// event finishes.
    pub inflight: Arc<Semaphore>,
}

pub struct SupervisorState {
    pub(super) args: SupervisorArgs,
    pub(super) entries: HashMap<Arc<str>, Entry>,
    /// The conversation of each running actor, by its number.
    by_actor: HashMap<u64, Arc<str>>,
    alive: Arc<Alive>,
    /// Gmail mailboxes being read now.
    mailbox_reads: HashMap<Arc<str>, mailbox::Reading>,
    /// When each conversation was quarantined here (until resumed): a
    /// list of quarantines read before that does not lift it.
    pub(super) quarantined_here: HashMap<Arc<str>, Instant>,
}

pub struct ConversationSupervisor;

impl Actor for ConversationSupervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: SupervisorArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let every = (args.ctx.config.engine.passivate_after / 4).max(Duration::from_millis(250));
        myself.send_interval(every, || SupervisorMsg::Sweep);
        Ok(SupervisorState {
            args,
            entries: HashMap::new(),
            by_actor: HashMap::new(),
            alive: Arc::default(),
            mailbox_reads: Default::default(),
            quarantined_here: HashMap::new(),
        })
    }

    /// The conversation actors stop with their supervisor, and the engine's
    /// shutdown returns only once they have (they hold the store).
    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        for entry in state.entries.values() {
            if let Some(actor) = &entry.actor {
                actor.stop();
            }
        }
        // A mailbox read left unfinished is done again at the next start.
        for reading in state.mailbox_reads.values() {
            reading.task.abort();
        }
        if !state.alive.wait_none(Duration::from_secs(5)).await {
            // What they were doing is not finished: its events are not
            // committed and are handled again at the next start.
            tracing::warn!("Conversation actors still running 5 s after the stop; ending them");
            for entry in state.entries.values() {
                if let Some(actor) = &entry.actor {
                    actor.abort();
                }
            }
            if !state.alive.wait_none(Duration::from_secs(1)).await {
                tracing::warn!("Conversation actors still running after being ended");
            }
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SupervisorMsg::Deliver(d) => deliver(&myself, state, *d).await,
            SupervisorMsg::Wake(id) => wake(&myself, state, id).await,
            SupervisorMsg::Finished(id, pos) => finished(state, &id, pos),
            SupervisorMsg::Respawn(id) => respawn(&myself, state, id).await,
            SupervisorMsg::Sweep => sweep(state),
            SupervisorMsg::Revoked(partitions) => revoked(state, &partitions),
            SupervisorMsg::Quarantined(ids, read_at) => mark_quarantined(state, ids, read_at),
            SupervisorMsg::Stats(reply) => {
                let inflight = state.entries.values().map(|e| e.inflight.len()).sum();
                let _ = reply.send((inflight, state.by_actor.len()));
            }
            SupervisorMsg::Exited { actor, exit } => exited(&myself, state, actor, exit).await,
            SupervisorMsg::MailboxRead(ended) => mailbox::read_done(&myself, state, *ended),
        }
        Ok(())
    }
}

async fn exited(
    myself: &ActorRef<SupervisorMsg>,
    state: &mut SupervisorState,
    actor: u64,
    exit: Exit,
) {
    match exit {
        Exit::Failed(err) if err.downcast_ref::<Fenced>().is_some() => {
            on_fenced(myself, state, actor).await;
        }
        Exit::Failed(err) => {
            // A store or assistant that is unavailable for a while is not
            // the event's fault: it is retried without counting towards the
            // dead letters.
            let transient = err
                .downcast_ref::<StoreError>()
                .is_some_and(StoreError::retryable)
                || err
                    .downcast_ref::<AssistantError>()
                    .is_some_and(AssistantError::retryable);
            on_failed(myself, state, actor, err.to_string(), transient).await;
        }
        Exit::Stopped => on_terminated(myself, state, actor).await,
    }
    telemetry::conversations_resident(state.by_actor.len());
}

async fn deliver(myself: &ActorRef<SupervisorMsg>, state: &mut SupervisorState, d: Delivery) {
    if !d.fence.is_current() {
        // Fetched before its partition moved: the new owner handles it.
        state.args.inflight.add_permits(1);
        return;
    }
    let id: Arc<str> = Arc::from(d.event.conversation.as_str());
    if let crate::event::EventKind::Mailbox { .. } = d.event.kind {
        mailbox::deliver(myself, state, id, d);
        return;
    }
    match quarantine::intercept(state, &id, &d).await {
        quarantine::Intercepted::No => {}
        quarantine::Intercepted::Kept => return,
        quarantine::Intercepted::Waiting => {
            if let Some(entry) = state.entries.get_mut(&id) {
                if !entry.respawn_scheduled {
                    schedule_respawn(myself, entry, &id, Duration::from_secs(1));
                }
            }
            return;
        }
    }
    let entry = state.entries.entry(id.clone()).or_insert_with(Entry::new);
    entry.last_used = Instant::now();
    entry.partition = Some(d.position.partition);
    entry.fence = d.fence.clone();
    entry.inflight.push_back((d.clone(), 0));
    match &entry.actor {
        Some(actor) if !entry.stopping => {
            let _ = actor.send_message(ConversationMsg::Deliver(Box::new(d)));
        }
        Some(_) => {} // handed over when the stopping actor is gone
        None if entry.respawn_scheduled => {}
        None => spawn(myself, state, id).await,
    }
}

async fn wake(myself: &ActorRef<SupervisorMsg>, state: &mut SupervisorState, id: Arc<str>) {
    let partitioned = state.args.ctx.bus.partitioned();
    let entry = state.entries.entry(id.clone()).or_insert_with(Entry::new);
    entry.last_used = Instant::now();
    match entry.on_wake(entry.actor.is_some(), partitioned) {
        WakeAction::Ignore | WakeAction::Later => {}
        WakeAction::Tell => {
            if let Some(actor) = &entry.actor {
                let _ = actor.send_message(ConversationMsg::Wake);
            }
        }
        WakeAction::HandToOwner => {
            if entry.inflight.is_empty() {
                state.entries.remove(&id);
            }
            hand_to_owner(&state.args.ctx, &id);
        }
        WakeAction::Spawn => spawn(myself, state, id).await,
    }
}

/// Publishes a wake for conversation `id` on the bus, keyed like its
/// events, so whichever instance owns it does what is due.
pub(super) fn hand_to_owner(ctx: &Arc<EngineContext>, id: &Arc<str>) {
    let Some((integration, customer)) = ConversationId::split(id) else {
        return;
    };
    let Some(config) = ctx.integrations.get(integration) else {
        return;
    };
    let now = now_ms();
    let event = crate::event::InboundEvent {
        conversation: ConversationId::from(&**id),
        integration: integration.to_string(),
        channel: config.channel,
        customer: customer.to_string(),
        timestamp_ms: now,
        received_at_ms: now,
        customer_name: None,
        kind: crate::event::EventKind::Wake,
    };
    let bus = ctx.bus.clone();
    let id = id.clone();
    tokio::spawn(async move {
        // Retried until the bus takes it: a due reply or auto-resume must
        // not wait for the customer's next message.
        let mut pause = Duration::from_millis(100);
        let mut warned = false;
        while let Err(e) = bus.publish(std::slice::from_ref(&event)).await {
            if !warned {
                tracing::warn!(conversation = %id, error = %e, "Cannot hand a due timer to the conversation's owner yet; retrying");
                warned = true;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(5));
        }
    });
}

fn finished(state: &mut SupervisorState, id: &Arc<str>, pos: Position) {
    if let Some(entry) = state.entries.get_mut(id) {
        let before = entry.inflight.len();
        entry.inflight.retain(|(d, _)| d.position != pos);
        if entry.inflight.is_empty() {
            // Most conversations are idle: do not keep room for events.
            entry.inflight = VecDeque::new();
        }
        let removed = before - entry.inflight.len();
        if removed > 0 {
            entry.failures = 0;
            entry.outside_failures = 0;
            // Each delivery held a permit (a stale one of an earlier
            // ownership may share the position with its redelivery).
            state.args.inflight.add_permits(removed);
            state.args.ctx.bus.finished(pos);
        }
    }
}

pub(super) async fn spawn(
    myself: &ActorRef<SupervisorMsg>,
    state: &mut SupervisorState,
    id: Arc<str>,
) {
    let Some(entry) = state.entries.get_mut(&id) else {
        return;
    };
    entry.current.store(NO_EVENT, Ordering::Release);
    // A fresh actor generates nothing yet (one that failed mid-answer did
    // not say it stopped; left set, the conversation was never passivated).
    entry.generating.store(false, Ordering::Release);
    // A fresh actor does whatever is due as it starts.
    entry.wake_pending = false;
    let args = ConversationArgs {
        ctx: state.args.ctx.clone(),
        id: id.clone(),
        supervisor: myself.clone(),
        timers: state.args.timers.clone(),
        current: entry.current.clone(),
        generating: entry.generating.clone(),
        cautious: entry.failures > 0,
        fence: entry.fence.clone(),
    };
    let actor = conversation_actor::spawn(args, state.alive.clone());
    for (d, _) in &entry.inflight {
        let mut d = d.clone();
        // The event its previous actor failed on may have had its reply
        // sent; the ones after it were not started.
        d.replay |= entry.interrupted == Some(d.position.offset);
        let _ = actor.send_message(ConversationMsg::Deliver(Box::new(d)));
    }
    state.by_actor.insert(actor.id(), id);
    entry.actor = Some(actor);
    telemetry::conversations_resident(state.by_actor.len());
}

/// Stops the actors of conversations on revoked partitions; their state
/// is in the store for the instance that owns the partitions now, and a
/// stale copy must not stay here if the partitions come back.
fn revoked(state: &mut SupervisorState, partitions: &[u32]) {
    let mut stopped = 0;
    for entry in state.entries.values_mut() {
        let on_revoked = entry.partition.is_some_and(|p| partitions.contains(&p));
        if !on_revoked {
            continue;
        }
        // Unfinished events of a revoked partition are redelivered to its
        // new owner; they are not handled here any more (even when the
        // partition is already back here: its events come again).
        let before = entry.inflight.len();
        entry.inflight.retain(|(d, _)| d.fence.is_current());
        state
            .args
            .inflight
            .add_permits(before - entry.inflight.len());
        // Already handed back to this instance (a new epoch): keep it.
        if entry.fence.is_current() {
            continue;
        }
        // Its next owner knows of a quarantine from the store.
        entry.quarantined = false;
        match &entry.actor {
            Some(actor) if !entry.stopping => {
                entry.stopping = true;
                actor.stop();
                stopped += 1;
            }
            _ => {}
        }
    }
    // A quarantine of a partition still here is remembered (as by `sweep`).
    state.entries.retain(|_, e| {
        e.actor.is_some() || !e.inflight.is_empty() || e.respawn_scheduled || e.quarantined
    });
    tracing::info!(partitions = ?partitions, actors = stopped, "Actors of revoked partitions stopped");
}

/// Conversations the store keeps quarantined (at start, and for
/// partitions that come to this instance): their events are kept, not
/// handled, until resumed. One marked here and missing from the list was
/// resumed (perhaps on another instance): it is handled again.
fn mark_quarantined(state: &mut SupervisorState, ids: Vec<String>, read_at: Instant) {
    let listed: std::collections::HashSet<&str> = ids.iter().map(String::as_str).collect();
    let here = &state.quarantined_here;
    let lifted: Vec<Arc<str>> = state
        .entries
        .iter()
        // One quarantined here after the list was read is not on it.
        .filter(|(id, e)| {
            e.quarantined
                && !listed.contains(id.as_ref())
                && here.get(*id).is_none_or(|at| *at < read_at)
        })
        .map(|(id, _)| id.clone())
        .collect();
    for id in lifted {
        quarantine::forget(state, &id);
    }
    for id in ids {
        let entry = state
            .entries
            .entry(Arc::from(id.as_str()))
            .or_insert_with(Entry::new);
        entry.quarantined = true;
    }
}

fn sweep(state: &mut SupervisorState) {
    let idle = state.args.ctx.config.engine.passivate_after;
    let now = Instant::now();
    for entry in state.entries.values_mut() {
        if entry.stopping
            || !entry.inflight.is_empty()
            || entry.generating.load(Ordering::Acquire)
            || now.duration_since(entry.last_used) < idle
        {
            continue;
        }
        if let Some(actor) = &entry.actor {
            entry.stopping = true;
            actor.stop();
        }
    }
    // A quarantined conversation is remembered here: its events are kept.
    state.entries.retain(|_, e| {
        e.actor.is_some() || !e.inflight.is_empty() || e.respawn_scheduled || e.quarantined
    });
}

/// Forwards timer wakes to the supervisor.
pub struct SupervisorWake(pub ActorRef<SupervisorMsg>);

impl WakeSink for SupervisorWake {
    fn wake(&self, conversation: Arc<str>) {
        let _ = self.0.send_message(SupervisorMsg::Wake(conversation));
    }
}
