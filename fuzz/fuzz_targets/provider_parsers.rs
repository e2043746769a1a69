//! The presets' own parsers of untrusted input: key-value signature lists
//! (Stripe, Paddle, Calendly), versioned lists (Standard Webhooks), JWS
//! tokens (Tochka), Twilio's form canonicaliser and URL variants, T-Bank's
//! canonical string, and public keys as configured.
#![no_main]

use hookguard::schemes::{asymmetric, hmac, jwt, tbank, twilio};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&str, &[u8])| {
    let (text, bytes) = input;
    for separator in [',', ';'] {
        for (key, value) in hmac::parse_kv_list(text, separator) {
            assert!(text.contains(key) && text.contains(value));
        }
    }
    let _ = hmac::parse_versioned(text, "v1");
    let _ = jwt::parse(text);
    let _ = jwt::parse_rsa(bytes);
    let _ = asymmetric::parse_ed25519(bytes);
    let _ = asymmetric::parse_p256(bytes);
    let _ = twilio::canonical_params(bytes);
    let _ = twilio::url_variants(text);
    if let Ok(serde_json::Value::Object(doc)) = serde_json::from_slice::<serde_json::Value>(bytes) {
        let _ = tbank::canonical(&doc, "password");
    }
});
