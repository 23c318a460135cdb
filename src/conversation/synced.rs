//! Interval durability (`store.durability = "interval"`): the store fsyncs
//! its turns every `store.sync_interval` instead of with every group
//! commit, so an event may be marked finished on the bus only once the
//! store has synced what its turn wrote. [`SyncedBus`] wraps the bus and
//! holds finished positions until the next sync; a crash then replays
//! (never loses) the events whose turns the store had not synced.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::bus::{Backlog, Bus, BusError, Delivery, Ownership, Position};
use crate::event::InboundEvent;
use crate::store::Store;
use crate::sync::lock;

/// The bus, with `finished` held back until the store has synced.
pub struct SyncedBus {
    inner: Arc<dyn Bus>,
    store: Arc<dyn Store>,
    /// Finished positions waiting for the next store sync.
    held: Mutex<Vec<Position>>,
    /// One sync-and-release at a time (the ticker's or a flush's), so
    /// positions reach the bus in the order they were synced.
    releasing: tokio::sync::Mutex<()>,
    /// The last sync failed: the instance is not ready (webhooks get 503)
    /// until one succeeds, so held events do not pile up behind a store
    /// that cannot sync.
    failing: AtomicBool,
}

impl SyncedBus {
    /// Wraps `inner`; every `interval` the store is synced (when it wrote
    /// anything) and the positions finished before the sync are passed on.
    pub fn wrap(inner: Arc<dyn Bus>, store: Arc<dyn Store>, interval: Duration) -> Arc<Self> {
        let bus = Arc::new(Self {
            inner,
            store,
            held: Mutex::new(Vec::new()),
            releasing: tokio::sync::Mutex::new(()),
            failing: AtomicBool::new(false),
        });
        tokio::spawn(tick(Arc::downgrade(&bus), interval));
        bus
    }

    /// Syncs the store, then marks the positions finished before the sync
    /// finished on the bus. On a failed sync they are kept for the next.
    async fn release(&self) -> Result<(), BusError> {
        let _one = self.releasing.lock().await;
        let taken = std::mem::take(&mut *lock(&self.held));
        // Synced even when no position waits: a turn a timer ran (a
        // delayed reply sent) is on the disk within the interval too.
        let synced = self.store.sync().await;
        self.failing.store(synced.is_err(), Ordering::Release);
        if let Err(e) = synced {
            let mut held = lock(&self.held);
            let later = std::mem::replace(&mut *held, taken);
            held.extend(later);
            return Err(BusError::Unavailable(format!(
                "the store cannot sync, so no progress is committed: {e}"
            )));
        }
        for position in taken {
            self.inner.finished(position);
        }
        Ok(())
    }
}

async fn tick(bus: Weak<SyncedBus>, interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(bus) = bus.upgrade() else { return };
        if let Err(e) = bus.release().await {
            tracing::warn!(error = %e, "Store sync failed; bus progress waits for the next one");
        }
    }
}

#[async_trait]
impl Bus for SyncedBus {
    async fn publish(&self, events: &[InboundEvent]) -> Result<(), BusError> {
        self.inner.publish(events).await
    }

    async fn subscribe(&self) -> Result<mpsc::Receiver<Delivery>, BusError> {
        self.inner.subscribe().await
    }

    fn finished(&self, position: Position) {
        lock(&self.held).push(position);
    }

    async fn flush_commits(&self) -> Result<(), BusError> {
        // What was released before stays committed even if this sync fails.
        let released = self.release().await;
        self.inner.flush_commits().await?;
        released
    }

    fn lag(&self) -> u64 {
        self.inner.lag()
    }

    fn backlog(&self) -> Backlog {
        self.inner.backlog()
    }

    fn behind(&self, partition: u32) -> bool {
        self.inner.behind(partition)
    }

    async fn ready(&self) -> bool {
        !self.failing.load(Ordering::Acquire) && self.inner.ready().await
    }

    fn ownership(&self) -> Option<mpsc::UnboundedReceiver<Ownership>> {
        self.inner.ownership()
    }

    fn partitioned(&self) -> bool {
        self.inner.partitioned()
    }

    async fn close(&self) {
        self.inner.close().await
    }
}
