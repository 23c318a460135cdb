//! The Meta connect flow driven the way a browser and Meta drive it: a
//! signed connect link, Meta's dialog (the simulator answers the Graph
//! calls), the pick, and the integrations it makes answering customers.

use std::sync::Arc;

use serde_json::{json, Value};
use switchboard::connect::signed::Grant;

use crate::integrations::{any_file_contains, keys, page_body_for, KEY1};
use crate::support::*;

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
        ) + "\n[[tenants]]\nid = \"globex\"\n\n[[assistants]]\nid = \"globex-bot\"\nkind = \"rules\"\ntenant = \"globex\"\nfallback = \"Globex here.\"\n\n[[apps]]\nid = \"other\"\napp_secret = \"other-app-secret\"\nverify_token = \"verify-other\"\n"
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

/// Follows a connect link to Meta's dialog: the query it carries (`state`
/// among others), and under `cookie` the cookie the browser was given.
async fn dialog(desk: &Desk, link: &str) -> std::collections::HashMap<String, String> {
    let r = browser().get(on_engine(desk, link)).send().await.unwrap();
    assert_eq!(r.status(), 302);
    let mut q = query(r.headers()["location"].to_str().unwrap());
    let set = r.headers()["set-cookie"].to_str().unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Lax"),
        "{set}"
    );
    q.insert("cookie".into(), set.split(';').next().unwrap().to_string());
    q
}

async fn link(desk: &Desk) -> String {
    let (status, body) = desk
        .post("/tenants/acme/connect", json!({"assistant": "support"}))
        .await;
    assert_eq!(status, 201, "{body}");
    body["url"].as_str().unwrap().to_string()
}

async fn callback(desk: &Desk, code: &str, state: &str, cookie: &str) -> (u16, String) {
    let url = format!("http://{}/connect/meta/callback", desk.engine.addr);
    let r = browser()
        .get(url)
        .header("cookie", cookie)
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

    let (status, html) = callback(&desk, "good1", &meta["state"], &meta["cookie"]).await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("Acme &lt;Shoes&gt; &amp; Co"),
        "names escaped: {html}"
    );
    assert!(html.contains("value=\"PAGE_C2\""));
    assert!(
        !html.contains("PAGE_C3"),
        "a Page without a token is not offered"
    );
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
    let subscribed: Value = reqwest::get(format!("http://{}/_sim/connect", desk.graph.sim.addr))
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
    let (_, html) = callback(&desk, "good2", &again["state"], &again["cookie"]).await;
    let (_, html) = choose(&desk, &session_of(&html), &["PAGE_C1"]).await;
    assert!(html.contains("reconnected as acme-fb-page_c1"), "{html}");

    // Deleted with its history kept: connected again, it gets a new id, and
    // the old conversations stay with the old one (never another's to read).
    let gone = reqwest::Client::new()
        .delete(format!(
            "http://{}/api/v1/integrations/acme-fb-page_c1?history=keep",
            desk.engine.addr
        ))
        .bearer_auth("admin")
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 200);
    let third = dialog(&desk, &link).await;
    let (_, html) = callback(&desk, "good3", &third["state"], &third["cookie"]).await;
    let (_, html) = choose(&desk, &session_of(&html), &["PAGE_C1"]).await;
    assert!(html.contains("connected as acme-fb-page_c1-2"), "{html}");
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
    let (status, html) = callback(&desk, "wa1", &meta["state"], &meta["cookie"]).await;
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
    let subscribed: Value = reqwest::get(format!("http://{}/_sim/connect", desk.graph.sim.addr))
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
    let meta = dialog(&desk, &link).await;
    let (state, cookie) = (meta["state"].clone(), meta["cookie"].clone());
    // One character of the signed state changed.
    let mut tampered = state.clone().into_bytes();
    tampered[3] = if tampered[3] == b'A' { b'B' } else { b'A' };
    let (status, html) = callback(
        &desk,
        "good",
        &String::from_utf8(tampered).unwrap(),
        &cookie,
    )
    .await;
    assert_eq!(status, 403);
    assert!(html.contains("altered"), "{html}");
    let expired = Grant::new(
        "state",
        "acme",
        "support",
        &[switchboard::config::ChannelKind::Messenger],
        1,
    )
    .seal(&switchboard::connect::grant_key(APP_SECRET));
    let (status, html) = callback(&desk, "good", &expired, &cookie).await;
    assert_eq!(status, 403);
    assert!(html.contains("expired"), "{html}");
    // An invitation for acme does not open globex's flow.
    let foreign = on_engine(&desk, &link).replace("/connect/meta/acme?", "/connect/meta/globex?");
    assert_eq!(browser().get(foreign).send().await.unwrap().status(), 403);
    // Without an invitation, nothing.
    let bare = format!("http://{}/connect/meta/acme", desk.engine.addr);
    assert_eq!(browser().get(bare).send().await.unwrap().status(), 403);
    // The right state in another browser (without the cookie its flow
    // began with): someone else's flow cannot be finished in a victim's
    // browser.
    let (status, html) = callback(&desk, "good", &state, "sb_connect=other").await;
    assert_eq!(status, 403);
    assert!(html.contains("another browser"), "{html}");
    let (status, _) = callback(&desk, "good", &state, "").await;
    assert_eq!(status, 403);
    // A code Meta refuses: its words, no token, nothing created.
    let (status, html) = callback(&desk, "bad-code", &state, &cookie).await;
    assert_eq!(status, 502, "{html}");
    assert!(
        html.contains("authorization code has been used or has expired"),
        "{html}"
    );
    let (_, list) = desk.get("/integrations").await;
    assert_eq!(list["integrations"].as_array().unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_connected_to_another_tenant_is_neither_taken_nor_subscribed() {
    let desk = desk().await;
    // Connected through another of the engine's Meta apps: still taken.
    let globex = json!({
        "id": "globex-fb", "tenant": "globex", "channel": "messenger", "app": "other",
        "account_id": "PAGE_C1", "access_token": "EAAG-globex-token", "assistant": "globex-bot"
    });
    let (status, body) = desk.post("/integrations", globex).await;
    assert_eq!(status, 201, "{body}");
    // Messenger only: PAGE_C1's Instagram account would be acme's to take.
    let (status, body) = desk
        .post(
            "/tenants/acme/connect",
            json!({"assistant": "support", "channels": ["messenger"]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let meta = dialog(&desk, body["url"].as_str().unwrap()).await;
    let (_, html) = callback(&desk, "good1", &meta["state"], &meta["cookie"]).await;
    let (_, html) = choose(&desk, &session_of(&html), &["PAGE_C1", "PAGE_C2"]).await;
    assert!(
        html.contains("already connected to another account"),
        "{html}"
    );
    assert!(
        !html.contains("globex"),
        "the other tenant is not named: {html}"
    );
    assert!(html.contains("connected as acme-fb-page_c2"), "{html}");
    let subscribed: Value = reqwest::get(format!("http://{}/_sim/connect", desk.graph.sim.addr))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let pages: Vec<&str> = subscribed["subscribed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s[0].as_str().unwrap())
        .collect();
    assert_eq!(pages, ["PAGE_C2"], "only the Page that became acme's");
    let (_, kept) = desk.get("/integrations/globex-fb").await;
    assert_eq!(kept["tenant"], "globex");
    assert_eq!(kept["access_token"], "****oken", "its token untouched");
}
