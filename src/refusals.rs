//! When this instance last turned a webhook away that may have held a
//! confirmation: one with echoes or statuses refused with 503 (shedding, its
//! store or the bus down), any webhook request the listener refused before
//! reading it (503 at its concurrency bound, 408 when it took too long), or
//! none answered at all while the process was down. The platform delivers
//! it again later, with its own backoff. The echo or status
//! that confirms a send may be such a webhook: a part waiting for its
//! confirmation is not sent again until the engine has taken every webhook
//! for `outbound.confirm_wait`, so the platform's redeliveries had that
//! long to arrive.
//!
//! The process start counts as a refusal: until it listened, every webhook
//! sent to it was refused.

use std::sync::atomic::{AtomicU64, Ordering};

/// The time of the last refusal, in epoch milliseconds.
#[derive(Debug)]
pub struct Refusals {
    last_ms: AtomicU64,
}

impl Refusals {
    /// A clock whose last refusal is `now_ms` (the process start).
    pub fn new(now_ms: u64) -> Self {
        Self {
            last_ms: AtomicU64::new(now_ms),
        }
    }

    /// A webhook was refused at `now_ms`.
    pub fn refused(&self, now_ms: u64) {
        self.last_ms.fetch_max(now_ms, Ordering::Relaxed);
    }

    /// The last refusal.
    pub fn last_ms(&self) -> u64 {
        self.last_ms.load(Ordering::Relaxed)
    }

    /// When every webhook will have been taken for `wait_ms` if none is
    /// refused from now on: a resend waits until then.
    pub fn quiet_until(&self, wait_ms: u64) -> u64 {
        self.last_ms().saturating_add(wait_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_refusal_counts_and_an_earlier_one_never_moves_it_back() {
        let r = Refusals::new(1_000);
        assert_eq!(r.quiet_until(500), 1_500);
        r.refused(5_000);
        r.refused(3_000);
        assert_eq!(r.last_ms(), 5_000);
        assert_eq!(r.quiet_until(500), 5_500);
    }
}
