//! A model behind any OpenAI-compatible chat-completions endpoint (OpenAI,
//! vLLM, Ollama, llama.cpp's server, LM Studio...): `POST
//! {base_url}/chat/completions`, streamed (server-sent events) or not.
//!
//! Each attempt has a deadline for the whole answer (`timeout`) and, when
//! streamed, one between chunks (`chunk_timeout`): a stalled stream is cut.
//! 429 waits for its `Retry-After`; 5xx, cut or stalled answers are tried
//! again with backoff, `max_attempts` in all; a refused key (401) or a
//! spent quota (`insufficient_quota`) is not retried; a request over the
//! model's context (`context_length_exceeded`) is sent once more with a
//! quarter of its history. At most `max_concurrency` requests are in
//! flight per assistant; the others wait for a free slot.

mod response;

use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use super::prompt::{self, HistoryLine};
use super::ReplyRequest;
use super::{failure_policy, Answer, Assistant, AssistantError, BuildError, FailurePolicy};
use crate::config::AssistantConfig;
use crate::telemetry::{self, AssistantOutcome};

/// The longest `Retry-After` honoured; a server asking for more is given up
/// on for this turn.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);
const BACKOFF_INITIAL: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(8);

pub struct OpenAiAssistant {
    id: String,
    endpoint: String,
    model: String,
    api_key: Option<String>,
    system: String,
    config: AssistantConfig,
    client: reqwest::Client,
    slots: Semaphore,
    policy: FailurePolicy,
}

impl OpenAiAssistant {
    pub fn new(config: &AssistantConfig) -> Result<Self, BuildError> {
        let fail = |reason: String| BuildError {
            id: config.id.clone(),
            reason,
        };
        let base = config
            .base_url
            .as_deref()
            .ok_or_else(|| fail("base_url is required".into()))?;
        let model = config
            .model
            .clone()
            .ok_or_else(|| fail("model is required".into()))?;
        let api_key = match &config.api_key_env {
            Some(var) => Some(
                std::env::var(var)
                    .map_err(|_| fail(format!("the environment variable {var} is not set")))?,
            ),
            None => None,
        };
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .pool_max_idle_per_host(config.max_concurrency)
            .build()
            .map_err(|e| fail(format!("cannot build its HTTP client: {e}")))?;
        Ok(Self {
            id: config.id.clone(),
            endpoint: format!("{}/chat/completions", base.trim_end_matches('/')),
            model,
            api_key,
            system: config.system_prompt.clone().unwrap_or_default(),
            config: config.clone(),
            client,
            slots: Semaphore::new(config.max_concurrency.max(1)),
            policy: failure_policy(config),
        })
    }

    /// The request body for `request` with `history`.
    fn body(&self, request: &ReplyRequest, history: &[HistoryLine]) -> Value {
        let mut system = self.system.trim().to_string();
        if !system.is_empty() {
            system.push_str("\n\n");
        }
        system.push_str(&prompt::guidelines(request.channel));
        if let Some(knowledge) = &request.knowledge {
            system.push_str("\n\n");
            system.push_str(&prompt::knowledge(knowledge));
        }
        let mut body = json!({
            "model": self.model,
            "messages": prompt::messages(&system, request, history),
            "stream": self.config.stream,
        });
        if self.config.stream {
            body["stream_options"] = json!({"include_usage": true});
        }
        if let Some(t) = self.config.temperature {
            body["temperature"] = json!(t);
        }
        if let Some(n) = self.config.max_tokens {
            body["max_tokens"] = json!(n);
        }
        if self.config.offer_choices {
            body["tools"] = json!([prompt::choices_tool()]);
            body["tool_choice"] = json!("auto");
        }
        body
    }

    /// One request, within its deadlines.
    async fn attempt(&self, body: &Value) -> Result<response::Reply, AssistantError> {
        let timeout = self.config.timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        let mut call = self.client.post(&self.endpoint).json(body);
        if let Some(key) = &self.api_key {
            call = call.bearer_auth(key);
        }
        let sent = tokio::time::timeout_at(deadline, call.send())
            .await
            .map_err(|_| AssistantError::Timeout(timeout))?
            .map_err(|e| AssistantError::Transport(without_url(e)))?;
        response::read(sent, deadline, timeout, self.config.chunk_timeout).await
    }
}

/// A transport error's text without the URL (a base URL may carry a key).
fn without_url(e: reqwest::Error) -> String {
    e.without_url().to_string()
}

#[async_trait]
impl Assistant for OpenAiAssistant {
    fn id(&self) -> &str {
        &self.id
    }

    async fn reply(&self, request: &ReplyRequest) -> Result<Answer, AssistantError> {
        let mut history = prompt::budget(
            &request.history,
            self.config.history_turns,
            self.config.history_chars,
        );
        let mut trimmed = false;
        let mut attempts = 0;
        let mut pause = BACKOFF_INITIAL;
        loop {
            attempts += 1;
            let body = self.body(request, history);
            let started = Instant::now();
            let result = {
                let _slot = self
                    .slots
                    .acquire()
                    .await
                    .map_err(|_| AssistantError::Unavailable("shutting down".into()))?;
                self.attempt(&body).await
            };
            let error = match result {
                Ok(reply) => {
                    let seconds = started.elapsed().as_secs_f64();
                    telemetry::assistant_request(&self.id, AssistantOutcome::Ok, Some(seconds));
                    if let Some((p, c)) = reply.usage {
                        telemetry::assistant_tokens(&self.id, p, c);
                    }
                    let answer =
                        prompt::read_answer(&reply.content, reply.tool_arguments.as_deref());
                    if !answer.text.is_empty() {
                        return Ok(answer);
                    }
                    AssistantError::Empty
                }
                Err(e) => {
                    telemetry::assistant_request(&self.id, e.outcome(), None);
                    e
                }
            };
            if matches!(error, AssistantError::ContextTooLong) && !trimmed {
                // Once more with the newest quarter of the history.
                trimmed = true;
                history = &history[history.len() - history.len() / 4..];
                attempts -= 1;
                continue;
            }
            let wait = match &error {
                AssistantError::RateLimited {
                    retry_after: Some(after),
                } => *after,
                _ => pause,
            };
            if !error.retryable() || attempts >= self.config.max_attempts || wait > MAX_RETRY_AFTER
            {
                telemetry::assistant_failed(&self.id, &error, error.needs_attention(), attempts);
                return Err(error);
            }
            tracing::debug!(assistant = %self.id, error = %error, ?wait, "Model request failed; trying again");
            tokio::time::sleep(wait).await;
            pause = (pause * 2).min(BACKOFF_MAX);
        }
    }

    fn history_turns(&self) -> usize {
        self.config.history_turns
    }

    fn on_failure(&self) -> FailurePolicy {
        self.policy.clone()
    }
}
