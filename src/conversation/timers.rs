//! Timer service: the persisted deadlines of every conversation (response
//! delays, typing refreshes, outbox retries), kept in memory in due order.
//! When one is due the supervisor wakes the conversation, spawning and
//! rehydrating it if it was passivated. Loaded from the store at start, so
//! deadlines survive restarts.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::clock::now_ms;

/// Where due conversations are announced.
pub trait WakeSink: Send + 'static {
    fn wake(&self, conversation: Arc<str>);
}

/// Handle to set or clear a conversation's next deadline.
#[derive(Clone)]
pub struct TimerHandle {
    tx: mpsc::UnboundedSender<(Arc<str>, Option<u64>)>,
}

impl TimerHandle {
    /// Sets (or with `None` clears) the next deadline of `conversation`.
    pub fn set(&self, conversation: Arc<str>, due_ms: Option<u64>) {
        let _ = self.tx.send((conversation, due_ms));
    }
}

/// The service before it runs: deadlines set through the handle are kept
/// until [`TimerTask::start`].
pub struct TimerTask {
    rx: mpsc::UnboundedReceiver<(Arc<str>, Option<u64>)>,
}

/// A handle and the task it feeds (two steps, because the wake sink usually
/// needs the handle to exist first).
pub fn channel() -> (TimerHandle, TimerTask) {
    let (tx, rx) = mpsc::unbounded_channel();
    (TimerHandle { tx }, TimerTask { rx })
}

impl TimerTask {
    /// Runs the service with the deadlines found in the store.
    pub fn start(self, initial: Vec<(String, u64)>, sink: impl WakeSink) {
        let mut wheel = Wheel::default();
        for (conv, due) in initial {
            wheel.set(Arc::from(conv), Some(due));
        }
        tokio::spawn(run(wheel, self.rx, sink));
    }
}

#[derive(Default)]
struct Wheel {
    by_due: BTreeSet<(u64, Arc<str>)>,
    by_conv: HashMap<Arc<str>, u64>,
}

impl Wheel {
    fn set(&mut self, conv: Arc<str>, due: Option<u64>) {
        if let Some(old) = self.by_conv.remove(&conv) {
            self.by_due.remove(&(old, conv.clone()));
        }
        if let Some(due) = due {
            self.by_due.insert((due, conv.clone()));
            self.by_conv.insert(conv, due);
        }
    }

    fn next_due(&self) -> Option<u64> {
        self.by_due.first().map(|(d, _)| *d)
    }

    fn pop_due(&mut self, now: u64) -> Vec<Arc<str>> {
        let mut out = Vec::new();
        while let Some((due, _)) = self.by_due.first() {
            if *due > now {
                break;
            }
            if let Some((_, conv)) = self.by_due.pop_first() {
                self.by_conv.remove(&conv);
                out.push(conv);
            }
        }
        out
    }
}

async fn run(
    mut wheel: Wheel,
    mut rx: mpsc::UnboundedReceiver<(Arc<str>, Option<u64>)>,
    sink: impl WakeSink,
) {
    loop {
        let sleep_for = wheel
            .next_due()
            .map(|due| Duration::from_millis(due.saturating_sub(now_ms())))
            .unwrap_or(Duration::from_secs(3600));
        tokio::select! {
            cmd = rx.recv() => match cmd {
                Some((conv, due)) => wheel.set(conv, due),
                None => break,
            },
            _ = tokio::time::sleep(sleep_for) => {
                for conv in wheel.pop_due(now_ms()) {
                    sink.wake(conv);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wheel_pops_in_due_order_and_replaces() {
        let mut w = Wheel::default();
        w.set(Arc::from("a"), Some(30));
        w.set(Arc::from("b"), Some(10));
        w.set(Arc::from("a"), Some(5));
        w.set(Arc::from("c"), Some(50));
        w.set(Arc::from("c"), None);
        assert_eq!(w.next_due(), Some(5));
        let due: Vec<String> = w.pop_due(20).iter().map(|s| s.to_string()).collect();
        assert_eq!(due, ["a", "b"]);
        assert_eq!(w.next_due(), None);
    }
}
