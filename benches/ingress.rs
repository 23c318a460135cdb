//! Verify + parse of signed Messenger webhooks (the ingress hot path before
//! the bus append).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use serde_json::json;
use switchboard::channels::webhook::{parse, sign, verify_signature};

fn body(events: usize) -> Vec<u8> {
    let messaging: Vec<_> = (0..events)
        .map(|i| {
            json!({"sender": {"id": format!("PSID_{i}")}, "recipient": {"id": "PAGE"},
                   "timestamp": 1_700_000_000_000u64 + i as u64,
                   "message": {"mid": format!("m_{i}_AbCdEfGhIjKlMnOp"), "text": "Hi! What are your opening hours on Saturday?"}})
        })
        .collect();
    serde_json::to_vec(&json!({"object": "page", "entry": [{"id": "PAGE", "time": 1_700_000_000_000u64, "messaging": messaging}]}))
        .unwrap_or_default()
}

fn verify_and_parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("verify_parse");
    for events in [1usize, 10, 100] {
        let b = body(events);
        let sig = sign(b"app-secret", &b);
        group.throughput(Throughput::Elements(events as u64));
        group.bench_with_input(BenchmarkId::from_parameter(events), &b, |bench, b| {
            bench.iter(|| {
                assert!(verify_signature(b"app-secret", b, Some(&sig)));
                parse(b, 0).map(|w| w.event_count()).unwrap_or(0)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, verify_and_parse);
criterion_main!(benches);
