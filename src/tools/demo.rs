//! `switchboard demo`: the engine (embedded bus and store in a temporary
//! folder), the Graph API simulator and simulated customers in one
//! process. No config, key or network beyond 127.0.0.1. It prints a short
//! transcript of what the engine does and a final report, then exits.

use std::io::Write;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::app;
use crate::channels::webhook::sign;
use crate::clock::now_ms;
use crate::config;
use crate::tools::loadgen::{Loadgen, LoadgenError, LoadgenOptions, Report};
use crate::tools::sim::validate::CallKind;
use crate::tools::sim::RecordedCall;

const SECRET: &str = "demo-app-secret";
const SHOP_PAGE: &str = "100200300";
const CROWD_PAGE: &str = "100200399";
const LIMIT: usize = 320;
const ADMIN_TOKEN: &str = "demo-admin-token";

const RETURNS: &str = "Our returns policy, in short. You can return anything within 30 days \
of delivery, as long as it is unused and in its original packaging; start a return from your \
order page and print the prepaid label. Refunds go back to the original payment method within \
five working days of the parcel reaching our warehouse. Sale items can be exchanged but not \
refunded. Damaged or wrong items are always on us: send a photo and we ship a replacement the \
same day, no need to wait for the return. Gift returns get store credit. Returns from outside \
the EU are welcome too; customs fees cannot be refunded, sadly.";

/// Why the demo did not complete.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("demo setup: {0}")]
    Setup(String),
    #[error("load: {0}")]
    Load(#[from] LoadgenError),
    #[error("{0}")]
    Expectation(String),
}

fn demo_config(sink: std::net::SocketAddr, data: &std::path::Path) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
metrics_listen = "127.0.0.1:0"
[admin]
token = "{ADMIN_TOKEN}"
[store]
path = "{data}"
[meta]
graph_base_url = "http://{sink}/v21.0"
[[assistants]]
id = "shop"
kind = "rules"
fallback = "Thanks for your message! A teammate will follow up shortly."
rules = [
  {{ keywords = ["hours", "open"], reply = "We're open 9:00-17:00, Monday to Friday." }},
  {{ keywords = ["returns", "return", "refund"], reply = "{RETURNS}" }},
  {{ keywords = ["ship", "shipping"], reply = "We ship to the EU, the UK, the US and Canada." }},
]
[[apps]]
id = "demo"
app_secret = "{SECRET}"
verify_token = "demo-verify"
[[tenants]]
id = "acme"
[[integrations]]
id = "acme-shop"
tenant = "acme"
channel = "messenger"
app = "demo"
account_id = "{SHOP_PAGE}"
access_token = "demo-page-token"
assistant = "shop"
max_message_length = {LIMIT}
response_delay_ms = [600, 900]
escalation_keywords = ["human", "agent"]
[[integrations]]
id = "acme-crowd"
tenant = "acme"
channel = "messenger"
app = "demo"
account_id = "{CROWD_PAGE}"
access_token = "demo-page-token"
assistant = "shop"
"#,
        data = data.display().to_string().replace('\\', "/"),
    )
}

fn crowd_options() -> LoadgenOptions {
    LoadgenOptions {
        target: String::new(),
        app_secret: SECRET.into(),
        page: Some(CROWD_PAGE.into()),
        instagram: None,
        whatsapp: None,
        instagram_share: 0.0,
        whatsapp_share: 0.0,
        sink: "127.0.0.1:0".into(),
        rate: 120.0,
        ramp_from: None,
        duration: Duration::from_secs(2),
        customers: 36,
        round_robin: false,
        duplicates: 0.1,
        batch_max: 4,
        bursts: 0.05,
        burst_size: 3,
        out_of_order: 0.3,
        receipts: 0.1,
        retries: 2,
        max_in_flight: 1000,
        drain: Duration::from_secs(10),
        seed: 42,
        json: false,
        quiet: true,
        ..LoadgenOptions::default()
    }
}

struct Customer<'a> {
    http: &'a reqwest::Client,
    url: &'a str,
    psid: &'static str,
    name: &'static str,
}

impl Customer<'_> {
    fn webhook(&self, mid: &str, text: &str) -> Vec<u8> {
        let now = now_ms();
        json!({"object": "page", "entry": [{"id": SHOP_PAGE, "time": now, "messaging": [{
            "sender": {"id": self.psid}, "recipient": {"id": SHOP_PAGE}, "timestamp": now,
            "message": {"mid": mid, "text": text}
        }]}]})
        .to_string()
        .into_bytes()
    }

    async fn post(&self, body: &[u8]) -> Result<u16, DemoError> {
        let response = self
            .http
            .post(self.url)
            .header("content-type", "application/json")
            .header("x-hub-signature-256", sign(SECRET.as_bytes(), body))
            .body(body.to_vec())
            .send()
            .await
            .map_err(|e| DemoError::Setup(format!("webhook not delivered: {e}")))?;
        Ok(response.status().as_u16())
    }
}

fn replies_to(loadgen: &Loadgen, psid: &str) -> Vec<RecordedCall> {
    loadgen
        .sink()
        .calls()
        .into_iter()
        .filter(|c| c.recipient.as_deref() == Some(psid) && c.status == 200)
        .collect()
}

async fn wait_for_messages(loadgen: &Loadgen, psid: &str, n: usize) -> Vec<RecordedCall> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let calls = replies_to(loadgen, psid);
        let messages = calls
            .iter()
            .filter(|c| c.kind == Some(CallKind::Message))
            .count();
        if messages >= n || Instant::now() > deadline {
            return calls;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn show(out: &mut impl Write, calls: &[RecordedCall]) {
    let parts = calls
        .iter()
        .filter(|c| c.kind == Some(CallKind::Message))
        .count();
    let mut part = 0;
    for c in calls {
        match c.kind {
            Some(CallKind::SenderAction) => {
                let _ = writeln!(out, "     Acme   ... ({})", c.text.as_deref().unwrap_or(""));
            }
            Some(CallKind::Message) => {
                part += 1;
                let label = if parts > 1 {
                    format!(
                        " [{part}/{parts}, {} chars]",
                        c.text.as_deref().map_or(0, |t| t.chars().count())
                    )
                } else {
                    String::new()
                };
                let _ = writeln!(
                    out,
                    "     Acme   >{label} {}",
                    c.text.as_deref().unwrap_or("")
                );
            }
            _ => {}
        }
    }
}

/// One admin API call: (status, JSON answer).
async fn admin(
    http: &reqwest::Client,
    engine: std::net::SocketAddr,
    path: &str,
    body: serde_json::Value,
) -> Result<(u16, serde_json::Value), DemoError> {
    let response = http
        .post(format!("http://{engine}/api/v1{path}"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
        .send()
        .await
        .map_err(|e| DemoError::Setup(format!("admin API not reached: {e}")))?;
    let status = response.status().as_u16();
    let answer = response.json().await.unwrap_or(serde_json::Value::Null);
    Ok((status, answer))
}

/// Scene 4: a customer asks for a person, a person answers through the
/// admin API while the AI stays silent, then hands back to the AI.
async fn takeover_scene(
    out: &mut (impl Write + Send),
    http: &reqwest::Client,
    url: &str,
    engine: std::net::SocketAddr,
    loadgen: &Loadgen,
) -> Result<(), DemoError> {
    let cleo = Customer {
        http,
        url,
        psid: "7003",
        name: "Cleo",
    };
    let conversation = format!("/conversations/acme-shop:{}", cleo.psid);
    let _ = writeln!(out, "\n4. A person takes over, and hands back to the AI");
    let ask = "Can I talk to a human, please?";
    let _ = writeln!(out, "     {:<6} > {ask}", cleo.name);
    cleo.post(&cleo.webhook("m_demo_cleo_1", ask)).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = writeln!(
        out,
        "     (escalation keyword: the conversation is handed to a person; the AI stays silent)"
    );
    let note = "Hi Cleo, Sam from Acme here. How can I help?";
    let (status, _) = admin(
        http,
        engine,
        &format!("{conversation}/messages"),
        json!({ "text": note }),
    )
    .await?;
    let _ = writeln!(
        out,
        "     Sam    > {note}   (POST /api/v1{conversation}/messages: HTTP {status})"
    );
    let thanks = "Thanks Sam! Where is my parcel?";
    let _ = writeln!(out, "     {:<6} > {thanks}", cleo.name);
    cleo.post(&cleo.webhook("m_demo_cleo_2", thanks)).await?;
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let during = wait_for_messages(loadgen, cleo.psid, 1).await;
    let (status, view) = admin(http, engine, &format!("{conversation}/resume"), json!({})).await?;
    let _ = writeln!(
        out,
        "     (no AI reply during the takeover; POST .../resume: HTTP {status}, mode {})",
        view["mode"].as_str().unwrap_or("?")
    );
    let question = "Do you ship to Canada?";
    let _ = writeln!(out, "     {:<6} > {question}", cleo.name);
    cleo.post(&cleo.webhook("m_demo_cleo_3", question)).await?;
    let calls = wait_for_messages(loadgen, cleo.psid, 2).await;
    show(out, &calls[during.len()..]);
    let texts: Vec<_> = calls
        .iter()
        .filter(|c| c.kind == Some(CallKind::Message))
        .filter_map(|c| c.text.as_deref())
        .collect();
    if texts.len() != 2 || texts[0] != note {
        return Err(DemoError::Expectation(format!(
            "takeover: expected the person's message then one AI answer, got {texts:?}"
        )));
    }
    Ok(())
}

/// Runs the demo, writing the transcript to `out`.
pub async fn run(out: &mut (impl Write + Send)) -> Result<Report, DemoError> {
    let data = tempfile::tempdir().map_err(|e| DemoError::Setup(e.to_string()))?;
    let mut loadgen = Loadgen::bind_recording(crowd_options(), 100_000).await?;
    let text = demo_config(loadgen.sink_addr(), data.path());
    let config = config::load_from_str(&text, &[]).map_err(|e| DemoError::Setup(e.to_string()))?;
    let engine = app::start(config)
        .await
        .map_err(|e| DemoError::Setup(e.to_string()))?;
    let url = format!("http://{}/webhooks/meta/demo", engine.addr);
    loadgen.options.target = url.clone();
    let http = reqwest::Client::new();
    let _ = writeln!(
        out,
        "switchboard demo: engine (embedded bus and store), Graph API simulator and\n\
         simulated customers in this process, on 127.0.0.1.\n"
    );

    let ana = Customer {
        http: &http,
        url: &url,
        psid: "7001",
        name: "Ana",
    };
    let question = "Hi! What are your opening hours?";
    let body = ana.webhook("m_demo_ana_1", question);
    let _ = writeln!(out, "1. A question, answered");
    let _ = writeln!(out, "     {:<6} > {question}", ana.name);
    let status = ana.post(&body).await?;
    let _ = writeln!(
        out,
        "     (webhook acknowledged: HTTP {status}, after the event was durable)"
    );
    let calls = wait_for_messages(&loadgen, ana.psid, 1).await;
    show(out, &calls);
    if calls.iter().all(|c| c.kind != Some(CallKind::Message)) {
        return Err(DemoError::Expectation(
            "the question was not answered".into(),
        ));
    }

    let _ = writeln!(
        out,
        "\n2. Meta redelivers the same webhook (same message id)"
    );
    let status = ana.post(&body).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let answers = replies_to(&loadgen, ana.psid)
        .iter()
        .filter(|c| c.kind == Some(CallKind::Message))
        .count();
    let _ = writeln!(
        out,
        "     (HTTP {status}; replies to Ana so far: {answers}: the duplicate is recognised and ignored)"
    );
    if answers != 1 {
        return Err(DemoError::Expectation(format!(
            "the duplicate was answered: {answers} replies"
        )));
    }

    let ben = Customer {
        http: &http,
        url: &url,
        psid: "7002",
        name: "Ben",
    };
    let question = "What is your returns policy?";
    let _ = writeln!(
        out,
        "\n3. A long answer, split for the channel (limit {LIMIT} characters here)"
    );
    let _ = writeln!(out, "     {:<6} > {question}", ben.name);
    ben.post(&ben.webhook("m_demo_ben_1", question)).await?;
    let parts = RETURNS.chars().count().div_ceil(LIMIT);
    let calls = wait_for_messages(&loadgen, ben.psid, parts).await;
    show(out, &calls);

    takeover_scene(out, &http, &url, engine.addr, &loadgen).await?;

    let o = &loadgen.options;
    let _ = writeln!(
        out,
        "\n5. A crowd: {} customers, {} events/s for {}s, with redelivered duplicates ({:.0}%),\n   \
         batches of up to {}, bursts, out-of-order batches and delivery/read receipts",
        o.customers,
        o.rate,
        o.duration.as_secs(),
        o.duplicates * 100.0,
        o.batch_max
    );
    let report = loadgen.send_and_measure().await?;
    let _ = writeln!(
        out,
        "     {} webhooks ({} events, {} redeliveries): {} replies expected, {} received,\n     \
         {} missing, {} duplicated; webhook -> reply p50 {:.1} ms, p99 {:.1} ms",
        report.webhooks_sent,
        report.events_sent,
        report.duplicates_sent,
        report.replies_expected,
        report.replies_received,
        report.replies_missing,
        report.replies_duplicated,
        report.e2e_latency_ms.p50,
        report.e2e_latency_ms.p99,
    );
    engine.shutdown().await;
    loadgen.stop();
    if !report.exactly_once() {
        return Err(DemoError::Expectation(format!(
            "{} replies missing, {} duplicated",
            report.replies_missing, report.replies_duplicated
        )));
    }
    let _ = writeln!(out, "\nEvery customer answered exactly once. Done.");
    Ok(report)
}
