//! The policy of one conversation, without I/O: the actor feeds it events
//! and clock readings and performs the writes and calls it asks for. By
//! concern: [`router`] takes each event to its handler; [`customer`] is a
//! customer's message or comment (duplicate window, rate limit, coalescing,
//! away message, expiry); [`marks`] are deliveries, reads and statuses;
//! [`outbox`] plans reply parts and settles their sends; [`confirm`]
//! confirms sends whose answer was lost; [`takeover`] is a person stepping
//! in and operators' commands. This file holds the state and the one
//! write a turn produces.

use std::num::NonZeroU32;
use std::sync::{Arc, OnceLock};

use governor::clock::QuantaClock;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use super::dedup::DedupWindow;
use crate::config::IntegrationConfig;
use crate::event::Attachment;
pub use crate::store::CommandOutcome;
use crate::store::{
    Author, ConversationRecord, DailyCount, Direction, MessageRecord, MessageStatus, Rehydrated,
    TurnWrite,
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
pub(in crate::conversation) const TRACKED_MARKS: usize = 64;

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
    /// The UTC day of the last activity as last written to the store's
    /// conversation index (`None`: not written yet).
    indexed_day: Option<u32>,
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

mod confirm;
mod customer;
mod marks;
mod outbox;
mod router;
mod takeover;

pub use confirm::{is_part_id, part_id, Confirmed, PART_PREFIX};
pub(in crate::conversation) use outbox::Planned;
pub use takeover::{BY_AGENT, BY_ASSISTANT, BY_INBOX, BY_KEYWORD};

impl Conversation {
    /// A conversation from its stored form, or a new one.
    pub fn new(
        integration: Arc<IntegrationConfig>,
        id: &str,
        customer: &str,
        stored: Option<Rehydrated>,
        now_ms: u64,
    ) -> Self {
        let (mut record, dedup, stored_deadline, indexed_day) = match stored {
            Some(r) => {
                let deadline = r.state.next_deadline();
                let day = DailyCount::day_of(r.state.last_activity_ms);
                (r.state, DedupWindow::new(r.dedup), deadline, Some(day))
            }
            None => (
                ConversationRecord::new(id, &integration.id, integration.channel, customer, now_ms),
                DedupWindow::default(),
                None,
                None,
            ),
        };
        if record.assistant.is_none() {
            // New, or stored before assistants were pinned.
            record.assistant = Some(integration.assistant.clone());
        }
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
            indexed_day,
            hold_until: None,
            notify: Vec::new(),
        }
    }

    /// Takes the integration's settings as they are now (changed through
    /// the API); the rate limit starts afresh only when it changed.
    pub fn refresh_integration(&mut self, fresh: &Arc<IntegrationConfig>) {
        if Arc::ptr_eq(fresh, &self.integration) {
            return;
        }
        if fresh.rate_limit_per_minute != self.integration.rate_limit_per_minute {
            let per_minute =
                NonZeroU32::new(fresh.rate_limit_per_minute).unwrap_or(NonZeroU32::MIN);
            self.limiter =
                RateLimiter::direct_with_clock(Quota::per_minute(per_minute), limiter_clock());
        }
        self.integration = fresh.clone();
    }

    pub fn integration_id(&self) -> &str {
        &self.integration.id
    }

    pub fn integration(&self) -> &IntegrationConfig {
        &self.integration
    }

    /// The id of the assistant pinned to this conversation.
    pub fn assistant_id(&self) -> &str {
        self.record
            .assistant
            .as_deref()
            .unwrap_or(&self.integration.assistant)
    }

    /// The seq of the newest message waiting for an answer.
    pub fn newest_pending(&self) -> Option<u64> {
        self.record.pending.iter().map(|p| p.seq).max()
    }

    /// The deadline the actor must wake at. While an answer is being
    /// generated, the due reply is not a reason to wake (its answer will
    /// come as a message); the stored deadline keeps it, so a restart
    /// asks again.
    pub fn wake_at(&self, generating: bool) -> Option<u64> {
        if !generating {
            return self.record.next_deadline();
        }
        let r = &self.record;
        [
            r.typing_refresh_ms,
            r.outbox_retry_ms,
            r.auto_resume_ms,
            r.outbox.first().and_then(|p| p.unconfirmed_until_ms),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub(in crate::conversation) fn window_ms(&self) -> u64 {
        self.integration.dedup_window.as_millis() as u64
    }

    /// Whether `id` (a message or command id) was already handled.
    pub(in crate::conversation) fn seen(&self, id: &str, now_ms: u64) -> bool {
        self.dedup.contains(id, now_ms)
    }

    pub(in crate::conversation) fn remember(&mut self, id: String, now_ms: u64) {
        let expires = now_ms.saturating_add(self.window_ms());
        self.dedup.insert(id.clone(), expires, now_ms);
        self.unsaved.dedup.push((id, expires));
        self.dirty = true;
    }

    /// Whether `id` (a message, comment, reaction or command id) comes for
    /// the first time; if so it is remembered for the duplicate window. The
    /// one place every id is checked.
    pub(in crate::conversation) fn first_time(&mut self, id: &str, now_ms: u64) -> bool {
        if self.seen(id, now_ms) {
            return false;
        }
        self.remember(id.to_string(), now_ms);
        true
    }

    pub(in crate::conversation) fn log(
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
    pub(in crate::conversation) fn count(&mut self, at_ms: u64, add: impl FnOnce(&mut DailyCount)) {
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

    pub(in crate::conversation) fn set_status(&mut self, seq: u64, status: MessageStatus) {
        if let Some(m) = self.unsaved.messages.iter_mut().find(|m| m.seq == seq) {
            m.status = status;
        } else {
            self.unsaved.status_updates.push((seq, status));
        }
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
    pub(in crate::conversation) fn recorded_outcome(
        &self,
        command: &str,
    ) -> Option<CommandOutcome> {
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
        let day = Some(DailyCount::day_of(self.record.last_activity_ms));
        let index_changed = std::mem::replace(&mut self.indexed_day, day) != day;
        Some(TurnWrite {
            state: self.record.clone(),
            dedup: unsaved.dedup,
            messages: unsaved.messages,
            status_updates: unsaved.status_updates,
            failures: unsaved.failures,
            deadline_changed,
            previous_deadline,
            takeover_changed: unsaved.takeover_changed,
            index_changed,
            counts: unsaved.counts,
            // On the disk before the engine acts on it, whatever the
            // store's durability: an operator hears the outcome of its
            // command once this is written; parts waiting in the outbox are
            // sent after it (a crash that forgot them would plan and send
            // them again, where a remembered part waits for its echo).
            sync: !self.notify.is_empty() || !self.record.outbox.is_empty(),
        })
    }
}

/// A customer message or postback as the policy sees it.
pub(in crate::conversation) struct Inbound {
    /// Its dedup key (`mid`, or a key derived from the postback).
    pub(in crate::conversation) key: String,
    pub(in crate::conversation) text: String,
    pub(in crate::conversation) attachments: Vec<Attachment>,
    /// The Get Started postback, answered with the welcome message.
    pub(in crate::conversation) welcome: bool,
}

/// Removes the first item of a non-empty list, releasing the list's
/// memory once it is empty (most conversations sit idle with none).
pub(in crate::conversation) fn take_first<T>(list: &mut Vec<T>) -> T {
    let item = list.remove(0);
    if list.is_empty() {
        *list = Vec::new();
    }
    item
}

pub(in crate::conversation) fn push_bounded(list: &mut Vec<(u64, u64)>, mark: (u64, u64)) {
    if list.len() >= TRACKED_MARKS {
        list.remove(0);
    }
    list.push(mark);
}

/// Removes and returns the (seq, sent) pairs sent at or before `watermark`.
pub(in crate::conversation) fn take_covered(
    list: &mut Vec<(u64, u64)>,
    watermark: u64,
) -> Vec<(u64, u64)> {
    let (covered, rest): (Vec<_>, Vec<_>) = list.iter().partition(|(_, sent)| *sent <= watermark);
    *list = rest;
    covered
}
