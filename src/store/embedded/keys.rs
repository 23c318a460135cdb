//! Keys of the embedded store's tables as bytes that sort like the tuples
//! they stand for: a string is written with its bytes 0 and 1 escaped and
//! a 0 after it (so it sorts before any longer string it begins), a number
//! big-endian. The rows of one conversation, or of every conversation of
//! an integration, are then one key range.

use crate::store::StoreError;

/// The longest id (conversation, message, integration, document or
/// record key) the store keeps, as written in a key (bytes 0 and 1 take
/// two): a key holds at most two of them and a number, and the store
/// engine refuses keys over 64 KiB.
pub const MAX_ID: usize = 16 * 1024;

/// The longest key the store engine takes.
pub(super) const MAX_KEY: usize = u16::MAX as usize;

/// `Ok` when every id is short enough to be part of a key.
pub(super) fn fit<'a>(ids: impl IntoIterator<Item = &'a str>) -> Result<(), StoreError> {
    let written = |id: &str| id.len() + id.bytes().filter(|&b| b <= 1).count();
    match ids.into_iter().find(|id| written(id) > MAX_ID) {
        Some(id) => Err(StoreError::TooLong(id.len())),
        None => Ok(()),
    }
}

/// Builds a key part by part.
#[derive(Default)]
pub(super) struct Key(Vec<u8>);

impl Key {
    pub(super) fn new() -> Self {
        Self(Vec::with_capacity(48))
    }

    /// A string, ended (a part may follow).
    pub(super) fn str(mut self, s: &str) -> Self {
        escape_into(&mut self.0, s);
        self.0.push(0);
        self
    }

    /// A string without its end: the start of every key whose string
    /// part begins with `s`.
    pub(super) fn str_start(mut self, s: &str) -> Self {
        escape_into(&mut self.0, s);
        self
    }

    pub(super) fn u64(mut self, n: u64) -> Self {
        self.0.extend_from_slice(&n.to_be_bytes());
        self
    }

    pub(super) fn u32(mut self, n: u32) -> Self {
        self.0.extend_from_slice(&n.to_be_bytes());
        self
    }

    pub(super) fn done(self) -> Vec<u8> {
        self.0
    }
}

/// A key of one string.
pub(super) fn of(s: &str) -> Vec<u8> {
    Key::new().str(s).done()
}

fn escape_into(out: &mut Vec<u8>, s: &str) {
    for &b in s.as_bytes() {
        match b {
            0 => out.extend_from_slice(&[1, 1]),
            1 => out.extend_from_slice(&[1, 2]),
            b => out.push(b),
        }
    }
}

/// Reads a key back part by part; `None` when it is not what was asked.
pub(super) struct Parts<'a>(&'a [u8]);

impl<'a> Parts<'a> {
    pub(super) fn new(key: &'a [u8]) -> Self {
        Self(key)
    }

    pub(super) fn str(&mut self) -> Option<String> {
        let mut out = Vec::new();
        let mut i = 0;
        loop {
            match *self.0.get(i)? {
                0 => break,
                1 => {
                    out.push(self.0.get(i + 1)?.checked_sub(1)?);
                    i += 2;
                }
                b => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        self.0 = self.0.get(i + 1..)?;
        String::from_utf8(out).ok()
    }

    pub(super) fn u64(&mut self) -> Option<u64> {
        let (n, rest) = self.0.split_first_chunk::<8>()?;
        self.0 = rest;
        Some(u64::from_be_bytes(*n))
    }

    pub(super) fn u32(&mut self) -> Option<u32> {
        let (n, rest) = self.0.split_first_chunk::<4>()?;
        self.0 = rest;
        Some(u32::from_be_bytes(*n))
    }
}

/// A number stored as a value.
pub(super) fn value_u64(v: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(v.try_into().ok()?))
}

/// The key just past every key that starts with `start`: ranges of
/// "everything beginning with" end here.
pub(super) fn past(start: &[u8]) -> Vec<u8> {
    let mut end = start.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return end;
        }
    }
    // Only 0xFF bytes: nothing sorts after every such key but the end.
    vec![u8::MAX; start.len() + 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_like_their_tuples() {
        let tuples = [
            ("", 5u64),
            ("a", 0),
            ("a", 7),
            ("a\u{0}", 1),
            ("a\u{1}", 0),
            ("a\u{1}b", 0),
            ("a\u{2}", 0),
            ("ab", 0),
            ("b", u64::MAX),
        ];
        let keys: Vec<Vec<u8>> = tuples
            .iter()
            .map(|(s, n)| Key::new().str(s).u64(*n).done())
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(sorted, keys, "byte order is tuple order");
        for ((s, n), k) in tuples.iter().zip(&keys) {
            let mut p = Parts::new(k);
            assert_eq!(p.str().as_deref(), Some(*s));
            assert_eq!(p.u64(), Some(*n));
        }
    }

    #[test]
    fn a_prefix_covers_exactly_the_ids_that_begin_with_it() {
        let start = Key::new().str_start("fb:").done();
        let end = past(&start);
        for (id, inside) in [("fb:1", true), ("fb:", true), ("fb", false), ("fb;", false)] {
            let k = of(id);
            assert_eq!(k >= start && k < end, inside, "{id}");
        }
        assert_eq!(past(&[1, 255]), [2]);
    }

    #[test]
    fn short_or_broken_keys_read_as_none() {
        assert_eq!(Parts::new(b"abc").str(), None, "no end");
        assert_eq!(Parts::new(&[1]).str(), None, "cut escape");
        assert_eq!(Parts::new(&[0, 0, 1]).u64(), None);
        assert_eq!(value_u64(&[1, 2]), None);
    }
}
