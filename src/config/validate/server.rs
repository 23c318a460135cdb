//! The `[server]` section: listen addresses and the listener's limits.

use std::net::SocketAddr;

use super::{positive, Config, Errors};

pub(super) fn server(c: &Config, e: &mut Errors) {
    let server = &c.server;
    for (key, value) in [
        ("listen", &server.listen),
        ("metrics_listen", &server.metrics_listen),
    ] {
        if value.parse::<SocketAddr>().is_err() {
            e.add(
                format!("server.{key}"),
                "must be an address like 127.0.0.1:8080",
            );
        }
    }
    if server.max_body_bytes == 0 || server.max_body_bytes > 100 * 1024 * 1024 {
        e.add("server.max_body_bytes", "must be between 1 and 104857600");
    }
    let requests = server.max_concurrent_requests as u64;
    for (key, value) in [
        ("max_concurrent_requests", requests),
        ("web_per_ip_per_minute", server.web_per_ip_per_minute.into()),
        ("web_sockets_per_ip", server.web_sockets_per_ip.into()),
        ("max_backlog_events", server.max_backlog_events),
    ] {
        if value == 0 {
            e.add(format!("server.{key}"), "must be at least 1");
        }
    }
    positive(e, "server.request_timeout", c.server.request_timeout);
    positive(e, "server.max_backlog_age", c.server.max_backlog_age);
    let base = &c.meta.graph_base_url;
    if !(base.starts_with("http://") || base.starts_with("https://")) || base.len() < 10 {
        e.add("meta.graph_base_url", "must be an http:// or https:// URL");
    }
}
