//! Answers from an assistant that takes time (a model): generated in a
//! task of their own while the actor goes on handling events, and handed
//! back as a message. The pending messages are written before the event
//! that brought them finishes, so nothing is lost if the answer never
//! comes: a restarted actor asks again.
//!
//! A customer who writes while an answer is being generated is handled as
//! in a response delay: the request is asked again with every pending
//! message, coalesced into one answer (at most [`MAX_RESTARTS`] times a
//! turn; after that the answer covers the messages it was asked for and
//! the newer ones get the next answer).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt;
use ractor::ActorProcessingErr;

use super::*;
use crate::assistant::{Answer, Assistant, AssistantError, FailurePolicy, HistoryLine, Speaker};
use crate::channels::platform;
use crate::store::{Direction, MessageStatus, Store};

/// Times one turn's request is asked again because the customer wrote.
const MAX_RESTARTS: u32 = 3;

/// The answer being generated.
pub(super) struct Generation {
    number: u64,
    /// The newest pending message (seq) the request was asked with.
    covers: u64,
    restarts: u32,
    task: tokio::task::AbortHandle,
}

impl Generation {
    pub(super) fn abort(&self) {
        self.task.abort();
    }
}

/// Whoever drops a generation no longer wants its answer (asked again, the
/// actor stopped, failed or was ended at shutdown): the request stops too,
/// instead of paying the model twice and holding the store after the
/// actor.
impl Drop for Generation {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A generated answer (or why there is none), back to its actor.
pub struct Answered {
    number: u64,
    covers: u64,
    result: Result<Answer, AssistantError>,
}

/// The conversation's pinned assistant (or, if the config no longer has
/// it, the integration's current one).
pub(super) fn assistant(
    ctx: &EngineContext,
    conv: &Conversation,
) -> Result<Arc<dyn Assistant>, ActorProcessingErr> {
    let pinned = conv.assistant_id();
    if let Some(a) = ctx.assistants.get(pinned) {
        return Ok(a.clone());
    }
    let current = &conv.integration().assistant;
    ctx.assistants
        .get(current)
        .cloned()
        .ok_or_else(|| Failure(format!("assistant {current} is not available")).into())
}

/// Makes sure an answer is being generated for every pending message.
pub(super) async fn ensure(state: &mut ConversationState) -> Result<(), ActorProcessingErr> {
    let Some(conv) = state.conversation.as_ref() else {
        return Ok(());
    };
    let Some(newest) = conv.newest_pending() else {
        stop(state);
        return Ok(());
    };
    let mut restarts = 0;
    if let Some(g) = &state.generation {
        if g.covers >= newest || g.restarts >= MAX_RESTARTS {
            return Ok(());
        }
        // The customer wrote again: asked again with every message.
        g.abort();
        restarts = g.restarts + 1;
    }
    spawn(state, newest, restarts)?;
    let now = now_ms();
    let refresh = typing_refresh(state);
    let shown_recently = state
        .typing_shown_ms
        .is_some_and(|t| now.saturating_sub(t) < refresh.as_millis() as u64);
    if let Some(conv) = state.conversation.as_mut() {
        if conv.record.typing_refresh_ms.is_none() {
            conv.schedule_typing(now, refresh, true);
        }
    }
    if !shown_recently {
        typing(state).await;
    }
    Ok(())
}

/// Stops generating (nothing is waiting for the answer any more).
pub(super) fn stop(state: &mut ConversationState) {
    if let Some(g) = state.generation.take() {
        g.abort();
    }
    state.args.generating.store(false, Ordering::Release);
}

fn spawn(
    state: &mut ConversationState,
    covers: u64,
    restarts: u32,
) -> Result<(), ActorProcessingErr> {
    let ctx = state.args.ctx.clone();
    let Some(conv) = state.conversation.as_ref() else {
        return Ok(());
    };
    let assistant = assistant(&ctx, conv)?;
    let (messages, attachments) = conv.pending_request();
    let first_pending = conv
        .record
        .pending
        .iter()
        .map(|p| p.seq)
        .min()
        .unwrap_or(covers);
    let mut request = ReplyRequest {
        channel: conv.record.channel,
        customer: conv.record.customer.clone(),
        messages,
        attachments,
        history: Vec::new(),
        knowledge: None,
    };
    let store = ctx.store.clone();
    let knowledge = ctx.knowledge.clone();
    let id = state.args.id.clone();
    let myself = state.myself.clone();
    state.generations += 1;
    let number = state.generations;
    let task = tokio::spawn(async move {
        let work = async {
            let turns = assistant.history_turns();
            if turns > 0 {
                request.history = history(&*store, &id, first_pending, turns).await;
            }
            // The turn, with the customer's message before it as context.
            let mut query = request.messages.join("\n");
            if let Some(before) = request
                .history
                .iter()
                .rev()
                .find(|l| l.speaker == Speaker::Customer)
            {
                query = format!("{query}\n{}", before.text);
            }
            let (found, handover) = knowledge.for_turn(assistant.id(), &query).await;
            if handover {
                return Err(AssistantError::NoMatch);
            }
            request.knowledge = found;
            assistant.reply(&request).await
        };
        let result = AssertUnwindSafe(work)
            .catch_unwind()
            .await
            .unwrap_or_else(|_| Err(AssistantError::Unavailable("the assistant panicked".into())));
        // A stopped actor drops it: its successor asks again.
        let _ = myself.send_message(ConversationMsg::Answered(Box::new(Answered {
            number,
            covers,
            result,
        })));
    });
    state.generation = Some(Generation {
        number,
        covers,
        restarts,
        task: task.abort_handle(),
    });
    state.args.generating.store(true, Ordering::Release);
    Ok(())
}

/// The conversation's messages before `before` (a seq), the newest
/// `turns`: what the customer said and what was sent to them.
async fn history(store: &dyn Store, id: &str, before: u64, turns: usize) -> Vec<HistoryLine> {
    let lines = match store.messages(id, turns.saturating_mul(2) + 16).await {
        Ok(lines) => lines,
        Err(e) => {
            tracing::debug!(conversation = %id, error = %e, "History not read; answering without it");
            return Vec::new();
        }
    };
    let mut out: Vec<HistoryLine> = lines
        .into_iter()
        .filter(|m| m.seq < before)
        .filter_map(|m| {
            let speaker = match (m.direction, m.status) {
                (Direction::In, MessageStatus::Received) => Speaker::Customer,
                (
                    Direction::Out,
                    MessageStatus::Sent | MessageStatus::Delivered | MessageStatus::Read,
                ) => Speaker::Business,
                _ => return None,
            };
            let text = m.text.filter(|t| !t.trim().is_empty())?;
            Some(HistoryLine { speaker, text })
        })
        .collect();
    let skip = out.len().saturating_sub(turns);
    out.drain(..skip);
    out
}

/// A generated answer arrived: planned as the reply to the messages it
/// was asked for (or the failure policy applied), then sent.
pub(super) async fn answered(
    state: &mut ConversationState,
    answered: Answered,
) -> Result<(), ActorProcessingErr> {
    if state.generation.as_ref().map(|g| g.number) != Some(answered.number) {
        // Asked again since, or no longer wanted.
        return Ok(());
    }
    state.generation = None;
    state.args.generating.store(false, Ordering::Release);
    let ctx = state.args.ctx.clone();
    let Some(conv) = state.conversation.as_mut() else {
        return Ok(());
    };
    let now = now_ms();
    match answered.result {
        Ok(answer) => {
            conv.plan_reply_upto(&answer, answered.covers, now);
        }
        Err(AssistantError::NoMatch) => {
            if conv.assistant_hands_over(now) {
                tracing::info!(conversation = %state.args.id, "Nothing in the knowledge base answers; a person takes the conversation over");
            }
        }
        Err(e) => {
            let policy = assistant(&ctx, conv)?.on_failure();
            tracing::debug!(conversation = %state.args.id, error = %e, ?policy, "No answer from the assistant");
            match policy {
                FailurePolicy::Fallback(text) => {
                    conv.plan_reply_upto(&Answer::text(text), answered.covers, now);
                }
                FailurePolicy::Handover => {
                    if conv.assistant_hands_over(now) {
                        tracing::info!(conversation = %state.args.id, "The assistant gave no answer; a person takes the conversation over");
                    }
                }
            }
        }
    }
    drive(state).await
}

/// How often typing is refreshed in this conversation.
pub(super) fn typing_refresh(state: &ConversationState) -> std::time::Duration {
    let configured = state.args.ctx.config.engine.typing_refresh;
    state.conversation.as_ref().map_or(configured, |c| {
        platform::typing_refresh(c.record.channel, configured)
    })
}
