//! `hookguard verify`'s parser of captured raw requests.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|raw: &[u8]| {
    let _ = hookguard::cli::verify::parse(raw);
});
