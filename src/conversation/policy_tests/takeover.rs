//! A person in the inbox: takeover, resume, auto-resume.

use super::*;

#[test]
fn takeover_silences_the_ai_and_resume_brings_it_back() {
    let mut c = Conversation::new(integration(100, 5_000, true), "fb:C", "C", None, T0);
    c.apply(&message("m1", "hi", T0), T0);
    assert!(!c.record.pending.is_empty(), "a delayed reply is pending");
    let outcome = c.apply(&agent("cmd1", takeover(Some(30)), T0 + 1), T0 + 1);
    assert_eq!(outcome, EventOutcome::Command(CommandResult::Applied));
    assert_eq!(c.record.mode, Mode::Human);
    assert!(
        c.record.pending.is_empty(),
        "the pending AI turn is dropped"
    );
    assert!(!c.reply_due(T0 + 10_000));
    assert_eq!(c.record.auto_resume_ms, Some(T0 + 1 + 30 * 60_000));
    assert_eq!(c.record.takeover_by.as_deref(), Some("sam"));
    assert_eq!(
        c.apply(&message("m2", "hello?", T0 + 2), T0 + 2),
        EventOutcome::HumanMode
    );
    // A replayed command is applied once.
    assert_eq!(
        c.apply(&agent("cmd1", takeover(Some(30)), T0 + 1), T0 + 3),
        EventOutcome::Duplicate
    );
    c.apply(&agent("cmd2", AgentAction::Resume, T0 + 4), T0 + 4);
    assert_eq!(c.record.mode, Mode::Ai);
    assert_eq!(c.record.auto_resume_ms, None);
    assert!(matches!(
        c.apply(&message("m3", "hours?", T0 + 5), T0 + 5),
        EventOutcome::Queued { .. }
    ));
    let write = c.take_write().expect("changes");
    assert!(write.takeover_changed);
}

#[test]
fn takeover_cancels_unsent_ai_parts_but_keeps_a_persons() {
    let mut c = Conversation::new(integration(100, 0, true), "fb:C", "C", None, T0);
    c.apply(&message("m1", "hi", T0), T0);
    c.plan_reply("An answer", T0);
    assert_eq!(c.record.outbox.len(), 1);
    let _ = c.take_write();
    c.apply(
        &agent(
            "cmd1",
            AgentAction::Message {
                text: "Sam here".into(),
                attachment: None,
            },
            T0 + 1,
        ),
        T0 + 1,
    );
    assert_eq!(c.record.mode, Mode::Human, "a person writing takes over");
    let outbox: Vec<_> = c.record.outbox.iter().map(|i| i.author).collect();
    assert_eq!(outbox, [Author::Agent]);
    let write = c.take_write().expect("changes");
    let cancelled: Vec<_> = write
        .messages
        .iter()
        .filter(|m| m.status == MessageStatus::Cancelled)
        .map(|m| m.text.clone().unwrap_or_default())
        .collect();
    assert_eq!(cancelled, ["An answer"]);
}

#[test]
fn auto_resume_is_a_deadline() {
    let settings =
        serde_json::json!({"auto_resume_after": "10m", "escalation_keywords": ["human"]});
    let mut c = Conversation::new(integration_with(settings), "fb:C", "C", None, T0);
    assert_eq!(
        c.apply(&message("m1", "I want a HUMAN now", T0), T0),
        EventOutcome::HumanMode
    );
    assert_eq!(c.record.takeover_by.as_deref(), Some("keyword"));
    let due = T0 + 10 * 60_000;
    assert_eq!(c.record.next_deadline(), Some(due));
    assert!(!c.auto_resume(due - 1));
    assert!(c.auto_resume(due));
    assert_eq!(c.record.mode, Mode::Ai);
    assert_eq!(c.record.next_deadline(), None);
}

#[test]
fn an_echo_the_engine_did_not_send_is_a_person_in_the_inbox() {
    let mut c = Conversation::new(integration(100, 0, true), "fb:C", "C", None, T0);
    c.apply(&message("m1", "hi", T0), T0);
    c.plan_reply("ours", T0);
    c.part_sent("m_ours".into(), T0 + 1);
    assert_eq!(
        c.apply(&echo("m_ours", T0 + 2), T0 + 2),
        EventOutcome::Ignored
    );
    assert_eq!(c.record.mode, Mode::Ai);
    assert_eq!(
        c.apply(&echo("m_inbox", T0 + 3), T0 + 3),
        EventOutcome::Recorded
    );
    assert_eq!(c.record.mode, Mode::Human);
    assert_eq!(c.record.takeover_by.as_deref(), Some("inbox"));
    assert_eq!(
        c.record.auto_resume_ms,
        Some(T0 + 3 + 24 * H),
        "the default auto_resume_after is 24h"
    );
}

#[test]
fn a_customer_asking_again_keeps_the_person_and_their_timer() {
    let settings =
        serde_json::json!({"auto_resume_after": "24h", "escalation_keywords": ["human"]});
    let mut c = Conversation::new(integration_with(settings), "fb:C", "C", None, T0);
    // Sam takes it for a week.
    c.apply(&agent("cmd1", takeover(Some(7 * 24 * 60)), T0), T0);
    let week = T0 + 7 * 24 * H;
    assert_eq!(c.record.auto_resume_ms, Some(week));
    assert_eq!(
        c.apply(&message("m1", "I still need a human", T0 + 5), T0 + 5),
        EventOutcome::HumanMode
    );
    assert_eq!(c.record.takeover_by.as_deref(), Some("sam"), "still Sam's");
    assert_eq!(c.record.auto_resume_ms, Some(week), "not the next day");
}

#[test]
fn asking_again_keeps_a_persons_timer_when_the_default_is_off() {
    let settings =
        serde_json::json!({"auto_resume_after": "off", "escalation_keywords": ["human"]});
    let mut c = Conversation::new(integration_with(settings), "fb:C", "C", None, T0);
    c.apply(&agent("cmd1", takeover(Some(30)), T0), T0);
    c.apply(&message("m1", "human please", T0 + 5), T0 + 5);
    assert_eq!(c.record.auto_resume_ms, Some(T0 + 30 * 60_000), "kept");
}

#[test]
fn a_takeover_whose_timer_passed_no_longer_silences_the_customer() {
    let settings =
        serde_json::json!({"auto_resume_after": "10m", "escalation_keywords": ["human"]});
    let mut c = Conversation::new(integration_with(settings), "fb:C", "C", None, T0);
    c.apply(&message("m1", "human", T0), T0);
    let due = T0 + 10 * 60_000;
    // The timer's wake has not been handled yet when the customer writes.
    assert!(matches!(
        c.apply(&message("m2", "hours?", due + 10), due + 10),
        EventOutcome::Queued { .. }
    ));
    assert_eq!(c.record.mode, Mode::Ai);
}

#[test]
fn a_comment_from_someone_off_the_allowlist_is_kept_not_answered() {
    let settings = serde_json::json!({"allowed_customers": ["TESTER"]});
    let mut c = Conversation::new(integration_with(settings), "fb:C", "C", None, T0);
    let comment = InboundEvent {
        kind: EventKind::Comment {
            comment_id: "c1".into(),
            surface: crate::event::CommentSurface::Page,
            text: "hours?".into(),
            post_id: None,
        },
        ..message("unused", "", T0)
    };
    assert_eq!(c.apply(&comment, T0), EventOutcome::Recorded);
    assert!(c.record.comments.is_empty());
}

#[test]
fn a_person_writing_keeps_the_ai_from_speaking_up_mid_exchange() {
    let settings =
        serde_json::json!({"auto_resume_after": "30m", "escalation_keywords": ["human"]});
    let mut c = Conversation::new(integration_with(settings), "fb:C", "C", None, T0);
    c.apply(&message("m1", "human", T0), T0);
    assert_eq!(c.record.auto_resume_ms, Some(T0 + 30 * 60_000));
    // The person answers from the Page inbox 20 minutes in.
    let at = T0 + 20 * 60_000;
    c.apply(&echo("m_inbox", at), at);
    assert_eq!(c.record.auto_resume_ms, Some(at + 30 * 60_000));
    assert_eq!(
        c.record.takeover_by.as_deref(),
        Some("keyword"),
        "same owner"
    );
}

#[test]
fn a_person_writing_keeps_a_short_takeover_short() {
    let settings = serde_json::json!({"auto_resume_after": "24h"});
    let mut c = Conversation::new(integration_with(settings), "fb:C", "C", None, T0);
    c.apply(&agent("cmd1", takeover(Some(5)), T0), T0);
    let at = T0 + 4 * 60_000;
    c.apply(&echo("m_inbox", at), at);
    assert_eq!(
        c.record.auto_resume_ms,
        Some(at + 5 * 60_000),
        "its own 5 minutes"
    );
}
