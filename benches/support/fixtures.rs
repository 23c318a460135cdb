//! What several benches build the same way.

use std::sync::Arc;

use switchboard::config::IntegrationConfig;

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
