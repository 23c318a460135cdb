//! The one retry policy for platform calls: bounded attempts, exponential
//! backoff with full jitter.

use std::time::Duration;

use crate::config::OutboundConfig;

#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub initial: Duration,
    pub max: Duration,
}

impl RetryPolicy {
    pub fn from_config(c: &OutboundConfig) -> Self {
        Self {
            max_attempts: c.max_attempts,
            initial: c.backoff_initial,
            max: c.backoff_max,
        }
    }

    /// The pause before attempt `attempt + 1` (attempt counts from 1):
    /// a uniform draw from `[0, min(max, initial * 2^(attempt-1))]`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self.ceiling(attempt);
        let ms = ceiling.as_millis() as u64;
        if ms == 0 {
            return Duration::ZERO;
        }
        Duration::from_millis(rand::random_range(0..=ms))
    }

    /// The longest pause between two attempts (`outbound.backoff_max`).
    pub fn max(&self) -> Duration {
        self.max
    }

    /// The largest pause before attempt `attempt + 1`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1).min(20))
            .unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy {
            max_attempts: 5,
            initial: Duration::from_millis(100),
            max: Duration::from_millis(1000),
        };
        assert_eq!(p.ceiling(1), Duration::from_millis(100));
        assert_eq!(p.ceiling(2), Duration::from_millis(200));
        assert_eq!(p.ceiling(4), Duration::from_millis(800));
        assert_eq!(p.ceiling(5), Duration::from_millis(1000));
        assert_eq!(p.ceiling(60), Duration::from_millis(1000));
        for attempt in 1..10 {
            assert!(p.backoff(attempt) <= p.ceiling(attempt));
        }
    }
}
