//! A Gmail mailbox's notification is not a conversation's event: no actor
//! handles it. The mailbox's new mail is read (onto the bus, as the events
//! of each thread's conversation) beside the supervisor, and the
//! notification is finished on the bus only once that read is done, so a
//! crash before then reads the mailbox again (every message is recognised
//! by its id then). Notifications of one mailbox are read one at a time by
//! the sync itself; a failed read is tried again with backoff for as long
//! as this instance owns the mailbox's partition.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::ActorRef;

use super::{Entry, SupervisorMsg, SupervisorState};
use crate::bus::Delivery;

/// Longest pause between attempts at a failing read.
const MAX_PAUSE: Duration = Duration::from_secs(60);

pub(super) fn deliver(
    myself: &ActorRef<SupervisorMsg>,
    state: &mut SupervisorState,
    id: Arc<str>,
    d: Delivery,
    history_id: u64,
) {
    let entry = state.entries.entry(id.clone()).or_insert_with(Entry::new);
    entry.last_used = Instant::now();
    entry.partition = Some(d.position.partition);
    entry.fence = d.fence.clone();
    entry.inflight.push_back((d.clone(), 0));
    let sync = state.args.ctx.mailboxes.get().cloned();
    let myself = myself.clone();
    let integration = d.event.integration.clone();
    tokio::spawn(async move {
        if let Some(sync) = sync {
            let mut pause = Duration::from_secs(1);
            let mut warned = false;
            loop {
                if !d.fence.is_current() {
                    // The next owner reads it.
                    return;
                }
                match sync.sync(&integration, history_id, &d.fence).await {
                    Ok(()) => break,
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
        }
        let _ = myself.send_message(SupervisorMsg::Finished(id, d.position));
    });
}
