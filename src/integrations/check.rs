//! The daily token check: each Meta integration's token is looked at with
//! the Graph API's `debug_token` (as its app: `access_token={app id}|{app
//! secret}`); a token that is no longer valid is marked expired (by the
//! error's code and subcode), one whose `expires_at` or
//! `data_access_expires_at` falls within `alerts.expiry_warning` is marked
//! expiring, and both raise an alert.

use std::sync::Arc;

use serde::Deserialize;

use super::health::reason_of_190;
use crate::alerts::{AlertKind, Alerts};
use crate::clock::now_ms;
use crate::config::{ChannelKind, IntegrationConfig};
use crate::integrations::Integrations;

#[derive(Debug, Deserialize)]
struct DebugToken {
    data: DebugData,
}

#[derive(Debug, Deserialize)]
struct DebugData {
    #[serde(default)]
    is_valid: bool,
    /// Seconds since the epoch; 0 = never.
    #[serde(default)]
    expires_at: u64,
    #[serde(default)]
    data_access_expires_at: u64,
    #[serde(default)]
    error: Option<DebugError>,
}

#[derive(Debug, Deserialize)]
struct DebugError {
    #[serde(default)]
    code: i64,
    #[serde(default)]
    subcode: Option<i64>,
}

/// What the check found.
#[derive(Debug, PartialEq)]
pub enum Finding {
    Valid,
    Expiring { at_ms: u64, what: &'static str },
    Invalid { subcode: Option<i64> },
}

/// Reads a `debug_token` answer; `warn_ms` is how far ahead an end is
/// worth a warning.
pub fn read_debug_token(body: &[u8], now_ms: u64, warn_ms: u64) -> Option<Finding> {
    let d = serde_json::from_slice::<DebugToken>(body).ok()?.data;
    if !d.is_valid {
        let subcode = d
            .error
            .as_ref()
            .filter(|e| e.code == 190)
            .and_then(|e| e.subcode);
        return Some(Finding::Invalid { subcode });
    }
    let ends = [
        (d.expires_at, "the access token expires"),
        (d.data_access_expires_at, "data access expires"),
    ];
    let soonest = ends
        .into_iter()
        .filter(|(s, _)| *s > 0)
        .map(|(s, what)| (s.saturating_mul(1000), what))
        .min_by_key(|(at, _)| *at);
    Some(match soonest {
        Some((at_ms, what)) if at_ms <= now_ms.saturating_add(warn_ms) => {
            Finding::Expiring { at_ms, what }
        }
        _ => Finding::Valid,
    })
}

/// Checks every Meta integration's token once.
pub async fn check_all(
    integrations: &Integrations,
    alerts: &Arc<Alerts>,
    http: &reqwest::Client,
    graph_base_url: &str,
    apps: &[crate::config::AppConfig],
    warn_ms: u64,
) {
    for integration in integrations.values() {
        if !integration.enabled
            || !matches!(
                integration.channel,
                ChannelKind::Messenger | ChannelKind::Instagram | ChannelKind::Whatsapp
            )
        {
            continue;
        }
        let Some(app) = apps.iter().find(|a| a.id == integration.app) else {
            continue;
        };
        let Some(app_id) = app.meta_app_id.as_deref() else {
            continue;
        };
        match check_one(
            &integration,
            http,
            graph_base_url,
            app_id,
            app.app_secret.expose(),
            warn_ms,
        )
        .await
        {
            Some(Finding::Valid) => integrations.tokens.reset(&integration.id),
            // Raised at every check while it lasts: alerts keep to one
            // per interval themselves, and one that could not go out
            // goes at the next check.
            Some(Finding::Expiring { at_ms, what }) => {
                let days = at_ms.saturating_sub(now_ms()) / 86_400_000;
                let reason = format!("{what} in {days} days");
                if integrations
                    .tokens
                    .expiring(&integration.id, at_ms, reason.clone())
                {
                    tracing::warn!(integration = %integration.id, reason, "Access token ends soon; reconnect the account");
                }
                alerts.raise(&integration, AlertKind::TokenExpiring, reason);
            }
            Some(Finding::Invalid { subcode }) => {
                let reason = reason_of_190(subcode).to_string();
                if integrations.tokens.refused(&integration.id, subcode) {
                    tracing::error!(integration = %integration.id, reason, "Access token no longer valid; reconnect the account");
                }
                alerts.raise(&integration, AlertKind::TokenExpired, reason);
            }
            None => {}
        }
    }
}

async fn check_one(
    integration: &IntegrationConfig,
    http: &reqwest::Client,
    base: &str,
    app_id: &str,
    app_secret: &str,
    warn_ms: u64,
) -> Option<Finding> {
    let url = format!("{}/debug_token", base.trim_end_matches('/'));
    let app_token = format!("{app_id}|{app_secret}");
    let response = http
        .get(url)
        .query(&[
            ("input_token", integration.access_token.expose()),
            ("access_token", app_token.as_str()),
        ])
        .send()
        .await;
    match response {
        Ok(r) if r.status().is_success() => {
            let body = r.bytes().await.ok()?;
            read_debug_token(&body, now_ms(), warn_ms)
        }
        Ok(r) => {
            tracing::warn!(integration = %integration.id, status = %r.status(), "Token check refused");
            None
        }
        Err(e) => {
            // The URL carries the tokens: never printed.
            tracing::warn!(integration = %integration.id, error = %e.without_url(), "Token check failed");
            None
        }
    }
}

/// Checks every token now and then every `every`, until aborted.
pub fn spawn(
    integrations: Arc<Integrations>,
    alerts: Arc<Alerts>,
    config: Arc<crate::config::Config>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(15))
            .build()
            .unwrap_or_default();
        let warn_ms = config.alerts.expiry_warning.as_millis() as u64;
        loop {
            check_all(
                &integrations,
                &alerts,
                &http,
                &config.meta.graph_base_url,
                &config.apps,
                warn_ms,
            )
            .await;
            tokio::time::sleep(config.alerts.token_check_every).await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_token_answers_are_read_by_code_and_dates() {
        let day = 86_400_000;
        let now = 1_700_000_000_000;
        let valid = br#"{"data":{"app_id":"1","type":"PAGE","is_valid":true,"expires_at":0,"data_access_expires_at":1800000000,"scopes":["pages_messaging"]}}"#;
        assert_eq!(read_debug_token(valid, now, 7 * day), Some(Finding::Valid));
        let soon = format!(
            r#"{{"data":{{"is_valid":true,"expires_at":{},"data_access_expires_at":0}}}}"#,
            (now + 2 * day) / 1000
        );
        assert!(matches!(
            read_debug_token(soon.as_bytes(), now, 7 * day),
            Some(Finding::Expiring {
                what: "the access token expires",
                ..
            })
        ));
        let invalid = br#"{"data":{"is_valid":false,"error":{"code":190,"message":"Session has expired on Sunday","subcode":463}}}"#;
        assert_eq!(
            read_debug_token(invalid, now, day),
            Some(Finding::Invalid { subcode: Some(463) })
        );
        assert_eq!(read_debug_token(b"<html>", now, day), None);
    }
}
