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

/// One customer's replies: what must come, what may come (webhooks whose
/// outcome is unknown), what came, and the send times still waiting (for
/// the latency, oldest first).
#[derive(Default)]
struct Customer {
    waiting: VecDeque<Instant>,
    required: u64,
    optional: u64,
    replies: u64,
}

impl Customer {
    /// (received, optional ones answered, duplicated) for these counts.
    fn classify(&self) -> (u64, u64, u64) {
        let received = self.replies.min(self.required);
        let extra = self.replies - received;
        let optional = extra.min(self.optional);
        (received, optional, extra - optional)
    }
}

#[derive(Default)]
struct Replies {
    customers: HashMap<String, HashMap<String, Customer>>,
    expected: u64,
    uncertain: u64,
    received: u64,
    uncertain_answered: u64,
    duplicated: u64,
    /// The first duplicated replies, to look for in the engine's log.
    duplicate_samples: Vec<String>,
}

/// Duplicated replies described in the report at most.
const DUPLICATE_SAMPLES: usize = 10;

impl Replies {
    /// Changes one customer with `change`, keeping the totals in step.
    fn update<T>(
        &mut self,
        account: &str,
        customer: &str,
        change: impl FnOnce(&mut Customer) -> T,
    ) -> T {
        let c = self
            .customers
            .entry(account.to_string())
            .or_default()
            .entry(customer.to_string())
            .or_default();
        let (r0, o0, d0) = c.classify();
        let (req0, opt0) = (c.required, c.optional);
        let out = change(c);
        let (r1, o1, d1) = c.classify();
        let (req1, opt1) = (c.required, c.optional);
        self.received = self.received + r1 - r0;
        self.uncertain_answered = self.uncertain_answered + o1 - o0;
        self.duplicated = self.duplicated + d1 - d0;
        self.expected = self.expected + req1 - req0;
        self.uncertain = self.uncertain + opt1 - opt0;
        out
    }
}

/// Shared between the sender tasks and the sink.
pub struct Tracker {
    /// Only replies from these accounts belong to the run.
    accounts: HashSet<String>,
    replies: Mutex<Replies>,
    e2e: Mutex<Histogram<u64>>,
    ack: Mutex<Histogram<u64>>,
    /// The same latencies since the last [`Tracker::take_window`].
    window: Mutex<Window>,
    ack_errors: Mutex<BTreeMap<String, u64>>,
}

struct Window {
    e2e: Histogram<u64>,
    ack: Histogram<u64>,
}

/// The counts at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    pub expected: u64,
    pub received: u64,
    pub duplicated: u64,
    pub waiting: u64,
    /// Replies of webhooks whose outcome is unknown, and how many came.
    pub uncertain: u64,
    pub uncertain_answered: u64,
}

impl Tracker {
    /// Tracks replies sent from `accounts` (others are not the run's).
    pub fn new(accounts: HashSet<String>) -> Result<Self, hdrhistogram::CreationError> {
        Ok(Self {
            accounts,
            replies: Mutex::default(),
            e2e: Mutex::new(histogram()?),
            ack: Mutex::new(histogram()?),
            window: Mutex::new(Window {
                e2e: histogram()?,
                ack: histogram()?,
            }),
            ack_errors: Mutex::default(),
        })
    }

    /// Registers the replies a webhook scheduled at `at` should cause.
    pub fn expect(&self, expects: &[Expectation], at: Instant) {
        let mut r = lock(&self.replies);
        for e in expects {
            r.update(&e.account, &e.customer, |c| {
                c.required += 1;
                c.waiting.push_back(at);
            });
        }
    }

    /// Withdraws the expectations of a webhook the engine refused every
    /// time (a status it answered, never a 2xx).
    pub fn withdraw(&self, expects: &[Expectation], at: Instant) {
        let mut r = lock(&self.replies);
        for e in expects {
            r.update(&e.account, &e.customer, |c| {
                if let Some(i) = c.waiting.iter().rposition(|t| *t == at) {
                    c.waiting.remove(i);
                }
                c.required = c.required.saturating_sub(1);
            });
        }
    }

    /// The webhook got no 2xx, but an attempt timed out or was cut: the
    /// engine may have taken it (as Meta, the sender cannot know). Its
    /// replies may come, and are then neither missing nor duplicates.
    pub fn uncertain(&self, expects: &[Expectation]) {
        let mut r = lock(&self.replies);
        for e in expects {
            r.update(&e.account, &e.customer, |c| {
                if c.required > 0 {
                    c.required -= 1;
                    c.optional += 1;
                }
            });
        }
    }

    /// A reply from `account` to `customer` arrived at the sink, with the
    /// engine's own id for it (`metadata`), if it gave one.
    pub fn reply(&self, account: &str, customer: &str, part: Option<&str>, at: Instant) {
        if !self.accounts.contains(account) {
            return;
        }
        let mut replies = lock(&self.replies);
        let before = replies.duplicated;
        let sent = replies.update(account, customer, |c| {
            c.replies += 1;
            c.waiting.pop_front()
        });
        if replies.duplicated > before && replies.duplicate_samples.len() < DUPLICATE_SAMPLES {
            let part = part.unwrap_or("-");
            let sample = format!("{account} -> {customer} (part {part})");
            replies.duplicate_samples.push(sample);
        }
        drop(replies);
        if let Some(sent) = sent {
            let latency = at.saturating_duration_since(sent);
            record(&mut lock(&self.e2e), latency);
            record(&mut lock(&self.window).e2e, latency);
        }
    }

    /// A webhook was answered `status` after `latency` (from its
    /// scheduled time).
    pub fn ack(&self, status: Result<u16, String>, latency: Duration) {
        match status {
            Ok(s) if (200..300).contains(&s) => {
                record(&mut lock(&self.ack), latency);
                record(&mut lock(&self.window).ack, latency);
            }
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
            uncertain: r.uncertain,
            uncertain_answered: r.uncertain_answered,
        }
    }

    /// The first duplicated replies: who got them and the engine's id of
    /// the part (a part id seen twice was sent again; two ids, answered twice).
    pub fn duplicate_samples(&self) -> Vec<String> {
        lock(&self.replies).duplicate_samples.clone()
    }

    pub fn e2e(&self) -> Percentiles {
        Percentiles::of(&lock(&self.e2e))
    }

    pub fn ack_latency(&self) -> Percentiles {
        Percentiles::of(&lock(&self.ack))
    }

    /// The ack and webhook -> reply percentiles since the last call.
    pub fn take_window(&self) -> (Percentiles, Percentiles) {
        let mut w = lock(&self.window);
        let out = (Percentiles::of(&w.ack), Percentiles::of(&w.e2e));
        w.ack.reset();
        w.e2e.reset();
        out
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
        t.reply("P", "a", None, t0 + Duration::from_millis(2));
        t.reply("P", "a", None, t0 + Duration::from_millis(4));
        t.reply("P", "a", None, t0 + Duration::from_millis(5));
        let c = t.counts();
        assert_eq!(
            (c.expected, c.received, c.duplicated, c.waiting),
            (3, 2, 1, 1)
        );
        assert_eq!(t.e2e().count, 2);
        assert!((t.e2e().max - 4.0).abs() < 0.01);
        t.reply("OTHER", "a", None, t0);
        assert_eq!(
            t.counts().duplicated,
            1,
            "another account's reply is not the run's"
        );
    }

    #[test]
    fn replies_to_webhooks_of_unknown_outcome_are_neither_missing_nor_duplicates() {
        let t = Tracker::new(["P".to_string()].into()).unwrap();
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_millis(1);
        let t2 = t0 + Duration::from_millis(2);
        t.expect(&[e("a")], t0);
        t.expect(&[e("a")], t1);
        // The engine took t1's webhook and answered before the sender gave
        // up on it.
        t.reply("P", "a", None, t1);
        t.reply("P", "a", None, t1);
        t.uncertain(&[e("a")]);
        // t2's webhook timed out and was never taken: no reply.
        t.expect(&[e("b")], t2);
        t.uncertain(&[e("b")]);
        let c = t.counts();
        assert_eq!(
            (c.expected, c.received, c.duplicated, c.waiting),
            (1, 1, 0, 0)
        );
        assert_eq!((c.uncertain, c.uncertain_answered), (2, 1));
        // A third reply to a is more than anything could have asked for.
        t.reply("P", "a", Some("sb1.x"), t2);
        assert_eq!(t.counts().duplicated, 1);
        assert_eq!(t.duplicate_samples(), ["P -> a (part sb1.x)"]);
    }

    #[test]
    fn withdrawn_webhooks_are_not_missing() {
        let t = Tracker::new(["P".to_string()].into()).unwrap();
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_millis(1);
        t.expect(&[e("a")], t0);
        t.expect(&[e("a")], t1);
        t.withdraw(&[e("a")], t1);
        t.reply("P", "a", None, t1);
        let c = t.counts();
        assert_eq!((c.expected, c.received, c.waiting), (1, 1, 0));
        t.ack(Ok(503), Duration::ZERO);
        t.ack(Err("timeout".into()), Duration::ZERO);
        assert_eq!(t.ack_errors().len(), 2);
    }
}
