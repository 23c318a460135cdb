//! The outbox: reply parts planned (shaped for the channel, each with its
//! part id) and stored before their send, sent in order, settled as sent
//! or failed; how a part may be sent under Meta's windows; typing.

use std::time::Duration;

use super::super::shaping;
use super::super::window::{self, SendTag, WindowClosed};
use super::{confirm, push_bounded, take_first, Conversation};
use crate::assistant::Answer;
use crate::channels::{choices, platform};
use crate::event::Attachment;
use crate::store::{Author, Direction, MessageRecord, MessageStatus, OutboxItem, PendingInbound};

/// What a reply is planned for: who writes it, what asked for it (its part
/// ids derive from `key`), and who waits for it.
pub(in crate::conversation) struct Planned<'a> {
    pub(in crate::conversation) author: Author,
    pub(in crate::conversation) key: &'a str,
    pub(in crate::conversation) command: Option<&'a str>,
    pub(in crate::conversation) received_at_ms: u64,
}

impl<'a> Planned<'a> {
    /// The assistant's (or a configured) answer to `key`.
    pub(in crate::conversation) fn ai(key: &'a str, received_at_ms: u64) -> Self {
        Self {
            author: Author::Ai,
            key,
            command: None,
            received_at_ms,
        }
    }
}

impl Conversation {
    /// How a stored part may be sent now, or why it may not.
    pub fn send_tag(&self, item: &OutboxItem, now_ms: u64) -> Result<SendTag, WindowClosed> {
        if item.comment.is_some() {
            // A public reply under a comment is not a message to the
            // customer: the messaging window does not apply.
            return Ok(SendTag::Response);
        }
        match item.author {
            Author::Ai => match self.record.last_inbound_ms {
                Some(last) => window::ai_may_answer(self.record.channel, last, now_ms),
                None => Err(WindowClosed::NeverOpened),
            },
            Author::Agent | Author::Inbox => self.agent_tag(now_ms),
        }
    }

    /// How a person's message may be sent now, or why it may not.
    pub(in crate::conversation) fn agent_tag(&self, now_ms: u64) -> Result<SendTag, WindowClosed> {
        window::agent_send(
            self.record.channel,
            self.record.last_inbound_ms,
            now_ms,
            self.integration.whatsapp_template.is_some(),
        )
    }

    /// Whether the pending messages are due for their answer.
    pub fn reply_due(&self, now_ms: u64) -> bool {
        !self.record.pending.is_empty() && self.record.reply_due_ms.is_some_and(|d| d <= now_ms)
    }

    /// Schedules (or clears) the next `typing_on` refresh: while a delayed
    /// reply is due after it, or while an answer is being generated.
    pub fn schedule_typing(&mut self, now_ms: u64, refresh: Duration, generating: bool) {
        let next = now_ms + refresh.as_millis() as u64;
        let wanted = if !crate::channels::platform::live(self.record.channel) {
            // Email shows no typing.
            None
        } else if generating && !self.record.pending.is_empty() {
            Some(next)
        } else {
            self.record
                .reply_due_ms
                .filter(|&due| due > next)
                .map(|_| next)
        };
        if wanted != self.record.typing_refresh_ms {
            self.record.typing_refresh_ms = wanted;
            self.dirty = true;
        }
    }

    pub fn typing_due(&self, now_ms: u64) -> bool {
        self.record.typing_refresh_ms.is_some_and(|t| t <= now_ms)
    }

    /// Takes the pending messages for the assistant: texts and
    /// attachments, in the order the customer sent them (webhooks may
    /// arrive out of order; a tie keeps the order of arrival).
    pub fn pending_request(&self) -> (Vec<String>, Vec<Attachment>) {
        let mut sent: Vec<&PendingInbound> = self.record.pending.iter().collect();
        sent.sort_by_key(|p| p.sent_at_ms);
        let texts = sent
            .iter()
            .map(|p| p.text.clone())
            .filter(|t| !t.is_empty())
            .collect();
        let attachments = sent
            .iter()
            .flat_map(|p| p.attachments.iter().cloned())
            .collect();
        (texts, attachments)
    }

    /// Turns the assistant's answer into outbox parts and closes the turn.
    pub fn plan_reply(&mut self, answer: impl Into<Answer>, now_ms: u64) {
        self.plan_reply_upto(&answer.into(), u64::MAX, now_ms);
    }

    /// Plans `answer` as the reply to the pending messages up to `covers`
    /// (a seq): the ones it was asked for. Messages that came after wait
    /// for their own answer, due at once. False (nothing planned) when
    /// none of them is pending any more (a person took over meanwhile).
    pub fn plan_reply_upto(&mut self, answer: &Answer, covers: u64, now_ms: u64) -> bool {
        let answered: Vec<&PendingInbound> = self
            .record
            .pending
            .iter()
            .filter(|p| p.seq <= covers)
            .collect();
        let Some(first) = answered.first() else {
            return false;
        };
        let received_at = answered
            .iter()
            .map(|p| p.received_at_ms)
            .min()
            .unwrap_or(now_ms);
        // The reply's part ids derive from the first message it answers.
        let key = if first.key.is_empty() {
            format!("seq:{}", first.seq)
        } else {
            first.key.clone()
        };
        self.plan_answer(answer, Planned::ai(&key, received_at), now_ms);
        self.record.pending.retain(|p| p.seq > covers);
        self.record.reply_delay_ms = 0;
        if self.record.pending.is_empty() {
            self.record.pending = Vec::new();
            self.record.reply_due_ms = None;
            self.record.typing_refresh_ms = None;
        } else {
            self.record.reply_due_ms = Some(now_ms);
        }
        self.dirty = true;
        true
    }

    /// Plans an answer with its choices: on the last part where the
    /// channel has quick replies (parts then fit its limit for them), as
    /// numbered lines where it has not.
    pub(in crate::conversation) fn plan_answer(
        &mut self,
        answer: &Answer,
        planned: Planned<'_>,
        now_ms: u64,
    ) {
        let max_len = self.integration.max_message_length();
        if answer.choices.is_empty() {
            self.plan_parts_within(&answer.text, planned, now_ms, max_len);
            return;
        }
        match platform::choices_text_limit(self.integration.channel) {
            Some(limit) => {
                self.plan_parts_within(&answer.text, planned, now_ms, max_len.min(limit));
                if let Some(last) = self.record.outbox.last_mut() {
                    last.choices = answer.choices.clone();
                }
            }
            None => {
                let text = choices::numbered(&answer.text, &answer.choices);
                self.plan_parts_within(&text, planned, now_ms, max_len);
            }
        }
    }

    /// Shapes `text` for the channel and stores its parts in the outbox.
    pub(in crate::conversation) fn plan_parts(
        &mut self,
        text: &str,
        planned: Planned<'_>,
        now_ms: u64,
    ) {
        let max_len = self.integration.max_message_length();
        self.plan_parts_within(text, planned, now_ms, max_len);
    }

    fn plan_parts_within(&mut self, text: &str, planned: Planned<'_>, now_ms: u64, max_len: usize) {
        let capped = planned.author == Author::Ai;
        let parts = shaping::shape(text, self.integration.channel, max_len, capped);
        let count = parts.len();
        for (i, text) in parts.into_iter().enumerate() {
            let seq = self.log(
                Direction::Out,
                Some(text.clone()),
                now_ms,
                MessageStatus::Pending,
                None,
                Vec::new(),
            );
            if let Some(line) = self.unsaved.messages.last_mut() {
                line.author = Some(planned.author);
            }
            self.record.outbox.push(OutboxItem {
                seq,
                text,
                author: planned.author,
                attachment: None,
                comment: None,
                // The caller waits for the last part of its message.
                command: planned
                    .command
                    .filter(|_| i + 1 == count)
                    .map(str::to_string),
                received_at_ms: planned.received_at_ms,
                delay_ms: self.record.reply_delay_ms,
                first_of_turn: i == 0 && planned.author == Author::Ai,
                part_id: confirm::part_id(&self.record.id, planned.key, i),
                unconfirmed_until_ms: self.hold_until,
                choices: Vec::new(),
            });
        }
        self.dirty = true;
    }

    /// The next outbox part, if the outbox may be worked on now.
    pub fn next_part(&self, now_ms: u64) -> Option<&OutboxItem> {
        if self.record.outbox_retry_ms.is_some_and(|t| t > now_ms) {
            return None;
        }
        self.record.outbox.first()
    }

    /// The platform accepted the first outbox part (`message_id` is empty
    /// when its answer did not say).
    pub fn part_sent(&mut self, message_id: String, now_ms: u64) {
        if self.record.outbox.is_empty() {
            return;
        }
        let item = take_first(&mut self.record.outbox);
        self.record.outbox_retry_ms = None;
        let mid = (!message_id.is_empty()).then(|| message_id.clone());
        self.settle(&item, MessageStatus::Sent, mid, None, now_ms);
        push_bounded(&mut self.record.undelivered, (item.seq, now_ms));
        self.count(now_ms, |c| c.outbound += 1);
        if message_id.is_empty() {
            self.sent_without_id(&item.part_id, item.seq);
        } else {
            self.track_sent_id(message_id.clone(), item.seq);
            // Its echo will carry this id: recognise it as ours.
            self.remember(message_id, now_ms);
        }
    }

    /// The first outbox part will not be sent: refused by the platform
    /// for good, or past its window.
    pub fn part_failed(&mut self, reason: &str, now_ms: u64) {
        if self.record.outbox.is_empty() {
            return;
        }
        let item = take_first(&mut self.record.outbox);
        self.settle(
            &item,
            MessageStatus::Failed,
            None,
            Some(reason.to_string()),
            now_ms,
        );
    }

    /// Writes the final status of an outbox part into its log line.
    pub(in crate::conversation) fn settle(
        &mut self,
        item: &OutboxItem,
        status: MessageStatus,
        mid: Option<String>,
        error: Option<String>,
        now_ms: u64,
    ) {
        self.unsaved.messages.retain(|m| m.seq != item.seq);
        self.unsaved.messages.push(MessageRecord {
            seq: item.seq,
            direction: Direction::Out,
            text: (!item.text.is_empty()).then(|| item.text.clone()),
            time_ms: now_ms,
            status,
            mid,
            attachments: item.attachment.iter().map(Attachment::from).collect(),
            author: Some(item.author),
            error,
        });
        self.dirty = true;
    }

    /// The platform kept failing: try the outbox again at `retry_at_ms`.
    pub fn retry_outbox_at(&mut self, retry_at_ms: u64) {
        self.record.outbox_retry_ms = Some(retry_at_ms);
        self.dirty = true;
    }
}
