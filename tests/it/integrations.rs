//! Connected accounts at run time: created, changed, disabled and deleted
//! through the admin API without a restart (on every instance), their
//! tokens sealed in the store and never shown, keys rotated, token health
//! from Meta's code 190, alerts by email to a real SMTP server, the audit
//! log, and tenant keys kept to their tenant.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use switchboard::tools::sim::faults::{Fault, Faults};

use crate::kafka::{broker, kafka_toml, unique};
use crate::support::*;

pub const KEY1: &str = "k1:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const KEY2: &str = "k2:ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";
const SECRET_TOKEN: &str = "EAAGsealed-page-token-9876";

fn keys(ring: &str) {
    // Each test runs in a process of its own (nextest).
    std::env::set_var("SWITCHBOARD_KEYS", ring);
}

fn page2(id: &str) -> Value {
    json!({
        "id": id, "tenant": "acme", "channel": "messenger", "app": "main",
        "account_id": "PAGE_2", "access_token": SECRET_TOKEN, "assistant": "support",
        "response_delay_ms": 0
    })
}

/// `POST /api/v1/integrations` with the admin token.
async fn create(desk: &Desk, body: Value) -> (u16, Value) {
    desk.request(Method::POST, "/integrations", Some(body), "admin")
        .await
}

fn page2_message(psid: &str, mid: &str, text: &str) -> Vec<u8> {
    page_body_for("PAGE_2", psid, mid, text)
}

fn page_body_for(page: &str, psid: &str, mid: &str, text: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "object": "page",
        "entry": [{"id": page, "time": switchboard::clock::now_ms(), "messaging": [{
            "sender": {"id": psid}, "recipient": {"id": page},
            "timestamp": switchboard::clock::now_ms(),
            "message": {"mid": mid, "text": text}
        }]}]
    }))
    .unwrap()
}

/// Every file under `dir`, read as bytes, contains `needle`?
fn any_file_contains(dir: &Path, needle: &str) -> bool {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                    return true;
                }
            }
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_integration_created_changed_and_deleted_through_the_api_applies_at_once() {
    keys(KEY1);
    let desk = Desk::start(0, "").await;
    let url = format!("http://{}/webhooks/meta/main", desk.engine.addr);
    // Unknown account: refused before it is connected.
    assert_eq!(
        post_webhook(&url, page2_message("C0", "m0", "hours?"), Some(APP_SECRET)).await,
        404
    );

    let (status, body) = create(&desk, page2("acme-fb2")).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["access_token"], "****9876", "write-only: {body}");
    assert_eq!(body["origin"], "api");
    assert!(!body.to_string().contains(SECRET_TOKEN));

    // Answered at once, with the new token.
    assert_eq!(
        post_webhook(&url, page2_message("C1", "m1", "hours?"), Some(APP_SECRET)).await,
        200
    );
    assert_eq!(desk.graph.answers("C1", 1).await, ["We're open 9-5."]);

    let (_, list) = desk.get("/integrations").await;
    let origins: Vec<(String, String)> = list["integrations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["id"].as_str().unwrap().to_string(),
                i["origin"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        origins.contains(&("acme-fb".into(), "config".into())),
        "{origins:?}"
    );
    assert!(
        origins.contains(&("acme-fb2".into(), "api".into())),
        "{origins:?}"
    );
    assert!(!list.to_string().contains(SECRET_TOKEN));
    assert!(
        !list.to_string().contains(TOKEN),
        "config tokens are masked too"
    );

    // The same id again, or an invalid one: refused with the reason.
    let (status, _) = create(&desk, page2("acme-fb2")).await;
    assert_eq!(status, 409);
    let mut bad = page2("acme-fb3");
    bad["assistant"] = json!("nobody");
    bad["account_id"] = json!("PAGE_3");
    let (status, body) = create(&desk, bad).await;
    assert_eq!(status, 422);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("assistant: no assistant"),
        "{body}"
    );
    let (status, body) = create(&desk, json!({"id": "x", "colour": "red"})).await;
    assert_eq!(status, 422, "{body}");

    // Disabled: recorded, not answered; enabled again: answered.
    let (status, body) = desk
        .request(
            Method::PATCH,
            "/integrations/acme-fb2",
            Some(json!({"enabled": false})),
            "admin",
        )
        .await;
    assert_eq!(
        (status, body["enabled"].clone()),
        (200, json!(false)),
        "{body}"
    );
    assert_eq!(
        post_webhook(&url, page2_message("C1", "m2", "hours?"), Some(APP_SECRET)).await,
        200
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        desk.graph.texts_to("C1").len(),
        1,
        "a disabled integration does not answer"
    );
    let (status, _) = desk
        .request(
            Method::PATCH,
            "/integrations/acme-fb2",
            Some(json!({"enabled": true, "id": "acme-fb2"})),
            "admin",
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = desk
        .request(
            Method::PATCH,
            "/integrations/acme-fb2",
            Some(json!({"tenant": "globex"})),
            "admin",
        )
        .await;
    assert_eq!(status, 422, "the tenant cannot change");

    // No token in clear anywhere in the store's files.
    assert!(!any_file_contains(
        &desk.dir.path().join("data"),
        SECRET_TOKEN
    ));

    // Kept across a restart.
    let desk = desk.restart(0, "").await;
    let url = format!("http://{}/webhooks/meta/main", desk.engine.addr);
    assert_eq!(
        post_webhook(&url, page2_message("C2", "m3", "hours?"), Some(APP_SECRET)).await,
        200
    );
    assert_eq!(desk.graph.answers("C2", 1).await, ["We're open 9-5."]);

    // A config integration is not deleted; a stored one is, with its history.
    let (status, _) = desk
        .request(Method::DELETE, "/integrations/acme-fb", None, "admin")
        .await;
    assert_eq!(status, 409);
    let (status, body) = desk
        .request(
            Method::DELETE,
            "/integrations/acme-fb2?history=purge",
            None,
            "admin",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["conversations_purged"], 2);
    assert_eq!(desk.get("/conversations/acme-fb2:C2").await.0, 404);
    assert_eq!(
        post_webhook(&url, page2_message("C3", "m4", "hours?"), Some(APP_SECRET)).await,
        404
    );

    // Every change is in the audit log, newest first.
    let (_, audit) = desk.get("/audit").await;
    let entries = audit["entries"].as_array().unwrap();
    assert_eq!(entries[0]["method"], "DELETE");
    assert_eq!(entries[0]["path"], "/api/v1/integrations/acme-fb2");
    assert_eq!(entries[0]["who"], "admin");
    assert_eq!(entries[0]["status"], 200);
    assert!(entries
        .iter()
        .any(|e| e["method"] == "PATCH" && e["status"] == 422));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_key_ring_no_token_is_stored() {
    std::env::remove_var("SWITCHBOARD_KEYS");
    let desk = Desk::start(0, "").await;
    let (status, body) = create(&desk, page2("acme-fb2")).await;
    assert_eq!(status, 422);
    assert!(
        body["error"].as_str().unwrap().contains("SWITCHBOARD_KEYS"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_keys_seals_again_under_the_newest_key() {
    keys(KEY1);
    let desk = Desk::start(0, "").await;
    let (status, _) = create(&desk, page2("acme-fb2")).await;
    assert_eq!(status, 201);
    let config = desk.dir.path().join("rotate.toml");
    std::fs::write(
        &config,
        config_toml(
            desk.dir.path(),
            &desk.graph.base_url(),
            "127.0.0.1:0",
            "127.0.0.1:0",
            0,
        ),
    )
    .unwrap();
    let (graph, dir, engine) = (desk.graph, desk.dir, desk.engine);
    engine.shutdown().await;
    let rotate = |ring: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .args(["rotate-keys", "--config"])
            .arg(&config)
            .env("SWITCHBOARD_KEYS", ring)
            .output()
            .unwrap()
    };
    let out = rotate(&format!("{KEY2},{KEY1}"));
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("1 stored integrations sealed again under key 'k2'"),
        "{said}"
    );
    assert!(!said.contains(SECRET_TOKEN));
    // Nothing left under k1: the newest key alone opens every secret.
    let out = rotate(KEY2);
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 stored integrations"));
    keys(KEY2);
    let engine = switchboard::app::start(
        switchboard::config::load_from_str(&std::fs::read_to_string(&config).unwrap(), &[])
            .unwrap(),
    )
    .await
    .unwrap();
    let url = format!("http://{}/webhooks/meta/main", engine.addr);
    assert_eq!(
        post_webhook(&url, page2_message("R1", "r1", "hours?"), Some(APP_SECRET)).await,
        200
    );
    assert_eq!(graph.answers("R1", 1).await, ["We're open 9-5."]);
    engine.shutdown().await;
    drop(dir);
}

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
    assert_eq!(desk.get("/integrations/acme-fb").await.1["token"], "ok");
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
async fn a_tenant_key_cannot_see_or_change_another_tenants_integrations() {
    keys(KEY1);
    let edit: Edit = Arc::new(|toml: String, _: &GraphSim| {
        toml + "\n[[tenants]]\nid = \"globex\"\n\n[[assistants]]\nid = \"globex-bot\"\nkind = \"rules\"\ntenant = \"globex\"\nfallback = \"Globex here.\"\n"
    });
    let desk = Desk::start_edited(0, "", "", edit).await;
    let (status, key) = desk.post("/tenants/globex/keys", json!({})).await;
    assert_eq!(status, 201, "{key}");
    let key = key["key"].as_str().unwrap().to_string();
    // Its own: created under its tenant, whatever the body says.
    let mut own = page2("globex-fb");
    own.as_object_mut().unwrap().remove("tenant");
    let (status, body) = desk
        .request(Method::POST, "/integrations", Some(own.clone()), &key)
        .await;
    assert_eq!(status, 422, "acme's assistant is not globex's: {body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("answers for tenant \"acme\""),
        "{body}"
    );
    own["assistant"] = json!("globex-bot");
    let (status, body) = desk
        .request(Method::POST, "/integrations", Some(own), &key)
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["tenant"], "globex");
    let (status, _) = desk
        .request(
            Method::POST,
            "/integrations",
            Some(json!({"tenant": "acme"})),
            &key,
        )
        .await;
    assert_eq!(status, 404);
    // Another tenant's: as if it did not exist.
    for (method, path) in [
        (Method::GET, "/integrations/acme-fb"),
        (Method::PATCH, "/integrations/acme-fb"),
        (Method::DELETE, "/integrations/acme-fb"),
        (Method::GET, "/integrations/no-such"),
    ] {
        let body = (method == Method::PATCH).then(|| json!({"enabled": false}));
        let (status, answer) = desk.request(method.clone(), path, body, &key).await;
        assert_eq!(status, 404, "{method} {path}: {answer}");
    }
    let (_, list) = desk.request(Method::GET, "/integrations", None, &key).await;
    let ids: Vec<&str> = list["integrations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["globex-fb"]);
    assert!(desk.get("/integrations/acme-fb").await.1["enabled"] == true);
    // Its audit entries only, with its key's id.
    let (_, audit) = desk.request(Method::GET, "/audit", None, &key).await;
    let entries = audit["entries"].as_array().unwrap();
    assert!(!entries.is_empty());
    assert!(entries
        .iter()
        .all(|e| e["tenant"] == "globex" && e["who"].as_str().unwrap().starts_with("key:")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_integration_created_on_one_instance_is_answered_by_the_other_on_kafka() {
    let Some(brokers) = broker() else { return };
    keys(KEY1);
    let graph = GraphSim::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (topic, group) = (unique("sb-int"), unique("sb-int-group"));
    let config = || {
        switchboard::config::load_from_str(
            &kafka_toml(dir.path(), &graph, &brokers, &topic, &group, ""),
            &[],
        )
        .unwrap()
    };
    let first = config();
    let store: Arc<dyn switchboard::store::Store> = Arc::new(
        switchboard::store::embedded::EmbeddedStore::open(
            &first.store.path,
            first.store.cache_bytes(),
        )
        .unwrap(),
    );
    let a = switchboard::app::start_with_store(first, store.clone())
        .await
        .unwrap();
    let b = switchboard::app::start_with_store(config(), store.clone())
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let r = http
        .post(format!("http://{}/api/v1/integrations", a.addr))
        .bearer_auth("admin")
        .json(&page2("acme-fb2"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    // B learns of it at once: the webhook lands there.
    let customers: Vec<String> = (0..6).map(|i| format!("K{i}")).collect();
    for (i, c) in customers.iter().enumerate() {
        let url = format!("http://{}/webhooks/meta/main", b.addr);
        let status = post_webhook(
            &url,
            page2_message(c, &format!("k{i}"), "hours?"),
            Some(APP_SECRET),
        )
        .await;
        assert_eq!(status, 200);
    }
    graph
        .wait_for_everyone(&customers, Duration::from_secs(30))
        .await;
    // Disabled on B: A's actors stop answering too.
    let r = http
        .patch(format!("http://{}/api/v1/integrations/acme-fb2", b.addr))
        .bearer_auth("admin")
        .json(&json!({"enabled": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    tokio::time::sleep(Duration::from_secs(3)).await;
    for (i, c) in customers.iter().enumerate() {
        let url = format!("http://{}/webhooks/meta/main", a.addr);
        post_webhook(
            &url,
            page2_message(c, &format!("k2{i}"), "hours?"),
            Some(APP_SECRET),
        )
        .await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    for c in &customers {
        assert_eq!(
            graph.texts_to(c).len(),
            1,
            "{c}: answered once, then not while disabled"
        );
    }
    a.shutdown().await;
    b.shutdown().await;
}

/// The engine's connect flow driven the way a browser and Meta drive it.
mod connect {
    use super::*;
    use switchboard::connect::signed::Grant;

    const PUBLIC: &str = "https://switchboard.example";

    fn query(url: &str) -> std::collections::HashMap<String, String> {
        reqwest::Url::parse(url)
            .unwrap()
            .query_pairs()
            .into_owned()
            .collect()
    }

    async fn desk() -> Desk {
        keys(KEY1);
        let tail = format!("\n[connect]\npublic_url = \"{PUBLIC}\"\napp = \"main\"\n");
        let edit: Edit = Arc::new(|toml: String, _: &GraphSim| {
            toml.replace(
                "id = \"main\"\napp_secret",
                "id = \"main\"\nmeta_app_id = \"1234567890\"\napp_secret",
            ) + "\n[[tenants]]\nid = \"globex\"\n"
        });
        Desk::start_edited(0, "", &tail, edit).await
    }

    fn on_engine(desk: &Desk, url: &str) -> String {
        url.replace(PUBLIC, &format!("http://{}", desk.engine.addr))
    }

    fn browser() -> reqwest::Client {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
    }

    /// Follows a connect link to Meta's dialog: the `state` it carries.
    async fn dialog(desk: &Desk, link: &str) -> std::collections::HashMap<String, String> {
        let r = browser().get(on_engine(desk, link)).send().await.unwrap();
        assert_eq!(r.status(), 302);
        query(r.headers()["location"].to_str().unwrap())
    }

    async fn link(desk: &Desk) -> String {
        let (status, body) = desk
            .post("/tenants/acme/connect", json!({"assistant": "support"}))
            .await;
        assert_eq!(status, 201, "{body}");
        body["url"].as_str().unwrap().to_string()
    }

    async fn callback(desk: &Desk, code: &str, state: &str) -> (u16, String) {
        let url = format!("http://{}/connect/meta/callback", desk.engine.addr);
        let r = browser()
            .get(url)
            .query(&[("code", code), ("state", state)])
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    async fn choose(desk: &Desk, session: &str, pages: &[&str]) -> (u16, String) {
        let mut form = vec![("session", session)];
        form.extend(pages.iter().map(|p| ("page", *p)));
        let url = format!("http://{}/connect/meta/pages", desk.engine.addr);
        let r = browser().post(url).form(&form).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    fn session_of(html: &str) -> String {
        let at = html
            .find("name=\"session\" value=\"")
            .expect("a session field")
            + 22;
        html[at..].split('"').next().unwrap().to_string()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_business_connects_its_page_in_a_browser_and_its_customers_are_answered() {
        let desk = desk().await;
        let link = link(&desk).await;
        let meta = dialog(&desk, &link).await;
        assert_eq!(meta["client_id"], "1234567890");
        assert_eq!(
            meta["redirect_uri"],
            format!("{PUBLIC}/connect/meta/callback")
        );
        assert_eq!(meta["response_type"], "code");
        let scopes: Vec<&str> = meta["scope"].split(',').collect();
        for s in [
            "pages_messaging",
            "pages_manage_metadata",
            "instagram_manage_messages",
            "instagram_manage_comments",
        ] {
            assert!(scopes.contains(&s), "{scopes:?}");
        }
        assert!(
            !scopes.iter().any(|s| s.starts_with("whatsapp")),
            "least scopes: {scopes:?}"
        );

        let (status, html) = callback(&desk, "good1", &meta["state"]).await;
        assert_eq!(status, 200, "{html}");
        assert!(
            html.contains("Acme &lt;Shoes&gt; &amp; Co"),
            "names escaped: {html}"
        );
        assert!(html.contains("value=\"PAGE_C2\""));
        assert!(!html.contains("EAAP"), "no token in the page");
        let session = session_of(&html);
        assert!(!any_file_contains(
            &desk.dir.path().join("data"),
            "EAAP-PAGE_C1"
        ));

        let (status, html) = choose(&desk, &session, &["PAGE_C1"]).await;
        assert_eq!(status, 200, "{html}");
        assert!(html.contains("connected as acme-fb-page_c1"), "{html}");
        assert!(html.contains("connected as acme-ig-ig_c1"), "{html}");
        assert!(!html.contains("PAGE_C2"), "only the chosen Page");
        let subscribed: Value =
            reqwest::get(format!("http://{}/_sim/connect", desk.graph.sim.addr))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
        assert_eq!(subscribed["subscribed"][0][0], "PAGE_C1");
        assert!(subscribed["subscribed"][0][1]
            .as_str()
            .unwrap()
            .contains("messages"));
        // A session is used once.
        assert_eq!(choose(&desk, &session, &["PAGE_C2"]).await.0, 403);

        // The Page's customers are answered at once, with its Page token.
        let url = format!("http://{}/webhooks/meta/main", desk.engine.addr);
        let body = page_body_for("PAGE_C1", "CC1", "mc1", "hours?");
        assert_eq!(post_webhook(&url, body, Some(APP_SECRET)).await, 200);
        assert_eq!(desk.graph.answers("CC1", 1).await, ["We're open 9-5."]);
        let (_, integration) = desk.get("/integrations/acme-fb-page_c1").await;
        assert_eq!(integration["origin"], "api");
        assert!(integration["access_token"]
            .as_str()
            .unwrap()
            .starts_with("****"));

        // Connecting again gives the same integration a new token.
        let again = dialog(&desk, &link).await;
        let (_, html) = callback(&desk, "good2", &again["state"]).await;
        let (_, html) = choose(&desk, &session_of(&html), &["PAGE_C1"]).await;
        assert!(html.contains("reconnected as acme-fb-page_c1"), "{html}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_business_connects_its_whatsapp_number_and_its_customers_are_answered() {
        let desk = desk().await;
        let (status, body) = desk
            .post(
                "/tenants/acme/connect",
                json!({"assistant": "support", "channels": ["whatsapp"]}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let meta = dialog(&desk, body["url"].as_str().unwrap()).await;
        let scopes: Vec<&str> = meta["scope"].split(',').collect();
        assert!(
            scopes.contains(&"whatsapp_business_messaging"),
            "{scopes:?}"
        );
        assert!(
            !scopes.contains(&"pages_messaging"),
            "least scopes: {scopes:?}"
        );
        let (status, html) = callback(&desk, "wa1", &meta["state"]).await;
        assert_eq!(status, 200, "{html}");
        assert!(
            html.contains("name=\"number\" value=\"PHONE_C1\""),
            "{html}"
        );
        assert!(
            !html.contains("PAGE_C1"),
            "no Pages when only WhatsApp was asked: {html}"
        );
        let session = session_of(&html);
        let url = format!("http://{}/connect/meta/pages", desk.engine.addr);
        let r = browser()
            .post(url)
            .form(&[("session", session.as_str()), ("number", "PHONE_C1")])
            .send()
            .await
            .unwrap();
        let html = r.text().await.unwrap();
        assert!(html.contains("connected as acme-wa-phone_c1"), "{html}");
        let subscribed: Value =
            reqwest::get(format!("http://{}/_sim/connect", desk.graph.sim.addr))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
        assert_eq!(subscribed["subscribed"][0][0], "WABA_C1", "{subscribed}");
        // A customer of the number is answered, with the long-lived token.
        let ts = (switchboard::clock::now_ms() / 1000).to_string();
        desk.post_meta(json!({
            "object": "whatsapp_business_account",
            "entry": [{"id": "WABA_C1", "changes": [{"field": "messages", "value": {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "15550100", "phone_number_id": "PHONE_C1"},
                "contacts": [{"profile": {"name": "Ana"}, "wa_id": "15551234567"}],
                "messages": [{"from": "15551234567", "id": "wamid.C1", "timestamp": ts, "type": "text", "text": {"body": "hours?"}}]
            }}]}]
        }))
        .await;
        assert_eq!(
            desk.graph.answers("15551234567", 1).await,
            ["We're open 9-5."]
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tampered_expired_and_foreign_links_are_refused() {
        let desk = desk().await;
        let link = link(&desk).await;
        let state = dialog(&desk, &link).await["state"].clone();
        // One character of the signed state changed.
        let mut tampered = state.clone().into_bytes();
        tampered[3] = if tampered[3] == b'A' { b'B' } else { b'A' };
        let (status, html) = callback(&desk, "good", &String::from_utf8(tampered).unwrap()).await;
        assert_eq!(status, 403);
        assert!(html.contains("altered"), "{html}");
        let expired = Grant::new(
            "state",
            "acme",
            "support",
            &[switchboard::config::ChannelKind::Messenger],
            1,
        )
        .seal(APP_SECRET.as_bytes());
        let (status, html) = callback(&desk, "good", &expired).await;
        assert_eq!(status, 403);
        assert!(html.contains("expired"), "{html}");
        // An invitation for acme does not open globex's flow.
        let foreign =
            on_engine(&desk, &link).replace("/connect/meta/acme?", "/connect/meta/globex?");
        assert_eq!(browser().get(foreign).send().await.unwrap().status(), 403);
        // Without an invitation, nothing.
        let bare = format!("http://{}/connect/meta/acme", desk.engine.addr);
        assert_eq!(browser().get(bare).send().await.unwrap().status(), 403);
        // A code Meta refuses: its words, no token, nothing created.
        let (status, html) = callback(&desk, "bad-code", &state).await;
        assert_eq!(status, 502, "{html}");
        assert!(
            html.contains("authorization code has been used or has expired"),
            "{html}"
        );
        let (_, list) = desk.get("/integrations").await;
        assert_eq!(list["integrations"].as_array().unwrap().len(), 3);
    }
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
    desk.graph.sim.set_faults(Faults {
        next: [
            Fault::WindowClosed,
            Fault::WindowClosed,
            Fault::WindowClosed,
        ]
        .into(),
        ..Faults::default()
    });
    for (psid, mid) in [("F1", "f1"), ("F2", "f2"), ("F3", "f3")] {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_waiting_for_its_delay_is_not_sent_once_the_integration_is_deleted() {
    keys(KEY1);
    let desk = Desk::start(0, "").await;
    let mut body = page2("acme-fb2");
    body["response_delay_ms"] = json!(1500);
    assert_eq!(create(&desk, body).await.0, 201);
    let url = format!("http://{}/webhooks/meta/main", desk.engine.addr);
    let status = post_webhook(&url, page2_message("D1", "d1", "hours?"), Some(APP_SECRET)).await;
    assert_eq!(status, 200);
    // The turn is planned (typing shown), the reply waits for its delay.
    desk.graph
        .wait_for("typing for D1", |calls| calls.iter().any(|c| c.recipient() == "D1"))
        .await;
    let (status, _) = desk
        .request(Method::DELETE, "/integrations/acme-fb2?history=purge", None, "admin")
        .await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(desk.graph.texts_to("D1").is_empty(), "nothing sent after the delete");
    assert_eq!(desk.get("/conversations/acme-fb2:D1").await.0, 404, "purged for good");
}
