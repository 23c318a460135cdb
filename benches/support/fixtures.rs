//! What several benches build the same way.

// Each bench that includes this module uses part of it.
#![allow(dead_code)]

use std::sync::Arc;

use switchboard::config::{ChannelKind, IntegrationConfig};
use switchboard::conversation::turn::Conversation;
use switchboard::event::{EventKind, InboundEvent};
use switchboard::store::TurnWrite;

/// A Messenger integration with no rate limit to speak of.
// A fixed literal: it either always parses or the bench cannot run.
#[allow(clippy::expect_used)]
pub fn integration() -> Arc<IntegrationConfig> {
    let config = serde_json::json!({
        "id": "acme-fb", "tenant": "acme", "channel": "messenger", "app": "main",
        "account_id": "PAGE", "access_token": "t", "assistant": "support",
        "rate_limit_per_minute": 1_000_000,
    });
    Arc::new(serde_json::from_value(config).expect("bench integration"))
}

/// A text message from `customer` of that integration, sent at `at_ms`.
pub fn message(customer: &str, mid: String, text: &str, at_ms: u64) -> InboundEvent {
    InboundEvent {
        conversation: switchboard::event::ConversationId::new("acme-fb", customer),
        integration: "acme-fb".into(),
        channel: ChannelKind::Messenger,
        customer: customer.into(),
        timestamp_ms: at_ms,
        received_at_ms: at_ms,
        customer_name: None,
        kind: EventKind::Message {
            mid,
            text: Some(text.into()),
            attachments: vec![],
            quick_reply: None,
        },
    }
}

/// The first turn's time (ms).
pub const NOW: u64 = 1_800_000_000_000;

/// The write of event `i` of a conversation that already had `i` turns:
/// a message answered at once.
pub fn answered(conv: &mut Conversation, i: u64) -> Option<TurnWrite> {
    let now = NOW + i * 1_000;
    let event = message(
        &conv.record.customer,
        format!("m_in_{i}_aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQx"),
        "Hi! What are your opening hours on Saturday?",
        now,
    );
    conv.apply(&event, now);
    conv.plan_reply("We're open 9:00-17:00, Monday to Friday.", now);
    conv.part_sent(format!("m_out_{i}_aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlE"), now);
    conv.take_write()
}
