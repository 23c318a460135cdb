//! What a socket has shown the widget, the conversation's lines it has
//! not, and the read marks the widget sends back.

use serde_json::Value;

use super::{behind, event, SocketOf, READ_EVERY};
use crate::channels::web::frames;
use crate::clock::now_ms;
use crate::conversation::EngineContext;
use crate::event::{ConversationId, EventKind};

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

/// The visitor's read marks: the newest is passed on at most every
/// [`READ_EVERY`] and not while the engine is behind, and one that came
/// sooner waits for its turn instead of being dropped.
#[derive(Default)]
pub(super) struct ReadMarks {
    /// The newest line the widget said it showed, and when it said so
    /// (the mark's time: lines sent later are not covered by it).
    wanted: u64,
    wanted_at: u64,
    /// The newest passed on, and when.
    passed: u64,
    at: Option<tokio::time::Instant>,
}

impl ReadMarks {
    /// The widget says it shows every line up to `seq` now.
    pub(super) fn said(&mut self, seq: u64) {
        if seq > self.wanted {
            self.wanted = seq;
            self.wanted_at = now_ms();
        }
    }

    pub(super) async fn pass(&mut self, ctx: &EngineContext, of: &SocketOf<'_>) {
        let due = self.at.is_none_or(|t| t.elapsed() >= READ_EVERY);
        if self.wanted <= self.passed || !due || behind(ctx) {
            return;
        }
        let event = event(
            of,
            EventKind::Read {
                watermark: self.wanted_at,
            },
        );
        if ctx.bus.publish(std::slice::from_ref(&event)).await.is_ok() {
            self.passed = self.wanted;
            self.at = Some(tokio::time::Instant::now());
        }
    }
}
