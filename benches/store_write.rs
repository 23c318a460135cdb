//! The per-event write path of each store. One answered message (the
//! common event: an inbound line, the reply line, two remembered ids, the
//! day's counts) as the policy produces it, written:
//! - embedded: one redb transaction, group-committed, fsynced;
//! - scylla: one logged batch of prepared statements (the analytics
//!   counters are summed and written once a second, off this path). Timed
//!   here against kassandra, an in-memory CQL server: its times say nothing
//!   about ScyllaDB, the statement and byte counts do.
//!
//! Prints statements and bytes per event first, then times one commit.

use criterion::{criterion_group, criterion_main, Criterion};
use switchboard::config::ScyllaConfig;
use switchboard::conversation::turn::Conversation;
use switchboard::store::embedded::EmbeddedStore;
use switchboard::store::scylla::{self, ScyllaStore};
use switchboard::store::{Store, TurnWrite};

#[path = "../tests/it/cql_server.rs"]
mod cql_server;
#[path = "support/fixtures.rs"]
mod fixtures;

use fixtures::{answered, NOW};

/// Bytes the embedded store writes for one turn (values, without B-tree
/// pages): the state, the log lines, the remembered ids.
fn embedded_bytes(w: &TurnWrite) -> usize {
    let state = serde_json::to_vec(&w.state).map_or(0, |v| v.len());
    let lines: usize = w
        .messages
        .iter()
        .map(|m| serde_json::to_vec(m).map_or(0, |v| v.len()) + w.state.id.len() + 8)
        .sum();
    let ids: usize = w
        .dedup
        .iter()
        .map(|(m, _)| w.state.id.len() + m.len() + 8)
        .sum();
    state + w.state.id.len() + lines + ids + w.counts.len() * 40
}

fn store_write(c: &mut Criterion) {
    let Ok(rt) = tokio::runtime::Runtime::new() else {
        return;
    };
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    let Ok(embedded) = EmbeddedStore::open(dir.path(), 64 << 20) else {
        return;
    };
    let Some(addr) = cql_server::kassandra() else {
        return;
    };
    let config = ScyllaConfig {
        nodes: vec![addr.to_string()],
        keyspace: "bench".into(),
        replication: "{'class': 'SimpleStrategy', 'replication_factor': 1}".into(),
        request_timeout_ms: 5_000,
        await_schema_agreement: false,
        apply_schema: false,
        message_ttl: Some(std::time::Duration::from_secs(90 * 86_400)),
        dead_letter_ttl: None,
    };
    let schema = cql_server::schema_for_kassandra(&config);
    let Ok(cql) = rt.block_on(async {
        scylla::apply_statements(&config, &schema).await?;
        ScyllaStore::open_on_schema(&config).await
    }) else {
        return;
    };

    // Statements and bytes per event, over 100 conversations x 10 turns.
    let (mut statements, mut value_bytes, mut embedded_total, mut turns) = (0, 0, 0, 0);
    for n in 0..100 {
        let id = format!("acme-fb:{}", 6_543_210_000u64 + n);
        let customer = id.split_once(':').map_or("", |(_, c)| c).to_string();
        let mut conv = Conversation::new(fixtures::integration(), &id, &customer, None, NOW);
        for i in 0..10 {
            if let Some(w) = answered(&mut conv, i) {
                if let Ok(batch) = rt.block_on(cql.turn_batch(&w, NOW + i * 1_000)) {
                    statements += batch.statements;
                    value_bytes += batch.value_bytes;
                }
                embedded_total += embedded_bytes(&w);
                turns += 1;
            }
        }
    }
    let turns = turns.max(1);
    println!(
        "per answered event: embedded 1 transaction (shared by a group commit), {} value bytes; \
         scylla 1 logged batch of {:.1} statements, {} value bytes (counters: one batch a second)",
        embedded_total / turns,
        statements as f64 / turns as f64,
        value_bytes / turns
    );

    let mut conv = Conversation::new(fixtures::integration(), "acme-fb:1", "1", None, NOW);
    let mut i = 0;
    c.bench_function("embedded_commit_turn", |b| {
        b.iter(|| {
            i += 1;
            if let Some(w) = answered(&mut conv, i) {
                let _ = rt.block_on(embedded.commit_turn(w.into()));
            }
        })
    });
    let mut conv = Conversation::new(fixtures::integration(), "acme-fb:2", "2", None, NOW);
    let mut i = 0;
    c.bench_function("scylla_commit_turn_on_kassandra", |b| {
        b.iter(|| {
            i += 1;
            if let Some(w) = answered(&mut conv, i) {
                let _ = rt.block_on(cql.commit_turn(w.into()));
            }
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = store_write
}
criterion_main!(benches);
