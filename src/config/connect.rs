//! `[connect]`: the Meta connect flow (a business connects its Pages in a
//! browser).

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectConfig {
    /// The engine's public URL (`https://switchboard.example`): Meta sends
    /// people back to `{public_url}/connect/meta/callback`. Empty: the
    /// connect flow is off.
    pub public_url: String,
    /// The `[[apps]]` entry whose Meta app (`meta_app_id`, `app_secret`)
    /// the flow uses.
    pub app: String,
    /// Meta's OAuth dialog.
    pub dialog_url: String,
    /// How long a connect link made with the admin API stays valid.
    #[serde(with = "humantime_serde")]
    pub link_ttl: Duration,
    /// How long a person has to go through Meta's dialog and pick Pages.
    #[serde(with = "humantime_serde")]
    pub state_ttl: Duration,
}
