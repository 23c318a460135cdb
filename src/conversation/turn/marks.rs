//! Deliveries, reads and statuses of the business's messages: they mark
//! the parts sent before them (as a watermark would) and feed analytics.

use super::{push_bounded, take_covered, Conversation, EventOutcome};
use crate::event::ReportedStatus;
use crate::store::MessageStatus;

impl Conversation {
    /// Applies the platform's report on one sent part: a delivery or read
    /// covers the parts sent before it too (as a watermark would).
    pub(in crate::conversation) fn status_report(
        &mut self,
        mid: &str,
        status: ReportedStatus,
        error: Option<&str>,
        at_ms: u64,
    ) -> EventOutcome {
        let Some(seq) = self
            .record
            .sent_ids
            .iter()
            .find(|(id, _)| id == mid)
            .map(|&(_, seq)| seq)
        else {
            return EventOutcome::Ignored;
        };
        let sent_at = |list: &[(u64, u64)]| list.iter().find(|(s, _)| *s == seq).map(|&(_, t)| t);
        match status {
            ReportedStatus::Sent => EventOutcome::Ignored,
            ReportedStatus::Delivered => match sent_at(&self.record.undelivered) {
                Some(watermark) => self.delivered_up_to(watermark, at_ms),
                None => EventOutcome::Ignored,
            },
            ReportedStatus::Read => {
                match sent_at(&self.record.undelivered).or(sent_at(&self.record.unread)) {
                    Some(watermark) => self.read_up_to(watermark, at_ms),
                    None => EventOutcome::Ignored,
                }
            }
            ReportedStatus::Failed => {
                self.record.undelivered.retain(|(s, _)| *s != seq);
                self.record.unread.retain(|(s, _)| *s != seq);
                self.unsaved
                    .failures
                    .push((seq, error.unwrap_or("failed").to_string()));
                self.dirty = true;
                EventOutcome::Recorded
            }
        }
    }

    /// Parts sent at or before `watermark` were delivered.
    pub(in crate::conversation) fn delivered_up_to(
        &mut self,
        watermark: u64,
        at_ms: u64,
    ) -> EventOutcome {
        let covered = take_covered(&mut self.record.undelivered, watermark);
        let delivered = covered.len() as u64;
        for (seq, sent) in covered {
            self.set_status(seq, MessageStatus::Delivered);
            push_bounded(&mut self.record.unread, (seq, sent));
        }
        if delivered > 0 {
            self.count(at_ms, |c| c.delivered += delivered);
        }
        EventOutcome::Recorded
    }

    /// Parts sent at or before `watermark` were read.
    pub(in crate::conversation) fn read_up_to(
        &mut self,
        watermark: u64,
        at_ms: u64,
    ) -> EventOutcome {
        let undelivered = take_covered(&mut self.record.undelivered, watermark);
        // A read message was delivered too, even if no delivery receipt
        // said so.
        let delivered = undelivered.len() as u64;
        let mut covered = undelivered;
        covered.extend(take_covered(&mut self.record.unread, watermark));
        let read = covered.len() as u64;
        for (seq, _) in covered {
            self.set_status(seq, MessageStatus::Read);
        }
        if read > 0 {
            self.count(at_ms, |c| {
                c.delivered += delivered;
                c.read += read;
            });
        }
        EventOutcome::Recorded
    }
}
