//! The Kafka bus (`bus.kind = "kafka"`), on rdkafka with its bundled
//! librdkafka.
//!
//! - Publishing: an idempotent producer with `acks=all` and a short linger;
//!   `publish` returns only once the broker acknowledged every event of the
//!   webhook, so the 200 means "on the brokers". A broker that does not
//!   answer within `message.timeout.ms` fails the publish (the webhook gets
//!   503 and Meta retries).
//! - One topic keyed by conversation id, created with the configured
//!   partition count if missing: one conversation's events stay in order.
//! - Consuming: a consumer group with manual commits. Events of different
//!   conversations finish out of order, so each partition commits only its
//!   contiguous finished prefix ([`PartitionProgress`]), every 20 ms.
//!   `group.instance.id` (static membership) lets a restarted instance take
//!   its partitions back without waiting for a rebalance.
//! - The consumer is polled by a thread of its own, so the rebalance
//!   callbacks (which wait) never block a runtime worker. It hands events
//!   to the engine through a bounded queue and pauses fetching while the
//!   queue is full (the broker is the buffer, not memory).
//! - Rebalance: before revoked partitions are released, their delivered
//!   events are waited for (up to half the session timeout; not at
//!   shutdown), then the partitions' leases are revoked (no send or write
//!   for their conversations starts any more; see [`crate::fence`]) and the
//!   side effects already running are waited for, their finished prefix is
//!   committed, and the engine is told, so it stops the actors of those
//!   partitions (another instance will rehydrate them from the store).
//! - An event at an offset below the partition's high watermark at
//!   assignment may have been handled by the previous owner: it is
//!   delivered as a replay (its replies wait for confirmation).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::util::Timeout;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::sync::mpsc;

use super::progress::PartitionProgress;
use super::{Backlog, Bus, BusError, Delivery, Ownership, Position, DELIVERY_QUEUE};
use crate::config::KafkaConfig;
use crate::event::InboundEvent;
use crate::fence::{Fence, Lease};
use crate::sync::lock;

const COMMIT_EVERY: Duration = Duration::from_millis(20);
/// Events received up to this long after a partition's assignment count as
/// possibly handled by its previous owner (clocks of instances differ).
const REPLAY_MARGIN_MS: u64 = 1000;

fn unavailable(e: impl std::fmt::Display) -> BusError {
    BusError::Unavailable(e.to_string())
}

/// Per-partition progress, shared by the consumer task, `finished` and the
/// rebalance callbacks.
#[derive(Default)]
struct Progress {
    partitions: HashMap<i32, PartitionProgress>,
    /// Resume offsets already committed, per partition.
    committed: HashMap<i32, u64>,
    /// When each partition was last assigned here (ms), and its high
    /// watermark then: events below it may have been handled by the
    /// previous owner.
    assigned_at: HashMap<i32, u64>,
    replay_below: HashMap<i32, u64>,
    /// One past the highest offset handed to the engine, per partition.
    handed_max: HashMap<i32, u64>,
    /// Ownership of each partition ever assigned here.
    leases: HashMap<i32, Arc<Lease>>,
}

struct Shared {
    topic: String,
    group: String,
    progress: Mutex<Progress>,
    delivered: AtomicU64,
    finished: AtomicU64,
    ownership: mpsc::UnboundedSender<Ownership>,
    /// How long a revoked partition's delivered events may take to finish
    /// before the partition is released anyway: half the session timeout,
    /// so the member is not evicted meanwhile.
    revoke_wait: Duration,
    /// How long the side effects already running for a revoked partition
    /// (a platform call, a store write) are waited for once its lease is
    /// revoked.
    drain_wait: Duration,
    /// Shutting down: whatever is unfinished is left for redelivery.
    closing: AtomicBool,
    /// Fetched records the engine's queue had no room for yet (only the
    /// consumer's thread touches it).
    waiting: Mutex<VecDeque<Delivery>>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Progress> {
        lock(&self.progress)
    }

    /// The finished prefixes not yet committed.
    fn commit_list(&self, only: Option<&[i32]>) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::new();
        let mut p = self.lock();
        let ready: Vec<(i32, u64)> = p
            .partitions
            .iter()
            .filter(|(part, _)| only.is_none_or(|o| o.contains(part)))
            .filter_map(|(part, prog)| prog.committable().map(|o| (*part, o)))
            .filter(|(part, o)| p.committed.get(part) != Some(o))
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

    fn unfinished(&self, partitions: &[i32]) -> usize {
        let p = self.lock();
        partitions
            .iter()
            .filter_map(|part| p.partitions.get(part))
            .map(PartitionProgress::unfinished)
            .sum()
    }
}

/// Rebalance callbacks: finish, commit and hand back revoked partitions.
struct GroupContext {
    shared: Arc<Shared>,
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
        let commit = self.shared.commit_list(Some(&partitions));
        if commit.count() > 0 {
            if let Err(e) = consumer.commit(&commit, CommitMode::Sync) {
                tracing::warn!(error = %e, "Commit before releasing partitions failed");
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

pub struct KafkaBus {
    shared: Arc<Shared>,
    /// Replaced after a fatal producer error (an idempotent producer that
    /// was fenced cannot send again; a new one can).
    producer: Mutex<FutureProducer>,
    producer_config: ClientConfig,
    consumer: Arc<BaseConsumer<GroupContext>>,
    subscribed: AtomicBool,
    consuming: Mutex<Option<std::thread::JoinHandle<()>>>,
    ownership: Mutex<Option<mpsc::UnboundedReceiver<Ownership>>>,
    publish_timeout: Duration,
}

impl KafkaBus {
    /// Connects the producer and the consumer (the broker may still be
    /// down: publishing fails with 503 and the clients reconnect on their
    /// own), and makes sure the topic exists. Must be called inside a tokio
    /// runtime.
    pub fn open(config: &KafkaConfig, drain_wait: Duration) -> Result<Arc<Self>, BusError> {
        let timeout_ms = config.publish_timeout_ms.to_string();
        let mut producer_config = ClientConfig::new();
        producer_config
            .set("bootstrap.servers", &config.brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", config.linger_ms.to_string())
            .set("message.timeout.ms", &timeout_ms)
            .set("socket.connection.setup.timeout.ms", "3000");
        let producer: FutureProducer = producer_config.create().map_err(unavailable)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            topic: config.topic.clone(),
            group: config.group_id.clone(),
            progress: Mutex::new(Progress::default()),
            delivered: AtomicU64::new(0),
            finished: AtomicU64::new(0),
            ownership: tx,
            revoke_wait: Duration::from_millis(config.session_timeout_ms / 2),
            drain_wait,
            closing: AtomicBool::new(false),
            waiting: Mutex::new(VecDeque::new()),
        });
        let mut consumer_config = ClientConfig::new();
        consumer_config
            .set("bootstrap.servers", &config.brokers)
            .set("group.id", &config.group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("partition.assignment.strategy", &config.assignment_strategy)
            .set("session.timeout.ms", config.session_timeout_ms.to_string())
            // Latency over fetch efficiency: a fetch returns as soon as
            // there is a record, and waits at most this long when there is
            // none (brokers that wait out the maximum would add it to every
            // reply).
            .set("fetch.wait.max.ms", config.fetch_wait_max_ms.to_string())
            .set("fetch.min.bytes", "1")
            // Prefetched records per partition are bounded too: the broker
            // keeps the backlog, not this process.
            .set("queued.max.messages.kbytes", "8192");
        // A client id of its own per instance: brokers and their logs tell
        // members apart by it.
        let client_id = if config.instance_id.is_empty() {
            format!(
                "switchboard-{}-{}",
                std::process::id(),
                rand::random::<u32>()
            )
        } else {
            consumer_config.set("group.instance.id", &config.instance_id);
            format!("switchboard-{}", config.instance_id)
        };
        consumer_config.set("client.id", &client_id);
        let consumer: BaseConsumer<GroupContext> = consumer_config
            .create_with_context(GroupContext {
                shared: shared.clone(),
            })
            .map_err(unavailable)?;
        let bus = Arc::new(Self {
            shared,
            producer: Mutex::new(producer),
            producer_config,
            consumer: Arc::new(consumer),
            subscribed: AtomicBool::new(false),
            consuming: Mutex::new(None),
            ownership: Mutex::new(Some(rx)),
            publish_timeout: Duration::from_millis(config.publish_timeout_ms),
        });
        tokio::spawn(ensure_topic(
            config.brokers.clone(),
            config.topic.clone(),
            config.partitions,
            config.replication_factor,
        ));
        tokio::spawn(commit_loop(Arc::downgrade(&bus)));
        Ok(bus)
    }

    fn producer(&self) -> FutureProducer {
        lock(&self.producer).clone()
    }

    /// After a failed publish: a producer in a fatal state, or fenced (its
    /// idempotent session is over), is replaced, so the bus recovers on its
    /// own once the brokers answer again.
    fn renew_producer_if_broken(&self, failed: &FutureProducer, code: Option<RDKafkaErrorCode>) {
        let fenced = matches!(
            code,
            Some(
                RDKafkaErrorCode::ProducerFenced
                    | RDKafkaErrorCode::InvalidProducerEpoch
                    | RDKafkaErrorCode::UnknownProducerId
                    | RDKafkaErrorCode::OutOfOrderSequenceNumber
            )
        );
        let fatal = failed.client().fatal_error();
        if !fenced && fatal.is_none() {
            return;
        }
        tracing::warn!(?code, fatal = ?fatal, "Kafka producer cannot send any more; replacing it");
        match self.producer_config.create::<FutureProducer>() {
            Ok(fresh) => {
                *lock(&self.producer) = fresh;
            }
            Err(e) => tracing::error!(error = %e, "Cannot create a new Kafka producer"),
        }
    }

    /// Sends and waits for every acknowledgement; on failure, the broker's
    /// error code when there is one.
    async fn publish_with(
        &self,
        producer: &FutureProducer,
        events: &[InboundEvent],
    ) -> Result<(), (BusError, Option<RDKafkaErrorCode>)> {
        let failed = |e: KafkaError| {
            let code = e.rdkafka_error_code();
            (unavailable(e), code)
        };
        let payloads: Vec<Vec<u8>> = events.iter().map(InboundEvent::encode).collect();
        let mut pending = Vec::with_capacity(events.len());
        for (event, payload) in events.iter().zip(&payloads) {
            let record = FutureRecord::to(&self.shared.topic)
                .key(event.conversation.as_str())
                .payload(payload.as_slice());
            let delivery = producer.send_result(record).map_err(|(e, _)| failed(e))?;
            pending.push(delivery);
        }
        for delivery in pending {
            match tokio::time::timeout(self.publish_timeout + Duration::from_secs(1), delivery)
                .await
            {
                Ok(Ok(Ok(_))) => {}
                Ok(Ok(Err((e, _)))) => return Err(failed(e)),
                Ok(Err(_)) => return Err((unavailable("the producer was dropped"), None)),
                Err(_) => {
                    return Err((unavailable("the broker did not acknowledge in time"), None))
                }
            }
        }
        Ok(())
    }

    fn commit_now(&self, mode: CommitMode) -> Result<(), BusError> {
        let tpl = self.shared.commit_list(None);
        if tpl.count() == 0 {
            return Ok(());
        }
        self.consumer.commit(&tpl, mode).map_err(unavailable)
    }
}

/// Creates the topic if it is missing, retrying until the broker answers.
async fn ensure_topic(brokers: String, topic: String, partitions: u32, replication: u32) {
    loop {
        match create_topic(&brokers, &topic, partitions, replication).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(topic = %topic, error = %e, "Cannot create the topic yet; retrying");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
}

async fn create_topic(
    brokers: &str,
    topic: &str,
    partitions: u32,
    replication: u32,
) -> Result<(), KafkaError> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let new = NewTopic::new(
        topic,
        partitions as i32,
        TopicReplication::Fixed(replication as i32),
    );
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(5)));
    for result in admin.create_topics([&new], &options).await? {
        match result {
            Ok(_) => tracing::info!(topic, partitions, "Topic created"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => return Err(KafkaError::AdminOp(code)),
        }
    }
    Ok(())
}

async fn commit_loop(bus: std::sync::Weak<KafkaBus>) {
    let mut tick = tokio::time::interval(COMMIT_EVERY);
    loop {
        tick.tick().await;
        let Some(bus) = bus.upgrade() else { return };
        if let Err(e) = bus.commit_now(CommitMode::Async) {
            tracing::debug!(error = %e, "Offset commit deferred");
        }
    }
}

/// The consumer's thread: polls (which also runs the rebalance callbacks),
/// hands events over through the bounded queue, and pauses fetching while
/// the queue is full. At close it leaves the group from here, so the last
/// revoke runs on this thread too.
fn poll_loop(
    consumer: Arc<BaseConsumer<GroupContext>>,
    shared: Arc<Shared>,
    tx: mpsc::Sender<Delivery>,
) {
    let mut paused = false;
    // Past a session timeout and a rebalance: the departed member's expiry.
    let mut idle = IdleWatch::new(shared.revoke_wait * 3);
    while !shared.closing.load(Ordering::Acquire) {
        idle.check(&consumer, &shared);
        let (behind, closed) = hand_over(&shared, &tx);
        if closed {
            break;
        }
        if behind || paused {
            if let Ok(assignment) = consumer.assignment() {
                let changed = if behind {
                    consumer.pause(&assignment)
                } else {
                    consumer.resume(&assignment)
                };
                if let Err(e) = changed {
                    tracing::debug!(error = %e, "Cannot pause or resume fetching");
                }
            }
            paused = behind;
        }
        let wait = if behind { 5 } else { 100 };
        match consumer.poll(Duration::from_millis(wait)) {
            None => {}
            Some(Err(e)) => {
                tracing::warn!(error = %e, "Kafka consumer error");
                std::thread::sleep(Duration::from_millis(200));
            }
            Some(Ok(message)) => {
                if let Some(d) = delivery(&shared, &message) {
                    lock(&shared.waiting).push_back(d);
                }
            }
        }
    }
    // Leaving the group runs the revoke callback on this thread (with
    // `closing` set it does not wait for events).
    consumer.unsubscribe();
    for _ in 0..50 {
        let _ = consumer.poll(Duration::from_millis(100));
        if consumer.assignment().map_or(true, |a| a.count() == 0) {
            break;
        }
    }
}

/// An instance must not sit idle while partitions have no live owner. When
/// this one has owned no partition for a while (`limit`, past a session
/// timeout) although the group has no more members than the topic has
/// partitions, a broker is still counting a departed member as their
/// owner (Tansu 0.6 does, after a member is killed right after joining;
/// see README, Scaling out): it leaves and rejoins the group, which makes
/// the broker expire the departed member and assign its partitions again.
struct IdleWatch {
    limit: Duration,
    since: Instant,
    checked: Instant,
}

impl IdleWatch {
    fn new(limit: Duration) -> Self {
        Self {
            limit,
            since: Instant::now(),
            checked: Instant::now(),
        }
    }

    fn check(&mut self, consumer: &BaseConsumer<GroupContext>, shared: &Shared) {
        if self.checked.elapsed() < Duration::from_secs(1) {
            return;
        }
        self.checked = Instant::now();
        if consumer.assignment().is_ok_and(|a| a.count() > 0) {
            self.since = Instant::now();
            return;
        }
        if self.since.elapsed() < self.limit {
            return;
        }
        // Looked at again only after another full spell.
        self.since = Instant::now();
        let wait = Duration::from_secs(2);
        let members = consumer
            .fetch_group_list(Some(&shared.group), wait)
            .ok()
            .and_then(|list| list.groups().first().map(|g| g.members().len()));
        let partitions = consumer
            .fetch_metadata(Some(&shared.topic), wait)
            .ok()
            .and_then(|m| m.topics().first().map(|t| t.partitions().len()));
        match (members, partitions) {
            (Some(members), Some(partitions)) if members <= partitions => {
                tracing::warn!(members, partitions, "No partition owned here although the group has no more members than partitions: rejoining the group");
                consumer.unsubscribe();
                if let Err(e) = consumer.subscribe(&[shared.topic.as_str()]) {
                    tracing::error!(error = %e, "Cannot rejoin the consumer group");
                }
            }
            _ => {}
        }
    }
}

/// Moves waiting records into the engine's queue while it has room; an
/// event counts as delivered (and so as one a revoke waits for) only once
/// it is there. Returns (records still waiting, the engine is gone).
fn hand_over(shared: &Shared, tx: &mpsc::Sender<Delivery>) -> (bool, bool) {
    let mut waiting = lock(&shared.waiting);
    while let Some(d) = waiting.pop_front() {
        let position = d.position;
        match tx.try_send(d) {
            Ok(()) => handed(shared, position),
            Err(mpsc::error::TrySendError::Full(d)) => {
                waiting.push_front(d);
                return (true, false);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return (true, true),
        }
    }
    (false, false)
}

/// Records that the event at `position` is in the engine's hands.
fn handed(shared: &Shared, position: Position) {
    let part = position.partition as i32;
    let mut p = shared.lock();
    p.partitions
        .entry(part)
        .or_default()
        .delivered(position.offset);
    let max = p.handed_max.entry(part).or_insert(0);
    *max = (*max).max(position.offset + 1);
    drop(p);
    shared.delivered.fetch_add(1, Ordering::Relaxed);
}

/// The delivery of one record, or `None` for a record this engine did not
/// write (skipped, so it never blocks its partition).
fn delivery(shared: &Shared, message: &rdkafka::message::BorrowedMessage<'_>) -> Option<Delivery> {
    let partition = message.partition();
    let offset = message.offset().max(0) as u64;
    let (lease, replay_below, assigned_at) = {
        let p = shared.lock();
        (
            p.leases.get(&partition).cloned(),
            p.replay_below.get(&partition).copied(),
            p.assigned_at.get(&partition).copied().unwrap_or(0),
        )
    };
    let position = Position {
        partition: partition as u32,
        offset,
    };
    match message.payload().map(InboundEvent::decode) {
        Some(Ok(event)) => {
            // Below the high watermark at assignment, the previous owner
            // may have handled it without finishing. (Without the
            // watermark: received before the assignment, with a second of
            // margin for the clocks of instances.)
            let replay = match replay_below {
                Some(high) => offset < high,
                None => event.received_at_ms < assigned_at.saturating_add(REPLAY_MARGIN_MS),
            };
            let fence = match lease {
                Some(lease) => {
                    let epoch = lease.epoch();
                    Fence::new(lease, epoch)
                }
                // Not assigned here (cannot happen): a fence that never
                // holds, so nothing is done for it.
                None => Fence::new(Arc::new(Lease::default()), 0),
            };
            Some(Delivery {
                position,
                event,
                replay,
                fence,
            })
        }
        _ => {
            tracing::warn!(%position, "Undecodable record on the bus skipped");
            handed(shared, position);
            finish(shared, position);
            None
        }
    }
}

fn finish(shared: &Shared, position: Position) {
    let mut p = shared.lock();
    if let Some(prog) = p.partitions.get_mut(&(position.partition as i32)) {
        prog.finished(position.offset);
        shared.finished.fetch_add(1, Ordering::Relaxed);
    }
}

#[async_trait]
impl Bus for KafkaBus {
    async fn publish(&self, events: &[InboundEvent]) -> Result<(), BusError> {
        let producer = self.producer();
        self.publish_with(&producer, events)
            .await
            .map_err(|(e, code)| {
                self.renew_producer_if_broken(&producer, code);
                e
            })
    }

    async fn subscribe(&self) -> Result<mpsc::Receiver<Delivery>, BusError> {
        if self.subscribed.swap(true, Ordering::AcqRel) {
            return Err(BusError::AlreadySubscribed);
        }
        self.consumer
            .subscribe(&[self.shared.topic.as_str()])
            .map_err(unavailable)?;
        let (tx, rx) = mpsc::channel(DELIVERY_QUEUE);
        let (consumer, shared) = (self.consumer.clone(), self.shared.clone());
        let thread = std::thread::Builder::new()
            .name("kafka-consumer".into())
            .spawn(move || poll_loop(consumer, shared, tx))
            .map_err(unavailable)?;
        *lock(&self.consuming) = Some(thread);
        Ok(rx)
    }

    fn finished(&self, position: Position) {
        finish(&self.shared, position);
    }

    async fn flush_commits(&self) -> Result<(), BusError> {
        self.commit_now(CommitMode::Sync)?;
        let _ = self
            .producer()
            .flush(Timeout::After(Duration::from_secs(5)));
        Ok(())
    }

    fn lag(&self) -> u64 {
        self.shared
            .delivered
            .load(Ordering::Relaxed)
            .saturating_sub(self.shared.finished.load(Ordering::Relaxed))
    }

    /// A partition is behind while records wait for room in the engine's
    /// queue, or while it replays what its previous owner may have handled
    /// (offsets below its high watermark at assignment).
    fn behind(&self, partition: u32) -> bool {
        let part = partition as i32;
        let replaying = {
            let p = self.shared.lock();
            match p.replay_below.get(&part) {
                Some(high) => p.handed_max.get(&part).copied().unwrap_or(0) < *high,
                None => false,
            }
        };
        replaying
            || lock(&self.shared.waiting)
                .iter()
                .any(|d| d.position.partition == partition)
    }

    /// Events fetched here and not finished (the brokers keep the rest; a
    /// webhook is accepted as long as they take it).
    fn backlog(&self) -> Backlog {
        Backlog {
            events: self.lag(),
            oldest_ms: 0,
        }
    }

    async fn ready(&self) -> bool {
        let producer = self.producer();
        let topic = self.shared.topic.clone();
        tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_metadata(Some(&topic), Duration::from_millis(500))
                .is_ok()
        })
        .await
        .unwrap_or(false)
    }

    async fn close(&self) {
        self.shared.closing.store(true, Ordering::Release);
        let thread = lock(&self.consuming).take();
        if let Some(thread) = thread {
            // The thread leaves the group (a final revoke and commit) and
            // waits for the broker: joined off the async threads.
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }

    fn ownership(&self) -> Option<mpsc::UnboundedReceiver<Ownership>> {
        lock(&self.ownership).take()
    }

    fn partitioned(&self) -> bool {
        true
    }
}
