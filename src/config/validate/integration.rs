//! Checks of an integration's timing and texts, and of the connect flow.

use super::super::{ChannelKind, Config, IntegrationConfig, ResponseDelay};
use super::Errors;

pub(super) fn integration_timing(
    g: &IntegrationConfig,
    key: &impl Fn(&str) -> String,
    e: &mut Errors,
) {
    if g.dedup_window.as_secs() < 60 {
        e.add(
            key("dedup_window"),
            "must be a duration of at least one minute, like \"7d\"",
        );
    }
    if g.auto_resume_after
        .is_some_and(|d| d.is_zero() || d.as_secs() > 7 * 86_400)
    {
        e.add(
            key("auto_resume_after"),
            "must be \"off\" or a duration up to 7 days, like \"30m\"",
        );
    }
    if g.expire_after.as_secs() < 60 {
        e.add(
            key("expire_after"),
            "must be a duration of at least one minute, like \"30d\"",
        );
    }
    match g.response_delay_ms {
        ResponseDelay::Fixed(ms) if ms > 86_400_000 => {
            e.add(key("response_delay_ms"), "must be at most one day");
        }
        ResponseDelay::Range([lo, hi]) if lo > hi || hi > 86_400_000 => {
            e.add(
                key("response_delay_ms"),
                "must be [min, max] with min <= max <= one day",
            );
        }
        _ => {}
    }
}

pub(super) fn integration_texts(
    g: &IntegrationConfig,
    key: &impl Fn(&str) -> String,
    e: &mut Errors,
) {
    if let Some(to) = &g.alert_email {
        if to.parse::<lettre::message::Mailbox>().is_err() {
            e.add(key("alert_email"), "must be one email address");
        }
    }
    if let Some(url) = &g.alert_webhook {
        let ok = reqwest::Url::parse(url)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
        if !ok {
            e.add(key("alert_webhook"), "must be an http(s) URL");
        }
    }
    for (field, value) in [
        ("away_message", &g.away_message),
        ("greeting", &g.greeting),
        ("get_started_payload", &g.get_started_payload),
        ("welcome_message", &g.welcome_message),
        ("whatsapp_template", &g.whatsapp_template),
    ] {
        if value.as_ref().is_some_and(|v| v.trim().is_empty()) {
            e.add(key(field), "must not be empty when set");
        }
    }
    if g.greeting.as_ref().is_some_and(|v| v.chars().count() > 160) {
        e.add(
            key("greeting"),
            "must be at most 160 characters (Messenger's limit)",
        );
    }
    if g.get_started_payload
        .as_ref()
        .is_some_and(|v| v.len() > 1000)
    {
        e.add(
            key("get_started_payload"),
            "must be at most 1000 characters",
        );
    }
    if g.welcome_message.is_some() && g.get_started_payload.is_none() {
        e.add(
            key("welcome_message"),
            "needs get_started_payload (it answers the Get Started postback)",
        );
    }
    if (g.greeting.is_some() || g.get_started_payload.is_some())
        && g.channel != ChannelKind::Messenger
    {
        e.add(
            key("greeting"),
            "greeting and get_started_payload are Messenger settings",
        );
    }
}

pub(super) fn connect(c: &Config, e: &mut Errors) {
    let k = &c.connect;
    if k.public_url.is_empty() {
        return;
    }
    if !(k.public_url.starts_with("https://") || k.public_url.starts_with("http://")) {
        e.add("connect.public_url", "must be an http(s) URL");
    }
    match c.apps.iter().find(|a| a.id == k.app) {
        None => e.add("connect.app", &format!("no app with id \"{}\"", k.app)),
        Some(a) if a.meta_app_id.is_none() => e.add(
            "connect.app",
            &format!(
                "app \"{}\" needs its meta_app_id for the connect flow",
                k.app
            ),
        ),
        Some(_) => {}
    }
}

/// A Gmail integration's OAuth client and push settings (and no secret
/// that is the redacted text an answer shows).
pub(super) fn gmail_keys(g: &IntegrationConfig, key: &impl Fn(&str) -> String, e: &mut Errors) {
    for (name, secret) in [
        ("access_token", &g.access_token),
        ("oauth_client_secret", &g.oauth_client_secret),
        ("refresh_token", &g.refresh_token),
        ("identity_secret", &g.identity_secret),
    ] {
        if secret.expose() == "<redacted>" {
            e.add(
                key(name),
                "is the redacted value an answer shows; send the secret itself, or leave it out",
            );
        }
    }
    if g.channel != ChannelKind::Gmail {
        for (name, set) in [
            ("oauth_client_id", g.oauth_client_id.is_some()),
            ("refresh_token", !g.refresh_token.is_empty()),
            ("push_audience", g.push_audience.is_some()),
        ] {
            if set {
                e.add(key(name), "is a Gmail setting");
            }
        }
        return;
    }
    if !g.account_id.contains('@') {
        e.add(key("account_id"), "must be the mailbox's email address");
    }
    if g.oauth_client_id.as_deref().is_none_or(str::is_empty) {
        e.add(key("oauth_client_id"), "must be set for a Gmail mailbox");
    }
    if g.oauth_client_secret.is_empty() {
        e.add(
            key("oauth_client_secret"),
            "must be set for a Gmail mailbox",
        );
    }
    if g.refresh_token.is_empty() {
        e.add(key("refresh_token"), "must be set for a Gmail mailbox");
    }
    for (name, value) in [
        ("push_audience", &g.push_audience),
        ("push_service_account", &g.push_service_account),
    ] {
        if value.as_deref().is_none_or(str::is_empty) {
            e.add(
                key(name),
                "must be set: Pub/Sub pushes are refused without it",
            );
        }
    }
}

/// `[google]`: URLs and the mailbox pacing.
pub(super) fn google(c: &Config, e: &mut Errors) {
    let g = &c.google;
    for (name, url) in [
        ("google.gmail_base_url", &g.gmail_base_url),
        ("google.token_url", &g.token_url),
        ("google.jwks_url", &g.jwks_url),
    ] {
        let ok = reqwest::Url::parse(url)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
        if !ok {
            e.add(name, "must be an http(s) URL");
        }
    }
    if g.poll_interval.as_secs() < 1 {
        e.add("google.poll_interval", "must be at least one second");
    }
    if g.watch_every.as_secs() < 60 || g.watch_every.as_secs() > 6 * 86_400 {
        e.add(
            "google.watch_every",
            "must be between one minute and 6 days (a watch lapses after 7)",
        );
    }
    if g.quota_units_per_second == 0 || g.quota_units_per_second > 250 {
        e.add(
            "google.quota_units_per_second",
            "must be between 1 and 250 (Gmail's per-user limit)",
        );
    }
    if g.resync_max == 0 {
        e.add("google.resync_max", "must be at least 1");
    }
}

/// A web chat integration's origins and widget settings.
pub(super) fn web_keys(g: &IntegrationConfig, key: &impl Fn(&str) -> String, e: &mut Errors) {
    if g.channel != ChannelKind::Web {
        if !g.allowed_origins.is_empty() {
            e.add(key("allowed_origins"), "is a web chat setting");
        }
        return;
    }
    if g.allowed_origins.is_empty() {
        e.add(
            key("allowed_origins"),
            "must list the origins (like \"https://shop.example\") whose pages may embed the widget",
        );
    }
    if !g.identity_secret.is_empty() && g.identity_secret.expose().len() < 32 {
        e.add(key("identity_secret"), "must be at least 32 characters");
    }
    for o in &g.allowed_origins {
        // Written as a browser sends it in `Origin`, or it never matches.
        let ok = reqwest::Url::parse(o).is_ok_and(|u| {
            matches!(u.scheme(), "http" | "https")
                && u.host().is_some()
                && u.origin().ascii_serialization() == *o
        });
        if !ok {
            e.add(
                key("allowed_origins"),
                &format!("{o:?} is not an origin as browsers send it, like \"https://shop.example\" (lower-case scheme and host, a port only when not the default; no path)"),
            );
        }
    }
    if g.widget_color.as_deref().is_some_and(|c| {
        !(c.len() == 7 && c.starts_with('#') && c[1..].bytes().all(|b| b.is_ascii_hexdigit()))
    }) {
        e.add(key("widget_color"), "must be a colour like \"#1a73e8\"");
    }
    if g.widget_position
        .as_deref()
        .is_some_and(|p| p != "right" && p != "left")
    {
        e.add(key("widget_position"), "must be \"right\" or \"left\"");
    }
}
