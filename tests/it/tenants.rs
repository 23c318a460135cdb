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
