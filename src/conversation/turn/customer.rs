//! A customer's message, postback or comment: the duplicate window, the
//! rate limit, the messaging window, coalescing into the next turn, the
//! away message of a disabled integration, and expiry after inactivity.

use super::super::window;
use super::{take_first, Conversation, EventOutcome, Inbound, Planned, BY_KEYWORD};
use crate::assistant::Answer;
use crate::channels::choices;
use crate::event::InboundEvent;
use crate::store::{CommentRef, Direction, MessageStatus, Mode, PendingComment, PendingInbound};

/// How far ahead of its arrival a message's own time is believed for the
/// messaging window.
const WINDOW_CLOCK_SKEW_MS: u64 = 60_000;

impl Conversation {
    /// A public comment: answered by the assistant under the comment, no
    /// delay and no messaging window; a person's takeover silences it too.
    pub(in crate::conversation) fn customer_comment(
        &mut self,
        event: &InboundEvent,
        comment: CommentRef,
        text: &str,
        now_ms: u64,
    ) -> EventOutcome {
        if !self.first_time(&comment.comment_id, now_ms) {
            return EventOutcome::Duplicate;
        }
        self.count(event.timestamp_ms, |c| c.inbound += 1);
        let status = if self.limiter.check().is_err() {
            MessageStatus::RateLimited
        } else {
            MessageStatus::Received
        };
        let seq = self.log(
            Direction::In,
            Some(text.to_string()),
            event.timestamp_ms,
            status,
            Some(comment.comment_id.clone()),
            Vec::new(),
        );
        if status == MessageStatus::RateLimited {
            return EventOutcome::RateLimited;
        }
        if !self.integration.answers(&self.record.customer) {
            // A commenter not on the integration's allowlist: kept, not
            // answered (and not handed over), as in messages.
            return EventOutcome::Recorded;
        }
        if self.escalates(text) {
            self.take_over(BY_KEYWORD, self.default_resume_at(now_ms), now_ms);
        }
        if self.record.mode == Mode::Human {
            return EventOutcome::HumanMode;
        }
        if !self.integration.enabled {
            return EventOutcome::Recorded;
        }
        self.record.comments.push(PendingComment {
            seq,
            comment,
            text: text.to_string(),
            received_at_ms: event.received_at_ms,
        });
        EventOutcome::Planned
    }

    /// The next comment waiting for the assistant's answer.
    pub fn next_comment(&self) -> Option<&PendingComment> {
        self.record.comments.first()
    }

    /// The first waiting comment gets no answer from the assistant (it
    /// handed over): left to a person.
    pub fn skip_comment(&mut self) {
        if !self.record.comments.is_empty() {
            take_first(&mut self.record.comments);
            self.dirty = true;
        }
    }

    /// The assistant's answer to the first waiting comment, as public
    /// replies under it.
    /// Its choices become numbered lines (a comment has no quick replies).
    pub fn plan_comment_reply(&mut self, answer: &Answer, now_ms: u64) {
        if self.record.comments.is_empty() {
            return;
        }
        let pending = take_first(&mut self.record.comments);
        let first = self.record.outbox.len();
        let planned = Planned::ai(&pending.comment.comment_id, pending.received_at_ms);
        let text = choices::numbered(&answer.text, &answer.choices);
        self.plan_parts(&text, planned, now_ms);
        for item in &mut self.record.outbox[first..] {
            item.comment = Some(pending.comment.clone());
        }
    }

    pub(in crate::conversation) fn customer_message(
        &mut self,
        event: &InboundEvent,
        inbound: Inbound,
        idle_since: u64,
        now_ms: u64,
    ) -> EventOutcome {
        if !self.first_time(&inbound.key, now_ms) {
            return EventOutcome::Duplicate;
        }
        if self
            .record
            .last_inbound_ms
            .is_none_or(|t| event.timestamp_ms >= t)
        {
            // The newest message is the one a typing indicator names.
            self.record.last_inbound_mid = Some(inbound.key.clone());
        }
        if self.record.message_count > 0
            && now_ms.saturating_sub(idle_since) >= self.integration.expire_after.as_millis() as u64
        {
            self.expire();
        }
        // The platform opened the window when it received the message: a
        // stamp ahead of the arrival (a clock off by hours, believed up to a
        // day for ordering) must not hold it open past the platform's.
        let opened = event
            .timestamp_ms
            .min(event.received_at_ms.saturating_add(WINDOW_CLOCK_SKEW_MS));
        let last_inbound = self.record.last_inbound_ms;
        if last_inbound.is_none_or(|t| opened >= t.saturating_add(window::STANDARD_MS)) {
            self.record.window_opened_ms = Some(opened);
        }
        self.record.last_inbound_ms = Some(last_inbound.unwrap_or(0).max(opened));
        self.count(event.timestamp_ms, |c| c.inbound += 1);
        let Inbound {
            key,
            text,
            attachments,
            welcome,
        } = inbound;
        if self.limiter.check().is_err() {
            self.log(
                Direction::In,
                Some(text),
                event.timestamp_ms,
                MessageStatus::RateLimited,
                Some(key),
                attachments,
            );
            return EventOutcome::RateLimited;
        }
        let seq = self.log(
            Direction::In,
            Some(text.clone()),
            event.timestamp_ms,
            MessageStatus::Received,
            Some(key.clone()),
            attachments.clone(),
        );
        if !self.integration.answers(&self.record.customer) {
            // Not on the integration's allowlist: kept, not answered.
            return EventOutcome::Recorded;
        }
        if self.escalates(&text) {
            self.take_over(BY_KEYWORD, self.default_resume_at(now_ms), now_ms);
        }
        if self.record.mode == Mode::Human {
            return EventOutcome::HumanMode;
        }
        if window::ai_may_answer(event.channel, opened, now_ms).is_err() {
            return EventOutcome::WindowClosed;
        }
        if !self.integration.enabled {
            // A disabled integration keeps the conversation; the away
            // message goes out once per messaging window.
            return self.away_message(&key, now_ms);
        }
        if welcome {
            if let Some(text) = self.integration.welcome_message.clone() {
                let planned = Planned::ai(&key, event.received_at_ms);
                self.plan_parts(&text, planned, now_ms);
                return EventOutcome::Planned;
            }
        }
        let starts_turn = self.record.pending.is_empty() && self.record.reply_due_ms.is_none();
        self.record.pending.push(PendingInbound {
            seq,
            key,
            text,
            attachments,
            received_at_ms: event.received_at_ms,
            sent_at_ms: event.timestamp_ms,
        });
        if starts_turn {
            // An email is answered when ready: no delay, no typing.
            let delay = if crate::channels::platform::live(event.channel) {
                self.integration.response_delay_ms.draw()
            } else {
                std::time::Duration::ZERO
            };
            self.record.reply_delay_ms = delay.as_millis() as u64;
            self.record.reply_due_ms = Some(now_ms + self.record.reply_delay_ms);
        }
        EventOutcome::Queued { starts_turn }
    }

    pub(in crate::conversation) fn away_message(&mut self, key: &str, now_ms: u64) -> EventOutcome {
        let Some(text) = self.integration.away_message.clone() else {
            return EventOutcome::Recorded;
        };
        let sent_this_window = match (self.record.away_sent_ms, self.record.window_opened_ms) {
            (Some(sent), Some(opened)) => sent >= opened,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if sent_this_window {
            return EventOutcome::Recorded;
        }
        self.record.away_sent_ms = Some(now_ms);
        self.plan_parts(&text, Planned::ai(key, now_ms), now_ms);
        EventOutcome::Planned
    }

    /// The conversation was idle past `expire_after`: it starts afresh.
    /// A conversation that starts afresh takes the integration's current
    /// assistant.
    pub(in crate::conversation) fn expire(&mut self) {
        if self.record.mode == Mode::Human {
            self.end_takeover();
        }
        self.record.assistant = Some(self.integration.assistant.clone());
        self.record.away_sent_ms = None;
        self.dirty = true;
    }
}
