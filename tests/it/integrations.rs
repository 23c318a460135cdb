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

use crate::kafka::{broker, kafka_toml, unique};
use crate::support::*;

pub const KEY1: &str = "k1:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const KEY2: &str = "k2:ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";
const SECRET_TOKEN: &str = "EAAGsealed-page-token-9876";

pub fn keys(ring: &str) {
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

pub fn page_body_for(page: &str, psid: &str, mid: &str, text: &str) -> Vec<u8> {
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
pub fn any_file_contains(dir: &Path, needle: &str) -> bool {
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
    // Unknown account: taken (Meta would send it again for days) and
    // counted, never answered.
    assert_eq!(
        post_webhook(&url, page2_message("C0", "m0", "hours?"), Some(APP_SECRET)).await,
        200
    );
    assert!(desk.metrics().await.contains(
        "switchboard_webhook_requests_total{channel=\"messenger\",outcome=\"unknown_account\"} 1\n"
    ));

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
    assert!(
        desk.graph.texts_to("C0").is_empty(),
        "taken before: never answered"
    );

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

    // Not JSON (and no content type): 400 with a JSON error, like every route.
    let r = reqwest::Client::new()
        .post(format!("http://{}/api/v1/integrations", desk.engine.addr))
        .bearer_auth("admin")
        .body("id=acme-fb9")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("not valid JSON"),
        "{body}"
    );

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
    let (status, _) = desk
        .request(
            Method::PATCH,
            "/integrations/acme-fb2",
            Some(json!({"channel": "whatsapp"})),
            "admin",
        )
        .await;
    assert_eq!(status, 422, "the channel cannot change");
    // What a GET shows, sent back whole, does not replace the token.
    let (_, shown) = desk.get("/integrations/acme-fb2").await;
    let (status, body) = desk
        .request(
            Method::PATCH,
            "/integrations/acme-fb2",
            Some(shown),
            "admin",
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(body["error"].as_str().unwrap().contains("masked"), "{body}");

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
        200
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
async fn a_tenant_key_cannot_see_or_change_another_tenants_integrations() {
    keys(KEY1);
    let edit: Edit = Arc::new(|toml: String, _: &GraphSim| {
        toml + "\n[[tenants]]\nid = \"globex\"\n\n[[assistants]]\nid = \"globex-bot\"\nkind = \"rules\"\ntenant = \"globex\"\nfallback = \"Globex here.\"\n"
    });
    let desk = Desk::start_edited(0, "", "", edit).await;
    let (status, key) = desk.post("/tenants/globex/keys", json!({})).await;
    assert_eq!(status, 201, "{key}");
    let key = key["key"].as_str().unwrap().to_string();
    // Its integrations are created with the admin token (or by the connect
    // flow); an assistant of another tenant is refused without naming it.
    let mut own = page2("globex-fb");
    own["tenant"] = json!("globex");
    own["account_id"] = json!("PAGE_G");
    let (status, body) = create(&desk, own.clone()).await;
    assert_eq!(status, 422, "acme's assistant is not globex's: {body}");
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("answers for another tenant"), "{body}");
    assert!(
        !error.contains("acme"),
        "another tenant is never named: {body}"
    );
    own["assistant"] = json!("globex-bot");
    assert_eq!(create(&desk, own.clone()).await.0, 201);
    // A key cannot name an account: that would let it take another
    // business's Page (acme's PAGE_1 here).
    own["id"] = json!("globex-fb2");
    own["account_id"] = json!(PAGE);
    let (status, body) = desk
        .request(Method::POST, "/integrations", Some(own), &key)
        .await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("connect"),
        "{body}"
    );
    let (status, body) = desk
        .request(
            Method::PATCH,
            "/integrations/globex-fb",
            Some(json!({"account_id": PAGE})),
            &key,
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = desk
        .request(
            Method::PATCH,
            "/integrations/globex-fb",
            Some(json!({"enabled": false, "account_id": "PAGE_G"})),
            &key,
        )
        .await;
    assert_eq!(
        (status, body["enabled"].clone()),
        (200, json!(false)),
        "{body}"
    );
    // Alerts go to public HTTPS endpoints only when a key sets them, and an
    // address is one address.
    for (patch, ok) in [
        (
            json!({"alert_webhook": "http://127.0.0.1:9464/metrics"}),
            false,
        ),
        (json!({"alert_webhook": "https://127.0.0.1/x"}), false),
        (json!({"alert_webhook": "https://169.254.169.254/x"}), false),
        (json!({"alert_webhook": "https://[::1]/x"}), false),
        (json!({"alert_webhook": "https://localhost:8443/x"}), false),
        (json!({"alert_webhook_public_only": false}), true),
        (
            json!({"alert_email": "ops@globex.example\r\nBcc: x@y.z"}),
            false,
        ),
        (
            json!({"alert_webhook": "https://ops.globex.example/hook"}),
            true,
        ),
    ] {
        let (status, body) = desk
            .request(Method::PATCH, "/integrations/globex-fb", Some(patch), &key)
            .await;
        assert_eq!(status == 200, ok, "{status} {body}");
    }
    // Posted to public addresses only, and a key cannot say otherwise.
    let (_, shown) = desk.get("/integrations/globex-fb").await;
    assert_eq!(shown["alert_webhook_public_only"], true, "{shown}");
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
        .wait_for("typing for D1", |calls| {
            calls.iter().any(|c| c.recipient() == "D1")
        })
        .await;
    let (status, _) = desk
        .request(
            Method::DELETE,
            "/integrations/acme-fb2?history=purge",
            None,
            "admin",
        )
        .await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        desk.graph.texts_to("D1").is_empty(),
        "nothing sent after the delete"
    );
    assert_eq!(
        desk.get("/conversations/acme-fb2:D1").await.0,
        404,
        "purged for good"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_log_line_carries_a_token_even_at_debug() {
    let graph = GraphSim::start().await;
    let dir = tempfile::tempdir().unwrap();
    let port = crate::crash::free_port();
    let config = dir.path().join("engine.toml");
    std::fs::write(
        &config,
        config_toml(
            dir.path(),
            &graph.base_url(),
            &format!("127.0.0.1:{port}"),
            &format!("127.0.0.1:{}", crate::crash::free_port()),
            0,
        ),
    )
    .unwrap();
    let log = dir.path().join("engine.log");
    let engine = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("SWITCHBOARD_KEYS", KEY1)
        .env("SWITCHBOARD_LOG", "debug")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut engine = KillOnDrop(engine);
    crate::crash::wait_ready(port).await;
    let http = reqwest::Client::new();
    let api = format!("http://127.0.0.1:{port}/api/v1");
    let r = http
        .post(format!("{api}/integrations"))
        .bearer_auth("admin")
        .json(&page2("acme-fb2"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    // Answered, then refused by Meta (190), then a new token, a bad PATCH.
    let url = format!("http://127.0.0.1:{port}/webhooks/meta/main");
    post_webhook(&url, page2_message("L1", "l1", "hours?"), Some(APP_SECRET)).await;
    graph.answers("L1", 1).await;
    graph
        .sim
        .set_faults(switchboard::tools::sim::faults::Faults {
            token_expired_rate: 1.0,
            ..Default::default()
        });
    post_webhook(&url, page2_message("L2", "l2", "hours?"), Some(APP_SECRET)).await;
    post_webhook(
        &url,
        messages_body(&[("L3", "l3", "hours?")]),
        Some(APP_SECRET),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for patch in [
        json!({"access_token": "EAAGsecond-token-5555"}),
        json!({"access_token": 12, "nonsense": true}),
    ] {
        http.patch(format!("{api}/integrations/acme-fb2"))
            .bearer_auth("admin")
            .json(&patch)
            .send()
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    engine.kill();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("Access token expired"),
        "the 190 was logged: {text}"
    );
    for secret in [
        SECRET_TOKEN,
        "EAAGsecond-token-5555",
        TOKEN,
        APP_SECRET,
        "admin\"",
    ] {
        assert!(!text.contains(secret), "{secret} in the log");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_integration_whose_assistant_left_the_config_is_set_aside() {
    keys(KEY1);
    let with_extra: Edit = Arc::new(|toml: String, _: &GraphSim| {
        toml + "\n[[assistants]]\nid = \"extra\"\nkind = \"rules\"\nfallback = \"Extra here.\"\n"
    });
    let desk = Desk::start_edited(0, "", "", with_extra).await;
    let mut body = page2("acme-fb2");
    body["assistant"] = json!("extra");
    assert_eq!(create(&desk, body).await.0, 201);
    // The next engine's config has no such assistant: it starts, and the
    // integration is left out (logged) instead of answering with nothing;
    // its webhooks are refused (503) so that Meta brings them again once
    // the config is put right, never taken and dropped.
    let desk = desk.restart_edited(0, "", Arc::new(|t, _| t)).await;
    let url = format!("http://{}/webhooks/meta/main", desk.engine.addr);
    let status = post_webhook(&url, page2_message("X1", "x1", "hi"), Some(APP_SECRET)).await;
    assert_eq!(status, 503);
    assert_eq!(desk.get("/integrations/acme-fb2").await.0, 404);
    desk.customer("X2", "x2", "hours?").await;
    assert_eq!(desk.graph.answers("X2", 1).await, ["We're open 9-5."]);
}
