//! Secrets at the edge: the example config's placeholder secrets and short
//! admin tokens are refused by `serve` unless it listens on loopback only,
//! and no refusal prints a secret.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::crash::{free_port, wait_ready};
use crate::support::KillOnDrop;

/// `serve --config config/switchboard.toml` (the shipped example) with
/// `env` overrides; its data in a fresh folder.
fn serve_shipped(env: &[(&str, String)]) -> Command {
    let dir = tempfile::tempdir().unwrap().keep();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchboard"));
    cmd.args(["serve", "--config"])
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/config/switchboard.toml"
        ))
        .env("SWITCHBOARD__STORE__PATH", dir.join("data"))
        .env(
            "SWITCHBOARD__SERVER__METRICS_LISTEN",
            format!("127.0.0.1:{}", free_port()),
        )
        .env("SWITCHBOARD_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

#[test]
fn the_shipped_placeholders_are_refused_off_loopback_and_never_printed() {
    let out = serve_shipped(&[(
        "SWITCHBOARD__SERVER__LISTEN",
        format!("0.0.0.0:{}", free_port()),
    )])
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for key in [
        "admin.token",
        "apps.main.app_secret",
        "apps.main.verify_token",
        "integrations.acme-fb.access_token",
    ] {
        assert!(stderr.contains(key), "{key} named in:\n{stderr}");
    }
    assert!(
        !stderr.contains("change-me-"),
        "no secret printed:\n{stderr}"
    );
}

#[test]
fn a_short_admin_token_is_refused_off_loopback() {
    let token = "short-token-123";
    let out = serve_shipped(&[
        (
            "SWITCHBOARD__SERVER__LISTEN",
            format!("0.0.0.0:{}", free_port()),
        ),
        ("SWITCHBOARD__ADMIN__TOKEN", token.into()),
        (
            "SWITCHBOARD__APPS__MAIN__APP_SECRET",
            "a-real-app-secret".into(),
        ),
        (
            "SWITCHBOARD__APPS__MAIN__VERIFY_TOKEN",
            "a-real-verify-token".into(),
        ),
        (
            "SWITCHBOARD__INTEGRATIONS__ACME_FB__ACCESS_TOKEN",
            "a-real-page-token".into(),
        ),
    ])
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("admin.token: is shorter than 24"),
        "{stderr}"
    );
    assert!(!stderr.contains(token), "{stderr}");
    assert!(
        !stderr.contains("app_secret"),
        "only the weak one is named: {stderr}"
    );
}

#[tokio::test]
async fn on_loopback_the_shipped_config_starts_with_a_warning() {
    let port = free_port();
    let child = serve_shipped(&[("SWITCHBOARD__SERVER__LISTEN", format!("127.0.0.1:{port}"))])
        .spawn()
        .unwrap();
    let mut engine = KillOnDrop(child);
    tokio::time::timeout(Duration::from_secs(30), wait_ready(port))
        .await
        .expect("ready");
    engine.kill();
    let mut stderr = String::new();
    use std::io::Read;
    if let Some(mut e) = engine.0.stderr.take() {
        e.read_to_string(&mut stderr).unwrap();
    }
    assert!(stderr.contains("Weak secret accepted"), "{stderr}");
    assert!(!stderr.contains("change-me-"), "{stderr}");
}

/// The Docker setup: the image carries no config; the mounted config holds
/// no secret, and with the secrets from the environment it is valid and
/// strong enough to serve on 0.0.0.0.
#[test]
fn the_docker_config_takes_its_secrets_from_the_environment() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docker/engine.toml"))
        .unwrap();
    let env: Vec<(String, String)> = [
        (
            "SWITCHBOARD__ADMIN__TOKEN",
            "an-admin-token-of-thirty-chars",
        ),
        ("SWITCHBOARD__APPS__MAIN__APP_SECRET", "app-secret-from-env"),
        (
            "SWITCHBOARD__APPS__MAIN__VERIFY_TOKEN",
            "verify-token-from-env",
        ),
        (
            "SWITCHBOARD__INTEGRATIONS__ACME_FB__ACCESS_TOKEN",
            "page-token-from-env",
        ),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let config = switchboard::config::load_from_str(&text, &env).expect("valid with its env");
    assert!(switchboard::config::weak_secrets(&config).is_empty());
    assert_eq!(config.apps[0].app_secret.expose(), "app-secret-from-env");
    assert!(
        switchboard::config::load_from_str(&text, &[]).is_err(),
        "without the environment it has no secrets and does not load"
    );
    let dockerfile =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docker/Dockerfile")).unwrap();
    assert!(
        !dockerfile.contains("COPY config"),
        "the image bakes in no config"
    );
    assert!(
        dockerfile.contains("USER switchboard"),
        "the image runs as a user"
    );
}
