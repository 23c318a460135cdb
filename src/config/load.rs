//! Layered loading: compiled-in defaults < config file < `SWITCHBOARD__`
//! environment variables.
//!
//! Scalars and tables are overridden the figment way
//! (`SWITCHBOARD__SERVER__LISTEN` sets `server.listen`). Entries of the
//! `[[apps]]` and `[[integrations]]` arrays are addressed by their id:
//! `SWITCHBOARD__APPS__<ID>__APP_SECRET`, `SWITCHBOARD__APPS__<ID>__VERIFY_TOKEN`,
//! `SWITCHBOARD__INTEGRATIONS__<ID>__ACCESS_TOKEN` (and Gmail's
//! `__OAUTH_CLIENT_SECRET`, `__REFRESH_TOKEN`) and
//! `SWITCHBOARD__ADMIN__TOKEN`, with the id upper-cased and `-` written `_`.

use std::path::{Path, PathBuf};

use figment::providers::{Format, Toml};
use figment::Figment;

use super::{validate, Config, Secret};

const DEFAULTS: &str = include_str!("../../config/default.toml");
const ENV_PREFIX: &str = "SWITCHBOARD__";

/// Where the config file came from.
#[derive(Debug, Clone)]
pub enum ConfigSource {
    /// `--config FILE`, `$SWITCHBOARD_CONFIG` or `config/switchboard.toml`.
    File(PathBuf),
    /// No file: defaults and environment only.
    DefaultsOnly,
}

/// Why a configuration cannot be used. `Display` lists every problem, one
/// per line, each with its key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("invalid configuration:\n{}", .0.iter().map(|e| format!("  - {e}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<String>),
}

/// Loads and validates the configuration from `source` and the process
/// environment.
pub fn load(source: &ConfigSource) -> Result<Config, ConfigError> {
    let file_text = match source {
        ConfigSource::File(path) => Some(read(path)?),
        ConfigSource::DefaultsOnly => None,
    };
    let env: Vec<(String, String)> = std::env::vars().collect();
    build(file_text.as_deref(), &env)
}

/// Loads from TOML text and an explicit environment (tests, the demo).
pub fn load_from_str(toml_text: &str, env: &[(String, String)]) -> Result<Config, ConfigError> {
    build(Some(toml_text), env)
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

fn is_array_override(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["apps__", "integrations__", "assistants__", "tenants__"]
        .iter()
        .any(|p| k.starts_with(p))
}

/// A TOML syntax error, by place only: the parser's own message quotes
/// the line, which may hold a secret.
fn check_syntax(text: &str) -> Result<(), ConfigError> {
    let Err(e) = toml::from_str::<toml::Table>(text) else {
        return Ok(());
    };
    let at = e.span().map_or(0, |s| s.start).min(text.len());
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    Err(ConfigError::Invalid(vec![format!(
        "config file: not valid TOML at line {line}, column {column}: {}",
        e.message()
    )]))
}

fn build(file_text: Option<&str>, env: &[(String, String)]) -> Result<Config, ConfigError> {
    let mut figment = Figment::from(Toml::string(DEFAULTS));
    if let Some(text) = file_text {
        check_syntax(text)?;
        figment = figment.merge(Toml::string(text));
    }
    // Environment overrides, taken from the given list (not read behind the
    // caller's back), so tests and the demo control them fully.
    for (k, v) in env {
        let Some(rest) = k.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        if rest.is_empty() || is_array_override(rest) {
            continue;
        }
        let path = rest.to_ascii_lowercase().replace("__", ".");
        // Secrets stay strings even when they look like numbers.
        let value: figment::value::Value = if path.ends_with("token") || path.ends_with("secret") {
            figment::value::Value::from(v.clone())
        } else {
            v.parse()
                .unwrap_or_else(|_| figment::value::Value::from(v.clone()))
        };
        figment = figment.merge((path, value));
    }
    let mut config: Config = figment.extract().map_err(|e| {
        ConfigError::Invalid(e.into_iter().map(|e| describe_figment_error(&e)).collect())
    })?;
    apply_array_overrides(&mut config, env);
    validate::validate(&config).map_err(ConfigError::Invalid)?;
    Ok(config)
}

fn describe_figment_error(e: &figment::Error) -> String {
    let key = if e.path.is_empty() {
        "config".to_string()
    } else {
        e.path.join(".")
    };
    format!("{key}: {}", e.kind)
}

fn env_id(id: &str) -> String {
    id.to_ascii_uppercase().replace('-', "_")
}

fn lookup(env: &[(String, String)], key: &str) -> Option<String> {
    env.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v.clone())
}

fn apply_array_overrides(config: &mut Config, env: &[(String, String)]) {
    for app in &mut config.apps {
        let base = format!("{ENV_PREFIX}APPS__{}__", env_id(&app.id));
        if let Some(v) = lookup(env, &format!("{base}APP_SECRET")) {
            app.app_secret = Secret::new(v);
        }
        if let Some(v) = lookup(env, &format!("{base}VERIFY_TOKEN")) {
            app.verify_token = Secret::new(v);
        }
    }
    for integration in &mut config.integrations {
        let base = format!("{ENV_PREFIX}INTEGRATIONS__{}__", env_id(&integration.id));
        for (name, secret) in [
            ("ACCESS_TOKEN", &mut integration.access_token),
            ("OAUTH_CLIENT_SECRET", &mut integration.oauth_client_secret),
            ("REFRESH_TOKEN", &mut integration.refresh_token),
            ("IDENTITY_SECRET", &mut integration.identity_secret),
        ] {
            if let Some(v) = lookup(env, &format!("{base}{name}")) {
                *secret = Secret::new(v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[[assistants]]
id = "support"
kind = "rules"
fallback = "Thanks!"
rules = [ { keywords = ["hours"], reply = "9-5" } ]

[[apps]]
id = "main"
app_secret = "file-secret"
verify_token = "vt"

[[tenants]]
id = "acme"

[[integrations]]
id = "acme-fb"
tenant = "acme"
channel = "messenger"
app = "main"
account_id = "111"
access_token = "tok"
assistant = "support"
"#;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn layers_defaults_file_and_env() {
        let cfg = load_from_str(
            MINIMAL,
            &env(&[
                ("SWITCHBOARD__SERVER__LISTEN", "127.0.0.1:9999"),
                ("SWITCHBOARD__APPS__MAIN__APP_SECRET", "env-secret"),
                (
                    "SWITCHBOARD__INTEGRATIONS__ACME_FB__ACCESS_TOKEN",
                    "env-token",
                ),
                ("OTHER__SERVER__LISTEN", "ignored"),
            ]),
        )
        .expect("valid");
        assert_eq!(cfg.server.listen, "127.0.0.1:9999");
        assert_eq!(cfg.server.max_body_bytes, 3_145_728);
        assert_eq!(cfg.apps[0].app_secret.expose(), "env-secret");
        assert_eq!(cfg.integrations[0].access_token.expose(), "env-token");
        assert_eq!(cfg.integrations[0].rate_limit_per_minute, 100);
    }

    #[test]
    fn every_error_is_reported_with_its_key() {
        let bad = MINIMAL
            .replace("app = \"main\"", "app = \"nope\"")
            .replace("access_token = \"tok\"", "access_token = \"\"")
            .replace("assistant = \"support\"", "assistant = \"ghost\"");
        let err = load_from_str(
            &bad,
            &env(&[
                ("SWITCHBOARD__SERVER__MAX_BODY_BYTES", "0"),
                ("SWITCHBOARD__SERVER__WEB_SOCKETS_PER_IP", "0"),
            ]),
        )
        .expect_err("invalid");
        let text = err.to_string();
        for needle in [
            "integrations[0].app",
            "integrations[0].access_token",
            "integrations[0].assistant",
            "server.max_body_bytes",
            "server.web_sockets_per_ip: must be at least 1",
        ] {
            assert!(text.contains(needle), "{needle} missing from:\n{text}");
        }
    }

    /// A mailbox connected twice (its address in two cases) would answer
    /// every email twice.
    #[test]
    fn one_mailbox_cannot_be_two_integrations() {
        let mailbox = |id: &str, address: &str| {
            format!(
                "\n[[integrations]]\nid = \"{id}\"\ntenant = \"acme\"\nchannel = \"gmail\"\n\
                 account_id = \"{address}\"\nassistant = \"support\"\n\
                 oauth_client_id = \"c.apps.googleusercontent.com\"\n\
                 oauth_client_secret = \"client-secret\"\nrefresh_token = \"refresh\"\n"
            )
        };
        let text = format!(
            "{MINIMAL}{}{}",
            mailbox("mail-1", "support@acme.example"),
            mailbox("mail-2", "Support@Acme.example")
        );
        let err = load_from_str(&text, &[]).expect_err("one mailbox twice");
        assert!(err.to_string().contains("has this account"), "{err}");
    }

    #[test]
    fn scylla_settings_are_checked_with_their_keys() {
        let ok =
            load_from_str(MINIMAL, &env(&[("SWITCHBOARD__STORE__KIND", "scylla")])).expect("valid");
        assert_eq!(ok.store.kind, crate::config::StoreKind::Scylla);
        let err = load_from_str(
            MINIMAL,
            &env(&[
                ("SWITCHBOARD__STORE__KIND", "scylla"),
                ("SWITCHBOARD__STORE__SCYLLA__NODES", "[]"),
                ("SWITCHBOARD__STORE__SCYLLA__KEYSPACE", "my-keyspace"),
                ("SWITCHBOARD__STORE__SCYLLA__REPLICATION", "three"),
                ("SWITCHBOARD__STORE__SCYLLA__REQUEST_TIMEOUT_MS", "5"),
            ]),
        )
        .expect_err("invalid");
        let text = err.to_string();
        for needle in [
            "store.scylla.nodes",
            "store.scylla.keyspace",
            "store.scylla.replication",
            "store.scylla.request_timeout_ms",
        ] {
            assert!(text.contains(needle), "{needle} missing from:\n{text}");
        }
    }

    #[test]
    fn kafka_settings_are_checked_with_their_keys() {
        let ok = load_from_str(
            MINIMAL,
            &env(&[
                ("SWITCHBOARD__BUS__KIND", "kafka"),
                ("SWITCHBOARD__BUS__KAFKA__PARTITIONS", "48"),
            ]),
        )
        .expect("valid");
        assert_eq!(ok.bus.kafka.partitions, 48);
        let err = load_from_str(
            MINIMAL,
            &env(&[
                ("SWITCHBOARD__BUS__KIND", "kafka"),
                ("SWITCHBOARD__BUS__KAFKA__BROKERS", " "),
                ("SWITCHBOARD__BUS__KAFKA__PARTITIONS", "0"),
                ("SWITCHBOARD__BUS__KAFKA__FETCH_WAIT_MAX_MS", "0"),
            ]),
        )
        .expect_err("invalid");
        let text = err.to_string();
        for needle in [
            "bus.kafka.brokers",
            "bus.kafka.partitions",
            "bus.kafka.fetch_wait_max_ms",
        ] {
            assert!(text.contains(needle), "{needle} missing from:\n{text}");
        }
    }

    #[test]
    fn retention_may_be_minutes_but_not_seconds() {
        let with = |r: &str| load_from_str(MINIMAL, &env(&[("SWITCHBOARD__STORE__RETENTION", r)]));
        let cfg = with("10m").expect("ten minutes is a retention");
        assert_eq!(cfg.store.retention, std::time::Duration::from_secs(600));
        let err = with("30s").expect_err("under a minute");
        assert!(err.to_string().contains("store.retention"), "{err}");
    }

    #[test]
    fn group_commit_delays_default_and_are_bounded() {
        let cfg = load_from_str(MINIMAL, &[]).expect("defaults load");
        assert_eq!(cfg.bus.group_commit_delay, std::time::Duration::ZERO);
        assert_eq!(cfg.store.group_commit_delay, std::time::Duration::ZERO);
        let err = load_from_str(
            MINIMAL,
            &env(&[
                ("SWITCHBOARD__BUS__GROUP_COMMIT_DELAY", "1s"),
                ("SWITCHBOARD__STORE__GROUP_COMMIT_DELAY", "101ms"),
            ]),
        )
        .expect_err("over 100ms");
        let text = err.to_string();
        assert!(text.contains("bus.group_commit_delay"), "{text}");
        assert!(text.contains("store.group_commit_delay"), "{text}");
    }

    #[test]
    fn store_background_threads_default_to_the_store_engines_and_are_bounded() {
        let cfg = load_from_str(MINIMAL, &[]).expect("defaults load");
        assert_eq!(cfg.store.background_threads, 0);
        let with = |n: &str| {
            load_from_str(
                MINIMAL,
                &env(&[("SWITCHBOARD__STORE__BACKGROUND_THREADS", n)]),
            )
        };
        assert_eq!(with("2").expect("two threads").store.background_threads, 2);
        let err = with("65").expect_err("over 64");
        assert!(
            err.to_string().contains("store.background_threads"),
            "{err}"
        );
    }

    #[test]
    fn unknown_keys_are_errors() {
        let err = load_from_str("[server]\nlisten_typo = \"x\"\n", &[]).expect_err("invalid");
        assert!(err.to_string().contains("listen_typo"), "{err}");
    }

    #[test]
    fn redacted_rendering_hides_secrets() {
        let cfg = load_from_str(MINIMAL, &[]).expect("valid");
        let text = cfg.to_redacted_toml();
        assert!(!text.contains("file-secret"));
        assert!(!text.contains("\"tok\""));
        assert!(text.contains("<redacted>"));
    }

    #[test]
    fn a_numeric_secret_is_a_secret_and_no_error_shows_one() {
        let numeric = MINIMAL.replace("access_token = \"tok\"", "access_token = 98765432109876");
        let cfg = load_from_str(&numeric, &[]).expect("a numeric token is a token");
        assert_eq!(cfg.integrations[0].access_token.expose(), "98765432109876");
        let wrong = MINIMAL.replace("access_token = \"tok\"", "access_token = [98765, 43210]");
        let err = load_from_str(&wrong, &[])
            .expect_err("a list is no token")
            .to_string();
        assert!(err.contains("access_token"), "{err}");
        assert!(!err.contains("98765") && !err.contains("43210"), "{err}");
    }

    #[test]
    fn a_syntax_error_is_placed_without_quoting_the_line() {
        let broken = MINIMAL.replace("access_token = \"tok\"", "access_token = 0123abc-secret");
        let err = load_from_str(&broken, &[])
            .expect_err("not TOML")
            .to_string();
        assert!(err.contains("not valid TOML at line"), "{err}");
        assert!(
            !err.contains("0123abc-secret") && !err.contains("abc-secret"),
            "{err}"
        );
    }
}
