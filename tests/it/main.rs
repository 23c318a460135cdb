//! One integration-test binary: the engine run in-process or as the real
//! binary against a fake Graph API on 127.0.0.1.

mod crash;
mod support;
mod webhooks;
