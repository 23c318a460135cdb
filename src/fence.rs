//! Ownership fences: an instance may send for, or write over, a
//! conversation only while it owns the bus partition that carries it.
//!
//! Each partition this instance is assigned gets a [`Lease`] with an epoch
//! (one more at every assignment). A delivery carries a [`Fence`]: the
//! lease and the epoch it was fetched under. Every side effect (a platform
//! call, a store write) is made inside [`Fence::enter`], which counts it
//! and checks the lease is still held at that epoch; a revoke first marks
//! the lease lost, then waits for the side effects already inside to end
//! ([`Lease::drain`]) before the partition is released. An operation that
//! starts after the mark is refused; one that started before is finished
//! before the next owner can begin (the counter is raised before the check,
//! the mark is set before the count is read, both sequentially consistent).
//!
//! A backend without partition ownership (the embedded bus) hands out
//! [`Fence::none`], which always lets through.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One partition's ownership on this instance.
#[derive(Debug, Default)]
pub struct Lease {
    epoch: AtomicU64,
    owned: AtomicBool,
    inflight: AtomicUsize,
}

impl Lease {
    /// The partition is (again) ours: a new epoch, which older deliveries
    /// do not carry.
    pub fn acquire(&self) -> u64 {
        let epoch = self.epoch.fetch_add(1, Ordering::SeqCst) + 1;
        self.owned.store(true, Ordering::SeqCst);
        epoch
    }

    /// The partition is being taken away: no side effect starts from now.
    pub fn revoke(&self) {
        self.owned.store(false, Ordering::SeqCst);
    }

    /// Waits (blocking the calling thread, which must not be a runtime
    /// worker) until the side effects that started before [`Lease::revoke`]
    /// have ended, at most `limit`. Returns how many are still running.
    pub fn drain(&self, limit: Duration) -> usize {
        let started = Instant::now();
        loop {
            let running = self.inflight.load(Ordering::SeqCst);
            if running == 0 || started.elapsed() >= limit {
                return running;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }
}

/// A side effect refused: the partition moved to another instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("this instance no longer owns the conversation's partition")]
pub struct Fenced;

/// The ownership a delivery was made under.
#[derive(Debug, Clone, Default)]
pub struct Fence(Option<(Arc<Lease>, u64)>);

impl Fence {
    /// No ownership to check (one instance owns everything).
    pub fn none() -> Self {
        Self(None)
    }

    /// `lease` at `epoch`.
    pub fn new(lease: Arc<Lease>, epoch: u64) -> Self {
        Self(Some((lease, epoch)))
    }

    /// Whether the ownership still holds.
    pub fn is_current(&self) -> bool {
        match &self.0 {
            None => true,
            Some((lease, epoch)) => {
                lease.owned.load(Ordering::SeqCst) && lease.epoch.load(Ordering::SeqCst) == *epoch
            }
        }
    }

    /// Enters a side effect: held for its whole length, refused once the
    /// ownership is gone.
    pub fn enter(&self) -> Result<FenceGuard, Fenced> {
        let Some((lease, _)) = &self.0 else {
            return Ok(FenceGuard(None));
        };
        lease.inflight.fetch_add(1, Ordering::SeqCst);
        let guard = FenceGuard(Some(lease.clone()));
        if self.is_current() {
            Ok(guard)
        } else {
            Err(Fenced)
        }
    }
}

/// A side effect in progress under a [`Fence`].
#[derive(Debug)]
pub struct FenceGuard(Option<Arc<Lease>>);

impl Drop for FenceGuard {
    fn drop(&mut self) {
        if let Some(lease) = &self.0 {
            lease.inflight.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_revoked_or_reassigned_lease_refuses_older_fences() {
        let lease = Arc::new(Lease::default());
        let epoch = lease.acquire();
        let fence = Fence::new(lease.clone(), epoch);
        let guard = fence.enter().expect("owned");
        lease.revoke();
        assert_eq!(
            fence.enter().err(),
            Some(Fenced),
            "nothing starts after the mark"
        );
        assert_eq!(
            lease.drain(Duration::from_millis(20)),
            1,
            "one still inside"
        );
        drop(guard);
        assert_eq!(lease.drain(Duration::from_millis(20)), 0);
        let again = lease.acquire();
        assert!(fence.enter().is_err(), "an old epoch stays fenced");
        assert!(Fence::new(lease, again).enter().is_ok());
        assert!(Fence::none().enter().is_ok());
    }
}
