//! The hot set of remembered message ids of one conversation. It is loaded
//! whole from the store when the actor starts, so while the actor lives no
//! duplicate check touches the store.

use std::collections::HashMap;

#[derive(Debug, Default)]
pub struct DedupWindow {
    /// Message id -> when it may be forgotten (ms).
    ids: HashMap<String, u64>,
}

impl DedupWindow {
    pub fn new(entries: impl IntoIterator<Item = (String, u64)>) -> Self {
        Self {
            ids: entries.into_iter().collect(),
        }
    }

    /// Whether `id` was seen and its window has not passed.
    pub fn contains(&self, id: &str, now_ms: u64) -> bool {
        self.ids.get(id).is_some_and(|&expires| expires > now_ms)
    }

    /// Remembers `id` until `expires_ms`; forgets passed ids now and then.
    pub fn insert(&mut self, id: String, expires_ms: u64, now_ms: u64) {
        if self.ids.len() >= 1024 && self.ids.len().is_power_of_two() {
            self.ids.retain(|_, &mut e| e > now_ms);
        }
        self.ids.insert(id, expires_ms);
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
}
