//! The embedded bus's durable append (`Bus::publish`): one publisher alone
//! (every append pays its own commit and fsync) and 64 publishers at once
//! (group commit: they share them). The consumer drains in the background
//! and marks events finished so the log is trimmed as in the engine.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use switchboard::bus::embedded::EmbeddedBus;
use switchboard::bus::Bus;
use switchboard::event::InboundEvent;

#[path = "support/fixtures.rs"]
mod fixtures;

/// Event `i`, from one of 1,000 customers.
fn event(i: u64) -> InboundEvent {
    let customer = format!("PSID{}", i % 1000);
    fixtures::message(
        &customer,
        format!("m_{i}"),
        "What are your hours?",
        1_700_000_000_000 + i,
    )
}

fn append(c: &mut Criterion) {
    let Ok(rt) = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    let Ok(dir) = tempfile::tempdir() else { return };
    let Ok(bus) = rt.block_on(async { EmbeddedBus::open(dir.path()) }) else {
        return;
    };
    // Drain and finish, like the engine's consumer.
    let consumer = bus.clone();
    rt.block_on(async {
        if let Ok(mut rx) = consumer.subscribe().await {
            tokio::spawn(async move {
                while let Some(d) = rx.recv().await {
                    consumer.finished(d.position);
                }
            });
        }
    });
    let mut group = c.benchmark_group("bus_append");
    group.sample_size(20);
    let mut i = 0u64;
    group.throughput(Throughput::Elements(1));
    group.bench_function("one_publisher", |b| {
        b.iter(|| {
            i += 1;
            rt.block_on(bus.publish(&[event(i)]))
        })
    });
    group.throughput(Throughput::Elements(64));
    group.bench_function("64_concurrent_publishers", |b| {
        b.iter(|| {
            i += 64;
            let base = i;
            rt.block_on(async {
                let tasks: Vec<_> = (0..64)
                    .map(|k| {
                        let bus: Arc<EmbeddedBus> = bus.clone();
                        tokio::spawn(async move { bus.publish(&[event(base + k)]).await })
                    })
                    .collect();
                for t in tasks {
                    let _ = t.await;
                }
            })
        })
    });
    group.finish();
}

criterion_group!(benches, append);
criterion_main!(benches);
