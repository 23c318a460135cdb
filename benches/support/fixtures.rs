//! What several benches build the same way.

use std::sync::Arc;

use switchboard::config::{ChannelKind, IntegrationConfig};
use switchboard::event::{EventKind, InboundEvent};

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
