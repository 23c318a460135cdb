//! Reading a segment: its records one after another, from a byte position
//! up to a limit (the synced length of the segment being written; a
//! closed segment's whole length). Bytes that are not a whole record with
//! its CRC are damage: reading goes on at the next record that checks out
//! (with an error logged), or ends there when none follows (the end of a
//! write a crash cut short). Zeros from a record's start to the limit are
//! the segment's zero-filled room for later writes: the clean end.

use std::fs::File;
use std::io::{BufReader, ErrorKind, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::{context, crc, Segments, END_OF_GROUP, HEADER, MARK_EVERY, MAX_RECORD};
use crate::sync::lock;

/// A record read back.
pub(super) struct Found {
    pub offset: u64,
    pub payload: Vec<u8>,
    /// Its byte position in the segment.
    pub start: u64,
    /// The last record of the write it came in.
    pub end_of_group: bool,
    /// Its place in that write (0: the first).
    pub index: u32,
}

enum Next {
    Record(Header, Vec<u8>),
    End,
    Damaged,
}

#[derive(Clone, Copy)]
struct Header {
    /// The length word as written (length and the end-of-group bit).
    word: u32,
    sum: u32,
    offset: u64,
    index: u32,
}

impl Header {
    fn len(&self) -> usize {
        (self.word & !END_OF_GROUP) as usize
    }
}

/// The header at the start of `b`.
fn header(b: &[u8]) -> Option<Header> {
    Some(Header {
        word: u32::from_le_bytes(b.get(0..4)?.try_into().ok()?),
        sum: u32::from_le_bytes(b.get(4..8)?.try_into().ok()?),
        offset: u64::from_le_bytes(b.get(8..16)?.try_into().ok()?),
        index: u32::from_le_bytes(b.get(16..20)?.try_into().ok()?),
    })
}

/// Whether `h` may be the next record: its offset at or past `floor` (and
/// not absurdly far past it), its length within bounds.
fn plausible(h: &Header, floor: u64, remaining: u64) -> bool {
    h.offset >= floor
        && h.offset - floor <= 1 << 32
        && h.len() <= MAX_RECORD
        && (HEADER + h.len()) as u64 <= remaining
}

/// Reads one record with at most `remaining` bytes left before the limit.
fn read_record(reader: &mut impl Read, remaining: u64, floor: u64) -> std::io::Result<Next> {
    if remaining == 0 {
        return Ok(Next::End);
    }
    let mut head = [0u8; HEADER];
    match reader.read_exact(&mut head) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(Next::Damaged),
        Err(e) => return Err(e),
    }
    let Some(h) = header(&head).filter(|h| plausible(h, floor, remaining)) else {
        return Ok(Next::Damaged);
    };
    let mut payload = vec![0u8; h.len()];
    match reader.read_exact(&mut payload) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(Next::Damaged),
        Err(e) => return Err(e),
    }
    if crc(h.word, h.offset, h.index, &payload) != h.sum {
        return Ok(Next::Damaged);
    }
    Ok(Next::Record(h, payload))
}

/// Whether a whole record that checks out, and may be the next one,
/// starts at `b[0]`.
fn record_at(b: &[u8], floor: u64) -> bool {
    header(b).is_some_and(|h| {
        plausible(&h, floor, b.len() as u64)
            && crc(h.word, h.offset, h.index, &b[HEADER..HEADER + h.len()]) == h.sum
    })
}

/// Whether the bytes of `file` from `at` up to `limit` (or its end) are
/// all zeros: the zero-filled room (no record is all zeros, not even its
/// header: its CRC would not be 0). Read at positions, so the file's
/// own position is left alone.
fn zeros_to(file: &File, at: u64, limit: u64) -> std::io::Result<bool> {
    let mut chunk = vec![0u8; 64 << 10];
    let mut pos = at;
    while pos < limit {
        let want = chunk
            .len()
            .min(usize::try_from(limit - pos).unwrap_or(usize::MAX));
        match file.read_at(&mut chunk[..want], pos) {
            Ok(0) => return Ok(true),
            Ok(n) if chunk[..n].iter().any(|&b| b != 0) => return Ok(false),
            Ok(n) => pos += n as u64,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// The position of the first whole record after damage at `at` (below
/// `limit`), if any.
fn find_next(path: &Path, at: u64, limit: u64, floor: u64) -> std::io::Result<Option<u64>> {
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(at + 1))?;
    let mut rest = Vec::new();
    file.take(limit.saturating_sub(at + 1))
        .read_to_end(&mut rest)?;
    Ok((0..rest.len())
        .find(|&p| record_at(&rest[p..], floor))
        .map(|p| at + 1 + p as u64))
}

/// A segment being read.
pub(super) struct Scan {
    path: PathBuf,
    reader: BufReader<File>,
    pos: u64,
    limit: u64,
    /// The lowest offset the next record may have.
    floor: u64,
    /// Damage met so far (skipped, or a torn end).
    damage: u32,
    /// Reading ended at bytes that are not a record, with none after them.
    pub(super) torn: bool,
    /// Reading ended at zeros that reach the limit (room for later writes).
    pub(super) zero_tail: bool,
}

impl Scan {
    /// Reads `file` (at `path`) from `pos` up to `limit` bytes; the first
    /// record there has an offset of at least `floor`.
    pub(super) fn new(
        file: File,
        path: &Path,
        pos: u64,
        limit: u64,
        floor: u64,
    ) -> std::io::Result<Self> {
        let mut reader = BufReader::with_capacity(256 << 10, file);
        reader.seek(SeekFrom::Start(pos))?;
        Ok(Self {
            path: path.to_path_buf(),
            reader,
            pos,
            limit,
            floor,
            damage: 0,
            torn: false,
            zero_tail: false,
        })
    }

    /// Where the next record starts (after the last one read).
    pub(super) fn pos(&self) -> u64 {
        self.pos
    }

    /// Damage met so far.
    pub(super) fn damage(&self) -> u32 {
        self.damage
    }

    /// The next record, or `None` at the limit (or at a torn end).
    pub(super) fn next_record(&mut self) -> std::io::Result<Option<Found>> {
        loop {
            let remaining = self.limit.saturating_sub(self.pos);
            match read_record(&mut self.reader, remaining, self.floor)? {
                Next::Record(h, payload) => {
                    let start = self.pos;
                    self.pos += (HEADER + payload.len()) as u64;
                    self.floor = h.offset.saturating_add(1);
                    return Ok(Some(Found {
                        offset: h.offset,
                        payload,
                        start,
                        end_of_group: h.word & END_OF_GROUP != 0,
                        index: h.index,
                    }));
                }
                Next::End => return Ok(None),
                Next::Damaged if zeros_to(self.reader.get_ref(), self.pos, self.limit)? => {
                    self.zero_tail = true;
                    return Ok(None);
                }
                Next::Damaged => {
                    let at = self.pos;
                    self.damage += 1;
                    match find_next(&self.path, at, self.limit, self.floor)? {
                        Some(p) => {
                            tracing::error!(segment = %self.path.display(), position = at, skipped_bytes = p - at, "Damaged bytes in the bus log; reading on at the next whole record");
                            self.pos = p;
                            self.reader.seek(SeekFrom::Start(p))?;
                        }
                        None => {
                            self.torn = true;
                            return Ok(None);
                        }
                    }
                }
            }
        }
    }
}

/// Reads a segment at open: remembers where records start, raises
/// `next` past its records and returns where appends would go. In the last
/// segment, a final write that is incomplete (its last record missing) or
/// damaged, or bytes after the last write, are cut off: that write's sync
/// never returned, so none of it was acknowledged, and keeping a later
/// part of it without an earlier one would deliver them out of order.
/// Damage elsewhere is skipped (logged) and nothing after it is cut.
pub(super) fn scan_segment(
    segments: &Segments,
    file: &File,
    path: &Path,
    base: u64,
    last: bool,
    next: &mut u64,
) -> std::io::Result<u64> {
    let size = file.metadata()?.len();
    let mut scan = Scan::new(file.try_clone()?, path, 0, size, base)?;
    let mut counted = 0u64;
    let mut write: Option<LastWrite> = None;
    // Where the record before ends (damage after it belongs to what follows).
    let mut read_end = 0u64;
    while let Some(found) = scan.next_record()? {
        if counted.is_multiple_of(MARK_EVERY) {
            lock(&segments.marks).insert(found.offset, (base, found.start));
        }
        counted += 1;
        let damage = scan.damage();
        let first = found.offset.saturating_sub(u64::from(found.index));
        match write.as_mut().filter(|w| !w.ended && w.first == first) {
            Some(w) => {
                w.whole = w.whole
                    && w.offset.checked_add(1) == Some(found.offset)
                    && w.index.checked_add(1) == Some(found.index)
                    && damage == w.damage;
                (w.offset, w.index, w.damage) = (found.offset, found.index, damage);
            }
            None => {
                write = Some(LastWrite {
                    first,
                    start: read_end,
                    next_before: *next,
                    whole: found.index == 0,
                    offset: found.offset,
                    index: found.index,
                    damage,
                    ended: false,
                    end: 0,
                });
            }
        }
        *next = (*next).max(found.offset.saturating_add(1));
        read_end = scan.pos();
        if let Some(w) = write.as_mut().filter(|_| found.end_of_group) {
            (w.ended, w.end) = (true, scan.pos());
        }
    }
    if !last {
        if scan.torn {
            tracing::error!(segment = %path.display(), position = scan.pos(), "Damaged end of a bus log segment; no record follows it");
        }
        if scan.zero_tail {
            // Its room, left by a stop before the segment was closed (or
            // records a disk lost): said, as the records read tell.
            tracing::warn!(segment = %path.display(), position = scan.pos(), next_offset = *next, "A closed bus log segment ends in zeros; cut off at its last record");
        }
        return Ok(drop_zero_tail(&scan, file, path, scan.pos()));
    }
    // Cut: the last write when it is not whole (from the end of the record
    // before it: an earlier write is kept, damaged or not), else whatever
    // follows it.
    let (cut, next_before) = match &write {
        Some(w) if w.whole && w.ended => {
            if scan.pos() == w.end && scan.damage() == w.damage {
                return Ok(drop_zero_tail(&scan, file, path, w.end));
            }
            (w.end, *next)
        }
        Some(w) => (w.start, w.next_before),
        None if scan.damage() == 0 => return Ok(drop_zero_tail(&scan, file, path, scan.pos())),
        None => (0, *next),
    };
    // A torn write and bit rot in the last write look alike on disk: the
    // cut bytes are kept beside the segment, for recovery by hand.
    let aside = path.with_extension("cut");
    let mut cut_bytes = Vec::new();
    let mut from = file.try_clone()?;
    from.seek(SeekFrom::Start(cut))?;
    from.read_to_end(&mut cut_bytes)?;
    // Without the zeros at their end (the zero-filled room after them).
    let kept_len = cut_bytes.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
    cut_bytes.truncate(kept_len);
    if !cut_bytes.is_empty() {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&aside)
            .and_then(|mut f| std::io::Write::write_all(&mut f, &cut_bytes))
            .map_err(|e| context("cannot keep the cut bytes in", &aside, e))?;
    }
    tracing::error!(segment = %path.display(), kept = cut, dropped = cut_bytes.len(), aside = %aside.display(), "Cut an unfinished or damaged last write off the bus log's end (its bytes are kept aside)");
    file.set_len(cut)
        .and_then(|()| file.sync_all())
        .map_err(|e| context("cannot repair", path, e))?;
    *next = next_before;
    lock(&segments.marks).retain(|_, &mut (b, p)| b != base || p < cut);
    Ok(cut)
}

/// Cuts a segment's zero-filled room off at `end` and returns `end`. Only
/// zeros are cut, so a failure is no harm: said, and the room stays.
fn drop_zero_tail(scan: &Scan, file: &File, path: &Path, end: u64) -> u64 {
    if scan.zero_tail {
        if let Err(e) = file.set_len(end).and_then(|()| file.sync_all()) {
            tracing::warn!(segment = %path.display(), error = %e, "Cannot cut the zero-filled room off a bus log segment");
        }
    }
    end
}

/// The last write met while scanning a segment at open.
struct LastWrite {
    /// The offset its first record has (or had).
    first: u64,
    /// Where the record before its first surviving one ends (the bytes
    /// between are its lost part), and `next` before it.
    start: u64,
    next_before: u64,
    /// Read from its first record on, each following the one before, with
    /// no damage between.
    whole: bool,
    /// Its last record read so far, and the damage met by then.
    offset: u64,
    index: u32,
    damage: u32,
    /// Its end-marked last record was read, ending at `end`.
    ended: bool,
    end: u64,
}
