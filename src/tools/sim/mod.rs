//! `switchboard sim`: a Meta Graph API simulator for tests and load runs.
//!
//! It answers the calls the engine makes in their real shapes (Send API,
//! sender actions, WhatsApp Cloud API, comment replies, Messenger Profile
//! API; with or without a `/vNN.N` version prefix), refuses malformed ones
//! the way Meta does, records every call, injects faults on request and can
//! send signed delivery / read webhooks back to the engine.
//!
//! Control routes (not part of Meta's API):
//! - `GET /_sim/calls?recipient=&account=&kind=` the recorded calls;
//!   `DELETE /_sim/calls` forgets them.
//! - `GET /_sim/faults`, `POST /_sim/faults` (a [`Faults`] JSON object).
//! - `GET /_sim/stats` counts of accepted and refused calls by kind.
//!
//! It also serves a fake OpenAI-compatible model at `/v1/chat/completions`
//! (see [`model`]), for the engine's `openai` assistants.

pub mod cli;
mod control;
pub mod faults;
pub mod gmail;
pub mod model;
mod reads;
mod receipts;
mod tokens;
pub mod validate;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;

pub use faults::{Fault, Faults};
pub use receipts::ReceiptTarget;
use receipts::{Receipt, ReceiptCounts};
use validate::{CallKind, Refusal, ValidCall};

use crate::clock::{now_ms, rfc3339};
use crate::sync::lock;

/// A call the simulator accepted, as handed to a [`Tap`].
#[derive(Debug, Clone)]
pub struct Accepted {
    pub call: ValidCall,
    /// The id the simulator answered with (message id, wamid, comment id).
    pub message_id: Option<String>,
    pub at: Instant,
}

/// Sees every accepted call as it is answered (the load harness matches
/// replies to the events it sent this way).
pub type Tap = Arc<dyn Fn(&Accepted) + Send + Sync>;

/// How a simulator runs.
#[derive(Clone, Default)]
pub struct SimOptions {
    /// Keep calls for `GET /_sim/calls` (at most this many, oldest dropped;
    /// 0 keeps none).
    pub record_limit: usize,
    /// When set, every call must carry this access token.
    pub token: Option<String>,
    pub faults: Faults,
    pub receipts: Option<ReceiptTarget>,
    pub tap: Option<Tap>,
    /// How long the fake model takes to answer.
    pub model_latency_ms: u64,
}

/// One call as recorded.
#[derive(Debug, Clone, Serialize)]
pub struct RecordedCall {
    pub seq: u64,
    pub time: String,
    pub path: String,
    pub kind: Option<CallKind>,
    pub account: Option<String>,
    pub recipient: Option<String>,
    pub text: Option<String>,
    pub status: u16,
    /// [`fingerprint`] of the access token the call carried (the token
    /// itself is never kept).
    pub token_fingerprint: Option<String>,
    pub body: Value,
    pub response: Value,
}

/// A short, one-way fingerprint of an access token: tests compare which
/// token a call used without the simulator keeping the secret.
pub fn fingerprint(token: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(&Sha256::digest(token.as_bytes())[..6])
}

const KINDS: [CallKind; 7] = [
    CallKind::Message,
    CallKind::SenderAction,
    CallKind::WhatsappMessage,
    CallKind::WhatsappRead,
    CallKind::CommentReply,
    CallKind::PageCommentReply,
    CallKind::MessengerProfile,
];

struct SimState {
    calls: Mutex<VecDeque<RecordedCall>>,
    record_limit: usize,
    token: Option<String>,
    faults: Mutex<Faults>,
    receipts: Option<mpsc::UnboundedSender<Receipt>>,
    receipt_counts: Arc<ReceiptCounts>,
    tap: Option<Tap>,
    seq: AtomicU64,
    accepted: [AtomicU64; KINDS.len()],
    refused: AtomicU64,
    model: model::ModelState,
    tokens: tokens::Tokens,
    gmail: Arc<gmail::GmailSim>,
}

/// A running simulator.
pub struct Sim {
    pub addr: SocketAddr,
    state: Arc<SimState>,
    task: tokio::task::JoinHandle<()>,
}

/// The simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
}

impl Sim {
    /// Binds `listen` and serves until dropped or [`Sim::stop`]ped.
    pub async fn start(listen: &str, options: SimOptions) -> Result<Self, SimError> {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|source| SimError::Bind {
                addr: listen.to_string(),
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| SimError::Bind {
            addr: listen.to_string(),
            source,
        })?;
        let receipt_counts = Arc::new(ReceiptCounts::default());
        let state = Arc::new(SimState {
            calls: Mutex::new(VecDeque::new()),
            record_limit: options.record_limit,
            token: options.token,
            faults: Mutex::new(options.faults),
            receipts: options
                .receipts
                .map(|t| receipts::spawn(t, receipt_counts.clone())),
            receipt_counts,
            tap: options.tap,
            seq: AtomicU64::new(0),
            accepted: Default::default(),
            refused: AtomicU64::new(0),
            model: model::ModelState::new(options.model_latency_ms),
            tokens: tokens::Tokens::default(),
            gmail: Arc::default(),
        });
        let app = router(state.clone()).merge(gmail::routes(state.gmail.clone()));
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "Simulator stopped");
            }
        });
        Ok(Self { addr, state, task })
    }

    /// The base URL to use as the engine's `meta.graph_base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v21.0", self.addr)
    }

    /// The recorded calls, oldest first.
    pub fn calls(&self) -> Vec<RecordedCall> {
        lock(&self.state.calls).iter().cloned().collect()
    }

    pub fn set_faults(&self, faults: Faults) {
        *lock(&self.state.faults) = faults;
    }

    /// The base URL of the fake model (an `openai` assistant's `base_url`).
    pub fn model_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Changes how the fake model behaves.
    pub fn model_control(&self, control: model::ModelControl) {
        self.state.model.control(control);
    }

    /// The request bodies the fake model received, oldest first.
    pub fn model_requests(&self) -> Vec<Value> {
        self.state.model.requests()
    }

    /// The fake model's counts: requests, in flight, most in flight at once.
    pub fn model_stats(&self) -> Value {
        self.state.model.stats()
    }

    /// Accepted calls of one kind so far.
    pub fn accepted(&self, kind: CallKind) -> u64 {
        self.state.accepted[kind_index(kind)].load(Ordering::Relaxed)
    }

    /// Receipt webhooks the engine accepted / did not accept.
    pub fn receipts_sent(&self) -> (u64, u64) {
        let c = &self.state.receipt_counts;
        (
            c.accepted.load(Ordering::Relaxed),
            c.failed.load(Ordering::Relaxed),
        )
    }

    pub fn stop(self) {
        self.task.abort();
    }
}

fn kind_index(kind: CallKind) -> usize {
    KINDS.iter().position(|k| *k == kind).unwrap_or(0)
}

fn router(state: Arc<SimState>) -> Router {
    control::routes()
        .route(
            "/v1/chat/completions",
            axum::routing::post(model::completions),
        )
        .route("/v1/embeddings", axum::routing::post(model::embeddings))
        .merge(tokens::routes())
        .fallback(graph)
        .with_state(state)
}

/// Path segments without the leading `vNN.N` version, if any.
fn segments(path: &str) -> Vec<&str> {
    let mut parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let versioned = parts.first().is_some_and(|p| {
        p.strip_prefix('v')
            .is_some_and(|v| !v.is_empty() && v.chars().all(|c| c.is_ascii_digit() || c == '.'))
    });
    if versioned {
        parts.remove(0);
    }
    parts
}

fn token_of(headers: &HeaderMap, uri: &Uri) -> Option<String> {
    if let Some(bearer) = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        return Some(bearer.to_string());
    }
    uri.query()?
        .split('&')
        .find_map(|kv| kv.strip_prefix("access_token="))
        .map(str::to_string)
}

fn bad_token() -> Refusal {
    Refusal {
        status: 401,
        code: 190,
        subcode: None,
        message: "Invalid OAuth access token - Cannot parse access token".into(),
        transient: false,
    }
}

async fn graph(
    State(state): State<Arc<SimState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if method == Method::GET {
        if let Some(listing) = reads::comment_replies(&state, &segments(uri.path())) {
            return listing;
        }
    }
    let seq = state.seq.fetch_add(1, Ordering::Relaxed);
    let path = uri.path().to_string();
    let token_fingerprint = if state.record_limit > 0 {
        token_of(&headers, &uri).map(|t| fingerprint(&t))
    } else {
        None
    };
    let parsed: Result<Value, Refusal> = serde_json::from_slice(&body)
        .map_err(|e| Refusal::invalid(format!("The request body is not valid JSON: {e}")));
    let json_body = if state.record_limit > 0 {
        parsed.as_ref().cloned().unwrap_or(Value::Null)
    } else {
        Value::Null
    };
    let outcome = decide(&state, &method, &uri, &headers, parsed);
    let (latency, late_ms) = {
        let f = lock(&state.faults);
        (f.latency_ms, if f.late_ms > 0 { f.late_ms } else { 3000 })
    };
    if latency > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(latency)).await;
    }
    let mut damage = None;
    let (status, response, call) = match outcome {
        Decision::Accept(call, damaged) => {
            damage = damaged;
            let (response, message_id) = success(&call, seq);
            state.accepted[kind_index(call.kind)].fetch_add(1, Ordering::Relaxed);
            let accepted = Accepted {
                call,
                message_id,
                at: Instant::now(),
            };
            if let Some(tap) = &state.tap {
                tap(&accepted);
            }
            send_receipt(&state, &accepted);
            (200, response, Some(accepted.call))
        }
        Decision::Refuse(refusal, call) => {
            state.refused.fetch_add(1, Ordering::Relaxed);
            (refusal.status, refusal.body(seq), call)
        }
    };
    if state.record_limit > 0 {
        let mut calls = lock(&state.calls);
        if calls.len() >= state.record_limit {
            calls.pop_front();
        }
        calls.push_back(RecordedCall {
            seq,
            time: rfc3339(now_ms()),
            path,
            kind: call.as_ref().map(|c| c.kind),
            account: call.as_ref().map(|c| c.account.clone()),
            recipient: call.as_ref().and_then(|c| c.recipient.clone()),
            text: call.as_ref().and_then(|c| c.text.clone()),
            status,
            token_fingerprint,
            body: json_body,
            response: response.clone(),
        });
    }
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    match damage {
        Some(Fault::LateAnswer) => {
            tokio::time::sleep(std::time::Duration::from_millis(late_ms)).await;
            (status, Json(response)).into_response()
        }
        Some(Fault::CutAnswer) => reads::cut_answer(status, &response),
        Some(Fault::HtmlAnswer) => (
            status,
            [(axum::http::header::CONTENT_TYPE, "text/html")],
            "<html><body>Sorry, something went wrong.</body></html>",
        )
            .into_response(),
        // A gateway's page: the call never reached Meta.
        _ if status == StatusCode::GATEWAY_TIMEOUT => (
            status,
            [(axum::http::header::CONTENT_TYPE, "text/html")],
            "<html><body><h1>504 Gateway Time-out</h1></body></html>",
        )
            .into_response(),
        _ => (status, Json(response)).into_response(),
    }
}

/// The fate of one call. A refused valid call keeps its description so
/// the record says what was refused.
enum Decision {
    /// Accepted; the answer may be damaged on its way back.
    Accept(ValidCall, Option<Fault>),
    Refuse(Refusal, Option<ValidCall>),
}

/// Validation, token check and fault draw for one call.
fn decide(
    state: &SimState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Result<Value, Refusal>,
) -> Decision {
    if method != Method::POST {
        return Decision::Refuse(
            Refusal::invalid(format!("Unsupported {method} request")),
            None,
        );
    }
    let call = match body.and_then(|b| validate::validate(&segments(uri.path()), &b)) {
        Ok(call) => call,
        Err(refusal) => return Decision::Refuse(refusal, None),
    };
    let token = token_of(headers, uri);
    let token_ok = match (&state.token, &token) {
        (_, None) => false,
        (Some(expected), Some(got)) => expected == got,
        (None, Some(_)) => true,
    };
    if !token_ok {
        return Decision::Refuse(bad_token(), Some(call));
    }
    let fault = lock(&state.faults).draw(call.kind);
    match fault {
        Some(fault) if fault.accepts() => Decision::Accept(call, Some(fault)),
        Some(fault) => Decision::Refuse(fault.refusal(call.kind), Some(call)),
        None => Decision::Accept(call, None),
    }
}

fn success(call: &ValidCall, seq: u64) -> (Value, Option<String>) {
    let recipient = call.recipient.clone().unwrap_or_default();
    match call.kind {
        CallKind::Message => {
            let mid = format!("m_sim{seq:016x}");
            (
                json!({"recipient_id": recipient, "message_id": mid}),
                Some(mid),
            )
        }
        CallKind::SenderAction => (json!({"recipient_id": recipient}), None),
        CallKind::WhatsappMessage => {
            let wamid = format!("wamid.sim{seq:016x}");
            (
                json!({
                    "messaging_product": "whatsapp",
                    "contacts": [{"input": recipient, "wa_id": recipient}],
                    "messages": [{"id": wamid}],
                }),
                Some(wamid),
            )
        }
        CallKind::WhatsappRead => (json!({"success": true}), None),
        CallKind::CommentReply | CallKind::PageCommentReply => {
            let id = format!("{}_{seq}", call.account);
            (json!({"id": id}), Some(id))
        }
        CallKind::MessengerProfile => (json!({"result": "success"}), None),
    }
}

fn send_receipt(state: &SimState, accepted: &Accepted) {
    let Some(tx) = &state.receipts else { return };
    let call = &accepted.call;
    let whatsapp = match call.kind {
        CallKind::Message => false,
        CallKind::WhatsappMessage => true,
        _ => return,
    };
    if let (Some(recipient), Some(mid)) = (&call.recipient, &accepted.message_id) {
        let _ = tx.send(Receipt {
            whatsapp,
            account: call.account.clone(),
            recipient: recipient.clone(),
            message_id: mid.clone(),
            part_id: call.part_id.clone(),
            text: call.text.clone(),
        });
    }
}

#[cfg(test)]
mod tests;
