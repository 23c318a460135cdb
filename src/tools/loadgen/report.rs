//! The load run's report: printed for people, or as JSON with `--json`.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use super::tracker::Percentiles;

/// What a load run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Seconds spent sending (the configured duration).
    pub duration_s: f64,
    /// Events per second the schedule asked for.
    pub offered_rate: f64,
    /// Events per second the engine acknowledged with a 2xx.
    pub achieved_rate: f64,
    pub webhooks_sent: u64,
    pub events_sent: u64,
    /// Webhooks sent again as redeliveries (their events expect no reply).
    pub duplicates_sent: u64,
    /// Webhooks the schedule called for but the harness held back because
    /// `--max-in-flight` requests were already waiting (the engine was not
    /// keeping up).
    pub webhooks_not_sent: u64,
    /// Webhooks never acknowledged after every retry.
    pub webhooks_failed: u64,
    /// Failed acknowledgements by HTTP status or transport error.
    pub ack_errors: BTreeMap<String, u64>,
    pub replies_expected: u64,
    pub replies_received: u64,
    pub replies_missing: u64,
    pub replies_duplicated: u64,
    /// The first duplicated replies (at most 10): account, customer and the
    /// engine's part id, to look for in the engine's log.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub duplicate_samples: Vec<String>,
    /// Replies of webhooks whose outcome is unknown (no 2xx, an attempt
    /// timed out or was cut): the engine may have taken them, so each may
    /// come once or not at all; and how many came.
    pub replies_uncertain: u64,
    pub replies_uncertain_answered: u64,
    /// Echo and status webhooks (`--echoes`) the engine never took after
    /// every retry: the sends they confirm may be sent again.
    pub receipts_failed: u64,
    pub ack_latency_ms: Percentiles,
    pub e2e_latency_ms: Percentiles,
}

impl Report {
    /// No reply lost, none sent twice.
    pub fn exactly_once(&self) -> bool {
        self.replies_missing == 0 && self.replies_duplicated == 0
    }
}

fn line(f: &mut fmt::Formatter<'_>, name: &str, p: &Percentiles) -> fmt::Result {
    writeln!(
        f,
        "  {name:<22} p50 {:>8.3}  p99 {:>8.3}  p99.9 {:>8.3}  max {:>8.3}  ({} samples)",
        p.p50, p.p99, p.p999, p.max, p.count
    )
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "switchboard loadgen report")?;
        writeln!(
            f,
            "  rate                   offered {:.0} ev/s, achieved {:.0} ev/s over {:.1} s",
            self.offered_rate, self.achieved_rate, self.duration_s
        )?;
        writeln!(
            f,
            "  sent                   {} webhooks, {} events, {} redelivered duplicates, {} held back, {} failed",
            self.webhooks_sent,
            self.events_sent,
            self.duplicates_sent,
            self.webhooks_not_sent,
            self.webhooks_failed
        )?;
        if !self.ack_errors.is_empty() {
            let errors: Vec<String> = self
                .ack_errors
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect();
            writeln!(f, "  ack errors             {}", errors.join(", "))?;
        }
        writeln!(
            f,
            "  replies                expected {}, received {}, missing {}, duplicated {}",
            self.replies_expected,
            self.replies_received,
            self.replies_missing,
            self.replies_duplicated
        )?;
        for sample in &self.duplicate_samples {
            writeln!(f, "  duplicated             {sample}")?;
        }
        if self.replies_uncertain > 0 {
            writeln!(
                f,
                "  unknown outcome        {} replies of webhooks that timed out or were cut (the engine may have taken them): {} came",
                self.replies_uncertain, self.replies_uncertain_answered
            )?;
        }
        if self.receipts_failed > 0 {
            writeln!(
                f,
                "  receipts failed        {} echo/status webhooks never taken (what they confirm may be sent again)",
                self.receipts_failed
            )?;
        }
        writeln!(f, "  latency (ms)")?;
        line(f, "ack", &self.ack_latency_ms)?;
        line(f, "webhook -> Send API", &self.e2e_latency_ms)
    }
}
