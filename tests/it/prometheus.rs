//! The monitoring files against a real Prometheus (Debian's `prometheus`
//! package: the server and `promtool`, installed by `scripts/test.sh`):
//! the config and alert rules pass `promtool check`, every alert's unit
//! tests pass (firing and not firing) and every alert has a runbook line in
//! the README; the live `/metrics` passes `promtool check metrics`; and a
//! Prometheus server on 127.0.0.1 scraping an engine under a short load
//! answers every query of the Grafana dashboard with data. Skipped (and
//! says so) where Prometheus is not installed. Beside them, the image and
//! the compose file: no secret in either, a user without privileges, a
//! health check, and `docker compose config` where a Compose CLI exists.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};

use crate::crash::free_port;
use crate::support::*;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `promtool` and `prometheus`, or `None` (the test says it is skipped).
fn tools() -> Option<(PathBuf, PathBuf)> {
    let find = |name: &str| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join(name))
                .find(|p| p.is_file())
        })
    };
    match (find("promtool"), find("prometheus")) {
        (Some(t), Some(p)) => Some((t, p)),
        _ => {
            eprintln!("SKIPPED: promtool / prometheus not installed (scripts/test.sh installs Debian's prometheus)");
            None
        }
    }
}

fn promtool(tool: &Path, args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let mut child = std::process::Command::new(tool)
        .args(args)
        .current_dir(root().join("docker/prometheus"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The alert names of `alerts.yml`.
fn alert_names() -> Vec<String> {
    let rules = std::fs::read_to_string(root().join("docker/prometheus/alerts.yml")).unwrap();
    rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .map(|n| n.trim().to_string())
        .collect()
}

#[test]
fn the_config_and_alert_rules_check_and_every_alert_is_tested_and_explained() {
    let Some((tool, _)) = tools() else {
        return;
    };
    for args in [
        &["check", "config", "prometheus.yml"][..],
        &["check", "rules", "alerts.yml"],
        &["test", "rules", "alerts.test.yml"],
    ] {
        let (ok, out) = promtool(&tool, args, None);
        assert!(ok, "promtool {args:?}:\n{out}");
    }
    let names = alert_names();
    assert!(names.len() >= 12, "{names:?}");
    let tests = std::fs::read_to_string(root().join("docker/prometheus/alerts.test.yml")).unwrap();
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    for name in &names {
        // Each alert has a test that expects it to fire, and a runbook line.
        assert!(
            tests.contains(&format!(
                "alertname: {name}\n        exp_alerts:\n          - "
            )),
            "no firing test for {name}"
        );
        assert!(
            readme.contains(&format!("| `{name}` |")),
            "no runbook line for {name} in the README"
        );
    }
}

/// Every metric the engine can export has its help text, also those that
/// appear only once something rare happened (a Gmail resync): without it
/// `promtool check metrics` fails on the live exposition from then on.
#[test]
fn every_metric_name_is_described() {
    let source = std::fs::read_to_string(root().join("src/telemetry/mod.rs")).unwrap();
    let consts: Vec<&str> = source
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub const "))
        .filter(|l| l.contains("\"switchboard_"))
        .filter_map(|l| l.split(':').next())
        .collect();
    assert!(consts.len() >= 20, "{consts:?}");
    let described = source.replace(['\n', ' '], "");
    for name in consts {
        assert!(
            [
                "describe_counter!(",
                "describe_gauge!(",
                "describe_histogram!("
            ]
            .iter()
            .any(|m| described.contains(&format!("{m}{name},"))),
            "{name} has no describe_*! (no # HELP)"
        );
    }
}

/// Every `switchboard_...` name in `text`, without histogram suffixes.
fn metric_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("switchboard_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let name = name
            .strip_suffix("_bucket")
            .or_else(|| name.strip_suffix("_sum"))
            .or_else(|| name.strip_suffix("_count"))
            .unwrap_or(name);
        names.push(name.to_string());
        rest = &tail[end..];
    }
    names.sort();
    names.dedup();
    names
}

/// Customers writing (some twice, some redelivered), delivery receipts.
async fn traffic(desk: &Desk, round: usize) {
    for i in 0..5 {
        let psid = format!("p{round}-{i}");
        let mid = format!("m{round}-{i}");
        desk.customer(&psid, &mid, "what are your hours?").await;
        if i == 0 {
            // Meta delivers the same webhook again.
            desk.customer(&psid, &mid, "what are your hours?").await;
        }
    }
    desk.webhook(vec![json!({
        "sender": {"id": format!("p{round}-1")}, "recipient": {"id": PAGE},
        "timestamp": switchboard::clock::now_ms(),
        "delivery": {"watermark": switchboard::clock::now_ms()}
    })])
    .await;
}

async fn query(http: &reqwest::Client, prometheus: &str, expr: &str) -> Value {
    json_of(
        http.get(format!("{prometheus}/api/v1/query"))
            .query(&[("query", expr)]),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scraping_the_engine_answers_every_dashboard_query() {
    let Some((tool, server)) = tools() else {
        return;
    };
    let desk = Desk::start(0, "").await;
    traffic(&desk, 0).await;
    desk.settled("p0-4", 2).await;

    // The live exposition is clean for promtool's linter.
    let metrics = desk.metrics().await;
    let (ok, out) = promtool(&tool, &["check", "metrics"], Some(&metrics));
    assert!(ok, "promtool check metrics:\n{out}");
    // The embedded bus's and store's group commits are counted: every
    // accepted webhook went through the bus writer, every turn through
    // the store writer.
    for writer in ["bus", "store"] {
        let ops = metrics
            .lines()
            .find_map(|l| {
                l.strip_prefix(&format!(
                    "switchboard_group_commit_ops_total{{writer=\"{writer}\"}} "
                ))
            })
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0);
        assert!(
            ops >= 5.0,
            "{writer} group commits counted {ops} ops:\n{metrics}"
        );
    }

    // The dashboard's and the alerts' metric names are all exported (or,
    // for those only some deployments have, documented).
    let dashboard =
        std::fs::read_to_string(root().join("docker/grafana/dashboards/switchboard.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&dashboard).unwrap();
    let exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["expr"].as_str().map(str::to_string))
        .collect();
    assert!(exprs.len() >= 10, "{exprs:?}");
    let exported = metric_names(&metrics);
    for name in metric_names(&exprs.join("\n")) {
        assert!(
            exported.contains(&name),
            "the dashboard reads {name}, which the engine does not export"
        );
    }
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let rules = std::fs::read_to_string(root().join("docker/prometheus/alerts.yml")).unwrap();
    for name in metric_names(&rules) {
        assert!(
            readme.contains(&format!("| `{name}` |")),
            "an alert reads {name}, which the README's metrics table does not list"
        );
    }

    // A Prometheus server scraping the engine every second.
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: switchboard\n    static_configs:\n      - targets: [\"{}\"]\n",
            desk.engine.metrics_addr
        ),
    )
    .unwrap();
    let mut prometheus = KillOnDrop(
        std::process::Command::new(&server)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    // Load for a while, so rates and quantiles have samples to work on.
    for round in 1..=12 {
        traffic(&desk, round).await;
        tokio::time::sleep(Duration::from_millis(800)).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut dead = Vec::new();
    loop {
        dead.clear();
        for expr in &exprs {
            let answer = query(&http, &base, expr).await;
            let empty = answer["data"]["result"]
                .as_array()
                .is_none_or(|r| r.is_empty());
            if answer["status"] != "success" || empty {
                dead.push(format!("{expr} -> {answer}"));
            }
        }
        if dead.is_empty() || tokio::time::Instant::now() > deadline {
            break;
        }
        traffic(&desk, 100).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    prometheus.kill();
    assert!(dead.is_empty(), "panels without data:\n{}", dead.join("\n"));
}

/// The runtime image runs as a user without privileges, has a health
/// check, and takes no config or secret into it; the compose file is valid
/// for `docker compose config` wherever a Compose CLI exists (no daemon
/// needed; skipped, and said, where none is installed).
#[test]
fn the_image_and_the_compose_file_hold_no_secret_and_check_out() {
    let dockerfile = std::fs::read_to_string(root().join("docker/Dockerfile")).unwrap();
    let runtime = dockerfile
        .rsplit_once("\nFROM ")
        .map(|(_, r)| r)
        .expect("a runtime stage");
    let user = runtime
        .lines()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("the runtime image names its user");
    assert!(user.trim() != "root" && user.trim() != "0", "{user}");
    assert!(runtime.contains("HEALTHCHECK "), "no health check");
    for l in runtime.lines().filter(|l| l.starts_with("COPY")) {
        assert!(
            !l.contains("config") && !l.contains(".toml") && !l.contains(".env"),
            "the image copies a config: {l}"
        );
    }
    let compose = std::fs::read_to_string(root().join("docker/compose.yaml")).unwrap();
    assert!(
        !compose.contains("SWITCHBOARD__ADMIN__TOKEN: \""),
        "a secret written into compose.yaml"
    );
    let engine_toml = std::fs::read_to_string(root().join("docker/engine.toml")).unwrap();
    for secret in [
        "token = \"",
        "app_secret = \"",
        "verify_token = \"",
        "access_token = \"",
    ] {
        for l in engine_toml
            .lines()
            .filter(|l| l.trim_start().starts_with(secret))
        {
            assert!(l.contains("\"\""), "docker/engine.toml holds a secret: {l}");
        }
    }
    let compose_cli = [
        ("docker", &["compose", "version"][..]),
        ("docker-compose", &["version"][..]),
    ]
    .into_iter()
    .find(|(cmd, args)| {
        std::process::Command::new(cmd)
            .args(*args)
            .output()
            .is_ok_and(|o| o.status.success())
    });
    let Some((cmd, _)) = compose_cli else {
        eprintln!("SKIPPED: docker compose config (no Compose CLI installed)");
        return;
    };
    let mut args = if cmd == "docker" {
        vec!["compose"]
    } else {
        vec![]
    };
    args.extend(["-f", "compose.yaml", "config", "-q"]);
    let out = std::process::Command::new(cmd)
        .args(&args)
        .current_dir(root().join("docker"))
        // The secrets compose.yaml requires, as a user's .env would give.
        .env("SWITCHBOARD_ADMIN_TOKEN", "an-admin-token-of-24-characters")
        .env("SWITCHBOARD_APP_SECRET", "app-secret")
        .env("SWITCHBOARD_VERIFY_TOKEN", "verify-token")
        .env("SWITCHBOARD_PAGE_TOKEN", "page-token")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
