//! kassandra, an in-memory single-node CQL server (protocol v4), on
//! 127.0.0.1 for the rest of this process: the scylla store's stand-in
//! where no ScyllaDB can run (the tests and the store bench share it).

use std::net::SocketAddr;
use std::sync::OnceLock;

use switchboard::config::ScyllaConfig;
use switchboard::store::scylla;

/// The server's address, started on first use (`None` if it cannot start).
pub fn kassandra() -> Option<SocketAddr> {
    static ADDR: OnceLock<Option<SocketAddr>> = OnceLock::new();
    *ADDR.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                let session = kassandra_tester::kassandra::KassandraSession::new();
                let _ = kassandra_tester::KassandraTester::new(session)
                    .in_scope(|addr| {
                        let tx = tx.clone();
                        async move {
                            let _ = tx.send(addr);
                            std::future::pending::<Result<(), ()>>().await
                        }
                    })
                    .await;
            });
        });
        rx.recv().ok()
    })
}

/// The schema without the analytics table: kassandra has no counter
/// type (the server stops at one). The schema itself is not changed.
pub fn schema_for_kassandra(config: &ScyllaConfig) -> Vec<String> {
    scylla::schema_statements(config)
        .into_iter()
        .filter(|cql| !cql.contains(" counter"))
        // No ALTER TABLE either (the message log's time to live).
        .filter(|cql| !cql.starts_with("ALTER TABLE"))
        .collect()
}
