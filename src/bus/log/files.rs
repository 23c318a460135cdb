//! The log folder's files at open: the resume offset's file and the
//! segments' names.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::{context, CHECK, MAX_BASE};

/// The resume offset's file, locked against a second engine, and the
/// offset it keeps (0 when it is new or unreadable).
pub(super) fn open_committed(dir: &Path) -> std::io::Result<(File, u64)> {
    let committed_path = dir.join("committed");
    let committed_file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&committed_path)
        .map_err(|e| context("cannot open", &committed_path, e))?;
    committed_file.try_lock().map_err(|e| match e {
        std::fs::TryLockError::WouldBlock => std::io::Error::new(
            ErrorKind::WouldBlock,
            format!(
                "the bus log in {} is in use by another engine",
                dir.display()
            ),
        ),
        std::fs::TryLockError::Error(e) => context("cannot lock", &committed_path, e),
    })?;
    let committed = {
        let mut b = [0u8; 16];
        match committed_file.read_exact_at(&mut b, 0) {
            Ok(()) => {
                let value = u64::from_le_bytes(b[..8].try_into().unwrap_or_default());
                let check = u64::from_le_bytes(b[8..].try_into().unwrap_or_default());
                if value ^ CHECK == check {
                    value
                } else {
                    tracing::warn!(dir = %dir.display(), "The bus log's resume offset is unreadable; replaying the whole log");
                    0
                }
            }
            Err(_) => 0,
        }
    };
    Ok((committed_file, committed))
}

/// The first offsets of the segments in `dir`.
pub(super) fn segment_bases(dir: &Path) -> std::io::Result<BTreeSet<u64>> {
    let mut bases = BTreeSet::new();
    for entry in std::fs::read_dir(dir).map_err(|e| context("cannot list", dir, e))? {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        if let Some(base) = name
            .strip_suffix(".log")
            .and_then(|s| s.parse::<u64>().ok())
            .filter(|b| *b < MAX_BASE)
        {
            bases.insert(base);
        }
    }
    Ok(bases)
}
