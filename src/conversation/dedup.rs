//! The hot set of remembered message ids of one conversation. It is loaded
//! whole from the store when the actor starts, so while the actor lives no
//! duplicate check touches the store.

use std::collections::HashMap;

/// Ids held before the first purge of passed ones.
const FIRST_PURGE: usize = 16;

#[derive(Debug, Default)]
pub struct DedupWindow {
    /// Message id -> when it may be forgotten (ms).
    ids: HashMap<String, u64>,
    /// Passed ids are dropped when this many are held: twice what the last
    /// purge left, so a long-lived actor holds at most about twice its
    /// live ids and each insert costs O(1) amortized.
    purge_at: usize,
}

impl DedupWindow {
    pub fn new(entries: impl IntoIterator<Item = (String, u64)>) -> Self {
        let ids: HashMap<String, u64> = entries.into_iter().collect();
        let purge_at = (ids.len() * 2).max(FIRST_PURGE);
        Self { ids, purge_at }
    }

    /// Whether `id` was seen and its window has not passed.
    pub fn contains(&self, id: &str, now_ms: u64) -> bool {
        self.ids.get(id).is_some_and(|&expires| expires > now_ms)
    }

    /// Remembers `id` until `expires_ms`; forgets passed ids now and then.
    pub fn insert(&mut self, id: String, expires_ms: u64, now_ms: u64) {
        if self.ids.len() >= self.purge_at.max(FIRST_PURGE) {
            self.ids.retain(|_, &mut e| e > now_ms);
            self.ids.shrink_to(self.ids.len() * 2);
            self.purge_at = (self.ids.len() * 2).max(FIRST_PURGE);
        }
        self.ids.insert(id, expires_ms);
    }

    /// Ids held in memory (live or passed and not yet dropped).
    #[cfg(test)]
    fn held(&self) -> usize {
        self.ids.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_until_expiry() {
        let mut d = DedupWindow::default();
        d.insert("m1".into(), 100, 0);
        assert!(d.contains("m1", 99));
        assert!(!d.contains("m1", 100));
        assert!(!d.contains("m2", 0));
    }

    /// A conversation that lives longer than its window does not hold
    /// every id it ever saw: passed ids go, live ones stay.
    #[test]
    fn a_long_lived_window_holds_about_its_live_ids() {
        let mut d = DedupWindow::default();
        // One id a second, each remembered for 10 s, for an hour.
        for t in 0..3_600u64 {
            d.insert(format!("m{t}"), (t + 10) * 1000, t * 1000);
            assert!(d.held() <= 2 * FIRST_PURGE, "{} held at {t}", d.held());
        }
        let now = 3_599_000;
        assert!((3_590..3_600).all(|t| d.contains(&format!("m{t}"), now)));
        assert!(!d.contains("m3580", now));
    }
}
