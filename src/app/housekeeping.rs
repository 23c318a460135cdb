//! The engine's periodic chores, one tick a second: the message-log
//! retention sweep (old lines, remembered ids past their window), the bus
//! lag and takeover gauges, and the hourly purges (dead letters, audit
//! entries); at start, the integration purges a stop cut short.

use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;

use crate::admin;
use crate::bus::Bus;
use crate::clock::now_ms;
use crate::config::Config;
use crate::integrations::Integrations;
use crate::store::{RetentionStep, Store, StoreError};
use crate::telemetry;

/// Conversations a retention step looks at.
const RETENTION_STEP: usize = 200;

/// Retention steps a second at most (each bounded in rows).
const RETENTION_STEPS_PER_TICK: usize = 10;

/// The chores, and once at start the purges the last stop cut short (in
/// the same task, so stopping the engine stops both).
pub(super) async fn housekeeping(
    bus: Arc<dyn Bus>,
    store: Arc<dyn Store>,
    config: Arc<Config>,
    integrations: Arc<Integrations>,
    takeover_changes: Arc<tokio::sync::Notify>,
) {
    let resume = async {
        // Not those created again since, with the same id.
        let live: Vec<String> = integrations.values().iter().map(|i| i.id.clone()).collect();
        match store.resume_purges(&live).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                conversations = n,
                "Integration purges cut short by the last stop finished"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "Cannot finish the integration purges cut short by the last stop; tried again at the next start")
            }
        }
    };
    let chores = chores(
        bus,
        store.clone(),
        config,
        integrations.clone(),
        takeover_changes,
    );
    tokio::join!(resume, chores);
}

async fn chores(
    bus: Arc<dyn Bus>,
    store: Arc<dyn Store>,
    config: Arc<Config>,
    integrations: Arc<Integrations>,
    takeover_changes: Arc<tokio::sync::Notify>,
) {
    let retention = config.store.retention;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut seconds = 0u64;
    let mut sweep: Option<String> = None;
    let (mut removed, mut forgotten) = (0u64, 0u64);
    // Whether the last sweep step failed (told once, not every second).
    let mut sweep_failing = false;
    loop {
        tick.tick().await;
        // Retention, a small step a second (about 17 million conversations
        // a day), and more while steps stop at their bound of rows (lines
        // pile up faster than one step a second deletes).
        for _ in 0..RETENTION_STEPS_PER_TICK {
            let now = now_ms();
            let cutoff = now.saturating_sub(retention.as_millis() as u64);
            let step = store
                .purge_old_lines(now, cutoff, sweep.as_deref(), RETENTION_STEP)
                .await;
            let full = step.as_ref().is_ok_and(|s| s.full);
            retention_step(
                step,
                &mut sweep,
                &mut sweep_failing,
                &mut removed,
                &mut forgotten,
            );
            if !full {
                break;
            }
        }
        telemetry::bus_lag(bus.lag());
        seconds += 1;
        // Read by integration (an index partition each on ScyllaDB): every
        // 15 s, and within a second of a takeover or resume here.
        // (`notify_one` leaves a permit when nobody waits: taken here
        // without waiting.)
        let changed = takeover_changes.notified().now_or_never().is_some();
        if seconds % 15 == 1 || changed {
            let ids: Vec<String> = integrations.values().iter().map(|i| i.id.clone()).collect();
            match store.takeovers(&ids).await {
                Ok(t) => telemetry::takeovers_active(t.len()),
                Err(e) => tracing::debug!(error = %e, "Cannot count takeovers"),
            }
        }
        if seconds % 3600 == 120 {
            let now = now_ms();
            let age = |d: Duration| now.saturating_sub(d.as_millis() as u64);
            match store
                .purge_dead_letters(age(config.store.dead_letter_retention))
                .await
            {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    removed = n,
                    "Dead letters past store.dead_letter_retention deleted"
                ),
                Err(e) => tracing::warn!(error = %e, "Cannot delete old dead letters"),
            }
            match admin::audit::purge(store.as_ref(), age(config.store.audit_retention)).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    removed = n,
                    "Audit entries past store.audit_retention deleted"
                ),
                Err(e) => tracing::warn!(error = %e, "Cannot delete old audit entries"),
            }
        }
    }
}

/// Takes one retention step's outcome: where the sweep goes on, what it
/// deleted (logged once a round), and whether it fails (said once).
fn retention_step(
    step: Result<RetentionStep, StoreError>,
    sweep: &mut Option<String>,
    failing: &mut bool,
    removed: &mut u64,
    forgotten: &mut u64,
) {
    match step {
        Ok(step) => {
            if std::mem::take(failing) {
                tracing::info!("Retention sweep going again");
            }
            *removed += step.lines_removed;
            *forgotten += step.ids_forgotten;
            *sweep = step.next;
            if sweep.is_none() && *removed + *forgotten > 0 {
                tracing::info!(
                    lines = *removed,
                    ids = *forgotten,
                    "Message-log lines past store.retention deleted, message ids past their dedup window forgotten"
                );
                (*removed, *forgotten) = (0, 0);
            }
        }
        Err(e) if !*failing => {
            *failing = true;
            tracing::warn!(error = %e, "Retention sweep stopped: old lines and expired message ids are kept until it goes again");
        }
        Err(e) => tracing::debug!(error = %e, "Retention step not taken"),
    }
}
