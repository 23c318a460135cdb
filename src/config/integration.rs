//! One account the engine answers on (`[[integrations]]`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{off_or_duration, ResponseDelay, Secret};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelKind {
    Messenger,
    Instagram,
    Whatsapp,
    Gmail,
    Web,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntegrationConfig {
    pub id: String,
    pub tenant: String,
    pub channel: ChannelKind,
    /// The Meta app (`[[apps]]`) whose webhooks carry this account; Meta
    /// channels only.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub app: String,
    /// The Page, IG account, WhatsApp number or mailbox (web chat: none).
    #[serde(default)]
    pub account_id: String,
    /// Meta channels: the Page / Instagram / WhatsApp access token.
    #[serde(default)]
    pub access_token: Secret,
    pub assistant: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub response_delay_ms: ResponseDelay,
    /// Characters per reply part; the channel's limit when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_message_length: Option<usize>,
    #[serde(default = "default_rate")]
    pub rate_limit_per_minute: u32,
    #[serde(default = "default_dedup_window", with = "humantime_serde")]
    pub dedup_window: Duration,
    #[serde(default)]
    pub escalation_keywords: Vec<String>,
    /// When not empty, only these customers (PSIDs, IGSIDs, WhatsApp
    /// numbers) are answered; the others are recorded, not answered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_customers: Vec<String>,
    #[serde(default)]
    pub away_message: Option<String>,
    /// How long a takeover lasts when nobody says (keyword, foreign echo,
    /// API without `auto_resume_minutes`); "off" keeps it until resumed.
    #[serde(default = "default_auto_resume", with = "off_or_duration")]
    pub auto_resume_after: Option<Duration>,
    /// Inactivity after which a conversation expires: the next customer
    /// message starts afresh (a takeover ends, the away message may be
    /// sent again).
    #[serde(default = "default_expire_after", with = "humantime_serde")]
    pub expire_after: Duration,
    /// Messenger greeting text, pushed with the Messenger Profile API.
    #[serde(default)]
    pub greeting: Option<String>,
    /// Messenger Get Started button payload, pushed with the greeting.
    #[serde(default)]
    pub get_started_payload: Option<String>,
    /// Answer to the Get Started postback (instead of the assistant).
    #[serde(default)]
    pub welcome_message: Option<String>,
    /// WhatsApp: an approved template with one body variable, sent with a
    /// person's text after the 24-hour window.
    #[serde(default)]
    pub whatsapp_template: Option<String>,
    #[serde(default = "default_template_language")]
    pub whatsapp_template_language: String,
    /// Platform calls per second for this account, at most (Messenger and
    /// Instagram 300, WhatsApp 80 when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_rate_per_second: Option<u32>,
    /// Where this integration's alerts are emailed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_email: Option<String>,
    /// Where this integration's alerts are posted (signed JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_webhook: Option<String>,
    /// `alert_webhook` is posted to public addresses only (set by the engine
    /// when a tenant key sets it: never the engine's own network).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub alert_webhook_public_only: bool,
    /// Gmail: the OAuth client the mailbox's refresh token was issued to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth_client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Secret::is_empty")]
    pub oauth_client_secret: Secret,
    /// Gmail: the mailbox owner's OAuth refresh token (scope
    /// `gmail.modify`).
    #[serde(default, skip_serializing_if = "Secret::is_empty")]
    pub refresh_token: Secret,
    /// Gmail: the `aud` of the Pub/Sub push's OIDC token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_audience: Option<String>,
    /// Gmail: the service account whose `email` the push token carries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_service_account: Option<String>,
    /// Gmail: the Pub/Sub subscription pushes must name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_subscription: Option<String>,
    /// Gmail: the Pub/Sub topic `users.watch` publishes to; without it
    /// the engine does not call `users.watch` (set up elsewhere) and relies
    /// on pushes it gets and on `google.poll_interval`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_topic: Option<String>,
    /// Web chat: the origins (`https://shop.example`) whose pages may
    /// embed the widget and open its socket.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_origins: Vec<String>,
    /// Web chat: the key of `user_hash` = HMAC-SHA256(key, user id), for
    /// visitors the site has signed in.
    #[serde(default, skip_serializing_if = "Secret::is_empty")]
    pub identity_secret: Secret,
    /// Web chat: the widget's title, colour (`#rrggbb`), greeting and side
    /// (`right` or `left`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub widget_title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub widget_color: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub widget_greeting: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub widget_position: Option<String>,
}

fn yes() -> bool {
    true
}
fn default_rate() -> u32 {
    100
}
fn default_dedup_window() -> Duration {
    Duration::from_secs(7 * 24 * 3600)
}
fn default_template_language() -> String {
    "en_US".to_string()
}
fn default_auto_resume() -> Option<Duration> {
    Some(Duration::from_secs(24 * 3600))
}
fn default_expire_after() -> Duration {
    Duration::from_secs(30 * 24 * 3600)
}

impl IntegrationConfig {
    /// Whether the assistant answers `customer` (the allowlist, if any).
    pub fn answers(&self, customer: &str) -> bool {
        self.allowed_customers.is_empty() || self.allowed_customers.iter().any(|c| c == customer)
    }

    /// Characters per reply part.
    pub fn max_message_length(&self) -> usize {
        self.max_message_length
            .unwrap_or_else(|| crate::channels::platform::text_limit(self.channel))
    }
    /// Platform calls per second for this account, at most.
    pub fn send_rate_per_second(&self) -> u32 {
        self.send_rate_per_second
            .unwrap_or_else(|| crate::channels::platform::send_rate(self.channel))
    }
}
