//! What the store engine cuts from its journals at open is kept. After a
//! stop that was not clean, fjall reads each journal back to the first
//! entry it cannot read and cuts the rest: a write a crash cut short
//! (never acknowledged), but also, if the disk damaged a journal in the
//! middle, acknowledged writes after the damage, and it says so only in
//! its debug log. So before such an open the journals are copied to
//! `repair/{time}/`; after it, a journal that lost bytes holding data is
//! logged as an error with the copy kept (a cut of one torn write and a
//! cut at damage look alike from outside), and copies of journals that
//! lost nothing are deleted.

use std::io::Read;
use std::path::{Path, PathBuf};

use fjall::SingleWriterTxDatabase;

use crate::sync::sync_dir;

/// Opens the store's database in `folder`, keeping what it cuts from its
/// journals after a stop that was not clean.
pub(super) fn open(
    folder: &Path,
    cache_bytes: u64,
    threads: usize,
) -> Result<SingleWriterTxDatabase, fjall::Error> {
    let copies = if folder.exists() {
        before_open(folder).unwrap_or_else(|e| {
            tracing::warn!(error = %e, folder = %folder.display(), "Cannot copy the store's journals before reading them back; what the store cuts from them is not kept");
            None
        })
    } else {
        None
    };
    let opened = super::tables::open_db(folder, cache_bytes, threads);
    if let Some(copies) = copies {
        match &opened {
            // Another engine took it in between: it read the journals, not us.
            Err(fjall::Error::Locked) => discard(copies),
            // Read back, or failing part-way (fjall cuts a journal as it
            // reads it, before a later one fails): what was cut is kept.
            _ => after_open(copies),
        }
    }
    opened
}

/// Written at a clean close, removed at open.
const CLOSED: &str = "closed";
/// The store engine's lock file in the folder.
const LOCK: &str = "lock";
/// Runs of copies kept at most (the oldest go first).
const KEEP_RUNS: usize = 5;

/// Journals copied before an open after a stop that was not clean.
struct Copies {
    folder: PathBuf,
    /// (journal, an open handle on it, its copy, where its data ended)
    journals: Vec<(PathBuf, std::fs::File, PathBuf, u64)>,
}

/// Before the store in `folder` is opened: copies its journals unless it
/// was closed cleanly, or is held by a running engine (then nothing is
/// touched and the open is refused).
fn before_open(folder: &Path) -> std::io::Result<Option<Copies>> {
    let lock = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(folder.join(LOCK))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
        Err(std::fs::TryLockError::Error(e)) => return Err(e),
    }
    let closed = folder.join(CLOSED);
    if closed.exists() {
        std::fs::remove_file(&closed)?;
        sync_dir(folder)?;
        return Ok(None);
    }
    let journals = journals_in(folder)?;
    if journals.is_empty() {
        return Ok(None);
    }
    prune(&folder.join("repair"));
    let into = folder
        .join("repair")
        .join(crate::clock::now_ms().to_string());
    std::fs::create_dir_all(&into)?;
    copy_all(journals, &into).inspect_err(|_| {
        let _ = std::fs::remove_dir_all(&into);
    })
}

/// Copies each journal's data (not the room made for it) into `into`.
fn copy_all(journals: Vec<PathBuf>, into: &Path) -> std::io::Result<Option<Copies>> {
    let mut copies = Vec::new();
    for (i, journal) in journals.into_iter().enumerate() {
        let name = journal
            .file_name()
            .map_or_else(Default::default, |n| n.to_string_lossy().into_owned());
        let copy = into.join(format!("{i}-{name}"));
        let end = data_end(&journal)?;
        let mut source = std::fs::File::open(&journal)?;
        let mut out = std::fs::File::create(&copy)?;
        std::io::copy(&mut (&mut source).take(end), &mut out)?;
        out.sync_all()?;
        copies.push((journal, source, copy, end));
    }
    Ok(Some(Copies {
        folder: into.to_path_buf(),
        journals: copies,
    }))
}

/// Keeps the newest runs of copies under `repair` (fewer than
/// [`KEEP_RUNS`], so the one about to be made fits).
fn prune(repair: &Path) {
    let Ok(entries) = std::fs::read_dir(repair) else {
        return;
    };
    let mut runs: Vec<(u64, PathBuf)> = entries
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path())))
        .collect();
    runs.sort();
    let over = runs.len().saturating_sub(KEEP_RUNS - 1);
    for (_, run) in runs.into_iter().take(over) {
        if let Err(e) = std::fs::remove_dir_all(&run) {
            tracing::warn!(error = %e, run = %run.display(), "Cannot delete old journal copies");
        }
    }
}

/// After the open: keeps and logs what was cut, deletes the rest.
fn after_open(copies: Copies) {
    let mut kept = 0;
    for (journal, handle, copy, end) in &copies.journals {
        // Through the handle: a journal the store deleted once its writes
        // were in table files still tells its length.
        let now = handle.metadata().map_or(u64::MAX, |m| m.len());
        if now < *end {
            kept += 1;
            tracing::error!(
                journal = %journal.display(),
                cut_bytes = end - now,
                kept = %copy.display(),
                "The store cut its journal at open: a write a crash cut short, or damage (then writes after it were lost); the journal as it was is kept"
            );
        } else if let Err(e) = std::fs::remove_file(copy) {
            tracing::warn!(error = %e, copy = %copy.display(), "Cannot delete a journal copy");
        }
    }
    if kept == 0 {
        discard(copies);
    }
}

/// The copies go (the open did not read the journals, or cut nothing).
fn discard(copies: Copies) {
    let _ = std::fs::remove_dir_all(&copies.folder);
    if let Some(parent) = copies.folder.parent() {
        let _ = std::fs::remove_dir(parent);
    }
}

/// At a clean close, once everything is synced (the store engine still
/// holds its lock).
pub(super) fn closed_cleanly(folder: &Path) -> std::io::Result<()> {
    std::fs::File::create(folder.join(CLOSED))?.sync_all()?;
    sync_dir(folder)
}

/// The journal files under `folder`, copies aside.
fn journals_in(folder: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut folders = vec![folder.to_path_buf()];
    while let Some(f) = folders.pop() {
        for entry in std::fs::read_dir(&f)? {
            let path = entry?.path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "repair") {
                    folders.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "jnl") {
                out.push(path);
            }
        }
    }
    Ok(out)
}

/// Where the data of a journal ends: past its last byte that is not zero
/// (a journal is made longer than its data and filled as it goes).
fn data_end(path: &Path) -> std::io::Result<u64> {
    let mut file = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    let (mut at, mut end) = (0u64, 0u64);
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(end);
        }
        if let Some(last) = buf[..n].iter().rposition(|&b| b != 0) {
            end = at + last as u64 + 1;
        }
        at += n as u64;
    }
}
