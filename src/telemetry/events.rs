//! The engine's internal events. Each function counts one happening and,
//! where an operator must also read about it, logs it in the same call, so
//! a log line and its counter can never disagree.

use std::fmt::Display;

use metrics::{counter, gauge, histogram};

use super::labels::{AmbiguousOutcome, Label, ReplyOutcome, WebhookOutcome};
use super::names::*;
use crate::event::{Channel, EventKind};

pub fn webhook_request(channel: &'static str, outcome: WebhookOutcome) {
    counter!(WEBHOOK_REQUESTS, "channel" => channel, "outcome" => outcome.label()).increment(1);
}

pub fn event_accepted(channel: Channel, kind: &EventKind) {
    counter!(EVENTS, "channel" => channel.as_str(), "kind" => kind.label()).increment(1);
}

/// A batch entry for an account no integration has (the rest of the batch
/// is accepted).
pub fn entry_skipped(channel: &'static str) {
    counter!(EVENTS, "channel" => channel, "kind" => "unknown_account").increment(1);
}

/// A batch item the engine skipped (the rest of the batch was accepted):
/// counted every time, logged at debug the first time a kind is seen.
pub fn item_skipped(channel: &'static str, kind: impl Label, detail: &str) {
    let kind = kind.label();
    counter!(ITEMS_SKIPPED, "channel" => channel, "kind" => kind).increment(1);
    static LOGGED: std::sync::Mutex<Vec<(&'static str, &'static str)>> =
        std::sync::Mutex::new(Vec::new());
    let first = {
        let mut seen = crate::sync::lock(&LOGGED);
        let first = !seen.contains(&(channel, kind));
        if first {
            seen.push((channel, kind));
        }
        first
    };
    if first {
        tracing::debug!(
            channel,
            kind,
            detail,
            "Webhook item skipped (first of its kind; later ones are only counted)"
        );
    }
}

fn ambiguous_send(channel: Channel, outcome: AmbiguousOutcome, parts: usize) {
    if parts > 0 {
        counter!(AMBIGUOUS_SENDS, "channel" => channel.as_str(), "outcome" => outcome.label())
            .increment(parts as u64);
    }
}

/// A send's answer was lost (timeout after sending, connection cut, gateway
/// error): the part waits for its echo or status.
pub fn send_unconfirmed(conversation: &dyn Display, channel: Channel, error: &dyn Display) {
    tracing::warn!(conversation = %conversation, error = %error, "Send outcome unknown; the part waits for its echo or status");
    reply(channel, ReplyOutcome::Unconfirmed);
    ambiguous_send(channel, AmbiguousOutcome::Unconfirmed, 1);
}

/// An echo or a status named a part that was waiting for confirmation.
pub fn send_confirmed(channel: Channel) {
    ambiguous_send(channel, AmbiguousOutcome::Confirmed, 1);
}

/// Nothing confirmed a part within the wait: it is sent again.
pub fn part_resent(conversation: &dyn Display, channel: Channel) {
    tracing::info!(conversation = %conversation, "No confirmation of a part within the wait; sending it again");
    ambiguous_send(channel, AmbiguousOutcome::Resent, 1);
}

/// Parts found in the outbox when a conversation was rehydrated: they may
/// have reached the platform, so they wait for confirmation.
pub fn outbox_replayed(channel: Channel, parts: usize) {
    if parts > 0 {
        counter!(OUTBOX_REPLAYS, "channel" => channel.as_str()).increment(parts as u64);
    }
    ambiguous_send(channel, AmbiguousOutcome::Unconfirmed, parts);
}

pub fn duplicate(channel: Channel) {
    counter!(DUPLICATES, "channel" => channel.as_str()).increment(1);
}

pub fn rate_limited(channel: Channel) {
    counter!(RATE_LIMITED, "channel" => channel.as_str()).increment(1);
}

/// What became of one reply part: a `ReplyOutcome`, or the kind of the
/// platform's refusal.
pub fn reply(channel: Channel, outcome: impl Label) {
    counter!(REPLIES, "channel" => channel.as_str(), "outcome" => outcome.label()).increment(1);
}

/// One platform call: `SendOutcome::Ok` or the kind of its failure.
pub fn send_request(channel: Channel, outcome: impl Label) {
    counter!(SEND_REQUESTS, "channel" => channel.as_str(), "outcome" => outcome.label())
        .increment(1);
}

pub fn event_to_reply(channel: Channel, seconds: f64) {
    histogram!(EVENT_TO_REPLY, "channel" => channel.as_str()).record(seconds);
}

pub fn conversations_resident(n: usize) {
    gauge!(CONVERSATIONS_RESIDENT).set(n as f64);
}

pub fn takeovers_active(n: usize) {
    gauge!(TAKEOVERS_ACTIVE).set(n as f64);
}

/// Whether the store `kind` answered its last check (every half second).
pub fn store_available(kind: &'static str, ready: bool) {
    gauge!(STORE_AVAILABLE, "store" => kind).set(if ready { 1.0 } else { 0.0 });
}

pub fn bus_lag(n: u64) {
    gauge!(BUS_LAG).set(n as f64);
}

/// A conversation actor failed and will be restarted.
pub fn actor_failed(conversation: &dyn Display, error: &dyn Display, failures: u32) {
    tracing::warn!(conversation = %conversation, error = %error, failures, "Conversation actor failed; restarting");
    counter!(ACTOR_RESTARTS).increment(1);
}

/// An event that kept crashing its actor was stored as a dead letter.
pub fn dead_lettered(conversation: &dyn Display, position: &dyn Display) {
    tracing::error!(conversation = %conversation, position = %position, "Event moved to dead letters after repeated crashes");
    counter!(DEAD_LETTERS).increment(1);
}

/// A conversation was taken out of service after repeated failures outside
/// any one event.
pub fn quarantined(conversation: &dyn Display, failures: u32, reason: &str) {
    tracing::error!(conversation = %conversation, failures, reason, "Conversation quarantined after repeated failures; resume it through the admin API");
    counter!(QUARANTINED).increment(1);
}

/// One request to a model server and how it ended (`ok` or the kind of
/// failure); an answered one also records its time and token usage.
pub fn assistant_request(assistant: &str, outcome: impl Label, seconds: Option<f64>) {
    let assistant = assistant.to_string();
    counter!(ASSISTANT_REQUESTS, "assistant" => assistant.clone(), "outcome" => outcome.label())
        .increment(1);
    if let Some(seconds) = seconds {
        histogram!(ASSISTANT_SECONDS, "assistant" => assistant).record(seconds);
    }
}

pub fn assistant_tokens(assistant: &str, prompt: u64, completion: u64) {
    let assistant = assistant.to_string();
    counter!(ASSISTANT_TOKENS, "assistant" => assistant.clone(), "kind" => "prompt")
        .increment(prompt);
    counter!(ASSISTANT_TOKENS, "assistant" => assistant, "kind" => "completion")
        .increment(completion);
}

/// A model gave no answer after its attempts. A refused key or a spent
/// quota needs a person: logged at error.
pub fn assistant_failed(assistant: &str, error: &dyn Display, attention: bool, attempts: u32) {
    if attention {
        tracing::error!(assistant, error = %error, attempts, "Model server refused the assistant; fix its key or quota");
    } else {
        tracing::warn!(assistant, error = %error, attempts, "Model gave no answer");
    }
}

/// One knowledge-base search: whether a passage fitted, and its time.
pub fn knowledge_retrieval(assistant: &str, hit: bool, seconds: f64) {
    let outcome = if hit { "hit" } else { "miss" };
    counter!(KNOWLEDGE_RETRIEVALS, "assistant" => assistant.to_string(), "outcome" => outcome)
        .increment(1);
    histogram!(KNOWLEDGE_SECONDS).record(seconds);
}

/// An integration's token status: 1 for `status`, 0 for the others.
pub fn token_status(integration: &str, status: crate::integrations::TokenStatus) {
    for s in crate::integrations::TokenStatus::ALL {
        let value = if s == status { 1.0 } else { 0.0 };
        gauge!(TOKEN_STATUS, "integration" => integration.to_string(), "status" => s.as_str())
            .set(value);
    }
}

/// An integration deleted or disabled: 0 for every status.
pub fn token_status_gone(integration: &str) {
    for s in crate::integrations::TokenStatus::ALL {
        gauge!(TOKEN_STATUS, "integration" => integration.to_string(), "status" => s.as_str())
            .set(0.0);
    }
}

/// An alert went out (by email or webhook).
pub fn alert_sent(kind: &'static str) {
    counter!(ALERTS_SENT, "kind" => kind).increment(1);
}

/// A Gmail mailbox's history id was too old: its inbox was read again.
pub fn mailbox_resync() {
    counter!(GMAIL_RESYNCS).increment(1);
}

/// One group commit of the embedded bus's or store's writer (`writer`):
/// `ops` operations taken in `took` (their write and, where one was asked
/// for, the sync). A disk that slows down, or a store that stalls its
/// writes while it compacts, shows here first.
pub fn group_committed(writer: &'static str, ops: usize, took: std::time::Duration) {
    counter!(GROUP_COMMIT_OPS, "writer" => writer).increment(ops as u64);
    histogram!(GROUP_COMMIT_SECONDS, "writer" => writer).record(took.as_secs_f64());
}
