//! Human takeover and Meta's messaging windows from the outside: webhooks
//! in, admin API calls, what reaches the (simulated) Send API.

use std::time::Duration;

use serde_json::{json, Value};
use switchboard::clock::now_ms;

use crate::support::*;

const HOUR_MS: u64 = 3_600_000;
const HOURS: &str = "We're open 9-5.";

fn messages_of(conversation: &Value) -> Vec<Value> {
    conversation["messages"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn count(conversation: &Value) -> u64 {
    conversation["message_count"].as_u64().unwrap_or(0)
}

#[tokio::test]
async fn takeover_silences_the_ai_and_resume_brings_it_back() {
    let desk = Desk::start(0, "").await;
    desk.customer("PSID_T", "m_t1", "hours?").await;
    // Answered, and the answer written.
    desk.settled("PSID_T", 2).await;

    // The engine's own names are not a person's.
    let (status, _) = desk
        .post(
            "/conversations/acme-fb:PSID_T/takeover",
            json!({"by": "keyword"}),
        )
        .await;
    assert_eq!(status, 422);
    let (status, view) = desk
        .post(
            "/conversations/acme-fb:PSID_T/takeover",
            json!({"auto_resume_minutes": 60, "by": "sam"}),
        )
        .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["mode"], "human");
    assert_eq!(view["taken_over_by"], "sam");
    let resume_at = view["auto_resume_at"].as_str().expect("auto_resume_at");
    let resume_ms = humantime::parse_rfc3339(resume_at).unwrap();
    let in_minutes = resume_ms
        .duration_since(std::time::SystemTime::now())
        .unwrap()
        .as_secs()
        / 60;
    assert!(
        (58..=60).contains(&in_minutes),
        "resumes in {in_minutes} min"
    );
    let (_, humans) = desk.get("/conversations?tenant=acme&mode=human").await;
    assert_eq!(humans["conversations"][0]["id"], "acme-fb:PSID_T");

    desk.customer("PSID_T", "m_t2", "hours again?").await;
    desk.settled("PSID_T", 3).await;
    assert_eq!(
        desk.graph.texts_to("PSID_T").len(),
        1,
        "the AI stays silent during a takeover"
    );
    assert!(desk.replies_counted("human_mode", 1).await);

    let (status, view) = desk
        .post("/conversations/acme-fb:PSID_T/resume", json!({}))
        .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["mode"], "ai");
    assert_eq!(view["auto_resume_at"], Value::Null);
    desk.customer("PSID_T", "m_t3", "and the hours?").await;
    desk.graph
        .wait_for("the answer after resume", |_| {
            desk.graph.texts_to("PSID_T").len() == 2
        })
        .await;
    desk.engine.shutdown().await;
}

#[tokio::test]
async fn an_escalation_keyword_hands_over_and_the_timer_resumes_after_a_restart() {
    let settings = "escalation_keywords = [\"human\", \"real person\"]\nauto_resume_after = \"3s\"";
    let desk = Desk::start(0, settings).await;
    desk.customer("PSID_K", "m_k1", "Can I talk to a Real Person?")
        .await;
    let view = desk
        .wait_conversation("PSID_K", "the takeover", |c| c["mode"] == "human")
        .await;
    assert_eq!(view["taken_over_by"], "keyword");
    assert!(desk.graph.texts_to("PSID_K").is_empty());

    // The timer is persisted: a new engine on the same data resumes the
    // conversation by itself, without any new event for it.
    let desk = desk.restart(0, settings).await;
    desk.wait_conversation("PSID_K", "the auto-resume", |c| c["mode"] == "ai")
        .await;
    desk.customer("PSID_K", "m_k2", "hours?").await;
    desk.graph
        .wait_for("the AI's answer", |_| {
            desk.graph
                .texts_to("PSID_K")
                .iter()
                .any(|c| c.text() == Some(HOURS))
        })
        .await;
    desk.engine.shutdown().await;
}

#[tokio::test]
async fn an_echo_the_engine_did_not_send_hands_over_to_the_inbox() {
    let desk = Desk::start(0, "").await;
    desk.customer("PSID_E", "m_e1", "hours?").await;
    // Answered, and the answer written.
    desk.settled("PSID_E", 2).await;
    let ours = desk
        .conversation("PSID_E")
        .await
        .get("messages")
        .and_then(|m| m[1]["text"].as_str().map(str::to_string));
    assert_eq!(ours.as_deref(), Some(HOURS));
    let echo = |mid: &str, text: &str| {
        json!({
            "sender": {"id": PAGE}, "recipient": {"id": "PSID_E"}, "timestamp": now_ms(),
            "message": {"mid": mid, "is_echo": true, "app_id": 1_517_000, "text": text}
        })
    };
    // The echo of the engine's own reply changes nothing.
    let sent = desk.graph.texts_to("PSID_E");
    let ours_mid = sent[0].message_id().unwrap();
    desk.webhook(vec![echo(ours_mid, HOURS)]).await;
    desk.webhook(vec![echo("m_inbox_1", "Hi, Sam from the shop here")])
        .await;
    let view = desk
        .wait_conversation("PSID_E", "the takeover", |c| c["mode"] == "human")
        .await;
    assert_eq!(view["taken_over_by"], "inbox");
    let last = messages_of(&view).pop().unwrap();
    assert_eq!(last["author"], "inbox");
    assert_eq!(last["direction"], "out");
    assert_eq!(count(&view), 3, "our own echo is not logged twice");

    desk.customer("PSID_E", "m_e2", "thanks Sam").await;
    desk.settled("PSID_E", 4).await;
    assert_eq!(desk.graph.texts_to("PSID_E").len(), 1);
    desk.engine.shutdown().await;
}

#[tokio::test]
async fn a_25_hour_old_message_is_left_to_a_person_who_answers_with_the_human_agent_tag() {
    let desk = Desk::start(0, "").await;
    desk.customer_at("PSID_W", "m_w1", "hours?", now_ms() - 25 * HOUR_MS)
        .await;
    let view = desk.settled("PSID_W", 1).await;
    assert!(view["window_expires_at"].is_string());
    assert!(
        desk.graph.texts_to("PSID_W").is_empty(),
        "the AI does not answer"
    );
    assert!(desk.replies_counted("window_closed", 1).await);

    let (status, body) = desk
        .post(
            "/conversations/acme-fb:PSID_W/messages",
            json!({"text": "Sorry for the wait: we're open 9-5."}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "sent");
    let sent = desk.graph.texts_to("PSID_W");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].body["messaging_type"], "MESSAGE_TAG");
    assert_eq!(sent[0].body["tag"], "HUMAN_AGENT");
    let view = desk.conversation("PSID_W").await;
    assert_eq!(view["mode"], "human", "a person writing takes over");
    let last = messages_of(&view).pop().unwrap();
    assert_eq!(last["author"], "agent");
    assert_eq!(last["status"], "sent");
    desk.engine.shutdown().await;
}

#[tokio::test]
async fn a_person_inside_the_window_sends_a_plain_response() {
    let desk = Desk::start(0, "").await;
    desk.customer("PSID_R", "m_r1", "hi").await;
    // Answered, and the answer written.
    desk.settled("PSID_R", 2).await;
    let (status, body) = desk
        .post(
            "/conversations/acme-fb:PSID_R/messages",
            json!({"text": "Sam here, anything else?"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let sent = desk.graph.texts_to("PSID_R");
    assert_eq!(sent[1].body["messaging_type"], "RESPONSE");
    assert_eq!(sent[1].body.get("tag"), None);
    desk.engine.shutdown().await;
}

#[tokio::test]
async fn an_8_day_old_conversation_cannot_be_answered() {
    let desk = Desk::start(0, "").await;
    desk.customer_at("PSID_O", "m_o1", "hello?", now_ms() - 8 * 24 * HOUR_MS)
        .await;
    desk.settled("PSID_O", 1).await;
    let (status, body) = desk
        .post(
            "/conversations/acme-fb:PSID_O/messages",
            json!({"text": "Still interested?"}),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(body["error"].as_str().unwrap().contains("7 days"), "{body}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(desk.graph.texts_to("PSID_O").is_empty());
    desk.engine.shutdown().await;
}

#[tokio::test]
async fn only_allowed_customers_are_answered_the_others_recorded() {
    let desk = Desk::start(0, "allowed_customers = [\"VIP_1\"]").await;
    desk.customer("STRANGER", "m1", "what are your hours?")
        .await;
    desk.customer("VIP_1", "m2", "what are your hours?").await;
    assert_eq!(desk.graph.answers("VIP_1", 1).await, ["We're open 9-5."]);
    let view = desk.settled("STRANGER", 1).await;
    assert_eq!(view["messages"][0]["text"], "what are your hours?");
    assert!(desk.graph.texts_to("STRANGER").is_empty());
    assert!(desk
        .graph
        .calls()
        .iter()
        .all(|c| c.recipient() != "STRANGER"));
}
