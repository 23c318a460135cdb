//! `store.sync_interval` against the store's durability and the bus; the
//! group commit delays.

use std::time::Duration;

use super::Errors;
use crate::config::{BusKind, Config, Durability};

/// A group delay longer than this only delays: the writes of 100 ms share
/// a group at any rate worth grouping.
const MAX_GROUP_DELAY: Duration = Duration::from_millis(100);

pub(super) fn durability(c: &Config, e: &mut Errors) {
    for (key, delay) in [
        ("bus.group_commit_delay", c.bus.group_commit_delay),
        ("store.group_commit_delay", c.store.group_commit_delay),
    ] {
        if delay > MAX_GROUP_DELAY {
            e.add(key, "must be at most 100ms, like \"2ms\" (0s: no wait)");
        }
    }
    let sync = c.store.sync_interval;
    if sync < Duration::from_millis(1) || sync > Duration::from_secs(10) {
        e.add(
            "store.sync_interval",
            "must be between 1ms and 10s, like \"200ms\"",
        );
    }
    // A revoked partition waits for its finished events, which wait for
    // the next sync: well within the wait, or every rebalance replays.
    let revoke_wait = Duration::from_millis(c.bus.kafka.session_timeout_ms / 4);
    if c.bus.kind == BusKind::Kafka
        && c.store.durability == Durability::Interval
        && sync > revoke_wait
    {
        e.add(
            "store.sync_interval",
            "must be at most a quarter of bus.kafka.session_timeout_ms with the Kafka bus",
        );
    }
}
