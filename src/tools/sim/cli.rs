//! The `switchboard sim` command line: where to listen, what to record,
//! which faults to inject from the start, where to send receipts.

use std::collections::HashSet;
use std::time::Duration;

use clap::Args;

use super::{Faults, ReceiptTarget, Sim, SimError, SimOptions};

/// `switchboard sim --help`.
#[derive(Args, Debug, Clone)]
pub struct SimArgs {
    /// Address to listen on; the engine's `meta.graph_base_url` is
    /// `http://ADDR/v21.0` (the version segment is optional).
    #[arg(long, default_value = "127.0.0.1:9000")]
    pub listen: String,
    /// Calls kept for `GET /_sim/calls` (oldest dropped first; 0 keeps none).
    #[arg(long, default_value_t = 100_000)]
    pub record: usize,
    /// Require this access token on every call (any token is accepted
    /// when not set; a missing one is always refused with code 190).
    #[arg(long, env = "SWITCHBOARD_SIM_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Share of calls answered with a transient 500.
    #[arg(long, default_value_t = 0.0)]
    pub server_error_rate: f64,
    /// Share of calls throttled (613; 130429 on WhatsApp).
    #[arg(long, default_value_t = 0.0)]
    pub throttle_rate: f64,
    /// Share of calls refused with an expired token (190).
    #[arg(long, default_value_t = 0.0)]
    pub token_expired_rate: f64,
    /// Share of replies refused as outside the messaging window
    /// (10/2018278; 131047 on WhatsApp).
    #[arg(long, default_value_t = 0.0)]
    pub window_rate: f64,
    /// Milliseconds added to every answer.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Share of messages accepted whose 200 comes --late-ms late (after the
    /// engine's request timeout: the engine must not send them twice).
    #[arg(long, default_value_t = 0.0)]
    pub late_rate: f64,
    /// How late a late answer is, in milliseconds.
    #[arg(long, default_value_t = 3000)]
    pub late_ms: u64,
    /// Share of messages accepted whose 200 is cut in the middle of its body.
    #[arg(long, default_value_t = 0.0)]
    pub cut_rate: f64,
    /// Share of messages accepted whose 200 is an HTML page.
    #[arg(long, default_value_t = 0.0)]
    pub html_rate: f64,
    /// Send signed delivery webhooks for accepted messages to this URL
    /// (the engine's `/webhooks/meta/{app}`).
    #[arg(long)]
    pub webhook_target: Option<String>,
    /// App secret to sign receipt webhooks with.
    #[arg(long, env = "SWITCHBOARD_SIM_APP_SECRET", hide_env_values = true)]
    pub app_secret: Option<String>,
    /// Also send read receipts after the delivery ones.
    #[arg(long)]
    pub read_receipts: bool,
    /// Also send echoes (Messenger / Instagram `message_echoes` with the
    /// sender's `metadata`, WhatsApp `sent` statuses with its
    /// `biz_opaque_callback_data`) before the delivery receipts.
    #[arg(long)]
    pub echoes: bool,
    /// The `app_id` echoes carry.
    #[arg(long, default_value_t = 555_000_000_000_001)]
    pub echo_app_id: u64,
    /// How long receipts gather before a batch is sent.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "100ms")]
    pub receipt_delay: Duration,
    /// Account ids that are Instagram accounts (receipts use
    /// `object = "instagram"` for them). Repeatable.
    #[arg(long)]
    pub instagram: Vec<String>,
    /// How long the fake model at `/v1/chat/completions` takes to answer.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
    pub model_latency: Duration,
}

/// Why `switchboard sim` could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimArgsError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Start(#[from] SimError),
}

impl SimArgs {
    pub fn options(&self) -> Result<SimOptions, SimArgsError> {
        let faults = Faults {
            server_error_rate: self.server_error_rate,
            throttle_rate: self.throttle_rate,
            token_expired_rate: self.token_expired_rate,
            window_rate: self.window_rate,
            latency_ms: self.latency_ms,
            late_rate: self.late_rate,
            cut_rate: self.cut_rate,
            html_rate: self.html_rate,
            late_ms: self.late_ms,
            next: Default::default(),
        };
        faults
            .validate()
            .map_err(|e| SimArgsError::Invalid(format!("--{}", e.to_string().replace('_', "-"))))?;
        let receipts = match (&self.webhook_target, &self.app_secret) {
            (Some(url), Some(secret)) => Some(ReceiptTarget {
                url: url.clone(),
                app_secret: secret.clone(),
                read: self.read_receipts,
                delay: self.receipt_delay,
                instagram: self.instagram.iter().cloned().collect::<HashSet<_>>(),
                echoes: self.echoes,
                app_id: self.echo_app_id,
            }),
            (Some(_), None) => {
                return Err(SimArgsError::Invalid(
                    "--webhook-target needs --app-secret to sign the receipts".into(),
                ))
            }
            (None, _) => None,
        };
        Ok(SimOptions {
            record_limit: self.record,
            token: self.token.clone(),
            faults,
            receipts,
            tap: None,
            model_latency_ms: self.model_latency.as_millis() as u64,
        })
    }

    /// Starts the simulator described by these arguments.
    pub async fn start(&self) -> Result<Sim, SimArgsError> {
        Ok(Sim::start(&self.listen, self.options()?).await?)
    }
}
