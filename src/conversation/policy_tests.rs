//! The conversation policy from the outside of its I/O: events and clock
//! readings in, state, outbox and writes out.

use std::sync::Arc;

use super::turn::*;
use crate::config::{ChannelKind, IntegrationConfig};
use crate::event::{AgentAction, EventKind, InboundEvent};
use crate::store::{Author, MessageStatus, Mode};

fn integration(rate: u32, delay: u64, enabled: bool) -> Arc<IntegrationConfig> {
    integration_with(serde_json::json!({
        "rate_limit_per_minute": rate,
        "response_delay_ms": delay,
        "enabled": enabled,
    }))
}

/// A Messenger integration with `settings` over the defaults.
fn integration_with(settings: serde_json::Value) -> Arc<IntegrationConfig> {
    let mut config = serde_json::json!({
        "id": "fb", "tenant": "t", "channel": "messenger", "app": "main",
        "account_id": "P", "access_token": "t", "assistant": "a",
    });
    if let (Some(c), Some(extra)) = (config.as_object_mut(), settings.as_object()) {
        c.extend(extra.clone());
    }
    Arc::new(serde_json::from_value(config).expect("test integration"))
}

fn message(mid: &str, text: &str, ts: u64) -> InboundEvent {
    InboundEvent {
        conversation: "fb:C".into(),
        integration: "fb".into(),
        channel: ChannelKind::Messenger,
        customer: "C".into(),
        timestamp_ms: ts,
        received_at_ms: ts,
        customer_name: None,
        kind: EventKind::Message {
            mid: mid.into(),
            text: Some(text.into()),
            attachments: vec![],
            quick_reply: None,
        },
    }
}

#[test]
fn messages_during_a_delay_join_the_same_turn() {
    let mut c = Conversation::new(integration(100, 1000, true), "fb:C", "C", None, 0);
    assert_eq!(
        c.apply(&message("m1", "hi", 0), 0),
        EventOutcome::Queued { starts_turn: true }
    );
    assert_eq!(
        c.apply(&message("m2", "hours?", 10), 10),
        EventOutcome::Queued { starts_turn: false }
    );
    assert!(!c.reply_due(999));
    assert!(c.reply_due(1000));
    assert_eq!(c.pending_request().0, ["hi", "hours?"]);
    c.plan_reply("answer", 1000);
    assert!(c.record.pending.is_empty());
    assert_eq!(c.record.outbox.len(), 1);
    assert_eq!(c.record.next_deadline(), None);
}

#[test]
fn duplicates_and_rate_limit() {
    let mut c = Conversation::new(integration(2, 0, true), "fb:C", "C", None, 0);
    assert!(matches!(
        c.apply(&message("m1", "a", 0), 0),
        EventOutcome::Queued { .. }
    ));
    assert_eq!(c.apply(&message("m1", "a", 0), 1), EventOutcome::Duplicate);
    assert!(matches!(
        c.apply(&message("m2", "b", 2), 2),
        EventOutcome::Queued { .. }
    ));
    assert_eq!(
        c.apply(&message("m3", "c", 3), 3),
        EventOutcome::RateLimited
    );
    let write = c.take_write().expect("changes");
    let statuses: Vec<_> = write.messages.iter().map(|m| m.status).collect();
    assert_eq!(
        statuses,
        [
            MessageStatus::Received,
            MessageStatus::Received,
            MessageStatus::RateLimited
        ]
    );
    assert_eq!(
        c.pending_request().0,
        ["a", "b"],
        "the limited message is kept, not answered"
    );
}

#[test]
fn disabled_integration_records_without_answering() {
    let mut c = Conversation::new(integration(100, 0, false), "fb:C", "C", None, 0);
    assert_eq!(c.apply(&message("m1", "hi", 0), 0), EventOutcome::Recorded);
    assert!(!c.reply_due(0));
    assert_eq!(c.record.message_count, 1);
}

#[test]
fn delivery_and_read_watermarks_mark_sent_parts() {
    let mut c = Conversation::new(integration(100, 0, true), "fb:C", "C", None, 0);
    c.apply(&message("m1", "hi", 0), 0); // seq 1
    c.plan_reply("one", 0); // seq 2
    c.part_sent("m_out_1".into(), 100);
    c.apply(&message("m2", "again", 150), 150); // seq 3
    c.plan_reply("two", 150); // seq 4
    c.part_sent("m_out_2".into(), 200);
    let _ = c.take_write();
    let mut delivery = message("x", "", 0);
    delivery.kind = EventKind::Delivery {
        watermark: 150,
        mids: vec![],
    };
    c.apply(&delivery, 300);
    let w = c.take_write().expect("marks");
    assert_eq!(w.status_updates, vec![(2, MessageStatus::Delivered)]);
    let mut read = message("x", "", 0);
    read.kind = EventKind::Read { watermark: 250 };
    c.apply(&read, 400);
    let w = c.take_write().expect("marks");
    assert_eq!(
        w.status_updates,
        vec![(4, MessageStatus::Read), (2, MessageStatus::Read)]
    );
    // Our own echo is recognised and ignored.
    let mut echo = message("x", "", 0);
    echo.kind = EventKind::Echo {
        mid: "m_out_1".into(),
        text: None,
        app_id: None,
        metadata: None,
        own_app: false,
    };
    assert_eq!(c.apply(&echo, 500), EventOutcome::Ignored);
}

#[test]
fn unacknowledged_sends_do_not_grow_the_state() {
    let mut c = Conversation::new(integration(1_000_000, 0, true), "fb:C", "C", None, 0);
    for i in 0..500u64 {
        c.apply(&message(&format!("m{i}"), "hi", i), i);
        c.plan_reply("ok", i);
        c.part_sent(format!("out{i}"), i);
    }
    assert!(c.record.undelivered.len() <= TRACKED_MARKS);
}

const H: u64 = 3_600_000;
/// A day well after the epoch, so "24 hours ago" is a real time.
const T0: u64 = 1_000 * 24 * H;

fn echo(mid: &str, ts: u64) -> InboundEvent {
    let mut e = message("x", "", ts);
    e.kind = EventKind::Echo {
        mid: mid.into(),
        text: Some("Hi, this is Sam from the shop".into()),
        app_id: Some(42),
        metadata: None,
        own_app: false,
    };
    e
}

/// The echo of a message this engine sent with part id `part`.
fn own_echo(mid: &str, part: &str, ts: u64) -> InboundEvent {
    let mut e = message("x", "", ts);
    e.kind = EventKind::Echo {
        mid: mid.into(),
        text: Some("We're open".into()),
        app_id: Some(555),
        metadata: Some(part.into()),
        own_app: false,
    };
    e
}

#[test]
fn an_unconfirmed_part_is_confirmed_by_its_echo_and_never_sent_again() {
    let mut c = Conversation::new(integration(100, 0, true), "fb:C", "C", None, T0);
    c.apply(&message("m1", "hours?", T0), T0);
    c.plan_reply("We're open", T0);
    let part = c.record.outbox[0].part_id.clone();
    assert!(super::turn::is_part_id(&part));
    // The send timed out after the bytes left: unconfirmed for 10 s.
    c.part_unconfirmed(T0 + 10_000);
    assert!(c.awaiting_confirmation(T0 + 1));
    assert!(!c.resend_due(T0 + 5_000), "not before the wait");
    // The echo names the part: settled, not a person answering.
    assert_eq!(
        c.apply(&own_echo("m_late", &part, T0 + 2_000), T0 + 2_000),
        EventOutcome::Confirmed
    );
    assert!(c.record.outbox.is_empty());
    assert_eq!(
        c.record.mode,
        Mode::Ai,
        "the engine's own echo is no takeover"
    );
    assert!(!c.resend_due(T0 + 20_000));
    // A second echo of it changes nothing.
    assert_eq!(
        c.apply(&own_echo("m_late", &part, T0 + 3_000), T0 + 3_000),
        EventOutcome::Ignored
    );
}

#[test]
fn an_unconfirmed_part_is_sent_again_only_after_the_wait() {
    let mut c = Conversation::new(integration(100, 0, true), "fb:C", "C", None, T0);
    c.apply(&message("m1", "hours?", T0), T0);
    c.plan_reply("We're open", T0);
    c.part_unconfirmed(T0 + 10_000);
    assert_eq!(
        c.record.next_deadline(),
        Some(T0 + 10_000),
        "a timer wakes it"
    );
    assert!(!c.resend_due(T0 + 9_999));
    assert!(c.resend_due(T0 + 10_000));
    assert!(!c.awaiting_confirmation(T0 + 10_000));
    // Resent with a new deadline written first: a restart right after the
    // resend finds it held, not due.
    c.resend_unconfirmed(T0 + 20_000);
    assert_eq!(c.record.outbox.len(), 1, "still to send");
    assert_eq!(c.hold_outbox(T0 + 12_000), 0, "already held");
    assert!(c.awaiting_confirmation(T0 + 12_000));
}

#[test]
fn a_replayed_message_plans_the_same_part_ids_held_for_confirmation() {
    let short = || integration_with(serde_json::json!({"max_message_length": 20}));
    let first = {
        let mut c = Conversation::new(short(), "fb:C", "C", None, T0);
        c.apply(&message("m1", "hours?", T0), T0);
        c.plan_reply("Open.\n\nAlso on Sunday.", T0);
        c.record
            .outbox
            .iter()
            .map(|p| p.part_id.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(first.len(), 2, "a reply in two parts");
    let mut c = Conversation::new(short(), "fb:C", "C", None, T0);
    c.hold_new_parts(Some(T0 + 10_000));
    c.apply(&message("m1", "hours?", T0), T0);
    c.plan_reply("Open.\n\nAlso on Sunday.", T0);
    let again: Vec<_> = c.record.outbox.iter().map(|p| p.part_id.clone()).collect();
    assert_eq!(first, again);
    assert!(c
        .record
        .outbox
        .iter()
        .all(|p| p.unconfirmed_until_ms == Some(T0 + 10_000)));
    // Only the second part's echo came back: it is settled, the first
    // still waits.
    c.apply(&own_echo("m_2", &again[1], T0 + 100), T0 + 100);
    assert_eq!(c.record.outbox.len(), 1);
    assert_eq!(c.record.outbox[0].part_id, again[0]);
}

#[test]
fn an_echo_from_this_app_without_a_part_id_is_no_takeover() {
    let mut c = Conversation::new(integration(100, 0, true), "fb:C", "C", None, T0);
    c.apply(&message("m1", "hours?", T0), T0);
    let mut e = echo("m_x", T0 + 1);
    if let EventKind::Echo { own_app, .. } = &mut e.kind {
        *own_app = true;
    }
    assert_eq!(c.apply(&e, T0 + 1), EventOutcome::Ignored);
    assert_eq!(c.record.mode, Mode::Ai);
    // Another app's echo is a person answering.
    c.apply(&echo("m_y", T0 + 2), T0 + 2);
    assert_eq!(c.record.mode, Mode::Human);
}

#[test]
fn a_part_sent_without_an_id_learns_it_from_its_echo() {
    let mut c = Conversation::new(integration(100, 0, true), "fb:C", "C", None, T0);
    c.apply(&message("m1", "hours?", T0), T0);
    c.plan_reply("We're open", T0);
    let part = c.record.outbox[0].part_id.clone();
    c.part_sent(String::new(), T0 + 1);
    assert_eq!(c.record.sent_parts.len(), 1);
    assert_eq!(
        c.apply(&own_echo("m_real", &part, T0 + 2), T0 + 2),
        EventOutcome::Ignored
    );
    assert!(c.record.sent_parts.is_empty());
    assert!(c.record.sent_ids.iter().any(|(mid, _)| mid == "m_real"));
    assert_eq!(c.record.mode, Mode::Ai);
}

fn agent(command: &str, action: AgentAction, ts: u64) -> InboundEvent {
    let mut e = message("x", "", ts);
    e.kind = EventKind::Agent {
        command: command.into(),
        action,
    };
    e
}

fn takeover(minutes: Option<u32>) -> AgentAction {
    AgentAction::Takeover {
        by: "sam".into(),
        auto_resume_minutes: minutes,
    }
}

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
    assert_eq!(
        c.send_tag(&item, T0),
        Ok(super::window::SendTag::HumanAgent)
    );
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
