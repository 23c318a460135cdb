//! One module per platform (parse inbound webhooks into events; send
//! outbound through the platform's API), plus what they share: the Meta
//! webhook envelope, the Graph API client with its single retry policy, and
//! the one place that maps Meta error codes.

pub mod comments;
pub mod graph;
pub mod messenger;
pub mod meta_error;
pub mod retry;
pub mod webhook;
pub mod whatsapp;

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::config::{ChannelKind, IntegrationConfig};
use crate::conversation::window::SendTag;
use crate::fence::Fence;
use crate::store::OutboxItem;
pub use graph::{messages_path, GraphClient};
pub use meta_error::{SendError, SendErrorKind};

/// A message the platform accepted (a 2xx status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// The platform's id for it (`mid`, `wamid`); empty when the answer's
    /// body was cut or unreadable (the echo or status that returns the
    /// part id tells it then).
    pub message_id: String,
}

/// Outbound calls for every channel, over one shared Graph API client,
/// paced per account (`send_rate_per_second`: a burst waits its turn
/// instead of meeting the platform's throttling).
#[derive(Clone)]
pub struct Outbound {
    graph: Arc<GraphClient>,
    pacers: Arc<HashMap<String, DefaultDirectRateLimiter>>,
}

/// How a channel names a file type a person may send, or why it may not.
pub fn attachment_type(channel: ChannelKind, kind: &str) -> Result<&'static str, String> {
    let allowed: &[(&str, &'static str)] = match channel {
        ChannelKind::Messenger => &[
            ("image", "image"),
            ("video", "video"),
            ("audio", "audio"),
            ("file", "file"),
        ],
        ChannelKind::Instagram => &[("image", "image"), ("video", "video"), ("audio", "audio")],
        ChannelKind::Whatsapp => &[
            ("image", "image"),
            ("video", "video"),
            ("audio", "audio"),
            ("file", "document"),
            ("document", "document"),
        ],
        ChannelKind::Gmail | ChannelKind::Web => &[],
    };
    allowed
        .iter()
        .find(|(name, _)| *name == kind)
        .map(|(_, platform)| *platform)
        .ok_or_else(|| {
            let names: Vec<&str> = allowed.iter().map(|(n, _)| *n).collect();
            format!(
                "{} does not take a {kind:?} attachment; it takes {}",
                channel.as_str(),
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            )
        })
}

impl Outbound {
    pub fn new(graph: GraphClient, integrations: &[IntegrationConfig]) -> Self {
        let pacers = integrations
            .iter()
            .map(|i| {
                let rate = NonZeroU32::new(i.send_rate_per_second()).unwrap_or(NonZeroU32::MIN);
                (i.id.clone(), RateLimiter::direct(Quota::per_second(rate)))
            })
            .collect();
        Self {
            graph: Arc::new(graph),
            pacers: Arc::new(pacers),
        }
    }

    /// Waits for the account's turn to call the platform.
    async fn paced(&self, integration: &IntegrationConfig) {
        if let Some(pacer) = self.pacers.get(&integration.id) {
            pacer.until_ready().await;
        }
    }

    /// Sends one stored part to the customer, as `tag` allows: a direct
    /// message (text or a file by link), a template, or a public reply to a
    /// comment.
    ///
    /// Every attempt is made inside `fence`: none starts once this instance
    /// no longer owns the conversation ([`SendErrorKind::Fenced`]).
    pub async fn send(
        &self,
        integration: &IntegrationConfig,
        customer: &str,
        part: &OutboxItem,
        tag: SendTag,
        fence: &Fence,
    ) -> Result<Sent, SendError> {
        self.paced(integration).await;
        if let Some(c) = &part.comment {
            let (path, body) = comments::reply_call(c.surface, &c.comment_id, &part.text);
            return self
                .graph
                .send_for_id(integration, &path, &body, "/id", fence)
                .await;
        }
        let media = match &part.attachment {
            Some(a) => Some((
                attachment_type(integration.channel, &a.kind).map_err(SendError::refused)?,
                a.url.as_str(),
            )),
            None => None,
        };
        match integration.channel {
            ChannelKind::Messenger | ChannelKind::Instagram => {
                let body = match media {
                    Some((kind, url)) => messenger::media_body(customer, kind, url, tag),
                    None => messenger::text_body(customer, &part.text, tag),
                };
                let body = messenger::with_part_id(body, &part.part_id);
                self.graph
                    .send_for_id(
                        integration,
                        &messages_path(integration),
                        &body,
                        messenger::ID_POINTER,
                        fence,
                    )
                    .await
            }
            ChannelKind::Whatsapp => {
                let body = match (tag, media, &integration.whatsapp_template) {
                    (SendTag::Template, _, Some(name)) => whatsapp::template_body(
                        customer,
                        name,
                        &integration.whatsapp_template_language,
                        &part.text,
                    ),
                    (_, Some((kind, url)), _) => whatsapp::media_body(customer, kind, url),
                    _ => whatsapp::text_body(customer, &part.text),
                };
                let body = whatsapp::with_part_id(body, &part.part_id);
                self.graph
                    .send_for_id(
                        integration,
                        &messages_path(integration),
                        &body,
                        whatsapp::ID_POINTER,
                        fence,
                    )
                    .await
            }
            other => Err(SendError::unsupported(other)),
        }
    }

    /// Shows the typing indicator to the customer (WhatsApp names the
    /// customer's last message, `last_mid`, and marks it read).
    pub async fn typing_on(
        &self,
        integration: &IntegrationConfig,
        customer: &str,
        last_mid: Option<&str>,
    ) -> Result<(), SendError> {
        self.paced(integration).await;
        match (integration.channel, last_mid) {
            (ChannelKind::Messenger | ChannelKind::Instagram, _) => {
                messenger::typing_on(&self.graph, integration, customer).await
            }
            (ChannelKind::Whatsapp, Some(wamid)) => {
                whatsapp::typing_on(&self.graph, integration, wamid).await
            }
            (other, _) => Err(SendError::unsupported(other)),
        }
    }

    /// Sets a Page's Messenger profile (greeting, Get Started button).
    pub async fn messenger_profile(
        &self,
        integration: &IntegrationConfig,
        body: &serde_json::Value,
    ) -> Result<(), SendError> {
        self.paced(integration).await;
        let path = format!("{}/messenger_profile", integration.account_id);
        self.graph
            .post(
                integration.channel,
                &path,
                &integration.access_token,
                body,
                &Fence::none(),
            )
            .await
            .map(|_| ())
    }
}
