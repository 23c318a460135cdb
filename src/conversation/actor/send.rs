//! The send loop: the outbox's parts go out one at a time, in order, each
//! mark written before the next part; an unknown outcome holds the part
//! until its echo or status confirms it.

use ractor::ActorProcessingErr;

use super::*;

/// How many `outbound.confirm_wait`s a due resend may wait at most because
/// webhooks keep being refused.
const REFUSAL_HOLD_WAITS: u64 = 6;

/// Sends stored parts in order, each awaited and marked before the next.
/// A part whose messaging window has closed is not sent; a part that may
/// have reached the platform already waits for its confirmation (or for
/// `outbound.confirm_wait` to pass, then it is sent again).
pub(super) async fn flush_outbox(state: &mut ConversationState) -> Result<(), ActorProcessingErr> {
    let ctx = state.args.ctx.clone();
    loop {
        let now = now_ms();
        let Some(conv) = state.conversation.as_mut() else {
            return Ok(());
        };
        let channel = conv.record.channel;
        let wait = ctx.config.outbound.confirm_wait.as_millis() as u64;
        let resend = conv.resend_due(now);
        if resend && (ctx.bus.behind(state.partition) || ctx.intake.behind(now)) {
            // Its echo or status may be among the events the bus still
            // holds: looked at again shortly, not resent yet.
            conv.part_unconfirmed(now + BEHIND_RECHECK_MS);
            persist(state).await?;
            return Ok(());
        }
        if resend {
            // Webhooks were refused lately (or the engine just started): its
            // echo or status may be one the platform delivers again. Held
            // for that at most `REFUSAL_HOLD_WAITS` waits, so refusals that
            // never stop (a client that never sends its body) cannot hold a
            // reply back for ever.
            let seq = conv.record.outbox.first().map_or(0, |p| p.seq);
            let since = match state.refusal_hold {
                Some((held, since)) if held == seq => since,
                _ => {
                    state.refusal_hold = Some((seq, now));
                    now
                }
            };
            let limit = since.saturating_add(wait.saturating_mul(REFUSAL_HOLD_WAITS));
            let until = ctx.refusals.quiet_until(wait).min(limit);
            if now < until {
                if let Some(conv) = state.conversation.as_mut() {
                    conv.part_unconfirmed(until);
                }
                persist(state).await?;
                return Ok(());
            }
            state.refusal_hold = None;
        }
        let Some(conv) = state.conversation.as_mut() else {
            return Ok(());
        };
        if resend {
            // A public reply has no echo or status: the comment's replies
            // say whether it went (a failed read leaves it to the resend).
            if let Some(id) = comment_reply_found(&ctx, conv).await {
                ctx.alerts.send_succeeded(&conv.integration().id);
                conv.part_sent(id, now);
                telemetry::reply(channel, ReplyOutcome::Sent);
                persist(state).await?;
                continue;
            }
            telemetry::part_resent(&state.args.id, channel);
            conv.resend_unconfirmed(now + wait);
            persist(state).await?;
        } else if state
            .conversation
            .as_ref()
            .is_some_and(|c| c.awaiting_confirmation(now))
        {
            return Ok(());
        }
        let Some(conv) = state.conversation.as_mut() else {
            return Ok(());
        };
        let Some(item) = conv.next_part(now).cloned() else {
            return Ok(());
        };
        let tag = match conv.send_tag(&item, now) {
            Ok(tag) => tag,
            Err(closed) => {
                let reason = closed.to_string();
                conv.part_failed(&reason, now);
                telemetry::reply(channel, ReplyOutcome::WindowClosed);
                report(conv, &item, CommandOutcome::Refused { reason });
                persist(state).await?;
                continue;
            }
        };
        // A sent part's write place, held until its mark is written below.
        let mut _recording = None;
        let result = ctx
            .outbound
            .send(
                conv.integration(),
                &conv.record.customer,
                &item,
                tag,
                crate::channels::About {
                    answering: conv.record.last_inbound_mid.as_deref(),
                    sender: sender_name(conv, &item),
                },
                &state.args.fence,
            )
            .await;
        let now = now_ms();
        let outcome = match result {
            Ok(sent) => {
                _recording = Some(sent.recording.clone());
                ctx.integrations.tokens.accepted(&conv.integration().id);
                ctx.alerts.send_succeeded(&conv.integration().id);
                // From when the request the platform took went out: a
                // watermark at the platform's stamp covers it.
                conv.part_sent(sent.message_id.clone(), sent.at_ms.min(now));
                telemetry::reply(channel, ReplyOutcome::Sent);
                if item.first_of_turn {
                    let elapsed = now
                        .saturating_sub(item.received_at_ms)
                        .saturating_sub(item.delay_ms);
                    telemetry::event_to_reply(channel, elapsed as f64 / 1000.0);
                }
                CommandOutcome::Sent {
                    message_id: sent.message_id,
                }
            }
            // The partition moved on: the next owner sends it.
            Err(e) if e.kind == SendErrorKind::Fenced => return Err(Fenced.into()),
            Err(e) if e.kind == SendErrorKind::Ambiguous => {
                telemetry::send_unconfirmed(&state.args.id, channel, &e);
                conv.part_unconfirmed(now + wait);
                report(conv, &item, CommandOutcome::Unconfirmed);
                persist(state).await?;
                return Ok(());
            }
            Err(e) if e.retryable() => {
                let asked = e.retry_after.unwrap_or_default();
                let later = if e.resting {
                    // Not attempted (the account rests): nothing failed, and
                    // the part goes once the rest is over.
                    tracing::debug!(conversation = %state.args.id, error = %e, "The account rests; the reply waits");
                    asked
                } else {
                    tracing::warn!(conversation = %state.args.id, error = %e, "Platform kept failing; the reply waits in the outbox");
                    ctx.alerts.send_failed(conv.integration(), &e.to_string());
                    // Not before the platform said.
                    ctx.config.outbound.retry_later.max(asked)
                }
                .min(std::time::Duration::from_secs(3600));
                conv.retry_outbox_at(now + later.as_millis() as u64);
                telemetry::reply(channel, ReplyOutcome::RetryLater);
                report(conv, &item, CommandOutcome::Queued);
                persist(state).await?;
                return Ok(());
            }
            Err(e) => {
                let integration = conv.integration();
                if e.kind == SendErrorKind::TokenExpired {
                    let reason = if integration.channel.is_meta() {
                        crate::integrations::health::reason_of_190(e.subcode).to_string()
                    } else {
                        e.message.clone()
                    };
                    ctx.alerts
                        .token_refused(&ctx.integrations.tokens, integration, &reason);
                } else {
                    // A closed window is the customer's silence, not the
                    // integration failing.
                    if e.kind != SendErrorKind::WindowClosed {
                        ctx.alerts.send_failed(integration, &e.to_string());
                    }
                    tracing::warn!(conversation = %state.args.id, error = %e, "Reply refused by the platform");
                }
                conv.part_failed(&e.to_string(), now);
                telemetry::reply(channel, e.kind);
                CommandOutcome::Failed {
                    reason: e.to_string(),
                }
            }
        };
        report(conv, &item, outcome);
        persist(state).await?;
    }
}

/// The id of the first part's public reply, if it is a comment reply the
/// comment's replies show.
async fn comment_reply_found(ctx: &EngineContext, conv: &Conversation) -> Option<String> {
    let part = conv.record.outbox.first()?;
    let comment = part.comment.as_ref()?;
    match ctx
        .outbound
        .find_comment_reply(conv.integration(), comment, &part.text)
        .await
    {
        Ok(found) => found,
        Err(e) => {
            tracing::warn!(conversation = %conv.record.id, error = %e, "The comment's replies could not be read (the token may lack the permission to read comments); the reply is sent again");
            None
        }
    }
}

/// What came of a person's message (its last part carries the command).
fn report(conv: &mut Conversation, item: &OutboxItem, outcome: CommandOutcome) {
    if let Some(command) = &item.command {
        conv.command_outcome(command, outcome);
    }
}

/// Shows the typing indicator (chats only), best effort.
pub(super) async fn typing(state: &mut ConversationState) {
    let Some(conv) = state
        .conversation
        .as_ref()
        .filter(|c| crate::channels::platform::live(c.record.channel))
    else {
        return;
    };
    state.typing_shown_ms = Some(now_ms());
    if let Err(e) = state
        .args
        .ctx
        .outbound
        .typing_on(
            conv.integration(),
            &conv.record.customer,
            conv.record.last_inbound_mid.as_deref(),
        )
        .await
    {
        tracing::debug!(conversation = %state.args.id, error = %e, "Typing indicator not shown");
    }
}

/// The name of the person who wrote `item`, when the takeover gave one
/// (not the generic marks of a keyword, the inbox, the API or the
/// assistant).
fn sender_name<'a>(
    conv: &'a crate::conversation::turn::Conversation,
    item: &OutboxItem,
) -> Option<&'a str> {
    use crate::conversation::turn::{BY_AGENT, BY_ASSISTANT, BY_INBOX, BY_KEYWORD};
    if item.author != crate::store::Author::Agent {
        return None;
    }
    conv.record
        .takeover_by
        .as_deref()
        .filter(|by| ![BY_AGENT, BY_ASSISTANT, BY_INBOX, BY_KEYWORD].contains(by))
}
