//! `GET /conversations?order=recent`: newest activity first (the operators'
//! console's inbox). No store keeps conversations by activity, so a page is
//! chosen from the matching conversations read in id order, at most
//! [`SCAN_MAX`] of them; past that the answer says `partial` (filter by
//! integration, channel or mode to see the rest). The cursor is the last
//! conversation's activity and id, so pages neither repeat nor skip while
//! nothing changes.

use super::AdminError;
use crate::conversation::EngineContext;
use crate::store::{ConversationFilter, ConversationRecord};

/// Conversations read at most for one page.
pub const SCAN_MAX: usize = 20_000;
/// Read from the store this many at a time.
const BATCH: usize = 500;

/// Where the previous page ended: `{last activity ms}.{id}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Cursor {
    activity_ms: u64,
    id: String,
}

impl Cursor {
    pub fn parse(s: &str) -> Result<Self, AdminError> {
        s.split_once('.')
            .and_then(|(ms, id)| {
                Some(Self {
                    activity_ms: ms.parse().ok()?,
                    id: id.to_string(),
                })
            })
            .ok_or_else(|| {
                AdminError::BadRequest(format!(
                    "after {s:?} is not a cursor this listing gave (order=recent)"
                ))
            })
    }

    fn of(c: &ConversationRecord) -> Self {
        Self {
            activity_ms: c.last_activity_ms,
            id: c.id.clone(),
        }
    }

    pub fn render(&self) -> String {
        format!("{}.{}", self.activity_ms, self.id)
    }

    /// Whether `c` comes after this cursor: older, or as old with a
    /// greater id.
    fn precedes(&self, c: &ConversationRecord) -> bool {
        (std::cmp::Reverse(c.last_activity_ms), c.id.as_str())
            > (std::cmp::Reverse(self.activity_ms), self.id.as_str())
    }
}

/// A page of the newest conversations.
pub struct Page {
    pub conversations: Vec<ConversationRecord>,
    pub next: Option<String>,
    /// Not every matching conversation was read.
    pub partial: bool,
}

fn newest_first(page: &mut Vec<ConversationRecord>, keep: usize) {
    page.sort_by(|a, b| {
        b.last_activity_ms
            .cmp(&a.last_activity_ms)
            .then_with(|| a.id.cmp(&b.id))
    });
    page.truncate(keep);
}

pub async fn page(
    ctx: &EngineContext,
    filter: &ConversationFilter,
    after: Option<&Cursor>,
    limit: usize,
) -> Result<Page, AdminError> {
    let mut kept: Vec<ConversationRecord> = Vec::new();
    let mut read = 0;
    let mut from: Option<String> = None;
    let mut partial = false;
    // One more than asked: whether there is a next page.
    let keep = limit + 1;
    loop {
        let batch = ctx
            .store
            .list_conversations(filter, from.as_deref(), BATCH)
            .await?;
        let done = batch.len() < BATCH;
        read += batch.len();
        from = batch.last().map(|c| c.id.clone());
        kept.extend(
            batch
                .into_iter()
                .filter(|c| after.is_none_or(|a| a.precedes(c))),
        );
        if kept.len() > 4 * keep {
            newest_first(&mut kept, keep);
        }
        if done {
            break;
        }
        if read >= SCAN_MAX {
            partial = true;
            break;
        }
    }
    newest_first(&mut kept, keep);
    let more = kept.len() > limit;
    kept.truncate(limit);
    let next = more
        .then(|| kept.last().map(|c| Cursor::of(c).render()))
        .flatten();
    Ok(Page {
        conversations: kept,
        next,
        partial,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_and_refuses_what_it_did_not_write() {
        let c = Cursor {
            activity_ms: 1_700_000_000_000,
            id: "acme-fb:12.5".into(),
        };
        assert_eq!(Cursor::parse(&c.render()).unwrap(), c);
        assert!(Cursor::parse("acme-fb:1").is_err());
        assert!(Cursor::parse("x.acme").is_err());
    }
}
