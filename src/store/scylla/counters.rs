//! The scylla store's analytics counters, off the per-event path: each
//! turn's counts are added up in memory per (integration, day) and written
//! once a second as one counter batch. Counter updates are not idempotent,
//! so they are never retried; a crash loses at most the last second's
//! counts (the turns themselves are safe in their batch). Reads add the
//! counts not yet written, so a caller sees its own turns.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::TryStreamExt;
use scylla::client::session::Session;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;

use super::{corrupt, ms, prepare, unavailable, unsigned, Values};
use crate::store::{DailyCount, StoreError};
use crate::sync::lock;

/// How often the summed counts are written.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

struct Statements {
    add: PreparedStatement,
    select: PreparedStatement,
}

struct Inner {
    session: Arc<Session>,
    keyspace: String,
    timeout: Duration,
    /// Prepared on first use (a keyspace without the table still works
    /// for everything else).
    statements: tokio::sync::OnceCell<Statements>,
    pending: Mutex<HashMap<(String, u32), DailyCount>>,
    /// A flush failed once already (warned once, then at debug).
    failed: AtomicBool,
}

pub struct Counters {
    inner: Arc<Inner>,
    flusher: tokio::task::JoinHandle<()>,
}

impl Drop for Counters {
    fn drop(&mut self) {
        self.flusher.abort();
    }
}

impl Counters {
    /// Starts the once-a-second writer (inside a tokio runtime).
    pub fn start(session: Arc<Session>, keyspace: &str, timeout: Duration) -> Self {
        let inner = Arc::new(Inner {
            session,
            keyspace: keyspace.to_string(),
            timeout,
            statements: tokio::sync::OnceCell::new(),
            pending: Mutex::new(HashMap::new()),
            failed: AtomicBool::new(false),
        });
        let flusher = tokio::spawn(flush_forever(Arc::downgrade(&inner)));
        Self { inner, flusher }
    }

    /// Writes what was added and not written yet (a clean stop does, so
    /// only a crash loses the last second's counts).
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.inner.flush().await
    }

    /// Adds a turn's counts.
    pub fn add(&self, integration: &str, counts: &[DailyCount]) {
        add_to(&self.inner.pending, integration, counts);
    }

    /// The rollups of `integration` from `from_day` on, written and not.
    pub async fn read(
        &self,
        integration: &str,
        from_day: u32,
    ) -> Result<Vec<DailyCount>, StoreError> {
        let st = self.inner.statements().await?;
        let rows = self
            .inner
            .session
            .execute_iter(st.select.clone(), (integration,))
            .await
            .map_err(unavailable)?
            .rows_stream::<(i32, Option<i64>, Option<i64>, Option<i64>, Option<i64>)>()
            .map_err(corrupt)?;
        let rows: Vec<_> = rows.try_collect().await.map_err(unavailable)?;
        let mut by_day: HashMap<u32, DailyCount> = HashMap::new();
        for (day, inbound, outbound, delivered, read) in rows {
            let day = u32::try_from(day).unwrap_or(0);
            let n = |v: Option<i64>| unsigned(v.unwrap_or(0));
            by_day.insert(
                day,
                DailyCount {
                    day,
                    inbound: n(inbound),
                    outbound: n(outbound),
                    delivered: n(delivered),
                    read: n(read),
                },
            );
        }
        for ((id, day), c) in lock(&self.inner.pending).iter() {
            if id == integration {
                by_day
                    .entry(*day)
                    .or_insert_with(|| DailyCount {
                        day: *day,
                        ..DailyCount::default()
                    })
                    .add(c);
            }
        }
        let mut out: Vec<DailyCount> = by_day.into_values().filter(|c| c.day >= from_day).collect();
        out.sort_by_key(|c| c.day);
        Ok(out)
    }
}

impl Inner {
    async fn statements(&self) -> Result<&Statements, StoreError> {
        self.statements
            .get_or_try_init(|| async {
                let ks = &self.keyspace;
                let mut add = prepare(
                    &self.session,
                    format!(
                        "UPDATE {ks}.analytics SET inbound = inbound + ?, outbound = outbound + ?, \
                         delivered = delivered + ?, reads = reads + ? WHERE integration = ? AND day = ?"
                    ),
                    self.timeout,
                )
                .await?;
                add.set_is_idempotent(false);
                let select = prepare(
                    &self.session,
                    format!(
                        "SELECT day, inbound, outbound, delivered, reads FROM {ks}.analytics WHERE integration = ?"
                    ),
                    self.timeout,
                )
                .await?;
                Ok(Statements { add, select })
            })
            .await
    }

    /// Writes what was added since the last flush, as one counter batch.
    async fn flush(&self) -> Result<(), StoreError> {
        let pending = std::mem::take(&mut *lock(&self.pending));
        if pending.is_empty() {
            return Ok(());
        }
        let st = match self.statements().await {
            Ok(st) => st,
            Err(e) => {
                // Certainly not written: kept for the next flush.
                for ((integration, _), c) in pending {
                    add_to(&self.pending, &integration, &[c]);
                }
                return Err(e);
            }
        };
        let mut batch = Batch::new(BatchType::Counter);
        let mut values: Values = Vec::new();
        for ((integration, day), c) in pending {
            batch.append_statement(st.add.clone());
            values.push(Box::new((
                ms(c.inbound),
                ms(c.outbound),
                ms(c.delivered),
                ms(c.read),
                integration,
                i32::try_from(day).unwrap_or(i32::MAX),
            )));
        }
        self.session
            .batch(&batch, values)
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

/// Adds `counts` of `integration` to those waiting to be written.
fn add_to(
    pending: &Mutex<HashMap<(String, u32), DailyCount>>,
    integration: &str,
    counts: &[DailyCount],
) {
    if counts.is_empty() {
        return;
    }
    let mut pending = lock(pending);
    for c in counts {
        pending
            .entry((integration.to_string(), c.day))
            .or_insert_with(|| DailyCount {
                day: c.day,
                ..DailyCount::default()
            })
            .add(c);
    }
}

async fn flush_forever(inner: std::sync::Weak<Inner>) {
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        if let Err(e) = inner.flush().await {
            if inner.failed.swap(true, Ordering::Relaxed) {
                tracing::debug!(error = %e, "Analytics counters not written");
            } else {
                tracing::warn!(error = %e, "Analytics counters not written (logged once)");
            }
        }
    }
}
