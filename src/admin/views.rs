//! The JSON shapes of the admin API (field names fixed by the README;
//! times as RFC 3339).

use serde::Serialize;

use crate::clock::rfc3339;
use crate::conversation::window;
use crate::event::{Attachment, Channel};
use crate::store::{
    Author, ConversationRecord, Direction, MessageRecord, MessageStatus, Mode, QuarantineRecord,
};

/// A conversation as listed.
#[derive(Debug, Serialize)]
pub struct ConversationView {
    pub id: String,
    pub integration: String,
    pub channel: Channel,
    pub customer: String,
    /// The customer's name, when the platform gave it (WhatsApp contacts,
    /// comment authors).
    pub customer_name: Option<String>,
    pub mode: Mode,
    pub message_count: u64,
    pub last_activity: String,
    /// When the customer's 24-hour window closes (none before they write).
    pub window_expires_at: Option<String>,
    /// When the AI answers again by itself (during a takeover).
    pub auto_resume_at: Option<String>,
    /// Who took over: a person's name, `keyword`, `inbox` or `agent`.
    pub taken_over_by: Option<String>,
    pub taken_over_at: Option<String>,
}

impl From<&ConversationRecord> for ConversationView {
    fn from(c: &ConversationRecord) -> Self {
        Self {
            id: c.id.clone(),
            integration: c.integration.clone(),
            channel: c.channel,
            customer: c.customer.clone(),
            customer_name: c.customer_name.clone(),
            mode: c.mode,
            message_count: c.message_count,
            last_activity: rfc3339(c.last_activity_ms),
            window_expires_at: window::expires_at(c.last_inbound_ms).map(rfc3339),
            auto_resume_at: c.auto_resume_ms.map(rfc3339),
            taken_over_by: c.takeover_by.clone(),
            taken_over_at: c.takeover_since_ms.map(rfc3339),
        }
    }
}

/// One line of a conversation.
#[derive(Debug, Serialize)]
pub struct MessageView {
    pub direction: Direction,
    pub text: Option<String>,
    pub time: String,
    pub status: MessageStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub author: Option<Author>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<AttachmentView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl From<MessageRecord> for MessageView {
    fn from(m: MessageRecord) -> Self {
        Self {
            direction: m.direction,
            text: m.text,
            time: rfc3339(m.time_ms),
            status: m.status,
            author: m.author,
            attachments: m.attachments.into_iter().map(Into::into).collect(),
            error: m.error,
        }
    }
}

/// A file the customer sent (or a person sent), as a reference.
#[derive(Debug, Serialize)]
pub struct AttachmentView {
    #[serde(flatten)]
    pub attachment: Attachment,
    /// Meta-hosted links and WhatsApp media ids stop working after a while
    /// (WhatsApp's download link after 5 minutes): keep a copy if needed.
    pub link_expires: bool,
}

/// Hosts whose links Meta rotates or expires.
const EXPIRING_HOSTS: [&str; 5] = [
    "fbcdn.net",
    "fbsbx.com",
    "cdninstagram.com",
    "whatsapp.net",
    "lookaside.facebook.com",
];

impl From<Attachment> for AttachmentView {
    fn from(a: Attachment) -> Self {
        let link_expires = match &a.url {
            Some(url) => {
                let host = url
                    .split("://")
                    .nth(1)
                    .and_then(|rest| rest.split(['/', '?']).next())
                    .unwrap_or_default();
                EXPIRING_HOSTS.iter().any(|h| host.ends_with(h))
            }
            None => a.id.is_some(),
        };
        Self {
            attachment: a,
            link_expires,
        }
    }
}

/// A conversation with its messages.
#[derive(Debug, Serialize)]
pub struct ConversationDetail {
    #[serde(flatten)]
    pub conversation: ConversationView,
    pub messages: Vec<MessageView>,
    /// Present while the conversation is quarantined.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quarantine: Option<QuarantineView>,
}

/// A quarantined conversation: why, since when, and how many events wait.
#[derive(Debug, Serialize)]
pub struct QuarantineView {
    pub conversation: String,
    pub reason: String,
    pub since: String,
    pub failures: u32,
    /// Events kept for it, handled again on resume.
    pub events_waiting: usize,
}

impl From<&QuarantineRecord> for QuarantineView {
    fn from(q: &QuarantineRecord) -> Self {
        Self {
            conversation: q.conversation.clone(),
            reason: q.reason.clone(),
            since: rfc3339(q.since_ms),
            failures: q.failures,
            events_waiting: q.events.len(),
        }
    }
}
