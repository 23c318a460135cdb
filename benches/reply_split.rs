//! Reply shaping: markdown stripped and a long answer split for the
//! channel's limit (paragraph > sentence > word > hard cut, by characters).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use switchboard::config::ChannelKind;
use switchboard::conversation::shaping::{shape, split};

fn answer(paragraphs: usize) -> String {
    let paragraph = "**Returns** are free within 30 days of delivery. Start one from your \
order page and print the prepaid label; refunds reach the original payment method within \
five working days. Sale items can be exchanged but not refunded. Damaged items are on us: \
send a [photo](https://example.com/help) and we ship a replacement the same day.";
    vec![paragraph; paragraphs].join("\n\n")
}

fn shaping(c: &mut Criterion) {
    let short = "We're open 9-5, Monday to Friday.";
    let long = answer(12);
    let mut group = c.benchmark_group("reply_split");
    group.throughput(Throughput::Bytes(short.len() as u64));
    group.bench_function("short_answer_messenger", |b| {
        b.iter(|| shape(short, ChannelKind::Messenger, 2000, true))
    });
    group.throughput(Throughput::Bytes(long.len() as u64));
    group.bench_function("long_answer_messenger_2000", |b| {
        b.iter(|| shape(&long, ChannelKind::Messenger, 2000, true))
    });
    group.bench_function("long_answer_split_320", |b| b.iter(|| split(&long, 320)));
    group.finish();
}

criterion_group!(benches, shaping);
criterion_main!(benches);
