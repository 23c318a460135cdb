//! No partition may sit without a live owner. Every few seconds a thread
//! of its own (so a slow broker never holds up the consumer's polling)
//! asks the group coordinator who owns what (the members'
//! assignments); when some of the topic's partitions have been owned by
//! nobody for a while (past a session timeout, so a departed member has
//! expired), a broker has failed to give them out again (Tansu 0.6 does,
//! after a member is killed; see README, Scaling out): this instance leaves
//! and rejoins the group, and the rebalance that follows assigns them. A
//! broker that does not report the members' assignments (Tansu) is judged
//! by this instance's own share: in a stable group every member owns at
//! least partitions / members. A group that stays between generations
//! longer than a healthy rebalance may take (the rebalance timeout and a
//! session, at least twice the time above) is stuck the same way (Tansu 0.6 can revoke the
//! survivor's partitions and report the group "Unknown" from then on): this
//! instance rejoins too.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};

use super::group::{GroupContext, Shared};

/// How often the group's assignments are looked at.
const EVERY: Duration = Duration::from_secs(3);

/// Starts the watch on a thread of its own; it ends when the bus closes.
pub(super) fn spawn(
    consumer: Arc<BaseConsumer<GroupContext>>,
    shared: Arc<Shared>,
    limit: Duration,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("kafka-ownerless-watch".into())
        .spawn(move || {
            let mut watch = OwnerlessWatch::new(limit);
            while !shared.closing.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(100));
                watch.check(&consumer, &shared);
            }
        })
        .map(drop)
}

struct OwnerlessWatch {
    limit: Duration,
    checked: Instant,
    /// Since when some partition has had no owner, if one has not.
    ownerless_since: Option<Instant>,
    /// Since when the group has been rebalancing without settling, if it
    /// has.
    unsettled_since: Option<Instant>,
}

/// What the coordinator says of the group.
#[derive(Debug, PartialEq)]
enum Verdict {
    /// The broker did not answer or did not say.
    Unknown,
    /// The group is between generations.
    Rebalancing(String),
    /// A stable group and the partitions nobody in it owns.
    Stable(Vec<i32>),
}

impl OwnerlessWatch {
    fn new(limit: Duration) -> Self {
        Self {
            limit,
            checked: Instant::now(),
            ownerless_since: None,
            unsettled_since: None,
        }
    }

    fn check(&mut self, consumer: &BaseConsumer<GroupContext>, shared: &Shared) {
        if self.checked.elapsed() < EVERY {
            return;
        }
        self.checked = Instant::now();
        match ownerless_partitions(consumer, shared) {
            Verdict::Unknown => {}
            Verdict::Rebalancing(state) => {
                // A rebalance waits for live members only; one that has not
                // settled long after any departed member expired is stuck
                // (Tansu 0.6 can leave a revoked survivor waiting forever).
                self.ownerless_since = None;
                let since = *self.unsettled_since.get_or_insert_with(Instant::now);
                // Longer than a healthy rebalance may take (the rebalance
                // timeout and a session), and not at the same moment on
                // every member.
                let session = shared.revoke_wait * 2;
                let patience = (self.limit * 2).max(shared.rebalance_timeout + session)
                    + Duration::from_millis(rand::random::<u64>() % 3000);
                if since.elapsed() >= patience {
                    self.unsettled_since = None;
                    tracing::warn!(state, seconds = since.elapsed().as_secs(), "The consumer group has not settled: rejoining it so its partitions are assigned again");
                    rejoin(consumer, shared);
                }
            }
            Verdict::Stable(ownerless) if ownerless.is_empty() => {
                self.ownerless_since = None;
                self.unsettled_since = None;
            }
            Verdict::Stable(ownerless) => {
                self.unsettled_since = None;
                let since = *self.ownerless_since.get_or_insert_with(Instant::now);
                if since.elapsed() < self.limit {
                    return;
                }
                self.ownerless_since = None;
                tracing::warn!(partitions = ?ownerless, "Partitions without an owner in the group: rejoining it so they are assigned again");
                rejoin(consumer, shared);
            }
        }
    }
}

/// Leaves the group and joins it again: the rebalance that follows gives
/// out every partition.
fn rejoin(consumer: &BaseConsumer<GroupContext>, shared: &Shared) {
    if shared.closing.load(Ordering::Acquire) {
        return;
    }
    consumer.unsubscribe();
    if let Err(e) = consumer.subscribe(&[shared.topic.as_str()]) {
        tracing::error!(error = %e, "Cannot rejoin the consumer group");
    }
}

/// The group's state and, when it is stable, the topic's partitions no
/// member owns.
fn ownerless_partitions(consumer: &BaseConsumer<GroupContext>, shared: &Shared) -> Verdict {
    let wait = Duration::from_secs(2);
    let Ok(groups) = consumer.fetch_group_list(Some(&shared.group), wait) else {
        return Verdict::Unknown;
    };
    let Some(group) = groups.groups().first() else {
        return Verdict::Unknown;
    };
    tracing::debug!(
        state = group.state(),
        members = group.members().len(),
        "Consumer group looked at"
    );
    // Any other state while this instance is subscribed (a rebalance, or
    // Tansu's "Unknown" / "Empty" after it revoked a survivor) is a group
    // between generations.
    if group.state() != "Stable" {
        return Verdict::Rebalancing(group.state().to_string());
    }
    owned_by_nobody(consumer, shared, group).map_or(Verdict::Unknown, Verdict::Stable)
}

/// The topic's partitions no member of the stable `group` owns; `None` when
/// it cannot be told.
fn owned_by_nobody(
    consumer: &BaseConsumer<GroupContext>,
    shared: &Shared,
    group: &rdkafka::groups::GroupInfo,
) -> Option<Vec<i32>> {
    let wait = Duration::from_secs(2);
    let metadata = consumer.fetch_metadata(Some(&shared.topic), wait).ok()?;
    let partitions: Vec<i32> = metadata
        .topics()
        .first()?
        .partitions()
        .iter()
        .map(|p| p.id())
        .collect();
    let assignments: Option<Vec<&[u8]>> = group.members().iter().map(|m| m.assignment()).collect();
    match assignments {
        Some(assignments) => {
            let mut owned = BTreeSet::new();
            for a in assignments {
                owned.extend(assigned(a, &shared.topic)?);
            }
            Some(
                partitions
                    .into_iter()
                    .filter(|p| !owned.contains(p))
                    .collect(),
            )
        }
        None => {
            // Not reported: this instance's own share tells. Below it, the
            // partitions it is missing are owned by no live member.
            let members = group.members().len().max(1);
            let mine: BTreeSet<i32> = consumer
                .assignment()
                .ok()?
                .elements()
                .iter()
                .map(|e| e.partition())
                .collect();
            if mine.len() >= partitions.len() / members {
                return Some(Vec::new());
            }
            Some(
                partitions
                    .into_iter()
                    .filter(|p| !mine.contains(p))
                    .collect(),
            )
        }
    }
}

/// The partitions of `topic` in a member's assignment (Kafka's consumer
/// protocol: version, then topics with their partitions, then user data).
fn assigned(bytes: &[u8], topic: &str) -> Option<Vec<i32>> {
    let mut r = Reader(bytes);
    r.i16()?;
    let topics = r.i32()?;
    let mut out = Vec::new();
    for _ in 0..topics.max(0) {
        let name_len = usize::try_from(r.i16()?).ok()?;
        let name = r.take(name_len)?;
        let partitions = r.i32()?;
        for _ in 0..partitions.max(0) {
            let p = r.i32()?;
            if name == topic.as_bytes() {
                out.push(p);
            }
        }
    }
    Some(out)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }
    fn i16(&mut self) -> Option<i16> {
        self.take(2).map(|b| i16::from_be_bytes([b[0], b[1]]))
    }
    fn i32(&mut self) -> Option<i32> {
        self.take(4)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

#[cfg(test)]
mod tests {
    use super::assigned;

    #[test]
    fn reads_a_consumer_protocol_assignment() {
        // version 1, two topics, user data of 0 bytes.
        let mut b = vec![0, 1, 0, 0, 0, 2];
        for (name, parts) in [("other", vec![9i32]), ("inbound", vec![0, 2, 4])] {
            b.extend((name.len() as i16).to_be_bytes());
            b.extend(name.as_bytes());
            b.extend((parts.len() as i32).to_be_bytes());
            for p in parts {
                b.extend(p.to_be_bytes());
            }
        }
        b.extend(0i32.to_be_bytes());
        assert_eq!(assigned(&b, "inbound"), Some(vec![0, 2, 4]));
        assert_eq!(assigned(&b[..7], "inbound"), None, "cut short");
    }
}
