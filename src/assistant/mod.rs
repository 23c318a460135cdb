//! Assistants write the answers. A trait, so the engine does not care
//! whether the text comes from keyword rules (offline, the default) or a
//! language model behind an OpenAI-compatible server ([`openai`]).
//!
//! An answer is text plus optional *choices* (quick replies), which each
//! channel renders its own way (see `channels::choices`).

mod openai;
mod prompt;
mod rules;

use std::time::Duration;

use async_trait::async_trait;

pub use openai::OpenAiAssistant;
pub use prompt::{guidelines, HistoryLine, Speaker};
pub use rules::RulesAssistant;

use crate::config::{AssistantConfig, AssistantKind, OnFailure};
use crate::event::{Attachment, Channel};
use crate::knowledge::Retrieval;
use crate::telemetry::AssistantOutcome;

/// What the customer said since the last answer, with what came before.
#[derive(Debug, Clone)]
pub struct ReplyRequest {
    pub channel: Channel,
    pub customer: String,
    /// The messages to answer, oldest first (coalesced into one turn).
    pub messages: Vec<String>,
    /// Media that arrived with them (references only).
    pub attachments: Vec<Attachment>,
    /// Earlier messages of the conversation, oldest first.
    pub history: Vec<HistoryLine>,
    /// What the assistant's knowledge base has for this turn (`None`: it
    /// has no documents).
    pub knowledge: Option<Retrieval>,
}

/// An assistant's answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answer {
    pub text: String,
    /// Quick replies offered with it, in order.
    pub choices: Vec<String>,
}

impl Answer {
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            choices: Vec::new(),
        }
    }
}

impl From<&str> for Answer {
    fn from(text: &str) -> Self {
        Self::text(text)
    }
}

impl From<String> for Answer {
    fn from(text: String) -> Self {
        Self::text(text)
    }
}

/// Why a model gave no answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AssistantError {
    #[error("the model server refused the API key (HTTP 401)")]
    Unauthorized,
    #[error("the model account has no quota left (insufficient_quota)")]
    QuotaExceeded,
    #[error("the model server is rate limiting (HTTP 429)")]
    RateLimited { retry_after: Option<Duration> },
    #[error("the model server failed (HTTP {status})")]
    Server { status: u16 },
    #[error("the conversation is longer than the model's context")]
    ContextTooLong,
    #[error("the model server refused the request (HTTP {status}): {message}")]
    Refused { status: u16, message: String },
    #[error("the model's answer stalled: nothing for {0:?}")]
    Stalled(Duration),
    #[error("the model's answer took longer than {0:?}")]
    Timeout(Duration),
    #[error("the model server cannot be reached: {0}")]
    Transport(String),
    #[error("the model's answer cannot be read: {0}")]
    BadAnswer(String),
    #[error("the model's answer is empty")]
    Empty,
    #[error("assistant unavailable: {0}")]
    Unavailable(String),
    /// Nothing in the knowledge base answers the turn and the assistant
    /// hands such turns to a person (`on_no_match = "handover"`).
    #[error("nothing in the knowledge base answers this")]
    NoMatch,
}

impl AssistantError {
    /// Whether trying again may help (the attempts are bounded).
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            Self::RateLimited { .. }
                | Self::Server { .. }
                | Self::Stalled(_)
                | Self::Transport(_)
                | Self::BadAnswer(_)
                | Self::Empty
                | Self::Unavailable(_)
        )
    }

    /// Whether a person must fix something (key, quota): logged at error.
    pub fn needs_attention(&self) -> bool {
        matches!(self, Self::Unauthorized | Self::QuotaExceeded)
    }

    /// The `outcome` label of `switchboard_assistant_requests_total`.
    pub fn outcome(&self) -> AssistantOutcome {
        match self {
            Self::Unauthorized => AssistantOutcome::Unauthorized,
            Self::QuotaExceeded => AssistantOutcome::QuotaExceeded,
            Self::RateLimited { .. } => AssistantOutcome::RateLimited,
            Self::Server { .. } => AssistantOutcome::ServerError,
            Self::ContextTooLong => AssistantOutcome::ContextLengthExceeded,
            Self::Refused { .. } => AssistantOutcome::Refused,
            Self::Stalled(_) => AssistantOutcome::Stalled,
            Self::Timeout(_) => AssistantOutcome::Timeout,
            Self::Transport(_) | Self::Unavailable(_) => AssistantOutcome::Unreachable,
            Self::BadAnswer(_) | Self::Empty => AssistantOutcome::BadAnswer,
            Self::NoMatch => AssistantOutcome::Refused,
        }
    }
}

/// What becomes of a turn whose assistant gave no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailurePolicy {
    /// This text is sent instead.
    Fallback(String),
    /// A person takes the conversation over.
    Handover,
}

#[async_trait]
pub trait Assistant: Send + Sync + 'static {
    /// Its id in the config (its knowledge base is found by it).
    fn id(&self) -> &str;

    /// The answer to send, before reply shaping.
    async fn reply(&self, request: &ReplyRequest) -> Result<Answer, AssistantError>;

    /// Whether answers come back at once (no network, no model). A typing
    /// indicator before an instant, undelayed answer would never be seen
    /// and only spends the platform's call quota, so it is not sent; and
    /// the answer is written in the same turn as the message.
    fn is_instant(&self) -> bool {
        false
    }

    /// Earlier messages it wants as history, at most.
    fn history_turns(&self) -> usize {
        0
    }

    /// What to do when [`Assistant::reply`] fails.
    fn on_failure(&self) -> FailurePolicy {
        FailurePolicy::Handover
    }
}

/// Why an assistant cannot be built.
#[derive(Debug, thiserror::Error)]
#[error("assistant {id}: {reason}")]
pub struct BuildError {
    pub id: String,
    pub reason: String,
}

/// Builds the assistant a config entry describes.
pub fn build(config: &AssistantConfig) -> Result<Box<dyn Assistant>, BuildError> {
    match config.kind {
        AssistantKind::Rules => Ok(Box::new(RulesAssistant::new(config))),
        AssistantKind::Openai => Ok(Box::new(OpenAiAssistant::new(config)?)),
    }
}

/// The failure policy a config entry asks for.
fn failure_policy(config: &AssistantConfig) -> FailurePolicy {
    match config.on_failure {
        OnFailure::Fallback => FailurePolicy::Fallback(config.fallback.clone()),
        OnFailure::Handover => FailurePolicy::Handover,
    }
}
