//! The consumer's own thread: it polls (which also runs the rebalance
//! callbacks, so their waits never block a runtime worker), hands records
//! to the engine through the bounded queue, and pauses fetching while the
//! queue is full.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use tokio::sync::mpsc;

use super::group::{GroupContext, Shared};
use crate::bus::{Delivery, Position};
use crate::event::InboundEvent;
use crate::fence::{Fence, Lease};
use crate::sync::lock;

/// Events received up to this long after a partition's assignment count as
/// possibly handled by its previous owner (clocks of instances differ).
const REPLAY_MARGIN_MS: u64 = 1000;

/// The consumer's thread: polls (which also runs the rebalance callbacks),
/// hands events over through the bounded queue, and pauses fetching while
/// the queue is full. At close it leaves the group from here, so the last
/// revoke runs on this thread too.
pub(super) fn poll_loop(
    consumer: Arc<BaseConsumer<GroupContext>>,
    shared: Arc<Shared>,
    tx: mpsc::Sender<Delivery>,
) {
    let mut paused = false;
    while !shared.closing.load(std::sync::atomic::Ordering::Acquire) {
        let (behind, closed) = hand_over(&shared, &tx);
        if closed {
            break;
        }
        if behind || paused {
            if let Ok(assignment) = consumer.assignment() {
                let changed = if behind {
                    consumer.pause(&assignment)
                } else {
                    consumer.resume(&assignment)
                };
                if let Err(e) = changed {
                    tracing::debug!(error = %e, "Cannot pause or resume fetching");
                }
            }
            paused = behind;
        }
        let wait = if behind { 5 } else { 100 };
        match consumer.poll(Duration::from_millis(wait)) {
            None => {}
            Some(Err(e)) => {
                tracing::warn!(error = %e, "Kafka consumer error");
                std::thread::sleep(Duration::from_millis(200));
            }
            Some(Ok(message)) => {
                if let Some(d) = delivery(&shared, &message) {
                    lock(&shared.waiting).push_back(d);
                }
            }
        }
    }
    // Leaving the group runs the revoke callback on this thread (with
    // `closing` set it does not wait for events).
    consumer.unsubscribe();
    for _ in 0..50 {
        let _ = consumer.poll(Duration::from_millis(100));
        if consumer.assignment().map_or(true, |a| a.count() == 0) {
            break;
        }
    }
}

/// Moves waiting records into the engine's queue while it has room; an
/// event is listed as delivered (one a revoke waits for) just before it
/// goes in, and taken back if the queue refuses it. Returns (records still
/// waiting, the engine is gone).
fn hand_over(shared: &Shared, tx: &mpsc::Sender<Delivery>) -> (bool, bool) {
    let mut waiting = lock(&shared.waiting);
    while let Some(d) = waiting.pop_front() {
        let position = d.position;
        // Listed before the engine can have it: the engine may finish it
        // at once, before this thread goes on (a finish for an offset not
        // listed is dropped, and the partition's commit would stop there).
        let part = position.partition as i32;
        let new = listed(shared, position);
        let sent = tx.try_send(d);
        // Only a listing of its own (the same offset may be in the
        // engine's hands already, fetched twice).
        if sent.is_err() && new {
            if let Some(prog) = shared.lock().partitions.get_mut(&part) {
                prog.not_delivered(position.offset);
            }
        }
        match sent {
            Ok(()) => handed(shared, position, new),
            Err(mpsc::error::TrySendError::Full(d)) => {
                waiting.push_front(d);
                return (true, false);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return (true, true),
        }
    }
    (false, false)
}

/// Lists the event at `position` as delivered, not yet finished; whether
/// it was not listed yet.
fn listed(shared: &Shared, position: Position) -> bool {
    shared
        .lock()
        .partitions
        .entry(position.partition as i32)
        .or_default()
        .delivered(position.offset)
}

/// Marks the event at `position` as in the engine's hands (it may be
/// finished already); counted once, when `new`ly listed, as its finish is
/// counted once (a record fetched twice is one event to finish).
fn handed(shared: &Shared, position: Position, new: bool) {
    let part = position.partition as i32;
    let mut p = shared.lock();
    let max = p.handed_max.entry(part).or_insert(0);
    *max = (*max).max(position.offset + 1);
    drop(p);
    if new {
        shared
            .delivered
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The delivery of one record, or `None` for a record this engine did not
/// write (skipped, so it never blocks its partition).
fn delivery(shared: &Shared, message: &rdkafka::message::BorrowedMessage<'_>) -> Option<Delivery> {
    let partition = message.partition();
    let offset = message.offset().max(0) as u64;
    let (lease, replay_below, assigned_at) = {
        let p = shared.lock();
        (
            p.leases.get(&partition).cloned(),
            p.replay_below.get(&partition).copied(),
            p.assigned_at.get(&partition).copied().unwrap_or(0),
        )
    };
    let position = Position {
        partition: partition as u32,
        offset,
    };
    match message.payload().map(InboundEvent::decode) {
        Some(Ok(event)) => {
            // Below the high watermark at assignment, the previous owner
            // may have handled it without finishing. (Without the
            // watermark: received before the assignment, with a second of
            // margin for the clocks of instances.)
            let replay = match replay_below {
                Some(high) => offset < high,
                None => event.received_at_ms < assigned_at.saturating_add(REPLAY_MARGIN_MS),
            };
            let fence = match lease {
                Some(lease) => {
                    let epoch = lease.epoch();
                    Fence::new(lease, epoch)
                }
                // Not assigned here (cannot happen): a fence that never
                // holds, so nothing is done for it.
                None => Fence::new(Arc::new(Lease::default()), 0),
            };
            Some(Delivery {
                position,
                event,
                replay,
                fence,
            })
        }
        _ => {
            tracing::warn!(%position, "Undecodable record on the bus skipped");
            let new = listed(shared, position);
            handed(shared, position, new);
            finish(shared, position);
            None
        }
    }
}

pub(super) fn finish(shared: &Shared, position: Position) {
    let mut p = shared.lock();
    if let Some(prog) = p.partitions.get_mut(&(position.partition as i32)) {
        // Counted once per listing: a finish told twice, or one that comes
        // after the partition's revoke (which counted its unfinished events)
        // is not counted again, or the lag would read low. (One that comes
        // after the partition came back finishes the new listing of its
        // offset: the turn it finished is written, so that is safe.)
        if prog.holds(position.offset) {
            shared
                .finished
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        prog.finished(position.offset);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::kafka::group::tests::shared;
    use crate::event::{Channel, ConversationId, EventKind};

    fn delivery(offset: u64) -> Delivery {
        Delivery {
            position: Position {
                partition: 0,
                offset,
            },
            event: InboundEvent {
                conversation: ConversationId::from("acme-fb:C0"),
                integration: "acme-fb".into(),
                channel: Channel::Messenger,
                customer: "C0".into(),
                timestamp_ms: 0,
                received_at_ms: 0,
                customer_name: None,
                kind: EventKind::Wake,
            },
            replay: false,
            fence: Fence::new(Arc::new(Lease::default()), 0),
        }
    }

    /// An event the engine finishes the instant it gets it (before the
    /// consumer's thread has moved on) still counts: every offset handed
    /// over and finished is committable, nothing is left unfinished.
    #[test]
    fn an_event_finished_at_once_is_never_left_unfinished() {
        const EVENTS: u64 = 20_000;
        let shared = Arc::new(shared());
        let (tx, mut rx) = mpsc::channel::<Delivery>(4);
        let engine = {
            let shared = shared.clone();
            std::thread::spawn(move || {
                let mut n = 0;
                while n < EVENTS {
                    match rx.try_recv() {
                        Ok(d) => {
                            finish(&shared, d.position);
                            n += 1;
                        }
                        Err(mpsc::error::TryRecvError::Empty) => std::thread::yield_now(),
                        Err(mpsc::error::TryRecvError::Disconnected) => return,
                    }
                }
            })
        };
        for offset in 0..EVENTS {
            lock(&shared.waiting).push_back(delivery(offset));
            while hand_over(&shared, &tx).0 {
                std::thread::yield_now();
            }
        }
        engine.join().unwrap();
        let p = shared.lock();
        let progress = &p.partitions[&0];
        assert_eq!(
            progress.unfinished(),
            0,
            "an event finished at once was lost"
        );
        assert_eq!(progress.committable(), Some(EVENTS));
    }

    /// A record the full queue refuses waits, and is not listed as one the
    /// engine holds (a revoke would wait for it, the commit stop at it).
    #[test]
    fn a_record_the_queue_refuses_is_not_counted_as_delivered() {
        let shared = shared();
        let (tx, mut rx) = mpsc::channel::<Delivery>(1);
        lock(&shared.waiting).extend([delivery(0), delivery(1)]);
        assert_eq!(hand_over(&shared, &tx), (true, false), "one still waits");
        assert_eq!(shared.lock().partitions[&0].unfinished(), 1);
        // The engine takes and finishes the first; the second goes in.
        let first = rx.try_recv().unwrap();
        finish(&shared, first.position);
        assert_eq!(hand_over(&shared, &tx), (false, false));
        assert_eq!(shared.lock().partitions[&0].unfinished(), 1);
        assert_eq!(shared.lock().partitions[&0].committable(), Some(1));
    }

    /// Each event handed over is counted finished once, however often its
    /// finish is told: the lag (handed over minus finished) stays right.
    #[test]
    fn a_finish_told_twice_counts_once() {
        let shared = shared();
        let (tx, mut rx) = mpsc::channel::<Delivery>(4);
        lock(&shared.waiting).extend([delivery(0), delivery(1)]);
        hand_over(&shared, &tx);
        let first = rx.try_recv().unwrap();
        finish(&shared, first.position);
        finish(&shared, first.position);
        assert_eq!(counts(&shared), (2, 1), "one event still in hand");
        // Fetched again while in hand: still one event to finish.
        lock(&shared.waiting).push_back(delivery(1));
        hand_over(&shared, &tx);
        for d in [rx.try_recv().unwrap(), rx.try_recv().unwrap()] {
            finish(&shared, d.position);
        }
        assert_eq!(counts(&shared), (2, 2), "no lag left");
    }

    /// Events counted as handed over, and as finished.
    fn counts(shared: &Shared) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        let delivered = shared.delivered.load(Relaxed);
        (delivered, shared.finished.load(Relaxed))
    }
}
