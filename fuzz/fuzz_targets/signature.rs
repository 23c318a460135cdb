//! `X-Hub-Signature-256` over a body: any header is refused unless it is
//! the body's signature with the secret, which is always accepted.
#![no_main]
use libfuzzer_sys::fuzz_target;
use switchboard::channels::webhook::{sign, verify_signature};

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let (secret, rest) = rest.split_at((n as usize).min(rest.len()));
    let (header, body) = rest.split_at(rest.len() / 2);
    let header = String::from_utf8_lossy(header);
    let good = sign(secret, body);
    assert!(verify_signature(secret, body, Some(&good)));
    if verify_signature(secret, body, Some(&header)) {
        let hex = header.trim().strip_prefix("sha256=").unwrap_or_default();
        assert_eq!(hex.to_ascii_lowercase(), good["sha256=".len()..]);
    }
});
