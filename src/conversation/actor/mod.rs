//! The conversation actor: owns one conversation, handles its events in
//! order, and performs the writes and calls its [`Conversation`] policy asks
//! for. Every change is persisted before the event counts as finished and
//! before any reply part is sent, so a crash loses nothing.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use ractor::{ActorProcessingErr, ActorRef};

mod generate;
mod send;
mod task;
use generate::Generation;
use send::{flush_outbox, typing};
pub use task::{Alive, Exit};

use super::commands::CommandOutcome;
use super::supervisor::SupervisorMsg;
use super::timers::TimerHandle;
use super::turn::{CommandResult, Conversation, EventOutcome};
use super::EngineContext;
use crate::assistant::{Answer, FailurePolicy, ReplyRequest};
use crate::bus::Delivery;
use crate::channels::SendErrorKind;
use crate::clock::now_ms;
use crate::event::{Attachment, ConversationId, EventKind};
use crate::fence::{Fence, Fenced};
use crate::store::{OutboxItem, StoreError};
use crate::telemetry::{self, ReplyOutcome};

/// How long a turn's write is retried while the store is unavailable
/// before the actor fails (and is restarted with its events).
const WRITE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

/// How soon a part whose confirmation may still be on the bus is looked at
/// again, while the bus is behind.
const BEHIND_RECHECK_MS: u64 = 1_000;

/// No event is being handled (see [`ConversationArgs::current`]).
pub const NO_EVENT: u64 = u64::MAX;

pub enum ConversationMsg {
    /// An event from the bus.
    Deliver(Box<Delivery>),
    /// A deadline may be due.
    Wake,
    /// An answer generated in the background (see [`generate`]).
    Answered(Box<generate::Answered>),
}

pub struct ConversationArgs {
    pub ctx: Arc<EngineContext>,
    pub id: Arc<str>,
    pub supervisor: ActorRef<SupervisorMsg>,
    pub timers: TimerHandle,
    /// The bus offset being handled, for the supervisor to blame on a crash.
    pub current: Arc<AtomicU64>,
    /// Set while an answer is being generated (the supervisor does not
    /// passivate the actor meanwhile).
    pub generating: Arc<AtomicBool>,
    /// Restarted after a crash: write every turn before sending its reply,
    /// so an event that crashes the write cannot send again on each retry.
    pub cautious: bool,
    /// The partition ownership the conversation is handled under (updated
    /// by every delivery): sends and writes are refused once it is gone.
    pub fence: Fence,
}

/// A conversation actor's address (what the supervisor keeps).
pub type ConversationRef = task::ActorAddr<ConversationMsg>;

/// Starts the actor of `args.id`; its supervisor hears of its end as
/// [`SupervisorMsg::Exited`].
pub fn spawn(args: ConversationArgs, alive: Arc<Alive>) -> ConversationRef {
    let supervisor = args.supervisor.clone();
    task::spawn(
        move |myself| ConversationState::new(args, myself),
        alive,
        move |actor, exit| {
            let _ = supervisor.send_message(SupervisorMsg::Exited { actor, exit });
        },
    )
}

pub struct ConversationState {
    args: ConversationArgs,
    /// Its own address, weak: the actor ends once its supervisor has.
    myself: task::WeakAddr<ConversationMsg>,
    /// The answer being generated, if any.
    generation: Option<Generation>,
    /// Generations started (numbers them, so a stale answer is known).
    generations: u64,
    /// When a typing indicator was last shown.
    typing_shown_ms: Option<u64>,
    /// The bus partition its events come from.
    partition: u32,
    conversation: Option<Conversation>,
    /// The deadline last given to the timer service.
    registered: Option<Option<u64>>,
    /// The outbox part (its seq) whose due resend is held because webhooks
    /// were refused, and since when (see `send.rs`).
    refusal_hold: Option<(u64, u64)>,
}

/// Why a conversation cannot run.
#[derive(Debug, thiserror::Error)]
pub enum ConversationError {
    #[error("conversation id {0:?} is not {{integration}}:{{customer}}")]
    BadId(String),
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Failure(String);

impl ConversationState {
    fn new(args: ConversationArgs, myself: task::WeakAddr<ConversationMsg>) -> Self {
        ConversationState {
            args,
            myself,
            generation: None,
            generations: 0,
            typing_shown_ms: None,
            partition: 0,
            conversation: None,
            registered: None,
            refusal_hold: None,
        }
    }
}

impl task::Behaviour for ConversationState {
    type Msg = ConversationMsg;

    /// Rehydrates from the store (in the actor's own task, so the supervisor
    /// never waits on it) and resumes whatever was pending.
    async fn start(&mut self) -> Result<(), ActorProcessingErr> {
        let state = self;
        let id = state.args.id.clone();
        let (integration_id, customer) =
            ConversationId::split(&id).ok_or_else(|| ConversationError::BadId(id.to_string()))?;
        let now = now_ms();
        let stored = Box::pin(state.args.ctx.store.load_conversation(&id, now)).await?;
        let ctx = &state.args.ctx;
        if !ctx.integrations.contains_key(integration_id) {
            // Perhaps created on another instance a moment ago.
            let read = ctx.integrations.look_again().await;
            if !ctx.integrations.contains_key(integration_id)
                && (!read || ctx.integrations.doubtful_id(integration_id))
            {
                // Not known to be deleted: the events wait (a failure the
                // supervisor retries with backoff, not counted against
                // them) until the stored integrations can be read.
                return Err(StoreError::Unavailable(format!(
                    "integration {integration_id:?} cannot be told here now (the stored integrations are not readable)"
                ))
                .into());
            }
        }
        let Some(integration) = ctx.integrations.get(integration_id) else {
            tracing::warn!(conversation = %id, "Integration no longer configured; its events are skipped");
            return Ok(());
        };
        let mut conversation = Conversation::new(integration, &id, customer, stored, now);
        // Parts stored before a restart may have reached the platform
        // without their mark being written: they wait for their echo or
        // status before they are sent again.
        let confirm_wait = state.args.ctx.config.outbound.confirm_wait;
        let held = conversation.hold_outbox(now + confirm_wait.as_millis() as u64);
        telemetry::outbox_replayed(conversation.record.channel, held);
        state.conversation = Some(conversation);
        Box::pin(drive(state)).await
    }

    /// An answer still being generated is not wanted any more (the next
    /// actor for the conversation asks again).
    fn stopped(&mut self) {
        generate::stop(self);
    }

    async fn handle(&mut self, msg: ConversationMsg) -> Result<(), ActorProcessingErr> {
        let state = self;
        // The work is boxed: an idle actor's task then holds a pointer
        // instead of the largest state machine any message could need
        // (the HTTP send in it is several KB), and idle actors are most of
        // the resident ones.
        match msg {
            ConversationMsg::Deliver(d) => Box::pin(handle_delivery(state, *d)).await,
            ConversationMsg::Wake => {
                // The timer service dropped the deadline it fired.
                state.registered = None;
                Box::pin(drive(state)).await
            }
            ConversationMsg::Answered(a) => Box::pin(generate::answered(state, *a)).await,
        }
    }
}

async fn handle_delivery(
    state: &mut ConversationState,
    d: Delivery,
) -> Result<(), ActorProcessingErr> {
    state
        .args
        .current
        .store(d.position.offset, Ordering::Release);
    state.args.fence = d.fence.clone();
    state.partition = d.position.partition;
    let Some(conv) = state.conversation.as_mut() else {
        finish(state, d);
        return Ok(());
    };
    match state.args.ctx.integrations.get(conv.integration_id()) {
        Some(fresh) => conv.refresh_integration(&fresh),
        None => {
            // Deleted: its events are not handled (nor written back).
            finish(state, d);
            return Box::pin(drive(state)).await;
        }
    }
    let now = now_ms();
    if d.replay {
        // Handled before, perhaps: what it plans waits for confirmation.
        let wait = state.args.ctx.config.outbound.confirm_wait;
        conv.hold_new_parts(Some(now + wait.as_millis() as u64));
    }
    let outcome = conv.apply(&d.event, now);
    let channel = d.event.channel;
    match &outcome {
        EventOutcome::Confirmed => telemetry::send_confirmed(channel),
        EventOutcome::Duplicate => telemetry::duplicate(channel),
        EventOutcome::RateLimited => telemetry::rate_limited(channel),
        EventOutcome::HumanMode => telemetry::reply(channel, ReplyOutcome::HumanMode),
        EventOutcome::WindowClosed => telemetry::reply(channel, ReplyOutcome::WindowClosed),
        _ => {}
    }
    if let (EventOutcome::Command(result), EventKind::Agent { command, .. }) =
        (&outcome, &d.event.kind)
    {
        match result {
            CommandResult::Applied => conv.command_outcome(command, CommandOutcome::Applied),
            CommandResult::Refused(reason) => {
                let reason = reason.clone();
                conv.command_outcome(command, CommandOutcome::Refused { reason })
            }
            // Told when its message is sent (`flush_outbox`).
            CommandResult::Queued => {}
        }
    }
    let starts_turn = matches!(outcome, EventOutcome::Queued { starts_turn: true });
    if starts_turn {
        let refresh = generate::typing_refresh(state);
        if let Some(conv) = state.conversation.as_mut() {
            conv.schedule_typing(now, refresh, false);
        }
    }
    let Some(conv) = state.conversation.as_mut() else {
        finish(state, d);
        return Ok(());
    };
    // With no delay the answer goes into the same write as the message;
    // typing is shown only if the answer takes time to write.
    let answer_now = conv.reply_due(now);
    if answer_now && starts_turn && !instant_assistant(state) {
        typing(state).await;
    }
    if answer_now {
        plan_reply(state).await?;
        // The event stays unfinished on the bus until the reply is sent and
        // written, so the reply needs no write of its own first: a crash
        // before the write replays the event, one after it finds the reply
        // sent. One store write per answered event instead of two. After a
        // crash the turn is written first and the reply sent by `drive`.
        if !state.args.cautious {
            flush_outbox(state).await?;
        }
    }
    persist(state).await?;
    let replay = d.replay;
    finish(state, d);
    if starts_turn && !answer_now {
        typing(state).await;
    }
    let driven = drive(state).await;
    if replay {
        if let Some(conv) = state.conversation.as_mut() {
            conv.hold_new_parts(None);
        }
    }
    driven
}

fn instant_assistant(state: &ConversationState) -> bool {
    state
        .conversation
        .as_ref()
        .is_some_and(|c| generate::assistant(&state.args.ctx, c).is_ok_and(|a| a.is_instant()))
}

fn finish(state: &ConversationState, d: Delivery) {
    state
        .args
        .current
        .store(super::actor::NO_EVENT, Ordering::Release);
    let _ = state
        .args
        .supervisor
        .send_message(SupervisorMsg::Finished(state.args.id.clone(), d.position));
}

/// Does whatever is due: typing refresh, the delayed reply, the outbox.
/// Then registers the next deadline.
async fn drive(state: &mut ConversationState) -> Result<(), ActorProcessingErr> {
    let now = now_ms();
    let Some(conv) = state.conversation.as_mut() else {
        return Ok(());
    };
    match state.args.ctx.integrations.get(conv.integration_id()) {
        // Timer wakes and generated answers use the settings of now (a new
        // token, enabled or not).
        Some(fresh) => conv.refresh_integration(&fresh),
        None => {
            // Deleted: nothing more goes out for it. Not written either (its
            // history may have been purged; kept, it shows the turn as it was).
            if conv.integration_gone(now) {
                tracing::info!(conversation = %state.args.id, "Integration deleted; what was waiting to be sent is not sent");
            }
            generate::stop(state);
            return Ok(());
        }
    }
    if conv.auto_resume(now) {
        tracing::info!(conversation = %state.args.id, "Takeover timer fired; the AI answers again");
    }
    if conv.typing_due(now) {
        let generating = state.generation.is_some();
        let refresh = generate::typing_refresh(state);
        if let Some(conv) = state.conversation.as_mut() {
            conv.schedule_typing(now, refresh, generating);
        }
        typing(state).await;
    }
    if state
        .conversation
        .as_ref()
        .is_some_and(|c| c.reply_due(now))
    {
        plan_reply(state).await?;
    }
    if state
        .conversation
        .as_ref()
        .is_some_and(|c| c.newest_pending().is_none())
    {
        // Taken over, or answered: nothing waits for a generated answer.
        generate::stop(state);
    }
    answer_comments(state).await?;
    persist(state).await?;
    flush_outbox(state).await?;
    if let Some(conv) = state.conversation.as_ref() {
        let next = conv.wake_at(state.generation.is_some());
        if state.registered != Some(next) {
            state.args.timers.set(state.args.id.clone(), next);
            state.registered = Some(next);
        }
    }
    Ok(())
}

/// Writes what the turn changed (if anything), then tells operators'
/// callers what came of their commands.
async fn persist(state: &mut ConversationState) -> Result<(), ActorProcessingErr> {
    write_turn(state).await?;
    if let Some(conv) = state.conversation.as_mut() {
        for (command, outcome) in conv.take_notifications() {
            state.args.ctx.commands.complete(&command, outcome);
        }
    }
    Ok(())
}

async fn write_turn(state: &mut ConversationState) -> Result<(), ActorProcessingErr> {
    let Some(write) = state
        .conversation
        .as_mut()
        .and_then(Conversation::take_write)
    else {
        return Ok(());
    };
    let write = Arc::new(write);
    // A store that is briefly unavailable is waited for here rather than
    // by crashing: a crash replays the event, and a reply already sent
    // (an undelayed answer goes out before its write) would go again.
    let started = std::time::Instant::now();
    let mut pause = std::time::Duration::from_millis(20);
    loop {
        // Never over the state the partition's next owner works on.
        let _owned = state.args.fence.enter_write()?;
        match state.args.ctx.store.commit_turn(write.clone()).await {
            Ok(()) => {
                if write.takeover_changed {
                    state.args.ctx.takeover_changes.notify_one();
                }
                let changes = &state.args.ctx.changes;
                if changes.receiver_count() > 0 {
                    let _ = changes.send(state.args.id.clone());
                }
                return Ok(());
            }
            Err(e) if e.retryable() && started.elapsed() < WRITE_PATIENCE => {
                tracing::debug!(conversation = %state.args.id, error = %e, "Turn not written yet; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(std::time::Duration::from_secs(1));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Plans the reply to the pending messages: at once from an instant
/// assistant, else by starting (or restarting) its generation.
async fn plan_reply(state: &mut ConversationState) -> Result<(), ActorProcessingErr> {
    if !instant_assistant(state) {
        return generate::ensure(state).await;
    }
    let ctx = state.args.ctx.clone();
    let Some(conv) = state.conversation.as_mut() else {
        return Ok(());
    };
    let (messages, attachments) = conv.pending_request();
    match ask(&ctx, conv, messages, attachments).await? {
        Some(answer) => conv.plan_reply(answer, now_ms()),
        // Nothing to answer with (no passage fits and the assistant hands
        // over, or it failed and hands over): a person takes the turn. Left
        // pending, the messages' past reply time would wake the actor to ask
        // again at once, for ever.
        None => {
            if conv.assistant_hands_over(now_ms()) {
                tracing::info!(conversation = %state.args.id, "The assistant has no answer; a person takes the conversation over");
            }
        }
    }
    Ok(())
}

/// Asks the assistant for each waiting comment's public answer (a comment
/// whose assistant fails and hands over is left to a person).
async fn answer_comments(state: &mut ConversationState) -> Result<(), ActorProcessingErr> {
    let ctx = state.args.ctx.clone();
    loop {
        let Some(conv) = state.conversation.as_mut() else {
            return Ok(());
        };
        let Some(comment) = conv.next_comment() else {
            return Ok(());
        };
        let messages = vec![comment.text.clone()];
        match ask(&ctx, conv, messages, Vec::new()).await? {
            Some(answer) => conv.plan_comment_reply(&answer, now_ms()),
            None => conv.skip_comment(),
        }
    }
}

/// The conversation's assistant's answer to `messages`; on its failure the
/// fallback, or `None` when the assistant hands over to a person.
async fn ask(
    ctx: &EngineContext,
    conv: &Conversation,
    messages: Vec<String>,
    attachments: Vec<Attachment>,
) -> Result<Option<Answer>, ActorProcessingErr> {
    let assistant = generate::assistant(ctx, conv)?;
    let (knowledge, handover) = ctx
        .knowledge
        .for_turn(assistant.id(), &messages.join("\n"))
        .await;
    let request = ReplyRequest {
        channel: conv.record.channel,
        customer: conv.record.customer.clone(),
        messages,
        attachments,
        history: Vec::new(),
        knowledge,
    };
    let result = if handover {
        Err(crate::assistant::AssistantError::NoMatch)
    } else {
        assistant.reply(&request).await
    };
    match result {
        Ok(answer) => Ok(Some(answer)),
        Err(crate::assistant::AssistantError::NoMatch) => Ok(None),
        Err(e) => {
            tracing::debug!(conversation = %conv.record.id, error = %e, "No answer from the assistant");
            Ok(match assistant.on_failure() {
                FailurePolicy::Fallback(text) => Some(Answer::text(text)),
                FailurePolicy::Handover => None,
            })
        }
    }
}
