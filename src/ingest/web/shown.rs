//! What a socket has shown the widget, and the conversation's lines it
//! has not.

use serde_json::Value;

use crate::channels::web::frames;
use crate::conversation::EngineContext;
use crate::event::ConversationId;

/// The lines a socket has shown: every one up to `floor` (the widget had
/// them), and these after it.
pub(super) struct Shown {
    pub(super) floor: u64,
    seqs: std::collections::BTreeSet<u64>,
}

impl Shown {
    pub(super) fn new(floor: u64) -> Self {
        Self {
            floor,
            seqs: Default::default(),
        }
    }

    /// Marks `seq` shown; whether it was new. (Frames without a `seq`,
    /// like typing, are always new.)
    pub(super) fn add(&mut self, seq: Option<u64>) -> bool {
        let Some(seq) = seq else {
            return true;
        };
        if seq <= self.floor || !self.seqs.insert(seq) {
            return false;
        }
        // Bounded: the oldest become the floor.
        while self.seqs.len() > 1000 {
            if let Some(first) = self.seqs.pop_first() {
                self.floor = first;
            }
        }
        true
    }
}

/// The conversation's lines after `seq` that the widget shows, oldest first.
pub(super) async fn lines_after(
    ctx: &EngineContext,
    conversation: &ConversationId,
    seq: u64,
    limit: usize,
) -> Vec<Value> {
    let mut lines: Vec<Value> = match ctx.store.messages(conversation, limit).await {
        Ok(m) => m
            .iter()
            .filter(|m| m.seq > seq)
            .filter_map(frames::line)
            .collect(),
        Err(_) => Vec::new(),
    };
    lines.sort_by_key(|l| l["seq"].as_u64());
    lines
}
