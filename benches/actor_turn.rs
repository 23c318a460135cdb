//! One conversation turn: the policy alone (dedup, rate limit, plan, shape,
//! mark sent) and the policy plus its durable write to the embedded store.

use criterion::{criterion_group, criterion_main, Criterion};
use switchboard::conversation::turn::Conversation;
use switchboard::event::InboundEvent;
use switchboard::store::embedded::EmbeddedStore;
use switchboard::store::Store;

#[path = "support/fixtures.rs"]
mod fixtures;

/// Event `i` of one customer's conversation.
fn event(i: u64) -> InboundEvent {
    fixtures::message(
        "PSID",
        format!("m_{i}"),
        "What are your hours?",
        1_700_000_000_000 + i,
    )
}

fn turn(conv: &mut Conversation, i: u64) -> usize {
    let now = 1_700_000_000_000 + i;
    conv.apply(&event(i), now);
    conv.plan_reply("We're open 9-5, Monday to Friday.", now);
    let first = conv.take_write().map(|w| w.messages.len()).unwrap_or(0);
    conv.part_sent(format!("m_out_{i}"), now);
    first + conv.take_write().map(|w| w.messages.len()).unwrap_or(0)
}

fn policy(c: &mut Criterion) {
    let mut conv = Conversation::new(fixtures::integration(), "acme-fb:PSID", "PSID", None, 0);
    let mut i = 0u64;
    c.bench_function("turn_policy", |b| {
        b.iter(|| {
            i += 1;
            turn(&mut conv, i)
        })
    });
}

fn with_store(c: &mut Criterion) {
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(_) => return,
    };
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(_) => return,
    };
    let Ok(store) = rt.block_on(async { EmbeddedStore::open(dir.path(), 64 << 20) }) else {
        return;
    };
    let mut conv = Conversation::new(fixtures::integration(), "acme-fb:PSID", "PSID", None, 0);
    let mut i = 0u64;
    c.bench_function("turn_with_durable_write", |b| {
        b.iter(|| {
            i += 1;
            let now = 1_700_000_000_000 + i;
            conv.apply(&event(i), now);
            conv.plan_reply("We're open 9-5, Monday to Friday.", now);
            if let Some(w) = conv.take_write() {
                let _ = rt.block_on(store.commit_turn(w.into()));
            }
        })
    });
}

criterion_group!(benches, policy, with_store);
criterion_main!(benches);
