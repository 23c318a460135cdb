//! The store's durability modes under SIGKILL and a simulated power loss.
//! Every customer's reply has been sent (and echoed back by the
//! simulator, as Meta does) when the real binary is killed; after the
//! restart, every customer has exactly one answer in every case. What
//! differs is what the restarted engine does again: a kill alone loses
//! nothing in either mode (every commit is in the operating system's hands
//! before it is acknowledged), so nothing is redone; a power loss with
//! `interval` (no sync within the test) loses the store's unsynced tail,
//! the bus had not committed those events, so they are replayed and their
//! replies held until the replayed echoes confirm them: counted, never
//! sent twice.

use std::path::{Path, PathBuf};
use std::time::Duration;

use switchboard::tools::sim::{ReceiptTarget, Sim, SimOptions};

use crate::crash::{free_port, spawn_engine, wait_ready};
use crate::support::*;

const CUSTOMERS: usize = 30;

#[tokio::test]
async fn sigkill_with_durability_sync_redoes_nothing() {
    let (redone, _) = sigkill_after_replies("sync", false, "0s").await;
    assert_eq!(redone, 0, "a synced store answers nothing again");
}

#[tokio::test]
async fn sigkill_with_group_commit_delays_loses_and_doubles_nothing() {
    // Every webhook and turn waits for its group: the kill still finds
    // each customer answered once and nothing to redo.
    let (redone, _) = sigkill_after_replies("sync", false, "20ms").await;
    assert_eq!(redone, 0, "nothing written in a delayed group is redone");
}

#[tokio::test]
async fn sigkill_with_durability_interval_redoes_nothing() {
    let (redone, _) = sigkill_after_replies("interval", false, "0s").await;
    assert_eq!(redone, 0, "a kill alone loses no committed turn");
}

#[tokio::test]
async fn power_loss_with_durability_interval_replays_the_unsynced_tail_once() {
    let (redone, unsynced) = sigkill_after_replies("interval", true, "0s").await;
    assert!(
        unsynced,
        "the engine ran past its sync interval before the kill: no power loss was simulated"
    );
    assert_eq!(
        redone, CUSTOMERS as u64,
        "every unsynced turn was lost, replayed, and its reply held until its echo"
    );
}

/// The store's journal files under `dir` and their bytes: what a disk
/// that loses everything not synced since this moment would keep.
fn journal_image(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let out: Vec<(PathBuf, Vec<u8>)> = crate::store_upgrade::journal_files(dir)
        .into_iter()
        .map(|path| {
            let bytes = std::fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect();
    assert!(!out.is_empty(), "the store keeps a journal");
    out
}

/// Puts the journals back as `image` holds them (journals begun since
/// are dropped): the power loss.
fn lose_power(dir: &Path, image: &[(PathBuf, Vec<u8>)]) {
    for (path, _) in journal_image(dir) {
        if !image.iter().any(|(p, _)| *p == path) {
            std::fs::remove_file(&path).unwrap();
        }
    }
    for (path, bytes) in image {
        std::fs::write(path, bytes).unwrap();
    }
}

/// Runs the scenario with `store.durability = mode` and returns how many
/// replies the restarted engine regenerated, held, and saw confirmed by
/// their echoes (`switchboard_ambiguous_sends_total{outcome="confirmed"}`),
/// and whether the first engine was killed before an interval sync could
/// have run (a slow machine may pass it). With `power_loss`, the store's
/// journals are put back after the kill as they were once the engine was
/// ready (before the first webhook): with `interval` nothing written since
/// had been synced, so a power loss may drop all of it. `delay` is the
/// bus's and the store's `group_commit_delay`.
async fn sigkill_after_replies(mode: &str, power_loss: bool, delay: &str) -> (u64, bool) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let metrics_port = free_port();
    let graph = GraphSim {
        sim: Sim::start(
            "127.0.0.1:0",
            SimOptions {
                record_limit: 100_000,
                receipts: Some(ReceiptTarget {
                    url: format!("http://127.0.0.1:{port}/webhooks/meta/main"),
                    app_secret: APP_SECRET.into(),
                    read: false,
                    delay: Duration::from_millis(20),
                    instagram: Default::default(),
                    echoes: true,
                    app_id: 555,
                }),
                ..SimOptions::default()
            },
        )
        .await
        .unwrap(),
    };
    let toml = config_toml(
        dir.path(),
        &graph.base_url(),
        &format!("127.0.0.1:{port}"),
        &format!("127.0.0.1:{metrics_port}"),
        0,
    )
    .replacen(
        "[store]\n",
        // The longest interval: nothing after the start is synced here.
        &format!(
            "[store]\ndurability = \"{mode}\"\nsync_interval = \"10s\"\ngroup_commit_delay = \"{delay}\"\n"
        ),
        1,
    )

    .replacen("confirm_wait = \"1s\"", "confirm_wait = \"5s\"", 1)
        + &format!("\n[bus]\ngroup_commit_delay = \"{delay}\"\n");
    let config = dir.path().join("switchboard.toml");
    std::fs::write(&config, toml).unwrap();

    let started = std::time::Instant::now();
    let mut engine = KillOnDrop(spawn_engine(&config));
    wait_ready(port).await;
    let image = journal_image(dir.path());
    let url = format!("http://127.0.0.1:{port}/webhooks/meta/main");
    let customers: Vec<String> = (0..CUSTOMERS).map(|i| format!("DUR_{i}")).collect();
    for (i, c) in customers.iter().enumerate() {
        let body = messages_body(&[(c.as_str(), &format!("m_dur_{i}"), "hours?")]);
        assert_eq!(post_webhook(&url, body, Some(APP_SECRET)).await, 200);
    }
    graph
        .wait_for_everyone(&customers, Duration::from_secs(20))
        .await;
    // The echoes reach the engine and are handled.
    tokio::time::sleep(Duration::from_millis(800)).await;
    engine.kill();
    // Under 10 s (the interval, counted from before the start) no
    // interval sync ran after the start.
    let unsynced = started.elapsed() < Duration::from_secs(10);
    if power_loss && unsynced {
        lose_power(dir.path(), &image);
    }

    let mut engine = KillOnDrop(spawn_engine(&config));
    wait_ready(port).await;
    // Long enough for every replayed reply to be confirmed by its replayed
    // echo, and short of `confirm_wait`, after which an unconfirmed one
    // would go again.
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let metrics = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // And after it: nothing waits to be resent.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    // Nothing is missing from the message logs either.
    for c in &customers {
        let view = admin_json(
            format!("127.0.0.1:{port}"),
            &format!("/conversations/acme-fb:{c}"),
        )
        .await;
        let lines = view["messages"].as_array().map(Vec::len).unwrap_or(0);
        assert_eq!(
            lines, 2,
            "{c}: its question and its answer are logged: {view}"
        );
    }
    engine.kill();
    for c in &customers {
        assert_eq!(graph.texts_to(c).len(), 1, "{c} answered exactly once");
    }
    let count = |outcome: &str| {
        let prefix = format!(
            "switchboard_ambiguous_sends_total{{channel=\"messenger\",outcome=\"{outcome}\"}} "
        );
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .map(|v| v.trim().parse::<u64>().unwrap())
            .unwrap_or(0)
    };
    assert_eq!(count("resent"), 0, "no held reply went again");
    (count("confirmed"), unsynced)
}
