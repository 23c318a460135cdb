//! Group commit for the embedded store: one writer thread takes every
//! write that is waiting, applies them in one transaction (each write sees
//! the ones before it) and commits once, then syncs the journal once if
//! any of them asked for it; concurrent writers share one fsync, so
//! durability does not cap throughput at the disk's fsync rate.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use fjall::{PersistMode, SingleWriterTxDatabase, SingleWriterWriteTx};
use tokio::sync::oneshot;

use super::tables::Tables;
use crate::sync::WriterThread;

/// Most writes folded into one transaction.
const MAX_GROUP: usize = 4096;
/// Writes waiting for the writer at most; a full queue pushes back on callers.
const QUEUE: usize = 65_536;

/// A failed group write. Storage failures are worth retrying (the caller
/// sees a 5xx or its actor restarts).
#[derive(Debug, Clone, thiserror::Error)]
pub enum GroupCommitError {
    #[error("storage failure: {0}")]
    Storage(String),
    #[error("the writer has stopped")]
    Stopped,
}

/// The transaction of one group, with the tables to write in.
pub struct Tx<'a> {
    pub tx: SingleWriterWriteTx<'a>,
    pub t: &'a Tables,
}

type Apply<T> = Box<dyn FnOnce(&mut Tx<'_>) -> Result<T, fjall::Error> + Send>;

trait GroupOp: Send {
    fn durable(&self) -> bool;
    fn apply(&mut self, tx: &mut Tx<'_>) -> Result<(), fjall::Error>;
    fn complete(self: Box<Self>, committed: Result<(), GroupCommitError>);
}

struct Op<T> {
    durable: bool,
    apply: Option<Apply<T>>,
    value: Option<T>,
    reply: oneshot::Sender<Result<T, GroupCommitError>>,
}

impl<T: Send + 'static> GroupOp for Op<T> {
    fn durable(&self) -> bool {
        self.durable
    }
    fn apply(&mut self, tx: &mut Tx<'_>) -> Result<(), fjall::Error> {
        if let Some(f) = self.apply.take() {
            self.value = Some(f(tx)?);
        }
        Ok(())
    }
    fn complete(self: Box<Self>, committed: Result<(), GroupCommitError>) {
        let Op { value, reply, .. } = *self;
        let result = match (committed, value) {
            (Ok(()), Some(v)) => Ok(v),
            (Ok(()), None) => Err(GroupCommitError::Storage("write was not applied".into())),
            (Err(e), _) => Err(e),
        };
        let _ = reply.send(result);
    }
}

/// Handle to the writer thread of one database. Dropping it stops the
/// thread once the writes queued are done and waits for it.
pub struct GroupCommit {
    thread: Option<WriterThread<Box<dyn GroupOp>>>,
    /// Set once a commit could not be written to the journal: the database
    /// takes no more writes until it is opened again.
    broken: Arc<AtomicBool>,
}

impl GroupCommit {
    /// Starts the writer thread for `db`.
    pub fn start(db: SingleWriterTxDatabase, tables: Arc<Tables>) -> std::io::Result<Self> {
        let broken = Arc::new(AtomicBool::new(false));
        let flag = broken.clone();
        let thread = WriterThread::start("store", QUEUE, MAX_GROUP, move |batch| {
            commit_batch(&db, &tables, &flag, batch)
        })?;
        Ok(Self {
            thread: Some(thread),
            broken,
        })
    }

    /// Whether a commit failed to reach the journal (the store then
    /// refuses writes until the engine restarts).
    pub fn broken(&self) -> bool {
        self.broken.load(Ordering::Acquire)
    }

    /// Whether a commit has been running for longer than `bound`.
    pub fn stalled(&self, bound: std::time::Duration) -> bool {
        self.thread.as_ref().is_some_and(|t| t.stalled(bound))
    }

    /// Sets how long after a group started the writer starts the next one
    /// at the earliest (see [`WriterThread`]).
    pub fn set_group_delay(&self, delay: std::time::Duration) {
        if let Some(thread) = self.thread.as_ref() {
            thread.set_group_delay(delay);
        }
    }

    /// Lets the writer finish the writes queued and stops it; later
    /// writes fail with [`GroupCommitError::Stopped`].
    pub fn stop(&mut self) {
        self.thread = None;
    }

    /// Runs `apply` inside the next group transaction and resolves once it
    /// is committed (synced to the disk, if `durable`; otherwise in the
    /// operating system's hands, so a crash of the engine alone keeps it).
    pub async fn write<T: Send + 'static>(
        &self,
        durable: bool,
        apply: impl FnOnce(&mut Tx<'_>) -> Result<T, fjall::Error> + Send + 'static,
    ) -> Result<T, GroupCommitError> {
        let (reply, rx) = oneshot::channel();
        let op: Box<dyn GroupOp> = Box::new(Op {
            durable,
            apply: Some(Box::new(apply)),
            value: None,
            reply,
        });
        let Some(thread) = self.thread.as_ref() else {
            return Err(GroupCommitError::Stopped);
        };
        thread
            .send(op)
            .await
            .map_err(|_| GroupCommitError::Stopped)?;
        rx.await.map_err(|_| GroupCommitError::Stopped)?
    }
}

/// On the writer thread: every write waiting, in one transaction.
fn commit_batch(
    db: &SingleWriterTxDatabase,
    tables: &Tables,
    broken: &AtomicBool,
    batch: &mut Vec<Box<dyn GroupOp>>,
) {
    let result = commit_group(db, tables, batch).map_err(|e| {
        if matches!(e, fjall::Error::Poisoned | fjall::Error::Io(_)) {
            broken.store(true, Ordering::Release);
        }
        tracing::error!(error = %e, writes = batch.len(), "Group commit failed");
        GroupCommitError::Storage(e.to_string())
    });
    for op in batch.drain(..) {
        op.complete(result.clone());
    }
}

fn commit_group(
    db: &SingleWriterTxDatabase,
    t: &Tables,
    batch: &mut [Box<dyn GroupOp>],
) -> Result<(), fjall::Error> {
    let durable = batch.iter().any(|op| op.durable());
    // The journal's buffer is handed to the operating system with every
    // commit (fjall's default for a transaction).
    let mut tx = Tx {
        tx: db.write_tx(),
        t,
    };
    for op in batch.iter_mut() {
        op.apply(&mut tx)?;
    }
    tx.tx.commit()?;
    if durable {
        // Also when this group wrote nothing: a sync asked for covers the
        // groups before it.
        db.persist(PersistMode::SyncData)?;
    }
    Ok(())
}
