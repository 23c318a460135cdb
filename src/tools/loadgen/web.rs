//! `switchboard loadgen --web-visitors N`: thousands of website chat
//! visitors at once. Each opens a socket to `--web-target` (with
//! `--web-origin`), says hello as a new visitor, sends one question and
//! waits for its answer; every socket then stays open for `--web-hold`.
//! The report: sockets opened, answers received (and any twice), answer
//! latency from the message, and, given `--engine-pid`, the engine's
//! resident memory before and with every socket open: the memory per open
//! socket (with its conversation).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::{Notify, Semaphore};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use super::{LoadgenError, LoadgenOptions};

/// Sockets being opened at once.
const OPENING: usize = 256;

#[derive(Default)]
struct Counts {
    opened: AtomicU64,
    refused: AtomicU64,
    acked: AtomicU64,
    answered: AtomicU64,
    doubled: AtomicU64,
}

/// What a web run measured.
#[derive(Debug, serde::Serialize)]
pub struct WebReport {
    pub visitors: u64,
    pub opened: u64,
    pub refused: u64,
    pub acked: u64,
    pub answered: u64,
    pub answered_twice: u64,
    pub answer_ms_p50: f64,
    pub answer_ms_p99: f64,
    pub engine_rss_before_kib: Option<u64>,
    pub engine_rss_open_kib: Option<u64>,
    pub kib_per_open_socket: Option<f64>,
}

impl WebReport {
    pub fn exactly_once(&self) -> bool {
        self.answered == self.visitors && self.answered_twice == 0
    }
}

impl std::fmt::Display for WebReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "switchboard loadgen web report")?;
        writeln!(
            f,
            "  sockets                {} visitors, {} opened, {} refused",
            self.visitors, self.opened, self.refused
        )?;
        writeln!(
            f,
            "  answers                {} acknowledged, {} answered, {} answered twice",
            self.acked, self.answered, self.answered_twice
        )?;
        writeln!(
            f,
            "  answer latency (ms)    p50 {:.1}  p99 {:.1}",
            self.answer_ms_p50, self.answer_ms_p99
        )?;
        if let (Some(before), Some(open), Some(per)) = (
            self.engine_rss_before_kib,
            self.engine_rss_open_kib,
            self.kib_per_open_socket,
        ) {
            writeln!(
                f,
                "  engine memory          {} MiB before, {} MiB with every socket open: {per:.1} KiB per open socket (with its conversation)",
                before / 1024,
                open / 1024
            )?;
        }
        Ok(())
    }
}

/// The resident memory of process `pid`, in KiB (Linux).
pub(super) fn rss_kib(pid: Option<u32>) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

pub async fn run(o: &LoadgenOptions) -> Result<WebReport, LoadgenError> {
    let visitors = o.web_visitors;
    let before = rss_kib(o.engine_pid);
    let counts = Arc::new(Counts::default());
    let latencies = Arc::new(Mutex::new(hdrhistogram::Histogram::<u64>::new(3)?));
    let opening = Arc::new(Semaphore::new(OPENING));
    let close = Arc::new(Notify::new());
    let mut tasks = Vec::with_capacity(visitors as usize);
    for n in 0..visitors {
        let (counts, latencies, opening, close) = (
            counts.clone(),
            latencies.clone(),
            opening.clone(),
            close.clone(),
        );
        let (target, origin) = (o.web_target.clone(), o.web_origin.clone());
        tasks.push(tokio::spawn(async move {
            visitor(n, &target, &origin, &counts, &latencies, &opening, &close).await;
        }));
    }
    let deadline = Instant::now() + o.drain + Duration::from_secs(visitors / 100 + 30);
    while counts.answered.load(Ordering::Relaxed) + counts.refused.load(Ordering::Relaxed)
        < visitors
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Every socket open and answered: the memory they hold.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let open = rss_kib(o.engine_pid);
    tokio::time::sleep(o.web_hold).await;
    close.notify_waiters();
    for t in tasks {
        let _ = t.await;
    }
    let h = crate::sync::lock(&latencies);
    let opened = counts.opened.load(Ordering::Relaxed);
    Ok(WebReport {
        visitors,
        opened,
        refused: counts.refused.load(Ordering::Relaxed),
        acked: counts.acked.load(Ordering::Relaxed),
        answered: counts.answered.load(Ordering::Relaxed),
        answered_twice: counts.doubled.load(Ordering::Relaxed),
        answer_ms_p50: h.value_at_quantile(0.5) as f64 / 1000.0,
        answer_ms_p99: h.value_at_quantile(0.99) as f64 / 1000.0,
        engine_rss_before_kib: before,
        engine_rss_open_kib: open,
        kib_per_open_socket: match (before, open) {
            (Some(b), Some(a)) if opened > 0 => Some(a.saturating_sub(b) as f64 / opened as f64),
            _ => None,
        },
    })
}

async fn visitor(
    n: u64,
    target: &str,
    origin: &str,
    counts: &Counts,
    latencies: &Mutex<hdrhistogram::Histogram<u64>>,
    opening: &Semaphore,
    close: &Notify,
) {
    let closed = close.notified();
    tokio::pin!(closed);
    let ws = {
        let Ok(_turn) = opening.acquire().await else {
            return;
        };
        let Ok(mut request) = target.into_client_request() else {
            counts.refused.fetch_add(1, Ordering::Relaxed);
            return;
        };
        if let Ok(v) = origin.parse() {
            request.headers_mut().insert("origin", v);
        }
        match tokio_tungstenite::connect_async(request).await {
            Ok((ws, _)) => ws,
            Err(_) => {
                counts.refused.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
    };
    counts.opened.fetch_add(1, Ordering::Relaxed);
    let (mut tx, mut rx) = ws.split();
    let visitor = format!(
        "{:032x}",
        0x5eb0_0000_0000_0000_0000_0000_0000u128 + n as u128
    );
    let hello = json!({"type": "hello", "visitor": visitor});
    if tx
        .send(Message::Text(hello.to_string().into()))
        .await
        .is_err()
    {
        return;
    }
    let mut asked: Option<Instant> = None;
    let mut answers = 0;
    loop {
        tokio::select! {
            _ = &mut closed => break,
            frame = rx.next() => {
                let Some(Ok(Message::Text(text))) = frame else { break };
                let Ok(f) = serde_json::from_str::<Value>(&text) else { continue };
                match f["type"].as_str() {
                    Some("welcome") => {
                        let m = json!({"type": "message", "client_id": format!("q{n}"), "text": "what are your opening hours?"});
                        asked = Some(Instant::now());
                        if tx.send(Message::Text(m.to_string().into())).await.is_err() {
                            break;
                        }
                    }
                    Some("ack") => {
                        counts.acked.fetch_add(1, Ordering::Relaxed);
                    }
                    Some("message") if f["author"] == "ai" => {
                        answers += 1;
                        if answers == 1 {
                            counts.answered.fetch_add(1, Ordering::Relaxed);
                            if let Some(t) = asked {
                                let _ = crate::sync::lock(latencies)
                                    .record(t.elapsed().as_micros() as u64);
                            }
                        } else {
                            counts.doubled.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    let _ = tx.send(Message::Close(None)).await;
}
