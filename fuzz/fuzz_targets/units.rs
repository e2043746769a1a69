//! Size and duration parsing.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = hookguard::config::units::parse_size(text);
    let _ = hookguard::config::units::parse_duration(text);
});
