//! One turn written in the group transaction: the state, the indexes that
//! changed, analytics, remembered ids, message-log lines and their marks;
//! and the last sync of a store closed in order.

use redb::{ReadableTable, WriteTransaction};

use super::{EmbeddedStore, ANALYTICS, CONVERSATIONS, MESSAGES, REMEMBERED, TAKEOVERS, TIMERS};
use crate::store::{MessageRecord, Mode, TurnWrite};

pub(super) fn apply_turn(
    txn: &WriteTransaction,
    w: &TurnWrite,
    state: &[u8],
) -> Result<(), redb::Error> {
    let id = w.state.id.as_str();
    txn.open_table(CONVERSATIONS)?.insert(id, state)?;
    if w.deadline_changed {
        let mut timers = txn.open_table(TIMERS)?;
        match w.state.next_deadline() {
            Some(due) => {
                timers.insert(id, due)?;
            }
            None => {
                timers.remove(id)?;
            }
        }
    }
    if w.takeover_changed {
        let mut takeovers = txn.open_table(TAKEOVERS)?;
        if w.state.mode == Mode::Human {
            takeovers.insert(id, w.state.auto_resume_ms.unwrap_or(0))?;
        } else {
            takeovers.remove(id)?;
        }
    }
    if !w.counts.is_empty() {
        let mut analytics = txn.open_table(ANALYTICS)?;
        for c in &w.counts {
            let key = (w.state.integration.as_str(), c.day);
            let mut sum = analytics.get(key)?.map(|v| v.value()).unwrap_or([0; 4]);
            sum[0] += c.inbound;
            sum[1] += c.outbound;
            sum[2] += c.delivered;
            sum[3] += c.read;
            analytics.insert(key, sum)?;
        }
    }
    if !w.dedup.is_empty() {
        let mut remembered = txn.open_table(REMEMBERED)?;
        for (mid, expires) in &w.dedup {
            remembered.insert((id, *expires, mid.as_str()), ())?;
        }
    }
    if !w.messages.is_empty() || !w.status_updates.is_empty() || !w.failures.is_empty() {
        let mut messages = txn.open_table(MESSAGES)?;
        for m in &w.messages {
            let bytes = serde_json::to_vec(m).unwrap_or_default();
            messages.insert((id, m.seq), bytes.as_slice())?;
        }
        for (seq, status, error) in w.line_changes() {
            let current = messages
                .get((id, seq))?
                .and_then(|v| serde_json::from_slice::<MessageRecord>(v.value()).ok());
            if let Some(mut record) = current {
                record.status = status;
                if let Some(why) = error {
                    record.error = Some(why.clone());
                }
                let bytes = serde_json::to_vec(&record).unwrap_or_default();
                messages.insert((id, seq), bytes.as_slice())?;
            }
        }
    }
    Ok(())
}

impl Drop for EmbeddedStore {
    /// A store closed in order puts its unsynced turns on the disk.
    fn drop(&mut self) {
        if self.synced.load(std::sync::atomic::Ordering::Acquire)
            >= self.written.load(std::sync::atomic::Ordering::Acquire)
        {
            return;
        }
        let synced = self
            .db()
            .begin_write()
            .map_err(redb::Error::from)
            .and_then(|txn| txn.commit().map_err(redb::Error::from));
        if let Err(e) = synced {
            tracing::warn!(error = %e, "Store closed without its last sync; the bus replays those turns");
        }
    }
}
