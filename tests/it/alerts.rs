//! Token health and alerts: Meta's code 190 marks an integration expired
//! with its subcode's reason; an expiring token is emailed to a real SMTP
//! server; replies that keep failing raise one signed webhook alert.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use switchboard::tools::sim::faults::{Fault, Faults};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_marks_the_integration_expired_with_the_subcodes_reason() {
    let desk = Desk::start(0, "").await;
    desk.graph.sim.set_faults(Faults {
        next: [Fault::TokenExpired].into(),
        ..Faults::default()
    });
    desk.customer("T1", "t1", "hours?").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let integration = loop {
        let (_, body) = desk.get("/integrations/acme-fb").await;
        if body["token"] == "expired" || tokio::time::Instant::now() > deadline {
            break body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(integration["token"], "expired", "{integration}");
    let reason = integration["token_health"]["reason"].as_str().unwrap();
    assert!(reason.contains("subcode 463"), "{reason}");
    let metrics = desk.metrics().await;
    assert!(
        metrics.contains(
            r#"switchboard_integration_token_status{integration="acme-fb",status="expired"} 1"#
        ),
        "{metrics}"
    );
    // The next send with it works: the mark lifts.
    desk.customer("T2", "t2", "hours?").await;
    desk.graph.answers("T2", 1).await;
    // (The platform has the reply a moment before the engine has its answer.)
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while desk.get("/integrations/acme-fb").await.1["token"] != "ok"
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(desk.get("/integrations/acme-fb").await.1["token"], "ok");
}

/// An integration whose token was refused and that the operator then
/// disables no longer says "expired" in the metrics (its alert clears).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_integration_no_longer_reports_its_expired_token() {
    // Changes to an integration are stored sealed.
    crate::integrations::keys(crate::integrations::KEY1);
    let desk = Desk::start(0, "").await;
    desk.graph.sim.set_faults(Faults {
        next: [Fault::TokenExpired].into(),
        ..Faults::default()
    });
    desk.customer("T1", "t1", "hours?").await;
    let expired =
        r#"switchboard_integration_token_status{integration="acme-fb",status="expired"} 1"#;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !desk.metrics().await.contains(expired) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never marked expired"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, body) = desk
        .request(
            reqwest::Method::PATCH,
            "/integrations/acme-fb",
            Some(json!({"enabled": false})),
            "admin",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let metrics = desk.metrics().await;
    assert!(!metrics.contains(expired), "{metrics}");
    assert!(
        metrics.contains(
            r#"switchboard_integration_token_status{integration="acme-fb",status="expired"} 0"#
        ),
        "{metrics}"
    );
}

/// An SMTP server from PyPI (aiosmtpd) on 127.0.0.1, writing what it
/// receives into a maildir; `None` (test skipped) when the test script did
/// not install it.
fn smtp_server(maildir: &Path) -> Option<(KillOnDrop, u16)> {
    let Ok(python) = std::env::var("SWITCHBOARD_TEST_SMTP_PYTHON") else {
        eprintln!("SKIPPED: SWITCHBOARD_TEST_SMTP_PYTHON not set (scripts/test.sh sets it)");
        return None;
    };
    let port = crate::crash::free_port();
    let child = std::process::Command::new(python)
        .args([
            "-m",
            "aiosmtpd",
            "-n",
            "-l",
            &format!("127.0.0.1:{port}"),
            "-c",
            "aiosmtpd.handlers.Mailbox",
        ])
        .arg(maildir)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let child = KillOnDrop(child);
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some((child, port));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the SMTP server did not start");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiring_token_is_emailed_once_to_the_integrations_address() {
    let dir = tempfile::tempdir().unwrap();
    let mail = dir.path().join("maildir");
    let Some((_smtp, port)) = smtp_server(&mail) else {
        return;
    };
    let tail = format!(
        "\n[alerts]\nsmtp_url = \"smtp://127.0.0.1:{port}\"\nfrom = \"switchboard@acme.example\"\ntoken_check_every = \"300ms\"\n"
    );
    let edit: Edit = Arc::new(|toml: String, _: &GraphSim| {
        toml.replace(
            "id = \"main\"\napp_secret",
            "id = \"main\"\nmeta_app_id = \"1234567890\"\napp_secret",
        )
        .replace(
            "response_delay_ms = 0\n",
            "response_delay_ms = 0\nalert_email = \"ops@acme.example\"\n",
        )
    });
    let graph_token_ends = |desk: &Desk| {
        let url = format!("http://{}/_sim/tokens", desk.graph.sim.addr);
        async move {
            let r = reqwest::Client::new()
                .post(url)
                .json(&json!({ TOKEN: {"expires_in": 2 * 86_400} }))
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success());
        }
    };
    let desk = Desk::start_edited(0, "", &tail, edit).await;
    graph_token_ends(&desk).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let mails = loop {
        let found: Vec<_> = std::fs::read_dir(mail.join("new"))
            .map(|d| {
                d.flatten()
                    .map(|e| std::fs::read_to_string(e.path()).unwrap())
                    .collect()
            })
            .unwrap_or_default();
        if !found.is_empty() || tokio::time::Instant::now() > deadline {
            break found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(mails.len(), 1, "one alert for the expiring token");
    assert!(mails[0].contains("To: ops@acme.example"), "{}", mails[0]);
    assert!(
        mails[0].contains("acme-fb: access token expiring soon"),
        "{}",
        mails[0]
    );
    assert!(!mails[0].contains(TOKEN), "no token in an alert");
    let (_, body) = desk.get("/integrations/acme-fb").await;
    assert_eq!(body["token"], "expiring", "{body}");
    // Checks keep running; the same alert does not go out again this hour.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(std::fs::read_dir(mail.join("new")).unwrap().count(), 1);
    assert!(desk
        .metrics()
        .await
        .contains(r#"switchboard_alerts_sent_total{kind="token_expiring"} 1"#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_that_keep_failing_raise_one_signed_webhook_alert() {
    // A receiver for the alert webhook.
    // (signature header, body) of each alert received.
    type Received = std::sync::Mutex<Vec<(String, Vec<u8>)>>;
    let got: Arc<Received> = Arc::default();
    let seen = got.clone();
    let app = axum::Router::new().route(
        "/alerts",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let seen = seen.clone();
                async move {
                    let sig = headers
                        .get("x-switchboard-signature")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    seen.lock().unwrap().push((sig, body.to_vec()));
                    "ok"
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/alerts", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let tail = "\n[alerts]\nwebhook_secret = \"alert-signing-secret\"\nfailed_sends = 2\n";
    let settings = format!("alert_webhook = \"{hook}\"");
    let desk = Desk::start_with(0, &settings, tail).await;
    // Every call fails: each reply waits in the outbox and is tried again.
    // (A closed window is the customer's silence, never counted.)
    desk.graph.sim.set_faults(Faults {
        next: [Fault::WindowClosed, Fault::WindowClosed].into(),
        server_error_rate: 1.0,
        ..Faults::default()
    });
    for (psid, mid) in [("F1", "f1"), ("F2", "f2"), ("F3", "f3"), ("F4", "f4")] {
        desk.customer(psid, mid, "hours?").await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while got.lock().unwrap().is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = got.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "one alert however many failures");
    let (sig, body) = &got[0];
    assert!(switchboard::channels::webhook::verify_signature(
        b"alert-signing-secret",
        body,
        Some(sig)
    ));
    let alert: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(alert["kind"], "sends_failing");
    assert_eq!(alert["integration"], "acme-fb");
    assert_eq!(alert["tenant"], "acme");
    assert!(!String::from_utf8_lossy(body).contains(TOKEN));
}
