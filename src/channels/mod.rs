//! One module per platform (parse inbound webhooks into events; send
//! outbound through the platform's API), plus what they share: the Meta
//! webhook envelope, the Graph API client with its single retry policy, and
//! the one place that maps Meta error codes.

pub mod choices;
pub mod comments;
mod cooldown;
pub mod gmail;
pub mod graph;
pub mod instagram;
pub mod messenger;
pub mod meta_error;
pub mod platform;
pub mod retry;
pub mod web;
pub mod webhook;
pub mod whatsapp;

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::config::{ChannelKind, IntegrationConfig};
use crate::event::SendTag;
use crate::fence::Fence;
use crate::store::OutboxItem;
pub use graph::{messages_path, GraphClient};
pub use meta_error::{SendError, SendErrorKind};
use platform::{platform, OutboundPart};

/// What a part answers and who wrote it, where the channel shows it.
#[derive(Debug, Clone, Copy, Default)]
pub struct About<'a> {
    /// The customer's message it answers (an email's `In-Reply-To`).
    pub answering: Option<&'a str>,
    /// The person who wrote it (web chat shows the name).
    pub sender: Option<&'a str>,
}

/// A message the platform accepted (a 2xx status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// The platform's id for it (`mid`, `wamid`); empty when the answer's
    /// body was cut or unreadable (the echo or status that returns the
    /// part id tells it then).
    pub message_id: String,
    /// When the request the platform took went out (ms): the platform
    /// stamps the message between this and its answer, so delivery and
    /// read watermarks are compared with this, not with the answer's time.
    pub at_ms: u64,
    /// A write place held until the send's mark is written (see
    /// [`crate::fence::Recording`]).
    pub recording: crate::fence::Recording,
}

/// Outbound calls for every channel, over one shared Graph API client,
/// paced per account (`send_rate_per_second`: a burst waits its turn
/// instead of meeting the platform's throttling).
#[derive(Clone)]
pub struct Outbound {
    graph: Arc<GraphClient>,
    /// By integration: its rate and its limiter, made at its first call
    /// (integrations come and go at run time).
    pacers: Arc<Mutex<HashMap<String, Pacer>>>,
    /// Accounts the platform is throttling, resting.
    cooldowns: Arc<cooldown::Cooldowns>,
    /// Gmail mailboxes' API (paced by their quota itself).
    gmail: Option<Arc<gmail::api::GmailApi>>,
    /// The web chat sockets open on this instance.
    pub web: Arc<web::hub::WebHub>,
}

/// Audio and video calls a second per Messenger Page or Instagram account,
/// at most (Meta's Send API limit for them).
const MEDIA_RATE: u32 = 10;

/// The second limiter a part waits for, if any: Meta's Send API takes
/// audio and video at 10 calls a second per Page or Instagram account (text
/// and the rest at 300).
fn media_pacing(integration: &IntegrationConfig, part: &OutboxItem) -> Option<(String, u32)> {
    let heavy = part
        .attachment
        .as_ref()
        .is_some_and(|a| matches!(a.kind.as_str(), "audio" | "video"));
    let meta_send_api = matches!(
        integration.channel,
        ChannelKind::Messenger | ChannelKind::Instagram
    );
    (heavy && meta_send_api).then(|| {
        let rate = MEDIA_RATE.min(integration.send_rate_per_second());
        (format!("{}#media", integration.id), rate)
    })
}

/// An account's send rate and its limiter.
type Pacer = (u32, Arc<DefaultDirectRateLimiter>);

/// How a channel names a file type a person may send, or why it may not.
pub fn attachment_type(channel: ChannelKind, kind: &str) -> Result<&'static str, String> {
    match platform(channel) {
        Some(p) => p.attachment_type(kind),
        None => Err(format!("{} takes no attachments", channel.as_str())),
    }
}

impl Outbound {
    pub fn new(graph: GraphClient) -> Self {
        Self {
            graph: Arc::new(graph),
            pacers: Arc::new(Mutex::new(HashMap::new())),
            cooldowns: Arc::default(),
            gmail: None,
            web: Arc::default(),
        }
    }

    /// Sends Gmail replies through `api`.
    pub fn with_gmail(mut self, api: Arc<gmail::api::GmailApi>) -> Self {
        self.gmail = Some(api);
        self
    }

    /// Waits for the account's turn to call the platform.
    async fn paced(&self, integration: &IntegrationConfig) {
        self.paced_as(&integration.id, integration.send_rate_per_second())
            .await;
    }

    /// Waits for a turn of limiter `key` at `rate` calls a second.
    async fn paced_as(&self, key: &str, rate: u32) {
        let pacer = {
            let Ok(mut pacers) = self.pacers.lock() else {
                return;
            };
            match pacers.get(key) {
                Some((r, p)) if *r == rate => p.clone(),
                _ => {
                    let per_second = NonZeroU32::new(rate).unwrap_or(NonZeroU32::MIN);
                    let p = Arc::new(RateLimiter::direct(Quota::per_second(per_second)));
                    pacers.insert(key.to_string(), (rate, p.clone()));
                    p
                }
            }
        };
        pacer.until_ready().await;
    }

    /// Sends one stored part to the customer, as `tag` allows: a direct
    /// message (text or a file by link), a template, or a public reply to a
    /// comment.
    ///
    /// An email answers the customer's message `answering` (its platform
    /// id), in its thread; a web chat message shows `sender`, the name of
    /// the person who wrote it.
    ///
    /// Every attempt is made inside `fence`: none starts once this instance
    /// no longer owns the conversation ([`SendErrorKind::Fenced`]).
    pub async fn send(
        &self,
        integration: &IntegrationConfig,
        customer: &str,
        part: &OutboxItem,
        tag: SendTag,
        about: About<'_>,
        fence: &Fence,
    ) -> Result<Sent, SendError> {
        if integration.channel.is_meta() {
            self.cooldowns.check(&integration.id)?;
        }
        if integration.channel != ChannelKind::Gmail {
            self.paced(integration).await;
        }
        if let Some((key, rate)) = media_pacing(integration, part) {
            self.paced_as(&key, rate).await;
        }
        if let Some(c) = &part.comment {
            let (path, body) = comments::reply_call(c.surface, &c.comment_id, &part.text);
            let call =
                self.graph
                    .send_for_id(integration, &path, &body, comments::ID_POINTER, fence);
            return self.noted(integration, call).await;
        }
        let Some(platform) = platform(integration.channel) else {
            return Err(SendError::unsupported(integration.channel));
        };
        let media = match &part.attachment {
            Some(a) => Some((
                platform
                    .attachment_type(&a.kind)
                    .map_err(SendError::refused)?,
                a.url.as_str(),
            )),
            None => None,
        };
        let template = integration
            .whatsapp_template
            .as_deref()
            .map(|name| (name, integration.whatsapp_template_language.as_str()));
        let outbound = OutboundPart {
            text: &part.text,
            media,
            part_id: &part.part_id,
            template,
            choices: &part.choices,
        };
        let mut body = platform.message_body(customer, &outbound, tag);
        if integration.channel == ChannelKind::Web {
            // Not from an instance that no longer owns the conversation.
            let Ok(owned) = fence.enter() else {
                return Err(SendError::fenced());
            };
            if let Some(name) = about.sender {
                body["name"] = serde_json::json!(name);
            }
            let mut sent = self.web_message(integration, customer, part, &mut body);
            // Delivered: a write place until its mark is written.
            sent.recording = fence.recording(owned);
            return Ok(sent);
        }
        if integration.channel == ChannelKind::Gmail {
            let Some(api) = &self.gmail else {
                return Err(SendError::unsupported(integration.channel));
            };
            let maybe_sent = part.unconfirmed_until_ms.is_some();
            // The assistant's answers say they are automatic (RFC 3834),
            // so other responders do not answer them back.
            body["auto"] = serde_json::json!(part.author == crate::store::Author::Ai);
            return gmail::reply::send(api, integration, &body, about.answering, maybe_sent, fence)
                .await;
        }
        let path = messages_path(integration);
        let call = self
            .graph
            .send_for_id(integration, &path, &body, platform.id_pointer(), fence);
        self.noted(integration, call).await
    }

    /// `call` for `integration`'s account, its outcome noted: a throttled
    /// one makes the account rest.
    async fn noted<T>(
        &self,
        integration: &IntegrationConfig,
        call: impl std::future::Future<Output = Result<T, SendError>>,
    ) -> Result<T, SendError> {
        let result = call.await;
        self.cooldowns.note(&integration.id, &result);
        result
    }

    /// A reply frame to the visitor's sockets here (those elsewhere read it
    /// from the store): sent, whether or not a socket is open now.
    fn web_message(
        &self,
        integration: &IntegrationConfig,
        customer: &str,
        part: &OutboxItem,
        frame: &mut serde_json::Value,
    ) -> Sent {
        frame["seq"] = serde_json::json!(part.seq);
        frame["author"] = serde_json::json!(match part.author {
            crate::store::Author::Ai => "ai",
            _ => "agent",
        });
        frame["time"] = serde_json::json!(crate::clock::now_ms());
        let conversation = crate::event::ConversationId::new(&integration.id, customer);
        self.web.deliver(&conversation, frame);
        // Apart from visitors' message ids (`web.{client_id}`).
        Sent {
            message_id: format!("web-out.{}", part.seq),
            at_ms: crate::clock::now_ms(),
            recording: Default::default(),
        }
    }

    /// The id of the account's public reply `text` under `comment`, if the
    /// comment's replies show one: a reply whose answer was lost is
    /// confirmed here, as no echo or status ever confirms it.
    pub async fn find_comment_reply(
        &self,
        integration: &IntegrationConfig,
        comment: &crate::store::CommentRef,
        text: &str,
    ) -> Result<Option<String>, SendError> {
        self.cooldowns.check(&integration.id)?;
        self.paced(integration).await;
        let (path, fields) = comments::replies_call(comment.surface, &comment.comment_id);
        let mut query = vec![("fields", fields)];
        query.extend_from_slice(comments::replies_query(comment.surface));
        let call = self.graph.get(&path, &integration.access_token, &query);
        let listing = self.noted(integration, call).await?;
        Ok(comments::find_reply(
            &listing,
            &integration.account_id,
            text,
        ))
    }

    /// Shows the typing indicator to the customer (WhatsApp names the
    /// customer's last message, `last_mid`, and marks it read).
    pub async fn typing_on(
        &self,
        integration: &IntegrationConfig,
        customer: &str,
        last_mid: Option<&str>,
    ) -> Result<(), SendError> {
        let body = platform(integration.channel).and_then(|p| p.typing_body(customer, last_mid));
        let Some(body) = body else {
            return Err(SendError::unsupported(integration.channel));
        };
        if integration.channel == ChannelKind::Web {
            let conversation = crate::event::ConversationId::new(&integration.id, customer);
            self.web.deliver(&conversation, &body);
            return Ok(());
        }
        // Not while the account rests; a typing indicator's own throttling
        // (one best-effort call) rests nothing.
        self.cooldowns.check(&integration.id)?;
        self.paced(integration).await;
        self.graph.indicate(integration, &body).await
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_and_video_on_meta_s_send_api_wait_for_their_own_rate() {
        let integration = |channel: &str| -> IntegrationConfig {
            serde_json::from_value(serde_json::json!({
                "id": "fb", "tenant": "t", "channel": channel, "app": "main",
                "account_id": "P", "access_token": "t", "assistant": "a",
            }))
            .unwrap()
        };
        let part = |kind: Option<&str>| -> OutboxItem {
            let mut v = serde_json::json!({"seq": 1, "text": "", "part_id": "p",
                "received_at_ms": 0, "delay_ms": 0, "first_of_turn": true});
            if let Some(kind) = kind {
                v["attachment"] = serde_json::json!({"type": kind, "url": "https://x.test/f"});
            }
            serde_json::from_value(v).unwrap()
        };
        let messenger = integration("messenger");
        assert_eq!(
            media_pacing(&messenger, &part(Some("video"))),
            Some(("fb#media".to_string(), 10))
        );
        assert!(media_pacing(&integration("instagram"), &part(Some("audio"))).is_some());
        assert_eq!(media_pacing(&messenger, &part(Some("image"))), None);
        assert_eq!(media_pacing(&messenger, &part(None)), None);
        assert_eq!(
            media_pacing(&integration("whatsapp"), &part(Some("video"))),
            None
        );
    }
}
