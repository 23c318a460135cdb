//! `[google]`: where the Gmail channel calls Google (API root, OAuth token
//! endpoint, the keys that sign Pub/Sub push tokens) and how often each
//! mailbox is checked without a notification.

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoogleConfig {
    /// The Gmail API root (`/gmail/v1/users/me/...` is added).
    pub gmail_base_url: String,
    /// Google's OAuth token endpoint (refresh tokens are exchanged there).
    pub token_url: String,
    /// Google's signing keys (JWKS) for the OIDC tokens of Pub/Sub pushes.
    pub jwks_url: String,
    /// Each mailbox's history is read at least this often, so an email
    /// whose notification was late or lost does not wait for the next one.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// `users.watch` is renewed this often (a watch lapses after 7 days).
    #[serde(with = "humantime_serde")]
    pub watch_every: Duration,
    /// A mailbox's quota: Gmail API units per second (250 per user at most).
    pub quota_units_per_second: u32,
    /// After a history id too old for Gmail, messages of the inbox at
    /// most this old are looked at again, at most `resync_max` of them.
    #[serde(with = "humantime_serde")]
    pub resync_window: Duration,
    pub resync_max: usize,
    /// Where customers' email attachments are kept; empty: `attachments`
    /// under `store.path`.
    #[serde(default)]
    pub attachments_dir: String,
}

impl super::Config {
    /// Where customers' email attachments are kept.
    pub fn attachments_dir(&self) -> std::path::PathBuf {
        if self.google.attachments_dir.is_empty() {
            std::path::Path::new(&self.store.path).join("attachments")
        } else {
            std::path::PathBuf::from(&self.google.attachments_dir)
        }
    }
}
