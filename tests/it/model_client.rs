//! The `openai` assistant against the simulator's fake model, speaking the
//! real shapes: plain and streamed answers (the usage chunk with empty or
//! null `choices`), 429 with `Retry-After`, 5xx, a refused key, a spent
//! quota, `context_length_exceeded`, streams that stall or are cut, and
//! the concurrency bound.

use std::time::{Duration, Instant};

use switchboard::assistant::{
    Assistant, AssistantError, HistoryLine, OpenAiAssistant, ReplyRequest, Speaker,
};
use switchboard::config::{AssistantConfig, AssistantKind, ChannelKind};
use switchboard::tools::sim::model::{ModelControl, ModelFault, Scripted};
use switchboard::tools::sim::{Sim, SimOptions};

async fn sim() -> Sim {
    Sim::start(
        "127.0.0.1:0",
        SimOptions {
            record_limit: 1000,
            ..SimOptions::default()
        },
    )
    .await
    .unwrap()
}

fn config(sim: &Sim, stream: bool) -> AssistantConfig {
    let mut c = AssistantConfig::new("llm", AssistantKind::Openai);
    c.base_url = Some(sim.model_url());
    c.model = Some("sim-model".into());
    c.system_prompt = Some("You are Acme's assistant.".into());
    c.fallback = "Sorry, a teammate will answer.".into();
    c.stream = stream;
    c.chunk_timeout = Duration::from_millis(500);
    c.timeout = Duration::from_secs(5);
    c
}

fn request(messages: &[&str], history: &[(Speaker, &str)]) -> ReplyRequest {
    ReplyRequest {
        channel: ChannelKind::Whatsapp,
        customer: "c".into(),
        messages: messages.iter().map(|m| m.to_string()).collect(),
        attachments: Vec::new(),
        history: history
            .iter()
            .map(|(speaker, text)| HistoryLine {
                speaker: *speaker,
                text: text.to_string(),
            })
            .collect(),
        knowledge: None,
    }
}

fn faults(next: &[ModelFault]) -> ModelControl {
    ModelControl {
        next: next.to_vec(),
        ..ModelControl::default()
    }
}

#[tokio::test]
async fn plain_and_streamed_answers_read_the_same_usage_chunk_or_not() {
    let sim = sim().await;
    for stream in [false, true, true] {
        let a = OpenAiAssistant::new(&config(&sim, stream)).unwrap();
        let answer = a
            .reply(&request(&["Where is my order?"], &[]))
            .await
            .unwrap();
        assert_eq!(answer.text, "Answer to: Where is my order?");
    }
    let sent = sim.model_requests();
    assert_eq!(sent.len(), 3);
    assert_eq!(sent[0]["stream"], false);
    assert_eq!(sent[1]["stream"], true);
    assert_eq!(sent[1]["stream_options"]["include_usage"], true);
    assert_eq!(sent[0]["model"], "sim-model");
}

#[tokio::test]
async fn the_request_has_the_prompt_guidelines_history_in_order_and_the_turn() {
    let sim = sim().await;
    let a = OpenAiAssistant::new(&config(&sim, true)).unwrap();
    a.reply(&request(
        &["and the blue one?", "size M"],
        &[
            (Speaker::Customer, "hi"),
            (Speaker::Business, "Hello! How can I help?"),
            (Speaker::Customer, "is the red shirt in stock"),
            (Speaker::Business, "Yes, all sizes."),
        ],
    ))
    .await
    .unwrap();
    let body = &sim.model_requests()[0];
    let messages = body["messages"].as_array().unwrap();
    let system = messages[0]["content"].as_str().unwrap();
    assert!(system.starts_with("You are Acme's assistant."), "{system}");
    assert!(
        system.contains("WhatsApp") && system.contains("no markdown"),
        "{system}"
    );
    assert!(system.contains("4096"), "{system}");
    let turns: Vec<(&str, &str)> = messages[1..]
        .iter()
        .map(|m| (m["role"].as_str().unwrap(), m["content"].as_str().unwrap()))
        .collect();
    assert_eq!(
        turns,
        [
            ("user", "hi"),
            ("assistant", "Hello! How can I help?"),
            ("user", "is the red shirt in stock"),
            ("assistant", "Yes, all sizes."),
            ("user", "and the blue one?\nsize M"),
        ]
    );
}

#[tokio::test]
async fn rate_limits_wait_for_retry_after_and_server_errors_are_retried() {
    let sim = sim().await;
    let a = OpenAiAssistant::new(&config(&sim, true)).unwrap();
    sim.model_control(faults(&[ModelFault::RateLimited]));
    let started = Instant::now();
    let answer = a.reply(&request(&["hello"], &[])).await.unwrap();
    assert_eq!(answer.text, "Answer to: hello");
    // The fake model asked for one second.
    assert!(started.elapsed() >= Duration::from_secs(1));
    sim.model_control(faults(&[ModelFault::ServerError, ModelFault::Overloaded]));
    assert!(a.reply(&request(&["again"], &[])).await.is_ok());
    assert_eq!(sim.model_requests().len(), 5);
    // Three server errors in a row spend the attempts.
    sim.model_control(faults(&[ModelFault::ServerError; 3]));
    let e = a.reply(&request(&["once more"], &[])).await.unwrap_err();
    assert!(matches!(e, AssistantError::Server { status: 500 }), "{e}");
    assert_eq!(sim.model_requests().len(), 8);
}

#[tokio::test]
async fn a_refused_key_or_spent_quota_is_not_retried() {
    let sim = sim().await;
    let a = OpenAiAssistant::new(&config(&sim, false)).unwrap();
    sim.model_control(faults(&[ModelFault::Unauthorized]));
    let e = a.reply(&request(&["hi"], &[])).await.unwrap_err();
    assert!(matches!(e, AssistantError::Unauthorized), "{e}");
    assert!(e.needs_attention());
    sim.model_control(faults(&[ModelFault::Quota]));
    let e = a.reply(&request(&["hi"], &[])).await.unwrap_err();
    assert!(matches!(e, AssistantError::QuotaExceeded), "{e}");
    assert_eq!(sim.model_requests().len(), 2);
}

#[tokio::test]
async fn a_context_too_long_is_asked_once_more_with_less_history() {
    let sim = sim().await;
    let a = OpenAiAssistant::new(&config(&sim, true)).unwrap();
    let long = "x".repeat(400);
    let history: Vec<(Speaker, &str)> = (0..8)
        .map(|i| {
            let who = if i % 2 == 0 {
                Speaker::Customer
            } else {
                Speaker::Business
            };
            (who, long.as_str())
        })
        .collect();
    // Eight lines of 400 do not fit in 2000 characters; two do.
    sim.model_control(ModelControl {
        max_context_chars: Some(2000),
        ..ModelControl::default()
    });
    let answer = a.reply(&request(&["what now?"], &history)).await.unwrap();
    assert_eq!(answer.text, "Answer to: what now?");
    let sent = sim.model_requests();
    assert_eq!(sent.len(), 2);
    let lengths: Vec<usize> = sent
        .iter()
        .map(|r| r["messages"].as_array().unwrap().len())
        .collect();
    assert!(lengths[1] < lengths[0], "{lengths:?}");
    // Still too long after trimming: no third try.
    sim.model_control(ModelControl {
        max_context_chars: Some(10),
        ..ModelControl::default()
    });
    let e = a
        .reply(&request(&["what now?"], &history))
        .await
        .unwrap_err();
    assert!(matches!(e, AssistantError::ContextTooLong), "{e}");
    assert_eq!(sim.model_requests().len(), 4);
}

#[tokio::test]
async fn a_stalled_or_cut_stream_is_cut_and_asked_again() {
    let sim = sim().await;
    let a = OpenAiAssistant::new(&config(&sim, true)).unwrap();
    sim.model_control(faults(&[ModelFault::Stall, ModelFault::Cut]));
    let answer = a.reply(&request(&["still there?"], &[])).await.unwrap();
    assert_eq!(answer.text, "Answer to: still there?");
    assert_eq!(sim.model_requests().len(), 3);
    // Nothing is left in flight at the model (the stalled stream was cut).
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(sim.model_stats()["in_flight"], 0);
}

#[tokio::test]
async fn a_stream_ending_early_is_asked_again_and_a_cut_answer_ends_at_a_sentence() {
    let sim = sim().await;
    let a = OpenAiAssistant::new(&config(&sim, true)).unwrap();
    // Ended cleanly after its first words: half an answer, never sent.
    sim.model_control(faults(&[ModelFault::Ended]));
    let answer = a.reply(&request(&["still there?"], &[])).await.unwrap();
    assert_eq!(answer.text, "Answer to: still there?");
    assert_eq!(sim.model_requests().len(), 2);
    // Cut at the token limit, streamed or not: up to the last whole sentence.
    for stream in [true, false] {
        let a = OpenAiAssistant::new(&config(&sim, stream)).unwrap();
        sim.model_control(faults(&[ModelFault::Length]));
        let answer = a.reply(&request(&["how long"], &[])).await.unwrap();
        assert_eq!(answer.text, "Answer to: how long.", "streamed: {stream}");
    }
    // Filtered: a refusal, not asked again.
    let before = sim.model_requests().len();
    sim.model_control(faults(&[ModelFault::Filtered]));
    let e = a.reply(&request(&["hi"], &[])).await.unwrap_err();
    assert!(matches!(e, AssistantError::Refused { .. }), "{e}");
    assert_eq!(sim.model_requests().len(), before + 1);
}

#[tokio::test]
async fn a_slow_answer_past_the_deadline_is_a_timeout() {
    let sim = sim().await;
    let mut c = config(&sim, false);
    c.timeout = Duration::from_millis(300);
    let a = OpenAiAssistant::new(&c).unwrap();
    sim.model_control(ModelControl {
        latency_ms: Some(2000),
        ..ModelControl::default()
    });
    let e = a.reply(&request(&["hi"], &[])).await.unwrap_err();
    assert!(matches!(e, AssistantError::Timeout(_)), "{e}");
}

#[tokio::test]
async fn choices_come_from_a_tool_call_or_the_json_form() {
    let sim = sim().await;
    let mut c = config(&sim, true);
    c.offer_choices = true;
    let a = OpenAiAssistant::new(&c).unwrap();
    sim.model_control(ModelControl {
        script: vec![
            Scripted {
                content: "Which size?".into(),
                tool_arguments: Some(r#"{"choices": ["S", "M", "L"]}"#.into()),
            },
            Scripted {
                content: r#"{"text": "Pick a day", "choices": ["Mon", "Tue"]}"#.into(),
                tool_arguments: None,
            },
            // Multi-byte text cut into stream pieces.
            Scripted {
                content: "Welche Größe?".into(),
                tool_arguments: Some(r#"{"choices": ["Größe S", "Größe M"]}"#.into()),
            },
        ],
        ..ModelControl::default()
    });
    let first = a.reply(&request(&["a shirt"], &[])).await.unwrap();
    assert_eq!(first.text, "Which size?");
    assert_eq!(first.choices, ["S", "M", "L"]);
    assert_eq!(
        sim.model_requests()[0]["tools"][0]["function"]["name"],
        "offer_choices"
    );
    let second = a.reply(&request(&["delivery"], &[])).await.unwrap();
    assert_eq!(second.text, "Pick a day");
    assert_eq!(second.choices, ["Mon", "Tue"]);
    let third = a.reply(&request(&["Hemd"], &[])).await.unwrap();
    assert_eq!(third.choices, ["Größe S", "Größe M"]);
}

#[tokio::test]
async fn no_more_than_max_concurrency_requests_are_in_flight() {
    let sim = sim().await;
    let mut c = config(&sim, true);
    c.max_concurrency = 2;
    let a = std::sync::Arc::new(OpenAiAssistant::new(&c).unwrap());
    sim.model_control(ModelControl {
        latency_ms: Some(200),
        ..ModelControl::default()
    });
    let asks: Vec<_> = (0..8)
        .map(|i| {
            let a = a.clone();
            tokio::spawn(async move { a.reply(&request(&[&format!("q{i}")], &[])).await })
        })
        .collect();
    for ask in asks {
        assert!(ask.await.unwrap().is_ok());
    }
    assert_eq!(sim.model_stats()["max_in_flight"], 2);
}
