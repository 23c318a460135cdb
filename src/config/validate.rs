//! Semantic checks of a loaded configuration, one function per section.
//! Every problem is collected, each prefixed with the key it concerns.
//! (Durations are parsed when the config is read; a malformed one is an
//! error there, with its key.)

use std::collections::HashSet;
use std::net::SocketAddr;

use std::time::Duration;

mod durability;
mod integration;
mod server;

use durability::durability;
use integration::{connect, gmail_keys, google, integration_texts, integration_timing, web_keys};
use server::server;

use super::{AssistantConfig, AssistantKind, BusKind, ChannelKind, Config, OnFailure, StoreKind};

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
        for (name, secret) in [
            ("access_token", &i.access_token),
            ("oauth_client_secret", &i.oauth_client_secret),
            ("refresh_token", &i.refresh_token),
        ] {
            placeholder(format!("integrations.{}.{name}", i.id), secret, &mut weak);
        }
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

/// Every problem, each with its key.
#[derive(Default)]
struct Errors(Vec<String>);

impl Errors {
    fn add(&mut self, key: impl Into<String>, msg: &str) {
        self.0.push(format!("{}: {msg}", key.into()));
    }
}

pub fn validate(c: &Config) -> Result<(), Vec<String>> {
    let mut e = Errors::default();
    server(c, &mut e);
    bus(c, &mut e);
    store(c, &mut e);
    engine_and_outbound(c, &mut e);
    let assistants = assistants(c, &mut e);
    let apps = apps(c, &mut e);
    let tenants = unique_ids(c.tenants.iter().map(|t| t.id.as_str()), "tenants", &mut e);
    integrations(c, &assistants, &apps, &tenants, &mut e);
    connect(c, &mut e);
    google(c, &mut e);
    if e.0.is_empty() {
        Ok(())
    } else {
        Err(e.0)
    }
}

fn positive(e: &mut Errors, key: &str, d: Duration) {
    if d.is_zero() {
        e.add(key, "must be a positive duration like \"15s\" or \"7d\"");
    }
}

fn bus(c: &Config, e: &mut Errors) {
    if c.bus.kind != BusKind::Kafka {
        return;
    }
    let k = &c.bus.kafka;
    if k.brokers.trim().is_empty() {
        e.add("bus.kafka.brokers", "must list at least one broker");
    }
    if k.topic.trim().is_empty() {
        e.add("bus.kafka.topic", "must not be empty");
    }
    if k.group_id.trim().is_empty() {
        e.add("bus.kafka.group_id", "must not be empty");
    }
    if !(1..=10_000).contains(&k.partitions) {
        e.add("bus.kafka.partitions", "must be between 1 and 10000");
    }
    if k.replication_factor == 0 {
        e.add("bus.kafka.replication_factor", "must be at least 1");
    }
    if !(1..=1_000).contains(&k.fetch_wait_max_ms) {
        e.add("bus.kafka.fetch_wait_max_ms", "must be between 1 and 1000");
    }
    if !matches!(
        k.assignment_strategy.as_str(),
        "cooperative-sticky" | "roundrobin" | "range"
    ) {
        e.add(
            "bus.kafka.assignment_strategy",
            "must be \"cooperative-sticky\", \"roundrobin\" or \"range\"",
        );
    }
    if k.max_poll_interval_ms < k.session_timeout_ms || k.max_poll_interval_ms > 3_600_000 {
        e.add(
            "bus.kafka.max_poll_interval_ms",
            "must be at least session_timeout_ms and at most 3600000",
        );
    }
    if !(1_000..=300_000).contains(&k.publish_timeout_ms) {
        e.add(
            "bus.kafka.publish_timeout_ms",
            "must be between 1000 and 300000",
        );
    }
}

fn store(c: &Config, e: &mut Errors) {
    if c.store.retention < Duration::from_secs(60) {
        e.add("store.retention", "must be at least \"1m\", like \"90d\"");
    }
    for (key, value) in [
        ("store.dead_letter_retention", c.store.dead_letter_retention),
        ("store.audit_retention", c.store.audit_retention),
    ] {
        if value < Duration::from_secs(3600) {
            e.add(key, "must be at least one hour, like \"90d\"");
        }
    }
    let scylla = Some(StoreKind::Scylla);
    if c.store.kind == StoreKind::Scylla || c.tenants.iter().any(|t| t.store == scylla) {
        let sc = &c.store.scylla;
        if sc.nodes.iter().all(|n| n.trim().is_empty()) {
            e.add(
                "store.scylla.nodes",
                "must list at least one node, like \"127.0.0.1:9042\"",
            );
        }
        let ks = &sc.keyspace;
        if ks.is_empty()
            || ks.len() > 48
            || !ks.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
            || ks.starts_with(|ch: char| ch.is_ascii_digit())
        {
            e.add(
                "store.scylla.keyspace",
                "must be 1-48 letters, digits or '_', not starting with a digit",
            );
        }
        if !sc.replication.trim().starts_with('{') || !sc.replication.contains("class") {
            e.add(
                "store.scylla.replication",
                "must be a CQL replication map like \"{'class': 'NetworkTopologyStrategy', 'replication_factor': 3}\"",
            );
        }
        if !(100..=60_000).contains(&sc.request_timeout_ms) {
            e.add(
                "store.scylla.request_timeout_ms",
                "must be between 100 and 60000",
            );
        }
    }
    durability(c, e);
    if !(4..=1_048_576).contains(&c.store.cache_mb) {
        e.add("store.cache_mb", "must be between 4 and 1048576 (MiB)");
    }
    if c.store.background_threads > 64 {
        e.add(
            "store.background_threads",
            "must be at most 64 (0: one per core, up to 4)",
        );
    }
    if c.store.path.as_os_str().is_empty() {
        e.add("store.path", "must not be empty");
    }
}

fn engine_and_outbound(c: &Config, e: &mut Errors) {
    for (key, value) in [
        ("engine.passivate_after", c.engine.passivate_after),
        ("engine.typing_refresh", c.engine.typing_refresh),
        ("engine.restart_backoff_max", c.engine.restart_backoff_max),
        ("engine.shutdown_grace", c.engine.shutdown_grace),
        ("outbound.backoff_initial", c.outbound.backoff_initial),
        ("outbound.backoff_max", c.outbound.backoff_max),
        ("outbound.request_timeout", c.outbound.request_timeout),
        ("outbound.retry_later", c.outbound.retry_later),
        ("outbound.confirm_wait", c.outbound.confirm_wait),
    ] {
        positive(e, key, value);
    }
    if c.engine.max_event_attempts == 0 {
        e.add("engine.max_event_attempts", "must be at least 1");
    }
    if c.engine.max_inflight_events == 0 {
        e.add("engine.max_inflight_events", "must be at least 1");
    }
    if c.outbound.max_attempts == 0 || c.outbound.max_attempts > 20 {
        e.add("outbound.max_attempts", "must be between 1 and 20");
    }
}

/// The assistants' ids.
fn assistants<'a>(c: &'a Config, e: &mut Errors) -> HashSet<&'a str> {
    let ids = unique_ids(c.assistants.iter().map(|a| a.id.as_str()), "assistants", e);
    for (i, a) in c.assistants.iter().enumerate() {
        let key = |f: &str| format!("assistants[{i}].{f}");
        match a.kind {
            AssistantKind::Rules => {
                if a.fallback.trim().is_empty() {
                    e.add(key("fallback"), "must not be empty for a rules assistant");
                }
                for (j, r) in a.rules.iter().enumerate() {
                    if r.keywords.iter().all(|k| k.trim().is_empty()) {
                        e.add(
                            key(&format!("rules[{j}].keywords")),
                            "needs at least one keyword",
                        );
                    }
                    if r.reply.trim().is_empty() {
                        e.add(key(&format!("rules[{j}].reply")), "must not be empty");
                    }
                }
            }
            AssistantKind::Openai => openai_assistant(a, &key, e),
        }
        // The model's key, or the embeddings server's (a rules assistant
        // with an embeddings model would otherwise call it with no key); a
        // rules assistant that calls no server uses none.
        let calls_a_server = a.kind == AssistantKind::Openai || a.embeddings_model.is_some();
        if let Some(var) = a.api_key_env.as_ref().filter(|_| calls_a_server) {
            if std::env::var_os(var).is_none() {
                e.add(
                    key("api_key_env"),
                    &format!("names the environment variable {var}, which is not set"),
                );
            }
        }
        if a.embeddings_model.is_some() && a.base_url.is_none() {
            e.add(
                key("embeddings_model"),
                "needs base_url (the server that computes the embeddings)",
            );
        }
        if !(0.0..=1.0).contains(&a.knowledge_min_similarity) {
            e.add(key("knowledge_min_similarity"), "must be between 0 and 1");
        }
        for (j, r) in a.rules.iter().enumerate() {
            if r.choices.len() > MAX_CHOICES {
                e.add(
                    key(&format!("rules[{j}].choices")),
                    &format!("at most {MAX_CHOICES} choices"),
                );
            }
            if r.choices.iter().any(|c| c.trim().is_empty()) {
                e.add(
                    key(&format!("rules[{j}].choices")),
                    "a choice must not be empty",
                );
            }
        }
    }
    ids
}

/// Choices offered with one answer, at most (WhatsApp's list has 10 rows).
const MAX_CHOICES: usize = 10;

/// The keys of a model assistant.
fn openai_assistant(a: &AssistantConfig, key: &dyn Fn(&str) -> String, e: &mut Errors) {
    match a.base_url.as_deref() {
        None => e.add(key("base_url"), "is required for an openai assistant"),
        Some(url) if !(url.starts_with("http://") || url.starts_with("https://")) => e.add(
            key("base_url"),
            "must be an http:// or https:// URL, e.g. http://127.0.0.1:8000/v1",
        ),
        Some(_) => {}
    }
    if a.model.as_deref().is_none_or(|m| m.trim().is_empty()) {
        e.add(key("model"), "is required for an openai assistant");
    }
    if a.on_failure == OnFailure::Fallback && a.fallback.trim().is_empty() {
        e.add(
            key("fallback"),
            "must not be empty when on_failure = \"fallback\"",
        );
    }
    if a.max_concurrency == 0 {
        e.add(key("max_concurrency"), "must be at least 1");
    }
    if a.max_attempts == 0 || a.max_attempts > 10 {
        e.add(key("max_attempts"), "must be between 1 and 10");
    }
    if a.timeout.is_zero() {
        e.add(key("timeout"), "must be more than 0s");
    }
    if a.chunk_timeout.is_zero() {
        e.add(key("chunk_timeout"), "must be more than 0s");
    }
    if a.temperature.is_some_and(|t| !(0.0..=2.0).contains(&t)) {
        e.add(key("temperature"), "must be between 0 and 2");
    }
}

/// The apps' ids.
fn apps<'a>(c: &'a Config, e: &mut Errors) -> HashSet<&'a str> {
    let ids = unique_ids(c.apps.iter().map(|a| a.id.as_str()), "apps", e);
    for (i, a) in c.apps.iter().enumerate() {
        if a.id.is_empty()
            || !a
                .id
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
        {
            e.add(
                format!("apps[{i}].id"),
                "must be letters, digits, '-' or '_' (it is part of the webhook URL)",
            );
        }
        if a.app_secret.is_empty() {
            e.add(format!("apps[{i}].app_secret"), "must not be empty");
        }
        if a.verify_token.is_empty() {
            e.add(format!("apps[{i}].verify_token"), "must not be empty");
        }
        if a.meta_app_id
            .as_ref()
            .is_some_and(|id| id.trim().parse::<u64>().is_err())
        {
            e.add(
                format!("apps[{i}].meta_app_id"),
                "must be the app's numeric id at Meta",
            );
        }
    }
    ids
}

fn integrations(
    c: &Config,
    assistants: &HashSet<&str>,
    apps: &HashSet<&str>,
    tenants: &HashSet<&str>,
    e: &mut Errors,
) {
    unique_ids(
        c.integrations.iter().map(|t| t.id.as_str()),
        "integrations",
        e,
    );
    let mut accounts = HashSet::new();
    for (i, g) in c.integrations.iter().enumerate() {
        let key = |f: &str| format!("integrations[{i}].{f}");
        if g.id.is_empty() || g.id.contains(':') {
            e.add(key("id"), "must be non-empty and must not contain ':' (conversation ids are {integration}:{customer})");
        }
        if !tenants.contains(g.tenant.as_str()) {
            e.add(
                key("tenant"),
                &format!("no tenant with id \"{}\"", g.tenant),
            );
        }
        let meta = g.channel.is_meta();
        if meta && !apps.contains(g.app.as_str()) {
            e.add(key("app"), &format!("no app with id \"{}\"", g.app));
        }
        if !assistants.contains(g.assistant.as_str()) {
            e.add(
                key("assistant"),
                &format!("no assistant with id \"{}\"", g.assistant),
            );
        }
        // An assistant that belongs to a tenant (its knowledge base is that
        // tenant's) answers for that tenant only.
        if let Some(owner) = c
            .assistant(&g.assistant)
            .and_then(|a| a.tenant.as_deref())
            .filter(|t| *t != g.tenant)
        {
            e.add(
                key("assistant"),
                &format!(
                    "assistant \"{}\" belongs to tenant \"{owner}\", not \"{}\"",
                    g.assistant, g.tenant
                ),
            );
        }
        if crate::channels::platform::platform(g.channel).is_none() {
            e.add(
                key("channel"),
                "only \"messenger\", \"instagram\", \"whatsapp\", \"gmail\" and \"web\" are supported by this build",
            );
        }
        if g.send_rate_per_second.is_some_and(|r| r == 0 || r > 10_000) {
            e.add(key("send_rate_per_second"), "must be between 1 and 10000");
        }
        if g.whatsapp_template.is_some() && g.channel != ChannelKind::Whatsapp {
            e.add(key("whatsapp_template"), "is a WhatsApp setting");
        }
        if g.channel == ChannelKind::Web {
            // No account: the widget's socket names the integration.
        } else if g.account_id.trim().is_empty() {
            e.add(key("account_id"), "must not be empty");
        } else if !accounts.insert((g.app.clone(), account_key(g))) {
            e.add(
                key("account_id"),
                "another integration of the same app has this account",
            );
        }
        if meta && g.access_token.is_empty() {
            e.add(key("access_token"), "must not be empty");
        }
        gmail_keys(g, &key, e);
        web_keys(g, &key, e);
        let limit = crate::channels::platform::text_limit(g.channel);
        if g.max_message_length.is_some_and(|l| l == 0 || l > limit) {
            e.add(
                key("max_message_length"),
                &format!("must be between 1 and {limit} for this channel"),
            );
        }
        if g.rate_limit_per_minute == 0 {
            e.add(key("rate_limit_per_minute"), "must be at least 1");
        }
        integration_timing(g, &key, e);
        integration_texts(g, &key, e);
    }
}

fn unique_ids<'a>(
    ids: impl Iterator<Item = &'a str>,
    list: &str,
    e: &mut Errors,
) -> HashSet<&'a str> {
    let mut seen = HashSet::new();
    for (i, id) in ids.enumerate() {
        if !seen.insert(id) {
            e.add(format!("{list}[{i}].id"), &format!("duplicate id \"{id}\""));
        }
    }
    seen
}

/// The account as two integrations must not share it: a mailbox's address
/// in any case (Gmail's addresses are not case-sensitive).
fn account_key(g: &crate::config::IntegrationConfig) -> String {
    if g.channel == ChannelKind::Gmail {
        g.account_id.trim().to_ascii_lowercase()
    } else {
        g.account_id.clone()
    }
}
