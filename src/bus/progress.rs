//! Finished-prefix tracking for one partition: events finish out of order
//! (different conversations), but only the contiguous prefix of finished
//! offsets may be committed, as Confluent's parallel consumer does.

use std::collections::BTreeMap;

#[derive(Debug, Default)]
pub struct PartitionProgress {
    /// Delivered offsets not yet committed, and whether each is finished.
    outstanding: BTreeMap<u64, bool>,
    /// Next offset to resume from: everything below is finished.
    committable: Option<u64>,
}

impl PartitionProgress {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `offset` was handed to the engine; whether it was not
    /// listed yet.
    pub fn delivered(&mut self, offset: u64) -> bool {
        match self.outstanding.entry(offset) {
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(false);
                true
            }
            std::collections::btree_map::Entry::Occupied(_) => false,
        }
    }

    /// Takes back `offset`, newly listed by [`delivered`](Self::delivered),
    /// when the engine did not get it after all (unless it finished).
    pub fn not_delivered(&mut self, offset: u64) {
        if self.holds(offset) {
            self.outstanding.remove(&offset);
        }
    }

    /// Whether `offset` was handed to the engine and is not finished yet.
    pub fn holds(&self, offset: u64) -> bool {
        self.outstanding.get(&offset) == Some(&false)
    }

    /// Records that `offset` is finished; returns the new resume offset if
    /// the committable prefix grew. The resume offset never goes back: an
    /// offset below it fetched again (and finished again) does not lower it.
    pub fn finished(&mut self, offset: u64) -> Option<u64> {
        if let Some(done) = self.outstanding.get_mut(&offset) {
            *done = true;
        }
        let mut advanced = None;
        while let Some(entry) = self.outstanding.first_entry() {
            if !*entry.get() {
                break;
            }
            let (o, _) = entry.remove_entry();
            advanced = Some(o + 1);
        }
        let next = advanced.filter(|n| self.committable.is_none_or(|now| *n > now))?;
        self.committable = Some(next);
        Some(next)
    }

    /// The resume offset the finished prefix allows, if any event finished.
    pub fn committable(&self) -> Option<u64> {
        self.committable
    }

    /// Delivered and not yet finished-and-committable.
    pub fn outstanding(&self) -> usize {
        self.outstanding.len()
    }

    /// Delivered and not finished.
    pub fn unfinished(&self) -> usize {
        self.outstanding.values().filter(|done| !**done).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_only_the_contiguous_prefix() {
        let mut p = PartitionProgress::new();
        for o in 10..15 {
            p.delivered(o);
        }
        assert_eq!(p.finished(12), None);
        assert_eq!(p.finished(11), None);
        assert_eq!(p.committable(), None);
        assert_eq!(p.unfinished(), 3, "10, 13, 14 still being handled");
        assert_eq!(p.outstanding(), 5);
        assert_eq!(p.finished(10), Some(13), "10, 11, 12 done: resume at 13");
        assert_eq!(p.finished(14), None);
        assert_eq!(p.finished(13), Some(15));
        assert_eq!(p.outstanding(), 0);
    }

    /// An offset fetched again below what is already committable (the
    /// fetcher went back) finishes without moving the resume offset back:
    /// a lower commit would make the next owner replay what was handled.
    #[test]
    fn the_resume_offset_never_goes_back() {
        let mut p = PartitionProgress::new();
        for o in 0..10 {
            p.delivered(o);
            p.finished(o);
        }
        assert_eq!(p.committable(), Some(10));
        assert!(p.delivered(4), "fetched again");
        assert_eq!(p.finished(4), None);
        assert_eq!(p.committable(), Some(10));
        assert_eq!(p.outstanding(), 0);
        p.delivered(10);
        assert_eq!(p.finished(10), Some(11));
    }

    #[test]
    fn tolerates_gaps_and_unknown_offsets() {
        let mut p = PartitionProgress::new();
        p.delivered(3);
        p.delivered(7);
        assert_eq!(p.finished(99), None);
        assert_eq!(p.finished(7), None);
        assert_eq!(p.finished(3), Some(8));
    }
}
