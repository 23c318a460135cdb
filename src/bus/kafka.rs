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
//! - Rebalance: before revoked partitions are released, their delivered
//!   events are waited for (up to half the session timeout; not at
//!   shutdown), their finished prefix is committed,
//!   and the engine is told, so it stops the actors of those partitions
//!   (another instance will rehydrate them from the store).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::util::Timeout;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::sync::mpsc;

use super::progress::PartitionProgress;
use super::{Bus, BusError, Delivery, Ownership, Position};
use crate::config::KafkaConfig;
use crate::event::InboundEvent;
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
    /// When each partition was last assigned here (ms): events received
    /// before may have been handled by its previous owner.
    assigned_at: HashMap<i32, u64>,
}

struct Shared {
    topic: String,
    progress: Mutex<Progress>,
    delivered: AtomicU64,
    finished: AtomicU64,
    ownership: mpsc::UnboundedSender<Ownership>,
    /// How long a revoked partition's delivered events may take to finish
    /// before the partition is released anyway: half the session timeout,
    /// so the member is not evicted meanwhile.
    revoke_wait: Duration,
    /// Shutting down: whatever is unfinished is left for redelivery.
    closing: AtomicBool,
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
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(tpl) = rebalance else {
            return;
        };
        let partitions: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
        if partitions.is_empty() {
            return;
        }
        // Runs on the thread polling the consumer; the actors finish their
        // events on the runtime's other threads meanwhile.
        let started = Instant::now();
        while self.shared.unfinished(&partitions) > 0
            && started.elapsed() < self.shared.revoke_wait
            && !self.shared.closing.load(Ordering::Acquire)
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        let left = self.shared.unfinished(&partitions);
        if left > 0 {
            tracing::warn!(partitions = ?partitions, events = left, "Partitions released with events unfinished; the next owner handles them again");
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
            }
        }
        let _ = self.shared.ownership.send(Ownership::Revoked(
            partitions.iter().map(|p| *p as u32).collect(),
        ));
        tracing::info!(partitions = ?partitions, "Partitions revoked");
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            let partitions: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
            {
                let now = crate::clock::now_ms();
                let mut p = self.shared.lock();
                for part in &partitions {
                    p.assigned_at.insert(*part, now);
                }
            }
            tracing::info!(partitions = ?partitions, "Partitions assigned");
            let _ = self.shared.ownership.send(Ownership::Assigned(
                partitions.iter().map(|p| *p as u32).collect(),
            ));
        }
    }
}

pub struct KafkaBus {
    shared: Arc<Shared>,
    /// Replaced after a fatal producer error (an idempotent producer that
    /// was fenced cannot send again; a new one can).
    producer: Mutex<FutureProducer>,
    producer_config: ClientConfig,
    consumer: Arc<StreamConsumer<GroupContext>>,
    subscribed: AtomicBool,
    consuming: Mutex<Option<tokio::task::JoinHandle<()>>>,
    ownership: Mutex<Option<mpsc::UnboundedReceiver<Ownership>>>,
    publish_timeout: Duration,
}

impl KafkaBus {
    /// Connects the producer and the consumer (the broker may still be
    /// down: publishing fails with 503 and the clients reconnect on their
    /// own), and makes sure the topic exists. Must be called inside a tokio
    /// runtime.
    pub fn open(config: &KafkaConfig) -> Result<Arc<Self>, BusError> {
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
            progress: Mutex::new(Progress::default()),
            delivered: AtomicU64::new(0),
            finished: AtomicU64::new(0),
            ownership: tx,
            revoke_wait: Duration::from_millis(config.session_timeout_ms / 2),
            closing: AtomicBool::new(false),
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
            .set("fetch.min.bytes", "1");
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
        let consumer: StreamConsumer<GroupContext> = consumer_config
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

async fn consume(
    consumer: Arc<StreamConsumer<GroupContext>>,
    shared: Arc<Shared>,
    tx: mpsc::UnboundedSender<Delivery>,
) {
    loop {
        let message = match consumer.recv().await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "Kafka consumer error");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let partition = message.partition();
        let offset = message.offset().max(0) as u64;
        let assigned_at = {
            let mut p = shared.lock();
            p.partitions.entry(partition).or_default().delivered(offset);
            p.assigned_at.get(&partition).copied().unwrap_or(0)
        };
        shared.delivered.fetch_add(1, Ordering::Relaxed);
        let position = Position {
            partition: partition as u32,
            offset,
        };
        let decoded = message.payload().map(InboundEvent::decode);
        match decoded {
            Some(Ok(event)) => {
                // Received before this instance owned the partition: its
                // previous owner may have handled it without finishing.
                // (A second of margin covers clocks between instances.)
                let replay = event.received_at_ms < assigned_at.saturating_add(REPLAY_MARGIN_MS);
                if tx
                    .send(Delivery {
                        position,
                        event,
                        replay,
                    })
                    .is_err()
                {
                    return;
                }
            }
            _ => {
                // Not an event this engine wrote: skipped, never blocks the
                // partition.
                tracing::warn!(%position, "Undecodable record on the bus skipped");
                finish(&shared, position);
            }
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

    async fn subscribe(&self) -> Result<mpsc::UnboundedReceiver<Delivery>, BusError> {
        if self.subscribed.swap(true, Ordering::AcqRel) {
            return Err(BusError::AlreadySubscribed);
        }
        self.consumer
            .subscribe(&[self.shared.topic.as_str()])
            .map_err(unavailable)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(consume(self.consumer.clone(), self.shared.clone(), tx));
        *lock(&self.consuming) = Some(task);
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
        let task = lock(&self.consuming).take();
        if let Some(task) = task {
            task.abort();
        }
        let consumer = self.consumer.clone();
        // Leaving the group runs the revoke callback (a final commit) and
        // waits for the broker: off the async threads.
        let _ = tokio::task::spawn_blocking(move || consumer.unsubscribe()).await;
    }

    fn ownership(&self) -> Option<mpsc::UnboundedReceiver<Ownership>> {
        lock(&self.ownership).take()
    }

    fn partitioned(&self) -> bool {
        true
    }
}
