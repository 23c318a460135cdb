//! The schema (`schema.cql`), applied idempotently at start and by
//! `switchboard migrate`.

use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use std::time::Duration;

use crate::config::ScyllaConfig;
use crate::store::StoreError;

/// The schema, with `{keyspace}` and `{replication}` to fill in.
pub const SCHEMA: &str = include_str!("../schema.cql");

/// The schema's statements for `config`, in order; with a message time to
/// live, the message log's default TTL is set to it (every write of a line,
/// its status updates included, then expires with it).
pub fn schema_statements(config: &ScyllaConfig) -> Vec<String> {
    let mut statements = table_statements(config);
    for (table, ttl) in [
        ("messages", config.message_ttl),
        ("dead_letters", config.dead_letter_ttl),
    ] {
        if let Some(ttl) = ttl {
            statements.push(format!(
                "ALTER TABLE {}.{table} WITH default_time_to_live = {}",
                config.keyspace,
                ttl.as_secs().clamp(1, 630_720_000)
            ));
        }
    }
    statements
}

fn table_statements(config: &ScyllaConfig) -> Vec<String> {
    SCHEMA
        .replace("{keyspace}", &config.keyspace)
        .replace("{replication}", &config.replication)
        .split("\n;")
        .map(|s| {
            s.lines()
                .filter(|l| !l.trim_start().starts_with("--"))
                .collect::<Vec<_>>()
                .join("\n")
                .trim()
                .to_string()
        })
        .filter(|s| !s.is_empty())
        .collect()
}

/// Connects to the cluster.
pub(super) async fn connect(config: &ScyllaConfig) -> Result<Session, StoreError> {
    SessionBuilder::new()
        .known_nodes(&config.nodes)
        .connection_timeout(Duration::from_millis(config.request_timeout_ms.max(1_000)))
        .auto_await_schema_agreement(config.await_schema_agreement)
        .build()
        .await
        .map_err(|e| StoreError::Unavailable(format!("cannot connect to ScyllaDB: {e}")))
}

/// Applies the schema (every statement `IF NOT EXISTS`), then upgrades
/// what an earlier release wrote (once).
pub async fn migrate(config: &ScyllaConfig) -> Result<usize, StoreError> {
    let session = connect(config).await?;
    let statements = schema_statements(config);
    let applied = apply_schema(&session, &statements).await?;
    super::upgrade::upgrade(&session, &config.keyspace).await?;
    Ok(applied)
}

/// Upgrades what an earlier release wrote in a keyspace whose schema is
/// applied (what [`migrate`] does after the schema).
pub async fn upgrade(config: &ScyllaConfig) -> Result<super::Upgraded, StoreError> {
    let session = connect(config).await?;
    super::upgrade::upgrade(&session, &config.keyspace).await
}

/// Applies these schema statements, in order.
pub async fn apply_statements(
    config: &ScyllaConfig,
    statements: &[String],
) -> Result<usize, StoreError> {
    let session = connect(config).await?;
    apply_schema(&session, statements).await
}

pub(super) async fn apply_schema(
    session: &Session,
    statements: &[String],
) -> Result<usize, StoreError> {
    for cql in statements {
        session
            .query_unpaged(cql.as_str(), ())
            .await
            .map_err(|e| StoreError::Unavailable(format!("schema: {e}")))?;
    }
    Ok(statements.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_log_expires_with_the_retention() {
        let mut config = ScyllaConfig {
            nodes: vec![],
            keyspace: "ks".into(),
            replication: "{}".into(),
            request_timeout_ms: 1000,
            await_schema_agreement: false,
            apply_schema: true,
            message_ttl: None,
            dead_letter_ttl: None,
        };
        assert!(!schema_statements(&config)
            .iter()
            .any(|s| s.contains("default_time_to_live")));
        config.message_ttl = Some(Duration::from_secs(90 * 86_400));
        let last = schema_statements(&config).pop().unwrap_or_default();
        assert_eq!(
            last,
            "ALTER TABLE ks.messages WITH default_time_to_live = 7776000"
        );
    }
}
