//! Configuration: the TOML surface of the README, loaded in layers
//! (compiled-in defaults < file < `SWITCHBOARD__` environment) and then
//! validated as a whole, so every mistake is reported at once with its key.

mod alerts;
mod assistant;
mod connect;
mod durations;
mod google;
mod integration;
mod load;
mod secret;
mod validate;

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use alerts::AlertsConfig;
pub use assistant::{AssistantConfig, AssistantKind, OnFailure, OnNoMatch, RuleConfig};
pub use connect::ConnectConfig;
use durations::off_or_duration;
pub use durations::off_or_duration_text;
pub use google::GoogleConfig;
pub use integration::{ChannelKind, IntegrationConfig};
pub use load::{load, load_from_str, ConfigError, ConfigSource};
pub use secret::Secret;
pub use validate::{listens_on_loopback_only, validate, weak_secrets, MIN_ADMIN_TOKEN};

/// The whole engine configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub admin: AdminConfig,
    pub bus: BusConfig,
    pub store: StoreConfig,
    pub meta: MetaConfig,
    pub engine: EngineConfig,
    pub outbound: OutboundConfig,
    pub alerts: AlertsConfig,
    pub connect: ConnectConfig,
    pub google: GoogleConfig,
    #[serde(default)]
    pub assistants: Vec<AssistantConfig>,
    #[serde(default)]
    pub apps: Vec<AppConfig>,
    #[serde(default)]
    pub tenants: Vec<TenantConfig>,
    #[serde(default)]
    pub integrations: Vec<IntegrationConfig>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub listen: String,
    pub metrics_listen: String,
    pub max_body_bytes: usize,
    /// Requests handled at once on `listen`; more are shed with 503.
    pub max_concurrent_requests: usize,
    /// A request taking longer (its body included) gets 408.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Webhooks get 503 (`Retry-After`) while more events than this wait
    /// on the bus for the engine...
    pub max_backlog_events: u64,
    /// ... or while the oldest has waited longer than this.
    #[serde(with = "humantime_serde")]
    pub max_backlog_age: Duration,
    /// Web chat: sockets opened, and messages sent, per client IP address
    /// and minute, at most (each).
    pub web_per_ip_per_minute: u32,
    /// Web chat: sockets open at once from one client address, at most.
    pub web_sockets_per_ip: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    pub token: Secret,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BusKind {
    Embedded,
    Kafka,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusConfig {
    pub kind: BusKind,
    /// The embedded bus starts a group append (one write, one sync for
    /// every webhook waiting) no sooner than this after the previous one.
    #[serde(with = "humantime_serde")]
    pub group_commit_delay: Duration,
    pub kafka: KafkaConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    pub brokers: String,
    pub topic: String,
    pub group_id: String,
    /// Partitions the topic is created with (when missing).
    pub partitions: u32,
    pub replication_factor: u32,
    /// `group.instance.id` (static membership); empty: dynamic membership.
    pub instance_id: String,
    pub linger_ms: u64,
    /// How long a publish may wait for the brokers before the webhook gets
    /// 503 (`message.timeout.ms`).
    pub publish_timeout_ms: u64,
    pub session_timeout_ms: u64,
    /// How long a consumer fetch may wait for records (latency floor on
    /// brokers that wait out the maximum).
    pub fetch_wait_max_ms: u64,
    /// `partition.assignment.strategy`: `cooperative-sticky` (only the
    /// partitions that move stop), or the eager `roundrobin` / `range`.
    pub assignment_strategy: String,
    /// `max.poll.interval.ms`, which is also the rebalance timeout: how
    /// long the group coordinator waits for members to rejoin.
    pub max_poll_interval_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    Embedded,
    Scylla,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    pub kind: StoreKind,
    pub path: PathBuf,
    /// Page cache of the embedded store, in MiB.
    pub cache_mb: usize,
    /// The embedded store's threads for flushes and compactions (0: the
    /// store engine's default, one per core up to 4).
    pub background_threads: usize,
    /// Message-log lines older than this are deleted.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// Dead letters older than this are deleted.
    #[serde(with = "humantime_serde")]
    pub dead_letter_retention: Duration,
    /// Audit entries older than this are deleted.
    #[serde(with = "humantime_serde")]
    pub audit_retention: Duration,
    /// When the embedded store's writes reach the disk: with every group
    /// commit, or at `sync_interval`.
    pub durability: Durability,
    /// How often the embedded store syncs in `interval` durability.
    #[serde(with = "humantime_serde")]
    pub sync_interval: Duration,
    /// The embedded store starts a group commit no sooner than this after
    /// the previous one.
    #[serde(with = "humantime_serde")]
    pub group_commit_delay: Duration,
    pub scylla: ScyllaConfig,
}

/// When the embedded store's writes reach the disk. The bus is fsynced
/// before every acknowledgement in both modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// Every group commit is fsynced before the turn goes on.
    Sync,
    /// Group commits are fsynced every `store.sync_interval`; an event is
    /// committed on the bus only once the store has synced its turn, so a
    /// crash replays (never loses) what the store had not synced.
    Interval,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScyllaConfig {
    pub nodes: Vec<String>,
    pub keyspace: String,
    /// The keyspace's replication, as CQL (used when it is created).
    pub replication: String,
    /// Per-request timeout (the driver retries idempotent writes within it).
    pub request_timeout_ms: u64,
    /// Wait for schema agreement after schema changes (turn off only for
    /// single-node test servers that do not report it).
    pub await_schema_agreement: bool,
    /// Apply the schema when the engine starts; off when a deploy step runs
    /// `switchboard migrate` instead.
    pub apply_schema: bool,
    /// How long message-log lines live (`store.retention`, set by the
    /// engine; none: for ever).
    #[serde(skip)]
    pub message_ttl: Option<Duration>,
    /// How long dead letters live (`store.dead_letter_retention`, set by
    /// the engine; none: for ever).
    #[serde(skip)]
    pub dead_letter_ttl: Option<Duration>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetaConfig {
    pub graph_base_url: String,
}

/// Conversation-engine tuning (not part of the fixed surface; documented in
/// the README).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    /// Idle time after which a conversation actor is stopped (its state is
    /// already persisted) and rehydrated on its next event.
    #[serde(with = "humantime_serde")]
    pub passivate_after: Duration,
    /// How often `typing_on` is re-sent while a reply is prepared.
    #[serde(with = "humantime_serde")]
    pub typing_refresh: Duration,
    /// Crashes of its actor after which an event goes to the dead letters.
    pub max_event_attempts: u32,
    /// Upper bound of the restart backoff of a crashing actor.
    #[serde(with = "humantime_serde")]
    pub restart_backoff_max: Duration,
    /// Events taken from the bus and not yet finished, at most.
    pub max_inflight_events: usize,
    /// How long a graceful shutdown waits for events in flight.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// How often the store is asked whether integrations changed on
    /// another instance.
    #[serde(with = "humantime_serde")]
    pub integrations_poll: Duration,
}

/// Platform API call policy (one retry policy for every channel).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboundConfig {
    pub max_attempts: u32,
    #[serde(with = "humantime_serde")]
    pub backoff_initial: Duration,
    #[serde(with = "humantime_serde")]
    pub backoff_max: Duration,
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// After the attempts are spent on a retryable error, the reply waits
    /// this long in the outbox and is tried again.
    #[serde(with = "humantime_serde")]
    pub retry_later: Duration,
    /// How long a part whose send may have reached the platform (its
    /// answer was lost, or a restart found it) waits for its echo or
    /// status before it is sent again.
    #[serde(with = "humantime_serde")]
    pub confirm_wait: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    pub id: String,
    pub app_secret: Secret,
    pub verify_token: Secret,
    /// The app's numeric id at Meta: an echo whose `app_id` is this one was
    /// sent by this engine (an echo without a part id, too, is then not
    /// taken for a person answering).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta_app_id: Option<String>,
}

impl AppConfig {
    /// Whether an echo's `app_id` names this app.
    pub fn sent_by_this_app(&self, app_id: Option<u64>) -> bool {
        match (&self.meta_app_id, app_id) {
            (Some(mine), Some(theirs)) => mine.trim().parse::<u64>() == Ok(theirs),
            _ => false,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    pub id: String,
    /// This tenant's backend; `store.kind` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<StoreKind>,
}

/// Fixed delay or a `[min, max]` range drawn uniformly per reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ResponseDelay {
    Fixed(u64),
    Range([u64; 2]),
}

impl Default for ResponseDelay {
    fn default() -> Self {
        Self::Fixed(0)
    }
}

impl ResponseDelay {
    /// The delay to apply to one reply.
    pub fn draw(&self) -> Duration {
        match *self {
            Self::Fixed(ms) => Duration::from_millis(ms),
            Self::Range([lo, hi]) if hi > lo => Duration::from_millis(rand::random_range(lo..=hi)),
            Self::Range([lo, _]) => Duration::from_millis(lo),
        }
    }
}

impl Config {
    pub fn app(&self, id: &str) -> Option<&AppConfig> {
        self.apps.iter().find(|a| a.id == id)
    }
    pub fn integration(&self, id: &str) -> Option<&IntegrationConfig> {
        self.integrations.iter().find(|i| i.id == id)
    }
    pub fn assistant(&self, id: &str) -> Option<&AssistantConfig> {
        self.assistants.iter().find(|a| a.id == id)
    }

    /// The effective configuration as TOML, every secret redacted.
    pub fn to_redacted_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render config: {e}\n"))
    }
}

impl Config {
    /// The backend that keeps `tenant`'s conversations.
    pub fn store_of(&self, tenant: &str) -> StoreKind {
        self.tenants
            .iter()
            .find(|t| t.id == tenant)
            .and_then(|t| t.store)
            .unwrap_or(self.store.kind)
    }
}

impl StoreConfig {
    /// The embedded store's page cache in bytes.
    pub fn cache_bytes(&self) -> usize {
        self.cache_mb.saturating_mul(1 << 20)
    }
}
