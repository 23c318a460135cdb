//! The sending side of a load run: webhooks leave at their planned times,
//! each delivered (and retried) on its own task.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::Rng;

use super::tracker::Tracker;
use super::traffic::{self, Traffic, Webhook};
use super::{LoadgenOptions, Sent};
use crate::channels::webhook::sign;
use crate::clock::now_ms;
use crate::tools::sim::gmail::oidc::push_body;

/// Recently accepted webhook bodies (their event counts, and whether each
/// is a Gmail push), for redeliveries: only a body the engine acknowledged
/// is a redelivery when sent again (one it refused is still a first
/// delivery).
pub(super) type Recent = Arc<std::sync::Mutex<VecDeque<(Arc<Vec<u8>>, usize, bool)>>>;

/// What Gmail traffic needs: the sink's fake Gmail (emails are delivered
/// into it) and the push token (signed once for the run).
pub(super) struct GmailSide {
    pub(super) sim: Arc<crate::tools::sim::gmail::GmailSim>,
    pub(super) token: String,
}

/// Sends the schedule: webhooks leave at their planned times.
pub(super) struct Pacer {
    pub(super) traffic: Traffic,
    pub(super) rng: SmallRng,
    pub(super) recent: Recent,
    pub(super) options: Arc<LoadgenOptions>,
    pub(super) http: reqwest::Client,
    pub(super) tracker: Arc<Tracker>,
    pub(super) sent: Arc<Sent>,
    pub(super) runtime: tokio::runtime::Handle,
    pub(super) gmail: Option<Arc<GmailSide>>,
}

impl Pacer {
    pub(super) fn run(mut self, start: Instant, progress_every: Option<Duration>) {
        let duration = self.options.duration.as_secs_f64();
        let mut due = 0.0_f64;
        let mut last_progress = start;
        while due < duration {
            let elapsed = start.elapsed().as_secs_f64();
            if due > elapsed {
                let wait = (due - elapsed).min(0.001);
                std::thread::sleep(Duration::from_secs_f64(wait));
                continue;
            }
            due = self.send_one(start, due);
            if let Some(every) = progress_every {
                if last_progress.elapsed() >= every {
                    last_progress = Instant::now();
                    progress(&self.tracker, &self.sent, start.elapsed());
                }
            }
        }
    }

    /// Sends the webhook due at `due` (seconds into the run); returns when
    /// the next one is due.
    fn send_one(&mut self, start: Instant, due: f64) -> f64 {
        let o = &self.options;
        let at = start + Duration::from_secs_f64(due);
        let redelivery = if o.duplicates > 0.0 && self.rng.random_bool(o.duplicates) {
            let recent = crate::sync::lock(&self.recent);
            (!recent.is_empty()).then(|| recent[self.rng.random_range(0..recent.len())].clone())
        } else {
            None
        };
        let duplicate = redelivery.is_some();
        let (body, expects, events, mail, push) = match redelivery {
            Some((body, events, push)) => (body, Vec::new(), events, None, push),
            None => {
                let Webhook {
                    body,
                    events,
                    expects,
                    mail,
                } = self.traffic.next(now_ms());
                let push = mail.is_some();
                (Arc::new(body), expects, events, mail, push)
            }
        };
        let next = due + events as f64 / o.rate_at(due);
        let sent = &self.sent;
        if sent.in_flight.load(Ordering::Relaxed) >= o.max_in_flight {
            sent.not_sent.fetch_add(1, Ordering::Relaxed);
            sent.not_sent_events
                .fetch_add(events as u64, Ordering::Relaxed);
            return next;
        }
        if duplicate {
            sent.duplicates.fetch_add(1, Ordering::Relaxed);
        }
        self.tracker.expect(&expects, at);
        sent.in_flight.fetch_add(1, Ordering::Relaxed);
        sent.webhooks.fetch_add(1, Ordering::Relaxed);
        sent.events.fetch_add(events as u64, Ordering::Relaxed);
        self.runtime.spawn(deliver(
            self.http.clone(),
            o.clone(),
            self.tracker.clone(),
            sent.clone(),
            (!duplicate).then(|| self.recent.clone()),
            self.gmail.clone(),
            Delivery {
                body,
                expects,
                events,
                at,
                mail,
                push,
            },
        ));
        next
    }
}

struct Delivery {
    body: Arc<Vec<u8>>,
    expects: Vec<traffic::Expectation>,
    events: usize,
    at: Instant,
    /// An email to deliver first; the push about it is the body.
    mail: Option<crate::tools::sim::gmail::NewMail>,
    /// A Gmail push (to `--gmail-target`, with the push token).
    push: bool,
}

async fn deliver(
    http: reqwest::Client,
    o: Arc<LoadgenOptions>,
    tracker: Arc<Tracker>,
    sent: Arc<Sent>,
    recent: Option<Recent>,
    gmail: Option<Arc<GmailSide>>,
    mut d: Delivery,
) {
    if let (Some(mail), Some(g)) = (d.mail.take(), &gmail) {
        let mailbox = mail.mailbox.clone();
        let history = g.sim.deliver(mail).map_or(0, |(_, _, h)| h);
        d.body = Arc::new(push_body(&mailbox, history, &o.gmail_subscription));
    }
    let signature = sign(o.app_secret.as_bytes(), &d.body);
    let (target, auth) = match (&gmail, d.push) {
        (Some(g), true) => (
            &o.gmail_target,
            ("authorization", format!("Bearer {}", g.token)),
        ),
        _ => (&o.target, ("x-hub-signature-256", signature)),
    };
    let mut attempt = 0;
    // Whether an attempt ended without the engine's answer (it may have
    // taken the webhook all the same).
    let mut unknown = false;
    let accepted = loop {
        let result = http
            .post(target)
            .header("content-type", "application/json")
            .header(auth.0, &auth.1)
            .body(d.body.as_ref().clone())
            .send()
            .await;
        let status = match result {
            Ok(r) => Ok(r.status().as_u16()),
            Err(e) if e.is_timeout() => Err("timeout".to_string()),
            Err(e) if e.is_connect() => Err("connect".to_string()),
            Err(_) => Err("transport".to_string()),
        };
        let ok = matches!(status, Ok(s) if (200..300).contains(&s));
        unknown |= status.is_err();
        tracker.ack(status, d.at.elapsed());
        if ok {
            break true;
        }
        attempt += 1;
        if attempt > o.retries {
            break false;
        }
        tokio::time::sleep(o.retry_pause).await;
    };
    if accepted {
        sent.acked_events
            .fetch_add(d.events as u64, Ordering::Relaxed);
        if let Some(recent) = recent {
            let mut recent = crate::sync::lock(&recent);
            if recent.len() == 256 {
                recent.pop_front();
            }
            recent.push_back((d.body.clone(), d.events, d.push));
        }
    } else {
        sent.failed.fetch_add(1, Ordering::Relaxed);
        if unknown {
            tracker.uncertain(&d.expects);
        } else {
            tracker.withdraw(&d.expects, d.at);
        }
    }
    sent.in_flight.fetch_sub(1, Ordering::Relaxed);
}

pub(super) fn progress(tracker: &Tracker, sent: &Sent, elapsed: Duration) {
    let c = tracker.counts();
    let secs = elapsed.as_secs_f64().max(1e-9);
    eprint!(
        "\r{:>6.1}s  sent {} ev ({:.0}/s)  in flight {}  replies {}/{}  duplicated {}  held back {}   ",
        secs,
        sent.events.load(Ordering::Relaxed),
        sent.events.load(Ordering::Relaxed) as f64 / secs,
        sent.in_flight.load(Ordering::Relaxed),
        c.received,
        c.expected,
        c.duplicated,
        sent.not_sent.load(Ordering::Relaxed),
    );
    let _ = std::io::stderr().flush();
}
