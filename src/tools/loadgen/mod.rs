//! `switchboard loadgen`: the load harness.
//!
//! Open loop: webhooks leave on a schedule (a constant rate or a ramp),
//! never waiting for earlier ones, and every latency is measured from the
//! time the schedule said, so a slow engine cannot hide behind a slow
//! sender (no coordinated omission). The harness runs its own Graph API
//! sink (the simulator), matches each reply to the event that asked for it
//! and reports rates, ack and webhook -> Send API latency from HDR
//! histograms, and replies expected / received / missing / duplicated.

mod options;
mod pacer;
pub mod report;
pub mod tracker;
pub mod traffic;
pub mod web;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::SeedableRng;

pub use options::LoadgenOptions;
use pacer::{progress, Pacer};
pub use report::Report;
use tracker::Tracker;
use traffic::Traffic;

use crate::clock::now_ms;
use crate::tools::sim::{Accepted, Faults, ReceiptTarget, Sim, SimError, SimOptions};

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
        let accounts = [
            &options.page,
            &options.instagram,
            &options.whatsapp,
            &options.gmail,
        ]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
        let tracker = Arc::new(Tracker::new(accounts)?);
        let seen = tracker.clone();
        let tap = Arc::new(move |a: &Accepted| {
            if a.call.kind.is_reply() {
                if let Some(r) = &a.call.recipient {
                    seen.reply(&a.call.account, r, a.call.part_id.as_deref(), a.at);
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
        if let Some(mailbox) = &options.gmail {
            sink.gmail()
                .add_mailbox(mailbox, &options.gmail_refresh_token);
            let seen = tracker.clone();
            sink.gmail()
                .set_tap(Arc::new(move |mailbox: &str, to: &str, at| {
                    seen.reply(mailbox, to, None, at);
                }));
        }
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
            gmail: o.gmail.is_some().then(|| {
                let claims = crate::tools::sim::gmail::oidc::PushClaims {
                    // One token for the whole run.
                    expires_in: (o.duration + o.drain).as_secs() as i64 + 3600,
                    ..crate::tools::sim::gmail::oidc::PushClaims::valid(
                        &o.gmail_audience,
                        &o.gmail_service_account,
                    )
                };
                Arc::new(pacer::GmailSide {
                    sim: self.sink.gmail_handle(),
                    token: claims.sign(),
                })
            }),
        };
        let start = Instant::now();
        // The schedule is kept by a thread of its own: a thread sleeps to
        // within tens of microseconds, the async timer only to the
        // millisecond, and lateness of the harness would count against the
        // engine.
        let progress_every = (!o.quiet).then_some(Duration::from_secs(1));
        let intervals = o.interval.map(|every| {
            let (tracker, sent, pid) = (self.tracker.clone(), sent.clone(), o.engine_pid);
            tokio::spawn(interval_lines(tracker, sent, pid, start, every))
        });
        tokio::task::spawn_blocking(move || pacer.run(start, progress_every))
            .await
            .map_err(|e| LoadgenError::Client(format!("the sender stopped: {e}")))?;
        let send_window = start.elapsed().as_secs_f64().max(1e-9);
        self.drain(&sent, start).await;
        if let Some(task) = intervals {
            task.abort();
        }
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
            duplicate_samples: self.tracker.duplicate_samples(),
            replies_uncertain: counts.uncertain,
            replies_uncertain_answered: counts.uncertain_answered,
            receipts_failed: self.sink.receipts_sent().1,
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

/// Every `every`: one line with what the interval alone saw.
async fn interval_lines(
    tracker: Arc<Tracker>,
    sent: Arc<Sent>,
    engine: Option<u32>,
    start: Instant,
    every: Duration,
) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    let (mut events, mut replies) = (0u64, 0u64);
    loop {
        tick.tick().await;
        let (ack, e2e) = tracker.take_window();
        let now_events = sent.events.load(Ordering::Relaxed);
        let now_replies = tracker.counts().received;
        let rss = web::rss_kib(engine)
            .map_or(String::new(), |k| format!("  engine RSS {} MiB", k / 1024));
        eprintln!(
            "\rinterval {:>7.0}s  events {}  replies {}  ack p50 {:.1} p99 {:.1} ms  \
             reply p50 {:.1} p99 {:.1} ms{rss}",
            start.elapsed().as_secs_f64(),
            now_events - events,
            now_replies.saturating_sub(replies),
            ack.p50,
            ack.p99,
            e2e.p50,
            e2e.p99,
        );
        (events, replies) = (now_events, now_replies);
    }
}
