//! Delivery truth, as part of the conversation policy: every reply part
//! carries a part id to the platform (Messenger / Instagram `metadata`,
//! WhatsApp `biz_opaque_callback_data`), and what comes back (an echo, a
//! status) names it. A part whose send may have reached the customer
//! without the engine knowing (the answer was lost, or a restart found it
//! in the outbox, or a replayed event planned it again) is *unconfirmed*:
//! it is not sent again until `outbound.confirm_wait` has passed without a
//! confirmation, and never once one came.
//!
//! Part ids derive from what asked for the part (the customer message, the
//! comment, the operator's command) and the part's place in the reply, so
//! an event replayed after a crash plans the ids its first handling sent.

use sha2::{Digest, Sha256};

use super::{take_first, Conversation, EventOutcome, TRACKED_MARKS};
use crate::store::CommandOutcome;

/// Every part id starts with this, which tells the engine's messages from
/// others' in echoes.
pub const PART_PREFIX: &str = "sb1.";

/// The part id of part `index` of the reply to `key` in `conversation`.
pub fn part_id(conversation: &str, key: &str, index: usize) -> String {
    let mut hash = Sha256::new();
    hash.update(conversation.as_bytes());
    hash.update([0]);
    hash.update(key.as_bytes());
    hash.update([0]);
    hash.update(index.to_le_bytes());
    let digest = hash.finalize();
    format!("{PART_PREFIX}{}", hex::encode(&digest[..10]))
}

/// Whether `metadata` is one of this engine's part ids.
pub fn is_part_id(metadata: &str) -> bool {
    metadata.starts_with(PART_PREFIX)
}

/// What a confirmation found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmed {
    /// The part was in the outbox and is settled now; `unconfirmed` if it
    /// was waiting for exactly this.
    Settled { unconfirmed: bool },
    /// The part was sent already (its answer came back); nothing to do but
    /// learn its platform id.
    AlreadySent,
}

impl Conversation {
    /// Parts planned from now on are held as unconfirmed until `until`
    /// (the event being handled may have been handled before a crash);
    /// `None` plans them to be sent at once.
    pub fn hold_new_parts(&mut self, until: Option<u64>) {
        self.hold_until = until;
    }

    /// Holds every part of the outbox that is not held already (found at
    /// rehydration: the previous owner may have sent it); returns how many.
    /// A part being resent was given a new deadline before its resend
    /// (see [`Conversation::resend_unconfirmed`]), so it stays held too.
    pub fn hold_outbox(&mut self, until: u64) -> usize {
        let mut held = 0;
        for part in &mut self.record.outbox {
            if part.unconfirmed_until_ms.is_none() {
                part.unconfirmed_until_ms = Some(until);
                held += 1;
            }
        }
        if held > 0 {
            self.dirty = true;
            self.retry_within_hold(until);
        }
        held
    }

    /// The first part's send may have reached the platform: it waits for
    /// its confirmation until `until`.
    pub fn part_unconfirmed(&mut self, until: u64) {
        if let Some(part) = self.record.outbox.first_mut() {
            part.unconfirmed_until_ms = Some(until);
            self.dirty = true;
            self.retry_within_hold(until);
        }
    }

    /// A pause of the outbox that ends before the first part's hold is
    /// over is no deadline any more (left, a passed one would wake the
    /// actor again and again until the hold ends).
    fn retry_within_hold(&mut self, until: u64) {
        if self.record.outbox_retry_ms.is_some_and(|t| t <= until) {
            self.record.outbox_retry_ms = None;
        }
    }

    /// Whether the first part waits for its confirmation at `now_ms`.
    pub fn awaiting_confirmation(&self, now_ms: u64) -> bool {
        self.record
            .outbox
            .first()
            .and_then(|p| p.unconfirmed_until_ms)
            .is_some_and(|until| until > now_ms)
    }

    /// Whether the first part waits (or waited) for a confirmation.
    pub fn unconfirmed_part(&self) -> bool {
        self.record
            .outbox
            .first()
            .is_some_and(|p| p.unconfirmed_until_ms.is_some())
    }

    /// Whether the first part waited out its confirmation without one:
    /// it is to be sent again.
    pub fn resend_due(&self, now_ms: u64) -> bool {
        self.record
            .outbox
            .first()
            .and_then(|p| p.unconfirmed_until_ms)
            .is_some_and(|until| until <= now_ms)
    }

    /// Before the first part is sent again: it stays unconfirmed until
    /// `until`, written before the resend, so a restart right after the
    /// resend waits for its confirmation instead of sending it a third
    /// time at once.
    pub fn resend_unconfirmed(&mut self, until: u64) {
        if let Some(part) = self.record.outbox.first_mut() {
            part.unconfirmed_until_ms = Some(until);
            self.dirty = true;
        }
    }

    /// The platform named part `part_id` (an echo, a status): if it is in
    /// the outbox it is settled as sent with the platform's id `mid` (at
    /// `sent_ms`: the platform's stamp, which watermarks are compared
    /// with); if it was sent without an id, it learns it.
    pub fn confirm_part(&mut self, part_id: &str, mid: &str, sent_ms: u64) -> Option<Confirmed> {
        if let Some(i) = self.record.outbox.iter().position(|p| p.part_id == part_id) {
            let unconfirmed = self.record.outbox[i].unconfirmed_until_ms.is_some();
            let command = self.record.outbox[i].command.clone();
            // Parts settle in order; one confirmed out of order (several
            // parts of a reply were sent before a crash) is taken out of
            // its place.
            self.record.outbox[..=i].rotate_right(1);
            self.part_sent(mid.to_string(), sent_ms);
            if let Some(command) = command {
                let message_id = mid.to_string();
                self.command_outcome(&command, CommandOutcome::Sent { message_id });
            }
            return Some(Confirmed::Settled { unconfirmed });
        }
        if let Some(i) = self
            .record
            .sent_parts
            .iter()
            .position(|(id, _)| id == part_id)
        {
            let (_, seq) = self.record.sent_parts.remove(i);
            if !mid.is_empty() {
                self.track_sent_id(mid.to_string(), seq);
                self.remember(mid.to_string(), sent_ms);
            }
            return Some(Confirmed::AlreadySent);
        }
        None
    }

    /// An echo carrying one of this engine's part ids: a confirmation,
    /// never a person answering.
    pub(in crate::conversation) fn own_echo(
        &mut self,
        part_id: &str,
        mid: &str,
        stamped_ms: u64,
        now_ms: u64,
    ) -> EventOutcome {
        let outcome = match self.confirm_part(part_id, mid, stamped_ms.min(now_ms)) {
            Some(Confirmed::Settled { unconfirmed: true }) => EventOutcome::Confirmed,
            _ => EventOutcome::Ignored,
        };
        self.first_time(mid, now_ms);
        outcome
    }

    /// A part the platform accepted whose id its answer did not carry:
    /// kept (bounded) until an echo or status with its part id tells it.
    pub(in crate::conversation) fn sent_without_id(&mut self, part_id: &str, seq: u64) {
        if part_id.is_empty() {
            return;
        }
        if self.record.sent_parts.len() >= TRACKED_MARKS {
            take_first(&mut self.record.sent_parts);
        }
        self.record.sent_parts.push((part_id.to_string(), seq));
    }

    /// Records the platform id of a sent part, for status reports that
    /// name it (bounded).
    pub(in crate::conversation) fn track_sent_id(&mut self, mid: String, seq: u64) {
        if self.record.sent_ids.len() >= TRACKED_MARKS {
            take_first(&mut self.record.sent_ids);
        }
        self.record.sent_ids.push((mid, seq));
        self.dirty = true;
    }

    /// The part the platform reported failed (a WhatsApp `failed` status
    /// naming its part id) while it was still unconfirmed: settled failed.
    pub(in crate::conversation) fn confirm_failed(
        &mut self,
        part_id: &str,
        reason: &str,
        now_ms: u64,
    ) -> bool {
        let Some(i) = self.record.outbox.iter().position(|p| p.part_id == part_id) else {
            return false;
        };
        self.record.outbox[..=i].rotate_right(1);
        let command = self.record.outbox[0].command.clone();
        self.part_failed(reason, now_ms);
        if let Some(command) = command {
            let reason = reason.to_string();
            self.command_outcome(&command, CommandOutcome::Failed { reason });
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_ids_are_stable_and_distinct() {
        let a = part_id("acme-fb:1", "m_1", 0);
        assert_eq!(
            a,
            part_id("acme-fb:1", "m_1", 0),
            "a replay plans the same id"
        );
        assert!(is_part_id(&a));
        assert_ne!(a, part_id("acme-fb:1", "m_1", 1));
        assert_ne!(a, part_id("acme-fb:1", "m_2", 0));
        assert_ne!(a, part_id("acme-fb:2", "m_1", 0));
        assert!(a.len() < 40, "short enough for metadata: {a}");
        assert!(!is_part_id("some app's metadata"));
    }
}
