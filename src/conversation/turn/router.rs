//! Each bus event to its handler.

use super::confirm;
use super::{Conversation, EventOutcome, Inbound};
use crate::event::{EventKind, InboundEvent, ReportedStatus};
use crate::store::{CommentRef, Direction, MessageStatus};

impl Conversation {
    /// Applies one bus event at `now_ms`.
    pub fn apply(&mut self, event: &InboundEvent, now_ms: u64) -> EventOutcome {
        if event.kind == EventKind::Wake {
            // Nothing changes; the actor does what is due.
            return EventOutcome::Ignored;
        }
        // A takeover whose timer fired ends before the event is taken (its
        // wake may still be on its way): the customer writing just after is
        // answered, and a person's message then starts a takeover of its own.
        self.auto_resume(now_ms);
        let idle_since = self.record.last_activity_ms;
        self.record.last_activity_ms = now_ms.max(self.record.last_activity_ms);
        if event.customer_name.is_some() && event.customer_name != self.record.customer_name {
            self.record.customer_name = event.customer_name.clone();
            self.dirty = true;
        }
        match &event.kind {
            EventKind::Message {
                mid,
                text,
                attachments,
                quick_reply,
            } => {
                let text = text
                    .clone()
                    .or_else(|| quick_reply.clone())
                    .unwrap_or_default();
                let inbound = Inbound {
                    key: mid.clone(),
                    text,
                    attachments: attachments.clone(),
                    welcome: false,
                };
                self.customer_message(event, inbound, idle_since, now_ms)
            }
            EventKind::Postback {
                mid,
                title,
                payload,
            } => {
                let key = mid
                    .clone()
                    .unwrap_or_else(|| format!("postback:{}:{payload}", event.timestamp_ms));
                let text = title.clone().unwrap_or_else(|| payload.clone());
                let welcome = self.integration.welcome_message.is_some()
                    && self.integration.get_started_payload.as_deref() == Some(payload.as_str());
                let inbound = Inbound {
                    key,
                    text,
                    attachments: Vec::new(),
                    welcome,
                };
                self.customer_message(event, inbound, idle_since, now_ms)
            }
            EventKind::Echo {
                mid,
                text,
                metadata,
                own_app,
                ..
            } => {
                if let Some(part) = metadata.as_deref().filter(|m| confirm::is_part_id(m)) {
                    return self.own_echo(part, mid, stamped(event.timestamp_ms, now_ms), now_ms);
                }
                if self.dedup.contains(mid, now_ms) {
                    return EventOutcome::Ignored;
                }
                if *own_app {
                    // Sent through this app without a part id: ours.
                    self.remember(mid.clone(), now_ms);
                    return EventOutcome::Ignored;
                }
                self.inbox_echo(event, mid, text.clone(), now_ms)
            }
            EventKind::Delivery { watermark, .. } => {
                self.delivered_up_to(*watermark, event.timestamp_ms)
            }
            EventKind::Read { watermark } => self.read_up_to(*watermark, event.timestamp_ms),
            EventKind::Status {
                mid,
                status,
                error,
                part,
            } => {
                let confirmed = part.as_deref().and_then(|p| {
                    if *status == ReportedStatus::Failed {
                        let reason = error.as_deref().unwrap_or("failed");
                        self.confirm_failed(p, reason, now_ms)
                            .then_some(confirm::Confirmed::Settled { unconfirmed: true })
                    } else {
                        self.confirm_part(p, mid, stamped(event.timestamp_ms, now_ms))
                    }
                });
                let reported =
                    self.status_report(mid, *status, error.as_deref(), event.timestamp_ms);
                match confirmed {
                    Some(confirm::Confirmed::Settled { unconfirmed: true }) => {
                        EventOutcome::Confirmed
                    }
                    _ => reported,
                }
            }
            EventKind::Comment {
                comment_id,
                surface,
                text,
                ..
            } => {
                let comment = CommentRef {
                    comment_id: comment_id.clone(),
                    surface: *surface,
                };
                self.customer_comment(event, comment, text, now_ms)
            }
            EventKind::Reaction { mid, emoji, .. } => {
                if !self.first_time(mid, now_ms) {
                    return EventOutcome::Duplicate;
                }
                let text = match emoji {
                    Some(e) => format!("(reacted {e})"),
                    None => "(removed a reaction)".to_string(),
                };
                self.log(
                    Direction::In,
                    Some(text),
                    event.timestamp_ms,
                    MessageStatus::Received,
                    Some(mid.clone()),
                    Vec::new(),
                );
                EventOutcome::Recorded
            }
            EventKind::Agent { command, action } => self.agent_command(command, action, now_ms),
            EventKind::Wake | EventKind::Mailbox { .. } => EventOutcome::Ignored,
        }
    }
}

/// The platform's stamp of a confirmed part, as its sent time: trusted
/// when recent, else (no stamp, a redelivery long after) the time now.
fn stamped(stamp_ms: u64, now_ms: u64) -> u64 {
    const WITHIN_MS: u64 = 10 * 60 * 1000;
    if stamp_ms <= now_ms && now_ms - stamp_ms <= WITHIN_MS {
        stamp_ms
    } else {
        now_ms
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_missing_or_old_stamp_is_not_taken_as_the_sent_time() {
        let now = 1_800_000_000_000;
        assert_eq!(super::stamped(now - 2_000, now), now - 2_000);
        assert_eq!(super::stamped(0, now), now, "no stamp");
        assert_eq!(super::stamped(now - 3_600_000, now), now, "an hour old");
        assert_eq!(super::stamped(now + 5, now), now, "ahead of this clock");
    }
}
