//! A `store.redb` of an earlier release moved into the store at open:
//! every table copied (ids remembered in the oldest layout, one row per
//! conversation and id, join the others in expiry order), synced, then
//! the file deleted. A copy cut short by a stop is done again whole at
//! the next start (the file is still there, and writing the same rows
//! again changes nothing); the engine writes nothing before it is over.

use std::path::Path;

use fjall::{PersistMode, SingleWriterTxDatabase, SingleWriterTxKeyspace};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use super::keys::{self, Key};
use super::tables::{sums_bytes, Tables};
use crate::store::StoreError;

const FILE: &str = "store.redb";

const CONVERSATIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("conversations");
const MESSAGES: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("messages");
const DEDUP: TableDefinition<(&str, &str), u64> = TableDefinition::new("dedup");
const REMEMBERED: TableDefinition<(&str, u64, &str), ()> = TableDefinition::new("remembered_ids");
const TIMERS: TableDefinition<&str, u64> = TableDefinition::new("timers");
const DEAD_LETTERS: TableDefinition<u64, &[u8]> = TableDefinition::new("dead_letters");
const TAKEOVERS: TableDefinition<&str, u64> = TableDefinition::new("takeovers");
const QUARANTINE: TableDefinition<&str, &[u8]> = TableDefinition::new("quarantine");
const ANALYTICS: TableDefinition<(&str, u32), [u64; 4]> = TableDefinition::new("analytics");
const DOCUMENTS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("documents");
const TENANT_KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("tenant_keys");
const REVISION: TableDefinition<&str, u64> = TableDefinition::new("revisions");
const CONTROL: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("control");

/// Rows per transaction while copying.
const CHUNK: usize = 20_000;

/// Moves `dir/store.redb` into `db` if it is there.
pub(super) fn from_redb(
    dir: &Path,
    db: &SingleWriterTxDatabase,
    t: &Tables,
) -> Result<(), StoreError> {
    let path = dir.join(FILE);
    if !path.exists() {
        return Ok(());
    }
    let old = redb::Database::open(&path).map_err(|e| {
        StoreError::Unavailable(format!(
            "cannot open {} to move it into the store: {e}",
            path.display()
        ))
    })?;
    let mut copy = Copy {
        db,
        rows: Vec::new(),
        total: 0,
    };
    copy_all(&old, t, &mut copy).map_err(|e| {
        StoreError::Unavailable(format!(
            "cannot move {} into the store: {e}",
            path.display()
        ))
    })?;
    copy.flush()?;
    db.persist(PersistMode::SyncAll)?;
    drop(old);
    std::fs::remove_file(&path)
        .and_then(|()| crate::sync::sync_dir(dir))
        .map_err(|e| {
            StoreError::Unavailable(format!(
                "moved {} into the store but cannot delete it: {e}",
                path.display()
            ))
        })?;
    tracing::info!(rows = copy.total, file = %path.display(), "Moved the store file of an earlier release into the store");
    Ok(())
}

/// Rows waiting for the next transaction of the copy.
struct Copy<'a> {
    db: &'a SingleWriterTxDatabase,
    rows: Vec<(SingleWriterTxKeyspace, Vec<u8>, Vec<u8>)>,
    total: u64,
}

impl Copy<'_> {
    fn put(
        &mut self,
        table: &SingleWriterTxKeyspace,
        key: Vec<u8>,
        value: Vec<u8>,
    ) -> Result<(), StoreError> {
        if key.len() > keys::MAX_KEY {
            // An id no release could use again (refused since): left out.
            tracing::warn!(
                bytes = key.len(),
                "A row of the earlier store file has a key too long to keep; left out"
            );
            return Ok(());
        }
        self.rows.push((table.clone(), key, value));
        if self.rows.len() >= CHUNK {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        let mut tx = self.db.write_tx();
        for (table, key, value) in self.rows.drain(..) {
            tx.insert(&table, key, value);
            self.total += 1;
        }
        tx.commit()?;
        Ok(())
    }
}

/// The table `def` of `old`, or nothing when that file never had it.
fn table<K: redb::Key + 'static, V: redb::Value + 'static>(
    old: &redb::ReadTransaction,
    def: TableDefinition<K, V>,
) -> Result<Option<redb::ReadOnlyTable<K, V>>, redb::Error> {
    match old.open_table(def) {
        Ok(t) => Ok(Some(t)),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn copy_all(old: &redb::Database, t: &Tables, copy: &mut Copy<'_>) -> Result<(), Failure> {
    let txn = old.begin_read()?;
    let n = |v: u64| v.to_be_bytes().to_vec();
    let mut by_id = |def: TableDefinition<&str, &[u8]>, to: &SingleWriterTxKeyspace| {
        if let Some(table) = table(&txn, def)? {
            for row in table.iter()? {
                let (k, v) = row?;
                copy.put(to, keys::of(k.value()), v.value().to_vec())?;
            }
        }
        Ok::<(), Failure>(())
    };
    by_id(CONVERSATIONS, &t.conversations)?;
    by_id(QUARANTINE, &t.quarantine)?;
    by_id(TENANT_KEYS, &t.tenant_keys)?;
    for (def, to) in [
        (TIMERS, &t.timers),
        (TAKEOVERS, &t.takeovers),
        (REVISION, &t.revisions),
    ] {
        if let Some(table) = table(&txn, def)? {
            for row in table.iter()? {
                let (k, v) = row?;
                copy.put(to, keys::of(k.value()), n(v.value()))?;
            }
        }
    }
    if let Some(table) = table(&txn, MESSAGES)? {
        for row in table.iter()? {
            let (k, v) = row?;
            let (id, seq) = k.value();
            let key = Key::new().str(id).u64(seq).done();
            copy.put(&t.messages, key, v.value().to_vec())?;
        }
    }
    if let Some(table) = table(&txn, REMEMBERED)? {
        for row in table.iter()? {
            let (k, _) = row?;
            let (id, expires, mid) = k.value();
            let key = Key::new().str(id).u64(expires).str(mid).done();
            copy.put(&t.remembered, key, Vec::new())?;
        }
    }
    if let Some(table) = table(&txn, DEDUP)? {
        for row in table.iter()? {
            let (k, v) = row?;
            let (id, mid) = k.value();
            let key = Key::new().str(id).u64(v.value()).str(mid).done();
            copy.put(&t.remembered, key, Vec::new())?;
        }
    }
    if let Some(table) = table(&txn, DEAD_LETTERS)? {
        for row in table.iter()? {
            let (k, v) = row?;
            copy.put(&t.dead_letters, n(k.value()), v.value().to_vec())?;
        }
    }
    if let Some(table) = table(&txn, ANALYTICS)? {
        for row in table.iter()? {
            let (k, v) = row?;
            let (integration, day) = k.value();
            let key = Key::new().str(integration).u32(day).done();
            copy.put(&t.analytics, key, sums_bytes(v.value()))?;
        }
    }
    for (def, to) in [(DOCUMENTS, &t.documents), (CONTROL, &t.control)] {
        if let Some(table) = table(&txn, def)? {
            for row in table.iter()? {
                let (k, v) = row?;
                let (a, b) = k.value();
                copy.put(to, Key::new().str(a).str(b).done(), v.value().to_vec())?;
            }
        }
    }
    Ok(())
}

/// A failure while copying: reading the old file or writing the store.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("{0}")]
    Read(#[from] redb::Error),
    #[error("{0}")]
    Write(#[from] StoreError),
}

macro_rules! read_failure {
    ($($t:ty),*) => {$(
        impl From<$t> for Failure {
            fn from(e: $t) -> Self {
                Self::Read(e.into())
            }
        }
    )*};
}
read_failure!(redb::TransactionError, redb::StorageError, redb::TableError);
