//! The config loader: any text is a config or a list of readable errors.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(config) = switchboard::config::load_from_str(text, &[]) {
            let _ = config.to_redacted_toml();
        }
    }
});
