//! The embedded bus: a durable log in its own redb file (`bus.redb` under
//! `store.path`), one partition. Appends go through [`GroupCommit`] (one
//! fsync for every webhook waiting at that moment); after each commit the
//! writer hands the new records to the consumer in log order. Committing the
//! finished prefix also trims the log below it.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::mpsc;

use super::progress::PartitionProgress;
use super::{Bus, BusError, Delivery, Position};
use crate::event::InboundEvent;
use crate::store::group_commit::{GroupCommit, GroupCommitError};

const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const COMMITTED: &str = "committed";
const PARTITION: u32 = 0;

struct Consumer {
    tx: mpsc::UnboundedSender<Delivery>,
    /// Offsets below this were already handed over (from the backlog).
    forward_from: u64,
}

struct Shared {
    next: AtomicU64,
    committed: AtomicU64,
    consumer: Mutex<Option<Consumer>>,
    progress: Mutex<PartitionProgress>,
}

pub struct EmbeddedBus {
    writer: GroupCommit,
    shared: Arc<Shared>,
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
        let bus = Arc::new(Self {
            writer,
            shared: Arc::new(Shared {
                next: AtomicU64::new(next),
                committed: AtomicU64::new(committed),
                consumer: Mutex::new(None),
                progress: Mutex::new(PartitionProgress::new()),
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
        let target = self
            .shared
            .progress
            .lock()
            .map_err(unavailable)?
            .committable();
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
}

fn forward(shared: &Shared, records: &[(u64, InboundEvent)]) {
    let Ok(mut guard) = shared.consumer.lock() else {
        return;
    };
    let Some(consumer) = guard.as_mut() else {
        return;
    };
    let Ok(mut progress) = shared.progress.lock() else {
        return;
    };
    for (offset, event) in records {
        if *offset < consumer.forward_from {
            continue;
        }
        progress.delivered(*offset);
        let _ = consumer.tx.send(Delivery {
            position: Position {
                partition: PARTITION,
                offset: *offset,
            },
            event: event.clone(),
            replay: false,
        });
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

    async fn subscribe(&self) -> Result<mpsc::UnboundedReceiver<Delivery>, BusError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut guard = self.shared.consumer.lock().map_err(unavailable)?;
        if guard.is_some() {
            return Err(BusError::AlreadySubscribed);
        }
        // Under the consumer lock no commit can hand records over, so the
        // backlog read here and the live records after it neither overlap
        // nor leave a gap.
        let committed = self.shared.committed.load(Ordering::Acquire);
        let txn = self.writer.db().begin_read().map_err(unavailable)?;
        let log = txn.open_table(LOG).map_err(unavailable)?;
        let mut forward_from = committed;
        let mut progress = self.shared.progress.lock().map_err(unavailable)?;
        for row in log.range(committed..).map_err(unavailable)? {
            let (k, v) = row.map_err(unavailable)?;
            let offset = k.value();
            forward_from = offset + 1;
            match InboundEvent::decode(v.value()) {
                Ok(event) => {
                    progress.delivered(offset);
                    // Appended before this run: the last one may have
                    // handled it without finishing.
                    let _ = tx.send(Delivery {
                        position: Position {
                            partition: PARTITION,
                            offset,
                        },
                        event,
                        replay: true,
                    });
                }
                Err(e) => {
                    tracing::error!(offset, error = %e, "Skipping undecodable bus record");
                }
            }
        }
        drop(progress);
        *guard = Some(Consumer { tx, forward_from });
        Ok(rx)
    }

    fn finished(&self, position: Position) {
        if let Ok(mut p) = self.shared.progress.lock() {
            p.finished(position.offset);
        }
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

    async fn ready(&self) -> bool {
        self.writer.db().begin_read().is_ok()
    }
}
