//! Signature and timestamp headers as senders put them on the wire, through
//! the real verifiers of a generic HMAC route (prefixes, signature lists, hex
//! and base64, timestamps) and of every symmetric preset: any input is
//! refused or accepted, never a panic.
#![no_main]

use std::sync::OnceLock;

use bytes::Bytes;
use hookguard::config::Config;
use hookguard::schemes::registry::{Family, KeyKind, SCHEMES};
use hookguard::schemes::RequestView;
use libfuzzer_sys::fuzz_target;

fn routes() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let text = r#"
            [server]
            upstream = "http://127.0.0.1:1"
            [[routes]]
            name = "hex"
            path = "/hex"
            scheme = "hmac"
            secrets = [{ value = "a" }, { value = "b" }]
            hmac = { header = "X-Sig", prefix = "sha256=", message = "{id}.{timestamp}.{body}", timestamp_header = "X-Ts", timestamp_unit = "ms", id_header = "X-Id" }
            [[routes]]
            name = "b64"
            path = "/b64"
            scheme = "hmac"
            secrets = [{ value = "a" }]
            hmac = { header = "X-Sig", algorithm = "sha1", encoding = "base64", message = "{method}{path}{header:X-Id}{body}" }
        "#;
        let mut text = text.to_owned();
        let presets = SCHEMES
            .iter()
            .filter(|s| s.keys == KeyKind::Secrets && !matches!(s.family, Family::Generic));
        for scheme in presets {
            let mut extra = String::new();
            if scheme.signs_url {
                extra.push_str("public_url = \"https://example.com/hook\"\n");
            }
            if scheme.needs_verify_token {
                extra.push_str("verify_token = { value = \"token\" }\n");
            }
            let name = scheme.name;
            let secret = scheme.sample_secret().expect("shared-secret schemes have one");
            text.push_str(&format!(
                "[[routes]]\nname = \"{name}\"\npath = \"/{name}\"\nscheme = \"{name}\"\nsecrets = [{{ value = \"{secret}\" }}]\n{extra}"
            ));
        }
        Config::from_toml(&text, &|_: &str| None::<String>).expect("the fuzz config is valid")
    })
}

/// Where those read signatures, timestamps and ids.
const SIGNATURE_HEADERS: &[&str] = &[
    "x-sig",
    "stripe-signature",
    "x-hub-signature-256",
    "x-hub-signature",
    "x-slack-signature",
    "x-shopify-hmac-sha256",
    "webhook-signature",
    "svix-signature",
    "x-twilio-signature",
    "paddle-signature",
    "x-square-hmacsha256-signature",
    "x-hubspot-signature-v3",
    "x-zm-signature",
    "calendly-webhook-signature",
    "typeform-signature",
    "linear-signature",
    "x-gitlab-token",
    // The list shapes and multi-header sources of issue 17.
    "recurly-signature",
    "persona-signature",
    "workos-signature",
    "sanity-webhook-signature",
    "box-signature-primary",
    "box-signature-secondary",
    "x-docusign-signature-1",
    "x-docusign-signature-2",
    "twitch-eventsub-message-signature",
    "x-zendesk-webhook-signature",
    "x-payload-digest",
    "x-payload-digest-alg",
    "x-plivo-signature-v3",
    "x-contentful-signature",
    "x-contentful-signed-headers",
    "authorization",
];
const TIMESTAMP_HEADERS: &[&str] = &[
    "x-ts",
    "x-slack-request-timestamp",
    "webhook-timestamp",
    "svix-timestamp",
    "x-hubspot-request-timestamp",
    "x-zm-request-timestamp",
    "twitch-eventsub-message-timestamp",
    "x-zendesk-webhook-signature-timestamp",
    "box-delivery-timestamp",
    "x-orb-timestamp",
    "x-contentful-timestamp",
    "x-plivo-signature-v3-nonce",
];
const ID_HEADERS: &[&str] = &["x-id", "webhook-id", "svix-id"];

fuzz_target!(|input: (&[u8], &[u8], &[u8], &[u8])| {
    let (signature, timestamp, id, body) = input;
    let mut headers = http::HeaderMap::new();
    for (names, value) in [
        (SIGNATURE_HEADERS, signature),
        (TIMESTAMP_HEADERS, timestamp),
        (ID_HEADERS, id),
    ] {
        if let Ok(value) = http::HeaderValue::from_bytes(value) {
            for name in names {
                headers.insert(*name, value.clone());
            }
        }
    }
    let body = Bytes::copy_from_slice(body);
    let uri = http::Uri::from_static("/hex?q=1");
    let view = RequestView {
        method: &http::Method::POST,
        uri: &uri,
        headers: &headers,
        body: &body,
    };
    for route in &routes().routes {
        let _ = route.scheme.verify(&view);
        let _ = route.scheme.signed_message(&view);
    }
});
