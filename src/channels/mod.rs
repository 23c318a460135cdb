//! One module per platform (parse inbound webhooks into events; send
//! outbound through the platform's API), plus what they share: the Meta
//! webhook envelope, the Graph API client with its single retry policy, and
//! the one place that maps Meta error codes.

pub mod graph;
pub mod messenger;
pub mod meta_error;
pub mod retry;
pub mod webhook;

use std::sync::Arc;

use crate::config::{ChannelKind, IntegrationConfig};
use crate::conversation::window::SendTag;
pub use graph::GraphClient;
pub use meta_error::{SendError, SendErrorKind};

/// A message the platform accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// The platform's id for it (`mid`, `wamid`); its echo carries it.
    pub message_id: String,
}

/// Outbound calls for every channel, over one shared Graph API client.
#[derive(Clone)]
pub struct Outbound {
    graph: Arc<GraphClient>,
}

impl Outbound {
    pub fn new(graph: GraphClient) -> Self {
        Self {
            graph: Arc::new(graph),
        }
    }

    /// Sends one text message to the customer, as `tag` allows.
    pub async fn send_text(
        &self,
        integration: &IntegrationConfig,
        customer: &str,
        text: &str,
        tag: SendTag,
    ) -> Result<Sent, SendError> {
        match integration.channel {
            ChannelKind::Messenger | ChannelKind::Instagram => {
                messenger::send_text(&self.graph, integration, customer, text, tag).await
            }
            other => Err(SendError::unsupported(other)),
        }
    }

    /// Sets a Page's Messenger profile (greeting, Get Started button).
    pub async fn messenger_profile(
        &self,
        integration: &IntegrationConfig,
        body: &serde_json::Value,
    ) -> Result<(), SendError> {
        let path = format!("{}/messenger_profile", integration.account_id);
        self.graph
            .post(integration.channel, &path, &integration.access_token, body)
            .await
            .map(|_| ())
    }

    /// Shows the typing indicator to the customer.
    pub async fn typing_on(
        &self,
        integration: &IntegrationConfig,
        customer: &str,
    ) -> Result<(), SendError> {
        match integration.channel {
            ChannelKind::Messenger | ChannelKind::Instagram => {
                messenger::typing_on(&self.graph, integration, customer).await
            }
            other => Err(SendError::unsupported(other)),
        }
    }
}
