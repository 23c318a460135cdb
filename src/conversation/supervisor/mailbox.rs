//! A Gmail mailbox's notification is not a conversation's event: no actor
//! handles it. The mailbox's new mail is read (onto the bus, as the events
//! of each thread's conversation) beside the supervisor, from the cursor
//! the store keeps, and a notification is finished on the bus once a read
//! that started after it has ended: read, or not readable now (a refused
//! token, the integration gone, failures past the retries), since the next
//! check reads from the same cursor. A crash before then reads the mailbox
//! again (every message is recognised by its id).
//!
//! One read per mailbox at a time. At most two notifications of a mailbox
//! wait unfinished: the ones the running read covers, and one standing for
//! every notification that came since (the others are finished at once:
//! the next read covers them all). A read whose partition moved finishes
//! nothing: the next owner gets the notifications again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::ActorRef;

use super::{finished, Entry, SupervisorMsg, SupervisorState};
use crate::bus::{Delivery, Position};
use crate::event::ConversationId;
use crate::fence::Fence;

/// Longest pause between attempts at a failing read.
const MAX_PAUSE: Duration = Duration::from_secs(60);
/// Attempts at a read that keeps failing (about three minutes) before
/// its notifications are finished and the next check tries again.
const ATTEMPTS: u32 = 8;

/// A mailbox being read.
pub(super) struct Reading {
    /// A notification came after the read started: another read follows.
    again: bool,
    pub(super) task: tokio::task::AbortHandle,
}

/// What a read reports when it ends.
pub struct ReadEnded {
    id: Arc<str>,
    /// The notifications it covered.
    covered: Vec<Position>,
    /// The ownership it read under.
    fence: Fence,
    /// Whether it ended here (read, or not readable now); `false` when the
    /// partition moved.
    ended_here: bool,
}

pub(super) fn deliver(
    myself: &ActorRef<SupervisorMsg>,
    state: &mut SupervisorState,
    id: Arc<str>,
    d: Delivery,
) {
    let position = d.position;
    let entry = state.entries.entry(id.clone()).or_insert_with(Entry::new);
    entry.last_used = Instant::now();
    entry.partition = Some(d.position.partition);
    entry.fence = d.fence.clone();
    entry.inflight.push_back((d, 0));
    match state.mailbox_reads.get_mut(&id) {
        None => start(myself, state, id),
        // One already waits for the next read, which covers this one too.
        Some(r) if r.again => finished(state, &id, position),
        Some(r) => r.again = true,
    }
}

/// A read has ended: its notifications are finished (when it ended here,
/// under the same ownership), and another read starts for the
/// notifications that came meanwhile, if any.
pub(super) fn read_done(
    myself: &ActorRef<SupervisorMsg>,
    state: &mut SupervisorState,
    ended: ReadEnded,
) {
    let id = ended.id;
    if ended.ended_here {
        for position in ended.covered {
            let same = state.entries.get(&id).is_some_and(|e| {
                e.inflight
                    .iter()
                    .any(|(d, _)| d.position == position && d.fence.same(&ended.fence))
            });
            if same {
                finished(state, &id, position);
            }
        }
    }
    let waiting = state
        .entries
        .get(&id)
        .is_some_and(|e| e.inflight.iter().any(|(d, _)| d.fence.is_current()));
    state.mailbox_reads.remove(&id);
    if waiting {
        start(myself, state, id);
    }
}

/// Reads the mailbox for the notifications waiting now.
fn start(myself: &ActorRef<SupervisorMsg>, state: &mut SupervisorState, id: Arc<str>) {
    let (Some(entry), Some(sync)) = (state.entries.get(&id), state.args.ctx.mailboxes.get()) else {
        return;
    };
    let covered: Vec<_> = entry
        .inflight
        .iter()
        .filter(|(d, _)| d.fence.is_current())
        .map(|(d, _)| d.position)
        .collect();
    let fence = entry.fence.clone();
    let sync = sync.clone();
    let myself = myself.clone();
    let integration = ConversationId::integration_of(&id).to_string();
    let task_id = id.clone();
    let task = tokio::spawn(async move {
        let mut pause = Duration::from_secs(1);
        let mut attempt = 1;
        while fence.is_current() {
            // A read that panics (a bug met on one odd email) ends as a
            // failed one: the mailbox is read again later, never left
            // marked as being read for good.
            let read = std::panic::AssertUnwindSafe(sync.sync(&integration, &fence));
            let result = futures_util::FutureExt::catch_unwind(read)
                .await
                .unwrap_or_else(|_| Err("the mailbox read stopped on a bug".to_string()));
            match result {
                Ok(()) => break,
                Err(e) if attempt >= ATTEMPTS => {
                    tracing::warn!(integration = %integration, error = %e, "Mailbox not read after several tries; the next check tries again");
                    break;
                }
                Err(e) => {
                    if attempt == 1 {
                        tracing::warn!(integration = %integration, error = %e, "Mailbox not read yet; retrying");
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(MAX_PAUSE);
                    attempt += 1;
                }
            }
        }
        let ended_here = fence.is_current();
        let ended = ReadEnded {
            id: task_id,
            covered,
            fence,
            ended_here,
        };
        let _ = myself.send_message(SupervisorMsg::MailboxRead(Box::new(ended)));
    });
    state.mailbox_reads.insert(
        id,
        Reading {
            again: false,
            task: task.abort_handle(),
        },
    );
}
