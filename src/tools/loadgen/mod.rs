//! `switchboard loadgen`: the load harness.
//!
//! Open loop: webhooks leave on a schedule (a constant rate or a ramp),
//! never waiting for earlier ones, and every latency is measured from the
//! time the schedule said, so a slow engine cannot hide behind a slow
//! sender (no coordinated omission). The harness runs its own Graph API
//! sink (the simulator), matches each reply to the event that asked for it
//! and reports rates, ack and webhook -> Send API latency from HDR
//! histograms, and replies expected / received / missing / duplicated.

mod pacer;
pub mod report;
pub mod tracker;
pub mod traffic;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use rand::rngs::SmallRng;
use rand::SeedableRng;

use pacer::{progress, Pacer};
pub use report::Report;
use tracker::Tracker;
use traffic::{Mix, Traffic};

use crate::clock::now_ms;
use crate::tools::sim::{Accepted, Faults, ReceiptTarget, Sim, SimError, SimOptions};

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
}

/// Why a load run could not run.
#[derive(Debug, thiserror::Error)]
pub enum LoadgenError {
    #[error("{0}")]
    Options(String),
    #[error("sink: {0}")]
    Sink(#[from] SimError),
    #[error("the engine does not answer at {0}")]
    Target(String),
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    #[error("cannot create latency histograms: {0}")]
    Histogram(#[from] hdrhistogram::CreationError),
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
        }
    }
}

impl LoadgenOptions {
    fn check(&self) -> Result<(), LoadgenError> {
        let bad = |m: &str| Err(LoadgenError::Options(m.to_string()));
        if self.page.is_none() && self.instagram.is_none() && self.whatsapp.is_none() {
            return bad("give at least one of --page, --instagram, --whatsapp");
        }
        if self.rate <= 0.0 || !self.rate.is_finite() {
            return bad("--rate must be a positive number of events per second");
        }
        for (name, v) in [
            ("--duplicates", self.duplicates),
            ("--instagram-share", self.instagram_share),
            ("--whatsapp-share", self.whatsapp_share),
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

    fn mix(&self) -> Mix {
        Mix {
            page: self.page.clone(),
            instagram: self.instagram.clone(),
            whatsapp: self.whatsapp.clone(),
            instagram_share: self.instagram_share,
            whatsapp_share: self.whatsapp_share,
            customers: self.customers,
            round_robin: self.round_robin,
            batch_max: self.batch_max,
            burst_share: self.bursts,
            burst_size: self.burst_size,
            out_of_order: self.out_of_order,
            receipts_share: self.receipts,
        }
    }

    fn rate_at(&self, elapsed: f64) -> f64 {
        match self.ramp_from {
            Some(from) => {
                let share = (elapsed / self.duration.as_secs_f64().max(1e-9)).min(1.0);
                (from + (self.rate - from) * share).max(1.0)
            }
            None => self.rate,
        }
    }
}

/// A load run with its sink already listening (so the engine can be
/// pointed at it before the run starts).
pub struct Loadgen {
    pub options: LoadgenOptions,
    sink: Sim,
    tracker: Arc<Tracker>,
}

/// What the pacer sent, counted as it goes.
#[derive(Default)]
struct Sent {
    webhooks: AtomicU64,
    events: AtomicU64,
    duplicates: AtomicU64,
    not_sent: AtomicU64,
    not_sent_events: AtomicU64,
    failed: AtomicU64,
    acked_events: AtomicU64,
    in_flight: AtomicUsize,
}

impl Loadgen {
    /// Checks the options and starts the sink on `options.sink`.
    pub async fn bind(options: LoadgenOptions) -> Result<Self, LoadgenError> {
        Self::bind_recording(options, 0).await
    }

    /// Like [`Loadgen::bind`], the sink also keeping up to `record_limit`
    /// calls (see [`Loadgen::sink`]).
    pub async fn bind_recording(
        options: LoadgenOptions,
        record_limit: usize,
    ) -> Result<Self, LoadgenError> {
        options.check()?;
        let accounts = [&options.page, &options.instagram, &options.whatsapp]
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        let tracker = Arc::new(Tracker::new(accounts)?);
        let seen = tracker.clone();
        let tap = Arc::new(move |a: &Accepted| {
            if a.call.kind.is_reply() {
                if let Some(r) = &a.call.recipient {
                    seen.reply(&a.call.account, r, a.at);
                }
            }
        });
        let receipts = options.echoes.then(|| ReceiptTarget {
            url: options.target.clone(),
            app_secret: options.app_secret.clone(),
            read: false,
            delay: Duration::from_millis(20),
            instagram: options.instagram.iter().cloned().collect(),
            echoes: true,
            app_id: 0,
        });
        let sink = Sim::start(
            &options.sink,
            SimOptions {
                tap: Some(tap),
                record_limit,
                faults: Faults {
                    late_rate: options.late_rate,
                    late_ms: options.late_ms,
                    cut_rate: options.cut_rate,
                    latency_ms: options.sink_latency_ms,
                    ..Faults::default()
                },
                receipts,
                model_latency_ms: options.model_latency.as_millis() as u64,
                ..SimOptions::default()
            },
        )
        .await?;
        Ok(Self {
            options,
            sink,
            tracker,
        })
    }

    /// Where the sink listens: `http://{addr}` is the engine's
    /// `meta.graph_base_url`.
    pub fn sink_addr(&self) -> std::net::SocketAddr {
        self.sink.addr
    }

    /// The sink, to read the calls it recorded.
    pub fn sink(&self) -> &Sim {
        &self.sink
    }

    /// Stops the sink.
    pub fn stop(self) {
        self.sink.stop();
    }

    /// Sends the load, waits for the replies and reports.
    pub async fn run(self) -> Result<Report, LoadgenError> {
        let report = self.send_and_measure().await;
        self.sink.stop();
        report
    }

    /// [`Loadgen::run`], the sink staying up afterwards.
    pub async fn send_and_measure(&self) -> Result<Report, LoadgenError> {
        let o = Arc::new(self.options.clone());
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(o.max_in_flight)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| LoadgenError::Client(e.to_string()))?;
        if let Err(e) = http.get(&o.target).send().await {
            return Err(LoadgenError::Target(format!("{}: {e}", o.target)));
        }
        let sent = Arc::new(Sent::default());
        let run_id = (now_ms() / 1000 % 100_000_000) as u32;
        let pacer = Pacer {
            traffic: Traffic::new(o.mix(), o.seed, run_id),
            rng: SmallRng::seed_from_u64(o.seed ^ 0x5eed),
            recent: Arc::new(std::sync::Mutex::new(VecDeque::with_capacity(256))),
            options: o.clone(),
            http,
            tracker: self.tracker.clone(),
            sent: sent.clone(),
            runtime: tokio::runtime::Handle::current(),
        };
        let start = Instant::now();
        // The schedule is kept by a thread of its own: a thread sleeps to
        // within tens of microseconds, the async timer only to the
        // millisecond, and lateness of the harness would count against the
        // engine.
        let progress_every = (!o.quiet).then_some(Duration::from_secs(1));
        tokio::task::spawn_blocking(move || pacer.run(start, progress_every))
            .await
            .map_err(|e| LoadgenError::Client(format!("the sender stopped: {e}")))?;
        let send_window = start.elapsed().as_secs_f64().max(1e-9);
        self.drain(&sent, start).await;
        if !o.quiet {
            progress(&self.tracker, &sent, start.elapsed());
            eprintln!();
        }
        let counts = self.tracker.counts();
        let report = Report {
            duration_s: send_window,
            offered_rate: (sent.events.load(Ordering::Relaxed) as f64
                + sent.not_sent_events.load(Ordering::Relaxed) as f64)
                / send_window,
            achieved_rate: sent.acked_events.load(Ordering::Relaxed) as f64 / send_window,
            webhooks_sent: sent.webhooks.load(Ordering::Relaxed),
            events_sent: sent.events.load(Ordering::Relaxed),
            duplicates_sent: sent.duplicates.load(Ordering::Relaxed),
            webhooks_not_sent: sent.not_sent.load(Ordering::Relaxed),
            webhooks_failed: sent.failed.load(Ordering::Relaxed),
            ack_errors: self.tracker.ack_errors(),
            replies_expected: counts.expected,
            replies_received: counts.received,
            replies_missing: counts.waiting,
            replies_duplicated: counts.duplicated,
            replies_uncertain: counts.uncertain,
            replies_uncertain_answered: counts.uncertain_answered,
            ack_latency_ms: self.tracker.ack_latency(),
            e2e_latency_ms: self.tracker.e2e(),
        };
        Ok(report)
    }

    /// Waits for every webhook to be answered, then for the replies (up to
    /// `--drain` without progress), then a moment more so late duplicates
    /// are seen.
    async fn drain(&self, sent: &Sent, start: Instant) {
        while sent.in_flight.load(Ordering::Relaxed) > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            if !self.options.quiet && start.elapsed().as_millis() % 1000 < 10 {
                progress(&self.tracker, sent, start.elapsed());
            }
        }
        let mut last = self.tracker.counts().received;
        let mut since = Instant::now();
        while self.tracker.counts().waiting > 0 && since.elapsed() < self.options.drain {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let now = self.tracker.counts().received;
            if now != last {
                last = now;
                since = Instant::now();
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
