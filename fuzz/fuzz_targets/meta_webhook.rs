//! A Meta webhook body: the envelope, then every entry and item of
//! Messenger, Instagram (messages and comments) and WhatsApp. Never a
//! panic; whatever parses counts its events.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(parsed) = switchboard::channels::webhook::parse(data, 1_700_000_000_000) {
        let _ = parsed.event_count();
    }
});
