//! The embedded bus's log: append-only segment files in `bus/` under
//! `store.path`, as Kafka keeps a partition. A record is a 20-byte header
//! (payload length with a last-of-its-write bit, CRC-32 of the header and
//! payload, offset, index within its write) and the payload;
//! a segment is named by its first offset. One writer appends a whole
//! group of records with one `write` (and, once a mebibyte, the zeros
//! ahead, below) and one `fdatasync`; readers open the
//! segments on their own and never read past what the writer has synced.
//! The segment being written is zero-filled ahead of its records (a
//! mebibyte at a time), so a group's `fdatasync` overwrites blocks the
//! file already has: the data and the disk's cache flush, without the
//! file-size and block-map update a growing file needs with every sync
//! (as PostgreSQL zero-fills its WAL). The room is cut off when a segment
//! is closed, at shutdown and at open, where zeros running to the end are
//! the clean end, never damage.
//! The consumer's resume offset lives in `committed` (with a check word,
//! so a torn write reads as "unknown" and the log is replayed from its
//! start: harmless, as replays are). Segments wholly below it are deleted.
//! At open, a last write that is not whole (a write a crash cut short:
//! never acknowledged, as its sync did not return; the disk may have kept
//! later parts of it without earlier ones) is cut off from its first
//! surviving record, and bytes after the last write too, so no part of it
//! is delivered ahead of the rest (bit rot in an acknowledged last write
//! looks the same: the cut bytes are kept aside as `*.cut`, with an error
//! logged). Damage elsewhere (bytes that changed on disk) is skipped,
//! logged, up to the next record that checks out; nothing past it is cut.

mod files;
mod scan;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::ops::Bound;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use self::files::{open_committed, segment_bases};
use self::scan::{scan_segment, Scan};
use crate::sync::lock;

/// A segment is closed and a new one started past this size.
pub const SEGMENT_BYTES: u64 = 32 << 20;
/// The segment being written is zero-filled this far ahead at a time
/// (less for smaller segments).
const ROOM_BYTES: u64 = 1 << 20;
static ZEROS: [u8; 64 << 10] = [0; 64 << 10];
const HEADER: usize = 20;
/// The largest record: larger headers are damage, not data, and larger
/// events are refused (a webhook body is at most 100 MiB).
pub const MAX_RECORD: usize = 256 << 20;
/// A read position is remembered at least every this many records.
const MARK_EVERY: u64 = 64;
const CHECK: u64 = 0x5357_4254_4348_4b31;

/// The top bit of a record's length word: the last record of its write.
/// At open, a last write without it (or with damage in it) is cut whole,
/// so no part of a write a crash cut short comes before the rest of it.
const END_OF_GROUP: u32 = 1 << 31;
/// Segment names past this are not the log's (offsets never get there).
const MAX_BASE: u64 = 1 << 62;

fn crc(word: u32, offset: u64, index: u32, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&word.to_le_bytes());
    h.update(&offset.to_le_bytes());
    h.update(&index.to_le_bytes());
    h.update(payload);
    h.finalize()
}

fn segment_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.log"))
}

fn context(what: &str, path: &Path, e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

/// What readers and the writer share: which segments exist, and where
/// some records start.
pub struct Segments {
    dir: PathBuf,
    bases: Mutex<BTreeSet<u64>>,
    /// Offset -> (segment base, byte position) of a record start.
    marks: Mutex<BTreeMap<u64, (u64, u64)>>,
    /// The segment being written and how much of it is synced.
    active: Mutex<(u64, u64)>,
}

/// One record read back: its offset and payload.
pub type Record = (u64, Vec<u8>);

impl Segments {
    fn mark(&self, offset: u64, base: u64, pos: u64) {
        let mut marks = lock(&self.marks);
        let due = marks
            .last_key_value()
            .is_none_or(|(last, _)| offset >= last.saturating_add(MARK_EVERY));
        if due {
            marks.insert(offset, (base, pos));
        }
    }

    /// Up to `max` records with offsets in `from..to`, in order. Records
    /// below `to` are synced, and the segment being written is read only
    /// as far as it is synced, so the writer's work in progress is never
    /// read.
    pub fn read(&self, from: u64, to: u64, max: usize) -> std::io::Result<Vec<Record>> {
        let mut out = Vec::new();
        if from >= to {
            return Ok(out);
        }
        // Where to start: the segment holding `from`, at the last known
        // record start at or before it; the first record there has at
        // least that offset.
        let (mut base, mut pos, mut floor) = {
            let bases = lock(&self.bases);
            let Some(&base) = bases.range(..=from).next_back().or(bases.first()) else {
                return Ok(out);
            };
            match lock(&self.marks).range(..=from).next_back() {
                Some((&offset, &(mb, pos))) if mb == base => (base, pos, offset),
                _ => (base, 0, base),
            }
        };
        loop {
            let path = segment_path(&self.dir, base);
            let (active, synced) = *lock(&self.active);
            match File::open(&path) {
                Ok(file) => {
                    let limit = if active == base {
                        synced
                    } else {
                        file.metadata()?.len()
                    };
                    let mut scan = Scan::new(file, &path, pos, limit, floor)?;
                    while let Some(found) = scan.next_record()? {
                        if found.offset >= to {
                            return Ok(out);
                        }
                        if found.offset >= from {
                            out.push((found.offset, found.payload));
                            if out.len() >= max {
                                return Ok(out);
                            }
                        }
                    }
                }
                // Deleted meanwhile: everything in it was consumed.
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(context("cannot open", &path, e)),
            }
            let next = lock(&self.bases)
                .range((Bound::Excluded(base), Bound::Unbounded))
                .next()
                .copied();
            match next {
                Some(b) => {
                    base = b;
                    pos = 0;
                    floor = b;
                }
                None => return Ok(out),
            }
        }
    }
}

/// The writer's end of the log (one per log, on the bus's writer thread).
pub struct Appender {
    segments: Arc<Segments>,
    file: File,
    base: u64,
    /// The end of the records written and synced.
    len: u64,
    /// The file's length: the records and the zero-filled room after them.
    allocated: u64,
    /// The last zero-fill failed (warned once until one succeeds).
    room_failed: bool,
    next: u64,
    committed_file: File,
    /// The highest resume offset written.
    committed: u64,
    segment_bytes: u64,
    /// Set when a failed write could not be undone: nothing more is appended.
    broken: Option<String>,
    buf: Vec<u8>,
}

/// A log as found at open.
pub struct Opened {
    pub segments: Arc<Segments>,
    pub appender: Appender,
    /// The consumer's resume offset (0 when unknown).
    pub committed: u64,
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    crate::sync::sync_dir(dir).map_err(|e| context("cannot sync", dir, e))
}

/// Opens (or creates) the log in `dir`, repairing a cut-short end.
pub fn open(dir: &Path) -> std::io::Result<Opened> {
    open_with(dir, SEGMENT_BYTES)
}

/// [`open`] with segments closed past `segment_bytes`.
pub fn open_with(dir: &Path, segment_bytes: u64) -> std::io::Result<Opened> {
    if !dir.exists() {
        std::fs::create_dir_all(dir).map_err(|e| context("cannot create", dir, e))?;
        // The folder's own name must survive a power loss too.
        if let Some(parent) = dir.parent() {
            sync_dir(parent)?;
        }
    }
    let (committed_file, committed) = open_committed(dir)?;
    let bases = segment_bases(dir)?;
    let segments = Arc::new(Segments {
        dir: dir.to_path_buf(),
        bases: Mutex::new(bases.clone()),
        marks: Mutex::new(BTreeMap::new()),
        active: Mutex::new((0, 0)),
    });
    let mut next = committed;
    let mut active = None;
    let last_base = bases.last().copied();
    for &base in &bases {
        let path = segment_path(dir, base);
        // Written at positions (never in append mode, where Linux ignores
        // them).
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| context("cannot open", &path, e))?;
        next = next.max(base);
        let last = Some(base) == last_base;
        let end = scan_segment(&segments, &file, &path, base, last, &mut next)?;
        if Some(base) == last_base {
            active = Some((file, base, end));
        }
    }
    let (file, base, len) = match active {
        Some(a) => a,
        None => (create_segment(&segments, next)?, next, 0),
    };
    *lock(&segments.active) = (base, len);
    // Its zero-filled room was cut off by the scan.
    let allocated = file.metadata().map_or(len, |m| m.len());
    Ok(Opened {
        appender: Appender {
            segments: segments.clone(),
            file,
            base,
            len,
            allocated,
            room_failed: false,
            next,
            committed_file,
            committed,
            segment_bytes,
            broken: None,
            buf: Vec::new(),
        },
        segments,
        committed,
    })
}

fn create_segment(segments: &Segments, base: u64) -> std::io::Result<File> {
    let path = segment_path(&segments.dir, base);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| context("cannot create", &path, e))?;
    // The new name must survive a power loss before records in it are
    // acknowledged.
    sync_dir(&segments.dir)?;
    // Readers see it as the segment being written (read only as far as
    // synced) before they see it at all.
    *lock(&segments.active) = (base, 0);
    lock(&segments.bases).insert(base);
    Ok(file)
}

impl Appender {
    /// The offset the next record gets.
    pub fn next(&self) -> u64 {
        self.next
    }

    pub fn broken(&self) -> Option<&str> {
        self.broken.as_deref()
    }

    /// Appends `payloads` at offsets `next()..` and syncs them: one write
    /// (and the room's zeros when it runs out), one fdatasync. Returns the
    /// first offset. On failure nothing is appended (the file is cut
    /// back); if even that fails, the log refuses every later append.
    pub fn append(&mut self, payloads: &[&[u8]]) -> std::io::Result<u64> {
        let first = self.next;
        if payloads.is_empty() {
            return Ok(first);
        }
        if let Some(why) = &self.broken {
            return Err(std::io::Error::other(why.clone()));
        }
        if let Some(p) = payloads.iter().find(|p| p.len() > MAX_RECORD) {
            return Err(std::io::Error::new(
                ErrorKind::InvalidInput,
                format!("a record of {} bytes is over the bus log's limit", p.len()),
            ));
        }
        if self.len >= self.segment_bytes {
            // Closed at its records' end (readers read a closed segment
            // to its length; a crash before this leaves zeros they skip).
            if let Err(e) = self.file.set_len(self.len) {
                tracing::warn!(base = self.base, error = %e, "Cannot cut the zero-filled room off a closed bus log segment");
            }
            self.file = create_segment(&self.segments, first)?;
            self.base = first;
            self.len = 0;
            self.allocated = 0;
        }
        self.buf.clear();
        for (i, p) in payloads.iter().enumerate() {
            let offset = first + i as u64;
            let mut word = p.len() as u32;
            if i + 1 == payloads.len() {
                word |= END_OF_GROUP;
            }
            let index = i as u32;
            self.buf.extend_from_slice(&word.to_le_bytes());
            self.buf
                .extend_from_slice(&crc(word, offset, index, p).to_le_bytes());
            self.buf.extend_from_slice(&offset.to_le_bytes());
            self.buf.extend_from_slice(&index.to_le_bytes());
            self.buf.extend_from_slice(p);
        }
        let end = self.len + self.buf.len() as u64;
        let written = self.file.write_all_at(&self.buf, self.len).and_then(|()| {
            self.make_room(end);
            self.file.sync_data()
        });
        if let Err(e) = written {
            // Cut back (and synced, so a later sync cannot bring the
            // failed bytes back as records that were never acknowledged).
            self.allocated = self.len;
            let undone = self
                .file
                .set_len(self.len)
                .and_then(|()| self.file.sync_data());
            if let Err(undo) = undone {
                self.broken = Some(format!(
                    "the bus log could not be repaired after a failed write ({e}): {undo}"
                ));
            }
            return Err(e);
        }
        self.segments.mark(first, self.base, self.len);
        self.len += self.buf.len() as u64;
        self.next = first + payloads.len() as u64;
        *lock(&self.segments.active) = (self.base, self.len);
        if self.buf.capacity() > 4 << 20 {
            self.buf = Vec::new();
        }
        Ok(first)
    }

    /// Zero-fills the segment past `end` when its room runs out (synced
    /// with the write that reaches it). The room only saves work: when it
    /// cannot be made (a full disk), records are appended without it.
    fn make_room(&mut self, end: u64) {
        // A segment at its size is closed at the next append: no room.
        if end <= self.allocated || end >= self.segment_bytes {
            return;
        }
        let step = ROOM_BYTES.min(self.segment_bytes.next_multiple_of(4096));
        // The next multiple of `step` past `end`, within the segment's size
        // (past `end`, as `end` is below it).
        let target = ((end / step + 1) * step).min(self.segment_bytes);
        let mut at = end;
        while at < target {
            let n = (target - at).min(ZEROS.len() as u64);
            if let Err(e) = self.file.write_all_at(&ZEROS[..n as usize], at) {
                if !self.room_failed {
                    tracing::warn!(base = self.base, error = %e, "Cannot zero-fill room ahead in the bus log; appending without it");
                }
                self.room_failed = true;
                // Zeros written so far are room too; past them the file
                // grows with each write.
                self.allocated = at;
                return;
            }
            at += n;
        }
        self.room_failed = false;
        self.allocated = target;
    }

    /// Records the consumer's resume offset (synced if `durable`) and
    /// deletes the segments wholly below it.
    pub fn commit(&mut self, offset: u64, durable: bool) -> std::io::Result<()> {
        // Never backwards (commits may arrive out of order).
        let offset = offset.max(self.committed);
        if offset == self.committed && !durable {
            return Ok(());
        }
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&offset.to_le_bytes());
        b[8..].copy_from_slice(&(offset ^ CHECK).to_le_bytes());
        self.committed_file.write_all_at(&b, 0)?;
        self.committed = offset;
        if durable {
            self.committed_file.sync_data()?;
        }
        self.trim(offset);
        Ok(())
    }

    fn trim(&self, below: u64) {
        let doomed: Vec<u64> = {
            let bases = lock(&self.segments.bases);
            let list: Vec<u64> = bases.iter().copied().collect();
            list.windows(2)
                .filter(|w| w[1] <= below && w[0] != self.base)
                .map(|w| w[0])
                .collect()
        };
        for base in doomed {
            let path = segment_path(&self.segments.dir, base);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(segment = %path.display(), error = %e, "Cannot delete a consumed bus log segment");
                    continue;
                }
            }
            lock(&self.segments.bases).remove(&base);
        }
        let first = lock(&self.segments.bases).first().copied().unwrap_or(0);
        let mut marks = lock(&self.segments.marks);
        let kept = marks.split_off(&first);
        *marks = kept;
    }
}

impl Drop for Appender {
    /// Cuts the zero-filled room off at shutdown (a crash leaves it, and
    /// the next open cuts it).
    fn drop(&mut self) {
        if self.allocated > self.len && self.broken.is_none() {
            if let Err(e) = self.file.set_len(self.len) {
                tracing::warn!(base = self.base, error = %e, "Cannot cut the zero-filled room off the bus log");
            }
        }
    }
}

#[cfg(test)]
mod tests;
