//! Group commit for a redb database: one writer thread takes every write
//! that is waiting, applies them in one transaction and commits once, so
//! concurrent writers share one fsync and durability does not cap
//! throughput at the disk's fsync rate.

use std::sync::Arc;

use redb::{Database, Durability, WriteTransaction};
use tokio::sync::oneshot;

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

type Apply<T> = Box<dyn FnOnce(&WriteTransaction) -> Result<T, redb::Error> + Send>;

trait GroupOp: Send {
    fn durable(&self) -> bool;
    fn apply(&mut self, txn: &WriteTransaction) -> Result<(), redb::Error>;
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
    fn apply(&mut self, txn: &WriteTransaction) -> Result<(), redb::Error> {
        if let Some(f) = self.apply.take() {
            self.value = Some(f(txn)?);
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

/// Handle to the writer thread of one database.
#[derive(Clone)]
pub struct GroupCommit {
    inner: Arc<Writer>,
}

/// A commit running longer than this makes the writer's database not ready.
pub const STALL_AFTER: std::time::Duration = std::time::Duration::from_secs(5);

/// The writer thread; dropping the last handle stops it and waits for it,
/// so the database file is closed (and can be opened again) once the
/// owner is gone.
struct Writer {
    thread: WriterThread<Box<dyn GroupOp>>,
    db: Arc<Database>,
}

impl GroupCommit {
    /// Starts the writer thread for `db`.
    pub fn start(db: Arc<Database>, name: &str) -> std::io::Result<Self> {
        let writer_db = db.clone();
        let thread =
            WriterThread::start(&format!("{name}-writer"), QUEUE, MAX_GROUP, move |batch| {
                commit_batch(&writer_db, batch)
            })?;
        Ok(Self {
            inner: Arc::new(Writer { thread, db }),
        })
    }

    /// Whether a commit has been running for longer than `bound`.
    pub fn stalled(&self, bound: std::time::Duration) -> bool {
        self.inner.thread.stalled(bound)
    }

    pub fn db(&self) -> &Database {
        &self.inner.db
    }

    /// Runs `apply` inside the next group transaction and resolves once it
    /// is committed (durably, if `durable`).
    pub async fn write<T: Send + 'static>(
        &self,
        durable: bool,
        apply: impl FnOnce(&WriteTransaction) -> Result<T, redb::Error> + Send + 'static,
    ) -> Result<T, GroupCommitError> {
        let (reply, rx) = oneshot::channel();
        let op: Box<dyn GroupOp> = Box::new(Op {
            durable,
            apply: Some(Box::new(apply)),
            value: None,
            reply,
        });
        self.inner
            .thread
            .send(op)
            .await
            .map_err(|_| GroupCommitError::Stopped)?;
        rx.await.map_err(|_| GroupCommitError::Stopped)?
    }
}

/// On the writer thread: every write waiting, in one transaction.
fn commit_batch(db: &Database, batch: &mut Vec<Box<dyn GroupOp>>) {
    let result = commit_group(db, batch).map_err(|e| {
        tracing::error!(error = %e, writes = batch.len(), "Group commit failed");
        GroupCommitError::Storage(e.to_string())
    });
    for op in batch.drain(..) {
        op.complete(result.clone());
    }
}

fn commit_group(db: &Database, batch: &mut [Box<dyn GroupOp>]) -> Result<(), redb::Error> {
    let durable = batch.iter().any(|op| op.durable());
    let mut txn = db.begin_write()?;
    if !durable {
        txn.set_durability(Durability::None)?;
    }
    for op in batch.iter_mut() {
        op.apply(&txn)?;
    }
    txn.commit()?;
    Ok(())
}
