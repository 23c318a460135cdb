//! Where the engine's intake stands: the delivery taken from the bus and
//! waiting for room among the events in flight (or for the supervisor). A
//! part waiting for its echo or status is not sent again while the engine
//! is behind: an event accepted more than a moment ago and not yet handed
//! to its conversation may be that confirmation. (Once handed over, it
//! reaches the conversation before any later timer does: both pass the
//! supervisor in order.)

use std::sync::atomic::{AtomicU64, Ordering};

use crate::bus::BEHIND_AFTER_MS;

/// No delivery is waiting.
const NONE: u64 = 0;

#[derive(Debug, Default)]
pub struct Intake {
    /// When the delivery taken from the bus and not yet handed over was
    /// received (epoch ms), or [`NONE`].
    waiting_since_ms: AtomicU64,
}

impl Intake {
    /// A delivery received at `received_at_ms` waits to be handed over.
    pub fn waiting(&self, received_at_ms: u64) {
        self.waiting_since_ms
            .store(received_at_ms.max(1), Ordering::Release);
    }

    /// It was handed over.
    pub fn handed(&self) {
        self.waiting_since_ms.store(NONE, Ordering::Release);
    }

    /// Whether the waiting delivery was received more than a moment
    /// before `now_ms`.
    pub fn behind(&self, now_ms: u64) -> bool {
        match self.waiting_since_ms.load(Ordering::Acquire) {
            NONE => false,
            since => now_ms.saturating_sub(since) > BEHIND_AFTER_MS,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behind_only_while_an_old_delivery_waits() {
        let intake = Intake::default();
        assert!(!intake.behind(10_000));
        intake.waiting(9_900);
        assert!(!intake.behind(10_000), "a fresh delivery is no backlog");
        assert!(intake.behind(11_000));
        intake.handed();
        assert!(!intake.behind(11_000));
    }
}
