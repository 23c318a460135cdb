//! The embedded bus: a durable log in its own redb file (`bus.redb` under
//! `store.path`), one partition. Appends go through [`GroupCommit`] (one
//! fsync for every webhook waiting at that moment). After each commit the
//! writer hands the new records to the consumer's bounded queue while it
//! has room; when it is full (or at start, for the backlog) a reader task
//! streams the log from where the queue stopped, in chunks, until it has
//! caught up and live hand-over resumes. Memory holds at most the queue;
//! the log holds the rest. Committing the finished prefix also trims the
//! log below it.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::{mpsc, Notify};

use super::progress::PartitionProgress;
use super::{Backlog, Bus, BusError, Delivery, Position, BEHIND_AFTER_MS, DELIVERY_QUEUE};
use crate::clock::now_ms;
use crate::event::InboundEvent;
use crate::fence::Fence;
use crate::group_commit::{GroupCommit, GroupCommitError, STALL_AFTER};
use crate::sync::lock;

const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const COMMITTED: &str = "committed";
const PARTITION: u32 = 0;
/// Records read from the log at a time when the queue fell behind.
const CHUNK: u64 = 1024;

/// Where the consumer stands.
struct Consumer {
    tx: mpsc::Sender<Delivery>,
    /// New records go straight into the queue; when false, the reader
    /// streams them from the log starting at `read_from`.
    live: bool,
    read_from: u64,
}

struct Shared {
    /// Next offset to assign (on the writer thread).
    next: AtomicU64,
    committed: AtomicU64,
    /// Offsets below this are committed to the log file (readable).
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

pub struct EmbeddedBus {
    writer: GroupCommit,
    shared: Arc<Shared>,
    /// Itself, for the reader task (which must not keep the file open).
    me: std::sync::Weak<EmbeddedBus>,
}

fn unavailable(e: impl std::fmt::Display) -> BusError {
    BusError::Unavailable(e.to_string())
}

impl From<GroupCommitError> for BusError {
    fn from(e: GroupCommitError) -> Self {
        unavailable(e)
    }
}

impl EmbeddedBus {
    /// Opens (or creates) `bus.redb` in `dir` and starts the background
    /// committer. Must be called inside a tokio runtime.
    pub fn open(dir: &Path) -> Result<Arc<Self>, BusError> {
        std::fs::create_dir_all(dir).map_err(unavailable)?;
        // The log is short (trimmed behind the consumers): a small cache.
        let db = redb::Builder::new()
            .set_cache_size(4 << 20)
            .create(dir.join("bus.redb"))
            .map_err(unavailable)?;
        let (committed, next) = {
            let txn = db.begin_write().map_err(unavailable)?;
            let state = {
                let meta = txn.open_table(META).map_err(unavailable)?;
                let log = txn.open_table(LOG).map_err(unavailable)?;
                let committed = meta
                    .get(COMMITTED)
                    .map_err(unavailable)?
                    .map(|v| v.value())
                    .unwrap_or(0);
                let last = log
                    .last()
                    .map_err(unavailable)?
                    .map(|(k, _)| k.value() + 1)
                    .unwrap_or(0);
                (committed, last.max(committed))
            };
            txn.commit().map_err(unavailable)?;
            state
        };
        let writer = GroupCommit::start(Arc::new(db), "bus").map_err(unavailable)?;
        let bus = Arc::new_cyclic(|me| Self {
            writer,
            me: me.clone(),
            shared: Arc::new(Shared {
                next: AtomicU64::new(next),
                committed: AtomicU64::new(committed),
                durable_next: AtomicU64::new(next),
                handed: AtomicU64::new(committed),
                replay_below: next,
                consumer: Mutex::new(None),
                progress: Mutex::new(PartitionProgress::new()),
                appended: Mutex::new(VecDeque::new()),
                behind: Notify::new(),
            }),
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

    async fn commit(&self, durable: bool) -> Result<(), BusError> {
        let target = lock(&self.shared.progress).committable();
        let Some(target) = target else { return Ok(()) };
        if target <= self.shared.committed.load(Ordering::Acquire) {
            return Ok(());
        }
        self.writer
            .write(durable, move |txn| {
                txn.open_table(META)?.insert(COMMITTED, target)?;
                txn.open_table(LOG)?.retain_in(..target, |_, _| false)?;
                Ok(())
            })
            .await?;
        self.shared.committed.fetch_max(target, Ordering::AcqRel);
        Ok(())
    }

    /// Reads up to [`CHUNK`] records from `from` (below `to`).
    fn read_chunk(&self, from: u64, to: u64) -> Result<Vec<(u64, InboundEvent)>, BusError> {
        let txn = self.writer.db().begin_read().map_err(unavailable)?;
        let log = txn.open_table(LOG).map_err(unavailable)?;
        let mut out = Vec::new();
        for row in log.range(from..to.min(from + CHUNK)).map_err(unavailable)? {
            let (k, v) = row.map_err(unavailable)?;
            match InboundEvent::decode(v.value()) {
                Ok(event) => out.push((k.value(), event)),
                Err(e) => {
                    tracing::error!(offset = k.value(), error = %e, "Skipping undecodable bus record");
                }
            }
        }
        Ok(out)
    }
}

/// On the writer thread, right after a commit: the records go into the
/// queue while it has room; from the first that does not fit, the reader
/// takes over from the log.
fn forward(shared: &Shared, records: &[(u64, InboundEvent)]) {
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
                consumer.read_from = *offset;
                shared.behind.notify_one();
                return;
            }
            Err(mpsc::error::TrySendError::Closed(())) => return,
        };
        progress.delivered(*offset);
        permit.send(shared.delivery(*offset, event.clone()));
        shared.handed_to(*offset + 1);
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
        let chunk = match this.read_chunk(from, to) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "Cannot read the bus log; retrying");
                drop(this);
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        drop(this);
        let mut next = to.min(from + CHUNK);
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
        let owned: Vec<InboundEvent> = events.to_vec();
        let shared = self.shared.clone();
        let after_shared = self.shared.clone();
        self.writer
            .write_then(
                true,
                move |txn| {
                    let mut log = txn.open_table(LOG)?;
                    // Offsets are assigned on the writer thread, so in commit order.
                    let first = shared
                        .next
                        .fetch_add(encoded.len() as u64, Ordering::AcqRel);
                    for (i, bytes) in encoded.iter().enumerate() {
                        log.insert(first + i as u64, bytes.as_slice())?;
                    }
                    Ok(owned
                        .into_iter()
                        .enumerate()
                        .map(|(i, e)| (first + i as u64, e))
                        .collect::<Vec<_>>())
                },
                Some(Box::new(move |records: &Vec<(u64, InboundEvent)>| {
                    forward(&after_shared, records)
                })),
            )
            .await?;
        Ok(())
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
        self.writer.db().begin_read().is_ok() && !self.writer.stalled(STALL_AFTER)
    }
}
