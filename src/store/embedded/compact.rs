//! `switchboard compact`: gives the space freed inside the embedded store
//! (deleted lines, expired records) back to the file system at once,
//! rather than as its background compactions get to it. The store is
//! locked by a running engine, so it runs while the engine is stopped.

use std::path::{Path, PathBuf};

use super::tables::Tables;
use super::FOLDER;
use crate::store::StoreError;

/// One store compacted: its folder and the bytes its table files took on
/// the disk before and after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compacted {
    pub path: PathBuf,
    pub before: u64,
    pub after: u64,
}

/// Compacts the store under `dir` (if there is one): every table's
/// memory buffer is written out, then its files are merged into one
/// sorted run without the deleted rows. The bus log needs none: its
/// consumed segments are deleted as they go.
pub fn compact_dir(dir: &Path) -> Result<Vec<Compacted>, StoreError> {
    let path = dir.join(FOLDER);
    if !path.exists() {
        return Ok(Vec::new());
    }
    let failed = |e: fjall::Error| StoreError::Unavailable(format!("{}: {e}", path.display()));
    let before = folder_bytes(&path);
    let db = super::repair::open(&path, 8 << 20, 0).map_err(|e| {
        let hint = if matches!(e, fjall::Error::Locked) {
            " (is the engine still running?)"
        } else {
            ""
        };
        StoreError::Unavailable(format!("cannot open {}{hint}: {e}", path.display()))
    })?;
    let tables = Tables::open(&db, super::tables::memtable_bytes(8 << 20)).map_err(failed)?;
    for table in tables.all() {
        table.inner().rotate_memtable_and_wait().map_err(failed)?;
        table.inner().major_compact().map_err(failed)?;
    }
    db.persist(fjall::PersistMode::SyncAll).map_err(failed)?;
    // While the store is still held: no engine can open it in between.
    super::repair::closed_cleanly(&path)
        .map_err(|e| StoreError::Unavailable(format!("{}: {e}", path.display())))?;
    drop(tables);
    drop(db);
    let after = folder_bytes(&path);
    Ok(vec![Compacted {
        path,
        before,
        after,
    }])
}

/// Bytes the table files under `path` take on the disk. The journals are
/// left out: compaction does not shorten them (they are bounded, and each
/// is deleted once all of its writes are in table files).
fn folder_bytes(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() && e.file_name() == "repair" => 0,
            Ok(m) if m.is_dir() => folder_bytes(&e.path()),
            Ok(_) if e.path().extension().is_some_and(|x| x == "jnl") => 0,
            Ok(m) => on_disk(&m),
            Err(_) => 0,
        })
        .sum()
}

#[cfg(unix)]
fn on_disk(m: &std::fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    m.blocks() * 512
}

#[cfg(not(unix))]
fn on_disk(m: &std::fs::Metadata) -> u64 {
    m.len()
}
