//! The embedded bus: a durable log of segment files in `bus/` under
//! `store.path` ([`super::log`]), one partition. A writer thread takes
//! every append waiting at that moment, writes them with one `write` and
//! one `fdatasync`, and only then answers the webhooks (group commit).
//! After each sync the writer hands the new records to the consumer's
//! bounded queue while it has room; when it is full (or at start, for the
//! backlog) a reader task streams the log from where the queue stopped, in
//! chunks, until it has caught up and live hand-over resumes. Memory holds
//! at most the queue; the log holds the rest. Committing the finished
//! prefix deletes the segments wholly below it.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot, Notify};

use super::log::{Appender, Segments, MAX_RECORD};
use super::progress::PartitionProgress;
use super::{Backlog, Bus, BusError, Delivery, Position, BEHIND_AFTER_MS, DELIVERY_QUEUE};
use crate::clock::now_ms;
use crate::event::InboundEvent;
use crate::fence::Fence;
use crate::sync::STALL_AFTER;
use crate::sync::{lock, WriterThread};

const PARTITION: u32 = 0;
/// Records read from the log at a time when the queue fell behind.
const CHUNK: usize = 1024;
/// Most appends and commits taken in one write.
const MAX_GROUP: usize = 4096;
/// Writes waiting for the writer at most; a full queue pushes back.
const QUEUE: usize = 65_536;

/// Where the consumer stands.
struct Consumer {
    tx: mpsc::Sender<Delivery>,
    /// New records go straight into the queue; when false, the reader
    /// streams them from the log starting at `read_from`.
    live: bool,
    read_from: u64,
}

struct Shared {
    /// Next offset the log assigns.
    next: AtomicU64,
    committed: AtomicU64,
    /// Offsets below this are synced to the log (readable).
    durable_next: AtomicU64,
    /// Offsets below this were handed to the engine.
    handed: AtomicU64,
    /// The log's end when it was opened: records below were appended by an
    /// earlier run, which may have handled them.
    replay_below: u64,
    consumer: Mutex<Option<Consumer>>,
    progress: Mutex<PartitionProgress>,
    /// (last offset of an append, when it was appended), oldest first, for
    /// records not yet handed to the engine.
    appended: Mutex<VecDeque<(u64, u64)>>,
    /// Wakes the reader when records are waiting in the log.
    behind: Notify,
    /// The log refuses appends (a failed write could not be undone).
    broken: AtomicBool,
}

impl Shared {
    fn delivery(&self, offset: u64, event: InboundEvent) -> Delivery {
        Delivery {
            position: Position {
                partition: PARTITION,
                offset,
            },
            event,
            replay: offset < self.replay_below,
            fence: Fence::none(),
        }
    }

    /// Records that everything below `next` was handed over.
    fn handed_to(&self, next: u64) {
        self.handed.fetch_max(next, Ordering::AcqRel);
        let mut appended = lock(&self.appended);
        while appended.front().is_some_and(|(last, _)| *last < next) {
            appended.pop_front();
        }
    }
}

/// A request to the writer thread.
enum Op {
    Append {
        events: Vec<InboundEvent>,
        encoded: Vec<Vec<u8>>,
        reply: oneshot::Sender<Result<(), BusError>>,
    },
    Commit {
        target: u64,
        durable: bool,
        reply: oneshot::Sender<Result<(), BusError>>,
    },
}

pub struct EmbeddedBus {
    /// Dropping it closes the log (it can be opened again once the bus is
    /// gone).
    writer: WriterThread<Op>,
    segments: Arc<Segments>,
    shared: Arc<Shared>,
    /// Itself, for the reader task (which must not keep the log open).
    me: std::sync::Weak<EmbeddedBus>,
}

fn unavailable(e: impl std::fmt::Display) -> BusError {
    BusError::Unavailable(e.to_string())
}

impl EmbeddedBus {
    /// Opens (or creates) the log in `dir/bus` (moving in what an older
    /// `bus.redb` holds) and starts the writer. Must be called inside a
    /// tokio runtime.
    pub fn open(dir: &Path) -> Result<Arc<Self>, BusError> {
        let mut opened = super::log::open(&dir.join("bus")).map_err(unavailable)?;
        super::legacy::move_into(dir, &mut opened.appender).map_err(unavailable)?;
        let next = opened.appender.next();
        let committed = opened.committed.min(next);
        let shared = Arc::new(Shared {
            next: AtomicU64::new(next),
            committed: AtomicU64::new(committed),
            durable_next: AtomicU64::new(next),
            handed: AtomicU64::new(committed),
            replay_below: next,
            consumer: Mutex::new(None),
            progress: Mutex::new(PartitionProgress::new()),
            appended: Mutex::new(VecDeque::new()),
            behind: Notify::new(),
            broken: AtomicBool::new(false),
        });
        let writer_shared = shared.clone();
        let mut appender = opened.appender;
        let writer = WriterThread::start("bus", QUEUE, MAX_GROUP, move |batch| {
            write_batch(&mut appender, batch, &writer_shared)
        })
        .map_err(unavailable)?;
        let bus = Arc::new_cyclic(|me| Self {
            writer,
            segments: opened.segments,
            me: me.clone(),
            shared,
        });
        let weak = Arc::downgrade(&bus);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            loop {
                tick.tick().await;
                let Some(bus) = weak.upgrade() else { break };
                if let Err(e) = bus.commit(false).await {
                    tracing::warn!(error = %e, "Cannot commit bus progress; will retry");
                }
            }
        });
        Ok(bus)
    }

    /// Starts a group append no sooner than `delay` after the previous one
    /// started (`bus.group_commit_delay`): under load the webhooks of that
    /// time share one write and one sync, each acknowledged up to `delay`
    /// later.
    pub fn set_group_delay(&self, delay: Duration) {
        self.writer.set_group_delay(delay);
    }

    async fn send(
        &self,
        op: impl FnOnce(oneshot::Sender<Result<(), BusError>>) -> Op,
    ) -> Result<(), BusError> {
        let stopped = || BusError::Unavailable("the bus writer has stopped".into());
        let (reply, rx) = oneshot::channel();
        self.writer.send(op(reply)).await.map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    async fn commit(&self, durable: bool) -> Result<(), BusError> {
        let target = lock(&self.shared.progress).committable();
        let Some(target) = target else { return Ok(()) };
        // A durable commit syncs even what the ticker already wrote.
        if !durable && target <= self.shared.committed.load(Ordering::Acquire) {
            return Ok(());
        }
        self.send(|reply| Op::Commit {
            target,
            durable,
            reply,
        })
        .await?;
        self.shared.committed.fetch_max(target, Ordering::AcqRel);
        Ok(())
    }
}

/// Reads up to [`CHUNK`] records from `from` (below `to`), and where
/// the next read starts.
fn read_chunk(
    segments: &Segments,
    from: u64,
    to: u64,
) -> Result<(Vec<(u64, InboundEvent)>, u64), BusError> {
    let records = segments.read(from, to, CHUNK).map_err(unavailable)?;
    // A short read went as far as `to`.
    let next = match records.last() {
        Some((last, _)) if records.len() >= CHUNK => last + 1,
        _ => to,
    };
    let mut out = Vec::with_capacity(records.len());
    for (offset, bytes) in records {
        match InboundEvent::decode(&bytes) {
            Ok(event) => out.push((offset, event)),
            Err(e) => {
                tracing::error!(offset, error = %e, "Skipping undecodable bus record");
            }
        }
    }
    Ok((out, next))
}

/// On the writer thread, every op waiting at once: the appends are written
/// and synced together, then handed on in log order.
fn write_batch(appender: &mut Appender, batch: &mut Vec<Op>, shared: &Shared) {
    let appended = {
        let payloads: Vec<&[u8]> = batch
            .iter()
            .filter_map(|op| match op {
                Op::Append { encoded, .. } => Some(encoded.iter().map(Vec::as_slice)),
                Op::Commit { .. } => None,
            })
            .flatten()
            .collect();
        appender.append(&payloads).map_err(|e| {
            tracing::error!(error = %e, "Cannot append to the bus log");
            unavailable(e)
        })
    };
    let commit = batch
        .iter()
        .filter_map(|op| match op {
            Op::Commit {
                target, durable, ..
            } => Some((*target, *durable)),
            Op::Append { .. } => None,
        })
        .reduce(|a, b| (a.0.max(b.0), a.1 || b.1));
    let committed = commit.map_or(Ok(()), |(target, durable)| {
        appender.commit(target, durable).map_err(unavailable)
    });
    shared
        .broken
        .store(appender.broken().is_some(), Ordering::Release);
    shared.next.store(appender.next(), Ordering::Release);
    let mut offset = appended.as_ref().map_or(0, |first| *first);
    let mut records = Vec::new();
    let mut replies = Vec::new();
    for op in batch.drain(..) {
        match op {
            Op::Append { events, reply, .. } => {
                if appended.is_ok() {
                    for event in events {
                        records.push((offset, event));
                        offset += 1;
                    }
                }
                replies.push((reply, appended.clone().map(|_| ())));
            }
            Op::Commit { reply, .. } => replies.push((reply, committed.clone())),
        }
    }
    forward(shared, records);
    for (reply, result) in replies {
        let _ = reply.send(result);
    }
}

/// On the writer thread, right after a sync: the records go into the
/// queue while it has room; from the first that does not fit, the reader
/// takes over from the log.
fn forward(shared: &Shared, records: Vec<(u64, InboundEvent)>) {
    let Some(last) = records.last().map(|(o, _)| *o) else {
        return;
    };
    lock(&shared.appended).push_back((last, now_ms()));
    let mut guard = lock(&shared.consumer);
    shared.durable_next.fetch_max(last + 1, Ordering::AcqRel);
    let Some(consumer) = guard.as_mut() else {
        return;
    };
    if !consumer.live {
        shared.behind.notify_one();
        return;
    }
    let mut progress = lock(&shared.progress);
    for (offset, event) in records {
        let permit = match consumer.tx.try_reserve() {
            Ok(permit) => permit,
            Err(mpsc::error::TrySendError::Full(())) => {
                consumer.live = false;
                consumer.read_from = offset;
                shared.behind.notify_one();
                return;
            }
            Err(mpsc::error::TrySendError::Closed(())) => return,
        };
        progress.delivered(offset);
        permit.send(shared.delivery(offset, event));
        shared.handed_to(offset + 1);
    }
}

/// Streams the log into the queue whenever live hand-over stopped (at
/// start, and when the queue was full), until caught up.
async fn read_behind(bus: std::sync::Weak<EmbeddedBus>, tx: mpsc::Sender<Delivery>) {
    loop {
        let Some(this) = bus.upgrade() else { return };
        let shared = this.shared.clone();
        let from = {
            let mut guard = lock(&shared.consumer);
            let Some(consumer) = guard.as_mut() else {
                return;
            };
            if consumer.live {
                None
            } else if consumer.read_from >= shared.durable_next.load(Ordering::Acquire) {
                // Caught up: the writer hands new records over again.
                consumer.live = true;
                None
            } else {
                Some(consumer.read_from)
            }
        };
        let Some(from) = from else {
            drop(this);
            shared.behind.notified().await;
            continue;
        };
        let to = shared.durable_next.load(Ordering::Acquire);
        let segments = this.segments.clone();
        drop(this);
        // File reads off the runtime's workers.
        let read = tokio::task::spawn_blocking(move || read_chunk(&segments, from, to)).await;
        let (chunk, mut next) = match read {
            Ok(Ok(c)) => c,
            failed => {
                let error = match failed {
                    Ok(Err(e)) => e.to_string(),
                    Err(e) => e.to_string(),
                    Ok(Ok(_)) => String::new(),
                };
                tracing::warn!(%error, "Cannot read the bus log; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        for (offset, event) in chunk {
            lock(&shared.progress).delivered(offset);
            if tx.send(shared.delivery(offset, event)).await.is_err() {
                return;
            }
            shared.handed_to(offset + 1);
            next = next.max(offset + 1);
        }
        let mut guard = lock(&shared.consumer);
        if let Some(consumer) = guard.as_mut() {
            consumer.read_from = next;
        }
    }
}

#[async_trait]
impl Bus for EmbeddedBus {
    async fn publish(&self, events: &[InboundEvent]) -> Result<(), BusError> {
        if events.is_empty() {
            return Ok(());
        }
        let encoded: Vec<Vec<u8>> = events.iter().map(InboundEvent::encode).collect();
        if let Some(big) = encoded.iter().find(|e| e.len() > MAX_RECORD) {
            return Err(BusError::TooLarge(big.len()));
        }
        let events = events.to_vec();
        self.send(|reply| Op::Append {
            events,
            encoded,
            reply,
        })
        .await
    }

    async fn subscribe(&self) -> Result<mpsc::Receiver<Delivery>, BusError> {
        let (tx, rx) = mpsc::channel(DELIVERY_QUEUE);
        {
            let mut guard = lock(&self.shared.consumer);
            if guard.is_some() {
                return Err(BusError::AlreadySubscribed);
            }
            // The backlog past the last commit is streamed first; live
            // hand-over starts once the reader has caught up.
            *guard = Some(Consumer {
                tx: tx.clone(),
                live: false,
                read_from: self.shared.committed.load(Ordering::Acquire),
            });
        }
        tokio::spawn(read_behind(self.me.clone(), tx));
        self.shared.behind.notify_one();
        Ok(rx)
    }

    fn finished(&self, position: Position) {
        lock(&self.shared.progress).finished(position.offset);
    }

    async fn flush_commits(&self) -> Result<(), BusError> {
        self.commit(true).await
    }

    fn lag(&self) -> u64 {
        self.shared
            .next
            .load(Ordering::Acquire)
            .saturating_sub(self.shared.committed.load(Ordering::Acquire))
    }

    fn backlog(&self) -> Backlog {
        let durable = self.shared.durable_next.load(Ordering::Acquire);
        let handed = self.shared.handed.load(Ordering::Acquire);
        let oldest = lock(&self.shared.appended).front().map(|(_, at)| *at);
        Backlog {
            events: durable.saturating_sub(handed),
            oldest_ms: oldest.map_or(0, |at| now_ms().saturating_sub(at)),
        }
    }

    /// Behind while records an earlier run appended are not all handed
    /// over yet, or the oldest record not handed over waited more than a
    /// moment.
    fn behind(&self, _partition: u32) -> bool {
        self.shared.handed.load(Ordering::Acquire) < self.shared.replay_below
            || self.backlog().oldest_ms > BEHIND_AFTER_MS
    }

    async fn ready(&self) -> bool {
        self.writer.running()
            && !self.writer.stalled(STALL_AFTER)
            && !self.shared.broken.load(Ordering::Acquire)
    }
}
