//! Locking that survives a panic elsewhere: the data behind these mutexes
//! stays consistent between statements, so a poisoned lock is still used
//! rather than turned into a second failure.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `m`, poisoned or not.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A thread fed through a bounded queue (the embedded bus's and store's
/// writers). Dropping it closes the queue, lets the thread finish what is
/// in it and waits for it, so what the thread holds (an open file) is
/// released once the owner is gone.
pub struct WriterThread<T> {
    tx: Option<std::sync::mpsc::SyncSender<T>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl<T: Send + 'static> WriterThread<T> {
    /// Starts thread `name` running `body` over a queue of `capacity`.
    pub fn start(
        name: &str,
        capacity: usize,
        body: impl FnOnce(std::sync::mpsc::Receiver<T>) + Send + 'static,
    ) -> std::io::Result<Self> {
        let (tx, rx) = std::sync::mpsc::sync_channel(capacity);
        let thread = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || body(rx))?;
        Ok(Self {
            tx: Some(tx),
            thread: Some(thread),
        })
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
