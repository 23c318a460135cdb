//! Knowledge-base retrieval: a customer's question against 10k and 100k
//! passages (BM25, English analyser), and what the index costs to build
//! and to keep (resident memory before and after, printed once per size).
//!
//! The passages are synthetic: sentences drawn with a fixed seed from a
//! 5,000-word vocabulary with a Zipf-like frequency, so common and rare
//! words occur as in real help centres.

#![allow(clippy::expect_used)] // a benchmark without its index has nothing to measure

use criterion::{criterion_group, criterion_main, Criterion};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use switchboard::knowledge::index::{language, AssistantIndex};
use switchboard::store::DocumentRecord;

fn vocabulary() -> Vec<String> {
    (0..5000).map(|i| format!("w{i}x")).collect()
}

fn word<'a>(rng: &mut StdRng, words: &'a [String]) -> &'a str {
    // Zipf-like: low indexes are much more frequent.
    let u: f64 = rng.random_range(0.0..1.0);
    let i = ((words.len() as f64).powf(u) - 1.0) as usize;
    &words[i.min(words.len() - 1)]
}

/// `passages` sections of about 80 words, 10 per document.
fn documents(passages: usize) -> Vec<DocumentRecord> {
    let words = vocabulary();
    let mut rng = StdRng::seed_from_u64(7);
    (0..passages.div_ceil(10))
        .map(|d| {
            let text: Vec<String> = (0..10)
                .map(|s| {
                    let body: Vec<&str> = (0..80).map(|_| word(&mut rng, &words)).collect();
                    format!("## Section {s}\n\n{}.", body.join(" "))
                })
                .collect();
            DocumentRecord {
                assistant: "bench".into(),
                id: format!("d{d}"),
                tenant: None,
                title: format!("Document {d}"),
                text: text.join("\n\n"),
                created_ms: 0,
                vectors: Vec::new(),
            }
        })
        .collect()
}

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn retrieval(c: &mut Criterion) {
    let lang = language("english").expect("english");
    let mut group = c.benchmark_group("knowledge");
    group.sample_size(50);
    for passages in [10_000usize, 100_000] {
        let docs = documents(passages);
        let before = rss_kb();
        let started = std::time::Instant::now();
        let index = AssistantIndex::build(&docs, lang).expect("index builds");
        let built = started.elapsed();
        let after = rss_kb();
        drop(docs);
        eprintln!(
            "knowledge: {} passages indexed in {:.2} s; resident memory +{} MiB for the index",
            index.passages,
            built.as_secs_f64(),
            after.saturating_sub(before) / 1024
        );
        let mut rng = StdRng::seed_from_u64(11);
        let words = vocabulary();
        let questions: Vec<String> = (0..64)
            .map(|_| {
                (0..8)
                    .map(|_| word(&mut rng, &words).to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        let mut i = 0;
        group.bench_function(format!("search_top4_{passages}_passages"), |b| {
            b.iter(|| {
                i = (i + 1) % questions.len();
                index.search(&questions[i], 4).expect("search")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, retrieval);
criterion_main!(benches);
