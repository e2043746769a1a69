//! Config loading: any text gives a config or a list of errors, never a
//! panic, and no error quotes a literal secret.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let env = |name: &str| (name.len() < 8).then(|| "fuzz-secret".to_owned());
    if let Err(errors) = hookguard::config::Config::from_toml(text, &env) {
        for error in &errors.0 {
            assert!(!error.message.contains("fuzz-secret"), "{error}");
        }
    }
});
