//! Locking that survives a panic elsewhere: the data behind these mutexes
//! stays consistent between statements, so a poisoned lock is still used
//! rather than turned into a second failure.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `m`, poisoned or not.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A thread fed through a bounded queue that takes every op waiting at
/// once (the embedded bus's and store's writers: one write and one sync
/// for the whole batch). Dropping it closes the queue, lets the thread
/// finish what is in it and waits for it, so what the thread holds (an
/// open file) is released once the owner is gone.
pub struct WriterThread<T> {
    tx: Option<std::sync::mpsc::SyncSender<T>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// When the batch in hand was taken (ms since the epoch), 0 when idle:
    /// a write that takes far too long (a disk that hangs) shows here.
    busy_since: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

/// Makes the entries of folder `dir` (files created, renamed or deleted
/// in it) durable.
pub fn sync_dir(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// A write running longer than this makes its writer's bus or store not
/// ready (a disk that hangs).
pub const STALL_AFTER: std::time::Duration = std::time::Duration::from_secs(5);

impl<T: Send + 'static> WriterThread<T> {
    /// Starts thread `name` over a queue of `capacity`: `handle` gets each
    /// batch (the ops waiting, at most `max_batch`) and takes them all.
    pub fn start(
        name: &str,
        capacity: usize,
        max_batch: usize,
        mut handle: impl FnMut(&mut Vec<T>) + Send + 'static,
    ) -> std::io::Result<Self> {
        use std::sync::atomic::Ordering;
        let (tx, rx) = std::sync::mpsc::sync_channel(capacity);
        let busy_since = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let busy = busy_since.clone();
        let thread = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                let mut batch = Vec::with_capacity(256);
                while let Ok(first) = rx.recv() {
                    busy.store(crate::clock::now_ms().max(1), Ordering::Release);
                    batch.push(first);
                    while batch.len() < max_batch {
                        match rx.try_recv() {
                            Ok(op) => batch.push(op),
                            Err(_) => break,
                        }
                    }
                    handle(&mut batch);
                    batch.clear();
                    busy.store(0, Ordering::Release);
                }
            })?;
        Ok(Self {
            tx: Some(tx),
            thread: Some(thread),
            busy_since,
        })
    }

    /// Whether the batch in hand has taken longer than `bound`.
    pub fn stalled(&self, bound: std::time::Duration) -> bool {
        let since = self.busy_since.load(std::sync::atomic::Ordering::Acquire);
        since != 0 && crate::clock::now_ms().saturating_sub(since) > bound.as_millis() as u64
    }

    /// Queues `op`, waiting while the queue is full; gives it back when
    /// the thread has stopped.
    pub async fn send(&self, mut op: T) -> Result<(), T> {
        let Some(tx) = self.tx.as_ref() else {
            return Err(op);
        };
        loop {
            match tx.try_send(op) {
                Ok(()) => return Ok(()),
                Err(std::sync::mpsc::TrySendError::Full(back)) => {
                    op = back;
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                }
                Err(std::sync::mpsc::TrySendError::Disconnected(back)) => return Err(back),
            }
        }
    }

    /// Whether the thread still runs.
    pub fn running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }
}

impl<T> Drop for WriterThread<T> {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
