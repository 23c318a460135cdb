//! A Google Pub/Sub push body for a Gmail integration: the envelope, its
//! base64 data and the mailbox notification in it.
#![no_main]
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use switchboard::config::IntegrationConfig;

fn integration() -> &'static IntegrationConfig {
    static I: OnceLock<IntegrationConfig> = OnceLock::new();
    I.get_or_init(|| {
        serde_json::from_value(serde_json::json!({
            "id": "shop-mail", "tenant": "shop", "channel": "gmail",
            "account_id": "help@shop.example", "assistant": "support",
            "push_subscription": "projects/p/subscriptions/gmail"
        }))
        .unwrap_or_else(|e| panic!("the fuzz target's integration: {e}"))
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = switchboard::channels::gmail::push::notification(data, integration());
});
