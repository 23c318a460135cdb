//! Tools beside the engine, built into the same binary: the Graph API
//! simulator (`switchboard sim`), the load harness (`switchboard loadgen`)
//! and the demo (`switchboard demo`). The engine never depends on them;
//! they drive it from the outside, as Meta and its customers would.

pub mod demo;
pub mod loadgen;
pub mod sim;
