//! One conversation as the supervisor keeps it: its actor (if resident),
//! the events handed to it and not finished, its failures, the partition
//! ownership it is handled under; and the two decisions about timers that
//! must not lose a wake: what a wake does, and what follows when an actor
//! has stopped.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;
use std::time::Instant;

use super::actor::{ConversationRef, NO_EVENT};
use crate::bus::Delivery;
use crate::fence::Fence;

pub(super) struct Entry {
    pub(super) actor: Option<ConversationRef>,
    pub(super) stopping: bool,
    pub(super) respawn_scheduled: bool,
    pub(super) inflight: VecDeque<(Delivery, u32)>,
    pub(super) current: Arc<AtomicU64>,
    /// Its actor is generating an answer: not passivated meanwhile.
    pub(super) generating: Arc<AtomicBool>,
    pub(super) last_used: Instant,
    pub(super) failures: u32,
    /// Failures in a row not blamed on any one event (rehydration, a
    /// timer-driven turn); at `max_event_attempts` the conversation is
    /// quarantined.
    pub(super) outside_failures: u32,
    /// The bus partition of the conversation's last event, and the
    /// ownership it came under.
    pub(super) partition: Option<u32>,
    pub(super) fence: Fence,
    /// A timer fired while the actor was stopping or waiting to restart:
    /// the next actor (or the owner) gets it.
    pub(super) wake_pending: bool,
    /// Taken out of service (see [`super::quarantine`]).
    pub(super) quarantined: bool,
    /// The offset of the event the last actor failed while handling.
    pub(super) interrupted: Option<u64>,
}

impl Entry {
    pub(super) fn new() -> Self {
        Self {
            actor: None,
            stopping: false,
            respawn_scheduled: false,
            inflight: VecDeque::new(),
            current: Arc::new(AtomicU64::new(NO_EVENT)),
            generating: Arc::new(AtomicBool::new(false)),
            last_used: Instant::now(),
            failures: 0,
            outside_failures: 0,
            partition: None,
            fence: Fence::none(),
            wake_pending: false,
            quarantined: false,
            interrupted: None,
        }
    }
}

/// What a timer wake does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum WakeAction {
    /// The running actor does what is due.
    Tell,
    /// The actor is stopping or about to restart: remembered for the next
    /// actor (or the owner).
    Later,
    /// Not resident and owned by partition: the owner (perhaps this
    /// instance) gets the wake through the bus.
    HandToOwner,
    /// Not resident: a fresh actor does whatever is due as it starts.
    Spawn,
    /// Quarantined: nothing runs until it is resumed.
    Ignore,
}

/// What follows once a conversation's actor has stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AfterStop {
    Respawn,
    HandToOwner,
    Forget,
}

impl Entry {
    /// Decides what a wake does (and remembers one that must wait);
    /// `resident`: the entry has an actor (running or stopping).
    pub(super) fn on_wake(&mut self, resident: bool, partitioned: bool) -> WakeAction {
        if self.quarantined {
            return WakeAction::Ignore;
        }
        match (resident, self.stopping) {
            (true, false) => WakeAction::Tell,
            (true, true) => {
                self.wake_pending = true;
                WakeAction::Later
            }
            (false, _) if self.respawn_scheduled => {
                self.wake_pending = true;
                WakeAction::Later
            }
            (false, _) if partitioned => WakeAction::HandToOwner,
            (false, _) => WakeAction::Spawn,
        }
    }

    /// Decides what follows the actor's stop: events still to handle or a
    /// wake that came meanwhile get a new actor here, or go to the owner
    /// when the conversation is owned by partition.
    pub(super) fn after_stop(&mut self, partitioned: bool) -> AfterStop {
        let wake = std::mem::take(&mut self.wake_pending);
        let owned_here = self.fence.is_current() && !partitioned;
        if !self.inflight.is_empty() || (wake && owned_here) {
            AfterStop::Respawn
        } else if wake {
            AfterStop::HandToOwner
        } else {
            AfterStop::Forget
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A timer fires while passivation (or a revoke) is stopping the
    /// actor: the wake is kept, and the next actor (or the owner) acts on
    /// it, instead of the deadline being forgotten until the customer
    /// writes again.
    #[test]
    fn a_wake_racing_a_stopping_actor_is_kept_for_what_comes_next() {
        for (partitioned, next) in [(false, AfterStop::Respawn), (true, AfterStop::HandToOwner)] {
            let mut e = Entry::new();
            e.stopping = true;
            assert_eq!(e.on_wake(true, partitioned), WakeAction::Later);
            assert_eq!(
                e.after_stop(partitioned),
                next,
                "partitioned: {partitioned}"
            );
        }
    }

    #[test]
    fn wakes_of_running_idle_restarting_and_quarantined_conversations() {
        let mut e = Entry::new();
        assert_eq!(e.on_wake(true, false), WakeAction::Tell);
        assert_eq!(e.on_wake(false, false), WakeAction::Spawn);
        assert_eq!(e.on_wake(false, true), WakeAction::HandToOwner);
        assert_eq!(e.after_stop(false), AfterStop::Forget, "nothing pending");
        e.respawn_scheduled = true;
        assert_eq!(e.on_wake(false, false), WakeAction::Later);
        assert_eq!(e.after_stop(false), AfterStop::Respawn);
        e.quarantined = true;
        assert_eq!(e.on_wake(false, false), WakeAction::Ignore);
    }
}
