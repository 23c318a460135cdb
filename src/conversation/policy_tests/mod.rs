//! The conversation policy from the outside of its I/O: events and clock
//! readings in, state, outbox and writes out.

mod confirm;
mod takeover;
mod window;

use std::sync::Arc;

use super::turn::*;
use crate::config::{ChannelKind, IntegrationConfig};
use crate::event::{AgentAction, EventKind, InboundEvent};
use crate::store::{Author, MessageStatus, Mode};

pub(super) fn integration(rate: u32, delay: u64, enabled: bool) -> Arc<IntegrationConfig> {
    integration_with(serde_json::json!({
        "rate_limit_per_minute": rate,
        "response_delay_ms": delay,
        "enabled": enabled,
    }))
}

/// A Messenger integration with `settings` over the defaults.
pub(super) fn integration_with(settings: serde_json::Value) -> Arc<IntegrationConfig> {
    let mut config = serde_json::json!({
        "id": "fb", "tenant": "t", "channel": "messenger", "app": "main",
        "account_id": "P", "access_token": "t", "assistant": "a",
    });
    if let (Some(c), Some(extra)) = (config.as_object_mut(), settings.as_object()) {
        c.extend(extra.clone());
    }
    Arc::new(serde_json::from_value(config).expect("test integration"))
}

pub(super) fn message(mid: &str, text: &str, ts: u64) -> InboundEvent {
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

pub(super) const H: u64 = 3_600_000;
/// A day well after the epoch, so "24 hours ago" is a real time.
pub(super) const T0: u64 = 1_000 * 24 * H;

pub(super) fn echo(mid: &str, ts: u64) -> InboundEvent {
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
pub(super) fn own_echo(mid: &str, part: &str, ts: u64) -> InboundEvent {
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

pub(super) fn agent(command: &str, action: AgentAction, ts: u64) -> InboundEvent {
    let mut e = message("x", "", ts);
    e.kind = EventKind::Agent {
        command: command.into(),
        action,
    };
    e
}

pub(super) fn takeover(minutes: Option<u32>) -> AgentAction {
    AgentAction::Takeover {
        by: "sam".into(),
        auto_resume_minutes: minutes,
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

/// Webhooks may arrive out of order: the assistant reads the customer's
/// messages in the order they were sent (a tie keeps arrival order), and
/// the reply's part ids still derive from the first to arrive.
#[test]
fn messages_arriving_out_of_order_are_read_in_the_order_sent() {
    let mut c = Conversation::new(integration(100, 1000, true), "fb:C", "C", None, 0);
    let mut late = message("m2", "and do you ship to Oslo?", T0 + 40);
    late.received_at_ms = T0 + 50;
    c.apply(&late, T0 + 50);
    let mut early = message("m1", "hi, I ordered a lamp", T0 + 10);
    early.received_at_ms = T0 + 60;
    c.apply(&early, T0 + 60);
    let mut same = message("m3", "thanks", T0 + 40);
    same.received_at_ms = T0 + 70;
    c.apply(&same, T0 + 70);
    assert_eq!(
        c.pending_request().0,
        ["hi, I ordered a lamp", "and do you ship to Oslo?", "thanks"]
    );
    c.plan_reply("answer", T0 + 2000);
    assert_eq!(
        c.record.outbox[0].part_id,
        part_id("fb:C", "m2", 0),
        "ids from the first to arrive"
    );
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
fn a_write_before_a_send_must_reach_the_disk() {
    let mut c = Conversation::new(integration(100, 0, true), "fb:C", "C", None, 0);
    c.apply(&message("m1", "hi", 0), 0);
    assert!(
        !c.take_write().expect("the message").sync,
        "an inbound message may wait for the interval sync (the bus replays it)"
    );
    c.plan_reply("one", 0);
    assert!(
        c.take_write().expect("the plan").sync,
        "a planned part is on the disk before it is sent"
    );
    c.part_sent("m_out_1".into(), 100);
    assert!(!c.take_write().expect("the send").sync);
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
