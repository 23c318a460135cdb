//! `[alerts]`: where integration alerts go and how often.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Secret;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// `smtp://host:port` (plain), `smtp://host:port?tls=required`
    /// (STARTTLS) or `smtps://user:password@host:465`; empty: no email.
    pub smtp_url: Secret,
    /// The sender of alert emails.
    pub from: String,
    /// Key of the `X-Switchboard-Signature` HMAC on alert webhooks.
    pub webhook_secret: Secret,
    /// At most one alert per integration and kind this often.
    #[serde(with = "humantime_serde")]
    pub min_interval: Duration,
    /// Failed replies in a row that raise a `sends_failing` alert.
    pub failed_sends: u32,
    /// A token ending within this is `expiring`.
    #[serde(with = "humantime_serde")]
    pub expiry_warning: Duration,
    /// How often every token is checked with `debug_token`.
    #[serde(with = "humantime_serde")]
    pub token_check_every: Duration,
}
