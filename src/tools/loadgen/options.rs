//! What a load run can be told (`switchboard loadgen --help`), checked.

use std::time::Duration;

use clap::Args;

use super::traffic::Mix;
use super::LoadgenError;

/// Everything a load run can be told (`switchboard loadgen --help`).
#[derive(Args, Debug, Clone)]
pub struct LoadgenOptions {
    /// The engine's webhook URL (`/webhooks/meta/{app}`).
    #[arg(long, default_value = "http://127.0.0.1:8080/webhooks/meta/main")]
    pub target: String,
    /// The Meta app secret the engine checks signatures with.
    #[arg(long, env = "SWITCHBOARD_LOADGEN_APP_SECRET", hide_env_values = true)]
    pub app_secret: String,
    /// Messenger Page id (an integration's `account_id`) for Messenger traffic.
    #[arg(long)]
    pub page: Option<String>,
    /// Instagram account id for Instagram DM traffic.
    #[arg(long)]
    pub instagram: Option<String>,
    /// WhatsApp phone_number_id for WhatsApp traffic.
    #[arg(long)]
    pub whatsapp: Option<String>,
    /// A Gmail mailbox (a `gmail` integration's `account_id`) for email
    /// traffic: emails delivered into the sink's fake Gmail, each followed
    /// by a signed Pub/Sub push to --gmail-target.
    #[arg(long)]
    pub gmail: Option<String>,
    /// Share of events that are emails (needs --gmail). Gmail's quota
    /// (250 units/s per mailbox, 100 per send) answers about 2 emails a
    /// second per mailbox.
    #[arg(long, default_value_t = 0.0)]
    pub gmail_share: f64,
    /// The Gmail integration's push URL.
    #[arg(long, default_value = "http://127.0.0.1:8080/webhooks/gmail/load-mail")]
    pub gmail_target: String,
    /// The integration's `push_audience`, `push_service_account`,
    /// `push_subscription` and `refresh_token` (config/loadtest.toml's).
    #[arg(long, default_value = "http://127.0.0.1:8080/webhooks/gmail/load-mail")]
    pub gmail_audience: String,
    #[arg(
        long,
        default_value = "loadgen@switchboard-load.iam.gserviceaccount.com"
    )]
    pub gmail_service_account: String,
    #[arg(long, default_value = "projects/switchboard-load/subscriptions/gmail")]
    pub gmail_subscription: String,
    #[arg(long, default_value = "loadtest-refresh-token")]
    pub gmail_refresh_token: String,
    /// Share of webhooks from Instagram (needs --instagram).
    #[arg(long, default_value_t = 0.0)]
    pub instagram_share: f64,
    /// Share of webhooks from WhatsApp (needs --whatsapp).
    #[arg(long, default_value_t = 0.0)]
    pub whatsapp_share: f64,
    /// Address the harness's Graph API sink listens on; point the engine's
    /// `meta.graph_base_url` at `http://ADDR`.
    #[arg(long, default_value = "127.0.0.1:9100")]
    pub sink: String,
    /// Events per second (at the end of the ramp, with --ramp-from).
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// Start the rate here and raise it linearly to --rate over the run.
    #[arg(long)]
    pub ramp_from: Option<f64>,
    /// How long to send, e.g. 30s, 10m.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    pub duration: Duration,
    /// Distinct customers the events are spread over.
    #[arg(long, default_value_t = 10_000)]
    pub customers: u64,
    /// Pick customers in turn (1, 2, ..., N, 1, ...) instead of at random:
    /// with --customers N and N events every customer gets exactly one
    /// (the memory measurement uses this).
    #[arg(long)]
    pub round_robin: bool,
    /// Share of webhooks that are redeliveries of one already sent
    /// (they must not be answered again).
    #[arg(long, default_value_t = 0.0)]
    pub duplicates: f64,
    /// Largest number of events in one webhook (sizes are drawn 1..=N).
    #[arg(long, default_value_t = 1)]
    pub batch_max: usize,
    /// Share of webhooks that are a burst of messages from one customer.
    #[arg(long, default_value_t = 0.0)]
    pub bursts: f64,
    /// Messages in a burst.
    #[arg(long, default_value_t = 3)]
    pub burst_size: usize,
    /// Share of multi-event webhooks whose events are listed newest first.
    #[arg(long, default_value_t = 0.0)]
    pub out_of_order: f64,
    /// Share of events that are delivery or read receipts (no reply due).
    #[arg(long, default_value_t = 0.0)]
    pub receipts: f64,
    /// Times a refused or failed webhook is sent again (as Meta does).
    #[arg(long, default_value_t = 2)]
    pub retries: u32,
    /// Pause between those attempts.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1s")]
    pub retry_pause: Duration,
    /// The sink sends signed echoes back to --target as Meta does
    /// (Messenger / Instagram `message_echoes` with the engine's
    /// `metadata`, WhatsApp `sent` statuses with its
    /// `biz_opaque_callback_data`), which confirm sends whose answer was
    /// lost.
    #[arg(long)]
    pub echoes: bool,
    /// Share of replies the sink accepts but answers after --late-ms (the
    /// engine's request timeout must be shorter to see it).
    #[arg(long, default_value_t = 0.0)]
    pub late_rate: f64,
    /// How late a late answer is, in milliseconds.
    #[arg(long, default_value_t = 3000)]
    pub late_ms: u64,
    /// Share of replies the sink accepts but whose 200 it cuts mid-body.
    #[arg(long, default_value_t = 0.0)]
    pub cut_rate: f64,
    /// Milliseconds the sink takes to answer every call (a slow Graph API).
    #[arg(long, default_value_t = 0)]
    pub sink_latency_ms: u64,
    /// How long the sink's fake model (`{sink}/v1/chat/completions`, for an
    /// engine whose assistant is `openai`) takes to answer.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
    pub model_latency: Duration,
    /// Webhooks allowed to wait for their answer at once; beyond it the
    /// schedule's webhooks are counted as held back, not sent.
    #[arg(long, default_value_t = 5000)]
    pub max_in_flight: usize,
    /// After sending, how long to wait for outstanding replies.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "15s")]
    pub drain: Duration,
    /// Seed for the traffic generator (same seed, same traffic).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// No progress line.
    #[arg(long)]
    pub quiet: bool,
    /// Website chat instead of webhooks: this many visitors, each on a
    /// socket of its own, asking one question (see `--web-target`).
    #[arg(long, default_value_t = 0)]
    pub web_visitors: u64,
    /// The web integration's socket.
    #[arg(long, default_value = "ws://127.0.0.1:8080/web/load-web/ws")]
    pub web_target: String,
    /// The page origin the sockets say they come from.
    #[arg(long, default_value = "http://loadgen.test")]
    pub web_origin: String,
    /// How long every socket stays open once all are answered.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5s")]
    pub web_hold: Duration,
    /// The engine's process id: its memory is read before and with every
    /// socket open, and with every --interval line (Linux).
    #[arg(long)]
    pub engine_pid: Option<u32>,
    /// Print a line per interval (e.g. 1m) on stderr: events sent, replies,
    /// the ack and webhook -> reply p50/p99 of that interval alone, and the
    /// engine's memory (with --engine-pid). For soaks: flat or not.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub interval: Option<Duration>,
}

impl Default for LoadgenOptions {
    /// The command line's defaults (no traffic source, no app secret).
    fn default() -> Self {
        Self {
            target: "http://127.0.0.1:8080/webhooks/meta/main".into(),
            app_secret: String::new(),
            page: None,
            instagram: None,
            whatsapp: None,
            gmail: None,
            gmail_share: 0.0,
            gmail_target: "http://127.0.0.1:8080/webhooks/gmail/load-mail".into(),
            gmail_audience: "http://127.0.0.1:8080/webhooks/gmail/load-mail".into(),
            gmail_service_account: "loadgen@switchboard-load.iam.gserviceaccount.com".into(),
            gmail_subscription: "projects/switchboard-load/subscriptions/gmail".into(),
            gmail_refresh_token: "loadtest-refresh-token".into(),
            instagram_share: 0.0,
            whatsapp_share: 0.0,
            sink: "127.0.0.1:9100".into(),
            rate: 1000.0,
            ramp_from: None,
            duration: Duration::from_secs(30),
            customers: 10_000,
            round_robin: false,
            duplicates: 0.0,
            batch_max: 1,
            bursts: 0.0,
            burst_size: 3,
            out_of_order: 0.0,
            receipts: 0.0,
            retries: 2,
            retry_pause: Duration::from_secs(1),
            echoes: false,
            late_rate: 0.0,
            late_ms: 3000,
            cut_rate: 0.0,
            sink_latency_ms: 0,
            model_latency: Duration::ZERO,
            max_in_flight: 5000,
            drain: Duration::from_secs(15),
            seed: 1,
            json: false,
            quiet: false,
            web_visitors: 0,
            web_target: "ws://127.0.0.1:8080/web/load-web/ws".into(),
            web_origin: "http://loadgen.test".into(),
            web_hold: Duration::from_secs(5),
            engine_pid: None,
            interval: None,
        }
    }
}

impl LoadgenOptions {
    pub(super) fn check(&self) -> Result<(), LoadgenError> {
        let bad = |m: &str| Err(LoadgenError::Options(m.to_string()));
        if self.interval.is_some_and(|i| i.is_zero()) {
            return bad("--interval must be longer than zero");
        }
        if self.web_visitors > 0 {
            return Ok(());
        }
        if self.page.is_none()
            && self.instagram.is_none()
            && self.whatsapp.is_none()
            && self.gmail.is_none()
        {
            return bad("give at least one of --page, --instagram, --whatsapp, --gmail");
        }
        if self.rate <= 0.0 || !self.rate.is_finite() {
            return bad("--rate must be a positive number of events per second");
        }
        for (name, v) in [
            ("--duplicates", self.duplicates),
            ("--instagram-share", self.instagram_share),
            ("--whatsapp-share", self.whatsapp_share),
            ("--gmail-share", self.gmail_share),
            ("--bursts", self.bursts),
            ("--out-of-order", self.out_of_order),
            ("--receipts", self.receipts),
            ("--late-rate", self.late_rate),
            ("--cut-rate", self.cut_rate),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(LoadgenError::Options(format!(
                    "{name} must be between 0 and 1, got {v}"
                )));
            }
        }
        if self.instagram_share + self.whatsapp_share > 1.0 {
            return bad("--instagram-share and --whatsapp-share add up to more than 1");
        }
        if self.customers == 0 || self.batch_max == 0 || self.max_in_flight == 0 {
            return bad("--customers, --batch-max and --max-in-flight must be at least 1");
        }
        if self.app_secret.is_empty() {
            return bad("--app-secret is empty");
        }
        Ok(())
    }

    pub(super) fn mix(&self) -> Mix {
        Mix {
            page: self.page.clone(),
            instagram: self.instagram.clone(),
            whatsapp: self.whatsapp.clone(),
            gmail: self.gmail.clone(),
            instagram_share: self.instagram_share,
            whatsapp_share: self.whatsapp_share,
            gmail_share: self.gmail_share,
            customers: self.customers,
            round_robin: self.round_robin,
            batch_max: self.batch_max,
            burst_share: self.bursts,
            burst_size: self.burst_size,
            out_of_order: self.out_of_order,
            receipts_share: self.receipts,
        }
    }

    pub(super) fn rate_at(&self, elapsed: f64) -> f64 {
        match self.ramp_from {
            Some(from) => {
                let share = (elapsed / self.duration.as_secs_f64().max(1e-9)).min(1.0);
                (from + (self.rate - from) * share).max(1.0)
            }
            None => self.rate,
        }
    }
}
