//! `[[assistants]]`: who writes the answers. Keyword rules (offline) or a
//! model behind any OpenAI-compatible chat-completions endpoint.

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AssistantKind {
    Rules,
    Openai,
}

/// What happens to a turn when the model gave no answer after its attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// The assistant's `fallback` text is sent.
    #[default]
    Fallback,
    /// A person takes the conversation over (nothing is sent).
    Handover,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssistantConfig {
    pub id: String,
    pub kind: AssistantKind,
    /// Rules: the answer when no rule matches. Model: the answer when the
    /// model fails and `on_failure = "fallback"`.
    #[serde(default)]
    pub fallback: String,
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    /// Model: the API root, e.g. `https://api.openai.com/v1` (the engine
    /// posts to `{base_url}/chat/completions`).
    #[serde(default)]
    pub base_url: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    /// Model: the environment variable holding the API key (sent as a
    /// bearer token); none for servers without keys.
    #[serde(default)]
    pub api_key_env: Option<String>,
    #[serde(default)]
    pub system_prompt: Option<String>,
    /// Model: the whole answer must be in by then (per attempt).
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Model: a stream that sends nothing for this long is cut.
    #[serde(default = "default_chunk_timeout", with = "humantime_serde")]
    pub chunk_timeout: Duration,
    /// Model: earlier messages of the conversation sent as history, at most.
    #[serde(default = "default_history_turns")]
    pub history_turns: usize,
    /// Model: characters of history sent, at most (the oldest go first).
    #[serde(default = "default_history_chars")]
    pub history_chars: usize,
    /// Model: requests in flight at once, at most (the rest wait their turn).
    #[serde(default = "default_max_concurrency")]
    pub max_concurrency: usize,
    /// Model: tries per answer (429, 5xx, cut or stalled streams).
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    #[serde(default)]
    pub on_failure: OnFailure,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Model: stream the answer (server-sent events).
    #[serde(default = "default_true")]
    pub stream: bool,
    /// Model: offer it the `offer_choices` tool, so it can attach quick
    /// replies to its answer.
    #[serde(default)]
    pub offer_choices: bool,
    /// The tenant whose store keeps its knowledge base (default: the
    /// tenant of the first integration that uses it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// The language its knowledge base is analysed in (stemming, stop words).
    #[serde(default = "default_language")]
    pub language: String,
    /// Knowledge-base passages given with each turn, at most.
    #[serde(default = "default_passages")]
    pub knowledge_passages: usize,
    /// A passage scoring less (BM25) does not fit the question.
    #[serde(default = "default_min_score")]
    pub knowledge_min_score: f32,
    /// When nothing in the knowledge base fits: `"tell"` the model (or the
    /// rules' fallback), or `"handover"` to a person without answering.
    #[serde(default)]
    pub on_no_match: OnNoMatch,
    /// An embeddings model on the same server (`base_url`, `api_key_env`):
    /// retrieval is then hybrid, BM25 and vectors fused by reciprocal rank.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embeddings_model: Option<String>,
    /// With embeddings: a passage this similar (cosine) to the question
    /// fits it even without a BM25 score.
    #[serde(default = "default_min_similarity")]
    pub knowledge_min_similarity: f32,
}

/// What happens to a turn nothing in the knowledge base answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnNoMatch {
    /// The model is told nothing fits and offers a person; the rules
    /// assistant sends its fallback.
    #[default]
    Tell,
    Handover,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    pub keywords: Vec<String>,
    pub reply: String,
    /// Quick replies offered with the answer (buttons or a list where the
    /// channel has them, numbered lines where it has not).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<String>,
}

impl AssistantConfig {
    /// An assistant of `kind` with every other key at its default.
    pub fn new(id: &str, kind: AssistantKind) -> Self {
        Self {
            id: id.to_string(),
            kind,
            fallback: String::new(),
            rules: Vec::new(),
            base_url: None,
            model: None,
            api_key_env: None,
            system_prompt: None,
            timeout: default_timeout(),
            chunk_timeout: default_chunk_timeout(),
            history_turns: default_history_turns(),
            history_chars: default_history_chars(),
            max_concurrency: default_max_concurrency(),
            max_attempts: default_max_attempts(),
            on_failure: OnFailure::Fallback,
            temperature: None,
            max_tokens: None,
            stream: true,
            offer_choices: false,
            tenant: None,
            language: default_language(),
            knowledge_passages: default_passages(),
            knowledge_min_score: default_min_score(),
            on_no_match: OnNoMatch::Tell,
            embeddings_model: None,
            knowledge_min_similarity: default_min_similarity(),
        }
    }
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_chunk_timeout() -> Duration {
    Duration::from_secs(20)
}
fn default_history_turns() -> usize {
    20
}
fn default_history_chars() -> usize {
    8_000
}
fn default_max_concurrency() -> usize {
    64
}
fn default_max_attempts() -> u32 {
    3
}
fn default_true() -> bool {
    true
}
fn default_language() -> String {
    "english".into()
}
fn default_passages() -> usize {
    4
}
fn default_min_score() -> f32 {
    1.0
}
fn default_min_similarity() -> f32 {
    0.5
}
