//! Matches the replies the sink receives to the events that asked for
//! them, and keeps the latency histograms.
//!
//! Each customer's expected replies queue up in send order; a reply to a
//! customer answers the oldest one still waiting (the engine answers a
//! conversation in order). A reply nobody waits for is a duplicate.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use super::traffic::Expectation;
use crate::sync::lock;

/// Percentiles of one histogram, in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Percentiles {
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub count: u64,
}

impl Percentiles {
    fn of(h: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            p50: ms(h.value_at_quantile(0.50)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
            count: h.len(),
        }
    }
}

/// 1 µs .. 10 min at 3 significant digits; longer values are clamped.
fn histogram() -> Result<Histogram<u64>, hdrhistogram::CreationError> {
    Histogram::new_with_bounds(1, 600_000_000, 3)
}

fn record(h: &mut Histogram<u64>, d: Duration) {
    let us = (d.as_micros() as u64).clamp(1, 600_000_000);
    h.saturating_record(us);
}

#[derive(Default)]
struct Replies {
    waiting: HashMap<String, HashMap<String, VecDeque<Instant>>>,
    expected: u64,
    received: u64,
    duplicated: u64,
}

/// Shared between the sender tasks and the sink.
pub struct Tracker {
    /// Only replies from these accounts belong to the run.
    accounts: HashSet<String>,
    replies: Mutex<Replies>,
    e2e: Mutex<Histogram<u64>>,
    ack: Mutex<Histogram<u64>>,
    ack_errors: Mutex<BTreeMap<String, u64>>,
}

/// The counts at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    pub expected: u64,
    pub received: u64,
    pub duplicated: u64,
    pub waiting: u64,
}

impl Tracker {
    /// Tracks replies sent from `accounts` (others are not the run's).
    pub fn new(accounts: HashSet<String>) -> Result<Self, hdrhistogram::CreationError> {
        Ok(Self {
            accounts,
            replies: Mutex::default(),
            e2e: Mutex::new(histogram()?),
            ack: Mutex::new(histogram()?),
            ack_errors: Mutex::default(),
        })
    }

    /// Registers the replies a webhook scheduled at `at` should cause.
    pub fn expect(&self, expects: &[Expectation], at: Instant) {
        let mut r = lock(&self.replies);
        for e in expects {
            r.waiting
                .entry(e.account.clone())
                .or_default()
                .entry(e.customer.clone())
                .or_default()
                .push_back(at);
        }
        r.expected += expects.len() as u64;
    }

    /// Withdraws the expectations of a webhook the engine never accepted.
    pub fn withdraw(&self, expects: &[Expectation], at: Instant) {
        let mut r = lock(&self.replies);
        let mut removed = 0;
        for e in expects {
            let queue = r
                .waiting
                .get_mut(&e.account)
                .and_then(|c| c.get_mut(&e.customer));
            if let Some(q) = queue {
                if let Some(i) = q.iter().rposition(|t| *t == at) {
                    q.remove(i);
                    removed += 1;
                }
            }
        }
        r.expected -= removed;
    }

    /// A reply from `account` to `customer` arrived at the sink.
    pub fn reply(&self, account: &str, customer: &str, at: Instant) {
        if !self.accounts.contains(account) {
            return;
        }
        let sent = {
            let mut r = lock(&self.replies);
            let sent = r
                .waiting
                .get_mut(account)
                .and_then(|c| c.get_mut(customer))
                .and_then(VecDeque::pop_front);
            match sent {
                Some(_) => r.received += 1,
                None => r.duplicated += 1,
            }
            sent
        };
        if let Some(sent) = sent {
            record(&mut lock(&self.e2e), at.saturating_duration_since(sent));
        }
    }

    /// A webhook was answered `status` after `latency` (from its
    /// scheduled time).
    pub fn ack(&self, status: Result<u16, String>, latency: Duration) {
        match status {
            Ok(s) if (200..300).contains(&s) => record(&mut lock(&self.ack), latency),
            Ok(s) => *lock(&self.ack_errors).entry(s.to_string()).or_default() += 1,
            Err(kind) => *lock(&self.ack_errors).entry(kind).or_default() += 1,
        }
    }

    pub fn counts(&self) -> Counts {
        let r = lock(&self.replies);
        Counts {
            expected: r.expected,
            received: r.received,
            duplicated: r.duplicated,
            waiting: r.expected.saturating_sub(r.received),
        }
    }

    pub fn e2e(&self) -> Percentiles {
        Percentiles::of(&lock(&self.e2e))
    }

    pub fn ack_latency(&self) -> Percentiles {
        Percentiles::of(&lock(&self.ack))
    }

    pub fn ack_errors(&self) -> BTreeMap<String, u64> {
        lock(&self.ack_errors).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(c: &str) -> Expectation {
        Expectation {
            account: "P".into(),
            customer: c.into(),
        }
    }

    #[test]
    fn replies_match_in_order_and_extras_are_duplicates() {
        let t = Tracker::new(["P".to_string()].into()).unwrap();
        let t0 = Instant::now();
        t.expect(&[e("a"), e("a"), e("b")], t0);
        t.reply("P", "a", t0 + Duration::from_millis(2));
        t.reply("P", "a", t0 + Duration::from_millis(4));
        t.reply("P", "a", t0 + Duration::from_millis(5));
        let c = t.counts();
        assert_eq!(
            (c.expected, c.received, c.duplicated, c.waiting),
            (3, 2, 1, 1)
        );
        assert_eq!(t.e2e().count, 2);
        assert!((t.e2e().max - 4.0).abs() < 0.01);
        t.reply("OTHER", "a", t0);
        assert_eq!(
            t.counts().duplicated,
            1,
            "another account's reply is not the run's"
        );
    }

    #[test]
    fn withdrawn_webhooks_are_not_missing() {
        let t = Tracker::new(["P".to_string()].into()).unwrap();
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_millis(1);
        t.expect(&[e("a")], t0);
        t.expect(&[e("a")], t1);
        t.withdraw(&[e("a")], t1);
        t.reply("P", "a", t1);
        let c = t.counts();
        assert_eq!((c.expected, c.received, c.waiting), (1, 1, 0));
        t.ack(Ok(503), Duration::ZERO);
        t.ack(Err("timeout".into()), Duration::ZERO);
        assert_eq!(t.ack_errors().len(), 2);
    }
}
