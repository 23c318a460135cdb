//! The policy of one conversation, without I/O: duplicate window, rate
//! limit, coalescing of messages that arrive while a reply is prepared,
//! the outbox, delivery and read marks. The actor feeds it events and
//! clock readings and performs the writes and calls it asks for.

use std::num::NonZeroU32;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use governor::clock::QuantaClock;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use super::confirm;
use super::dedup::DedupWindow;
use super::shaping;
use super::window::{self, SendTag, WindowClosed};
use crate::config::IntegrationConfig;
use crate::event::{Attachment, EventKind, InboundEvent, ReportedStatus};
pub use crate::store::CommandOutcome;
use crate::store::{
    Author, CommentRef, ConversationRecord, DailyCount, Direction, MessageRecord, MessageStatus,
    Mode, OutboxItem, PendingComment, PendingInbound, Rehydrated, TurnWrite,
};

/// What handling one event amounted to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventOutcome {
    /// A new customer message, queued for an answer.
    Queued {
        starts_turn: bool,
    },
    Duplicate,
    RateLimited,
    /// Recorded without an answer (echo, delivery, read, disabled).
    Recorded,
    /// Nothing to do (our own echo, a repeated echo).
    Ignored,
    /// An echo or status confirmed a part whose send was unconfirmed.
    Confirmed,
    /// A customer message the AI does not answer: a person has the
    /// conversation.
    HumanMode,
    /// A customer message the AI does not answer: sent more than 24 hours
    /// ago.
    WindowClosed,
    /// Parts were put in the outbox without the assistant (welcome, away
    /// message, a person's message).
    Planned,
    /// An operator's command was applied or refused.
    Command(CommandResult),
}

/// The immediate result of an operator's command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandResult {
    Applied,
    /// A person's message is in the outbox; its send decides.
    Queued,
    Refused(String),
}

/// Sent parts whose delivery / read is still tracked, at most (older ones
/// keep the status they had: a customer who never reads does not make the
/// state grow).
pub(super) const TRACKED_MARKS: usize = 64;

/// Final outcomes of operators' commands kept per conversation.
const RECENT_COMMANDS: usize = 32;

#[derive(Default)]
pub(super) struct Unsaved {
    dedup: Vec<(String, u64)>,
    pub(super) messages: Vec<MessageRecord>,
    status_updates: Vec<(u64, MessageStatus)>,
    /// Sent parts the platform reported failed: (seq, reason).
    failures: Vec<(u64, String)>,
    counts: Vec<DailyCount>,
    pub(super) takeover_changed: bool,
}

pub struct Conversation {
    pub record: ConversationRecord,
    integration: Arc<IntegrationConfig>,
    dedup: DedupWindow,
    limiter: DefaultDirectRateLimiter,
    /// Changes not yet written (the state itself is taken whole).
    pub(super) unsaved: Unsaved,
    pub(super) dirty: bool,
    /// The next deadline as last written to the store.
    stored_deadline: Option<u64>,
    /// Parts planned now are held as unconfirmed until then (see
    /// [`Conversation::hold_new_parts`]).
    pub(super) hold_until: Option<u64>,
    /// Operators' commands to tell their callers about once the write that
    /// recorded them is done.
    notify: Vec<(String, CommandOutcome)>,
}

/// One clock for every rate limiter (creating a clock per conversation
/// calibrates it each time).
fn limiter_clock() -> QuantaClock {
    static CLOCK: OnceLock<QuantaClock> = OnceLock::new();
    CLOCK.get_or_init(QuantaClock::default).clone()
}

impl Conversation {
    /// A conversation from its stored form, or a new one.
    pub fn new(
        integration: Arc<IntegrationConfig>,
        id: &str,
        customer: &str,
        stored: Option<Rehydrated>,
        now_ms: u64,
    ) -> Self {
        let (record, dedup, stored_deadline) = match stored {
            Some(r) => {
                let deadline = r.state.next_deadline();
                (r.state, DedupWindow::new(r.dedup), deadline)
            }
            None => (
                ConversationRecord::new(id, &integration.id, integration.channel, customer, now_ms),
                DedupWindow::default(),
                None,
            ),
        };
        let per_minute =
            NonZeroU32::new(integration.rate_limit_per_minute).unwrap_or(NonZeroU32::MIN);
        let limiter =
            RateLimiter::direct_with_clock(Quota::per_minute(per_minute), limiter_clock());
        Self {
            unsaved: Unsaved::default(),
            record,
            integration,
            dedup,
            limiter,
            dirty: false,
            stored_deadline,
            hold_until: None,
            notify: Vec::new(),
        }
    }

    pub fn integration(&self) -> &IntegrationConfig {
        &self.integration
    }

    fn window_ms(&self) -> u64 {
        self.integration.dedup_window().as_millis() as u64
    }

    /// Whether `id` (a message or command id) was already handled.
    pub(super) fn seen(&self, id: &str, now_ms: u64) -> bool {
        self.dedup.contains(id, now_ms)
    }

    pub(super) fn remember(&mut self, id: String, now_ms: u64) {
        let expires = now_ms.saturating_add(self.window_ms());
        self.dedup.insert(id.clone(), expires, now_ms);
        self.unsaved.dedup.push((id, expires));
        self.dirty = true;
    }

    pub(super) fn log(
        &mut self,
        direction: Direction,
        text: Option<String>,
        time_ms: u64,
        status: MessageStatus,
        mid: Option<String>,
        attachments: Vec<Attachment>,
    ) -> u64 {
        let seq = self.record.next_seq;
        self.record.next_seq += 1;
        self.record.message_count += 1;
        let author = (direction == Direction::Out).then_some(Author::Ai);
        self.unsaved.messages.push(MessageRecord {
            seq,
            direction,
            text,
            time_ms,
            status,
            mid,
            attachments,
            author,
            error: None,
        });
        self.dirty = true;
        seq
    }

    /// Adds to the integration's analytics for the day of `at_ms`.
    pub(super) fn count(&mut self, at_ms: u64, add: impl FnOnce(&mut DailyCount)) {
        let day = DailyCount::day_of(at_ms);
        let counts = &mut self.unsaved.counts;
        let i = match counts.iter().position(|c| c.day == day) {
            Some(i) => i,
            None => {
                counts.push(DailyCount {
                    day,
                    ..DailyCount::default()
                });
                counts.len() - 1
            }
        };
        add(&mut counts[i]);
        self.dirty = true;
    }

    pub(super) fn set_status(&mut self, seq: u64, status: MessageStatus) {
        if let Some(m) = self.unsaved.messages.iter_mut().find(|m| m.seq == seq) {
            m.status = status;
        } else {
            self.unsaved.status_updates.push((seq, status));
        }
        self.dirty = true;
    }

    /// Applies one bus event at `now_ms`.
    pub fn apply(&mut self, event: &InboundEvent, now_ms: u64) -> EventOutcome {
        if event.kind == EventKind::Wake {
            // Nothing changes; the actor does what is due.
            return EventOutcome::Ignored;
        }
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
                    return self.own_echo(part, mid, now_ms);
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
                        self.confirm_part(p, mid, now_ms)
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
                if self.dedup.contains(mid, now_ms) {
                    return EventOutcome::Duplicate;
                }
                self.remember(mid.clone(), now_ms);
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
            EventKind::Wake => EventOutcome::Ignored,
        }
    }

    /// Applies the platform's report on one sent part: a delivery or read
    /// covers the parts sent before it too (as a watermark would).
    fn status_report(
        &mut self,
        mid: &str,
        status: ReportedStatus,
        error: Option<&str>,
        at_ms: u64,
    ) -> EventOutcome {
        let Some(seq) = self
            .record
            .sent_ids
            .iter()
            .find(|(id, _)| id == mid)
            .map(|&(_, seq)| seq)
        else {
            return EventOutcome::Ignored;
        };
        let sent_at = |list: &[(u64, u64)]| list.iter().find(|(s, _)| *s == seq).map(|&(_, t)| t);
        match status {
            ReportedStatus::Sent => EventOutcome::Ignored,
            ReportedStatus::Delivered => match sent_at(&self.record.undelivered) {
                Some(watermark) => self.delivered_up_to(watermark, at_ms),
                None => EventOutcome::Ignored,
            },
            ReportedStatus::Read => {
                match sent_at(&self.record.undelivered).or(sent_at(&self.record.unread)) {
                    Some(watermark) => self.read_up_to(watermark, at_ms),
                    None => EventOutcome::Ignored,
                }
            }
            ReportedStatus::Failed => {
                self.record.undelivered.retain(|(s, _)| *s != seq);
                self.record.unread.retain(|(s, _)| *s != seq);
                self.unsaved
                    .failures
                    .push((seq, error.unwrap_or("failed").to_string()));
                self.dirty = true;
                EventOutcome::Recorded
            }
        }
    }

    /// Parts sent at or before `watermark` were delivered.
    fn delivered_up_to(&mut self, watermark: u64, at_ms: u64) -> EventOutcome {
        let covered = take_covered(&mut self.record.undelivered, watermark);
        let delivered = covered.len() as u64;
        for (seq, sent) in covered {
            self.set_status(seq, MessageStatus::Delivered);
            push_bounded(&mut self.record.unread, (seq, sent));
        }
        if delivered > 0 {
            self.count(at_ms, |c| c.delivered += delivered);
        }
        EventOutcome::Recorded
    }

    /// Parts sent at or before `watermark` were read.
    fn read_up_to(&mut self, watermark: u64, at_ms: u64) -> EventOutcome {
        let undelivered = take_covered(&mut self.record.undelivered, watermark);
        // A read message was delivered too, even if no delivery receipt
        // said so.
        let delivered = undelivered.len() as u64;
        let mut covered = undelivered;
        covered.extend(take_covered(&mut self.record.unread, watermark));
        let read = covered.len() as u64;
        for (seq, _) in covered {
            self.set_status(seq, MessageStatus::Read);
        }
        if read > 0 {
            self.count(at_ms, |c| {
                c.delivered += delivered;
                c.read += read;
            });
        }
        EventOutcome::Recorded
    }

    /// A public comment: answered by the assistant under the comment, no
    /// delay and no messaging window; a person's takeover silences it too.
    fn customer_comment(
        &mut self,
        event: &InboundEvent,
        comment: CommentRef,
        text: &str,
        now_ms: u64,
    ) -> EventOutcome {
        if self.dedup.contains(&comment.comment_id, now_ms) {
            return EventOutcome::Duplicate;
        }
        self.remember(comment.comment_id.clone(), now_ms);
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
        if self.escalates(text) {
            self.take_over("keyword", self.default_resume_at(now_ms), now_ms);
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

    /// The assistant's answer to the first waiting comment, as public
    /// replies under it.
    pub fn plan_comment_reply(&mut self, answer: &str, now_ms: u64) {
        if self.record.comments.is_empty() {
            return;
        }
        let pending = take_first(&mut self.record.comments);
        let first = self.record.outbox.len();
        let planned = Planned::ai(&pending.comment.comment_id, pending.received_at_ms);
        self.plan_parts(answer, planned, now_ms);
        for item in &mut self.record.outbox[first..] {
            item.comment = Some(pending.comment.clone());
        }
    }

    fn customer_message(
        &mut self,
        event: &InboundEvent,
        inbound: Inbound,
        idle_since: u64,
        now_ms: u64,
    ) -> EventOutcome {
        if self.dedup.contains(&inbound.key, now_ms) {
            return EventOutcome::Duplicate;
        }
        self.remember(inbound.key.clone(), now_ms);
        if self
            .record
            .last_inbound_ms
            .is_none_or(|t| event.timestamp_ms >= t)
        {
            // The newest message is the one a typing indicator names.
            self.record.last_inbound_mid = Some(inbound.key.clone());
        }
        if self.record.message_count > 0
            && now_ms.saturating_sub(idle_since)
                >= self.integration.expire_after().as_millis() as u64
        {
            self.expire();
        }
        let last_inbound = self.record.last_inbound_ms;
        if last_inbound.is_none_or(|t| event.timestamp_ms >= t + window::STANDARD_MS) {
            self.record.window_opened_ms = Some(event.timestamp_ms);
        }
        self.record.last_inbound_ms = Some(last_inbound.unwrap_or(0).max(event.timestamp_ms));
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
        if self.escalates(&text) {
            self.take_over("keyword", self.default_resume_at(now_ms), now_ms);
        }
        if self.record.mode == Mode::Human {
            return EventOutcome::HumanMode;
        }
        if window::ai_may_answer(event.timestamp_ms, now_ms).is_err() {
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
        });
        if starts_turn {
            let delay = self.integration.response_delay_ms.draw();
            self.record.reply_delay_ms = delay.as_millis() as u64;
            self.record.reply_due_ms = Some(now_ms + self.record.reply_delay_ms);
        }
        EventOutcome::Queued { starts_turn }
    }

    fn away_message(&mut self, key: &str, now_ms: u64) -> EventOutcome {
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
    fn expire(&mut self) {
        if self.record.mode == Mode::Human {
            self.end_takeover();
        }
        self.record.away_sent_ms = None;
        self.dirty = true;
    }

    /// How a stored part may be sent now, or why it may not.
    pub fn send_tag(&self, item: &OutboxItem, now_ms: u64) -> Result<SendTag, WindowClosed> {
        if item.comment.is_some() {
            // A public reply under a comment is not a message to the
            // customer: the messaging window does not apply.
            return Ok(SendTag::Response);
        }
        match item.author {
            Author::Ai => match self.record.last_inbound_ms {
                Some(last) => window::ai_may_answer(last, now_ms),
                None => Err(WindowClosed::NeverOpened),
            },
            Author::Agent | Author::Inbox => self.agent_tag(now_ms),
        }
    }

    /// How a person's message may be sent now, or why it may not.
    pub(super) fn agent_tag(&self, now_ms: u64) -> Result<SendTag, WindowClosed> {
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

    /// Schedules (or clears) the next `typing_on` refresh.
    pub fn schedule_typing(&mut self, now_ms: u64, refresh: Duration) {
        let next = now_ms + refresh.as_millis() as u64;
        let wanted = self
            .record
            .reply_due_ms
            .filter(|&due| due > next)
            .map(|_| next);
        if wanted != self.record.typing_refresh_ms {
            self.record.typing_refresh_ms = wanted;
            self.dirty = true;
        }
    }

    pub fn typing_due(&self, now_ms: u64) -> bool {
        self.record.typing_refresh_ms.is_some_and(|t| t <= now_ms)
    }

    /// Takes the pending messages for the assistant: texts and attachments.
    pub fn pending_request(&self) -> (Vec<String>, Vec<Attachment>) {
        let texts = self
            .record
            .pending
            .iter()
            .map(|p| p.text.clone())
            .filter(|t| !t.is_empty())
            .collect();
        let attachments = self
            .record
            .pending
            .iter()
            .flat_map(|p| p.attachments.iter().cloned())
            .collect();
        (texts, attachments)
    }

    /// Turns the assistant's answer into outbox parts and closes the turn.
    pub fn plan_reply(&mut self, answer: &str, now_ms: u64) {
        let received_at = self
            .record
            .pending
            .iter()
            .map(|p| p.received_at_ms)
            .min()
            .unwrap_or(now_ms);
        // The reply's part ids derive from the first message it answers.
        let key = match self.record.pending.first() {
            Some(p) if !p.key.is_empty() => p.key.clone(),
            Some(p) => format!("seq:{}", p.seq),
            None => format!("at:{now_ms}"),
        };
        self.plan_parts(answer, Planned::ai(&key, received_at), now_ms);
        self.record.pending = Vec::new();
        self.record.reply_due_ms = None;
        self.record.typing_refresh_ms = None;
        self.record.reply_delay_ms = 0;
        self.dirty = true;
    }

    /// Shapes `text` for the channel and stores its parts in the outbox.
    pub(super) fn plan_parts(&mut self, text: &str, planned: Planned<'_>, now_ms: u64) {
        let parts = shaping::shape(
            text,
            self.integration.channel,
            self.integration.max_message_length(),
        );
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
    pub(super) fn settle(
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

    /// What came of an operator's command: kept when final (bounded, for
    /// retried requests), and told to its callers after the next write.
    pub fn command_outcome(&mut self, command: &str, outcome: CommandOutcome) {
        if outcome.is_final() {
            let recent = &mut self.record.recent_commands;
            recent.retain(|(id, _)| id != command);
            if recent.len() >= RECENT_COMMANDS {
                take_first(recent);
            }
            recent.push((command.to_string(), outcome.clone()));
            self.dirty = true;
        }
        self.notify.push((command.to_string(), outcome));
    }

    /// The first outcome of a command seen before, if it is final.
    pub(super) fn recorded_outcome(&self, command: &str) -> Option<CommandOutcome> {
        self.record
            .recent_commands
            .iter()
            .find(|(id, _)| id == command)
            .map(|(_, o)| o.clone())
    }

    /// Callers to tell, once the write before is done.
    pub fn take_notifications(&mut self) -> Vec<(String, CommandOutcome)> {
        std::mem::take(&mut self.notify)
    }

    /// The writes accumulated since the last call, if any.
    pub fn take_write(&mut self) -> Option<TurnWrite> {
        if !self.dirty {
            return None;
        }
        self.dirty = false;
        let unsaved = std::mem::take(&mut self.unsaved);
        let deadline = self.record.next_deadline();
        let deadline_changed = deadline != self.stored_deadline;
        let previous_deadline = std::mem::replace(&mut self.stored_deadline, deadline);
        Some(TurnWrite {
            state: self.record.clone(),
            dedup: unsaved.dedup,
            messages: unsaved.messages,
            status_updates: unsaved.status_updates,
            failures: unsaved.failures,
            deadline_changed,
            previous_deadline,
            takeover_changed: unsaved.takeover_changed,
            counts: unsaved.counts,
        })
    }
}

/// What a reply is planned for: who writes it, what asked for it (its part
/// ids derive from `key`), and who waits for it.
pub(super) struct Planned<'a> {
    pub(super) author: Author,
    pub(super) key: &'a str,
    pub(super) command: Option<&'a str>,
    pub(super) received_at_ms: u64,
}

impl<'a> Planned<'a> {
    /// The assistant's (or a configured) answer to `key`.
    pub(super) fn ai(key: &'a str, received_at_ms: u64) -> Self {
        Self {
            author: Author::Ai,
            key,
            command: None,
            received_at_ms,
        }
    }
}

/// A customer message or postback as the policy sees it.
struct Inbound {
    /// Its dedup key (`mid`, or a key derived from the postback).
    key: String,
    text: String,
    attachments: Vec<Attachment>,
    /// The Get Started postback, answered with the welcome message.
    welcome: bool,
}

/// Removes the first item of a non-empty list, releasing the list's
/// memory once it is empty (most conversations sit idle with none).
pub(super) fn take_first<T>(list: &mut Vec<T>) -> T {
    let item = list.remove(0);
    if list.is_empty() {
        *list = Vec::new();
    }
    item
}

fn push_bounded(list: &mut Vec<(u64, u64)>, mark: (u64, u64)) {
    if list.len() >= TRACKED_MARKS {
        list.remove(0);
    }
    list.push(mark);
}

/// Removes and returns the (seq, sent) pairs sent at or before `watermark`.
fn take_covered(list: &mut Vec<(u64, u64)>, watermark: u64) -> Vec<(u64, u64)> {
    let (covered, rest): (Vec<_>, Vec<_>) = list.iter().partition(|(_, sent)| *sent <= watermark);
    *list = rest;
    covered
}
