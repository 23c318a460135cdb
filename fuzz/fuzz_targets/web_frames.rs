//! A website chat frame from a browser, and the visitor and signed-in user
//! identities a hello carries.
#![no_main]
use libfuzzer_sys::fuzz_target;
use switchboard::channels::web::{frames, identity};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = serde_json::from_str::<frames::ClientFrame>(text);
    let _ = frames::valid_client_id(text);
    let _ = identity::visitor_customer("shop-web", text);
    let mid = (0..=text.len() / 2)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    let (user, hash) = text.split_at(mid);
    let _ = identity::user_customer("a-secret-of-at-least-32-characters!!", user, hash);
});
