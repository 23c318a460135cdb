//! Reading a segment: its records one after another, from a byte position
//! up to a limit (the synced length of the segment being written; a
//! closed segment's whole length). Bytes that are not a whole record with
//! its CRC are damage: reading goes on at the next record that checks out
//! (with an error logged), or ends there when none follows (the end of a
//! write a crash cut short).

use std::fs::File;
use std::io::{BufReader, ErrorKind, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::{crc, HEADER, MAX_RECORD};

enum Next {
    Record(u64, Vec<u8>),
    End,
    Damaged,
}

/// The header at the start of `b`: (payload length, CRC, offset).
fn header(b: &[u8]) -> Option<(usize, u32, u64)> {
    let len = u32::from_le_bytes(b.get(0..4)?.try_into().ok()?) as usize;
    let sum = u32::from_le_bytes(b.get(4..8)?.try_into().ok()?);
    let offset = u64::from_le_bytes(b.get(8..16)?.try_into().ok()?);
    Some((len, sum, offset))
}

/// Reads one record with at most `remaining` bytes left before the limit.
fn read_record(reader: &mut impl Read, remaining: u64) -> std::io::Result<Next> {
    if remaining == 0 {
        return Ok(Next::End);
    }
    let mut head = [0u8; HEADER];
    match reader.read_exact(&mut head) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(Next::Damaged),
        Err(e) => return Err(e),
    }
    let Some((len, sum, offset)) = header(&head) else {
        return Ok(Next::Damaged);
    };
    if len > MAX_RECORD || (HEADER + len) as u64 > remaining {
        return Ok(Next::Damaged);
    }
    let mut payload = vec![0u8; len];
    match reader.read_exact(&mut payload) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(Next::Damaged),
        Err(e) => return Err(e),
    }
    if crc(offset, &payload) != sum {
        return Ok(Next::Damaged);
    }
    Ok(Next::Record(offset, payload))
}

/// Whether a whole record that checks out starts at `b[0]`, with an offset
/// past `after` (and not absurdly far past it).
fn record_at(b: &[u8], after: Option<u64>) -> bool {
    let Some((len, sum, offset)) = header(b) else {
        return false;
    };
    let plausible = after.is_none_or(|a| offset > a && offset - a <= 1 << 32);
    plausible
        && len <= MAX_RECORD
        && b.len() >= HEADER + len
        && crc(offset, &b[HEADER..HEADER + len]) == sum
}

/// The position of the first whole record after damage at `at` (below
/// `limit`), if any.
fn find_next(path: &Path, at: u64, limit: u64, after: Option<u64>) -> std::io::Result<Option<u64>> {
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(at + 1))?;
    let mut rest = Vec::new();
    file.take(limit.saturating_sub(at + 1))
        .read_to_end(&mut rest)?;
    Ok((0..rest.len())
        .find(|&p| record_at(&rest[p..], after))
        .map(|p| at + 1 + p as u64))
}

/// A segment being read.
pub(super) struct Scan {
    path: PathBuf,
    reader: BufReader<File>,
    pos: u64,
    limit: u64,
    last: Option<u64>,
    /// Reading ended at bytes that are not a record, with none after them.
    pub(super) torn: bool,
}

impl Scan {
    /// Reads `file` (at `path`) from `pos` up to `limit` bytes.
    pub(super) fn new(file: File, path: &Path, pos: u64, limit: u64) -> std::io::Result<Self> {
        let mut reader = BufReader::with_capacity(256 << 10, file);
        reader.seek(SeekFrom::Start(pos))?;
        Ok(Self {
            path: path.to_path_buf(),
            reader,
            pos,
            limit,
            last: None,
            torn: false,
        })
    }

    /// Where the next record starts (after the last one read).
    pub(super) fn pos(&self) -> u64 {
        self.pos
    }

    /// The next record, or `None` at the limit (or at a torn end).
    pub(super) fn next_record(&mut self) -> std::io::Result<Option<(u64, Vec<u8>)>> {
        loop {
            let remaining = self.limit.saturating_sub(self.pos);
            match read_record(&mut self.reader, remaining)? {
                Next::Record(offset, payload) => {
                    self.pos += (HEADER + payload.len()) as u64;
                    self.last = Some(offset);
                    return Ok(Some((offset, payload)));
                }
                Next::End => return Ok(None),
                Next::Damaged => {
                    let at = self.pos;
                    match find_next(&self.path, at, self.limit, self.last)? {
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
