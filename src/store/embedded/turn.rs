//! One turn written in the group transaction: the state, the indexes that
//! changed, analytics, remembered ids, message-log lines and their marks;
//! and the last sync of a store closed in order.

use fjall::Readable;

use super::group_commit::Tx;
use super::keys::{self, Key};
use super::tables::{sums_bytes, sums_of};
use super::EmbeddedStore;
use crate::store::{MessageRecord, Mode, TurnWrite};

pub(super) fn apply_turn(
    tx: &mut Tx<'_>,
    w: &TurnWrite,
    state: Vec<u8>,
) -> Result<(), fjall::Error> {
    let t = tx.t;
    let id = w.state.id.as_str();
    let key = keys::of(id);
    tx.tx.insert(&t.conversations, key.clone(), state);
    if w.deadline_changed {
        match w.state.next_deadline() {
            Some(due) => tx
                .tx
                .insert(&t.timers, key.clone(), due.to_be_bytes().to_vec()),
            None => tx.tx.remove(&t.timers, key.clone()),
        }
    }
    if w.takeover_changed {
        if w.state.mode == Mode::Human {
            let resume = w.state.auto_resume_ms.unwrap_or(0);
            tx.tx
                .insert(&t.takeovers, key.clone(), resume.to_be_bytes().to_vec());
        } else {
            tx.tx.remove(&t.takeovers, key.clone());
        }
    }
    for c in &w.counts {
        let k = Key::new().str(&w.state.integration).u32(c.day).done();
        // A sum that cannot be read starts again rather than stop the turn.
        let mut sum = tx
            .tx
            .get(&t.analytics, &k)?
            .and_then(|v| sums_of(&v))
            .unwrap_or([0; 4]);
        sum[0] += c.inbound;
        sum[1] += c.outbound;
        sum[2] += c.delivered;
        sum[3] += c.read;
        tx.tx.insert(&t.analytics, k, sums_bytes(sum));
    }
    for (mid, expires) in &w.dedup {
        let k = Key::new().str(id).u64(*expires).str(mid).done();
        tx.tx.insert(&t.remembered, k, Vec::new());
    }
    for m in &w.messages {
        let bytes = serde_json::to_vec(m).unwrap_or_default();
        tx.tx.insert(&t.messages, line_key(id, m.seq), bytes);
    }
    for (seq, status, error) in w.line_changes() {
        let k = line_key(id, seq);
        let current = tx
            .tx
            .get(&t.messages, &k)?
            .and_then(|v| serde_json::from_slice::<MessageRecord>(&v).ok());
        if let Some(mut record) = current {
            record.status = status;
            if let Some(why) = error {
                record.error = Some(why.clone());
            }
            let bytes = serde_json::to_vec(&record).unwrap_or_default();
            tx.tx.insert(&t.messages, k, bytes);
        }
    }
    Ok(())
}

/// The key of one message-log line.
pub(super) fn line_key(id: &str, seq: u64) -> Vec<u8> {
    Key::new().str(id).u64(seq).done()
}

impl Drop for EmbeddedStore {
    /// A store closed in order lets its writer finish the writes queued,
    /// then puts every write not synced yet (turns in `interval`
    /// durability, retention's deletions) on the disk.
    fn drop(&mut self) {
        self.writer.stop();
        match self.db.persist(fjall::PersistMode::SyncAll) {
            Ok(()) => {
                if let Err(e) = super::repair::closed_cleanly(&self.folder) {
                    tracing::warn!(error = %e, "Cannot mark the store closed cleanly; its journals are copied at the next start");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "Store closed without its last sync; the bus replays those turns")
            }
        }
    }
}
