//! The inbound event model: what ingress puts on the bus and a conversation
//! actor handles. One webhook becomes many of these; each carries the
//! conversation it belongs to.

use serde::{Deserialize, Serialize};

use crate::config::ChannelKind;

/// The channel an event came from (the `channel` metric label).
pub type Channel = ChannelKind;

impl ChannelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Messenger => "messenger",
            Self::Instagram => "instagram",
            Self::Whatsapp => "whatsapp",
            Self::Gmail => "gmail",
            Self::Web => "web",
        }
    }

    /// Messenger, Instagram and WhatsApp: Meta's webhooks, Graph API and
    /// messaging windows.
    pub fn is_meta(self) -> bool {
        matches!(self, Self::Messenger | Self::Instagram | Self::Whatsapp)
    }
}

/// How a message to a customer is sent, as Meta's windows allow (the Send
/// API's `messaging_type` and `tag`; WhatsApp's template).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendTag {
    /// `messaging_type: RESPONSE`, inside the 24-hour window.
    Response,
    /// `messaging_type: MESSAGE_TAG`, `tag: HUMAN_AGENT`: a person, 24 h to
    /// 7 days after the customer's message.
    HumanAgent,
    /// WhatsApp after 24 h: the configured template, carrying the text.
    Template,
}

/// A conversation's id, `{integration}:{customer}`: made and split here
/// only (an integration id never contains `:`; a customer id may).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ConversationId(String);

impl ConversationId {
    /// The id of `customer`'s conversation with `integration`.
    pub fn new(integration: &str, customer: &str) -> Self {
        Self(format!("{integration}:{customer}"))
    }

    /// (integration, customer) of an id, or `None` for a malformed one.
    pub fn split(id: &str) -> Option<(&str, &str)> {
        id.split_once(':')
    }

    /// The integration part of an id (the whole id when malformed).
    pub fn integration_of(id: &str) -> &str {
        Self::split(id).map_or(id, |(i, _)| i)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for ConversationId {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ConversationId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for ConversationId {
    /// An id as stored (already `{integration}:{customer}`).
    fn from(id: &str) -> Self {
        Self(id.to_string())
    }
}

/// One event of one conversation, as it travels on the bus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboundEvent {
    pub conversation: ConversationId,
    pub integration: String,
    pub channel: Channel,
    /// The customer's id on the platform (PSID, IGSID, wa_id, ...).
    pub customer: String,
    /// The platform's time for the event, in ms since the epoch.
    pub timestamp_ms: u64,
    /// When ingress accepted the webhook, in ms since the epoch.
    pub received_at_ms: u64,
    /// The customer's name when the platform gives it (WhatsApp contacts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_name: Option<String>,
    pub kind: EventKind,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// The customer wrote.
    Message {
        mid: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        attachments: Vec<Attachment>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        quick_reply: Option<String>,
    },
    /// A message the business sent (by this engine or by a person in
    /// another app), echoed back by the platform.
    Echo {
        mid: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        app_id: Option<u64>,
        /// The `metadata` the sender set: this engine's part id on the
        /// messages it sent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        metadata: Option<String>,
        /// Sent through the app this webhook came from (its `app_id` is
        /// the app's configured `meta_app_id`): this engine's own.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        own_app: bool,
    },
    /// The customer pressed a button.
    Postback {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mid: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
        payload: String,
    },
    /// Messages sent before `watermark` were delivered.
    Delivery {
        watermark: u64,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        mids: Vec<String>,
    },
    /// Messages sent before `watermark` were read.
    Read { watermark: u64 },
    /// The platform's report on one message the business sent (WhatsApp
    /// `statuses`, Instagram `messaging_seen`).
    Status {
        mid: String,
        status: ReportedStatus,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// The part id the engine sent with the message (WhatsApp
        /// `biz_opaque_callback_data`), which confirms a send whose answer
        /// was lost.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        part: Option<String>,
    },
    /// A public comment on a post (Instagram `comments`, Page `feed`),
    /// answered publicly under it.
    Comment {
        comment_id: String,
        surface: CommentSurface,
        text: String,
        /// The post or media commented on.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        post_id: Option<String>,
    },
    /// The customer reacted to a message with an emoji (recorded, not
    /// answered).
    Reaction {
        mid: String,
        target: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        emoji: Option<String>,
    },
    /// A deadline of this conversation is due: sent through the bus by an
    /// instance that does not own the conversation, to the one that does.
    Wake,
    /// A Gmail mailbox changed (a Pub/Sub push, or the periodic check
    /// when `history_id` is 0): its new mail is read from its history.
    /// Carried by the mailbox's own conversation id
    /// (`{integration}:mailbox`), never handed to a conversation actor.
    Mailbox {
        #[serde(default)]
        history_id: u64,
    },
    /// An operator's command from the admin API, ordered with the
    /// conversation's other events.
    Agent {
        /// Unique per command: remembered like a message id, so a replay
        /// applies it once.
        command: String,
        action: AgentAction,
    },
}

/// What an operator asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum AgentAction {
    /// A person takes over; the AI stays silent until resumed (or until
    /// `auto_resume_minutes`, else the integration's `auto_resume_after`).
    Takeover {
        by: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        auto_resume_minutes: Option<u32>,
    },
    /// The AI answers again.
    Resume,
    /// A person's message to the customer: text, a file by link, or both.
    Message {
        #[serde(default)]
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        attachment: Option<OutboundAttachment>,
    },
}

/// A file a person sends by link (`type`: image, video, audio, file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundAttachment {
    #[serde(rename = "type")]
    pub kind: String,
    pub url: String,
}

impl EventKind {
    /// What the platform reports about the business's own messages (echo,
    /// status, delivery, read): what confirms sends, taken even when the
    /// engine is behind.
    pub fn is_report(&self) -> bool {
        matches!(
            self,
            Self::Echo { .. } | Self::Status { .. } | Self::Delivery { .. } | Self::Read { .. }
        )
    }

    /// The `kind` metric label.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Message { .. } => "message",
            Self::Echo { .. } => "echo",
            Self::Postback { .. } => "postback",
            Self::Delivery { .. } => "delivery",
            Self::Read { .. } => "read",
            Self::Status { .. } => "status",
            Self::Comment { .. } => "comment",
            Self::Reaction { .. } => "reaction",
            Self::Wake => "wake",
            Self::Mailbox { .. } => "mailbox",
            Self::Agent { action, .. } => match action {
                AgentAction::Takeover { .. } => "takeover",
                AgentAction::Resume => "resume",
                AgentAction::Message { .. } => "agent_message",
            },
        }
    }
}

/// Where a comment was made, which decides how it is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommentSurface {
    /// `POST /{comment_id}/replies`.
    Instagram,
    /// `POST /{comment_id}/comments`.
    Page,
}

/// What the platform reported about a sent message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportedStatus {
    Sent,
    Delivered,
    Read,
    Failed,
}

/// A file or media the customer sent, kept as a reference: a link (Meta's
/// links expire), or a WhatsApp media id.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Attachment {
    /// `image`, `video`, `audio`, `file` / `document`, `location`, ...
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The platform's media id (WhatsApp), fetched through the Graph API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    /// Caption, file name, or a place's name and address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
}

impl InboundEvent {
    /// Bus encoding.
    pub fn encode(&self) -> Vec<u8> {
        // Serialising plain data to a Vec cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Bus decoding.
    pub fn decode(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

impl From<&OutboundAttachment> for Attachment {
    fn from(a: &OutboundAttachment) -> Self {
        Self {
            kind: a.kind.clone(),
            url: Some(a.url.clone()),
            ..Self::default()
        }
    }
}
