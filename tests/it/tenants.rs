//! Tenants on different stores in one engine: one tenant's conversations
//! in the embedded store, another's in a CQL store (kassandra here), each
//! answered, listed, and remembered across a restart.

use serde_json::json;
use switchboard::clock::now_ms;
use switchboard::store::scylla::ScyllaStore;
use switchboard::store::Store;

use crate::store_conformance::{kassandra, schema_for_kassandra, scylla_config};
use crate::support::*;

const GLOBEX_PAGE: &str = "PAGE_GLOBEX";

#[tokio::test]
async fn each_tenant_lives_in_its_own_store() {
    let store = scylla_config(vec![kassandra().to_string()], true);
    switchboard::store::scylla::apply_statements(&store, &schema_for_kassandra(&store))
        .await
        .expect("schema on kassandra");
    let tail = format!(
        r#"
[store.scylla]
nodes = ["{node}"]
keyspace = "{ks}"
replication = "{rep}"
await_schema_agreement = false
apply_schema = false

[[tenants]]
id = "globex"
store = "scylla"

[[integrations]]
id = "globex-fb"
tenant = "globex"
channel = "messenger"
app = "main"
account_id = "{GLOBEX_PAGE}"
access_token = "{TOKEN}"
assistant = "support"
"#,
        node = store.nodes[0],
        ks = store.keyspace,
        rep = store.replication,
    );
    let desk = Desk::start_with(0, "", &tail).await;
    let globex = |mid: &str| {
        json!({
            "sender": {"id": "G_1"}, "recipient": {"id": GLOBEX_PAGE}, "timestamp": now_ms(),
            "message": {"mid": mid, "text": "hours?"}
        })
    };
    let webhook = |event: serde_json::Value| {
        serde_json::to_vec(&json!({"object": "page", "entry": [{"id": GLOBEX_PAGE, "time": now_ms(), "messaging": [event]}]})).unwrap()
    };
    let url = format!("http://{}/webhooks/meta/main", desk.engine.addr);
    assert_eq!(
        post_webhook(&url, webhook(globex("m_g1")), Some(APP_SECRET)).await,
        200
    );
    desk.customer("A_1", "m_a1", "hours?").await;
    desk.graph
        .wait_for("both answered", |_| {
            desk.graph.texts_to("G_1").len() == 1 && desk.graph.texts_to("A_1").len() == 1
        })
        .await;
    let (_, listed) = desk.get("/conversations").await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut listed = listed;
    while listed["conversations"].as_array().map_or(0, Vec::len) < 2 {
        assert!(tokio::time::Instant::now() < deadline, "{listed}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        listed = desk.get("/conversations").await.1;
    }
    let ids: Vec<_> = listed["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, ["acme-fb:A_1", "globex-fb:G_1"]);

    // The globex conversation is in the CQL store, acme's is not.
    let cql = ScyllaStore::open_on_schema(&store).await.unwrap();
    assert!(cql.conversation("globex-fb:G_1").await.unwrap().is_some());
    assert!(cql.conversation("acme-fb:A_1").await.unwrap().is_none());

    // After a restart, a redelivery is recognised from the CQL store.
    let desk = desk.restart(0, "").await;
    let url = format!("http://{}/webhooks/meta/main", desk.engine.addr);
    assert_eq!(
        post_webhook(&url, webhook(globex("m_g1")), Some(APP_SECRET)).await,
        200
    );
    assert_eq!(
        post_webhook(&url, webhook(globex("m_g2")), Some(APP_SECRET)).await,
        200
    );
    desk.graph
        .wait_for("the new message answered", |_| {
            desk.graph.texts_to("G_1").len() >= 2
        })
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        desk.graph.texts_to("G_1").len(),
        2,
        "the redelivery is not answered again"
    );
    desk.engine.shutdown().await;
}

/// A TCP proxy that can be cut, standing for the network between the
/// engine and its store.
struct Link {
    addr: std::net::SocketAddr,
    open: std::sync::Arc<std::sync::atomic::AtomicBool>,
    connections: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Link {
    async fn to(target: std::net::SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let open = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let connections = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (o, c) = (open.clone(), connections.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !o.load(std::sync::atomic::Ordering::SeqCst) {
                    continue; // dropped: the store is unreachable
                }
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                c.lock().unwrap().push(task.abort_handle());
            }
        });
        Self {
            addr,
            open,
            connections,
        }
    }

    fn cut(&self) {
        self.open.store(false, std::sync::atomic::Ordering::SeqCst);
        for c in self.connections.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    fn restore(&self) {
        self.open.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

async fn wait_status(url: &str, body: impl Fn() -> Option<Vec<u8>>, want: u16) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let status = match body() {
            Some(b) => post_webhook(url, b, Some(APP_SECRET)).await.as_u16(),
            None => reqwest::get(url).await.map_or(0, |r| r.status().as_u16()),
        };
        if status == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{url} never answered {want} (last {status})"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_store_gets_webhooks_503_and_the_engine_recovers_on_its_own() {
    let store = scylla_config(vec![kassandra().to_string()], true);
    switchboard::store::scylla::apply_statements(&store, &schema_for_kassandra(&store))
        .await
        .expect("schema on kassandra");
    let link = Link::to(kassandra()).await;
    let tail = format!(
        "\n[store.scylla]\nnodes = [\"{}\"]\nkeyspace = \"{}\"\nreplication = \"{}\"\nrequest_timeout_ms = 1000\nawait_schema_agreement = false\napply_schema = false\n",
        link.addr, store.keyspace, store.replication
    );
    // Every tenant on the CQL store, through the link.
    let graph = GraphSim::start().await;
    let dir = tempfile::tempdir().unwrap();
    let toml = config_toml(
        dir.path(),
        &graph.base_url(),
        "127.0.0.1:0",
        "127.0.0.1:0",
        0,
    )
    .replace("[store]\n", "[store]\nkind = \"scylla\"\n")
        + &tail;
    let config = switchboard::config::load_from_str(&toml, &[]).unwrap();
    let engine = switchboard::app::start(config)
        .await
        .expect("engine starts");
    let url = format!("http://{}/webhooks/meta/main", engine.addr);
    let readyz = format!("http://{}/readyz", engine.addr);
    let body = |mid: &'static str| move || Some(messages_body(&[("U_1", mid, "hours?")]));
    assert_eq!(
        post_webhook(&url, body("m_u1")().unwrap(), Some(APP_SECRET)).await,
        200
    );
    graph
        .wait_for("the first answer", |_| graph.texts_to("U_1").len() == 1)
        .await;

    link.cut();
    wait_status(&readyz, || None, 503).await;
    wait_status(&url, body("m_u2"), 503).await;

    link.restore();
    wait_status(&readyz, || None, 200).await;
    wait_status(&url, body("m_u2"), 200).await;
    graph
        .wait_for("the answer after recovery", |_| {
            graph.texts_to("U_1").len() >= 2
        })
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(graph.texts_to("U_1").len(), 2, "each message answered once");
    engine.shutdown().await;
}

/// Tenant `globex` on the ScyllaDB store (kassandra) reached through a
/// link the test can cut, with `integrations`: the link and the config
/// sections to add.
async fn globex_on_a_cuttable_store(integrations: &str) -> (Link, String) {
    let store = scylla_config(vec![kassandra().to_string()], true);
    switchboard::store::scylla::apply_statements(&store, &schema_for_kassandra(&store))
        .await
        .expect("schema on kassandra");
    let link = Link::to(kassandra()).await;
    let tail = format!(
        r#"
[store.scylla]
nodes = ["{node}"]
keyspace = "{ks}"
replication = "{rep}"
request_timeout_ms = 1000
await_schema_agreement = false
apply_schema = false

[[tenants]]
id = "globex"
store = "scylla"
{integrations}"#,
        node = link.addr,
        ks = store.keyspace,
        rep = store.replication,
    );
    (link, tail)
}

/// Two tenants on different stores: one tenant's store becomes unreachable.
/// Only that tenant's webhooks get 503 (Meta retries them); the other
/// tenant's are answered as usual, `/readyz` stays 200 and names the store
/// that is down; once it is back, the held messages are answered once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tenants_store_down_turns_away_that_tenant_only() {
    let (link, tail) = globex_on_a_cuttable_store(&format!(
        r#"
[[integrations]]
id = "globex-fb"
tenant = "globex"
channel = "messenger"
app = "main"
account_id = "{GLOBEX_PAGE}"
access_token = "{TOKEN}"
assistant = "support"
"#
    ))
    .await;
    let desk = Desk::start_with(0, "", &tail).await;
    let url = format!("http://{}/webhooks/meta/main", desk.engine.addr);
    let readyz = format!("http://{}/readyz", desk.engine.addr);
    let globex = |mid: &'static str| {
        move || {
            Some(
                serde_json::to_vec(&json!({"object": "page", "entry": [{"id": GLOBEX_PAGE, "time": now_ms(), "messaging": [{
                    "sender": {"id": "G_2"}, "recipient": {"id": GLOBEX_PAGE}, "timestamp": now_ms(),
                    "message": {"mid": mid, "text": "hours?"}
                }]}]}))
                .unwrap(),
            )
        }
    };
    assert_eq!(
        post_webhook(&url, globex("m_gd1")().unwrap(), Some(APP_SECRET)).await,
        200
    );
    desk.graph
        .wait_for("globex answered", |_| desk.graph.texts_to("G_2").len() == 1)
        .await;

    link.cut();
    wait_status(&url, globex("m_gd2"), 503).await;
    // The other tenant is not affected.
    desk.customer("A_2", "m_ad1", "hours?").await;
    desk.graph
        .wait_for("acme answered during globex's outage", |_| {
            desk.graph.texts_to("A_2").len() == 1
        })
        .await;
    let ready = reqwest::get(&readyz).await.unwrap();
    assert_eq!(ready.status(), 200);
    let said = ready.text().await.unwrap();
    assert!(
        said.contains("scylla") && said.contains("globex-fb"),
        "readyz names the store that is down: {said}"
    );

    link.restore();
    wait_status(&url, globex("m_gd2"), 200).await;
    desk.graph
        .wait_for("globex answered after recovery", |_| {
            desk.graph.texts_to("G_2").len() >= 2
        })
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        desk.graph.texts_to("G_2").len(),
        2,
        "each message answered once"
    );
    assert_eq!(
        reqwest::get(&readyz).await.unwrap().text().await.unwrap(),
        "ready"
    );
    desk.engine.shutdown().await;
}

#[test]
fn migrate_says_what_it_did() {
    let dir = tempfile::tempdir().unwrap();
    let toml = config_toml(
        dir.path(),
        "http://127.0.0.1:9",
        "127.0.0.1:0",
        "127.0.0.1:0",
        0,
    );
    let config = dir.path().join("embedded.toml");
    std::fs::write(&config, &toml).unwrap();
    let run = |config: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .args(["migrate", "--config"])
            .arg(config)
            .output()
            .unwrap()
    };
    let out = run(&config);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("Nothing to migrate"));

    // A cluster that does not answer: a failure that says so.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let scylla = dir.path().join("scylla.toml");
    let toml = toml.replace("[store]\n", "[store]\nkind = \"scylla\"\n")
        + &format!("\n[store.scylla]\nnodes = [\"{closed}\"]\nrequest_timeout_ms = 1000\n");
    std::fs::write(&scylla, toml).unwrap();
    let out = run(&scylla);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot connect to ScyllaDB"), "{err}");
}

/// A website chat of a tenant whose store stops answering: a visitor's
/// message is not acknowledged meanwhile (the widget is told to send it
/// again), as the tenant's webhooks get 503; once the store is back the
/// message sent again is acknowledged and answered once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_chat_messages_wait_while_their_tenants_store_is_down() {
    use crate::web::{hello, next, open_to, say, ORIGIN};
    let (link, tail) = globex_on_a_cuttable_store(&format!(
        r#"
[[integrations]]
id = "globex-web"
tenant = "globex"
channel = "web"
assistant = "support"
allowed_origins = ["{ORIGIN}"]
identity_secret = "web-identity-secret-of-32-characters"
"#
    ))
    .await;
    let desk = Desk::start_with(0, "", &tail).await;
    let mut ws = open_to(&desk, "globex-web", ORIGIN).await.unwrap();
    hello(&mut ws, None, 0).await;
    let ask =
        |id: &str| json!({"type": "message", "client_id": id, "text": "what are your hours?"});
    say(&mut ws, ask("w1")).await;
    assert_eq!(next(&mut ws, "ack").await["client_id"], "w1");
    assert_eq!(next(&mut ws, "message").await["text"], "We're open 9-5.");

    link.cut();
    // Refused (to be sent again) once the engine sees the store down. A
    // try taken before that is answered once the store is back, whenever
    // its answer comes: every answer is counted on the way.
    let mut answers = 0;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        say(&mut ws, ask("w2")).await;
        let answer = next_of(&mut ws, &["ack", "error"], &mut answers).await;
        if answer["type"] == "error" {
            assert_eq!(answer["retry"], true, "{answer}");
            assert_eq!(answer["client_id"], "w2");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still acknowledged while the store is down"
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }

    link.restore();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        say(&mut ws, ask("w2")).await;
        if next_of(&mut ws, &["ack", "error"], &mut answers).await["type"] == "ack" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never taken again");
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    // Taken before the outage was noticed or after it: answered once.
    let until = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    while tokio::time::Instant::now() < until && answers < 1 {
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        let _ = tokio::time::timeout(left, next_of(&mut ws, &["message"], &mut answers)).await;
    }
    // Nothing more comes.
    let until = tokio::time::Instant::now() + std::time::Duration::from_secs(3);
    while tokio::time::Instant::now() < until {
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        let _ = tokio::time::timeout(left, next_of(&mut ws, &["message"], &mut answers)).await;
    }
    assert_eq!(answers, 1, "answered once");
    desk.engine.shutdown().await;
}

/// The next frame whose type is one of `kinds`, counting in `answers` the
/// assistant's replies passed on the way.
async fn next_of(
    ws: &mut crate::web::Socket,
    kinds: &[&str],
    answers: &mut usize,
) -> serde_json::Value {
    use futures_util::StreamExt;
    loop {
        let msg = tokio::time::timeout(std::time::Duration::from_secs(20), ws.next())
            .await
            .expect("a frame")
            .unwrap()
            .unwrap();
        if let tokio_tungstenite::tungstenite::Message::Text(t) = msg {
            let v: serde_json::Value = serde_json::from_str(&t).unwrap();
            if v["type"] == "message" && v["author"] == "ai" {
                assert_eq!(v["text"], "We're open 9-5.");
                *answers += 1;
            }
            if kinds.iter().any(|k| v["type"] == *k) {
                return v;
            }
        }
    }
}
