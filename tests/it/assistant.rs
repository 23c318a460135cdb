//! Conversations answered by a model (the simulator's fake OpenAI-compatible
//! server): typing before and during a slow answer, a customer writing
//! while it is generated, fallback and hand-over, pinning, structured
//! replies on each channel and a choice coming back.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use switchboard::tools::sim::model::{ModelControl, ModelFault, Scripted};

use crate::support::{Desk, Edit, GraphSim, IG_ACCOUNT, PAGE, PHONE};

/// The integrations answered by an `openai` assistant `llm` on the fake
/// model (with `extra` keys), typing refreshed every `typing`.
pub fn model(extra: &'static str, typing: &'static str) -> Edit {
    model_passivating(extra, typing, "60s")
}

/// Like [`model`], idle actors passivated after `passivate`.
fn model_passivating(extra: &'static str, typing: &'static str, passivate: &'static str) -> Edit {
    Arc::new(move |toml: String, graph: &GraphSim| {
        toml.replace("assistant = \"support\"\n", "assistant = \"llm\"\n")
            .replace(
                "passivate_after = \"2s\"",
                &format!("passivate_after = \"{passivate}\"\ntyping_refresh = \"{typing}\""),
            )
            + &format!(
                r#"
[[assistants]]
id = "llm"
kind = "openai"
base_url = "{}"
model = "sim-model"
system_prompt = "You are Acme's assistant."
fallback = "Sorry, a teammate will answer."
chunk_timeout = "2s"
{extra}
"#,
                graph.model_url()
            )
    })
}

async fn desk(extra: &'static str) -> Desk {
    Desk::start_edited(0, "", "", model(extra, "15s")).await
}

fn latency(ms: u64) -> ModelControl {
    ModelControl {
        latency_ms: Some(ms),
        ..ModelControl::default()
    }
}

#[tokio::test]
async fn answers_come_from_the_model_with_the_conversation_as_history() {
    let desk = desk("").await;
    desk.customer("u1", "m1", "hi").await;
    assert_eq!(desk.graph.answers("u1", 1).await, ["Answer to: hi"]);
    desk.customer("u1", "m2", "where is my order?").await;
    desk.graph.answers("u1", 2).await;
    let second = &desk.graph.model_requests()[1];
    let turns: Vec<(&str, &str)> = second["messages"].as_array().unwrap()[1..]
        .iter()
        .map(|m| (m["role"].as_str().unwrap(), m["content"].as_str().unwrap()))
        .collect();
    assert_eq!(
        turns,
        [
            ("user", "hi"),
            ("assistant", "Answer to: hi"),
            ("user", "where is my order?")
        ]
    );
    let metrics = desk.metrics().await;
    assert!(
        metrics
            .contains("switchboard_assistant_requests_total{assistant=\"llm\",outcome=\"ok\"} 2"),
        "{metrics}"
    );
    assert!(metrics
        .contains("switchboard_assistant_tokens_total{assistant=\"llm\",kind=\"completion\"}"));
    assert!(metrics.contains("switchboard_assistant_seconds_count{assistant=\"llm\"} 2"));
}

#[tokio::test]
async fn typing_shows_at_once_and_is_refreshed_until_a_slow_answer_goes_out() {
    let desk = Desk::start_edited(0, "", "", model("", "1s")).await;
    desk.graph.model(latency(3500));
    desk.customer("u1", "m1", "tell me everything").await;
    assert_eq!(
        desk.graph.answers("u1", 1).await,
        ["Answer to: tell me everything"]
    );
    let calls = desk.graph.calls();
    let to_u1: Vec<_> = calls.iter().filter(|c| c.recipient() == "u1").collect();
    let first_text = to_u1.iter().position(|c| c.text().is_some()).unwrap();
    assert!(to_u1[0].is_typing(), "typing first: {to_u1:#?}");
    let typing_before = to_u1[..first_text].iter().filter(|c| c.is_typing()).count();
    assert!(
        typing_before >= 3,
        "typing refreshed while generating: {typing_before}"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after: Vec<_> = desk
        .graph
        .calls()
        .into_iter()
        .filter(|c| c.recipient() == "u1")
        .skip(first_text + 1)
        .collect();
    assert!(after.is_empty(), "nothing after the answer: {after:#?}");
}

#[tokio::test]
async fn a_customer_writing_while_the_answer_is_generated_gets_one_answer_to_both() {
    let desk = desk("").await;
    desk.graph.model(latency(1500));
    desk.customer("u1", "m1", "I ordered a lamp").await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    desk.customer("u1", "m2", "it arrived broken").await;
    assert_eq!(
        desk.graph.answers("u1", 1).await,
        ["Answer to: I ordered a lamp it arrived broken"]
    );
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(desk.graph.texts_of("u1").len(), 1, "one answer");
    // Other conversations kept flowing meanwhile.
    desk.graph.model(latency(0));
    desk.customer("u2", "n1", "hello").await;
    assert_eq!(desk.graph.answers("u2", 1).await, ["Answer to: hello"]);
}

#[tokio::test]
async fn an_actor_generating_an_answer_is_not_passivated() {
    let desk = Desk::start_edited(0, "", "", model_passivating("", "15s", "500ms")).await;
    desk.graph.model(latency(2500));
    desk.customer("u1", "m1", "a slow question").await;
    assert_eq!(
        desk.graph.answers("u1", 1).await,
        ["Answer to: a slow question"]
    );
    assert_eq!(desk.graph.model_requests().len(), 1, "asked once");
}

#[tokio::test]
async fn a_failing_model_sends_the_fallback() {
    let desk = desk("").await;
    desk.graph.model(ModelControl {
        next: vec![ModelFault::ServerError; 3],
        ..ModelControl::default()
    });
    desk.customer("u1", "m1", "hello?").await;
    assert_eq!(
        desk.graph.answers("u1", 1).await,
        ["Sorry, a teammate will answer."]
    );
    assert!(desk.metrics().await.contains(
        "switchboard_assistant_requests_total{assistant=\"llm\",outcome=\"server_error\"} 3"
    ));
}

#[tokio::test]
async fn a_failing_model_hands_over_to_a_person_when_configured() {
    let desk = desk("on_failure = \"handover\"").await;
    desk.graph.model(ModelControl {
        next: vec![ModelFault::Unauthorized],
        ..ModelControl::default()
    });
    desk.customer("u1", "m1", "hello?").await;
    let view = desk
        .wait_conversation("u1", "a hand-over", |c| c["mode"] == "human")
        .await;
    assert_eq!(view["taken_over_by"], "assistant", "{view:#}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(desk.graph.texts_of("u1").is_empty());
    assert_eq!(desk.graph.model_requests().len(), 1, "401 is not retried");
}

#[tokio::test]
async fn a_conversation_keeps_its_assistant_when_the_integration_changes() {
    // Rules first.
    let desk = Desk::start(0, "").await;
    desk.customer("old", "m1", "hello").await;
    desk.graph.answers("old", 1).await;
    // The integration now uses the model: new conversations get it.
    let desk = desk.restart_edited(0, "", model("", "15s")).await;
    desk.customer("old", "m2", "hello again").await;
    desk.customer("new", "n1", "hello").await;
    assert_eq!(
        desk.graph.answers("old", 2).await[1],
        "Thanks! A teammate will reply soon."
    );
    assert_eq!(desk.graph.answers("new", 1).await, ["Answer to: hello"]);
}

/// Choices offered by the rules assistant (keyword "hours").
const CHOICES: &str = r#"
[[assistants]]
id = "menu"
kind = "rules"
fallback = "Hi!"
rules = [
  { keywords = ["hours"], reply = "We're open 9-5.", choices = ["Book a visit", "Prices"] },
  { keywords = ["menu"], reply = "What would you like?", choices = ["Hours", "Prices", "Delivery", "Returns"] },
  { keywords = ["prices"], reply = "Shirts are 20 euros." },
]
"#;

fn choices_desk() -> Edit {
    Arc::new(|toml: String, _: &GraphSim| {
        toml.replace("assistant = \"support\"\n", "assistant = \"menu\"\n") + CHOICES
    })
}

#[tokio::test]
async fn quick_replies_are_rendered_on_each_channel_and_a_choice_comes_back() {
    let desk = Desk::start_edited(0, "", "", choices_desk()).await;
    // Messenger: quick_replies.
    desk.customer("u1", "m1", "your hours?").await;
    desk.graph.answers("u1", 1).await;
    let body = &desk.graph.texts_to("u1")[0].body;
    assert_eq!(
        body["message"]["quick_replies"],
        json!([
            {"content_type": "text", "title": "Book a visit", "payload": "Book a visit"},
            {"content_type": "text", "title": "Prices", "payload": "Prices"}
        ])
    );
    // The customer taps one: a message with its payload, answered as a turn.
    desk.webhook(vec![json!({
        "sender": {"id": "u1"}, "recipient": {"id": PAGE}, "timestamp": switchboard::clock::now_ms(),
        "message": {"mid": "m2", "text": "Prices", "quick_reply": {"payload": "Prices"}}
    })])
    .await;
    assert_eq!(desk.graph.answers("u1", 2).await[1], "Shirts are 20 euros.");

    // Instagram: quick_replies too.
    let now = switchboard::clock::now_ms();
    desk.post_meta(
        json!({"object": "instagram", "entry": [{"id": IG_ACCOUNT, "time": now, "messaging": [{
        "sender": {"id": "ig1"}, "recipient": {"id": IG_ACCOUNT}, "timestamp": now,
        "message": {"mid": "ig_m1", "text": "hours please"}}]}]}),
    )
    .await;
    desk.graph.answers("ig1", 1).await;
    let body = &desk.graph.texts_to("ig1")[0].body;
    assert_eq!(body["message"]["quick_replies"][1]["title"], "Prices");

    // WhatsApp: up to three are reply buttons, more are a list.
    desk.post_meta(wa_message(
        "wa1",
        json!({"type": "text", "text": {"body": "hours?"}}),
    ))
    .await;
    desk.graph.answers("15550001", 1).await;
    let body = desk.graph.texts_to("15550001")[0].body.clone();
    assert_eq!(body["type"], "interactive");
    assert_eq!(body["interactive"]["type"], "button");
    assert_eq!(body["interactive"]["body"]["text"], "We're open 9-5.");
    assert_eq!(
        body["interactive"]["action"]["buttons"][0]["reply"],
        json!({"id": "Book a visit", "title": "Book a visit"})
    );
    desk.post_meta(wa_message(
        "wa2",
        json!({"type": "text", "text": {"body": "menu"}}),
    ))
    .await;
    desk.graph.answers("15550001", 2).await;
    let body = desk.graph.texts_to("15550001")[1].body.clone();
    assert_eq!(body["interactive"]["type"], "list");
    let rows = body["interactive"]["action"]["sections"][0]["rows"].clone();
    assert_eq!(rows.as_array().unwrap().len(), 4);
    // The customer picks a row: the reply reaches the assistant as a turn.
    desk.post_meta(wa_message(
        "wa3",
        json!({"type": "interactive", "interactive": {"type": "list_reply",
            "list_reply": {"id": "Prices", "title": "Prices"}}}),
    ))
    .await;
    assert_eq!(
        desk.graph.answers("15550001", 3).await[2],
        "Shirts are 20 euros."
    );
}

fn wa_message(wamid: &str, content: Value) -> Value {
    let mut message = json!({
        "from": "15550001", "id": wamid,
        "timestamp": (switchboard::clock::now_ms() / 1000).to_string(),
    });
    if let (Some(m), Some(c)) = (message.as_object_mut(), content.as_object()) {
        m.extend(c.clone());
    }
    json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA_1", "changes": [{
    "field": "messages", "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE},
        "contacts": [{"profile": {"name": "Sam"}, "wa_id": "15550001"}],
        "messages": [message]
    }}]}]})
}

#[tokio::test]
async fn the_models_choices_become_quick_replies() {
    let desk = desk("offer_choices = true").await;
    desk.graph.model(ModelControl {
        script: vec![Scripted {
            content: "Which size?".into(),
            tool_arguments: Some(r#"{"choices": ["Small", "Medium", "Large"]}"#.into()),
        }],
        ..ModelControl::default()
    });
    desk.customer("u1", "m1", "I want the red shirt").await;
    desk.graph.answers("u1", 1).await;
    let body = &desk.graph.texts_to("u1")[0].body;
    assert_eq!(body["message"]["text"], "Which size?");
    assert_eq!(body["message"]["quick_replies"][2]["payload"], "Large");
}

/// A real model, when `SWITCHBOARD_TEST_OPENAI_URL` names an
/// OpenAI-compatible server (`scripts/local-model.sh start` brings one up
/// here; `SWITCHBOARD_TEST_OPENAI_MODEL` names its model, default
/// `smollm2`). Skipped otherwise.
#[tokio::test]
async fn a_real_model_answers_a_customer() {
    let Ok(url) = std::env::var("SWITCHBOARD_TEST_OPENAI_URL") else {
        eprintln!("skipped: SWITCHBOARD_TEST_OPENAI_URL is not set");
        return;
    };
    let model_name =
        std::env::var("SWITCHBOARD_TEST_OPENAI_MODEL").unwrap_or_else(|_| "smollm2".into());
    let edit: Edit = Arc::new(move |toml: String, _: &GraphSim| {
        toml.replace("assistant = \"support\"\n", "assistant = \"real\"\n")
            + &format!(
                r#"
[[assistants]]
id = "real"
kind = "openai"
base_url = "{url}"
model = "{model_name}"
system_prompt = "You are the assistant of Acme, a shop selling lamps. Answer in one or two short sentences."
fallback = "Sorry, a teammate will answer."
max_tokens = 64
temperature = 0.2
timeout = "120s"
on_failure = "handover"
"#
            )
    });
    let desk = Desk::start_edited(0, "", "", edit).await;
    let started = std::time::Instant::now();
    desk.customer("u1", "m1", "Hello! Do you sell desk lamps?")
        .await;
    let answers = desk.graph.answers("u1", 1).await;
    eprintln!(
        "real model answered in {:.2} s: {:?}",
        started.elapsed().as_secs_f64(),
        answers[0]
    );
    assert!(!answers[0].trim().is_empty());
    let view = desk.conversation("u1").await;
    assert_eq!(
        view["mode"], "ai",
        "the model answered, no hand-over: {view:#}"
    );
}
