//! Public-key presets (Discord Ed25519, SendGrid ECDSA P-256, Tochka RS256
//! JWS) with freshly generated key pairs, SendGrid's SDK vector, the
//! endpoint challenges (Slack, Zoom, Discord, Meta) through a real
//! hookguard, and the preset config errors.

use crate::support;

use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD};
use base64::Engine;
use bytes::Bytes;
use ed25519_dalek::Signer as _;
use hmac::{Hmac, Mac};
use http::{HeaderMap, Method, Uri};
use p256::pkcs8::EncodePublicKey;
use rand_core::OsRng;
use rsa::signature::SignatureEncoding;
use sha2::Sha256;
use support::{now, send, Hookguard, Upstream};

use hookguard::config::Config;
use hookguard::reject::Reason;
use hookguard::schemes::jwt::JwtScheme;
use hookguard::schemes::RequestView;

fn config_text(route: &str) -> String {
    format!(
        "[server]\nupstream = \"{{upstream}}\"\n\n[[routes]]\nname = \"p\"\npath = \"/hook\"\nmethods = [\"POST\", \"GET\"]\n{route}\n"
    )
}

async fn start(route: &str) -> (Upstream, Hookguard) {
    let upstream = Upstream::start().await;
    let hg = Hookguard::start(&config_text(route), &upstream.url()).await;
    (upstream, hg)
}

fn config_errors(route: &str) -> String {
    let text = config_text(route).replace("{upstream}", "http://127.0.0.1:9");
    match Config::from_toml(&text, &|_: &str| None::<String>) {
        Ok(_) => panic!("config unexpectedly valid"),
        Err(e) => e.to_string(),
    }
}

fn toml_string(text: &str) -> String {
    serde_json::to_string(text).unwrap()
}

#[tokio::test]
async fn discord_verifies_ed25519_from_a_fresh_key_pair() {
    let signing = ed25519_dalek::SigningKey::generate(&mut OsRng);
    let public = hex::encode(signing.verifying_key().as_bytes());
    let other = ed25519_dalek::SigningKey::generate(&mut OsRng);
    let (upstream, hg) = start(&format!(
        "scheme = \"discord\"\npublic_keys = [{{ id = \"app\", value = \"{public}\" }}]"
    ))
    .await;
    let sign = |key: &ed25519_dalek::SigningKey, ts: &str, body: &str| {
        let sig = key.sign(format!("{ts}{body}").as_bytes());
        vec![
            ("x-signature-ed25519", hex::encode(sig.to_bytes())),
            ("x-signature-timestamp", ts.to_owned()),
        ]
    };
    // Discord's endpoint check is a signed PING ({"type":1}); it is
    // forwarded verified and the app answers {"type":1}.
    let ping = r#"{"type":1,"id":"1","application_id":"2"}"#;
    let ts = now().to_string();
    let answer = send(hg.addr, "POST", "/hook", &sign(&signing, &ts, ping), ping).await;
    assert_eq!((answer.status, answer.reject()), (200, None));
    assert_eq!(upstream.last().body, ping.as_bytes());
    assert_eq!(
        upstream.last().headers["x-verified-by"],
        "hookguard; route=p; scheme=discord; key=app"
    );
    let body = r#"{"type":2,"id":"3"}"#;
    let headers = sign(&signing, &ts, body);
    let tampered = send(hg.addr, "POST", "/hook", &headers, r#"{"type":2,"id":"4"}"#).await;
    assert_eq!(tampered.reject(), Some("bad_signature"));
    let wrong = send(hg.addr, "POST", "/hook", &sign(&other, &ts, body), body).await;
    assert_eq!(wrong.reject(), Some("bad_signature"));
    let stale_ts = (now() - 1000).to_string();
    let stale = send(
        hg.addr,
        "POST",
        "/hook",
        &sign(&signing, &stale_ts, body),
        body,
    )
    .await;
    assert_eq!(stale.reject(), Some("stale_timestamp"));
    // Dedupe on the signature: the same signed request twice.
    assert_eq!(
        send(hg.addr, "POST", "/hook", &headers, body)
            .await
            .reject(),
        None
    );
    assert_eq!(
        send(hg.addr, "POST", "/hook", &headers, body)
            .await
            .reject(),
        Some("duplicate")
    );
    assert_eq!(upstream.count(), 2);
}

#[tokio::test]
async fn telnyx_verifies_ed25519_over_timestamp_bar_body_from_a_fresh_key_pair() {
    // The rule from telnyx-python 4.189.0 lib/webhook_verification.py:
    // base64 Ed25519 over "{telnyx-timestamp}|{body}", base64 public key,
    // five minutes either way; signed here with ed25519-dalek directly.
    use base64::Engine;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let signing = ed25519_dalek::SigningKey::generate(&mut OsRng);
    let public = b64(signing.verifying_key().as_bytes());
    let other = ed25519_dalek::SigningKey::generate(&mut OsRng);
    let (upstream, hg) = start(&format!(
        "scheme = \"telnyx\"\npublic_keys = [{{ id = \"portal\", value = \"{public}\" }}]"
    ))
    .await;
    let sign = |key: &ed25519_dalek::SigningKey, ts: i64, body: &str| {
        let sig = key.sign(format!("{ts}|{body}").as_bytes());
        vec![
            ("telnyx-signature-ed25519", b64(&sig.to_bytes())),
            ("telnyx-timestamp", ts.to_string()),
        ]
    };
    let body = |n: u32| format!(r#"{{"data":{{"id":"ev-{n}","event_type":"call.initiated"}}}}"#);
    let first = sign(&signing, now(), &body(1));
    let answer = send(hg.addr, "POST", "/hook", &first, body(1)).await;
    assert_eq!((answer.status, answer.reject()), (200, None));
    assert_eq!(
        upstream.last().headers["x-verified-by"],
        "hookguard; route=p; scheme=telnyx; key=portal"
    );
    // One byte changed; the same request again; another key.
    let changed = body(1).replacen("initiated", "initiatee", 1);
    let answer = send(hg.addr, "POST", "/hook", &first, changed).await;
    assert_eq!(answer.reject(), Some("bad_signature"));
    let answer = send(hg.addr, "POST", "/hook", &first, body(1)).await;
    assert_eq!(answer.reject(), Some("duplicate"));
    let answer = send(
        hg.addr,
        "POST",
        "/hook",
        &sign(&other, now(), &body(2)),
        body(2),
    )
    .await;
    assert_eq!(answer.reject(), Some("bad_signature"));
    // Discord's rule (no bar) is not Telnyx's.
    let no_bar = signing.sign(format!("{}{}", now(), body(3)).as_bytes());
    let headers = vec![
        ("telnyx-signature-ed25519", b64(&no_bar.to_bytes())),
        ("telnyx-timestamp", now().to_string()),
    ];
    let answer = send(hg.addr, "POST", "/hook", &headers, body(3)).await;
    assert_eq!(answer.reject(), Some("bad_signature"));
    // The window at both edges.
    for (n, skew, expected) in [
        (4, -290, None),
        (5, 290, None),
        (6, -310, Some("stale_timestamp")),
        (7, 310, Some("future_timestamp")),
    ] {
        let headers = sign(&signing, now() + skew, &body(n));
        let answer = send(hg.addr, "POST", "/hook", &headers, body(n)).await;
        assert_eq!(answer.reject(), expected, "{skew}");
    }
    assert_eq!(upstream.count(), 3);
    // A key that is not base64 of 32 bytes is a config error naming it.
    let e = config_errors("scheme = \"telnyx\"\npublic_keys = [{ value = \"00ff\" }]");
    assert!(
        e.contains("routes[0] (\"p\").public_keys[0]: a Telnyx public key is base64 of 32 bytes"),
        "{e}"
    );
}

#[test]
fn sendgrid_matches_the_vector_in_sendgrids_sdk_tests() {
    // sendgrid/sendgrid-nodejs packages/eventwebhook/src/eventwebhook.spec.js.
    let key = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEDr2LjtURuePQzplybdC+u4CwrqDqBaWjcMMsTbhdbcwHBcepxo7yAQGhHPTnlvFYPAZFceEu/1FwCM/QmGUhA==";
    let signature = "MEUCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIgJTz2C+8a8xonZGi6BpSzoQsbVRamr2nlxFDWYNH2j/0=";
    let payload =
        r#"{"category":"example_payload","event":"test_event","message_id":"message_id"}"#;
    let text = config_text(&format!(
        "scheme = \"sendgrid\"\npublic_keys = [{{ value = \"{key}\" }}]"
    ))
    .replace("{upstream}", "http://127.0.0.1:9");
    let config = Config::from_toml(&text, &|_: &str| None::<String>).unwrap();
    let scheme = &config.routes[0].scheme;
    let check = |sig: &str, ts: &str, body: &'static str| {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-twilio-email-event-webhook-signature",
            sig.parse().unwrap(),
        );
        headers.insert(
            "x-twilio-email-event-webhook-timestamp",
            ts.parse().unwrap(),
        );
        let uri = Uri::from_static("/hook");
        let body = Bytes::from_static(body.as_bytes());
        scheme
            .verify(&RequestView {
                method: &Method::POST,
                uri: &uri,
                headers: &headers,
                body: &body,
            })
            .map(|v| v.timestamp)
            .map_err(|r| r.reason)
    };
    let payload: &'static str = Box::leak(payload.to_owned().into_boxed_str());
    assert_eq!(
        check(signature, "1588788367", payload),
        Ok(Some(1588788367))
    );
    assert_eq!(
        check(signature, "1588788367", "payload"),
        Err(Reason::BadSignature)
    );
    assert_eq!(
        check(signature, "timestamp", payload),
        Err(Reason::MalformedTimestamp)
    );
    let bad = signature.replace("H2j/0=", "H3j/0=");
    assert_eq!(
        check(&bad, "1588788367", payload),
        Err(Reason::BadSignature)
    );
}

#[tokio::test]
async fn sendgrid_verifies_ecdsa_p256_from_a_fresh_key_pair() {
    let signing = p256::ecdsa::SigningKey::random(&mut OsRng);
    let der = signing.verifying_key().to_public_key_der().unwrap();
    let public = B64.encode(der.as_bytes());
    let other = p256::ecdsa::SigningKey::random(&mut OsRng);
    let (upstream, hg) = start(&format!(
        "scheme = \"sendgrid\"\npublic_keys = [{{ value = \"{public}\" }}]"
    ))
    .await;
    let sign = |key: &p256::ecdsa::SigningKey, ts: &str, body: &str| {
        let sig: p256::ecdsa::Signature = key.sign(format!("{ts}{body}").as_bytes());
        vec![
            (
                "x-twilio-email-event-webhook-signature",
                B64.encode(sig.to_der().as_bytes()),
            ),
            ("x-twilio-email-event-webhook-timestamp", ts.to_owned()),
        ]
    };
    let ts = now().to_string();
    let body = r#"[{"email":"a@example.com","event":"delivered","sg_event_id":"e1"}]"#;
    let answer = send(hg.addr, "POST", "/hook", &sign(&signing, &ts, body), body).await;
    assert_eq!((answer.status, answer.reject()), (200, None));
    let tampered = send(
        hg.addr,
        "POST",
        "/hook",
        &sign(&signing, &ts, body),
        body.replace("e1", "e2"),
    )
    .await;
    assert_eq!(tampered.reject(), Some("bad_signature"));
    let wrong = send(hg.addr, "POST", "/hook", &sign(&other, &ts, body), body).await;
    assert_eq!(wrong.reject(), Some("bad_signature"));
    // ECDSA signatures are randomised: the same body signed again is a new
    // signature, so the signature dedupe key only catches exact replays.
    let headers = sign(&signing, &ts, r#"[{"event":"open"}]"#);
    assert_eq!(
        send(hg.addr, "POST", "/hook", &headers, r#"[{"event":"open"}]"#)
            .await
            .reject(),
        None
    );
    assert_eq!(
        send(hg.addr, "POST", "/hook", &headers, r#"[{"event":"open"}]"#)
            .await
            .reject(),
        Some("duplicate")
    );
    assert_eq!(upstream.count(), 2);
}

fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn jws(key: &rsa::RsaPrivateKey, header: &str, payload: &str) -> String {
    let input = format!(
        "{}.{}",
        b64url(header.as_bytes()),
        b64url(payload.as_bytes())
    );
    let signer = rsa::pkcs1v15::SigningKey::<Sha256>::new(key.clone());
    let sig = signer.sign(input.as_bytes());
    format!("{input}.{}", b64url(&sig.to_bytes()))
}

#[tokio::test]
async fn tochka_verifies_rs256_jws_bodies_and_refuses_other_algorithms() {
    let key = rsa::RsaPrivateKey::new(&mut OsRng, 2048).unwrap();
    let other = rsa::RsaPrivateKey::new(&mut OsRng, 2048).unwrap();
    let pem = key
        .to_public_key()
        .to_public_key_pem(rsa::pkcs8::LineEnding::LF)
        .unwrap();
    // The same key as a JWK, as Tochka publishes its key.
    use rsa::traits::PublicKeyParts;
    let jwk = serde_json::json!({
        "kty": "RSA",
        "e": b64url(&key.e().to_bytes_be()),
        "n": b64url(&key.n().to_bytes_be()),
    })
    .to_string();
    for key_toml in [toml_string(&pem), toml_string(&jwk)] {
        let (upstream, hg) = start(&format!(
            "scheme = \"tochka\"\npublic_keys = [{{ value = {key_toml} }}]"
        ))
        .await;
        let header = r#"{"alg":"RS256","typ":"JWT"}"#;
        let payload = format!(
            r#"{{"webhookType":"incomingPayment","paymentId":"p1","iat":{}}}"#,
            now()
        );
        let token = jws(&key, header, &payload);
        let ct = [("content-type", "text/plain".to_owned())];
        let answer = send(hg.addr, "POST", "/hook", &ct, token.clone()).await;
        assert_eq!((answer.status, answer.reject()), (200, None));
        assert_eq!(upstream.last().body, token.as_bytes());
        assert_eq!(
            send(hg.addr, "POST", "/hook", &ct, token.clone())
                .await
                .reject(),
            Some("duplicate")
        );
        // A payload swapped under the old signature.
        let mut parts: Vec<&str> = token.split('.').collect();
        let swapped = b64url(payload.replace("p1", "p2").as_bytes());
        parts[1] = &swapped;
        let answer = send(hg.addr, "POST", "/hook", &ct, parts.join(".")).await;
        assert_eq!(answer.reject(), Some("bad_signature"));
        let wrong = jws(&other, header, &payload.replace("p1", "p3"));
        assert_eq!(
            send(hg.addr, "POST", "/hook", &ct, wrong).await.reject(),
            Some("bad_signature")
        );
        // alg=none with an empty signature, and HS256 keyed with the public key.
        let none = format!(
            "{}.{}.",
            b64url(br#"{"alg":"none"}"#),
            b64url(payload.as_bytes())
        );
        let answer = send(hg.addr, "POST", "/hook", &ct, none).await;
        assert_eq!(answer.reject(), Some("bad_signature"));
        let hs_input = format!(
            "{}.{}",
            b64url(br#"{"alg":"HS256"}"#),
            b64url(payload.as_bytes())
        );
        let mut mac = Hmac::<Sha256>::new_from_slice(pem.as_bytes()).unwrap();
        mac.update(hs_input.as_bytes());
        let hs = format!("{hs_input}.{}", b64url(&mac.finalize().into_bytes()));
        assert_eq!(
            send(hg.addr, "POST", "/hook", &ct, hs).await.reject(),
            Some("bad_signature")
        );
        let stale = jws(
            &key,
            header,
            &format!(r#"{{"paymentId":"p4","iat":{}}}"#, now() - 1000),
        );
        assert_eq!(
            send(hg.addr, "POST", "/hook", &ct, stale).await.reject(),
            Some("stale_timestamp")
        );
        assert_eq!(upstream.count(), 1);
    }
}

#[test]
fn tochka_refuses_expired_tokens_and_parses_only_compact_jws() {
    let key = rsa::RsaPrivateKey::new(&mut OsRng, 2048).unwrap();
    let scheme = JwtScheme::new(vec![("k".into(), key.to_public_key())]);
    let token = jws(&key, r#"{"alg":"RS256"}"#, r#"{"exp":1000}"#);
    assert!(scheme.verify_at(token.as_bytes(), 1000).is_ok());
    assert_eq!(
        scheme.verify_at(token.as_bytes(), 2000).unwrap_err().reason,
        Reason::StaleTimestamp
    );
    for junk in ["", "a.b", "a.b.c.d", "!!.e30.AA", "e30.e30.AA"] {
        let reason = scheme.verify_at(junk.as_bytes(), 0).unwrap_err().reason;
        assert!(
            matches!(
                reason,
                Reason::MalformedSignature | Reason::MissingSignature
            ),
            "{junk:?}: {reason:?}"
        );
    }
    let crit = jws(&key, r#"{"alg":"RS256","crit":["x"],"x":1}"#, "{}");
    assert_eq!(
        scheme.verify_at(crit.as_bytes(), 0).unwrap_err().reason,
        Reason::BadSignature
    );
}

// ---------------------------------------------------------------------------
// Endpoint challenges

fn hmac_hex(secret: &str, parts: &[&[u8]]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    for p in parts {
        mac.update(p);
    }
    hex::encode(mac.finalize().into_bytes())
}

#[tokio::test]
async fn slack_url_verification_is_signed_and_forwarded_verified() {
    let (upstream, hg) =
        start("scheme = \"slack\"\nsecrets = [{ value = \"slack-secret\" }]").await;
    let body = r#"{"token":"t","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
    let ts = now().to_string();
    let headers = vec![
        ("x-slack-request-timestamp", ts.clone()),
        (
            "x-slack-signature",
            format!(
                "v0={}",
                hmac_hex(
                    "slack-secret",
                    &[b"v0:", ts.as_bytes(), b":", body.as_bytes()]
                )
            ),
        ),
    ];
    let answer = send(hg.addr, "POST", "/hook", &headers, body).await;
    assert_eq!((answer.status, answer.reject()), (200, None));
    assert_eq!(
        &answer.body[..],
        b"app says hi",
        "the app's answer is relayed"
    );
    assert_eq!(upstream.last().body, body.as_bytes());
    // An unsigned challenge is refused like any other request.
    let answer = send(hg.addr, "POST", "/hook", &[], body).await;
    assert_eq!(answer.reject(), Some("missing_signature"));
}

#[tokio::test]
async fn zoom_url_validation_left_to_the_app_is_signed_and_forwarded_verified() {
    // hookguard answers it itself by default (tests/all/challenges.rs).
    let (upstream, hg) = start(
        "scheme = \"zoom\"\nsecrets = [{ value = \"zoom-secret-token\" }]\nanswer_challenges = false",
    )
    .await;
    let body = r#"{"payload":{"plainToken":"qgg8vlvZRS6UYooatFL8Aw"},"event_ts":1654503849680,"event":"endpoint.url_validation"}"#;
    let ts = now().to_string();
    let headers = vec![
        ("x-zm-request-timestamp", ts.clone()),
        (
            "x-zm-signature",
            format!(
                "v0={}",
                hmac_hex(
                    "zoom-secret-token",
                    &[b"v0:", ts.as_bytes(), b":", body.as_bytes()]
                )
            ),
        ),
    ];
    let answer = send(hg.addr, "POST", "/hook", &headers, body).await;
    assert_eq!((answer.status, answer.reject()), (200, None));
    assert_eq!(
        upstream.last().headers["x-verified-by"],
        "hookguard; route=p; scheme=zoom; key=0"
    );
}

#[tokio::test]
async fn meta_subscription_handshake_is_authenticated_by_the_verify_token() {
    let (upstream, hg) = start(
        "scheme = \"meta\"\nsecrets = [{ value = \"app-secret\" }]\nverify_token = { value = \"my-verify-token\" }",
    )
    .await;
    let get = |token: &str, challenge: &str| {
        format!("/hook?hub.mode=subscribe&hub.challenge={challenge}&hub.verify_token={token}")
    };
    let answer = send(
        hg.addr,
        "GET",
        &get("my-verify-token", "1158201444"),
        &[],
        "",
    )
    .await;
    assert_eq!((answer.status, answer.reject()), (200, None));
    assert!(upstream.last().path.contains("hub.challenge=1158201444"));
    assert_eq!(
        upstream.last().headers["x-verified-by"],
        "hookguard; route=p; scheme=meta; key=0"
    );
    let answer = send(hg.addr, "GET", &get("guess", "1"), &[], "").await;
    assert_eq!(answer.reject(), Some("bad_signature"));
    let answer = send(hg.addr, "GET", "/hook?hub.challenge=2", &[], "").await;
    assert_eq!(answer.reject(), Some("missing_signature"));
    // Deliveries are signed like GitHub's.
    let body = r#"{"object":"whatsapp_business_account","entry":[]}"#;
    let sig = vec![(
        "x-hub-signature-256",
        format!("sha256={}", hmac_hex("app-secret", &[body.as_bytes()])),
    )];
    assert_eq!(
        send(hg.addr, "POST", "/hook", &sig, body).await.reject(),
        None
    );
    let forged = vec![(
        "x-hub-signature-256",
        format!("sha256={}", hmac_hex("my-verify-token", &[body.as_bytes()])),
    )];
    assert_eq!(
        send(hg.addr, "POST", "/hook", &forged, body).await.reject(),
        Some("bad_signature")
    );
    assert_eq!(upstream.count(), 2);
}

// ---------------------------------------------------------------------------
// Config errors

#[test]
fn preset_config_errors_name_the_key_and_what_is_allowed() {
    let e = config_errors("scheme = \"stripes\"\nsecrets = [{ value = \"x\" }]");
    assert!(
        e.contains("routes[0] (\"p\").scheme: \"stripes\" is not one of the ")
            && e.contains("did you mean \"stripe\"?"),
        "{e}"
    );
    let e = config_errors("scheme = \"twilio\"\nsecrets = [{ value = \"x\" }]");
    assert!(e.contains("routes[0] (\"p\").public_url: missing"), "{e}");
    let e = config_errors(
        "scheme = \"stripe\"\nsecrets = [{ value = \"x\" }]\npublic_url = \"https://a.example/x\"",
    );
    assert!(e.contains("routes[0] (\"p\").public_url: scheme stripe does not sign the URL; public_url is only for twilio, square, hubspot"), "{e}");
    let e = config_errors("scheme = \"square\"\nsecrets = [{ value = \"x\" }]\npublic_url = \"https://a.example/x?y=1\"");
    assert!(
        e.contains(
            "routes[0] (\"p\").public_url: \"https://a.example/x?y=1\": leave the query out"
        ),
        "{e}"
    );
    let e = config_errors("scheme = \"discord\"\nsecrets = [{ value = \"x\" }]");
    assert!(
        e.contains("routes[0] (\"p\").secrets: scheme discord verifies with public keys"),
        "{e}"
    );
    assert!(e.contains("routes[0] (\"p\").public_keys: missing"), "{e}");
    let e = config_errors(
        "scheme = \"discord\"\npublic_keys = [{ value = \"00\" }, { value = \"zz\" }]",
    );
    assert!(
        e.contains("routes[0] (\"p\").public_keys[0]: an Ed25519 public key is 64 hex"),
        "{e}"
    );
    assert!(e.contains("routes[0] (\"p\").public_keys[1]"), "{e}");
    let e = config_errors("scheme = \"sendgrid\"\npublic_keys = [{ value = \"not a key\" }]");
    assert!(
        e.contains("routes[0] (\"p\").public_keys[0]: expected base64 DER"),
        "{e}"
    );
    let e = config_errors(
        "scheme = \"tochka\"\npublic_keys = [{ value = \"{\\\"kty\\\":\\\"EC\\\"}\" }]",
    );
    assert!(
        e.contains("routes[0] (\"p\").public_keys[0]: the JWK's kty must be \"RSA\""),
        "{e}"
    );
    let e = config_errors(
        "scheme = \"github\"\npublic_keys = [{ value = \"x\" }]\nsecrets = [{ value = \"x\" }]",
    );
    assert!(
        e.contains("routes[0] (\"p\").public_keys: scheme github verifies with secrets"),
        "{e}"
    );
    let e = config_errors(
        "scheme = \"standard-webhooks\"\nsecrets = [{ value = \"x\" }, { value = \"whsec_!!\" }]",
    );
    assert!(
        e.contains(
            "routes[0] (\"p\").secrets[1]: a Standard Webhooks secret is whsec_ followed by base64"
        ),
        "{e}"
    );
    let e = config_errors(
        "scheme = \"github\"\nsecrets = [{ value = \"x\" }]\n[routes.hmac]\nheader = \"x-sig\"",
    );
    assert!(
        e.contains("routes[0] (\"p\").hmac: only for scheme = \"hmac\""),
        "{e}"
    );
    let e = config_errors("scheme = \"meta\"\nsecrets = [{ value = \"x\" }]");
    assert!(e.contains("routes[0] (\"p\").verify_token: missing"), "{e}");
    let e = config_errors(
        "scheme = \"slack\"\nsecrets = [{ value = \"x\" }]\nverify_token = { value = \"t\" }",
    );
    assert!(
        e.contains("routes[0] (\"p\").verify_token: scheme slack has no verify token"),
        "{e}"
    );
    let e = config_errors(
        "scheme = \"stripe\"\nsecrets = [{ value = \"x\" }]\nsignature_header = \"x\"",
    );
    assert!(
        e.contains("routes[0] (\"p\").signature_header: unknown key"),
        "{e}"
    );
}

#[test]
fn preset_defaults_show_in_the_summary_and_routes_may_override_them() {
    let text = config_text("scheme = \"tbank\"\nsecrets = [{ value = \"pw\" }]")
        .replace("{upstream}", "http://127.0.0.1:9");
    let config = Config::from_toml(&text, &|_: &str| None::<String>).unwrap();
    assert!(
        config.summary().contains("scheme=tbank"),
        "{}",
        config.summary()
    );
    assert!(
        config
            .summary()
            .contains("dedupe=[json:(/PaymentId,/Status)]"),
        "{}",
        config.summary()
    );
    let text = config_text("scheme = \"linear\"\nsecrets = [{ value = \"s\" }]\ntolerance = \"2m\"\ndedupe = [\"json:(/a,/b)\", \"header:X-Other\"]")
        .replace("{upstream}", "http://127.0.0.1:9");
    let config = Config::from_toml(&text, &|_: &str| None::<String>).unwrap();
    assert_eq!(config.routes[0].tolerance.as_secs(), 120);
    assert!(
        config
            .summary()
            .contains("dedupe=[json:(/a,/b), header:x-other]"),
        "{}",
        config.summary()
    );
    let text = config_text("scheme = \"linear\"\nsecrets = [{ value = \"s\" }]")
        .replace("{upstream}", "http://127.0.0.1:9");
    let config = Config::from_toml(&text, &|_: &str| None::<String>).unwrap();
    assert_eq!(config.routes[0].tolerance.as_secs(), 60);
}
