//! A fake OpenAI-compatible model on the simulator: `POST
//! /v1/chat/completions`, plain or streamed (server-sent events), in the
//! shapes real servers use: a role chunk, content chunks, a finish chunk,
//! then a usage chunk whose `choices` is empty (vLLM, OpenAI) or null
//! (alternately), then `data: [DONE]`. It answers after a configurable
//! latency, records every request, counts the most requests it had in
//! flight at once, and fails on request the ways real servers do.
//!
//! Control (JSON [`ModelControl`]): `POST /_sim/model`; `GET
//! /_sim/model/requests` lists the recorded request bodies.
//!
//! Its answer is `Answer to: {the last user message}` unless a scripted
//! answer is queued (`script`: content and / or `offer_choices` tool-call
//! arguments, one per request).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

mod stream;
use stream::async_stream;

use super::SimState;
use crate::sync::lock;

/// How a request to the fake model fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelFault {
    /// 429 with `Retry-After: 1`.
    RateLimited,
    /// 429 `insufficient_quota` (not retried).
    Quota,
    /// 401 invalid API key.
    Unauthorized,
    /// 500.
    ServerError,
    /// 503 overloaded.
    Overloaded,
    /// 400 `context_length_exceeded`.
    ContextLength,
    /// A stream that sends its first chunk, then nothing.
    Stall,
    /// A stream cut after its first chunk.
    Cut,
    /// A stream that ends cleanly after its first words: no finish chunk,
    /// no `[DONE]` (a gateway ending the response on its own error).
    Ended,
    /// An answer cut at the token limit in the middle of its second
    /// sentence (`finish_reason: "length"`).
    Length,
    /// An answer the server's filter stopped (`finish_reason:
    /// "content_filter"`).
    Filtered,
}

impl ModelFault {
    /// The error answer of a fault that refuses the request (the stream
    /// faults answer 200 and fail later).
    fn refusal(self, limit: usize, chars: usize) -> Option<Response> {
        let (status, message, kind, code) = match self {
            Self::RateLimited => (
                StatusCode::TOO_MANY_REQUESTS,
                "Rate limit reached for requests".to_string(),
                "requests",
                Some("rate_limit_exceeded"),
            ),
            Self::Quota => (
                StatusCode::TOO_MANY_REQUESTS,
                "You exceeded your current quota, please check your plan and billing details."
                    .to_string(),
                "insufficient_quota",
                Some("insufficient_quota"),
            ),
            Self::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "Incorrect API key provided.".to_string(),
                "invalid_request_error",
                Some("invalid_api_key"),
            ),
            Self::ServerError => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "The server had an error while processing your request.".to_string(),
                "server_error",
                None,
            ),
            Self::Overloaded => (
                StatusCode::SERVICE_UNAVAILABLE,
                "The engine is currently overloaded, please try again later.".to_string(),
                "server_error",
                None,
            ),
            Self::ContextLength => (
                StatusCode::BAD_REQUEST,
                format!("This model's maximum context length is {limit} tokens. However, your messages resulted in {chars} tokens."),
                "invalid_request_error",
                Some("context_length_exceeded"),
            ),
            Self::Stall | Self::Cut | Self::Ended | Self::Length | Self::Filtered => return None,
        };
        let mut response = error(status, &message, kind, code);
        if self == Self::RateLimited {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        Some(response)
    }
}

/// One scripted answer.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Scripted {
    #[serde(default)]
    pub content: String,
    /// Arguments of an `offer_choices` tool call, as JSON text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_arguments: Option<String>,
}

/// What `POST /_sim/model` sets (absent fields keep their value).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ModelControl {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// Faults for the next requests, one each, in order.
    #[serde(default)]
    pub next: Vec<ModelFault>,
    #[serde(default)]
    pub script: Vec<Scripted>,
    /// A request whose messages are longer than this many characters is
    /// refused with `context_length_exceeded` (0: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_context_chars: Option<usize>,
}

#[derive(Default)]
pub(super) struct ModelState {
    latency_ms: AtomicU64,
    max_context_chars: AtomicU64,
    next: Mutex<std::collections::VecDeque<ModelFault>>,
    script: Mutex<std::collections::VecDeque<Scripted>>,
    requests: Mutex<Vec<Value>>,
    served: AtomicU64,
    embedded: AtomicU64,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
}

impl ModelState {
    pub(super) fn new(latency_ms: u64) -> Self {
        let s = Self::default();
        s.latency_ms.store(latency_ms, Ordering::Relaxed);
        s
    }

    pub(super) fn control(&self, c: ModelControl) {
        if let Some(ms) = c.latency_ms {
            self.latency_ms.store(ms, Ordering::Relaxed);
        }
        if let Some(max) = c.max_context_chars {
            self.max_context_chars.store(max as u64, Ordering::Relaxed);
        }
        lock(&self.next).extend(c.next);
        lock(&self.script).extend(c.script);
    }

    pub(super) fn requests(&self) -> Vec<Value> {
        lock(&self.requests).clone()
    }

    pub(super) fn stats(&self) -> Value {
        json!({
            "requests": self.served.load(Ordering::Relaxed),
            "embedding_requests": self.embedded.load(Ordering::Relaxed),
            "in_flight": self.in_flight.load(Ordering::Relaxed),
            "max_in_flight": self.max_in_flight.load(Ordering::Relaxed),
        })
    }
}

/// Counts a request in flight until dropped (also when the client goes).
struct InFlight<'a>(&'a ModelState);

impl<'a> InFlight<'a> {
    fn enter(s: &'a ModelState) -> Self {
        let now = s.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        s.max_in_flight.fetch_max(now, Ordering::Relaxed);
        Self(s)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

fn error(status: StatusCode, message: &str, kind: &str, code: Option<&str>) -> Response {
    (
        status,
        Json(json!({"error": {"message": message, "type": kind, "param": null, "code": code}})),
    )
        .into_response()
}

fn not_json() -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "We could not parse the JSON body of your request.",
        "invalid_request_error",
        None,
    )
}

pub(super) async fn completions(State(state): State<Arc<SimState>>, body: Bytes) -> Response {
    let model = &state.model;
    let seq = model.served.fetch_add(1, Ordering::Relaxed);
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return not_json();
    };
    if state.record_limit > 0 {
        let mut requests = lock(&model.requests);
        if requests.len() >= state.record_limit {
            requests.remove(0);
        }
        requests.push(request.clone());
    }
    let Some(messages) = request["messages"].as_array().filter(|m| !m.is_empty()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "'messages' is a required property",
            "invalid_request_error",
            None,
        );
    };
    let chars: usize = messages
        .iter()
        .filter_map(|m| m["content"].as_str())
        .map(str::len)
        .sum();
    let limit = model.max_context_chars.load(Ordering::Relaxed) as usize;
    let fault = lock(&model.next)
        .pop_front()
        .or_else(|| (limit > 0 && chars > limit).then_some(ModelFault::ContextLength));
    let latency = Duration::from_millis(model.latency_ms.load(Ordering::Relaxed));
    if let Some(refused) = fault.and_then(|f| f.refusal(limit, chars)) {
        return refused;
    }
    let mut scripted = lock(&model.script).pop_front().unwrap_or_else(|| Scripted {
        content: format!("Answer to: {}", last_user(messages)),
        tool_arguments: None,
    });
    let finish = match fault {
        Some(ModelFault::Length) => {
            scripted
                .content
                .push_str(". And then the token limit cut this sentence at");
            "length"
        }
        Some(ModelFault::Filtered) => "content_filter",
        _ => "stop",
    };
    let name = request["model"].as_str().unwrap_or("sim-model").to_string();
    let prompt_tokens = (chars / 4).max(1) as u64;
    let completion_tokens = (scripted.content.len() / 4).max(1) as u64;
    if request["stream"].as_bool() != Some(true) {
        let guard = InFlight::enter(model);
        tokio::time::sleep(latency).await;
        drop(guard);
        let mut message = json!({"role": "assistant", "content": scripted.content});
        if let Some(args) = &scripted.tool_arguments {
            message["tool_calls"] = json!([{"id": "call_1", "type": "function",
                "function": {"name": "offer_choices", "arguments": args}}]);
        }
        return Json(json!({
            "id": format!("chatcmpl-sim{seq}"),
            "object": "chat.completion",
            "model": name,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        }))
        .into_response();
    }
    let chunk = |delta: Value, finish: Value| {
        json!({"id": format!("chatcmpl-sim{seq}"), "object": "chat.completion.chunk", "model": name,
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    let mut events = vec![chunk(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
    )];
    let words: Vec<String> = scripted
        .content
        .split_inclusive(' ')
        .map(str::to_string)
        .collect();
    for piece in words.chunks(3) {
        events.push(chunk(json!({"content": piece.concat()}), Value::Null));
    }
    if let Some(args) = &scripted.tool_arguments {
        let mut half = args.len() / 2;
        while !args.is_char_boundary(half) {
            half -= 1;
        }
        let (a, b) = args.split_at(half);
        events.push(chunk(
            json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
            "function": {"name": "offer_choices", "arguments": a}}]}),
            Value::Null,
        ));
        events.push(chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": b}}]}),
            Value::Null,
        ));
    }
    events.push(chunk(json!({}), json!(finish)));
    let no_choices = if seq % 2 == 0 { json!([]) } else { Value::Null };
    events.push(
        json!({"id": format!("chatcmpl-sim{seq}"), "object": "chat.completion.chunk",
        "model": name, "choices": no_choices,
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens}}),
    );
    let state = state.clone();
    let pause = latency / events.len().max(1) as u32;
    let stream = async_stream(events, pause, fault, state);
    let mut response = Response::new(Body::from_stream(stream));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    response
}

fn last_user(messages: &[Value]) -> String {
    messages
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .replace('\n', " ")
}

/// Words the fake embeddings treat as one meaning (a stand-in for what a
/// real embeddings model knows): each group's words land on one axis.
const MEANINGS: &[&[&str]] = &[
    &["return", "back", "returning", "returned", "send"],
    &["refund", "money", "reimburse", "refunded"],
    &["track", "tracking", "follow", "where", "parcel", "package"],
    &["cost", "price", "free", "cheap", "expensive", "pay"],
    &[
        "delivery", "deliver", "shipping", "ship", "arrive", "arrives",
    ],
];

/// Words without meaning of their own for the fake embeddings.
const FILLER: &[&str] = &[
    "a",
    "an",
    "and",
    "are",
    "can",
    "do",
    "does",
    "for",
    "how",
    "i",
    "in",
    "is",
    "it",
    "my",
    "of",
    "on",
    "or",
    "something",
    "the",
    "to",
    "want",
    "we",
    "what",
    "when",
    "you",
    "your",
];

/// A deterministic 64-dimensional embedding: each word (or its meaning
/// group) counts on one axis.
fn embedding(text: &str) -> Vec<f32> {
    use std::hash::{Hash, Hasher};
    let mut v = vec![0f32; 64];
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .map(str::to_lowercase)
        .filter(|w| !w.is_empty() && !FILLER.contains(&w.as_str()))
    {
        let key = MEANINGS
            .iter()
            .position(|group| group.contains(&word.as_str()))
            .map_or(word.clone(), |g| format!("meaning{g}"));
        let mut h = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut h);
        v[(h.finish() % 64) as usize] += 1.0;
    }
    v
}

/// `POST /v1/embeddings`: `{"model", "input": "text" | ["text", ...]}`.
pub(super) async fn embeddings(State(state): State<Arc<SimState>>, body: Bytes) -> Response {
    state.model.embedded.fetch_add(1, Ordering::Relaxed);
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return not_json();
    };
    let inputs: Vec<String> = match &request["input"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) if items.iter().all(Value::is_string) => items
            .iter()
            .filter_map(|i| i.as_str().map(str::to_string))
            .collect(),
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "'input' must be a string or an array of strings",
                "invalid_request_error",
                None,
            )
        }
    };
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, text)| json!({"object": "embedding", "index": i, "embedding": embedding(text)}))
        .collect();
    Json(json!({
        "object": "list",
        "data": data,
        "model": request["model"].as_str().unwrap_or("sim-embed"),
        "usage": {"prompt_tokens": inputs.len(), "total_tokens": inputs.len()},
    }))
    .into_response()
}
