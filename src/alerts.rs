//! Alerts to the people who run an integration: an email (SMTP) and/or a
//! signed HTTP webhook when its token expired or is about to, when sends
//! keep failing, when an event went to the dead letters, or when a
//! conversation was quarantined. At most one per integration and kind per
//! `alerts.min_interval` (kept in the store, so every instance and a
//! restart respect it). Sent in the background: nothing waits for them.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use lettre::message::{header::ContentType, Mailbox};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::Serialize;

use crate::clock::now_ms;
use crate::config::{AlertsConfig, IntegrationConfig};
use crate::store::{RecordKind, Store};

/// What went wrong (the `kind` label of `switchboard_alerts_sent_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    TokenExpired,
    TokenExpiring,
    SendsFailing,
    DeadLetters,
    Quarantined,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TokenExpired => "token_expired",
            Self::TokenExpiring => "token_expiring",
            Self::SendsFailing => "sends_failing",
            Self::DeadLetters => "dead_letters",
            Self::Quarantined => "quarantined",
        }
    }

    fn subject(self) -> &'static str {
        match self {
            Self::TokenExpired => "access token expired",
            Self::TokenExpiring => "access token expiring soon",
            Self::SendsFailing => "replies keep failing",
            Self::DeadLetters => "an event could not be handled",
            Self::Quarantined => "a conversation was quarantined",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error("alert email: {0}")]
    Email(String),
    #[error("alert webhook: {0}")]
    Webhook(String),
}

/// Whether `url` is `https://` to a name, or to an address that is public
/// (a name's addresses are checked when it is resolved).
pub fn public_https(url: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(url) else {
        return false;
    };
    let Some(host) = url.host_str().filter(|_| url.scheme() == "https") else {
        return false;
    };
    // An IPv6 address comes in brackets.
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<std::net::IpAddr>() {
        Ok(ip) => is_public(ip),
        Err(_) => {
            let name = host.trim_end_matches('.').to_ascii_lowercase();
            name != "localhost" && !name.ends_with(".localhost")
        }
    }
}

/// Whether `ip` is on the public internet: not loopback, private, shared
/// (carrier NAT), link-local (cloud metadata), unique-local, multicast,
/// documentation, benchmarking or reserved.
pub fn is_public(ip: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            !(v4.is_unspecified()
                || v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_multicast()
                || a == 0
                || a >= 240
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && c == 0)
                || (a == 198 && (b == 18 || b == 19)))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || (first == 0x2001 && v6.segments()[1] == 0x0db8)
                || (first == 0x0064 && v6.segments()[1] == 0xff9b))
        }
    }
}

/// Resolves a name to its public addresses only: a webhook a tenant set
/// cannot be pointed at the engine's own network by a name that resolves
/// there (now or later).
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let public: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| is_public(a.ip()))
                .collect();
            if public.is_empty() {
                return Err(format!("{host} has no public address").into());
            }
            Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The body of an alert webhook (signed: `X-Switchboard-Signature:
/// sha256=<hex HMAC-SHA256 of the body with alerts.webhook_secret>`).
#[derive(Debug, Clone, Serialize)]
pub struct Alert {
    pub kind: AlertKind,
    pub integration: String,
    pub tenant: String,
    pub message: String,
    pub at_ms: u64,
}

/// Sends alerts; shared by the whole engine.
pub struct Alerts {
    config: AlertsConfig,
    store: Arc<dyn Store>,
    http: reqwest::Client,
    /// For webhooks a tenant set: names resolved to public addresses only.
    public_http: reqwest::Client,
    /// Failed sends in a row, by integration.
    failures: Mutex<HashMap<String, u32>>,
    /// Alerts going out from here now (integration:kind).
    sending: Mutex<HashSet<String>>,
}

impl Alerts {
    pub fn new(config: AlertsConfig, store: Arc<dyn Store>) -> Self {
        // No redirects: an alert goes where it was pointed, or fails.
        let client = |public_only: bool| {
            let builder = reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(10))
                .redirect(reqwest::redirect::Policy::none());
            if public_only {
                builder.dns_resolver(Arc::new(PublicOnly))
            } else {
                builder
            }
            .build()
            .unwrap_or_default()
        };
        Self {
            config,
            store,
            http: client(false),
            public_http: client(true),
            failures: Mutex::new(HashMap::new()),
            sending: Mutex::new(HashSet::new()),
        }
    }

    /// Raises an alert for `integration` in the background (when it has
    /// somewhere to go and none of this kind went out lately).
    pub fn raise(
        self: &Arc<Self>,
        integration: &IntegrationConfig,
        kind: AlertKind,
        message: String,
    ) {
        if integration.alert_email.is_none() && integration.alert_webhook.is_none() {
            return;
        }
        let alert = Alert {
            kind,
            integration: integration.id.clone(),
            tenant: integration.tenant.clone(),
            message,
            at_ms: now_ms(),
        };
        let (email, webhook) = (
            integration.alert_email.clone(),
            integration.alert_webhook.clone(),
        );
        let public_only = integration.alert_webhook_public_only;
        let this = self.clone();
        tokio::spawn(async move {
            let key = format!("{}:{}", alert.integration, kind.as_str());
            if !this.due(&key, alert.at_ms).await {
                return;
            }
            let mut sent = false;
            if let Some(to) = email {
                match this.email(&to, &alert).await {
                    Ok(()) => sent = true,
                    Err(e) => {
                        tracing::warn!(integration = %alert.integration, error = %e, "Alert not sent")
                    }
                }
            }
            if let Some(url) = webhook {
                match this.webhook(&url, public_only, &alert).await {
                    Ok(()) => sent = true,
                    Err(e) => {
                        tracing::warn!(integration = %alert.integration, error = %e, "Alert not sent")
                    }
                }
            }
            if sent {
                crate::telemetry::alert_sent(kind.as_str());
                this.mark(&key, alert.at_ms).await;
            } else {
                this.done_sending(&key);
            }
        });
    }

    /// `integration`'s token was refused for `reason`: marked expired and,
    /// when newly so, logged and alerted.
    pub fn token_refused(
        self: &Arc<Self>,
        tokens: &crate::integrations::TokenHealth,
        integration: &IntegrationConfig,
        reason: &str,
    ) {
        if tokens.expired(&integration.id, reason.to_string()) {
            tracing::error!(integration = %integration.id, reason, "Access token expired or revoked; the integration needs a new token");
            self.raise(integration, AlertKind::TokenExpired, reason.to_string());
        }
    }

    /// A send for `integration` failed; alerts after
    /// `alerts.failed_sends` in a row.
    pub fn send_failed(self: &Arc<Self>, integration: &IntegrationConfig, reason: &str) {
        let count = {
            let Ok(mut f) = self.failures.lock() else {
                return;
            };
            let n = f.entry(integration.id.clone()).or_insert(0);
            *n += 1;
            *n
        };
        // Every failure from the threshold on raises it (one per interval
        // goes out): one that could not be delivered comes again.
        if count >= self.config.failed_sends.max(1) {
            self.raise(
                integration,
                AlertKind::SendsFailing,
                format!("{count} replies in a row were not delivered; the last: {reason}"),
            );
        }
    }

    /// A send for `integration` succeeded.
    pub fn send_succeeded(&self, integration: &str) {
        if let Ok(mut f) = self.failures.lock() {
            if f.get(integration).is_some_and(|n| *n > 0) {
                f.remove(integration);
            }
        }
    }

    /// Whether an alert `key` (integration and kind) may go at `at_ms`:
    /// none went out within `alerts.min_interval`, and none is going out
    /// from this instance now.
    async fn due(&self, key: &str, at_ms: u64) -> bool {
        {
            let Ok(mut sending) = self.sending.lock() else {
                return false;
            };
            if !sending.insert(key.to_string()) {
                return false;
            }
        }
        let last = match self.store.records(RecordKind::Alerts).await {
            Ok(records) => records
                .into_iter()
                .find(|(k, _)| k == key)
                .and_then(|(_, v)| std::str::from_utf8(&v).ok()?.parse::<u64>().ok()),
            Err(e) => {
                tracing::warn!(error = %e, "Alert history unavailable; sending anyway");
                None
            }
        };
        let interval = self.config.min_interval.as_millis() as u64;
        let due = last.is_none_or(|at| at_ms >= at.saturating_add(interval));
        if !due {
            self.done_sending(key);
        }
        due
    }

    fn done_sending(&self, key: &str) {
        if let Ok(mut sending) = self.sending.lock() {
            sending.remove(key);
        }
    }

    /// Remembers that alert `key` went out at `at_ms`.
    async fn mark(&self, key: &str, at_ms: u64) {
        if let Err(e) = self
            .store
            .put_record(RecordKind::Alerts, key, at_ms.to_string().into_bytes())
            .await
        {
            tracing::warn!(error = %e, "Alert history not written");
        }
        self.done_sending(key);
    }

    fn text(alert: &Alert) -> String {
        format!(
            "Integration {} (tenant {}): {}.\n\n{}\n",
            alert.integration,
            alert.tenant,
            alert.kind.subject(),
            alert.message
        )
    }

    async fn email(&self, to: &str, alert: &Alert) -> Result<(), AlertError> {
        let url = self.config.smtp_url.expose();
        if url.is_empty() {
            return Err(AlertError::Email("alerts.smtp_url is not set".into()));
        }
        let bad = |e: &dyn std::fmt::Display| AlertError::Email(e.to_string());
        let from: Mailbox = self.config.from.parse().map_err(|e| bad(&e))?;
        let to: Mailbox = to.parse().map_err(|e| bad(&e))?;
        let message = Message::builder()
            .from(from)
            .to(to)
            .subject(format!(
                "[switchboard] {}: {}",
                alert.integration,
                alert.kind.subject()
            ))
            .header(ContentType::TEXT_PLAIN)
            .body(Self::text(alert))
            .map_err(|e| bad(&e))?;
        // The URL may carry credentials: errors name the failure only.
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|_| AlertError::Email("alerts.smtp_url is not a valid SMTP URL".into()))?
            .timeout(Some(std::time::Duration::from_secs(10)))
            .build();
        transport.send(message).await.map_err(|e| bad(&e))?;
        Ok(())
    }

    async fn webhook(&self, url: &str, public_only: bool, alert: &Alert) -> Result<(), AlertError> {
        let body = serde_json::to_vec(alert).map_err(|e| AlertError::Webhook(e.to_string()))?;
        let http = if public_only {
            if !public_https(url) {
                return Err(AlertError::Webhook(
                    "a tenant's webhook must be an https:// URL of a public host".into(),
                ));
            }
            &self.public_http
        } else {
            &self.http
        };
        let mut request = http.post(url).header("content-type", "application/json");
        let secret = self.config.webhook_secret.expose();
        if !secret.is_empty() {
            request = request.header(
                "x-switchboard-signature",
                crate::channels::webhook::sign(secret.as_bytes(), &body),
            );
        }
        let response = request
            .body(body)
            .send()
            .await
            .map_err(|e| AlertError::Webhook(e.without_url().to_string()))?;
        if !response.status().is_success() {
            return Err(AlertError::Webhook(format!(
                "answered {}",
                response.status()
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_are_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "198.18.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "2001:db8::1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "1.1.1.1", "2606:4700::1111", "::ffff:8.8.8.8"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
        assert!(public_https("https://hooks.example.com/a"));
        for url in [
            "http://hooks.example.com/a",
            "https://localhost/a",
            "https://LOCALHOST./a",
            "https://10.0.0.5:8443/x",
            "https://[fd00::1]/x",
            "not a url",
        ] {
            assert!(!public_https(url), "{url}");
        }
    }

    #[tokio::test]
    async fn a_name_resolving_to_the_engine_s_own_network_has_no_address() {
        use reqwest::dns::Resolve;
        let name: reqwest::dns::Name = "localhost".parse().unwrap();
        assert!(PublicOnly.resolve(name).await.is_err());
    }
}
