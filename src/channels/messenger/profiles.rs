//! Messenger Profile API: the Page's greeting text and Get Started button,
//! pushed from the integration's settings when the engine starts
//! (`POST {graph_base_url}/{page_id}/messenger_profile`).

use std::sync::Arc;

use serde_json::{json, Map, Value};

use crate::channels::Outbound;
use crate::config::{ChannelKind, IntegrationConfig};

/// The profile body for an integration's settings, if it has any.
pub fn profile_body(integration: &IntegrationConfig) -> Option<Value> {
    if integration.channel != ChannelKind::Messenger {
        return None;
    }
    let mut body = Map::new();
    if let Some(text) = &integration.greeting {
        body.insert(
            "greeting".into(),
            json!([{ "locale": "default", "text": text }]),
        );
    }
    if let Some(payload) = &integration.get_started_payload {
        body.insert("get_started".into(), json!({ "payload": payload }));
    }
    (!body.is_empty()).then_some(Value::Object(body))
}

/// Pushes every configured profile, each under the one retry policy; a
/// failure is logged and leaves the Page's profile as it was.
pub async fn push_all(outbound: Outbound, integrations: Vec<Arc<IntegrationConfig>>) {
    for integration in &integrations {
        let Some(body) = profile_body(integration) else {
            continue;
        };
        match outbound.messenger_profile(integration, &body).await {
            Ok(()) => {
                tracing::info!(integration = %integration.id, "Messenger profile (greeting, Get Started) pushed");
            }
            Err(e) => {
                tracing::warn!(integration = %integration.id, error = %e, "Cannot push the Messenger profile");
            }
        }
    }
}
