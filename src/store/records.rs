//! What the store keeps: the persisted state of a conversation, its message
//! log, and the one atomic write a conversation turn produces.

use serde::{Deserialize, Serialize};

use crate::event::{Attachment, Channel, CommentSurface, InboundEvent, OutboundAttachment};

/// What came of an operator's command (kept on the conversation for a
/// while, so a request retried with the same `Idempotency-Key` gets the
/// first outcome).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum CommandOutcome {
    /// Takeover or resume applied and stored.
    Applied,
    /// A person's message was accepted by the platform.
    Sent { message_id: String },
    /// Not allowed (the messaging window); nothing was sent.
    Refused { reason: String },
    /// The platform refused the message.
    Failed { reason: String },
    /// The platform kept failing: the message waits in the outbox.
    Queued,
    /// The platform's answer was lost: the message is confirmed by its
    /// echo or status, or sent again after `outbound.confirm_wait`.
    Unconfirmed,
}

impl CommandOutcome {
    /// Whether nothing more will come of the command.
    pub fn is_final(&self) -> bool {
        !matches!(self, Self::Queued | Self::Unconfirmed)
    }
}

/// Who is answering a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Ai,
    Human,
}

/// A customer message waiting for its answer (coalesced into the next turn).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingInbound {
    pub seq: u64,
    /// The message's id on the platform (`mid`, `wamid`, a postback key):
    /// the reply's part ids derive from it, so a replay plans the same ids.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub key: String,
    pub text: String,
    #[serde(default)]
    pub attachments: Vec<Attachment>,
    pub received_at_ms: u64,
    /// When the customer sent it, by the platform (0: not known): webhooks
    /// may arrive out of order, the assistant reads them in this order.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub sent_at_ms: u64,
}

/// Who a reply part comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Author {
    /// The assistant.
    #[default]
    Ai,
    /// A person, through the admin API.
    Agent,
    /// A person answering from the platform's own inbox (an echo this
    /// engine did not send).
    Inbox,
}

/// A comment to answer publicly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommentRef {
    pub comment_id: String,
    pub surface: CommentSurface,
}

/// A comment waiting for the assistant's public answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingComment {
    pub seq: u64,
    pub comment: CommentRef,
    pub text: String,
    pub received_at_ms: u64,
}

/// A reply part planned and stored before its Send API call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxItem {
    pub seq: u64,
    pub text: String,
    #[serde(default)]
    pub author: Author,
    /// The admin command that asked for this part (its caller waits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// A file sent by link instead of `text`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachment: Option<OutboundAttachment>,
    /// A public reply under this comment instead of a direct message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<CommentRef>,
    /// When the webhook that asked for this reply was received (latency).
    pub received_at_ms: u64,
    /// Configured delay applied to this reply (excluded from latency).
    pub delay_ms: u64,
    /// Whether this is the first part of its turn (latency is measured once).
    pub first_of_turn: bool,
    /// The part's own id, sent with it (Messenger / Instagram `metadata`,
    /// WhatsApp `biz_opaque_callback_data`) and returned in echoes and
    /// statuses: how the engine knows its own messages and confirms a send
    /// whose answer was lost. Derived from what asked for the part, so a
    /// replayed event plans the same id.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub part_id: String,
    /// The part may already have reached the customer (the platform's
    /// answer was lost, or the engine restarted after a send it cannot rule
    /// out): it is not sent before this time, and not at all once an echo or
    /// a status confirms it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unconfirmed_until_ms: Option<u64>,
    /// Quick replies offered with this part (the last of its answer).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<String>,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// The persisted state of one conversation. Empty and absent fields are
/// not written (they read back as their defaults): fewer bytes per turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationRecord {
    pub id: String,
    pub integration: String,
    pub channel: Channel,
    pub customer: String,
    #[serde(default)]
    pub mode: Mode,
    pub message_count: u64,
    pub next_seq: u64,
    pub last_activity_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_inbound_ms: Option<u64>,
    /// Messages waiting for an answer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<PendingInbound>,
    /// When the reply to `pending` is due (response delay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_due_ms: Option<u64>,
    /// The configured delay drawn for the reply being prepared.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub reply_delay_ms: u64,
    /// When `typing_on` must be sent again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typing_refresh_ms: Option<u64>,
    /// Reply parts not yet confirmed sent, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outbox: Vec<OutboxItem>,
    /// Not before this time is the outbox tried again (after the platform
    /// kept failing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbox_retry_ms: Option<u64>,
    /// Sent parts not yet reported delivered / read: (seq, sent at).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub undelivered: Vec<(u64, u64)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unread: Vec<(u64, u64)>,
    /// Who took the conversation over (while `mode` is human).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub takeover_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub takeover_since_ms: Option<u64>,
    /// When the AI answers again by itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_resume_ms: Option<u64>,
    /// When the customer's current messaging window opened (their first
    /// message after 24 h of silence).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_opened_ms: Option<u64>,
    /// When the away message was last sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub away_sent_ms: Option<u64>,
    /// The customer's name, when the platform gives it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_name: Option<String>,
    /// The platform id of the customer's last message (WhatsApp's typing
    /// indicator names it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_inbound_mid: Option<String>,
    /// Recently sent parts by platform id: (id, seq), for status reports
    /// that name a message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sent_ids: Vec<(String, u64)>,
    /// Comments waiting for their public answer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub comments: Vec<PendingComment>,
    /// Recently sent parts whose platform id is not known yet (a 2xx whose
    /// body was cut or unreadable): (part id, seq); the echo or status that
    /// carries the part id tells the platform id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sent_parts: Vec<(String, u64)>,
    /// The final outcomes of recent operators' commands (bounded), for
    /// requests retried with the same `Idempotency-Key`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recent_commands: Vec<(String, CommandOutcome)>,
    /// The assistant that answers this conversation, pinned when it
    /// started: changing an integration's assistant applies to new
    /// conversations only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assistant: Option<String>,
}

impl ConversationRecord {
    pub fn new(id: &str, integration: &str, channel: Channel, customer: &str, now_ms: u64) -> Self {
        Self {
            id: id.to_string(),
            integration: integration.to_string(),
            channel,
            customer: customer.to_string(),
            mode: Mode::Ai,
            message_count: 0,
            next_seq: 1,
            last_activity_ms: now_ms,
            last_inbound_ms: None,
            pending: Vec::new(),
            reply_due_ms: None,
            reply_delay_ms: 0,
            typing_refresh_ms: None,
            outbox: Vec::new(),
            outbox_retry_ms: None,
            undelivered: Vec::new(),
            unread: Vec::new(),
            takeover_by: None,
            takeover_since_ms: None,
            auto_resume_ms: None,
            window_opened_ms: None,
            away_sent_ms: None,
            customer_name: None,
            last_inbound_mid: None,
            sent_ids: Vec::new(),
            comments: Vec::new(),
            sent_parts: Vec::new(),
            recent_commands: Vec::new(),
            assistant: None,
        }
    }

    /// The earliest persisted deadline, if any timer is pending.
    pub fn next_deadline(&self) -> Option<u64> {
        [
            self.reply_due_ms,
            self.typing_refresh_ms,
            self.outbox_retry_ms,
            self.auto_resume_ms,
            self.outbox.first().and_then(|p| p.unconfirmed_until_ms),
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    In,
    Out,
}

/// Delivery status of a logged message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    /// An inbound message handled normally.
    Received,
    /// An inbound message over the customer's rate limit: kept, not answered.
    RateLimited,
    /// An outbound part stored, not yet confirmed sent.
    Pending,
    Sent,
    Delivered,
    Read,
    Failed,
    /// An AI part dropped before sending because a person took over.
    Cancelled,
}

/// One line of a conversation's message log (empty and absent fields are
/// not written).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageRecord {
    pub seq: u64,
    pub direction: Direction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    pub time_ms: u64,
    pub status: MessageStatus,
    /// The platform's id (`mid`) once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mid: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
    /// Who wrote an outbound line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<Author>,
    /// Why a part failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Everything one turn of a conversation changes, written atomically.
#[derive(Debug, Clone, PartialEq)]
pub struct TurnWrite {
    pub state: ConversationRecord,
    /// Message ids to remember, with the time they may be forgotten (ms).
    pub dedup: Vec<(String, u64)>,
    /// New or replaced message-log lines.
    pub messages: Vec<MessageRecord>,
    /// Status changes of existing lines: (seq, status).
    pub status_updates: Vec<(u64, MessageStatus)>,
    /// Sent lines the platform reported failed: (seq, reason).
    pub failures: Vec<(u64, String)>,
    /// Whether `state.next_deadline()` differs from the stored one (the
    /// timer index is only written when it does).
    pub deadline_changed: bool,
    /// The deadline the store had before this write (a backend that
    /// indexes timers by due time removes that entry).
    pub previous_deadline: Option<u64>,
    /// Whether the takeover changed (the takeover index is written then).
    pub takeover_changed: bool,
    /// Whether the conversation is new or its last activity moved to
    /// another UTC day (a backend that indexes conversations by
    /// integration writes the index row then: activity counts are by day).
    pub index_changed: bool,
    /// Analytics to add to the integration's daily rollups.
    pub counts: Vec<DailyCount>,
    /// Must be on the disk when the commit returns, whatever the store's
    /// durability (an operator is told its outcome).
    pub sync: bool,
}

/// Message counts of one integration on one UTC day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DailyCount {
    /// Days since 1970-01-01 (UTC).
    pub day: u32,
    pub inbound: u64,
    pub outbound: u64,
    pub delivered: u64,
    pub read: u64,
}

impl DailyCount {
    /// The UTC day of a millisecond timestamp.
    pub fn day_of(ms: u64) -> u32 {
        (ms / 86_400_000) as u32
    }

    pub fn add(&mut self, other: &DailyCount) {
        self.inbound += other.inbound;
        self.outbound += other.outbound;
        self.delivered += other.delivered;
        self.read += other.read;
    }
}

/// Which conversations a listing returns.
#[derive(Debug, Clone, Default)]
pub struct ConversationFilter {
    /// Only these integrations (all when `None`).
    pub integrations: Option<Vec<String>>,
    pub channel: Option<Channel>,
    pub mode: Option<Mode>,
}

impl ConversationFilter {
    pub fn matches(&self, c: &ConversationRecord) -> bool {
        self.integrations
            .as_ref()
            .is_none_or(|ids| ids.contains(&c.integration))
            && self.channel.is_none_or(|ch| ch == c.channel)
            && self.mode.is_none_or(|m| m == c.mode)
    }
}

impl TurnWrite {
    /// The changes to existing lines: status updates, then failures with
    /// their reason, as (seq, status, why it failed).
    pub fn line_changes(&self) -> impl Iterator<Item = (u64, MessageStatus, Option<&String>)> {
        let updates = self.status_updates.iter().map(|(seq, s)| (*seq, *s, None));
        let failures = self
            .failures
            .iter()
            .map(|(seq, why)| (*seq, MessageStatus::Failed, Some(why)));
        updates.chain(failures)
    }

    pub fn new(state: ConversationRecord) -> Self {
        Self {
            state,
            dedup: Vec::new(),
            messages: Vec::new(),
            status_updates: Vec::new(),
            failures: Vec::new(),
            deadline_changed: true,
            previous_deadline: None,
            takeover_changed: true,
            index_changed: true,
            counts: Vec::new(),
            sync: false,
        }
    }
}

/// A conversation as it comes back from the store.
#[derive(Debug, Clone, PartialEq)]
pub struct Rehydrated {
    pub state: ConversationRecord,
    /// Remembered message ids still inside their window: (id, expires ms).
    pub dedup: Vec<(String, u64)>,
}

/// An event that kept crashing its conversation actor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub conversation: String,
    /// Where it sat on the bus.
    pub position: String,
    /// The event as it was on the bus.
    pub event: serde_json::Value,
    pub error: String,
    pub at_ms: u64,
}

/// A conversation taken out of service after it kept failing outside any
/// one event (its stored state cannot be read, a timer-driven turn keeps
/// failing): its events are kept here instead of holding back the bus, and
/// handled again, in order, when an operator resumes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuarantineRecord {
    pub conversation: String,
    /// The last failure.
    pub reason: String,
    pub since_ms: u64,
    pub failures: u32,
    /// Events that arrived (or were in flight) since, in bus order.
    #[serde(default)]
    pub events: Vec<InboundEvent>,
}

/// A knowledge-base document of an assistant (see `knowledge`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocumentRecord {
    pub assistant: String,
    pub id: String,
    /// The tenant whose store keeps it (the assistant's tenant).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    pub title: String,
    /// Its text (Markdown headings and paragraphs are kept).
    pub text: String,
    pub created_ms: u64,
    /// Its passages' embeddings, in passage order (when the assistant
    /// uses embeddings).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vectors: Vec<Vec<f32>>,
}

/// A tenant's API key, as stored: only the SHA-256 of the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantKeyRecord {
    pub id: String,
    pub tenant: String,
    /// Hex SHA-256 of the key.
    pub hash: String,
    pub created_ms: u64,
}

#[cfg(test)]
mod tests;
