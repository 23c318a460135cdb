//! `switchboard compact`: gives the space freed inside the embedded files
//! (deleted lines, expired records) back to the file system. The files are
//! locked by a running engine, so it runs while the engine is stopped.

use std::path::{Path, PathBuf};

use crate::store::StoreError;

/// One file compacted: its path and its size before and after, in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compacted {
    pub path: PathBuf,
    pub before: u64,
    pub after: u64,
}

/// Compacts `store.redb` under `dir` (if it exists). The bus log needs
/// none: its consumed segments are deleted as they go.
pub fn compact_dir(dir: &Path) -> Result<Vec<Compacted>, StoreError> {
    let path = dir.join("store.redb");
    if !path.exists() {
        return Ok(Vec::new());
    }
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let before = size(&path);
    let mut db = redb::Database::open(&path).map_err(|e| {
        StoreError::Unavailable(format!(
            "cannot open {} (is the engine still running?): {e}",
            path.display()
        ))
    })?;
    // Each pass moves pages towards the start; it is over when a pass
    // finds nothing more to move.
    while db
        .compact()
        .map_err(|e| StoreError::Unavailable(format!("{}: {e}", path.display())))?
    {}
    drop(db);
    let after = size(&path);
    Ok(vec![Compacted {
        path,
        before,
        after,
    }])
}
