//! The consumer group's shared state (per-partition progress, leases,
//! what is waiting for the engine) and the rebalance callbacks: a revoke
//! waits for the partitions' events, releases their leases (see
//! [`crate::fence`]) and commits; an assignment takes new leases and marks
//! what the previous owner may have handled.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaResult;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::sync::mpsc;

use crate::bus::progress::PartitionProgress;
use crate::bus::{Delivery, Ownership};
use crate::fence::Lease;
use crate::sync::lock;

/// Per-partition progress, shared by the consumer task, `finished` and the
/// rebalance callbacks.
#[derive(Default)]
pub(super) struct Progress {
    pub(super) partitions: HashMap<i32, PartitionProgress>,
    /// Resume offsets already committed, per partition.
    pub(super) committed: HashMap<i32, u64>,
    /// When each partition was last assigned here (ms), and its high
    /// watermark then: events below it may have been handled by the
    /// previous owner.
    pub(super) assigned_at: HashMap<i32, u64>,
    pub(super) replay_below: HashMap<i32, u64>,
    /// One past the highest offset handed to the engine, per partition.
    pub(super) handed_max: HashMap<i32, u64>,
    /// Ownership of each partition ever assigned here.
    pub(super) leases: HashMap<i32, Arc<Lease>>,
}

pub(super) struct Shared {
    pub(super) topic: String,
    pub(super) group: String,
    pub(super) progress: Mutex<Progress>,
    pub(super) delivered: AtomicU64,
    pub(super) finished: AtomicU64,
    pub(super) ownership: mpsc::UnboundedSender<Ownership>,
    /// How long a revoked partition's delivered events may take to finish
    /// before the partition is released anyway: half the session timeout,
    /// so the member is not evicted meanwhile.
    pub(super) revoke_wait: Duration,
    /// The rebalance timeout (`max.poll.interval.ms`): how long a healthy
    /// rebalance may wait for members.
    pub(super) rebalance_timeout: Duration,
    /// How long the side effects already running for a revoked partition
    /// (a platform call, a store write) are waited for once its lease is
    /// revoked.
    pub(super) drain_wait: Duration,
    /// Shutting down: whatever is unfinished is left for redelivery.
    pub(super) closing: AtomicBool,
    /// Fetched records the engine's queue had no room for yet (only the
    /// consumer's thread touches it).
    pub(super) waiting: Mutex<VecDeque<Delivery>>,
    /// Held while a commit is listed and sent: a shutdown's commit waits for
    /// the one in flight, and sends again what that one failed; a revoke's
    /// waits for it a while.
    pub(super) committing: Mutex<()>,
}

impl Shared {
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, Progress> {
        lock(&self.progress)
    }

    /// The finished prefixes (of `only` these partitions) not committed
    /// yet, or with `again` every one (a commit of them in flight may still
    /// fail), listed as committed.
    pub(super) fn commit_list(&self, only: Option<&[i32]>, again: bool) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::new();
        let mut p = self.lock();
        let ready: Vec<(i32, u64)> = p
            .partitions
            .iter()
            .filter(|(part, _)| only.is_none_or(|o| o.contains(part)))
            .filter_map(|(part, prog)| prog.committable().map(|o| (*part, o)))
            .filter(|(part, o)| again || p.committed.get(part) != Some(o))
            .collect();
        for (part, offset) in ready {
            if tpl
                .add_partition_offset(&self.topic, part, Offset::Offset(offset as i64))
                .is_ok()
            {
                p.committed.insert(part, offset);
            }
        }
        tpl
    }

    /// Forgets the offsets of a commit that failed, so the next commit
    /// sends them again (unless a later offset of the partition is already
    /// on its way). Kept, they would count as committed: a partition that
    /// got no new event would keep its older offset on the broker, and its
    /// next owner (or this engine after a restart) would replay what was
    /// handled. Returns how many were forgotten.
    pub(super) fn forget(&self, offsets: &TopicPartitionList) -> usize {
        let mut p = self.lock();
        let mut forgotten = 0;
        for e in offsets.elements_for_topic(&self.topic) {
            let Offset::Offset(o) = e.offset() else {
                continue;
            };
            if u64::try_from(o).is_ok_and(|o| p.committed.get(&e.partition()) == Some(&o)) {
                p.committed.remove(&e.partition());
                forgotten += 1;
            }
        }
        forgotten
    }

    /// The commit turn (see `committing`) once the commit in flight is
    /// done, or `None` when it is not done within `wait`.
    pub(super) fn committing_within(
        &self,
        wait: Duration,
    ) -> Option<std::sync::MutexGuard<'_, ()>> {
        let until = Instant::now() + wait;
        loop {
            match self.committing.try_lock() {
                Ok(turn) => return Some(turn),
                Err(std::sync::TryLockError::Poisoned(turn)) => return Some(turn.into_inner()),
                Err(std::sync::TryLockError::WouldBlock) if Instant::now() < until => {
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(std::sync::TryLockError::WouldBlock) => return None,
            }
        }
    }

    pub(super) fn unfinished(&self, partitions: &[i32]) -> usize {
        let p = self.lock();
        partitions
            .iter()
            .filter_map(|part| p.partitions.get(part))
            .map(PartitionProgress::unfinished)
            .sum()
    }
}

/// Commits the finished prefixes not committed yet, one commit at a time,
/// and waits for the broker's answer.
/// A commit that fails (refused, or no coordinator within the session
/// timeout) is forgotten, so the next one sends it again: rdkafka reports
/// nothing back for an asynchronous commit made by hand, so a failed one
/// would have counted as committed.
pub(super) fn commit_finished(
    consumer: &BaseConsumer<GroupContext>,
    shared: &Shared,
) -> KafkaResult<()> {
    let _one = lock(&shared.committing);
    // A lost assignment is someone else's now (see the revoke).
    if consumer.assignment_lost() {
        return Ok(());
    }
    let tpl = shared.commit_list(None, false);
    if tpl.count() == 0 {
        return Ok(());
    }
    consumer.commit(&tpl, CommitMode::Sync).inspect_err(|_| {
        shared.forget(&tpl);
    })
}

/// Rebalance callbacks: finish, commit and hand back revoked partitions.
pub(super) struct GroupContext {
    pub(super) shared: Arc<Shared>,
}

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
    // Both callbacks run on the consumer's own thread (see `poll_loop`),
    // never on a runtime worker: waiting here blocks nothing else.
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(tpl) = rebalance else {
            return;
        };
        let partitions: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
        if partitions.is_empty() {
            return;
        }
        // Records not yet handed over stay for the next owner.
        lock(&self.shared.waiting).retain(|d| !partitions.contains(&(d.position.partition as i32)));
        // A lost assignment (this member was evicted) may already be
        // someone else's: nothing more is done for it, at once.
        let lost = consumer.assignment_lost();
        let started = Instant::now();
        while !lost
            && self.shared.unfinished(&partitions) > 0
            && started.elapsed() < self.shared.revoke_wait
            && !self.shared.closing.load(Ordering::Acquire)
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        let left = self.shared.unfinished(&partitions);
        if left > 0 {
            tracing::warn!(partitions = ?partitions, events = left, "Partitions released with events unfinished; the next owner handles them again");
        }
        // From here no send or write for these conversations starts; the
        // ones running are waited for, so the next owner never races them.
        let leases: Vec<Arc<Lease>> = {
            let p = self.shared.lock();
            partitions
                .iter()
                .filter_map(|part| p.leases.get(part).cloned())
                .collect()
        };
        let wait = if lost {
            Duration::ZERO
        } else {
            self.shared.drain_wait
        };
        let running: usize = leases.iter().map(|l| l.release(wait)).sum();
        if running > 0 {
            tracing::warn!(partitions = ?partitions, running, "Partitions released with platform calls or writes still running past the wait");
        }
        // Every finished prefix of these partitions, whether or not a tick
        // committed it already (that commit may have failed). A tick's
        // commit in flight is let finish first, so an older offset of it
        // never lands after this one, but only for what is left of the
        // revoke's wait (with no coordinator it may wait as long as the
        // session). A lost assignment is someone else's: its commit would
        // be refused, or would move its owner's offset back.
        if !lost {
            let left = self.shared.revoke_wait.saturating_sub(started.elapsed());
            let _one = self.shared.committing_within(left);
            let commit = self.shared.commit_list(Some(&partitions), true);
            if commit.count() > 0 {
                if let Err(e) = consumer.commit(&commit, CommitMode::Sync) {
                    tracing::warn!(error = %e, "Commit before releasing partitions failed");
                }
            }
        }
        {
            let mut p = self.shared.lock();
            for part in &partitions {
                // Unfinished events go to the next owner: not lag here.
                if let Some(prog) = p.partitions.remove(part) {
                    self.shared
                        .finished
                        .fetch_add(prog.unfinished() as u64, Ordering::Relaxed);
                }
                p.committed.remove(part);
                p.handed_max.remove(part);
            }
        }
        let _ = self.shared.ownership.send(Ownership::Revoked(
            partitions.iter().map(|p| *p as u32).collect(),
        ));
        tracing::info!(partitions = ?partitions, "Partitions revoked");
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Assign(tpl) = rebalance else {
            return;
        };
        let partitions: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
        let now = crate::clock::now_ms();
        // Where consumption starts: the group's committed offsets.
        let committed: HashMap<i32, u64> = consumer
            .committed_offsets((*tpl).clone(), Duration::from_secs(2))
            .map(|list| {
                list.elements()
                    .iter()
                    .filter_map(|e| match e.offset() {
                        Offset::Offset(o) if o >= 0 => Some((e.partition(), o as u64)),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        for part in &partitions {
            // What the partition holds now may have reached its previous
            // owner; what is appended from now on cannot have.
            let marks = match consumer.fetch_watermarks(
                &self.shared.topic,
                *part,
                Duration::from_secs(2),
            ) {
                Ok((low, high)) => Some((low.max(0) as u64, high.max(0) as u64)),
                Err(e) => {
                    tracing::warn!(partition = part, error = %e, "Cannot read the partition's watermarks; events received before the assignment count as replays");
                    None
                }
            };
            tracing::debug!(partition = part, ?marks, "Watermarks at assignment");
            let mut p = self.shared.lock();
            p.leases.entry(*part).or_default().acquire();
            p.assigned_at.insert(*part, now);
            match marks {
                Some((low, high)) => {
                    p.replay_below.insert(*part, high);
                    // Replaying starts from the committed offset (or the
                    // oldest record): nothing below it is coming.
                    let start = committed.get(part).copied().unwrap_or(low);
                    p.handed_max.insert(*part, start);
                }
                None => {
                    p.replay_below.remove(part);
                }
            };
        }
        tracing::info!(partitions = ?partitions, "Partitions assigned");
        let _ = self.shared.ownership.send(Ownership::Assigned(
            partitions.iter().map(|p| *p as u32).collect(),
        ));
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::sync::atomic::AtomicU64;

    use super::*;

    /// Shared state for a group of one topic, `events`, with nothing
    /// assigned yet.
    pub(in crate::bus::kafka) fn shared() -> Shared {
        let (ownership, _) = mpsc::unbounded_channel();
        Shared {
            topic: "events".into(),
            group: "engine".into(),
            progress: Mutex::new(Progress::default()),
            delivered: AtomicU64::new(0),
            finished: AtomicU64::new(0),
            ownership,
            revoke_wait: Duration::from_secs(1),
            rebalance_timeout: Duration::from_secs(1),
            drain_wait: Duration::from_secs(1),
            closing: AtomicBool::new(false),
            waiting: Mutex::new(VecDeque::new()),
            committing: Mutex::new(()),
        }
    }

    fn finish(shared: &Shared, partition: i32, offsets: std::ops::Range<u64>) {
        let mut p = shared.lock();
        let prog = p.partitions.entry(partition).or_default();
        for o in offsets {
            prog.delivered(o);
            prog.finished(o);
        }
    }

    fn offsets(list: &TopicPartitionList) -> Vec<(i32, Offset)> {
        let mut all: Vec<_> = list
            .elements()
            .iter()
            .map(|e| (e.partition(), e.offset()))
            .collect();
        all.sort_by_key(|(part, _)| *part);
        all
    }

    /// A commit that fails is listed again by the next commit, though its
    /// partition got nothing new meanwhile (rdkafka reports nothing back for
    /// an asynchronous commit: before, it counted as committed and the
    /// broker kept the older offset). Here no broker answers at all: the
    /// commit fails once the session timeout passes without a coordinator.
    #[test]
    fn a_failed_commit_is_sent_again() {
        let shared = Arc::new(shared());
        let consumer: BaseConsumer<GroupContext> = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", "127.0.0.1:1")
            .set("group.id", "engine")
            .set("enable.auto.commit", "false")
            .set("session.timeout.ms", "500")
            .set("socket.connection.setup.timeout.ms", "1000")
            .create_with_context(GroupContext {
                shared: shared.clone(),
            })
            .unwrap();
        finish(&shared, 0, 0..5);
        finish(&shared, 1, 0..3);
        assert!(commit_finished(&consumer, &shared).is_err());
        assert_eq!(
            offsets(&shared.commit_list(None, false)),
            [(0, Offset::Offset(5)), (1, Offset::Offset(3))],
            "listed again"
        );
    }

    /// A revoke's commit waits for the commit in flight (so that one's
    /// older offsets never land after the revoke's), but not past its wait.
    #[test]
    fn a_revoke_waits_a_while_for_the_commit_in_flight() {
        let shared = Arc::new(shared());
        let in_flight = lock(&shared.committing);
        let waiting = {
            let shared = shared.clone();
            std::thread::spawn(move || {
                let started = Instant::now();
                let got = shared.committing_within(Duration::from_secs(30)).is_some();
                (got, started.elapsed())
            })
        };
        std::thread::sleep(Duration::from_millis(200));
        drop(in_flight);
        let (got, waited) = waiting.join().unwrap();
        assert!(got, "the turn comes once the commit in flight is done");
        assert!(
            waited >= Duration::from_millis(200),
            "it waited: {waited:?}"
        );
        let held = lock(&shared.committing);
        let gave_up = {
            let shared = shared.clone();
            std::thread::spawn(move || {
                shared
                    .committing_within(Duration::from_millis(50))
                    .is_none()
            })
        };
        assert!(gave_up.join().unwrap(), "not past the wait");
        drop(held);
    }

    /// A failure of an older commit leaves a later one of the same
    /// partition alone (it is on its way already).
    #[test]
    fn a_failed_older_commit_does_not_resend_a_newer_one() {
        let shared = shared();
        finish(&shared, 0, 0..5);
        let older = shared.commit_list(None, false);
        finish(&shared, 0, 5..8);
        assert_eq!(
            offsets(&shared.commit_list(None, false)),
            [(0, Offset::Offset(8))]
        );
        assert_eq!(shared.forget(&older), 0);
        assert_eq!(shared.commit_list(None, false).count(), 0);
        // A revoke commits its partitions' prefixes again all the same.
        let revoke = shared.commit_list(Some(&[0]), true);
        assert_eq!(offsets(&revoke), [(0, Offset::Offset(8))]);
    }
}
