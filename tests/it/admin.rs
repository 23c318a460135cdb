//! The admin API's surface (token, errors, listing, analytics) and the
//! integration settings an operator configures (away message, greeting,
//! Get Started).

use std::time::Duration;

use serde_json::{json, Value};
use switchboard::clock::now_ms;

use crate::support::*;

#[tokio::test]
async fn no_token_or_a_wrong_one_gets_401_in_json() {
    let desk = Desk::start(0, "").await;
    let url = format!("http://{}/api/v1/conversations", desk.engine.addr);
    let client = reqwest::Client::new();
    for request in [
        client.get(&url),
        client.get(&url).bearer_auth("not-the-token"),
    ] {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401);
        let body: Value = response.json().await.unwrap();
        assert!(body["error"].is_string(), "{body}");
    }
    let (status, body) = desk.get("/conversations").await;
    assert_eq!(status, 200, "{body}");
    desk.engine.shutdown().await;
}

#[tokio::test]
async fn mistakes_get_a_status_and_one_readable_sentence() {
    let desk = Desk::start(0, "").await;
    desk.customer("PSID_X", "m_x1", "hi").await;
    desk.wait_conversation("PSID_X", "the conversation", |_| true)
        .await;
    let cases = [
        ("/conversations/acme-fb:NOBODY/resume", json!({}), 404),
        (
            "/conversations/acme-fb:PSID_X/takeover",
            json!({"auto_resume_minutes": 4}),
            400,
        ),
        (
            "/conversations/acme-fb:PSID_X/takeover",
            json!({"auto_resume_minutes": 10_081}),
            400,
        ),
        (
            "/conversations/acme-fb:PSID_X/messages",
            json!({"text": " "}),
            400,
        ),
        (
            "/conversations/acme-fb:PSID_X/messages",
            json!({"txt": "hi"}),
            400,
        ),
    ];
    for (path, body, expected) in cases {
        let (status, answer) = desk.post(path, body.clone()).await;
        assert_eq!(status, expected, "{path} {body}: {answer}");
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(!error.is_empty() && !error.contains('\n'), "{answer}");
    }
    for (path, expected) in [
        ("/conversations?mode=robot", 400),
        ("/conversations?tenant=nobody", 404),
        ("/conversations?limit=0", 400),
        ("/analytics?days=12", 400),
        ("/nothing-here", 404),
    ] {
        let (status, answer) = desk.get(path).await;
        assert_eq!(status, expected, "{path}: {answer}");
        assert!(answer["error"].is_string(), "{answer}");
    }
    desk.engine.shutdown().await;
}

#[tokio::test]
async fn conversations_are_listed_filtered_and_paged() {
    let desk = Desk::start(0, "").await;
    for i in 0..5 {
        desk.customer(&format!("PSID_L{i}"), &format!("m_l{i}"), "hi")
            .await;
    }
    for i in 0..5 {
        desk.settled(&format!("PSID_L{i}"), 2).await;
    }
    let mut seen = Vec::new();
    let mut path = "/conversations?tenant=acme&channel=messenger&limit=2".to_string();
    loop {
        let (status, page) = desk.get(&path).await;
        assert_eq!(status, 200, "{page}");
        for c in page["conversations"].as_array().unwrap() {
            assert_eq!(c["channel"], "messenger");
            assert_eq!(c["mode"], "ai");
            assert_eq!(c["message_count"], 2);
            assert!(c["last_activity"].is_string() && c["window_expires_at"].is_string());
            seen.push(c["id"].as_str().unwrap().to_string());
        }
        match page["next"].as_str() {
            Some(next) => path = format!("/conversations?tenant=acme&limit=2&after={next}"),
            None => break,
        }
    }
    let expected: Vec<String> = (0..5).map(|i| format!("acme-fb:PSID_L{i}")).collect();
    assert_eq!(seen, expected);
    let (_, instagram) = desk.get("/conversations?channel=instagram").await;
    assert_eq!(instagram["conversations"], json!([]));
    desk.engine.shutdown().await;
}

/// The platform stamps a reply when it takes it, before its answer comes
/// back: a read watermark at that stamp covers the reply, however late the
/// answer came.
#[tokio::test]
async fn a_read_at_the_platforms_stamp_covers_a_reply_whose_answer_came_late() {
    let desk = Desk::start(0, "").await;
    desk.graph.answer_next_calls_late(1, 800);
    desk.customer("PSID_R1", "m_r1", "hours?").await;
    desk.graph
        .wait_for("the reply taken by the platform", |calls| {
            calls.iter().any(|c| c.text().is_some())
        })
        .await;
    let stamp = now_ms();
    desk.webhook(vec![
        json!({"sender": {"id": "PSID_R1"}, "recipient": {"id": PAGE},
        "timestamp": stamp, "read": {"watermark": stamp}}),
    ])
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, stats) = desk.get("/analytics?tenant=acme&days=7").await;
        if stats["read"] == 1 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{stats:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    desk.engine.shutdown().await;
}

#[tokio::test]
async fn analytics_count_deliveries_and_reads() {
    let desk = Desk::start(0, "").await;
    for psid in ["PSID_A1", "PSID_A2"] {
        desk.customer(psid, &format!("m_{psid}"), "hours?").await;
    }
    desk.graph
        .wait_for("both answers", |calls| {
            calls.iter().filter(|c| c.text().is_some()).count() == 2
        })
        .await;
    let now = now_ms() + 1;
    desk.webhook(vec![
        json!({"sender": {"id": "PSID_A1"}, "recipient": {"id": PAGE}, "timestamp": now,
               "delivery": {"mids": [], "watermark": now}}),
        json!({"sender": {"id": "PSID_A2"}, "recipient": {"id": PAGE}, "timestamp": now,
               "read": {"watermark": now}}),
    ])
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let stats = loop {
        let (status, stats) = desk.get("/analytics?tenant=acme&days=7").await;
        assert_eq!(status, 200, "{stats}");
        if stats["read"] == 1 && stats["delivered"] == 2 {
            break stats;
        }
        assert!(tokio::time::Instant::now() < deadline, "{stats:#}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(stats["inbound"], 2);
    assert_eq!(stats["outbound"], 2);
    assert_eq!(stats["delivery_rate"], 1.0);
    assert_eq!(stats["read_rate"], 0.5);
    assert_eq!(stats["conversations_total"], 2);
    assert_eq!(stats["conversations_active"], 2);
    assert_eq!(stats["takeovers_active"], 0);
    let daily = stats["daily"].as_array().unwrap();
    assert_eq!(daily.len(), 7);
    let today = daily.last().unwrap();
    assert_eq!(
        today["date"].as_str().unwrap(),
        &switchboard::clock::rfc3339(now_ms())[..10]
    );
    assert_eq!(
        (today["inbound"].as_u64(), today["outbound"].as_u64()),
        (Some(2), Some(2))
    );
    // The Instagram integration of the same tenant saw nothing.
    let (_, ig) = desk.get("/analytics?integration=acme-ig&days=30").await;
    assert_eq!(
        (ig["inbound"].as_u64(), ig["daily"].as_array().map(Vec::len)),
        (Some(0), Some(30))
    );

    desk.post("/conversations/acme-fb:PSID_A1/takeover", json!({}))
        .await;
    let (_, stats) = desk.get("/analytics?tenant=acme").await;
    assert_eq!(stats["takeovers_active"], 1);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !desk
        .metrics()
        .await
        .contains("switchboard_takeovers_active 1")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "takeovers_active gauge"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    desk.engine.shutdown().await;
}

#[tokio::test]
async fn a_disabled_integration_sends_its_away_message_once_per_window() {
    let desk = Desk::start(
        0,
        "enabled = false\naway_message = \"We're away until Monday.\"",
    )
    .await;
    desk.customer("PSID_Y", "m_y1", "hello?").await;
    desk.customer("PSID_Y", "m_y2", "anyone?").await;
    desk.settled("PSID_Y", 3).await;
    let texts: Vec<_> = desk
        .graph
        .texts_to("PSID_Y")
        .iter()
        .filter_map(|c| c.text().map(str::to_string))
        .collect();
    assert_eq!(texts, ["We're away until Monday."]);
    desk.engine.shutdown().await;
}

#[tokio::test]
async fn the_messenger_profile_is_pushed_and_get_started_is_welcomed() {
    let settings = "greeting = \"Hi {{user_first_name}}!\"\nget_started_payload = \"GET_STARTED\"\nwelcome_message = \"Welcome! Ask me about our hours.\"";
    let desk = Desk::start(0, settings).await;
    desk.graph
        .wait_for("the profile push", |calls| {
            calls.iter().any(|c| c.body.get("get_started").is_some())
        })
        .await;
    let profile = desk
        .graph
        .calls()
        .into_iter()
        .find(|c| c.body.get("get_started").is_some())
        .unwrap();
    assert_eq!(profile.account, PAGE);
    assert_eq!(profile.body["get_started"]["payload"], "GET_STARTED");
    assert_eq!(profile.body["greeting"][0]["locale"], "default");
    assert_eq!(
        profile.token,
        Some(switchboard::tools::sim::fingerprint(TOKEN))
    );

    desk.webhook(vec![json!({
        "sender": {"id": "PSID_G"}, "recipient": {"id": PAGE}, "timestamp": now_ms(),
        "postback": {"mid": "m_g1", "title": "Get Started", "payload": "GET_STARTED"}
    })])
    .await;
    desk.graph
        .wait_for("the welcome", |_| {
            desk.graph
                .texts_to("PSID_G")
                .iter()
                .any(|c| c.text() == Some("Welcome! Ask me about our hours."))
        })
        .await;
    desk.engine.shutdown().await;
}

/// A person's message retried with the same `Idempotency-Key` (a client
/// that timed out and tried again) is sent once, and the retry gets the
/// first outcome; another key sends another message.
#[tokio::test]
async fn a_retried_message_with_the_same_idempotency_key_is_sent_once() {
    let desk = Desk::start(0, "").await;
    desk.customer("PSID_IK", "m_ik1", "hi").await;
    desk.settled("PSID_IK", 2).await;
    let url = format!(
        "http://{}/api/v1/conversations/acme-fb:PSID_IK/messages",
        desk.engine.addr
    );
    let send = |key: &'static str| {
        reqwest::Client::new()
            .post(&url)
            .bearer_auth("admin")
            .header("Idempotency-Key", key)
            .json(&json!({"text": "Sam here, let me check."}))
            .send()
    };
    let first = send("order-42-reply").await.unwrap();
    assert_eq!(first.status(), 200);
    let first: Value = first.json().await.unwrap();
    let again = send("order-42-reply").await.unwrap();
    assert_eq!(again.status(), 200);
    let again: Value = again.json().await.unwrap();
    assert_eq!(first, again, "the retry answers the first outcome");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let persons: Vec<_> = desk
        .graph
        .texts_to("PSID_IK")
        .into_iter()
        .filter(|c| c.text() == Some("Sam here, let me check."))
        .collect();
    assert_eq!(persons.len(), 1, "sent once");
    let other = send("order-43-reply").await.unwrap();
    assert_eq!(other.status(), 200);
    let bad = reqwest::Client::new()
        .post(&url)
        .bearer_auth("admin")
        .header("Idempotency-Key", "")
        .json(&json!({"text": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    desk.engine.shutdown().await;
}
