//! Shared test fixtures: the Graph API simulator recording calls, engine
//! configs in temporary folders, signed webhook bodies.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use switchboard::channels::webhook::sign;
use switchboard::tools::sim::validate::CallKind;
use switchboard::tools::sim::{Fault, Faults, RecordedCall, Sim, SimOptions};

pub const APP_SECRET: &str = "test-app-secret";
pub const PAGE: &str = "PAGE_1";
pub const TOKEN: &str = "page-token-123";
pub const IG_ACCOUNT: &str = "IG_1";
pub const PHONE: &str = "PHONE_1";

/// One call the simulator answered, as the tests read it.
#[derive(Debug, Clone)]
pub struct Call {
    pub account: String,
    /// Fingerprint of the access token the call carried.
    pub token: Option<String>,
    pub status: u16,
    pub body: Value,
    kind: Option<CallKind>,
    recipient: Option<String>,
    text: Option<String>,
    response: Value,
}

impl Call {
    fn from_recorded(c: RecordedCall) -> Self {
        Self {
            account: c.account.unwrap_or_default(),
            token: c.token_fingerprint,
            status: c.status,
            kind: c.kind,
            body: c.body,
            recipient: c.recipient,
            text: c.text,
            response: c.response,
        }
    }
    pub fn recipient(&self) -> &str {
        self.recipient.as_deref().unwrap_or_default()
    }
    /// The text of an accepted reply (not a sender action).
    pub fn text(&self) -> Option<&str> {
        let reply = self.kind.is_some_and(CallKind::is_reply);
        self.text.as_deref().filter(|_| reply && self.status == 200)
    }
    pub fn is_typing(&self) -> bool {
        self.body["sender_action"] == "typing_on"
    }
    /// The id the platform gave an accepted send.
    pub fn message_id(&self) -> Option<&str> {
        self.response["message_id"].as_str()
    }
}

/// The Graph API for the in-process tests: the project's simulator on
/// 127.0.0.1, recording every call.
pub struct GraphSim {
    pub sim: Sim,
}

impl GraphSim {
    pub async fn start() -> Self {
        let sim = Sim::start(
            "127.0.0.1:0",
            SimOptions {
                record_limit: 100_000,
                ..SimOptions::default()
            },
        )
        .await
        .unwrap();
        Self { sim }
    }

    pub fn base_url(&self) -> String {
        self.sim.base_url()
    }

    /// The simulator's fake OpenAI-compatible model.
    pub fn model_url(&self) -> String {
        self.sim.model_url()
    }

    pub fn model(&self, control: switchboard::tools::sim::model::ModelControl) {
        self.sim.model_control(control);
    }

    /// The fake model's counts (`requests`, `embedding_requests`, ...).
    pub fn model_stats(&self) -> Value {
        self.sim.model_stats()
    }

    /// The request bodies the fake model received.
    pub fn model_requests(&self) -> Vec<Value> {
        self.sim.model_requests()
    }

    /// The next `n` calls fail with Meta's transient 500.
    pub fn fail_next_calls(&self, n: usize) {
        self.sim.set_faults(Faults {
            next: std::iter::repeat_n(Fault::ServerError, n).collect(),
            ..Faults::default()
        });
    }

    /// The next `n` calls are taken at once but answered `late_ms` later.
    pub fn answer_next_calls_late(&self, n: usize, late_ms: u64) {
        self.sim.set_faults(Faults {
            next: std::iter::repeat_n(Fault::LateAnswer, n).collect(),
            late_ms,
            ..Faults::default()
        });
    }

    pub fn calls(&self) -> Vec<Call> {
        self.sim
            .calls()
            .into_iter()
            .map(Call::from_recorded)
            .collect()
    }

    /// Accepted text sends.
    pub fn texts(&self) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.text().is_some())
            .collect()
    }

    pub fn texts_to(&self, psid: &str) -> Vec<Call> {
        self.texts()
            .into_iter()
            .filter(|c| c.recipient() == psid)
            .collect()
    }

    /// Waits up to `limit` until every one of `customers` has a reply.
    pub async fn wait_for_everyone(&self, customers: &[String], limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while !customers.iter().all(|c| !self.texts_to(c).is_empty()) {
            if tokio::time::Instant::now() >= deadline {
                let missing: Vec<&String> = customers
                    .iter()
                    .filter(|c| self.texts_to(c).is_empty())
                    .collect();
                panic!(
                    "not every customer answered: {} replies; {} unanswered: {:?}",
                    self.texts().len(),
                    missing.len(),
                    &missing[..missing.len().min(12)]
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The texts sent to `psid`, oldest first.
    pub fn texts_of(&self, psid: &str) -> Vec<String> {
        self.texts_to(psid)
            .iter()
            .filter_map(|c| c.text().map(str::to_string))
            .collect()
    }

    /// Waits (bounded) until `psid` got `n` texts; all of them.
    pub async fn answers(&self, psid: &str, n: usize) -> Vec<String> {
        self.wait_for(&format!("{n} answers to {psid}"), |calls| {
            calls
                .iter()
                .filter(|c| c.recipient() == psid && c.text().is_some())
                .count()
                >= n
        })
        .await;
        self.texts_of(psid)
    }

    /// Waits (bounded) until `pred` holds for the recorded calls.
    pub async fn wait_for(&self, what: &str, pred: impl Fn(&[Call]) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if pred(&self.calls()) {
                return;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("timed out waiting for {what}; calls: {:#?}", self.calls());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// A complete engine config for tests (TOML), with its data under `dir`.
pub fn config_toml(
    dir: &Path,
    graph: &str,
    listen: &str,
    metrics_listen: &str,
    delay_ms: u64,
) -> String {
    format!(
        r#"
[server]
listen = "{listen}"
metrics_listen = "{metrics_listen}"
max_body_bytes = 65536

[admin]
token = "admin"

[store]
path = "{data}"

[meta]
graph_base_url = "{graph}"

[engine]
passivate_after = "2s"
shutdown_grace = "2s"

[outbound]
backoff_initial = "5ms"
backoff_max = "20ms"
retry_later = "500ms"
confirm_wait = "1s"

[[assistants]]
id = "support"
kind = "rules"
fallback = "Thanks! A teammate will reply soon."
rules = [ {{ keywords = ["hours"], reply = "We're open 9-5." }} ]

[[apps]]
id = "main"
app_secret = "{APP_SECRET}"
verify_token = "verify-me"

[[tenants]]
id = "acme"

[[integrations]]
id = "acme-fb"
tenant = "acme"
channel = "messenger"
app = "main"
account_id = "{PAGE}"
access_token = "{TOKEN}"
assistant = "support"
response_delay_ms = {delay_ms}

[[integrations]]
id = "acme-ig"
tenant = "acme"
channel = "instagram"
app = "main"
account_id = "{IG_ACCOUNT}"
access_token = "{TOKEN}"
assistant = "support"
max_message_length = 1000

[[integrations]]
id = "acme-wa"
tenant = "acme"
channel = "whatsapp"
app = "main"
account_id = "{PHONE}"
access_token = "{TOKEN}"
assistant = "support"
"#,
        data = dir.join("data").display()
    )
}

/// An in-process engine config on ephemeral ports, with its data under `dir`.
pub fn local_config(dir: &Path, graph: &GraphSim, delay_ms: u64) -> switchboard::config::Config {
    local_config_with(dir, graph, delay_ms, "")
}

/// Like [`local_config`], with `settings` (TOML lines) added to the
/// Messenger integration `acme-fb`.
pub fn local_config_with(
    dir: &Path,
    graph: &GraphSim,
    delay_ms: u64,
    settings: &str,
) -> switchboard::config::Config {
    local_config_tail(dir, graph, delay_ms, settings, "")
}

/// Like [`local_config_with`], with `tail` (TOML sections) appended.
pub fn local_config_tail(
    dir: &Path,
    graph: &GraphSim,
    delay_ms: u64,
    settings: &str,
    tail: &str,
) -> switchboard::config::Config {
    let toml = config_text(dir, graph, delay_ms, settings, tail);
    switchboard::config::load_from_str(&toml, &[]).expect("valid test config")
}

fn config_text(dir: &Path, graph: &GraphSim, delay_ms: u64, settings: &str, tail: &str) -> String {
    config_toml(
        dir,
        &graph.base_url(),
        "127.0.0.1:0",
        "127.0.0.1:0",
        delay_ms,
    )
    .replacen(
        &format!("response_delay_ms = {delay_ms}\n"),
        &format!("response_delay_ms = {delay_ms}\n{settings}\n"),
        1,
    ) + tail
}

/// A Page webhook body with these `messaging` events.
pub fn page_body(messaging: Vec<Value>) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "object": "page",
        "entry": [{"id": PAGE, "time": switchboard::clock::now_ms(), "messaging": messaging}]
    }))
    .unwrap()
}

/// A Messenger webhook body with one text message per (psid, mid, text).
pub fn messages_body(items: &[(&str, &str, &str)]) -> Vec<u8> {
    messages_body_at(switchboard::clock::now_ms(), items)
}

/// Like [`messages_body`], the messages sent at `now` (ms), `now + 1`, ...
pub fn messages_body_at(now: u64, items: &[(&str, &str, &str)]) -> Vec<u8> {
    let messaging: Vec<Value> = items
        .iter()
        .enumerate()
        .map(|(i, (psid, mid, text))| {
            json!({
                "sender": {"id": psid},
                "recipient": {"id": PAGE},
                "timestamp": now + i as u64,
                "message": {"mid": mid, "text": text}
            })
        })
        .collect();
    serde_json::to_vec(&json!({
        "object": "page",
        "entry": [{"id": PAGE, "time": now, "messaging": messaging}]
    }))
    .unwrap()
}

/// POSTs a webhook body, signed with `secret` unless `None`.
pub async fn post_webhook(url: &str, body: Vec<u8>, secret: Option<&str>) -> reqwest::StatusCode {
    let client = reqwest::Client::new();
    let mut req = client.post(url).header("content-type", "application/json");
    if let Some(s) = secret {
        req = req.header("x-hub-signature-256", sign(s.as_bytes(), &body));
    }
    req.body(body).send().await.unwrap().status()
}

/// An engine in-process with its Graph API simulator, driven like an operator
/// and a Page's customers would: signed webhooks in, admin API calls.
pub struct Desk {
    pub graph: GraphSim,
    pub engine: switchboard::app::RunningEngine,
    pub dir: tempfile::TempDir,
    /// Config sections appended to every engine's config (e.g. `[bus]`).
    tail: String,
    /// Applied to the config text of every engine (see [`Desk::start_edited`]).
    edit: Edit,
    http: reqwest::Client,
}

/// A change to an engine's config text (given the simulator, whose fake
/// model an assistant may use).
pub type Edit = std::sync::Arc<dyn Fn(String, &GraphSim) -> String + Send + Sync>;

fn no_edit() -> Edit {
    std::sync::Arc::new(|toml, _| toml)
}

impl Desk {
    /// Starts an engine whose `acme-fb` integration has `settings`.
    pub async fn start(delay_ms: u64, settings: &str) -> Self {
        Self::start_with(delay_ms, settings, "").await
    }

    /// Like [`Desk::start`], with `tail` (TOML sections) in the config.
    pub async fn start_with(delay_ms: u64, settings: &str, tail: &str) -> Self {
        Self::start_edited(delay_ms, settings, tail, no_edit()).await
    }

    /// Like [`Desk::start_with`], the config text changed by `edit`.
    pub async fn start_edited(delay_ms: u64, settings: &str, tail: &str, edit: Edit) -> Self {
        let graph = GraphSim::start().await;
        let dir = tempfile::tempdir().unwrap();
        let engine = Self::engine(&dir, &graph, delay_ms, settings, tail, &edit).await;
        Self {
            graph,
            engine,
            dir,
            tail: tail.to_string(),
            edit,
            http: reqwest::Client::new(),
        }
    }

    async fn engine(
        dir: &tempfile::TempDir,
        graph: &GraphSim,
        delay_ms: u64,
        settings: &str,
        tail: &str,
        edit: &Edit,
    ) -> switchboard::app::RunningEngine {
        let toml = config_text(dir.path(), graph, delay_ms, settings, tail);
        let config =
            switchboard::config::load_from_str(&edit(toml, graph), &[]).expect("valid test config");
        switchboard::app::start(config)
            .await
            .expect("engine starts")
    }

    /// Stops the engine and starts a new one on the same data.
    pub async fn restart(self, delay_ms: u64, settings: &str) -> Self {
        let edit = self.edit.clone();
        self.restart_edited(delay_ms, settings, edit).await
    }

    /// Like [`Desk::restart`], with another config edit from now on.
    pub async fn restart_edited(self, delay_ms: u64, settings: &str, edit: Edit) -> Self {
        self.engine.shutdown().await;
        let engine = Self::engine(
            &self.dir,
            &self.graph,
            delay_ms,
            settings,
            &self.tail,
            &edit,
        )
        .await;
        Self {
            engine,
            edit,
            ..self
        }
    }

    /// Posts signed `messaging` events as one Page webhook.
    pub async fn webhook(&self, messaging: Vec<Value>) {
        let url = format!("http://{}/webhooks/meta/main", self.engine.addr);
        let status = post_webhook(&url, page_body(messaging), Some(APP_SECRET)).await;
        assert_eq!(status, 200);
    }

    /// Posts any signed Meta webhook body (Instagram, WhatsApp).
    pub async fn post_meta(&self, body: Value) {
        let url = format!("http://{}/webhooks/meta/main", self.engine.addr);
        let status = post_webhook(&url, serde_json::to_vec(&body).unwrap(), Some(APP_SECRET)).await;
        assert_eq!(status, 200, "{body}");
    }

    /// A customer's text message sent at `ts`.
    pub async fn customer_at(&self, psid: &str, mid: &str, text: &str, ts: u64) {
        self.webhook(vec![json!({
            "sender": {"id": psid}, "recipient": {"id": PAGE}, "timestamp": ts,
            "message": {"mid": mid, "text": text}
        })])
        .await;
    }

    pub async fn customer(&self, psid: &str, mid: &str, text: &str) {
        self.customer_at(psid, mid, text, switchboard::clock::now_ms())
            .await;
    }

    fn api(&self, path: &str) -> String {
        format!("http://{}/api/v1{path}", self.engine.addr)
    }

    /// GET on the admin API with the right token: (status, JSON body).
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(self.api(path))
            .bearer_auth("admin")
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    /// POST on the admin API with the right token: (status, JSON body).
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(self.api(path))
            .bearer_auth("admin")
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    /// Any admin API call with `token`: (status, JSON body).
    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        token: &str,
    ) -> (u16, Value) {
        let mut r = self.http.request(method, self.api(path)).bearer_auth(token);
        if let Some(body) = body {
            r = r.json(&body);
        }
        let r = r.send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    /// The conversation of Page customer `psid`.
    pub async fn conversation(&self, psid: &str) -> Value {
        let (status, body) = self.get(&format!("/conversations/acme-fb:{psid}")).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Waits (bounded) until the conversation of `psid` satisfies `pred`.
    pub async fn wait_conversation(
        &self,
        psid: &str,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let (status, body) = self.get(&format!("/conversations/acme-fb:{psid}")).await;
            if status == 200 && pred(&body) {
                return body;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("timed out waiting for {what}: {body:#}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the conversation of `psid` has logged `messages` lines,
    /// then gives the engine a moment to send anything it would send, and
    /// returns the conversation.
    pub async fn settled(&self, psid: &str, messages: u64) -> Value {
        let view = self
            .wait_conversation(psid, &format!("{messages} logged messages"), |c| {
                c["message_count"] == messages
            })
            .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        view
    }

    /// Whether `switchboard_replies_total` for Messenger with `outcome`
    /// reads `n`.
    pub async fn replies_counted(&self, outcome: &str, n: u64) -> bool {
        let line =
            format!("switchboard_replies_total{{channel=\"messenger\",outcome=\"{outcome}\"}} {n}");
        self.metrics().await.lines().any(|l| l == line)
    }

    /// The engine's Prometheus text.
    pub async fn metrics(&self) -> String {
        reqwest::get(format!("http://{}/metrics", self.engine.metrics_addr))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

/// A child process (broker, engine) killed when the test ends, however it
/// ends, or earlier with [`KillOnDrop::kill`].
pub struct KillOnDrop(pub std::process::Child);

impl KillOnDrop {
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An admin API GET with the test token, straight to `addr`: its JSON body.
pub async fn admin_json(addr: impl std::fmt::Display, path: &str) -> Value {
    json_of(
        reqwest::Client::new()
            .get(format!("http://{addr}/api/v1{path}"))
            .bearer_auth("admin"),
    )
    .await
}

/// Sends `request` and reads its JSON body.
pub async fn json_of(request: reqwest::RequestBuilder) -> Value {
    request.send().await.unwrap().json().await.unwrap()
}
