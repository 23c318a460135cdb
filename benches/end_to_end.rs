//! End-to-end figure on this machine: the engine (embedded bus and store)
//! in-process, a Graph API sink on 127.0.0.1, and concurrent signed
//! webhooks, one message from a distinct customer each. Reports webhook
//! acceptance rate, reply throughput and webhook -> Send API latency.
//!
//! `cargo bench --bench end_to_end -- [events] [concurrency] [batch]`
//! (defaults 20000, 64, 1). This is a closed-loop first figure; the load
//! harness gives open-loop numbers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use switchboard::channels::webhook::sign;

type Arrivals = Arc<Mutex<HashMap<String, Instant>>>;

async fn sink(State(arrivals): State<Arrivals>, Json(body): Json<Value>) -> Json<Value> {
    if body.get("message").is_some() {
        if let Some(r) = body["recipient"]["id"].as_str() {
            if let Ok(mut a) = arrivals.lock() {
                a.entry(r.to_string()).or_insert_with(Instant::now);
            }
        }
    }
    Json(json!({"recipient_id": "x", "message_id": "m_out"}))
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let events = args.first().copied().unwrap_or(20_000);
    let concurrency = args.get(1).copied().unwrap_or(64);
    let batch = args.get(2).copied().unwrap_or(1).max(1);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return eprintln!("runtime: {e}"),
    };
    rt.block_on(run(events, concurrency, batch));
}

async fn run(events: usize, concurrency: usize, batch: usize) {
    let arrivals: Arrivals = Arc::default();
    let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
        Ok(l) => l,
        Err(e) => return eprintln!("bind: {e}"),
    };
    let Ok(sink_addr) = listener.local_addr() else {
        return;
    };
    let app = Router::new()
        .route("/{account}/messages", post(sink))
        .with_state(arrivals.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let Ok(dir) = tempfile::tempdir() else { return };
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:0"
metrics_listen = "127.0.0.1:0"
[store]
path = "{}"
[meta]
graph_base_url = "http://{sink_addr}"
[[assistants]]
id = "a"
kind = "rules"
fallback = "Thanks! A teammate will reply soon."
[[apps]]
id = "main"
app_secret = "bench-secret"
verify_token = "v"
[[tenants]]
id = "t"
[[integrations]]
id = "fb"
tenant = "t"
channel = "messenger"
app = "main"
account_id = "PAGE"
access_token = "tok"
assistant = "a"
rate_limit_per_minute = 1000000
"#,
        dir.path().join("data").display()
    );
    let config = match switchboard::config::load_from_str(&toml, &[]) {
        Ok(c) => c,
        Err(e) => return eprintln!("{e}"),
    };
    let engine = match switchboard::app::start(config).await {
        Ok(e) => e,
        Err(e) => return eprintln!("{e}"),
    };
    let url = format!("http://{}/webhooks/meta/main", engine.addr);
    let client = reqwest::Client::new();
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let mut ack = match Histogram::<u64>::new(3) {
        Ok(h) => h,
        Err(_) => return,
    };

    let webhooks = events.div_ceil(batch);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, url, sent, next) = (client.clone(), url.clone(), sent.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut acks = Vec::new();
            loop {
                let w = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if w >= webhooks {
                    return acks;
                }
                let messaging: Vec<Value> = (0..batch)
                    .map(|k| {
                        let i = w * batch + k;
                        json!({"sender": {"id": format!("C{i}")}, "recipient": {"id": "PAGE"},
                               "timestamp": switchboard::clock::now_ms(),
                               "message": {"mid": format!("m_{i}"), "text": "What are your hours?"}})
                    })
                    .collect();
                let body = serde_json::to_vec(&json!({"object": "page", "entry": [{"id": "PAGE", "time": 1u64, "messaging": messaging}]}))
                    .unwrap_or_default();
                let sig = sign(b"bench-secret", &body);
                let t0 = Instant::now();
                if let Ok(mut s) = sent.lock() {
                    for k in 0..batch {
                        s.insert(format!("C{}", w * batch + k), t0);
                    }
                }
                let ok = client
                    .post(&url)
                    .header("x-hub-signature-256", sig)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .map(|r| r.status().is_success())
                    .unwrap_or(false);
                if ok {
                    acks.push(t0.elapsed().as_micros() as u64);
                }
            }
        }));
    }
    let mut acked = 0usize;
    for t in tasks {
        if let Ok(acks) = t.await {
            acked += acks.len();
            for a in acks {
                let _ = ack.record(a);
            }
        }
    }
    let ack_elapsed = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let n = arrivals.lock().map(|a| a.len()).unwrap_or(0);
        if n >= events || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let all_elapsed = started.elapsed();
    let mut e2e = match Histogram::<u64>::new(3) {
        Ok(h) => h,
        Err(_) => return,
    };
    let (received, missing) = {
        let a = arrivals.lock().map(|a| a.clone()).unwrap_or_default();
        let s = sent.lock().map(|s| s.clone()).unwrap_or_default();
        for (c, t_sent) in &s {
            if let Some(t_reply) = a.get(c) {
                let _ = e2e.record(t_reply.saturating_duration_since(*t_sent).as_micros() as u64);
            }
        }
        (a.len(), s.len().saturating_sub(a.len()))
    };
    println!(
        "events={events} batch={batch} concurrency={concurrency} webhooks_acked={acked}/{webhooks}"
    );
    println!(
        "accepted: {:.0} events/s; answered: {:.0} events/s ({received} replies, {missing} missing)",
        events as f64 / ack_elapsed.as_secs_f64(),
        received as f64 / all_elapsed.as_secs_f64()
    );
    let ms = |v: u64| v as f64 / 1000.0;
    println!(
        "ack latency ms: p50 {:.2} p99 {:.2} max {:.2}",
        ms(ack.value_at_quantile(0.5)),
        ms(ack.value_at_quantile(0.99)),
        ms(ack.max())
    );
    println!(
        "webhook -> Send API ms: p50 {:.2} p99 {:.2} max {:.2}",
        ms(e2e.value_at_quantile(0.5)),
        ms(e2e.value_at_quantile(0.99)),
        ms(e2e.max())
    );
    engine.shutdown().await;
}
