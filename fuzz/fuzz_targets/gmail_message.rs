//! A Gmail API message (`format=full`): headers, MIME parts with base64url
//! bodies, HTML, attachments; then what the engine reads of it (its kind,
//! the sender's address, the text without quoted history).
#![no_main]
use libfuzzer_sys::fuzz_target;
use switchboard::channels::gmail::email::{self, Email, GmailMessage};

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = serde_json::from_slice::<GmailMessage>(data) {
        let email = Email::read(&message);
        let _ = email.kind("help@shop.example");
        if let Some(from) = email.header("From") {
            let _ = email::parse_address(from);
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = email::trim_quoted(text);
        let _ = email::decode_base64(text);
    }
});
