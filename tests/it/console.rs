//! The operators' console: its page and assets, the inbox's newest-first
//! listing, the live stream of changes (a tenant hears only its own), and
//! the whole console in Debian's Chromium (`tests/browser/console.mjs`):
//! sign in, a customer's message appearing live, takeover, a person's
//! message delivered with the AI silent, resume, the day's counts in the
//! chart, a tenant key seeing only its tenant. Screenshots are kept in
//! `target/browser-shots`.

use std::time::Duration;

use serde_json::{json, Value};

use crate::browser::{assert_ran, browser_installed, run_script};
use crate::support::*;

const OTHER_PAGE: &str = "PAGE_2";

/// A second tenant with its own Page beside acme's.
fn globex() -> String {
    format!(
        r#"
[[tenants]]
id = "globex"

[[integrations]]
id = "globex-fb"
tenant = "globex"
channel = "messenger"
app = "main"
account_id = "{OTHER_PAGE}"
access_token = "{TOKEN}"
assistant = "support"
"#
    )
}

async fn tenant_key(desk: &Desk, tenant: &str) -> String {
    let (status, body) = desk
        .post(&format!("/tenants/{tenant}/keys"), json!({}))
        .await;
    assert_eq!(status, 201, "{body}");
    body["key"].as_str().unwrap().to_string()
}

async fn other_customer(desk: &Desk, psid: &str, mid: &str, text: &str) {
    let now = switchboard::clock::now_ms();
    desk.post_meta(json!({"object": "page", "entry": [{
        "id": OTHER_PAGE, "time": now,
        "messaging": [{
            "sender": {"id": psid}, "recipient": {"id": OTHER_PAGE}, "timestamp": now,
            "message": {"mid": mid, "text": text}
        }]
    }]}))
    .await;
}

#[tokio::test]
async fn the_console_is_served_from_the_binary_with_a_strict_policy() {
    let desk = Desk::start(0, "").await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let base = format!("http://{}", desk.engine.addr);
    let r = http.get(format!("{base}/console")).send().await.unwrap();
    assert_eq!(r.status(), 308);
    assert_eq!(r.headers()["location"], "/console/");
    for (path, kind) in [
        ("/console/", "text/html"),
        ("/console/app.js", "application/javascript"),
        ("/console/app.css", "text/css"),
    ] {
        let r = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let h = r.headers().clone();
        assert!(
            h["content-type"].to_str().unwrap().starts_with(kind),
            "{path}"
        );
        let policy = h["content-security-policy"].to_str().unwrap();
        assert!(policy.contains("script-src 'self'") && policy.contains("connect-src 'self'"));
        assert_eq!(h["x-content-type-options"], "nosniff");
        let body = r.text().await.unwrap();
        // Nothing is fetched from anywhere but the engine.
        assert!(
            !body.contains("//cdn") && !body.contains("googleapis"),
            "{path}"
        );
    }
}

#[tokio::test]
async fn the_inbox_lists_newest_activity_first_page_by_page() {
    let desk = Desk::start(0, "").await;
    for (i, psid) in ["c-a", "c-b", "c-c", "c-d", "c-e"].iter().enumerate() {
        desk.customer(psid, &format!("m-{i}"), "hello").await;
        desk.settled(psid, 2).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // c-b writes again: it is now the newest.
    desk.customer("c-b", "m-again", "hello again").await;
    desk.settled("c-b", 4).await;
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let q = match &after {
            Some(a) => format!("/conversations?order=recent&limit=2&after={a}"),
            None => "/conversations?order=recent&limit=2".to_string(),
        };
        let (status, page) = desk.get(&q).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["partial"], false);
        for c in page["conversations"].as_array().unwrap() {
            seen.push(c["customer"].as_str().unwrap().to_string());
        }
        match page["next"].as_str() {
            Some(n) => after = Some(n.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, ["c-b", "c-e", "c-d", "c-c", "c-a"]);
    let (status, body) = desk.get("/conversations?order=oldest").await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = desk
        .get("/conversations?order=recent&after=acme-fb:c-a")
        .await;
    assert_eq!(status, 400, "{body}");
}

/// Reads server-sent events until one names `wanted` (or the time is up);
/// the conversation ids named on the way.
async fn heard(stream: &mut reqwest::Response, wanted: &str, limit: Duration) -> Vec<String> {
    let mut names = Vec::new();
    let mut buf = String::new();
    let deadline = tokio::time::Instant::now() + limit;
    while let Ok(Ok(Some(chunk))) = tokio::time::timeout_at(deadline, stream.chunk()).await {
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(at) = buf.find("\n\n") {
            let block: String = buf.drain(..at + 2).collect();
            if let Some(data) = block.lines().find_map(|l| l.strip_prefix("data:")) {
                if let Ok(v) = serde_json::from_str::<Value>(data.trim()) {
                    if let Some(id) = v["id"].as_str() {
                        names.push(id.to_string());
                    }
                }
            }
        }
        if names.iter().any(|n| n == wanted) {
            break;
        }
    }
    names
}

#[tokio::test]
async fn a_tenant_key_hears_its_own_conversations_change_and_no_others() {
    let desk = Desk::start_with(0, "", &globex()).await;
    let key = tenant_key(&desk, "acme").await;
    let http = reqwest::Client::new();
    let url = format!("http://{}/api/v1/stream", desk.engine.addr);
    let mut acme = http.get(&url).bearer_auth(&key).send().await.unwrap();
    assert_eq!(acme.status(), 200);
    assert!(acme.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let mut admin = http.get(&url).bearer_auth("admin").send().await.unwrap();
    // Another tenant's customer first, then one of acme's.
    other_customer(&desk, "g-1", "g-m1", "hello").await;
    desk.customer("a-1", "a-m1", "what are your hours?").await;
    let names = heard(&mut acme, "acme-fb:a-1", Duration::from_secs(10)).await;
    assert!(names.iter().any(|n| n == "acme-fb:a-1"), "{names:?}");
    assert!(names.iter().all(|n| n.starts_with("acme-fb:")), "{names:?}");
    let names = heard(&mut admin, "globex-fb:g-1", Duration::from_secs(10)).await;
    assert!(names.iter().any(|n| n == "globex-fb:g-1"), "{names:?}");
    // Asking for another tenant's stream is refused like its listing.
    let r = http
        .get(format!("{url}?tenant=globex"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_chromium() {
    if !browser_installed() {
        return;
    }
    let desk = Desk::start_with(0, "", &globex()).await;
    let key = tenant_key(&desk, "acme").await;
    // One conversation answered before anyone signs in, one of another
    // tenant, and one whose customer last wrote 8 days ago (no window).
    desk.customer("alice", "al-1", "what are your hours?").await;
    desk.settled("alice", 2).await;
    other_customer(&desk, "gina", "gi-1", "hello globex").await;
    let old = switchboard::clock::now_ms() - 8 * 86_400_000;
    desk.customer_at("olga", "ol-1", "hello from last week", old)
        .await;
    desk.wait_conversation("olga", "the old message", |c| {
        c["message_count"].as_u64() >= Some(1)
    })
    .await;
    let out = run_script(
        "console.mjs",
        &[
            ("ENGINE", format!("http://{}", desk.engine.addr)),
            ("TENANT_KEY", key),
            ("ADMIN_TOKEN", "admin".into()),
            ("APP_SECRET", APP_SECRET.into()),
            ("PAGE", PAGE.into()),
            ("OTHER_PAGE", OTHER_PAGE.into()),
        ],
    )
    .await;
    assert_ran(&out);
    // What the browser did, seen from the Graph API's side: the AI's
    // answer, the person's message once, nothing from the AI during the
    // takeover, and the AI's answer again after the resume.
    assert_eq!(
        desk.graph.texts_of("bob"),
        [
            "We're open 9-5.",
            "A person here: how can I help?",
            "We're open 9-5."
        ]
    );
}

#[tokio::test]
async fn an_open_stream_does_not_hold_the_engine_up_at_shutdown() {
    let desk = Desk::start(0, "").await;
    let url = format!("http://{}/api/v1/stream", desk.engine.addr);
    let mut stream = reqwest::Client::new()
        .get(&url)
        .bearer_auth("admin")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    tokio::time::timeout(Duration::from_secs(15), desk.engine.shutdown())
        .await
        .expect("the engine stops with a console stream open");
    // The stream was ended, not cut off mid-event.
    let end = tokio::time::timeout(Duration::from_secs(5), stream.chunk()).await;
    assert!(matches!(end, Ok(Ok(None)) | Ok(Err(_))), "{end:?}");
}

#[tokio::test]
async fn a_tenant_key_s_stream_ends_once_the_key_is_revoked() {
    let desk = Desk::start(0, "").await;
    let (status, created) = desk.post("/tenants/acme/keys", json!({})).await;
    assert_eq!(status, 201, "{created}");
    let key = created["key"].as_str().unwrap().to_string();
    let id = created["id"].as_str().unwrap().to_string();
    let url = format!("http://{}/api/v1/stream", desk.engine.addr);
    let mut stream = reqwest::Client::new()
        .get(&url)
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let revoked = reqwest::Client::new()
        .delete(format!(
            "http://{}/api/v1/tenants/acme/keys/{id}",
            desk.engine.addr
        ))
        .bearer_auth("admin")
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 204);
    // Within the key check (5 s) the stream ends, keep-alives aside.
    let ended = tokio::time::timeout(Duration::from_secs(12), async {
        loop {
            match stream.chunk().await {
                Ok(Some(_)) => continue,
                other => return other.map(|_| ()),
            }
        }
    })
    .await;
    assert!(matches!(ended, Ok(Ok(()))), "{ended:?}");
}
