//! A Gmail mailbox's notification is not a conversation's event: no actor
//! handles it. The mailbox's new mail is read (onto the bus, as the events
//! of each thread's conversation) beside the supervisor, and a notification
//! is finished on the bus only once a read that started after it has
//! succeeded, so a crash before then reads the mailbox again (every message
//! is recognised by its id then). One read per mailbox at a time: the
//! notifications that arrive meanwhile are covered by the next read, one
//! for all of them. A failed read is tried again with backoff for as long
//! as this instance owns the mailbox's partition.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::ActorRef;

use super::{Entry, SupervisorMsg, SupervisorState};
use crate::bus::Delivery;
use crate::event::ConversationId;

/// Longest pause between attempts at a failing read.
const MAX_PAUSE: Duration = Duration::from_secs(60);

pub(super) fn deliver(
    myself: &ActorRef<SupervisorMsg>,
    state: &mut SupervisorState,
    id: Arc<str>,
    d: Delivery,
) {
    let entry = state.entries.entry(id.clone()).or_insert_with(Entry::new);
    entry.last_used = Instant::now();
    entry.partition = Some(d.position.partition);
    entry.fence = d.fence.clone();
    entry.inflight.push_back((d, 0));
    if state.mailbox_reads.insert(id.clone()) {
        start(myself, state, id);
    }
}

/// A read has ended: another starts for the notifications that came
/// meanwhile, if any.
pub(super) fn read_done(
    myself: &ActorRef<SupervisorMsg>,
    state: &mut SupervisorState,
    id: Arc<str>,
) {
    // The read's `Finished` messages came before this one.
    let waiting = state
        .entries
        .get(&id)
        .is_some_and(|e| e.inflight.iter().any(|(d, _)| d.fence.is_current()));
    if waiting {
        start(myself, state, id);
    } else {
        state.mailbox_reads.remove(&id);
    }
}

/// Reads the mailbox for the notifications waiting now.
fn start(myself: &ActorRef<SupervisorMsg>, state: &mut SupervisorState, id: Arc<str>) {
    let (Some(entry), Some(sync)) = (state.entries.get(&id), state.args.ctx.mailboxes.get()) else {
        state.mailbox_reads.remove(&id);
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
    tokio::spawn(async move {
        let mut pause = Duration::from_secs(1);
        let mut warned = false;
        // Not finished when the partition moved: its next owner reads it.
        while fence.is_current() {
            match sync.sync(&integration, &fence).await {
                Ok(()) => {
                    for position in covered {
                        let _ = myself.send_message(SupervisorMsg::Finished(id.clone(), position));
                    }
                    break;
                }
                Err(e) => {
                    if !warned {
                        tracing::warn!(integration = %integration, error = %e, "Mailbox not read yet; retrying");
                        warned = true;
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(MAX_PAUSE);
                }
            }
        }
        let _ = myself.send_message(SupervisorMsg::MailboxRead(id));
    });
}
