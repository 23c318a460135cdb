//! switchboard: an actor-based engine that runs AI customer conversations on
//! Meta's messaging platforms without losing, duplicating, reordering or
//! over-sending a message.
//!
//! The modules follow the pipeline: [`ingest`] verifies and splits webhooks,
//! [`bus`] makes them durable, [`conversation`] runs one actor per
//! conversation, [`assistant`] writes the answers (grounded in
//! [`knowledge`]), [`channels`] talks to the
//! platforms, [`store`] keeps the state.

pub mod admin;
pub mod alerts;
pub mod app;
pub mod assistant;
pub mod body;
pub mod bus;
pub mod channels;
pub mod clock;
pub mod config;
pub mod connect;
pub mod console;
pub mod conversation;
pub mod event;
pub mod fence;
pub mod ingest;
pub mod integrations;
pub mod knowledge;
pub mod refusals;
pub mod store;
pub mod sync;
pub mod telemetry;
pub mod tools;
