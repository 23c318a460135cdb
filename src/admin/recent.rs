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
pub const SCAN_MAX: usize = 10_000;

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
    page.sort_unstable_by(|a, b| {
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
    // One listing call: a store may scan its whole table per call (the
    // ScyllaDB store without a tenant), so it is never called in a loop.
    let mut read = ctx
        .store
        .list_conversations(filter, None, SCAN_MAX + 1)
        .await?;
    let partial = read.len() > SCAN_MAX;
    read.truncate(SCAN_MAX);
    read.retain(|c| after.is_none_or(|a| a.precedes(c)));
    // One more than asked: whether there is a next page.
    newest_first(&mut read, limit + 1);
    let more = read.len() > limit;
    read.truncate(limit);
    let next = more
        .then(|| read.last().map(|c| Cursor::of(c).render()))
        .flatten();
    Ok(Page {
        conversations: read,
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
