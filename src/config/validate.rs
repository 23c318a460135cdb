//! Semantic checks of a loaded configuration. Every problem is collected,
//! each prefixed with the key it concerns.

use std::collections::HashSet;
use std::net::SocketAddr;

use super::{AssistantKind, BusKind, ChannelKind, Config, ResponseDelay, StoreKind};

/// Shortest admin token `serve` accepts on a listener other than loopback.
pub const MIN_ADMIN_TOKEN: usize = 24;

/// Secrets not fit to serve with: the example config's placeholders and a
/// short admin token, each named by its key (never its value). `serve`
/// refuses to start with any of them unless it listens on loopback only.
pub fn weak_secrets(c: &Config) -> Vec<String> {
    let mut weak = Vec::new();
    let placeholder = |key: String, secret: &super::Secret, weak: &mut Vec<String>| {
        if secret.is_placeholder() {
            weak.push(format!(
                "{key}: is the example config's placeholder; set a real secret"
            ));
        }
    };
    placeholder("admin.token".into(), &c.admin.token, &mut weak);
    let token = c.admin.token.expose();
    if !token.is_empty()
        && !c.admin.token.is_placeholder()
        && token.chars().count() < MIN_ADMIN_TOKEN
    {
        weak.push(format!(
            "admin.token: is shorter than {MIN_ADMIN_TOKEN} characters"
        ));
    }
    for a in &c.apps {
        placeholder(
            format!("apps.{}.app_secret", a.id),
            &a.app_secret,
            &mut weak,
        );
        placeholder(
            format!("apps.{}.verify_token", a.id),
            &a.verify_token,
            &mut weak,
        );
    }
    for i in &c.integrations {
        placeholder(
            format!("integrations.{}.access_token", i.id),
            &i.access_token,
            &mut weak,
        );
    }
    weak
}

/// Whether the webhook and admin listener takes loopback connections only.
pub fn listens_on_loopback_only(c: &Config) -> bool {
    c.server
        .listen
        .parse::<SocketAddr>()
        .is_ok_and(|a| a.ip().is_loopback())
}

pub fn validate(c: &Config) -> Result<(), Vec<String>> {
    let mut errors = Vec::new();
    let mut err = |key: String, msg: &str| errors.push(format!("{key}: {msg}"));

    for (key, value) in [
        ("server.listen", &c.server.listen),
        ("server.metrics_listen", &c.server.metrics_listen),
    ] {
        if value.parse::<SocketAddr>().is_err() {
            err(key.into(), "must be an address like 127.0.0.1:8080");
        }
    }
    if c.server.max_body_bytes == 0 || c.server.max_body_bytes > 100 * 1024 * 1024 {
        err(
            "server.max_body_bytes".into(),
            "must be between 1 and 104857600",
        );
    }
    if c.server.max_concurrent_requests == 0 {
        err(
            "server.max_concurrent_requests".into(),
            "must be at least 1",
        );
    }
    if c.server.max_backlog_events == 0 {
        err("server.max_backlog_events".into(), "must be at least 1");
    }
    if c.bus.kind == BusKind::Kafka {
        let k = &c.bus.kafka;
        if k.brokers.trim().is_empty() {
            err("bus.kafka.brokers".into(), "must list at least one broker");
        }
        if k.topic.trim().is_empty() {
            err("bus.kafka.topic".into(), "must not be empty");
        }
        if k.group_id.trim().is_empty() {
            err("bus.kafka.group_id".into(), "must not be empty");
        }
        if !(1..=10_000).contains(&k.partitions) {
            err("bus.kafka.partitions".into(), "must be between 1 and 10000");
        }
        if k.replication_factor == 0 {
            err("bus.kafka.replication_factor".into(), "must be at least 1");
        }
        if !(1..=1_000).contains(&k.fetch_wait_max_ms) {
            err(
                "bus.kafka.fetch_wait_max_ms".into(),
                "must be between 1 and 1000",
            );
        }
        if !matches!(
            k.assignment_strategy.as_str(),
            "cooperative-sticky" | "roundrobin" | "range"
        ) {
            err(
                "bus.kafka.assignment_strategy".into(),
                "must be \"cooperative-sticky\", \"roundrobin\" or \"range\"",
            );
        }
        if !(1_000..=300_000).contains(&k.publish_timeout_ms) {
            err(
                "bus.kafka.publish_timeout_ms".into(),
                "must be between 1000 and 300000",
            );
        }
    }
    let uses_scylla = c.store.kind == StoreKind::Scylla
        || c.tenants.iter().any(|t| t.store == Some(StoreKind::Scylla));
    if uses_scylla {
        let sc = &c.store.scylla;
        if sc.nodes.iter().all(|n| n.trim().is_empty()) {
            err(
                "store.scylla.nodes".into(),
                "must list at least one node, like \"127.0.0.1:9042\"",
            );
        }
        let ks = &sc.keyspace;
        if ks.is_empty()
            || ks.len() > 48
            || !ks.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
            || ks.starts_with(|ch: char| ch.is_ascii_digit())
        {
            err(
                "store.scylla.keyspace".into(),
                "must be 1-48 letters, digits or '_', not starting with a digit",
            );
        }
        if !sc.replication.trim().starts_with('{') || !sc.replication.contains("class") {
            err(
                "store.scylla.replication".into(),
                "must be a CQL replication map like \"{'class': 'NetworkTopologyStrategy', 'replication_factor': 3}\"",
            );
        }
        if !(100..=60_000).contains(&sc.request_timeout_ms) {
            err(
                "store.scylla.request_timeout_ms".into(),
                "must be between 100 and 60000",
            );
        }
    }
    if !(4..=1_048_576).contains(&c.store.cache_mb) {
        err(
            "store.cache_mb".into(),
            "must be between 4 and 1048576 (MiB)",
        );
    }
    if c.store.path.as_os_str().is_empty() {
        err("store.path".into(), "must not be empty");
    }
    let base = &c.meta.graph_base_url;
    if !(base.starts_with("http://") || base.starts_with("https://")) || base.len() < 10 {
        err(
            "meta.graph_base_url".into(),
            "must be an http:// or https:// URL",
        );
    }
    for (key, value) in [
        ("engine.passivate_after", &c.engine.passivate_after),
        ("engine.typing_refresh", &c.engine.typing_refresh),
        ("engine.restart_backoff_max", &c.engine.restart_backoff_max),
        ("engine.shutdown_grace", &c.engine.shutdown_grace),
        ("outbound.backoff_initial", &c.outbound.backoff_initial),
        ("outbound.backoff_max", &c.outbound.backoff_max),
        ("outbound.request_timeout", &c.outbound.request_timeout),
        ("outbound.retry_later", &c.outbound.retry_later),
        ("outbound.confirm_wait", &c.outbound.confirm_wait),
        ("server.request_timeout", &c.server.request_timeout),
        ("server.max_backlog_age", &c.server.max_backlog_age),
    ] {
        match humantime::parse_duration(value) {
            Ok(d) if !d.is_zero() => {}
            _ => err(
                key.into(),
                "must be a positive duration like \"15s\" or \"7d\"",
            ),
        }
    }
    if c.engine.max_event_attempts == 0 {
        err("engine.max_event_attempts".into(), "must be at least 1");
    }
    if c.engine.max_inflight_events == 0 {
        err("engine.max_inflight_events".into(), "must be at least 1");
    }
    if c.outbound.max_attempts == 0 || c.outbound.max_attempts > 20 {
        err("outbound.max_attempts".into(), "must be between 1 and 20");
    }

    let assistants = unique_ids(
        c.assistants.iter().map(|a| a.id.as_str()),
        "assistants",
        &mut err,
    );
    for (i, a) in c.assistants.iter().enumerate() {
        let key = |f: &str| format!("assistants[{i}].{f}");
        match a.kind {
            AssistantKind::Rules => {
                if a.fallback.trim().is_empty() {
                    err(key("fallback"), "must not be empty for a rules assistant");
                }
                for (j, r) in a.rules.iter().enumerate() {
                    if r.keywords.iter().all(|k| k.trim().is_empty()) {
                        err(
                            key(&format!("rules[{j}].keywords")),
                            "needs at least one keyword",
                        );
                    }
                    if r.reply.trim().is_empty() {
                        err(key(&format!("rules[{j}].reply")), "must not be empty");
                    }
                }
            }
            AssistantKind::Openai => {
                err(
                    key("kind"),
                    "\"openai\" is not supported by this build; use \"rules\"",
                );
            }
        }
    }

    let apps = unique_ids(c.apps.iter().map(|a| a.id.as_str()), "apps", &mut err);
    for (i, a) in c.apps.iter().enumerate() {
        if a.id.is_empty()
            || !a
                .id
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
        {
            err(
                format!("apps[{i}].id"),
                "must be letters, digits, '-' or '_' (it is part of the webhook URL)",
            );
        }
        if a.app_secret.is_empty() {
            err(format!("apps[{i}].app_secret"), "must not be empty");
        }
        if a.verify_token.is_empty() {
            err(format!("apps[{i}].verify_token"), "must not be empty");
        }
    }

    let tenants = unique_ids(c.tenants.iter().map(|t| t.id.as_str()), "tenants", &mut err);

    unique_ids(
        c.integrations.iter().map(|t| t.id.as_str()),
        "integrations",
        &mut err,
    );
    let mut accounts = HashSet::new();
    for (i, g) in c.integrations.iter().enumerate() {
        let key = |f: &str| format!("integrations[{i}].{f}");
        if g.id.is_empty() || g.id.contains(':') {
            err(key("id"), "must be non-empty and must not contain ':' (conversation ids are {integration}:{customer})");
        }
        if !tenants.contains(g.tenant.as_str()) {
            err(
                key("tenant"),
                &format!("no tenant with id \"{}\"", g.tenant),
            );
        }
        if !apps.contains(g.app.as_str()) {
            err(key("app"), &format!("no app with id \"{}\"", g.app));
        }
        if !assistants.contains(g.assistant.as_str()) {
            err(
                key("assistant"),
                &format!("no assistant with id \"{}\"", g.assistant),
            );
        }
        if !matches!(
            g.channel,
            ChannelKind::Messenger | ChannelKind::Instagram | ChannelKind::Whatsapp
        ) {
            err(
                key("channel"),
                "only \"messenger\", \"instagram\" and \"whatsapp\" are supported by this build",
            );
        }
        if g.send_rate_per_second.is_some_and(|r| r == 0 || r > 10_000) {
            err(key("send_rate_per_second"), "must be between 1 and 10000");
        }
        if g.whatsapp_template.is_some() && g.channel != ChannelKind::Whatsapp {
            err(key("whatsapp_template"), "is a WhatsApp setting");
        }
        if g.whatsapp_template
            .as_ref()
            .is_some_and(|t| t.trim().is_empty())
        {
            err(key("whatsapp_template"), "must not be empty when set");
        }
        if g.account_id.trim().is_empty() {
            err(key("account_id"), "must not be empty");
        } else if !accounts.insert((g.app.clone(), g.account_id.clone())) {
            err(
                key("account_id"),
                "another integration of the same app has this account",
            );
        }
        if g.access_token.is_empty() {
            err(key("access_token"), "must not be empty");
        }
        let limit = crate::channels::platform::text_limit(g.channel);
        if g.max_message_length.is_some_and(|l| l == 0 || l > limit) {
            err(
                key("max_message_length"),
                &format!("must be between 1 and {limit} for this channel"),
            );
        }
        if g.rate_limit_per_minute == 0 {
            err(key("rate_limit_per_minute"), "must be at least 1");
        }
        match humantime::parse_duration(&g.dedup_window) {
            Ok(d) if d.as_secs() >= 60 => {}
            _ => err(
                key("dedup_window"),
                "must be a duration of at least one minute, like \"7d\"",
            ),
        }
        if g.auto_resume_after.trim() != "off" {
            match humantime::parse_duration(&g.auto_resume_after) {
                Ok(d) if !d.is_zero() && d.as_secs() <= 7 * 86_400 => {}
                _ => err(
                    key("auto_resume_after"),
                    "must be \"off\" or a duration up to 7 days, like \"30m\"",
                ),
            }
        }
        match humantime::parse_duration(&g.expire_after) {
            Ok(d) if d.as_secs() >= 60 => {}
            _ => err(
                key("expire_after"),
                "must be a duration of at least one minute, like \"30d\"",
            ),
        }
        for (field, value) in [
            ("away_message", &g.away_message),
            ("greeting", &g.greeting),
            ("get_started_payload", &g.get_started_payload),
            ("welcome_message", &g.welcome_message),
        ] {
            if value.as_ref().is_some_and(|v| v.trim().is_empty()) {
                err(key(field), "must not be empty when set");
            }
        }
        if g.greeting.as_ref().is_some_and(|v| v.chars().count() > 160) {
            err(
                key("greeting"),
                "must be at most 160 characters (Messenger's limit)",
            );
        }
        if g.get_started_payload
            .as_ref()
            .is_some_and(|v| v.len() > 1000)
        {
            err(
                key("get_started_payload"),
                "must be at most 1000 characters",
            );
        }
        if g.welcome_message.is_some() && g.get_started_payload.is_none() {
            err(
                key("welcome_message"),
                "needs get_started_payload (it answers the Get Started postback)",
            );
        }
        if (g.greeting.is_some() || g.get_started_payload.is_some())
            && g.channel != ChannelKind::Messenger
        {
            err(
                key("greeting"),
                "greeting and get_started_payload are Messenger settings",
            );
        }
        match g.response_delay_ms {
            ResponseDelay::Fixed(ms) if ms > 86_400_000 => {
                err(key("response_delay_ms"), "must be at most one day");
            }
            ResponseDelay::Range([lo, hi]) if lo > hi || hi > 86_400_000 => {
                err(
                    key("response_delay_ms"),
                    "must be [min, max] with min <= max <= one day",
                );
            }
            _ => {}
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

fn unique_ids<'a>(
    ids: impl Iterator<Item = &'a str>,
    list: &str,
    err: &mut impl FnMut(String, &str),
) -> HashSet<&'a str> {
    let mut seen = HashSet::new();
    for (i, id) in ids.enumerate() {
        if !seen.insert(id) {
            err(format!("{list}[{i}].id"), &format!("duplicate id \"{id}\""));
        }
    }
    seen
}
