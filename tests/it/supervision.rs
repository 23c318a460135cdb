//! Supervision from the outside: an event that keeps crashing its
//! conversation actor goes to the dead letters, is counted, and the
//! conversation goes on.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use switchboard::app;
use switchboard::store::embedded::EmbeddedStore;
use switchboard::store::{
    ConversationFilter, ConversationRecord, DailyCount, DeadLetter, MessageRecord,
    QuarantineRecord, RecordKind, Rehydrated, Store, StoreError, TurnWrite,
};

use crate::support::*;

/// The embedded store, except that persisting the text "poison" crashes
/// the caller (as a bug in handling one particular event would), that the
/// first `unavailable` turns fail as an unreachable store would, and that
/// while `corrupt` is set conversation `acme-fb:PSID_Q` cannot be read,
/// that while `documents_down` is set knowledge documents cannot, and
/// that while `records_down` is set stored integrations cannot.
struct FaultyStore(
    EmbeddedStore,
    std::sync::atomic::AtomicU32,
    std::sync::atomic::AtomicBool,
    std::sync::atomic::AtomicBool,
    std::sync::atomic::AtomicBool,
);

impl FaultyStore {
    fn new(store: EmbeddedStore, unavailable: u32) -> Self {
        Self(
            store,
            AtomicU32::new(unavailable),
            std::sync::atomic::AtomicBool::new(false),
            std::sync::atomic::AtomicBool::new(false),
            std::sync::atomic::AtomicBool::new(false),
        )
    }
}

#[async_trait]
impl Store for FaultyStore {
    async fn load_conversation(
        &self,
        id: &str,
        now_ms: u64,
    ) -> Result<Option<Rehydrated>, StoreError> {
        if id == "acme-fb:PSID_Q" && self.2.load(Ordering::SeqCst) {
            return Err(StoreError::Corrupt("unreadable state (test)".into()));
        }
        self.0.load_conversation(id, now_ms).await
    }
    async fn commit_turn(&self, write: Arc<TurnWrite>) -> Result<(), StoreError> {
        if write
            .messages
            .iter()
            .any(|m| m.text.as_deref() == Some("poison"))
        {
            panic!("handling this event crashes");
        }
        let left = &self.1;
        if left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(StoreError::Unavailable("store unreachable (test)".into()));
        }
        self.0.commit_turn(write).await
    }
    async fn messages(&self, id: &str, limit: usize) -> Result<Vec<MessageRecord>, StoreError> {
        self.0.messages(id, limit).await
    }
    async fn conversation(&self, id: &str) -> Result<Option<ConversationRecord>, StoreError> {
        self.0.conversation(id).await
    }
    async fn list_conversations(
        &self,
        filter: &ConversationFilter,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ConversationRecord>, StoreError> {
        self.0.list_conversations(filter, after, limit).await
    }
    async fn conversation_counts(
        &self,
        integrations: &[String],
        active_since_ms: u64,
    ) -> Result<(u64, u64), StoreError> {
        self.0
            .conversation_counts(integrations, active_since_ms)
            .await
    }
    async fn takeovers(
        &self,
        integrations: &[String],
    ) -> Result<Vec<(String, Option<u64>)>, StoreError> {
        self.0.takeovers(integrations).await
    }
    async fn daily_counts(
        &self,
        integrations: &[String],
        from_day: u32,
    ) -> Result<Vec<(String, DailyCount)>, StoreError> {
        self.0.daily_counts(integrations, from_day).await
    }
    async fn timers(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.0.timers().await
    }
    async fn dead_letter(&self, letter: DeadLetter) -> Result<(), StoreError> {
        self.0.dead_letter(letter).await
    }
    async fn dead_letters(&self) -> Result<Vec<DeadLetter>, StoreError> {
        self.0.dead_letters().await
    }
    async fn put_quarantine(&self, record: QuarantineRecord) -> Result<(), StoreError> {
        self.0.put_quarantine(record).await
    }
    async fn quarantine(&self, id: &str) -> Result<Option<QuarantineRecord>, StoreError> {
        self.0.quarantine(id).await
    }
    async fn quarantines(&self) -> Result<Vec<QuarantineRecord>, StoreError> {
        self.0.quarantines().await
    }
    async fn remove_quarantine(&self, id: &str) -> Result<(), StoreError> {
        self.0.remove_quarantine(id).await
    }
    async fn ready(&self) -> bool {
        self.0.ready().await
    }
    async fn put_document(
        &self,
        doc: switchboard::store::DocumentRecord,
    ) -> Result<(), StoreError> {
        self.0.put_document(doc).await
    }
    async fn documents(&self) -> Result<Vec<switchboard::store::DocumentRecord>, StoreError> {
        if self.3.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable(
                "documents unreachable (test)".into(),
            ));
        }
        self.0.documents().await
    }
    async fn delete_document(&self, assistant: &str, id: &str) -> Result<bool, StoreError> {
        self.0.delete_document(assistant, id).await
    }
    async fn knowledge_revision(&self) -> Result<u64, StoreError> {
        self.0.knowledge_revision().await
    }
    async fn put_record(
        &self,
        kind: RecordKind,
        key: &str,
        value: Vec<u8>,
    ) -> Result<(), StoreError> {
        self.0.put_record(kind, key, value).await
    }
    async fn records(&self, kind: RecordKind) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        if kind == RecordKind::Integrations && self.4.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("records unreachable (test)".into()));
        }
        self.0.records(kind).await
    }
    async fn delete_record(&self, kind: RecordKind, key: &str) -> Result<bool, StoreError> {
        self.0.delete_record(kind, key).await
    }
    async fn records_revision(&self, kind: RecordKind) -> Result<u64, StoreError> {
        if kind == RecordKind::Integrations && self.4.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("records unreachable (test)".into()));
        }
        self.0.records_revision(kind).await
    }
    async fn purge_integration(&self, integration: &str) -> Result<u64, StoreError> {
        self.0.purge_integration(integration).await
    }
    async fn put_tenant_key(
        &self,
        key: switchboard::store::TenantKeyRecord,
    ) -> Result<(), StoreError> {
        self.0.put_tenant_key(key).await
    }
    async fn tenant_key(
        &self,
        hash: &str,
    ) -> Result<Option<switchboard::store::TenantKeyRecord>, StoreError> {
        self.0.tenant_key(hash).await
    }
    async fn delete_tenant_key(&self, tenant: &str, id: &str) -> Result<bool, StoreError> {
        self.0.delete_tenant_key(tenant, id).await
    }
    fn kind(&self) -> &'static str {
        "faulty"
    }
}

#[tokio::test]
async fn a_poison_event_is_dead_lettered_and_the_conversation_goes_on() {
    let graph = GraphSim::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = local_config(dir.path(), &graph, 0);
    let store = Arc::new(FaultyStore::new(
        EmbeddedStore::open(&config.store.path, config.store.cache_bytes()).unwrap(),
        0,
    ));
    let engine = app::start_with_store(config, store.clone()).await.unwrap();
    let url = format!("http://{}/webhooks/meta/main", engine.addr);

    let body = messages_body(&[
        ("PSID_P", "m_poison", "poison"),
        ("PSID_P", "m_after", "hours"),
    ]);
    assert_eq!(post_webhook(&url, body, Some(APP_SECRET)).await, 200);
    graph
        .wait_for("the reply after the poison event", |_| {
            graph
                .texts_to("PSID_P")
                .iter()
                .any(|c| c.text() == Some("We're open 9-5."))
        })
        .await;

    let letters = store.dead_letters().await.unwrap();
    assert_eq!(letters.len(), 1, "{letters:#?}");
    assert_eq!(letters[0].conversation, "acme-fb:PSID_P");
    assert_eq!(letters[0].event["kind"]["mid"], "m_poison");
    let texts: Vec<_> = graph
        .texts_to("PSID_P")
        .iter()
        .map(|c| c.text().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        texts,
        ["Thanks! A teammate will reply soon.", "We're open 9-5."],
        "the poison message is answered once (before its first crash), never again on retries; the next one is answered"
    );
    let metrics = reqwest::get(format!("http://{}/metrics", engine.metrics_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("switchboard_dead_letters_total"),
        "{metrics}"
    );
    engine.shutdown().await;
}

/// A store that is unreachable for a while is not the event's fault: the
/// event is retried past `engine.max_event_attempts`, never dead-lettered,
/// and answered once when the store is back.
#[tokio::test]
async fn an_unavailable_store_delays_events_without_dead_lettering_them() {
    let graph = GraphSim::start().await;
    let dir = tempfile::tempdir().unwrap();
    // A delayed reply: its turn is written before anything is sent.
    let mut config = local_config(dir.path(), &graph, 100);
    config.engine.restart_backoff_max = Duration::from_millis(100);
    let store = Arc::new(FaultyStore::new(
        EmbeddedStore::open(&config.store.path, config.store.cache_bytes()).unwrap(),
        6,
    ));
    let engine = app::start_with_store(config, store.clone()).await.unwrap();
    let url = format!("http://{}/webhooks/meta/main", engine.addr);
    let body = messages_body(&[("PSID_F", "m_flaky", "hours")]);
    assert_eq!(post_webhook(&url, body, Some(APP_SECRET)).await, 200);
    graph
        .wait_for("the reply once the store is back", |_| {
            !graph.texts_to("PSID_F").is_empty()
        })
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(graph.texts_to("PSID_F").len(), 1);
    assert_eq!(store.1.load(Ordering::SeqCst), 0, "every failure was met");
    assert!(store.dead_letters().await.unwrap().is_empty());
    engine.shutdown().await;
}

/// An undelayed answer goes out before its turn is written; when that
/// write meets an unavailable store, it is retried, not the whole event:
/// the customer gets the answer once.
#[tokio::test]
async fn a_reply_sent_before_a_failed_write_is_not_sent_again() {
    let graph = GraphSim::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = local_config(dir.path(), &graph, 0);
    let store = Arc::new(FaultyStore::new(
        EmbeddedStore::open(&config.store.path, config.store.cache_bytes()).unwrap(),
        3,
    ));
    let engine = app::start_with_store(config, store.clone()).await.unwrap();
    let url = format!("http://{}/webhooks/meta/main", engine.addr);
    let body = messages_body(&[("PSID_W1", "m_w1", "hours")]);
    assert_eq!(post_webhook(&url, body, Some(APP_SECRET)).await, 200);
    graph
        .wait_for("the reply", |_| !graph.texts_to("PSID_W1").is_empty())
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while store.1.load(Ordering::SeqCst) > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the write was never retried"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(graph.texts_to("PSID_W1").len(), 1, "answered once");
    engine.shutdown().await;
}

/// A conversation whose state cannot be read fails before any one event
/// can be blamed: instead of restarting forever (and holding back the
/// bus's commit for every conversation), it is quarantined with its
/// events after `max_event_attempts` failures, shown in the admin API, and
/// handled again when an operator resumes it.
#[tokio::test]
async fn a_conversation_failing_outside_any_event_is_quarantined_and_resumable() {
    let graph = GraphSim::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = local_config(dir.path(), &graph, 0);
    config.engine.restart_backoff_max = Duration::from_millis(100);
    let store = Arc::new(FaultyStore::new(
        EmbeddedStore::open(&config.store.path, config.store.cache_bytes()).unwrap(),
        0,
    ));
    store.2.store(true, Ordering::SeqCst);
    let engine = app::start_with_store(config, store.clone()).await.unwrap();
    let url = format!("http://{}/webhooks/meta/main", engine.addr);
    let body = messages_body(&[("PSID_Q", "m_q1", "hours")]);
    assert_eq!(post_webhook(&url, body, Some(APP_SECRET)).await, 200);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let record = loop {
        if let Some(q) = store.quarantine("acme-fb:PSID_Q").await.unwrap() {
            break q;
        }
        assert!(tokio::time::Instant::now() < deadline, "never quarantined");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(record.events.len(), 1);
    assert!(record.reason.contains("unreadable state"), "{record:?}");
    // The rest of the bus goes on, and nothing is held back.
    let body = messages_body(&[("PSID_OK", "m_ok1", "hours")]);
    assert_eq!(post_webhook(&url, body, Some(APP_SECRET)).await, 200);
    graph
        .wait_for("the other customer's answer", |_| {
            !graph.texts_to("PSID_OK").is_empty()
        })
        .await;
    let http = reqwest::Client::new();
    let metrics = || async {
        reqwest::get(format!("http://{}/metrics", engine.metrics_addr))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !metrics().await.contains("switchboard_bus_lag_events 0") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the quarantined conversation still holds back the bus:\n{}",
            metrics().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(metrics().await.contains("switchboard_quarantined_total 1"));
    // Another message while quarantined is kept with the first.
    let body = messages_body(&[("PSID_Q", "m_q2", "still there?")]);
    assert_eq!(post_webhook(&url, body, Some(APP_SECRET)).await, 200);
    let listed = admin_json(engine.addr, "/quarantine").await;
    assert_eq!(
        listed["quarantined"][0]["conversation"], "acme-fb:PSID_Q",
        "{listed}"
    );
    // Repaired, then resumed: both messages are handled, in order.
    store.2.store(false, Ordering::SeqCst);
    let resumed = http
        .post(format!(
            "http://{}/api/v1/conversations/acme-fb:PSID_Q/resume",
            engine.addr
        ))
        .bearer_auth("admin")
        .send()
        .await
        .unwrap();
    assert!(resumed.status().is_success(), "{}", resumed.status());
    graph
        .wait_for("the quarantined customer's answers", |_| {
            graph.texts_to("PSID_Q").len() == 2
        })
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while store.quarantine("acme-fb:PSID_Q").await.unwrap().is_some() {
        assert!(tokio::time::Instant::now() < deadline, "still quarantined");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    engine.shutdown().await;
}

/// Documents the store cannot give at start are not "no documents": until
/// they are read, a turn is one nothing fits (here: a person takes it, as
/// the assistant hands over on no match), never answered as if the
/// knowledge base were empty; once they are read, they answer.
#[tokio::test]
async fn a_knowledge_base_unread_at_start_is_not_taken_for_an_empty_one() {
    let graph = GraphSim::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = local_config(dir.path(), &graph, 0);
    for a in &mut config.assistants {
        a.on_no_match = switchboard::config::OnNoMatch::Handover;
    }
    let inner = EmbeddedStore::open(&config.store.path, config.store.cache_bytes()).unwrap();
    inner
        .put_document(switchboard::store::DocumentRecord {
            assistant: "support".into(),
            id: "doc_returns".into(),
            tenant: None,
            title: "Help center".into(),
            text: "## How do I return an item?\nYou can return any unused item within 30 days of delivery.".into(),
            created_ms: 1,
            vectors: Vec::new(),
        })
        .await
        .unwrap();
    let store = Arc::new(FaultyStore::new(inner, 0));
    store.3.store(true, Ordering::SeqCst);
    let engine = app::start_with_store(config, store.clone()).await.unwrap();
    let url = format!("http://{}/webhooks/meta/main", engine.addr);
    let body = messages_body(&[("PSID_K1", "m_k1", "can I return an unused item")]);
    assert_eq!(post_webhook(&url, body, Some(APP_SECRET)).await, 200);
    let view = wait_view(&engine, "acme-fb:PSID_K1", |c| c["mode"] == "human").await;
    assert_eq!(view["taken_over_by"], "assistant");
    assert!(graph.texts_to("PSID_K1").is_empty(), "no fallback sent");

    store.3.store(false, Ordering::SeqCst);
    // Read again by the next refresh (every 2 s): its passages are indexed.
    let docs = format!("http://{}/api/v1/assistants/support/documents", engine.addr);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, list) = admin_get(&docs).await;
        if list["passages"].as_u64().unwrap_or(0) > 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never indexed: {list}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let body = messages_body(&[("PSID_K2", "m_k2", "can I return an unused item")]);
    assert_eq!(post_webhook(&url, body, Some(APP_SECRET)).await, 200);
    graph
        .wait_for("the answer from the document", |_| {
            graph
                .texts_to("PSID_K2")
                .iter()
                .any(|c| c.text().is_some_and(|t| t.contains("within 30 days")))
        })
        .await;
    engine.shutdown().await;
}

/// The conversation view of `id` once `done` holds for it.
async fn wait_view(
    engine: &app::RunningEngine,
    id: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let url = format!("http://{}/api/v1/conversations/{id}", engine.addr);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, v) = admin_get(&url).await;
        if status == 200 && done(&v) {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{id} never got there"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A webhook naming an account this instance does not know while it cannot
/// read the stored integrations is refused (Meta delivers it again), never
/// taken and dropped; once it can read them, an account nobody connected
/// is taken (200) and left.
#[tokio::test]
async fn an_unknown_account_is_refused_while_the_stored_integrations_cannot_be_read() {
    let graph = GraphSim::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = local_config(dir.path(), &graph, 0);
    let inner = EmbeddedStore::open(&config.store.path, config.store.cache_bytes()).unwrap();
    let store = Arc::new(FaultyStore::new(inner, 0));
    store.4.store(true, Ordering::SeqCst);
    let engine = app::start_with_store(config, store.clone()).await.unwrap();
    let url = format!("http://{}/webhooks/meta/main", engine.addr);
    let elsewhere = || {
        let now = switchboard::clock::now_ms();
        serde_json::to_vec(&serde_json::json!({"object": "page", "entry": [{
            "id": "PAGE_STORED", "time": now,
            "messaging": [{"sender": {"id": "PSID_S"}, "recipient": {"id": "PAGE_STORED"},
                           "timestamp": now, "message": {"mid": "m_s", "text": "hi"}}]
        }]}))
        .unwrap()
    };
    assert_eq!(post_webhook(&url, elsewhere(), Some(APP_SECRET)).await, 503);
    // A known account's customers are answered meanwhile.
    let body = messages_body(&[("PSID_OK", "m_ok", "hours")]);
    assert_eq!(post_webhook(&url, body, Some(APP_SECRET)).await, 200);
    store.4.store(false, Ordering::SeqCst);
    assert_eq!(post_webhook(&url, elsewhere(), Some(APP_SECRET)).await, 200);
    graph
        .wait_for("the known account's answer", |_| {
            !graph.texts_to("PSID_OK").is_empty()
        })
        .await;
    engine.shutdown().await;
}

/// GET `url` with the admin token: (status, JSON body or null).
async fn admin_get(url: &str) -> (u16, serde_json::Value) {
    let r = reqwest::Client::new()
        .get(url)
        .bearer_auth("admin")
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}

/// An event of an integration this instance cannot tell now (created
/// through the API, its stored record unreadable while the store is out)
/// waits for the store: it is never taken for a deleted integration's and
/// dropped; once the stored integrations are read, it is answered.
#[tokio::test]
async fn an_event_of_an_integration_not_readable_now_waits_and_is_answered() {
    crate::integrations::keys(crate::integrations::KEY1);
    let graph = GraphSim::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = local_config(dir.path(), &graph, 0);
    let engine = app::start(config.clone()).await.unwrap();
    let created = reqwest::Client::new()
        .post(format!("http://{}/api/v1/integrations", engine.addr))
        .bearer_auth("admin")
        .json(&serde_json::json!({
            "id": "acme-fb2", "tenant": "acme", "channel": "messenger", "app": "main",
            "account_id": "PAGE_2", "access_token": "EAAG-page-2-token", "assistant": "support",
            "response_delay_ms": 0
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    engine.shutdown().await;
    // Taken while the engine was stopping (another instance's webhook).
    let bus = switchboard::bus::embedded::EmbeddedBus::open(&config.store.path).unwrap();
    let now = switchboard::clock::now_ms();
    let event = switchboard::event::InboundEvent {
        conversation: switchboard::event::ConversationId::new("acme-fb2", "PSID_W"),
        integration: "acme-fb2".into(),
        channel: switchboard::config::ChannelKind::Messenger,
        customer: "PSID_W".into(),
        timestamp_ms: now,
        received_at_ms: now,
        customer_name: None,
        kind: switchboard::event::EventKind::Message {
            mid: "m_w".into(),
            text: Some("what are your hours?".into()),
            attachments: vec![],
            quick_reply: None,
        },
    };
    switchboard::bus::Bus::publish(bus.as_ref(), &[event])
        .await
        .unwrap();
    drop(bus);

    let inner = EmbeddedStore::open(&config.store.path, config.store.cache_bytes()).unwrap();
    let store = Arc::new(FaultyStore::new(inner, 0));
    store.4.store(true, Ordering::SeqCst);
    let engine = app::start_with_store(config, store.clone()).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(graph.texts_to("PSID_W").is_empty());
    store.4.store(false, Ordering::SeqCst);
    graph
        .wait_for("the answer once the integrations are read", |_| {
            !graph.texts_to("PSID_W").is_empty()
        })
        .await;
    engine.shutdown().await;
}

/// A quarantine this instance learnt of at start and that was lifted
/// elsewhere since (another instance's resume removed the record) is not
/// kept alive here: the customer's next message is answered, never put
/// back into a new quarantine record.
#[tokio::test]
async fn a_quarantine_lifted_elsewhere_does_not_swallow_the_next_message() {
    let graph = GraphSim::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = local_config(dir.path(), &graph, 0);
    let store = Arc::new(FaultyStore::new(
        EmbeddedStore::open(&config.store.path, config.store.cache_bytes()).unwrap(),
        0,
    ));
    store
        .put_quarantine(QuarantineRecord {
            conversation: "acme-fb:PSID_R".into(),
            reason: "failed three times".into(),
            since_ms: switchboard::clock::now_ms(),
            failures: 3,
            events: Vec::new(),
        })
        .await
        .unwrap();
    let engine = app::start_with_store(config, store.clone()).await.unwrap();
    // Lifted by another instance.
    tokio::time::sleep(Duration::from_millis(300)).await;
    store.remove_quarantine("acme-fb:PSID_R").await.unwrap();
    let url = format!("http://{}/webhooks/meta/main", engine.addr);
    let body = messages_body(&[("PSID_R", "m_r1", "hours")]);
    assert_eq!(post_webhook(&url, body, Some(APP_SECRET)).await, 200);
    graph
        .wait_for("the answer", |_| !graph.texts_to("PSID_R").is_empty())
        .await;
    assert!(store.quarantine("acme-fb:PSID_R").await.unwrap().is_none());
    engine.shutdown().await;
}
