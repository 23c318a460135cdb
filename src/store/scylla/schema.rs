//! The schema (`schema.cql`), applied idempotently at start and by
//! `switchboard migrate`.

use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use std::time::Duration;

use crate::config::ScyllaConfig;
use crate::store::StoreError;

/// The schema, with `{keyspace}` and `{replication}` to fill in.
pub const SCHEMA: &str = include_str!("../schema.cql");

/// The schema's statements for `config`, in order.
pub fn schema_statements(config: &ScyllaConfig) -> Vec<String> {
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

/// Applies the schema (every statement `IF NOT EXISTS`).
pub async fn migrate(config: &ScyllaConfig) -> Result<usize, StoreError> {
    apply_statements(config, &schema_statements(config)).await
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
