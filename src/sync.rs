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
///
/// With a group delay, a batch starts no sooner than that delay after the
/// previous one started: under load the ops of the delay share one batch
/// (one wake-up of the thread, one write, one sync) instead of a batch of
/// one or two each. An op arriving when the last batch started at least
/// the delay ago (an idle writer, or a batch whose write took that long)
/// goes at once, so a slow disk is never waited for twice.
pub struct WriterThread<T> {
    tx: Option<std::sync::mpsc::SyncSender<T>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// When the batch in hand was taken (ms since the epoch), 0 when idle:
    /// a write that takes far too long (a disk that hangs) shows here.
    busy_since: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// The group delay, in microseconds.
    delay_us: std::sync::Arc<std::sync::atomic::AtomicU64>,
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
    /// Starts thread `{writer}-writer` over a queue of `capacity`: `handle`
    /// gets each batch (the ops waiting, at most `max_batch`) and takes them
    /// all. Each batch is counted under `writer` (its ops, and its time
    /// from being taken to `handle` returning: the group's write and,
    /// where asked, its sync).
    pub fn start(
        writer: &'static str,
        capacity: usize,
        max_batch: usize,
        mut handle: impl FnMut(&mut Vec<T>) + Send + 'static,
    ) -> std::io::Result<Self> {
        use std::sync::atomic::Ordering;
        let (tx, rx) = std::sync::mpsc::sync_channel(capacity);
        let busy_since = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let busy = busy_since.clone();
        let delay_us = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let delay = delay_us.clone();
        let thread = std::thread::Builder::new()
            .name(format!("{writer}-writer"))
            .spawn(move || {
                let mut batch = Vec::with_capacity(256);
                let mut started: Option<std::time::Instant> = None;
                while let Ok(first) = rx.recv() {
                    let wait = std::time::Duration::from_micros(delay.load(Ordering::Relaxed));
                    if let Some(since) = started.map(|at| at.elapsed()) {
                        if since < wait {
                            std::thread::sleep(wait - since);
                        }
                    }
                    let began = std::time::Instant::now();
                    started = Some(began);
                    busy.store(crate::clock::now_ms().max(1), Ordering::Release);
                    batch.push(first);
                    while batch.len() < max_batch {
                        match rx.try_recv() {
                            Ok(op) => batch.push(op),
                            Err(_) => break,
                        }
                    }
                    let ops = batch.len();
                    handle(&mut batch);
                    crate::telemetry::group_committed(writer, ops, began.elapsed());
                    batch.clear();
                    busy.store(0, Ordering::Release);
                }
            })?;
        Ok(Self {
            tx: Some(tx),
            thread: Some(thread),
            busy_since,
            delay_us,
        })
    }

    /// Sets the group delay (0: every batch starts as soon as an op waits).
    pub fn set_group_delay(&self, delay: std::time::Duration) {
        let us = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX);
        self.delay_us
            .store(us, std::sync::atomic::Ordering::Relaxed);
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
        // What is still queued goes without waiting between batches.
        self.delay_us.store(0, std::sync::atomic::Ordering::Relaxed);
        self.tx = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::Receiver;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    type Batches = Arc<Mutex<Vec<Vec<u32>>>>;

    /// A writer that records its batches (at most `max_batch` ops each)
    /// and tells when each one ended on the receiver; op 1's write takes
    /// `first_write`.
    fn recorder(
        max_batch: usize,
        delay: Duration,
        first_write: Duration,
    ) -> (WriterThread<u32>, Batches, Receiver<Instant>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let (done, batch_done) = std::sync::mpsc::channel();
        let writer = WriterThread::start("test", 16, max_batch, move |b: &mut Vec<u32>| {
            if b.first() == Some(&1) {
                std::thread::sleep(first_write);
            }
            lock(&record).push(b.clone());
            let _ = done.send(Instant::now());
        })
        .expect("thread starts");
        writer.set_group_delay(delay);
        (writer, seen, batch_done)
    }

    /// The batches taken when ops 2 to 4 come `gap` apart after op 1's batch.
    async fn batches(delay: Duration, gap: Duration) -> Vec<Vec<u32>> {
        let (writer, seen, batch_done) = recorder(16, delay, Duration::ZERO);
        writer.send(1).await.expect("queued");
        batch_done.recv().expect("first batch");
        for op in 2..=4 {
            writer.send(op).await.expect("queued");
            tokio::time::sleep(gap).await;
        }
        drop(writer);
        let out = lock(&seen).clone();
        out
    }

    #[tokio::test]
    async fn ops_within_the_group_delay_share_one_batch() {
        assert_eq!(
            batches(Duration::from_millis(400), Duration::from_millis(40)).await,
            vec![vec![1], vec![2, 3, 4]]
        );
    }

    #[tokio::test]
    async fn without_a_delay_each_op_goes_at_once() {
        assert_eq!(
            batches(Duration::ZERO, Duration::from_millis(250)).await,
            vec![vec![1], vec![2], vec![3], vec![4]]
        );
    }

    #[tokio::test]
    async fn an_op_after_the_delay_has_passed_is_not_held() {
        let (writer, _, batch_done) = recorder(16, Duration::from_secs(1), Duration::ZERO);
        writer.send(1).await.expect("queued");
        batch_done.recv().expect("first batch");
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let sent = Instant::now();
        writer.send(2).await.expect("queued");
        batch_done.recv().expect("second batch");
        assert!(
            sent.elapsed() < Duration::from_millis(500),
            "held {:?} although the last batch started over the delay ago",
            sent.elapsed()
        );
    }

    #[tokio::test]
    async fn a_write_that_took_the_delay_is_followed_at_once() {
        // The first batch's write takes 600 ms, longer than the 500 ms delay.
        let (writer, seen, batch_done) =
            recorder(16, Duration::from_millis(500), Duration::from_millis(600));
        writer.send(1).await.expect("queued");
        tokio::time::sleep(Duration::from_millis(100)).await;
        writer.send(2).await.expect("queued");
        let first = batch_done.recv().expect("first batch");
        let second = batch_done.recv().expect("second batch");
        assert_eq!(*lock(&seen), vec![vec![1], vec![2]]);
        // Counted from the end of the slow write it would wait 500 ms more.
        assert!(
            second - first < Duration::from_millis(300),
            "waited {:?} after a write longer than the delay",
            second - first
        );
    }

    #[tokio::test]
    async fn a_writer_dropped_takes_what_is_queued_without_waiting_between_batches() {
        let (writer, seen, batch_done) = recorder(1, Duration::from_millis(400), Duration::ZERO);
        writer.send(1).await.expect("queued");
        batch_done.recv().expect("first batch");
        for op in 2..=5 {
            writer.send(op).await.expect("queued");
        }
        let dropped = Instant::now();
        drop(writer);
        assert_eq!(
            *lock(&seen),
            vec![vec![1], vec![2], vec![3], vec![4], vec![5]]
        );
        // One wait at most (the one under way), not one per batch (1.6 s).
        assert!(
            dropped.elapsed() < Duration::from_millis(1000),
            "took {:?}",
            dropped.elapsed()
        );
    }
}
