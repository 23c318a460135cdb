//! Ownership fences: an instance may send for, or write over, a
//! conversation only while it owns the bus partition that carries it.
//!
//! Each partition this instance is assigned gets a [`Lease`] with an epoch
//! (one more at every assignment). A delivery carries a [`Fence`]: the
//! lease and the epoch it was fetched under. Every platform call is made
//! inside [`Fence::enter`] and every store write inside
//! [`Fence::enter_write`], which count it and check the lease at that
//! epoch. A revoke goes in two steps ([`Lease::release`]): first the lease
//! is *draining*, so no platform call starts but a write that records one
//! already made may still (a send whose mark is lost would be repeated by
//! the next owner); once those are done it is *released* and nothing
//! starts; a last wait covers the writes that passed their check just
//! before. Only then is the partition handed back. (Each counter is raised
//! before its check and each state set before the count is read, all
//! sequentially consistent, so nothing slips between.)
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
    /// Platform calls may start.
    owned: AtomicBool,
    /// Store writes may start (also while draining).
    writable: AtomicBool,
    inflight: AtomicUsize,
}

impl Lease {
    /// The partition is (again) ours: a new epoch, which older deliveries
    /// do not carry.
    pub fn acquire(&self) -> u64 {
        let epoch = self.epoch.fetch_add(1, Ordering::SeqCst) + 1;
        self.writable.store(true, Ordering::SeqCst);
        self.owned.store(true, Ordering::SeqCst);
        epoch
    }

    /// Takes the partition away, waiting (blocking the calling thread,
    /// which must not be a runtime worker) at most `limit` in all for the
    /// side effects already started. Returns how many were still running
    /// when the wait ran out.
    pub fn release(&self, limit: Duration) -> usize {
        let started = Instant::now();
        self.owned.store(false, Ordering::SeqCst);
        // Calls in flight end, and the writes recording them are made.
        let _ = self.wait_idle(started, limit);
        self.writable.store(false, Ordering::SeqCst);
        // Writes that passed their check just before.
        self.wait_idle(started, limit)
    }

    fn wait_idle(&self, started: Instant, limit: Duration) -> usize {
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

    /// Whether `other` is this same ownership (lease and epoch).
    pub fn same(&self, other: &Fence) -> bool {
        match (&self.0, &other.0) {
            (None, None) => true,
            (Some((a, x)), Some((b, y))) => Arc::ptr_eq(a, b) && x == y,
            _ => false,
        }
    }

    /// Whether the ownership still holds.
    pub fn is_current(&self) -> bool {
        self.holds(|l| &l.owned)
    }

    fn holds(&self, flag: impl Fn(&Lease) -> &AtomicBool) -> bool {
        match &self.0 {
            None => true,
            Some((lease, epoch)) => {
                flag(lease).load(Ordering::SeqCst) && lease.epoch.load(Ordering::SeqCst) == *epoch
            }
        }
    }

    /// Enters a platform call: held for its whole length, refused once
    /// the partition is being taken away.
    pub fn enter(&self) -> Result<FenceGuard, Fenced> {
        self.enter_when(|l| &l.owned)
    }

    /// Enters a store write: refused once the partition is released (a
    /// write recording a call already made still goes while it drains).
    pub fn enter_write(&self) -> Result<FenceGuard, Fenced> {
        self.enter_when(|l| &l.writable)
    }

    fn enter_when(&self, flag: impl Fn(&Lease) -> &AtomicBool) -> Result<FenceGuard, Fenced> {
        let Some((lease, _)) = &self.0 else {
            return Ok(FenceGuard(None));
        };
        lease.inflight.fetch_add(1, Ordering::SeqCst);
        let guard = FenceGuard(Some(lease.clone()));
        if self.holds(flag) {
            Ok(guard)
        } else {
            Err(Fenced)
        }
    }
}

/// A side effect in progress under a [`Fence`].
#[derive(Debug)]
pub struct FenceGuard(Option<Arc<Lease>>);

/// A write place held from the end of a platform call the platform took
/// until the write recording it: a revoke waits for that write too (the
/// call ending first, the revoke closed writes, the mark was refused and
/// the next owner sent the part again). Equal to any other: it is no part
/// of what was sent.
#[derive(Debug, Clone, Default)]
pub struct Recording {
    /// Given back when the last clone is dropped.
    _held: Option<Arc<FenceGuard>>,
}

impl Recording {
    /// A write place taken before a call that cannot hand its own over (a
    /// mailbox's send, made of several calls), held until the mark.
    pub fn held(write: FenceGuard) -> Self {
        Self {
            _held: Some(Arc::new(write)),
        }
    }
}

impl PartialEq for Recording {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Recording {}

impl Fence {
    /// Ends platform call `call` (which the platform took), keeping a write
    /// place until the returned value is dropped: taken before the call's
    /// place is given back, so a revoke never sees neither.
    pub fn recording(&self, call: FenceGuard) -> Recording {
        let write = self.enter_write().ok();
        drop(call);
        Recording {
            _held: write.map(Arc::new),
        }
    }
}

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

    /// The send loop's protocol: a call the platform took hands its place
    /// over to a write place held until the call's mark is written, so a
    /// revoke cannot close writes in between (the mark would be refused and
    /// the part sent again by the next owner).
    #[test]
    fn a_revoke_waits_for_the_mark_of_a_call_that_ended() {
        let lease = Arc::new(Lease::default());
        let fence = Fence::new(lease.clone(), lease.acquire());
        let recording = fence.recording(fence.enter().unwrap()); // the call, ended
        let releasing = {
            let lease = lease.clone();
            std::thread::spawn(move || lease.release(Duration::from_secs(5)))
        };
        while fence.is_current() {
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(50));
        assert!(fence.enter().is_err(), "no new call");
        let mark = fence.enter_write();
        assert!(mark.is_ok(), "the mark is still written");
        drop(mark);
        drop(recording);
        assert_eq!(releasing.join().unwrap(), 0);
        assert!(fence.enter_write().is_err(), "released");
    }

    #[test]
    fn a_released_or_reassigned_lease_refuses_older_fences() {
        let lease = Arc::new(Lease::default());
        let epoch = lease.acquire();
        let fence = Fence::new(lease.clone(), epoch);
        let guard = fence.enter().expect("owned");
        assert_eq!(
            lease.release(Duration::from_millis(20)),
            1,
            "a call still inside when the wait runs out"
        );
        drop(guard);
        assert_eq!(
            fence.enter().err(),
            Some(Fenced),
            "nothing starts after release"
        );
        assert_eq!(fence.enter_write().err(), Some(Fenced));
        let again = lease.acquire();
        assert!(fence.enter().is_err(), "an old epoch stays fenced");
        assert!(Fence::new(lease, again).enter().is_ok());
        assert!(Fence::none().enter().is_ok());
    }

    #[test]
    fn while_draining_writes_go_and_calls_do_not() {
        let lease = Arc::new(Lease::default());
        let fence = Fence::new(lease.clone(), lease.acquire());
        let call = fence.enter().expect("owned");
        let releasing = {
            let lease = lease.clone();
            std::thread::spawn(move || lease.release(Duration::from_secs(5)))
        };
        // Draining: the call in flight holds the release back.
        while fence.is_current() {
            std::thread::yield_now();
        }
        assert!(fence.enter().is_err(), "no new call while draining");
        let write = fence.enter_write().expect("the call's write still goes");
        drop(call);
        drop(write);
        assert_eq!(
            releasing.join().ok(),
            Some(0),
            "released with nothing running"
        );
        assert!(fence.enter_write().is_err());
    }
}
