//! Metric names, the engine's internal events, label enums and tracing
//! setup.
//!
//! Every metric the engine exposes is named here once (see the metrics table
//! in the README). Labels have few values (a channel, a kind, an outcome),
//! never a conversation id; each label value is an enum variant
//! (`labels.rs`). Code elsewhere reports a happening through one function
//! of `events.rs`, which counts it and, where an operator must read about
//! it, logs it too.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

mod events;
mod labels;

pub use events::*;
pub use labels::{
    AmbiguousOutcome, AssistantOutcome, Label, ReplyOutcome, SendOutcome, WebhookOutcome,
};
use names::*;

/// The metric names.
pub mod names {
    pub const WEBHOOK_REQUESTS: &str = "switchboard_webhook_requests_total";
    pub const EVENTS: &str = "switchboard_events_total";
    pub const DUPLICATES: &str = "switchboard_duplicates_total";
    pub const RATE_LIMITED: &str = "switchboard_rate_limited_total";
    pub const REPLIES: &str = "switchboard_replies_total";
    pub const SEND_REQUESTS: &str = "switchboard_send_requests_total";
    pub const EVENT_TO_REPLY: &str = "switchboard_event_to_reply_seconds";
    pub const CONVERSATIONS_RESIDENT: &str = "switchboard_conversations_resident";
    pub const TAKEOVERS_ACTIVE: &str = "switchboard_takeovers_active";
    pub const BUS_LAG: &str = "switchboard_bus_lag_events";
    pub const STORE_AVAILABLE: &str = "switchboard_store_available";
    pub const DEAD_LETTERS: &str = "switchboard_dead_letters_total";
    pub const ACTOR_RESTARTS: &str = "switchboard_actor_restarts_total";
    pub const OUTBOX_REPLAYS: &str = "switchboard_outbox_replays_total";
    pub const QUARANTINED: &str = "switchboard_quarantined_total";
    pub const ITEMS_SKIPPED: &str = "switchboard_webhook_items_skipped_total";
    pub const AMBIGUOUS_SENDS: &str = "switchboard_ambiguous_sends_total";
    pub const ASSISTANT_REQUESTS: &str = "switchboard_assistant_requests_total";
    pub const ASSISTANT_SECONDS: &str = "switchboard_assistant_seconds";
    pub const ASSISTANT_TOKENS: &str = "switchboard_assistant_tokens_total";
    pub const KNOWLEDGE_RETRIEVALS: &str = "switchboard_knowledge_retrievals_total";
    pub const KNOWLEDGE_SECONDS: &str = "switchboard_knowledge_seconds";
    pub const TOKEN_STATUS: &str = "switchboard_integration_token_status";
    pub const ALERTS_SENT: &str = "switchboard_alerts_sent_total";
    pub const GMAIL_RESYNCS: &str = "switchboard_gmail_resyncs_total";
    pub const GROUP_COMMIT_SECONDS: &str = "switchboard_group_commit_seconds";
    pub const GROUP_COMMIT_OPS: &str = "switchboard_group_commit_ops_total";
}

/// Errors while setting up telemetry.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("cannot install the metrics recorder: {0}")]
    Recorder(String),
}

static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();

/// Installs the global Prometheus recorder once per process and returns the
/// handle that renders `/metrics` (tests run several engines in one process;
/// they share it).
pub fn install_metrics() -> Result<PrometheusHandle, TelemetryError> {
    if let Some(h) = HANDLE.get() {
        return Ok(h.clone());
    }
    let builder = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(EVENT_TO_REPLY.to_string()),
            &[
                0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0,
            ],
        )
        .map_err(|e| TelemetryError::Recorder(e.to_string()))?
        .set_buckets_for_metric(
            Matcher::Full(ASSISTANT_SECONDS.to_string()),
            &[
                0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0, 30.0, 60.0, 120.0,
            ],
        )
        .map_err(|e| TelemetryError::Recorder(e.to_string()))?
        .set_buckets_for_metric(
            Matcher::Full(GROUP_COMMIT_SECONDS.to_string()),
            &[
                0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                1.0, 2.5, 5.0, 10.0,
            ],
        )
        .map_err(|e| TelemetryError::Recorder(e.to_string()))?;
    let recorder = builder.build_recorder();
    let handle = recorder.handle();
    if metrics::set_global_recorder(recorder).is_err() {
        return Err(TelemetryError::Recorder(
            "another metrics recorder is installed".into(),
        ));
    }
    let handle = HANDLE.get_or_init(|| handle).clone();
    describe();
    takeovers_active(0);
    conversations_resident(0);
    bus_lag(0);
    zero_counters();
    Ok(handle)
}

/// Counters that alerts and the dashboard read with `increase()` or
/// `rate()` are exported at 0 from the start: a counter that first appears
/// at 1 shows no increase, and its panel would be empty.
fn zero_counters() {
    for name in [DEAD_LETTERS, ACTOR_RESTARTS, QUARANTINED] {
        metrics::counter!(name).increment(0);
    }
    use crate::config::ChannelKind;
    for channel in [
        ChannelKind::Messenger,
        ChannelKind::Instagram,
        ChannelKind::Whatsapp,
        ChannelKind::Gmail,
        ChannelKind::Web,
    ] {
        let channel = channel.as_str();
        metrics::counter!(DUPLICATES, "channel" => channel).increment(0);
        metrics::counter!(RATE_LIMITED, "channel" => channel).increment(0);
    }
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        GMAIL_RESYNCS,
        "Gmail mailboxes read again from their inbox because their history id was too old"
    );
    describe_counter!(WEBHOOK_REQUESTS, "Webhook requests by channel and outcome");
    describe_counter!(EVENTS, "Events accepted onto the bus, by channel and kind");
    describe_counter!(
        DUPLICATES,
        "Redelivered messages recognised and not handled again"
    );
    describe_counter!(
        RATE_LIMITED,
        "Messages over the per-customer rate limit (recorded, not answered)"
    );
    describe_counter!(REPLIES, "Reply parts by outcome");
    describe_counter!(SEND_REQUESTS, "Calls to the platform APIs by outcome");
    describe_histogram!(
        EVENT_TO_REPLY,
        Unit::Seconds,
        "Webhook receipt to first reply part sent, configured delay excluded"
    );
    describe_gauge!(CONVERSATIONS_RESIDENT, "Conversation actors in memory");
    describe_gauge!(TAKEOVERS_ACTIVE, "Conversations a human has taken over");
    describe_gauge!(BUS_LAG, "Events on the bus not yet finished and committed");
    describe_gauge!(
        STORE_AVAILABLE,
        "1 while the store answers its half-second check, 0 while it does not"
    );
    describe_gauge!(
        TOKEN_STATUS,
        "1 for each integration's access-token status (ok, expiring, expired), 0 for the others"
    );
    describe_counter!(ALERTS_SENT, "Alerts emailed or posted, by kind");
    describe_counter!(
        DEAD_LETTERS,
        "Events that kept crashing their actor, moved to the dead-letter table"
    );
    describe_counter!(
        ACTOR_RESTARTS,
        "Conversation actors restarted after a failure"
    );
    describe_counter!(
        OUTBOX_REPLAYS,
        "Reply parts found in the outbox when a conversation was rehydrated (held for confirmation)"
    );
    describe_counter!(
        QUARANTINED,
        "Conversations taken out of service after repeated failures outside any one event"
    );
    describe_counter!(
        ITEMS_SKIPPED,
        "Webhook batch items skipped (unknown or malformed); the rest of the batch was accepted"
    );
    describe_counter!(
        AMBIGUOUS_SENDS,
        "Reply parts whose send outcome was unknown, by what became of them"
    );
    describe_counter!(
        ASSISTANT_REQUESTS,
        "Requests to a model server, by assistant and outcome (ok or the kind of failure)"
    );
    describe_histogram!(
        ASSISTANT_SECONDS,
        Unit::Seconds,
        "Time to a model's whole answer, by assistant (answered requests only)"
    );
    describe_counter!(
        KNOWLEDGE_RETRIEVALS,
        "Knowledge-base searches for a turn, by assistant and outcome (hit: a passage fits; miss: none does)"
    );
    describe_histogram!(
        KNOWLEDGE_SECONDS,
        Unit::Seconds,
        "Time of one knowledge-base search"
    );
    describe_histogram!(
        GROUP_COMMIT_SECONDS,
        Unit::Seconds,
        "Time of one group of the embedded bus's or store's writer (its write and, where asked, its sync), by writer (bus, store)"
    );
    describe_counter!(
        GROUP_COMMIT_OPS,
        "Operations taken by the embedded bus's or store's group commits, by writer"
    );
    describe_counter!(
        ASSISTANT_TOKENS,
        "Tokens a model server reported in usage, by assistant and kind (prompt, completion)"
    );
}

/// Structured logging to stderr; the filter comes from `SWITCHBOARD_LOG`
/// (default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SWITCHBOARD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// Serves `/metrics` on its own listener until the process ends.
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    handle: PrometheusHandle,
) -> std::io::Result<()> {
    use axum::{routing::get, Router};
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let handle = handle.clone();
            async move { handle.render() }
        }),
    );
    axum::serve(listener, app).await
}
