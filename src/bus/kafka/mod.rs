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
//!   contiguous finished prefix ([`PartitionProgress`]), every 20 ms, one
//!   commit at a time, waiting for the broker's answer (a failed one is
//!   sent again with the next).
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

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::util::Timeout;
use tokio::sync::mpsc;

use super::{Backlog, Bus, BusError, Delivery, Ownership, Position, DELIVERY_QUEUE};
use crate::config::KafkaConfig;
use crate::event::InboundEvent;
use crate::sync::lock;
use consumer::{finish, poll_loop};
use group::{commit_finished, GroupContext, Progress, Shared};

mod consumer;
mod group;
mod watch;

const COMMIT_EVERY: Duration = Duration::from_millis(20);

pub(super) fn unavailable(e: impl std::fmt::Display) -> BusError {
    BusError::Unavailable(e.to_string())
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
            rebalance_timeout: Duration::from_millis(config.max_poll_interval_ms),
            drain_wait,
            closing: AtomicBool::new(false),
            waiting: Mutex::new(VecDeque::new()),
            committing: Mutex::new(()),
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
            .set(
                "max.poll.interval.ms",
                config.max_poll_interval_ms.to_string(),
            )
            // Latency over fetch efficiency: a fetch returns as soon as
            // there is a record, and waits at most this long when there is
            // none (brokers that wait out the maximum would add it to every
            // reply).
            .set("fetch.wait.max.ms", config.fetch_wait_max_ms.to_string())
            .set("fetch.min.bytes", "1")
            // A request the broker never answers (a commit among them) fails
            // after this, not the client's default minute.
            .set("socket.timeout.ms", "10000")
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

    /// Commits every finished prefix not committed yet, waiting for the
    /// broker (see [`commit_finished`]) on a blocking thread.
    async fn commit_now(&self) -> Result<(), BusError> {
        let (consumer, shared) = (self.consumer.clone(), self.shared.clone());
        tokio::task::spawn_blocking(move || commit_finished(&consumer, &shared))
            .await
            .map_err(unavailable)?
            .map_err(unavailable)
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

/// How long commits may keep failing before a warning is logged.
const COMMIT_FAILING_WARNED: Duration = Duration::from_secs(1);

/// How long a shutdown's commit may wait for the broker (what it could not
/// commit is replayed at the next start, as replays).
const FLUSH_WAIT: Duration = Duration::from_secs(10);

async fn commit_loop(bus: std::sync::Weak<KafkaBus>) {
    let mut tick = tokio::time::interval(COMMIT_EVERY);
    // A commit that waited long for the broker is followed by one tick, not
    // by every tick it missed.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Since when commits fail, and whether that was warned about.
    let mut failing: Option<(std::time::Instant, bool)> = None;
    loop {
        tick.tick().await;
        let Some(bus) = bus.upgrade() else { return };
        // Closing: the last commit is the one made as the group is left.
        if bus.shared.closing.load(Ordering::Acquire) {
            return;
        }
        match bus.commit_now().await {
            Ok(()) => {
                if let Some((since, true)) = failing {
                    tracing::info!(after = ?since.elapsed(), "Offsets committed again");
                }
                failing = None;
            }
            Err(e) => {
                let (since, warned) = failing.get_or_insert((std::time::Instant::now(), false));
                if !*warned && since.elapsed() >= COMMIT_FAILING_WARNED {
                    *warned = true;
                    tracing::warn!(error = %e, "Offset commits keep failing; each is sent again with the next");
                } else {
                    tracing::debug!(error = %e, "Offset commit failed; sent again with the next one");
                }
            }
        }
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
        // Past a session timeout and a rebalance: a departed member's expiry.
        let limit = self.shared.revoke_wait * 3;
        watch::spawn(self.consumer.clone(), self.shared.clone(), limit).map_err(unavailable)?;
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
        tokio::time::timeout(FLUSH_WAIT, self.commit_now())
            .await
            .map_err(|_| unavailable("the broker did not answer the commit in time"))??;
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
