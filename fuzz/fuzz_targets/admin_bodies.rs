//! The admin API's JSON bodies, read as their routes read them.
#![no_main]
use libfuzzer_sys::fuzz_target;
use switchboard::admin::bodies;

fuzz_target!(|data: &[u8]| {
    let _ = bodies::takeover(data);
    let _ = bodies::message(data);
    let _ = bodies::integration(data);
    let _ = bodies::integration_patch(data);
    let _ = bodies::link(data);
    let _ = bodies::document(data);
});
