//! Accounts the platform is throttling: once a call for an account ends
//! throttled (its retries spent), no call is made for that account from
//! this instance until the platform's `Retry-After` (or [`DEFAULT`]) has
//! passed; its replies wait in the outbox meanwhile. Without it, every
//! conversation of a throttled account kept calling, each with its own
//! retries, and the throttling lasted longer.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{SendError, SendErrorKind};
use crate::sync::lock;

/// How long an account rests when the platform did not say.
pub const DEFAULT: Duration = Duration::from_secs(10);
/// The longest rest taken from a `Retry-After`.
const LONGEST: Duration = Duration::from_secs(3600);

/// Until when each throttled account rests, by integration id.
#[derive(Default)]
pub struct Cooldowns(Mutex<HashMap<String, Instant>>);

impl Cooldowns {
    /// Refused at once (throttled, with the time left as its `Retry-After`)
    /// while `integration` rests.
    pub fn check(&self, integration: &str) -> Result<(), SendError> {
        let mut rests = lock(&self.0);
        let Some(until) = rests.get(integration).copied() else {
            return Ok(());
        };
        let now = Instant::now();
        if until <= now {
            rests.remove(integration);
            return Ok(());
        }
        Err(SendError::resting(until - now))
    }

    /// Takes note of a call's outcome: a throttled one makes the account
    /// rest.
    pub fn note<T>(&self, integration: &str, result: &Result<T, SendError>) {
        let Err(e) = result else {
            return;
        };
        // WhatsApp's limit for one customer (131056) is that pair's, not
        // the account's.
        if e.kind != SendErrorKind::Throttled || e.code == 131056 || e.resting {
            return;
        }
        let until = Instant::now() + e.retry_after.unwrap_or(DEFAULT).min(LONGEST);
        let mut rests = lock(&self.0);
        let entry = rests.entry(integration.to_string()).or_insert(until);
        *entry = (*entry).max(until);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_throttled_account_rests_and_others_do_not() {
        let c = Cooldowns::default();
        assert!(c.check("a").is_ok());
        let mut throttled = SendError::from_response(
            400,
            br#"{"error":{"message":"(#613) Calls to this api have exceeded the rate limit.","code":613}}"#,
        );
        throttled.retry_after = Some(Duration::from_secs(60));
        c.note("a", &Err::<(), _>(throttled));
        let refused = c.check("a").unwrap_err();
        assert_eq!(refused.kind, SendErrorKind::Throttled);
        assert!(refused
            .retry_after
            .is_some_and(|d| d > Duration::from_secs(50)));
        assert!(c.check("b").is_ok(), "another account calls on");
        // Another failure kind, or one customer's pair limit, rests nothing.
        c.note("b", &Err::<(), _>(SendError::from_response(500, b"")));
        let pair = br#"{"error":{"message":"(#131056) (Business Account, Consumer Account) pair rate limit hit","code":131056}}"#;
        c.note("b", &Err::<(), _>(SendError::from_response(400, pair)));
        assert!(c.check("b").is_ok());
    }
}
