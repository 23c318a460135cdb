//! Assistants write the answers. A trait, so the engine does not care
//! whether the text comes from keyword rules (offline, the default) or a
//! language model.

mod rules;

use async_trait::async_trait;

pub use rules::RulesAssistant;

use crate::config::{AssistantConfig, AssistantKind};
use crate::event::{Attachment, Channel};

/// What the customer said since the last answer.
#[derive(Debug, Clone)]
pub struct ReplyRequest<'a> {
    pub channel: Channel,
    pub customer: &'a str,
    /// The messages to answer, oldest first.
    pub messages: &'a [String],
    /// Media that arrived with them (references only).
    pub attachments: &'a [Attachment],
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum AssistantError {
    #[error("assistant unavailable: {0}")]
    Unavailable(String),
}

impl AssistantError {
    pub fn retryable(&self) -> bool {
        true
    }
}

#[async_trait]
pub trait Assistant: Send + Sync + 'static {
    /// The answer to send, before reply shaping.
    async fn reply(&self, request: &ReplyRequest<'_>) -> Result<String, AssistantError>;

    /// Whether answers come back at once (no network, no model). A typing
    /// indicator before an instant, undelayed answer would never be seen
    /// and only spends the platform's call quota, so it is not sent.
    fn is_instant(&self) -> bool {
        false
    }
}

/// Builds the assistant a config entry describes; `None` for a kind this
/// build cannot run (validation refuses those first).
pub fn build(config: &AssistantConfig) -> Option<Box<dyn Assistant>> {
    match config.kind {
        AssistantKind::Rules => Some(Box::new(RulesAssistant::new(config))),
        AssistantKind::Openai => None,
    }
}
