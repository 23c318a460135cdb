//! One integration-test binary: the engine run in-process or as the real
//! binary against the Graph API simulator on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin;
mod alerts;
mod assistant;
mod browser;
mod bus_conformance;
mod channels;
mod connect;
mod console;
mod cql_server;
mod crash;
mod delivery;
mod durability;
mod failover;
mod gmail;
mod harness;
mod integrations;
mod kafka;
mod knowledge;
mod layers;
mod model_client;
mod prometheus;
mod secrets;
mod store_conformance;
mod store_upgrade;
mod supervision;
mod support;
mod takeover;
mod tenants;
mod under_load;
mod web;
mod webhooks;
