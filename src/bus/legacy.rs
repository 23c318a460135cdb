//! Earlier releases kept the embedded bus in a redb file (`bus.redb` under
//! `store.path`). At open, the events it still holds past its resume
//! offset move into the log, synced, and the file is deleted. A crash in
//! between moves them again at the next start: they are delivered twice,
//! which the duplicate window absorbs (as any replay).

use std::path::Path;

use redb::{ReadableDatabase, TableDefinition};

use super::log::Appender;

const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const COMMITTED: &str = "committed";
/// Records moved per write.
const MOVE: usize = 1024;

fn failed(path: &Path, e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(format!(
        "cannot move {} into the bus log: {e}",
        path.display()
    ))
}

/// Moves the unconsumed events of `dir/bus.redb` (if there is one) into
/// the log behind `appender`; returns how many moved.
pub fn move_into(dir: &Path, appender: &mut Appender) -> std::io::Result<u64> {
    let path = dir.join("bus.redb");
    if !path.exists() {
        return Ok(0);
    }
    let moved = {
        let db = redb::Database::open(&path).map_err(|e| failed(&path, e))?;
        let txn = db.begin_read().map_err(|e| failed(&path, e))?;
        let committed = match txn.open_table(META) {
            Ok(meta) => meta
                .get(COMMITTED)
                .map_err(|e| failed(&path, e))?
                .map_or(0, |v| v.value()),
            Err(redb::TableError::TableDoesNotExist(_)) => 0,
            Err(e) => return Err(failed(&path, e)),
        };
        let log = match txn.open_table(LOG) {
            Ok(log) => Some(log),
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(failed(&path, e)),
        };
        let mut moved = 0u64;
        if let Some(log) = log {
            let mut group: Vec<Vec<u8>> = Vec::with_capacity(MOVE);
            for row in log.range(committed..).map_err(|e| failed(&path, e))? {
                let (_, v) = row.map_err(|e| failed(&path, e))?;
                group.push(v.value().to_vec());
                if group.len() == MOVE {
                    moved += flush(appender, &mut group)?;
                }
            }
            moved += flush(appender, &mut group)?;
        }
        moved
    };
    std::fs::remove_file(&path).map_err(|e| failed(&path, e))?;
    // Gone for good, or its events would be moved in again.
    crate::sync::sync_dir(dir).map_err(|e| failed(&path, e))?;
    if moved > 0 {
        tracing::info!(
            events = moved,
            "Moved the unconsumed events of bus.redb into the bus log"
        );
    }
    Ok(moved)
}

fn flush(appender: &mut Appender, group: &mut Vec<Vec<u8>>) -> std::io::Result<u64> {
    let refs: Vec<&[u8]> = group.iter().map(Vec::as_slice).collect();
    appender.append(&refs)?;
    let n = group.len() as u64;
    group.clear();
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bus file of an earlier release: what was consumed stays behind,
    /// the rest is in the log, in order, and the file is gone.
    #[test]
    fn unconsumed_events_of_an_old_bus_file_move_into_the_log() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = redb::Database::create(dir.path().join("bus.redb")).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut log = txn.open_table(LOG).unwrap();
                for i in 0..5u64 {
                    log.insert(i, format!("old {i}").as_bytes()).unwrap();
                }
                txn.open_table(META).unwrap().insert(COMMITTED, 2).unwrap();
            }
            txn.commit().unwrap();
        }
        let mut log = super::super::log::open(&dir.path().join("bus")).unwrap();
        assert_eq!(move_into(dir.path(), &mut log.appender).unwrap(), 3);
        assert!(!dir.path().join("bus.redb").exists());
        let got = log.segments.read(0, 100, 100).unwrap();
        let payloads: Vec<String> = got
            .into_iter()
            .map(|(_, p)| String::from_utf8(p).unwrap())
            .collect();
        assert_eq!(payloads, ["old 2", "old 3", "old 4"]);
        assert_eq!(move_into(dir.path(), &mut log.appender).unwrap(), 0);
    }
}
