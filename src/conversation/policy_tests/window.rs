//! The messaging window, the away message, the welcome, expiry and the
//! daily analytics.

use super::*;

#[test]
fn the_ai_does_not_answer_a_message_older_than_24_hours() {
    let mut c = Conversation::new(integration(100, 0, true), "fb:C", "C", None, T0);
    let sent = T0 - 25 * H;
    assert_eq!(
        c.apply(&message("m1", "hi", sent), T0),
        EventOutcome::WindowClosed
    );
    assert!(c.record.pending.is_empty());
    assert_eq!(c.record.last_inbound_ms, Some(sent));
}

#[test]
fn a_persons_message_is_tagged_after_24_hours_and_refused_after_7_days() {
    let mut c = Conversation::new(integration(100, 0, true), "fb:C", "C", None, T0);
    c.apply(&message("m1", "hi", T0 - 25 * H), T0);
    let text = |t: &str| AgentAction::Message {
        text: t.into(),
        attachment: None,
    };
    assert_eq!(
        c.apply(&agent("cmd1", text("Sorry for the wait"), T0), T0),
        EventOutcome::Command(CommandResult::Queued)
    );
    let item = c.record.outbox[0].clone();
    assert_eq!(item.command.as_deref(), Some("cmd1"));
    assert_eq!(c.send_tag(&item, T0), Ok(crate::event::SendTag::HumanAgent));
    let late = T0 - 25 * H + 8 * 24 * H;
    assert!(
        c.send_tag(&item, late).is_err(),
        "checked again at send time"
    );
    let outcome = c.apply(&agent("cmd2", text("Anyone?"), late), late);
    assert!(matches!(
        outcome,
        EventOutcome::Command(CommandResult::Refused(_))
    ));
}

#[test]
fn the_away_message_goes_out_once_per_window() {
    let settings = serde_json::json!({"enabled": false, "away_message": "We're away."});
    let mut c = Conversation::new(integration_with(settings), "fb:C", "C", None, T0);
    assert_eq!(c.apply(&message("m1", "hi", T0), T0), EventOutcome::Planned);
    assert_eq!(c.record.outbox[0].text, "We're away.");
    c.part_sent("m_away".into(), T0 + 1);
    assert_eq!(
        c.apply(&message("m2", "hello?", T0 + H), T0 + H),
        EventOutcome::Recorded
    );
    // 25 hours of silence: a new window, a new away message.
    let later = T0 + H + 25 * H;
    assert_eq!(
        c.apply(&message("m3", "back", later), later),
        EventOutcome::Planned
    );
}

#[test]
fn get_started_is_answered_with_the_welcome() {
    let settings = serde_json::json!({"get_started_payload": "GET_STARTED", "welcome_message": "Welcome to the shop!"});
    let mut c = Conversation::new(integration_with(settings), "fb:C", "C", None, T0);
    let mut e = message("x", "", T0);
    e.kind = EventKind::Postback {
        mid: Some("m_pb".into()),
        title: Some("Get Started".into()),
        payload: "GET_STARTED".into(),
    };
    assert_eq!(c.apply(&e, T0), EventOutcome::Planned);
    assert_eq!(c.record.outbox[0].text, "Welcome to the shop!");
    assert!(c.record.pending.is_empty(), "the assistant is not asked");
}

#[test]
fn an_expired_conversation_starts_afresh() {
    let settings = serde_json::json!({"expire_after": "2h", "auto_resume_after": "off"});
    let mut c = Conversation::new(integration_with(settings), "fb:C", "C", None, T0);
    c.apply(&message("m1", "hi", T0), T0);
    c.apply(&agent("cmd1", takeover(None), T0 + 1), T0 + 1);
    assert_eq!(c.record.auto_resume_ms, None, "\"off\": no timer");
    assert_eq!(
        c.apply(&message("m2", "still there?", T0 + H), T0 + H),
        EventOutcome::HumanMode
    );
    let later = T0 + 4 * H;
    assert!(matches!(
        c.apply(&message("m3", "new question", later), later),
        EventOutcome::Queued { .. }
    ));
    assert_eq!(c.record.mode, Mode::Ai);
}

#[test]
fn analytics_count_inbound_outbound_deliveries_and_reads_per_day() {
    let mut c = Conversation::new(integration(100, 0, true), "fb:C", "C", None, T0);
    c.apply(&message("m1", "hi", T0), T0);
    c.plan_reply("one", T0);
    c.part_sent("o1".into(), T0 + 10);
    c.apply(&message("m2", "again", T0 + 20), T0 + 20);
    c.plan_reply("two", T0 + 20);
    c.part_sent("o2".into(), T0 + 30);
    let mut delivery = message("x", "", T0 + 40);
    delivery.kind = EventKind::Delivery {
        watermark: T0 + 10,
        mids: vec![],
    };
    c.apply(&delivery, T0 + 40);
    // A read covering a part never reported delivered counts it delivered.
    let mut read = message("x", "", T0 + 50);
    read.kind = EventKind::Read { watermark: T0 + 30 };
    c.apply(&read, T0 + 50);
    let w = c.take_write().expect("changes");
    assert_eq!(w.counts.len(), 1);
    let day = w.counts[0];
    assert_eq!(
        (day.inbound, day.outbound, day.delivered, day.read),
        (2, 2, 2, 2)
    );
    assert_eq!(day.day, (T0 / (24 * H)) as u32);
}

#[test]
fn a_stamp_ahead_of_the_arrival_does_not_hold_the_window_open() {
    let mut c = Conversation::new(integration(100, 0, true), "fb:C", "C", None, T0);
    let ahead = InboundEvent {
        received_at_ms: T0,
        ..message("m1", "hi", T0 + 20 * H)
    };
    c.apply(&ahead, T0);
    assert_eq!(c.record.last_inbound_ms, Some(T0 + 60_000));
    assert_eq!(c.record.window_opened_ms, Some(T0 + 60_000));
}
