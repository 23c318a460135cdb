//! The real binary under load, driven by the load harness as Meta would
//! drive it (signed webhooks, refused ones retried, echoes sent back):
//! killed with SIGKILL and restarted in the middle of a run, and offered
//! far more than it can take while its Graph API answers in 2 s. Every
//! event that got a 200 is answered exactly once.

use std::time::{Duration, Instant};

use switchboard::tools::loadgen::{Loadgen, LoadgenOptions, Report};

use crate::crash::{free_port, spawn_engine, wait_ready};
use crate::support::*;

/// An engine config (the test config with `extra` sections) for a binary
/// on `port`, its Graph API the harness's sink.
fn engine_config(
    dir: &std::path::Path,
    sink: std::net::SocketAddr,
    port: u16,
    extra: &str,
) -> std::path::PathBuf {
    let toml = config_toml(
        dir,
        &format!("http://{sink}/v21.0"),
        &format!("127.0.0.1:{port}"),
        &format!("127.0.0.1:{}", free_port()),
        0,
    )
    // A reply whose answer was lost (a kill, a Graph API taking 2 s) is
    // confirmed by its echo, which the sink delivers again while the engine
    // refuses it (pauses growing to 2 s): the engine waits
    // `outbound.confirm_wait` after its last refusal before it sends such a
    // reply again, longer here than the sink's longest pause.
    .replacen("confirm_wait = \"1s\"", "confirm_wait = \"5s\"", 1)
        + extra;
    let path = dir.join("switchboard.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

fn options(port: u16) -> LoadgenOptions {
    LoadgenOptions {
        target: format!("http://127.0.0.1:{port}/webhooks/meta/main"),
        app_secret: APP_SECRET.into(),
        page: Some(PAGE.into()),
        whatsapp: Some(PHONE.into()),
        whatsapp_share: 0.2,
        sink: "127.0.0.1:0".into(),
        duplicates: 0.05,
        batch_max: 3,
        echoes: true,
        json: true,
        quiet: true,
        ..LoadgenOptions::default()
    }
}

/// The harness for a run the engine is stopped in the middle of: 200
/// events/s for `secs` over 400 customers, refused webhooks retried every
/// 200 ms (as Meta does, for much longer), then 30 s for the last replies.
fn interrupted_run_options(port: u16, secs: u64) -> LoadgenOptions {
    LoadgenOptions {
        rate: 200.0,
        duration: Duration::from_secs(secs),
        customers: 400,
        retries: 100,
        retry_pause: Duration::from_millis(200),
        drain: Duration::from_secs(30),
        ..options(port)
    }
}

async fn interrupted_run(port: u16, secs: u64) -> Loadgen {
    Loadgen::bind(interrupted_run_options(port, secs))
        .await
        .unwrap()
}

/// Every webhook that got a 200 was answered, none twice.
fn assert_exactly_once(report: &Report) {
    assert!(report.replies_expected > 1000, "{report}");
    assert_eq!(report.replies_missing, 0, "{report}");
    assert_eq!(report.replies_duplicated, 0, "{report}");
    assert_eq!(report.receipts_failed, 0, "every echo was taken: {report}");
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Kills the engine with SIGKILL `kills` times during a run and restarts it
/// at once on the same data, while the harness keeps sending (retrying
/// what was refused, as Meta does) and the sink echoes every reply: no
/// customer is left unanswered, none is answered twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_again_and_again_loses_and_doubles_nothing() {
    let secs: u64 = std::env::var("SWITCHBOARD_TEST_CRASHLOOP_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16);
    let kills = 3;
    let port = free_port();
    let harness = interrupted_run(port, secs).await;
    let dir = tempfile::tempdir().unwrap();
    let config = engine_config(dir.path(), harness.sink_addr(), port, "");
    let mut engine = KillOnDrop(spawn_engine(&config));
    wait_ready(port).await;
    let killer = {
        let config = config.clone();
        tokio::spawn(async move {
            for _ in 0..kills {
                tokio::time::sleep(Duration::from_secs(secs / (kills + 1))).await;
                // Killed and reaped off the runtime: the harness's two
                // workers go on sending and echoing meanwhile.
                tokio::task::spawn_blocking(move || drop(engine))
                    .await
                    .unwrap();
                engine = KillOnDrop(spawn_engine(&config));
                wait_ready(port).await;
            }
            engine
        })
    };
    let report = harness.run().await.unwrap();
    let mut engine = killer.await.unwrap();
    engine.kill();
    eprintln!("{report}");
    assert_exactly_once(&report);
}

/// Offered far more than it can take (its Graph API answers in 2 s, at most
/// `max_inflight_events` events in flight): webhooks get 503 with
/// `Retry-After` instead of memory growing, resident memory stays bounded,
/// and once the load stops every webhook that got a 200 is answered
/// exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_sheds_with_503_keeps_memory_bounded_and_loses_nothing() {
    let secs: u64 = std::env::var("SWITCHBOARD_TEST_OVERLOAD_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let port = free_port();
    let harness = Loadgen::bind(LoadgenOptions {
        rate: 1500.0,
        duration: Duration::from_secs(secs),
        customers: 20_000,
        sink_latency_ms: 2000,
        retries: 2,
        retry_pause: Duration::from_secs(1),
        max_in_flight: 3000,
        drain: Duration::from_secs(60),
        ..options(port)
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = engine_config(dir.path(), harness.sink_addr(), port, "");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replacen(
            "shutdown_grace = \"2s\"\n",
            "shutdown_grace = \"2s\"\nmax_inflight_events = 500\n",
            1,
        )
        .replacen(
            "max_body_bytes = 65536\n",
            "max_body_bytes = 65536\nmax_backlog_events = 3000\nmax_backlog_age = \"5s\"\n",
            1,
        );
    std::fs::write(&config, text).unwrap();
    let mut engine = KillOnDrop(spawn_engine(&config));
    wait_ready(port).await;
    let pid = engine.0.id();
    let base = rss_kib(pid);
    let sampling = tokio::spawn(async move {
        let mut peak = 0;
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(secs + 120) {
            let now = rss_kib(pid);
            if now == 0 {
                break;
            }
            peak = peak.max(now);
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        peak
    });
    let report: Report = harness.run().await.unwrap();
    engine.kill();
    let peak = sampling.await.unwrap();
    eprintln!(
        "{report}\nRSS {} MiB at start, {} MiB at peak",
        base / 1024,
        peak / 1024
    );
    let shed = report.ack_errors.get("503").copied().unwrap_or(0);
    assert!(shed > 0, "the engine shed load with 503: {report}");
    assert_eq!(report.replies_missing, 0, "{report}");
    assert_eq!(report.replies_duplicated, 0, "{report}");
    assert!(report.replies_received > 1000, "{report}");
    assert!(
        peak.saturating_sub(base) < 400 * 1024,
        "RSS grew from {} to {} MiB",
        base / 1024,
        peak / 1024
    );
}

/// SIGTERM in the middle of a run, as an orchestrator stops an instance
/// (the Graph API answering in 1 s, so replies are in flight): while it
/// finishes them, webhooks and `/readyz` get 503; it exits cleanly within
/// its shutdown grace (plus the time to close its files), what it had not
/// finished stays on the bus, and a restart on the same data answers every
/// webhook that got a 200 exactly once (the harness retries what was
/// refused meanwhile, as Meta does).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_refuses_new_webhooks_stops_within_its_grace_and_loses_nothing() {
    let port = free_port();
    let harness = Loadgen::bind(LoadgenOptions {
        sink_latency_ms: 1000,
        ..interrupted_run_options(port, 12)
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = engine_config(dir.path(), harness.sink_addr(), port, "");
    let mut engine = spawn_engine(&config);
    wait_ready(port).await;
    let stopper = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let started = Instant::now();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &engine.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        // Until the listener closes: webhooks and readiness refused with
        // 503, never a 200 for an event nobody will handle.
        let http = reqwest::Client::new();
        let (mut webhook_503, mut ready_503) = (false, false);
        while started.elapsed() < Duration::from_secs(3) && !(webhook_503 && ready_503) {
            let r = http
                .post(format!("http://127.0.0.1:{port}/webhooks/meta/main"))
                .body("{}")
                .send()
                .await;
            let Ok(r) = r else { break };
            webhook_503 |= r.status() == 503 && r.headers().contains_key("retry-after");
            let ready = http
                .get(format!("http://127.0.0.1:{port}/readyz"))
                .send()
                .await;
            ready_503 |= ready.is_ok_and(|r| r.status() == 503);
        }
        let status = tokio::task::spawn_blocking(move || engine.wait())
            .await
            .unwrap()
            .unwrap();
        let took = started.elapsed();
        let engine = KillOnDrop(spawn_engine(&config));
        wait_ready(port).await;
        (status, took, webhook_503 && ready_503, engine)
    });
    let report = harness.run().await.unwrap();
    let (status, took, refused, mut engine) = stopper.await.unwrap();
    engine.kill();
    eprintln!("{report}\nstopped in {took:?}");
    assert!(refused, "no 503 for webhooks and /readyz while stopping");
    assert!(
        status.success(),
        "the engine's exit after SIGTERM: {status}"
    );
    // shutdown_grace = "2s" in the test config.
    assert!(took < Duration::from_secs(12), "took {took:?} to stop");
    assert_exactly_once(&report);
}
