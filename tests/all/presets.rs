//! Symmetric provider presets: published vectors checked against the
//! schemes built from config, list and dedupe rules the generic proof
//! (`preset_proofs.rs`) does not reach, `hookguard sign` against every
//! preset, and the extensions of `[routes.hmac]` through the proxy. The
//! signers here (`sign_as_provider`) are the second implementations of the
//! presets from before issue 17; `preset_proofs.rs` runs them too.

use crate::support;

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::{HeaderMap, Method, Uri};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use support::{now, send, Hookguard, Upstream};

use hookguard::config::{Config, Route};
use hookguard::reject::Reason;
use hookguard::schemes::registry::{self, Family, KeyKind};
use hookguard::schemes::{RequestView, Unsigned};

fn hmac256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

fn hmac1(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = Hmac::<Sha1>::new_from_slice(key).unwrap();
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

/// A config with one route `p` on `/hook` and `route` (scheme, secrets...).
fn config_text(route: &str) -> String {
    format!(
        "[server]\nupstream = \"{{upstream}}\"\n\n[[routes]]\nname = \"p\"\npath = \"/hook\"\nmethods = [\"POST\", \"GET\"]\n{route}\n"
    )
}

fn route_of(route: &str) -> Arc<Route> {
    let text = config_text(route).replace("{upstream}", "http://127.0.0.1:9");
    let config = Config::from_toml(&text, &|_: &str| None::<String>)
        .unwrap_or_else(|e| panic!("config invalid:\n{e}"));
    config.routes[0].clone()
}

async fn start(route: &str) -> (Upstream, Hookguard) {
    let upstream = Upstream::start().await;
    let hg = Hookguard::start(&config_text(route), &upstream.url()).await;
    (upstream, hg)
}

/// Verifies a request directly against the scheme a route built.
fn verify_with(
    route: &Route,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: &'static [u8],
) -> Result<hookguard::schemes::Verified, Reason> {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        map.append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    let uri: Uri = uri.parse().unwrap();
    let method: Method = method.parse().unwrap();
    let body = Bytes::from_static(body);
    route
        .scheme
        .verify(&RequestView {
            method: &method,
            uri: &uri,
            headers: &map,
            body: &body,
        })
        .map_err(|r| r.reason)
}

// ---------------------------------------------------------------------------
// Published vectors

#[test]
fn github_matches_the_vector_in_githubs_docs() {
    // docs.github.com, "Validating webhook deliveries", "Testing the webhook
    // payload validation".
    let route =
        route_of("scheme = \"github\"\nsecrets = [{ value = \"It's a Secret to Everybody\" }]");
    let sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    assert!(verify_with(
        &route,
        "POST",
        "/hook",
        &[("x-hub-signature-256", sig)],
        b"Hello, World!"
    )
    .is_ok());
    assert_eq!(
        verify_with(
            &route,
            "POST",
            "/hook",
            &[("x-hub-signature-256", sig)],
            b"Hello, World?"
        )
        .unwrap_err(),
        Reason::BadSignature
    );
}

const SLACK_BODY: &[u8] = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";

#[test]
fn slack_matches_the_example_in_slacks_docs() {
    // api.slack.com/authentication/verifying-requests-from-slack, the worked
    // example (signing secret, timestamp 1531420618, slash-command body).
    let route = route_of(
        "scheme = \"slack\"\nsecrets = [{ value = \"8f742231b10e8888abcd99yyyzzz85a5\" }]",
    );
    let headers = [
        ("x-slack-request-timestamp", "1531420618"),
        (
            "x-slack-signature",
            "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
        ),
    ];
    let ok = verify_with(&route, "POST", "/hook", &headers, SLACK_BODY).unwrap();
    assert_eq!(ok.timestamp, Some(1531420618));
    let moved = [("x-slack-request-timestamp", "1531420619"), headers[1]];
    assert_eq!(
        verify_with(&route, "POST", "/hook", &moved, SLACK_BODY).unwrap_err(),
        Reason::BadSignature
    );
}

#[test]
fn standard_webhooks_matches_the_reference_library_vector() {
    // standard-webhooks/standard-webhooks libraries/rust/src/lib.rs,
    // test_sign: the secret's base64 after whsec_ is the key.
    let route = route_of("scheme = \"standard-webhooks\"\nsecrets = [{ value = \"whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD\" }]");
    let body: &'static [u8] = br#"{"email":"test@example.com","username":"test_user"}"#;
    let good = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";
    // The library's test_verify_with_multiple_signatures list, with the good
    // one among foreign entries and an unknown version.
    let list = format!(
        "v1,tFtCZ5RDCPxzWQRWXWPgrCgE2frDBe9gjpbWQxnVfsQ= v1a,abc v1,Mm7xgUVICxZfQ3bgf0h0Dof65L/IFx+PnZvnDWPCX6Q= {good}"
    );
    for names in [
        ["webhook-id", "webhook-timestamp", "webhook-signature"],
        ["svix-id", "svix-timestamp", "svix-signature"],
    ] {
        let headers = [
            (names[0], "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk"),
            (names[1], "1649367553"),
            (names[2], list.as_str()),
        ];
        let ok = verify_with(&route, "POST", "/hook", &headers, body).unwrap();
        assert_eq!(B64.encode(ok.signature), good[3..]);
    }
    // The library's test_no_verify_with_multiple_signatures list.
    let bad = "v1,tFtCZ5RDCPxzWQRWXWPgrCgE2frDBe9gjpbWQxnVfsQ= v1,Mm7xgUVICxZfQ3bgf0h0Dof65L/IFx+PnZvnDWPCX6Q= v1,9DfC1c3eeOrXB6w/5dIDydLNQaEyww5KalE5jLBZucE=";
    let headers = [
        ("webhook-id", "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk"),
        ("webhook-timestamp", "1649367553"),
        ("webhook-signature", bad),
    ];
    assert_eq!(
        verify_with(&route, "POST", "/hook", &headers, body).unwrap_err(),
        Reason::BadSignature
    );
    // Using the whole whsec_ text as the key (Stripe's rule) is wrong here.
    let raw = B64.encode(hmac256(
        b"whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
        &[b"msg_27UH4WbU6Z5A5EzD8u03UvzRbpk.1649367553.", body],
    ));
    let headers = [
        headers[0],
        headers[1],
        ("webhook-signature", &format!("v1,{raw}")),
    ];
    assert_eq!(
        verify_with(&route, "POST", "/hook", &headers, body).unwrap_err(),
        Reason::BadSignature
    );
}

const TWILIO_URL: &str = "https://mycompany.com/myapp.php";
const TWILIO_FORM: &[u8] = b"CallSid=CA1234567890ABCDE&Caller=%2B14158675309&Digits=1234&From=%2B14158675309&To=%2B18005551212";

#[test]
fn twilio_matches_the_vectors_in_twilios_sdk_tests() {
    // twilio-php tests/Twilio/Unit/Security/RequestValidatorTest.php (the
    // same vector as Twilio's security docs): auth token 12345.
    let route = route_of(&format!(
        "scheme = \"twilio\"\nsecrets = [{{ value = \"12345\" }}]\npublic_url = \"{TWILIO_URL}\""
    ));
    let form = ("content-type", "application/x-www-form-urlencoded");
    let check = |uri: &str, sig: &str, body: &'static [u8], ct: (&str, &str)| {
        verify_with(
            &route,
            "POST",
            uri,
            &[ct, ("x-twilio-signature", sig)],
            body,
        )
    };
    assert!(check(
        "/hook?foo=1&bar=2",
        "RSOYDt4T1cUTdK1PDd93/VVr8B8=",
        TWILIO_FORM,
        form
    )
    .is_ok());
    // testValidateAddsPortHttps: signed with :443 added.
    assert!(check(
        "/hook?foo=1&bar=2",
        "kvajT1Ptam85bY51eRf/AJRuM3w=",
        TWILIO_FORM,
        form
    )
    .is_ok());
    // testValidateWithBody: a JSON body, its SHA-256 in the query.
    let json = ("content-type", "application/json");
    let with_hash = "/hook?foo=1&bar=2&bodySHA256=0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620";
    assert!(check(
        with_hash,
        "a9nBmqA0ju/hNViExpshrM61xv4=",
        br#"{"property": "value", "boolean": true}"#,
        json
    )
    .is_ok());
    assert_eq!(
        check(
            with_hash,
            "a9nBmqA0ju/hNViExpshrM61xv4=",
            br#"{"property": "value", "boolean": false}"#,
            json
        )
        .unwrap_err(),
        Reason::BadSignature
    );
    // testValidateWithArrayAndDuplicates: a repeated name, sorted by value.
    let repeated: &'static [u8] = b"Sid=CA123&SidAccount=AC123&Digits=5678&Digits=1234&Digits=1234";
    assert!(check(
        "/hook?foo=1&bar=2",
        "IK+Dwps556ElfBT0I3Rgjkr1wJU=",
        repeated,
        form
    )
    .is_ok());
    assert_eq!(
        check(
            "/hook?foo=1&bar=2",
            "RSOYDt4T1cUTdK1PDd93/VVr8B8=",
            b"CallSid=CA1234567890ABCDE&Digits=9999",
            form
        )
        .unwrap_err(),
        Reason::BadSignature
    );
    assert_eq!(
        check(
            "/hook?foo=1&bar=3",
            "RSOYDt4T1cUTdK1PDd93/VVr8B8=",
            TWILIO_FORM,
            form
        )
        .unwrap_err(),
        Reason::BadSignature
    );
}

#[test]
fn square_matches_the_vector_in_squares_sdk_tests() {
    // square/square-php-sdk tests/Integration/WebhooksTest.php.
    let route = route_of("scheme = \"square\"\nsecrets = [{ value = \"Ibxx_5AKakO-3qeNVR61Dw\" }]\npublic_url = \"https://webhook.site/679a4f3a-dcfa-49ee-bac5-9d0edad886b9\"");
    let body: &'static [u8] = br#"{"merchant_id":"MLEFBHHSJGVHD","type":"webhooks.test_notification","event_id":"ac3ac95b-f97d-458c-a6e6-18981597e05f","created_at":"2022-07-13T20:30:59.037339943Z","data":{"type":"webhooks","id":"bc368e64-01aa-407e-b46e-3231809b1129"}}"#;
    let sig = [(
        "x-square-hmacsha256-signature",
        "GF4YkrJgGBDZ9NIYbNXBnMzqb2HoL4RW/S6vkZ9/2N4=",
    )];
    assert!(verify_with(&route, "POST", "/hook", &sig, body).is_ok());
    // The Host header is not the signed URL: a different path signs differently.
    assert_eq!(
        verify_with(&route, "POST", "/hook?x=1", &sig, body).unwrap_err(),
        Reason::BadSignature
    );
}

#[test]
fn adyen_matches_the_vectors_in_adyens_sdk_tests() {
    // Adyen/adyen-ruby-api-library spec/utils/hmac_validator_spec.rb and
    // Adyen/adyen-php-api-library tests/Adyen/Util/HmacSignatureTest.php:
    // the same item under two keys; originalReference absent (empty).
    let body = |sig: &str| {
        format!(
            r#"{{"live":"false","notificationItems":[{{"NotificationRequestItem":{{"additionalData":{{"hmacSignature":"{sig}"}},"amount":{{"currency":"EUR","value":1130}},"eventCode":"AUTHORISATION","merchantAccountCode":"TestMerchant","merchantReference":"TestPayment-1407325143704","pspReference":"7914073381342284","success":"true"}}}}]}}"#
        )
    };
    for (key, sig) in [
        (
            "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056",
            "coqCmt/IZ4E3CzPvMY8zTjQVL5hYJUiBRg8UU+iCWo0=",
        ),
        (
            "DFB1EB5485895CFA84146406857104ABB4CBCABDC8AAF103A624C8F6A3EAAB00",
            "Ny9gS2veKo5E4w8/OL6xz1/wvT/hYkAXy1xNc/QvO4I=",
        ),
    ] {
        let route = route_of(&format!(
            "scheme = \"adyen\"\nsecrets = [{{ value = \"{key}\" }}]"
        ));
        let good: &'static str = Box::leak(body(sig).into_boxed_str());
        assert!(verify_with(&route, "POST", "/hook", &[], good.as_bytes()).is_ok());
        let changed: &'static str = Box::leak(body(sig).replace("1130", "1131").into_boxed_str());
        assert_eq!(
            verify_with(&route, "POST", "/hook", &[], changed.as_bytes()).unwrap_err(),
            Reason::BadSignature
        );
    }
}

#[test]
fn tbank_matches_the_token_example_in_tbanks_docs() {
    // developer.tbank.ru, "Подпись запроса" (request token) worked example:
    // password usaf8fw8fsw21g, token 0024a00a...; notifications use the same rule.
    let route = route_of("scheme = \"tbank\"\nsecrets = [{ value = \"usaf8fw8fsw21g\" }]");
    let body: &'static [u8] = r#"{"TerminalKey":"MerchantTerminalKey","Amount":19200,"OrderId":"21090","Description":"Подарочная карта на 1000 рублей","Token":"0024a00af7c350a3a67ca168ce06502aa72772456662e38696d48b56ee9c97d9","Receipt":{"Email":"a@test.ru","Items":[]},"DATA":{"Phone":"+71234567890"}}"#.as_bytes();
    assert!(verify_with(&route, "POST", "/hook", &[], body).is_ok());
    let tampered: &'static [u8] = r#"{"TerminalKey":"MerchantTerminalKey","Amount":19201,"OrderId":"21090","Description":"Подарочная карта на 1000 рублей","Token":"0024a00af7c350a3a67ca168ce06502aa72772456662e38696d48b56ee9c97d9"}"#.as_bytes();
    assert_eq!(
        verify_with(&route, "POST", "/hook", &[], tampered).unwrap_err(),
        Reason::BadSignature
    );
}

// ---------------------------------------------------------------------------
// Stripe's list rules

#[test]
fn stripe_skips_v0_and_foreign_entries_and_refuses_a_header_with_only_v0() {
    let secret = "whsec_test_stripe";
    let route = route_of(&format!(
        "scheme = \"stripe\"\nsecrets = [{{ value = \"{secret}\" }}]"
    ));
    let body: &'static [u8] = br#"{"id":"evt_1","type":"charge.succeeded"}"#;
    let good = hex::encode(hmac256(secret.as_bytes(), &[b"1700000000.", body]));
    let header = format!("t=1700000000,v0={good},v1=00ff,v1=zz,v1={good},x=1");
    let ok = verify_with(
        &route,
        "POST",
        "/hook",
        &[("stripe-signature", &header)],
        body,
    )
    .unwrap();
    assert_eq!(
        (hex::encode(&ok.signature), ok.timestamp),
        (good.clone(), Some(1700000000))
    );
    let only_v0 = format!("t=1700000000,v0={good}");
    assert_eq!(
        verify_with(
            &route,
            "POST",
            "/hook",
            &[("stripe-signature", &only_v0)],
            body
        )
        .unwrap_err(),
        Reason::MalformedSignature
    );
    let no_t = format!("v1={good}");
    assert_eq!(
        verify_with(
            &route,
            "POST",
            "/hook",
            &[("stripe-signature", &no_t)],
            body
        )
        .unwrap_err(),
        Reason::MissingTimestamp
    );
    // Standard Webhooks' rule (base64-decoding the whsec_ part) is wrong here.
    let wrong_key = hex::encode(hmac256(b"\xb1\xeb\x2d", &[b"1700000000.", body]));
    let header = format!("t=1700000000,v1={wrong_key}");
    assert_eq!(
        verify_with(
            &route,
            "POST",
            "/hook",
            &[("stripe-signature", &header)],
            body
        )
        .unwrap_err(),
        Reason::BadSignature
    );
}

// ---------------------------------------------------------------------------
// Every symmetric preset through the proxy

/// How a sender of one preset signs: headers, path and body for `secret`.
#[derive(Clone)]
pub(crate) struct Signed {
    pub(crate) path: String,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) body: String,
}

pub(crate) fn sign_as_provider(
    scheme: &str,
    secret: &str,
    body: &str,
    ts: i64,
    id: &str,
) -> Signed {
    let k = secret.as_bytes();
    let b = body.as_bytes();
    let t = ts.to_string();
    let hex256 = |parts: &[&[u8]]| hex::encode(hmac256(k, parts));
    let b64_256 = |parts: &[&[u8]]| B64.encode(hmac256(k, parts));
    let plain = |headers: Vec<(&'static str, String)>| Signed {
        path: "/hook".into(),
        headers,
        body: body.to_owned(),
    };
    match scheme {
        "stripe" => plain(vec![(
            "stripe-signature",
            format!("t={t},v1={}", hex256(&[t.as_bytes(), b".", b])),
        )]),
        "github" => plain(vec![
            ("x-hub-signature-256", format!("sha256={}", hex256(&[b]))),
            ("x-github-delivery", id.to_owned()),
        ]),
        "slack" => plain(vec![
            ("x-slack-request-timestamp", t.clone()),
            (
                "x-slack-signature",
                format!("v0={}", hex256(&[b"v0:", t.as_bytes(), b":", b])),
            ),
        ]),
        "shopify" => plain(vec![
            ("x-shopify-hmac-sha256", b64_256(&[b])),
            ("x-shopify-webhook-id", id.to_owned()),
        ]),
        "standard-webhooks" => {
            let key = B64.decode(secret.strip_prefix("whsec_").unwrap()).unwrap();
            let sig = B64.encode(hmac256(&key, &[id.as_bytes(), b".", t.as_bytes(), b".", b]));
            plain(vec![
                ("webhook-id", id.to_owned()),
                ("webhook-timestamp", t.clone()),
                ("webhook-signature", format!("v1,{sig}")),
            ])
        }
        "paddle" => plain(vec![(
            "paddle-signature",
            format!("ts={t};h1={}", hex256(&[t.as_bytes(), b":", b])),
        )]),
        "square" => plain(vec![(
            "x-square-hmacsha256-signature",
            b64_256(&[b"https://shop.example.com/square", b]),
        )]),
        "hubspot" => {
            let ms = (ts * 1000).to_string();
            plain(vec![
                ("x-hubspot-request-timestamp", ms.clone()),
                (
                    "x-hubspot-signature-v3",
                    b64_256(&[
                        b"POST",
                        b"https://shop.example.com/hubspot",
                        b,
                        ms.as_bytes(),
                    ]),
                ),
            ])
        }
        "zoom" => plain(vec![
            ("x-zm-request-timestamp", t.clone()),
            (
                "x-zm-signature",
                format!("v0={}", hex256(&[b"v0:", t.as_bytes(), b":", b])),
            ),
        ]),
        "calendly" => plain(vec![(
            "calendly-webhook-signature",
            format!("t={t},v1={}", hex256(&[t.as_bytes(), b".", b])),
        )]),
        "bitbucket" => plain(vec![
            ("x-hub-signature", format!("sha256={}", hex256(&[b]))),
            ("x-request-uuid", id.to_owned()),
        ]),
        "typeform" => plain(vec![(
            "typeform-signature",
            format!("sha256={}", b64_256(&[b])),
        )]),
        "intercom" => plain(vec![(
            "x-hub-signature",
            format!("sha1={}", hex::encode(hmac1(k, &[b]))),
        )]),
        "linear" => {
            // Linear's timestamp is inside the signed body.
            let mut doc: serde_json::Value = serde_json::from_str(body).unwrap();
            doc["webhookTimestamp"] = (ts * 1000).into();
            let body = doc.to_string();
            Signed {
                path: "/hook".into(),
                headers: vec![
                    (
                        "linear-signature",
                        hex::encode(hmac256(k, &[body.as_bytes()])),
                    ),
                    ("linear-delivery", id.to_owned()),
                ],
                body,
            }
        }
        "mailgun" => {
            let mut doc: serde_json::Value = serde_json::from_str(body).unwrap();
            let sig = hex256(&[t.as_bytes(), id.as_bytes()]);
            doc["signature"] = serde_json::json!({"timestamp": t, "token": id, "signature": sig});
            Signed {
                path: "/hook".into(),
                headers: vec![("content-type", "application/json".into())],
                body: doc.to_string(),
            }
        }
        "twilio" => {
            // A form post: URL then sorted name+value pairs.
            let form = format!("To=%2B1800&From=%2B1555&Body={id}");
            let mut pairs: Vec<(String, String)> = form_urlencoded::parse(form.as_bytes())
                .into_owned()
                .collect();
            pairs.sort();
            let mut message = "https://shop.example.com/twilio".to_owned();
            for (name, value) in pairs {
                message.push_str(&name);
                message.push_str(&value);
            }
            Signed {
                path: "/hook".into(),
                headers: vec![
                    ("content-type", "application/x-www-form-urlencoded".into()),
                    (
                        "x-twilio-signature",
                        B64.encode(hmac1(k, &[message.as_bytes()])),
                    ),
                ],
                body: form,
            }
        }
        // GitLab 17.4 and later also send an Idempotency-Key, kept when a
        // delivery is sent again (docs.gitlab.com, webhooks).
        "gitlab" => plain(vec![
            ("x-gitlab-token", secret.to_owned()),
            ("x-gitlab-event-uuid", id.to_owned()),
            ("idempotency-key", format!("key-{id}")),
        ]),
        "tbank" => {
            let mut doc: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(body).unwrap();
            let mut fields: Vec<(String, String)> = doc
                .iter()
                .filter_map(|(name, v)| match v {
                    serde_json::Value::String(s) => Some((name.clone(), s.clone())),
                    serde_json::Value::Number(n) => Some((name.clone(), n.to_string())),
                    serde_json::Value::Bool(x) => Some((name.clone(), x.to_string())),
                    _ => None,
                })
                .collect();
            fields.push(("Password".into(), secret.into()));
            fields.sort();
            let joined: String = fields.into_iter().map(|(_, v)| v).collect();
            doc.insert(
                "Token".into(),
                hex::encode(Sha256::digest(joined.as_bytes())).into(),
            );
            Signed {
                path: "/hook".into(),
                headers: vec![("content-type", "application/json".into())],
                body: serde_json::Value::Object(doc).to_string(),
            }
        }
        other => panic!("no signer for {other}"),
    }
}

/// The route lines for `scheme` with `secret`.
fn route_for(scheme: &str, secret: &str) -> String {
    let url = if registry::find(scheme).is_some_and(|e| e.signs_url) {
        format!("public_url = \"https://shop.example.com/{scheme}\"\n")
    } else {
        String::new()
    };
    format!("scheme = \"{scheme}\"\nsecrets = [{{ id = \"k1\", value = \"{secret}\" }}]\n{url}")
}

/// Every preset that verifies with a shared secret ("meta" has its own
/// tests: it also needs a verify token).
fn symmetric() -> impl Iterator<Item = &'static str> {
    registry::names_where(|e| {
        e.keys == KeyKind::Secrets && !matches!(e.family, Family::Generic) && !e.needs_verify_token
    })
    .into_iter()
}

use crate::preset_proofs::{secret_for, sign as sign_as_sender};

pub(crate) fn event_body(scheme: &str, n: u32) -> String {
    match scheme {
        "plivo" => format!("CallUUID=uuid-{n}&Event=thing.happened&To=%2B15551234567"),
        // A form with Braintree's base64 payload (newline-terminated, as its
        // SDK writes it); `sign` adds bt_signature.
        "braintree" => form_urlencoded::Serializer::new(String::new())
            .append_pair(
                "bt_payload",
                &format!(
                    "{}\n",
                    B64.encode(format!(
                        "<notification><kind>thing.happened</kind><id>{n}</id></notification>"
                    ))
                ),
            )
            .finish(),
        // The signed fields are those of the first item; "happened" sits
        // in one of them, so that the proofs' one-byte change is signed.
        "adyen" => format!(
            r#"{{"live":"false","notificationItems":[{{"NotificationRequestItem":{{"additionalData":{{}},"amount":{{"currency":"EUR","value":{n}000}},"eventCode":"AUTHORISATION","eventDate":"2026-01-01T00:00:00+01:00","merchantAccountCode":"TestMerchant","merchantReference":"order-happened-{n}","pspReference":"psp{n}","success":"true"}}}}]}}"#
        ),
        // GoCardless's shape, which its SDK's verify function parses.
        "gocardless" => format!(
            r#"{{"events":[{{"id":"EV{n}","resource_type":"payments","action":"happened"}}],"meta":{{"webhook_id":"WB{n}"}}}}"#
        ),
        "tbank" => format!(
            r#"{{"TerminalKey":"T1","OrderId":"o{n}","Success":true,"Status":"CONFIRMED","PaymentId":{n},"Amount":1000,"Data":{{"x":1}}}}"#
        ),
        // Webex's shape: the top-level id is the webhook's, the same on
        // every event it sends; the event's own object is under data
        // (developer.webex.com/docs/api/v1/webhooks/get-webhook-details).
        "webex" => format!(
            r#"{{"id":"Y2lzY29zcGFyazovL3VzL1dFQkhPT0svaG9vaw","name":"hook","resource":"messages","event":"created","data":{{"id":"msg_{n}","roomId":"room","text":"thing.happened"}}}}"#
        ),
        _ => format!(
            r#"{{"id":"evt_{n}","event_id":"ev_{n}","type":"thing.happened","amount":{n}}}"#
        ),
    }
}

#[tokio::test]
async fn sign_produces_what_each_symmetric_preset_verifies() {
    for scheme in &symmetric().collect::<Vec<_>>() {
        let route = route_of(&route_for(scheme, secret_for(scheme)));
        let mut unsigned = Unsigned {
            method: Method::POST,
            uri: Uri::from_static("/hook?a=1"),
            headers: HeaderMap::new(),
            body: Bytes::from(event_body(scheme, 3)),
            now: now(),
            id: "msg_sign_1".into(),
        };
        if *scheme == "twilio" {
            unsigned.headers.insert(
                "content-type",
                "application/x-www-form-urlencoded".parse().unwrap(),
            );
            unsigned.body = Bytes::from_static(b"To=%2B1800&Body=hi");
        }
        route
            .scheme
            .sign(0, &mut unsigned)
            .unwrap_or_else(|e| panic!("{scheme}: {e}"));
        let view = RequestView {
            method: &unsigned.method,
            uri: &unsigned.uri,
            headers: &unsigned.headers,
            body: &unsigned.body,
        };
        let ok = route
            .scheme
            .verify(&view)
            .unwrap_or_else(|e| panic!("{scheme}: {e:?}"));
        assert_eq!(ok.key, 0);
        if let Some(ts) = ok.timestamp {
            assert!((ts - now()).abs() < 5, "{scheme}: timestamp {ts}");
        }
    }
}

// ---------------------------------------------------------------------------
// Default dedupe keys

#[tokio::test]
async fn stripe_event_resent_with_a_new_timestamp_is_a_duplicate_by_its_id() {
    let secret = secret_for("stripe");
    let (upstream, hg) = start(&route_for("stripe", secret)).await;
    let body = event_body("stripe", 7);
    let first = sign_as_provider("stripe", secret, &body, now(), "");
    assert_eq!(
        send(hg.addr, "POST", "/hook", &first.headers, body.clone())
            .await
            .reject(),
        None
    );
    let again = sign_as_provider("stripe", secret, &body, now() + 3, "");
    assert_ne!(again.headers, first.headers);
    let answer = send(hg.addr, "POST", "/hook", &again.headers, body).await;
    assert_eq!((answer.status, answer.reject()), (200, Some("duplicate")));
    assert_eq!(upstream.count(), 1);
}

#[tokio::test]
async fn github_body_resent_under_a_new_delivery_id_is_still_a_replay() {
    let secret = "gh-secret";
    let (upstream, hg) = start(&route_for("github", secret)).await;
    let body = event_body("github", 1);
    let first = sign_as_provider("github", secret, &body, now(), "d-1");
    assert_eq!(
        send(hg.addr, "POST", "/hook", &first.headers, body.clone())
            .await
            .reject(),
        None
    );
    let replay = sign_as_provider("github", secret, &body, now(), "d-2");
    assert_eq!(
        send(hg.addr, "POST", "/hook", &replay.headers, body.clone())
            .await
            .reject(),
        Some("duplicate")
    );
    // A redelivery (same delivery id) of a regenerated body is a duplicate too.
    let other = event_body("github", 2);
    let redelivered = sign_as_provider("github", secret, &other, now(), "d-1");
    assert_eq!(
        send(hg.addr, "POST", "/hook", &redelivered.headers, other)
            .await
            .reject(),
        Some("duplicate")
    );
    assert_eq!(upstream.count(), 1);
}

#[tokio::test]
async fn presets_with_a_delivery_id_dedupe_on_it_and_mailgun_on_its_token() {
    for scheme in [
        "standard-webhooks",
        "shopify",
        "bitbucket",
        "linear",
        "gitlab",
        "mailgun",
        "paddle",
        "typeform",
        "square",
    ] {
        let secret = secret_for(scheme);
        let (upstream, hg) = start(&route_for(scheme, secret)).await;
        let a = sign_as_provider(scheme, secret, &event_body(scheme, 1), now(), "same-id");
        assert_eq!(
            send(hg.addr, "POST", &a.path, &a.headers, a.body.clone())
                .await
                .reject(),
            None,
            "{scheme}"
        );
        // The same id (or event id in the body) with a new signature.
        let body = if matches!(scheme, "paddle" | "typeform" | "square") {
            event_body(scheme, 1).replace("thing.happened", "thing.retried")
        } else {
            event_body(scheme, 2)
        };
        let b = sign_as_provider(scheme, secret, &body, now() + 1, "same-id");
        let answer = send(hg.addr, "POST", &b.path, &b.headers, b.body.clone()).await;
        assert_eq!(answer.reject(), Some("duplicate"), "{scheme}");
        let c = sign_as_provider(scheme, secret, &event_body(scheme, 3), now(), "other-id");
        assert_eq!(
            send(hg.addr, "POST", &c.path, &c.headers, c.body.clone())
                .await
                .reject(),
            None,
            "{scheme}"
        );
        assert_eq!(upstream.count(), 2, "{scheme}");
    }
}

#[tokio::test]
async fn tbank_dedupes_on_payment_id_and_status_together() {
    let secret = "tbank-password";
    let (upstream, hg) = start(&route_for("tbank", secret)).await;
    let body = |id: u32, status: &str, extra: &str| {
        format!(
            r#"{{"TerminalKey":"T1","PaymentId":{id},"Status":"{status}","Success":true,"Amount":1000{extra}}}"#
        )
    };
    let json = [("content-type", "application/json".to_owned())];
    let send_one = |b: String| {
        let signed = sign_as_provider("tbank", secret, &b, 0, "");
        send(hg.addr, "POST", "/hook", &json, signed.body)
    };
    assert_eq!(send_one(body(5, "AUTHORIZED", "")).await.reject(), None);
    assert_eq!(send_one(body(5, "CONFIRMED", "")).await.reject(), None);
    // The same payment and status again, with a different (signed) field.
    assert_eq!(
        send_one(body(5, "CONFIRMED", r#","Pan":"430000******0777""#))
            .await
            .reject(),
        Some("duplicate")
    );
    assert_eq!(upstream.count(), 2);
}

#[tokio::test]
async fn gitlab_never_uses_its_token_as_a_dedupe_value() {
    let (upstream, hg) = start(&route_for("gitlab", "gl-token")).await;
    for (n, uuid) in [(1, "u-1"), (2, "u-2")] {
        let s = sign_as_provider("gitlab", "gl-token", &event_body("gitlab", n), 0, uuid);
        assert_eq!(
            send(hg.addr, "POST", "/hook", &s.headers, s.body.clone())
                .await
                .reject(),
            None
        );
    }
    assert_eq!(
        upstream.count(),
        2,
        "the same token on two deliveries is not a replay"
    );
    let missing = send(
        hg.addr,
        "POST",
        "/hook",
        &[("x-gitlab-event-uuid", "u-3".to_owned())],
        "{}",
    )
    .await;
    assert_eq!(missing.reject(), Some("missing_signature"));
}

// ---------------------------------------------------------------------------
// URL-signing presets use public_url, never Host or X-Forwarded-*

#[tokio::test]
async fn url_signing_presets_ignore_host_and_forwarded_headers() {
    for scheme in registry::names_where(|e| e.signs_url) {
        let secret = "url-secret";
        let (upstream, hg) = start(&route_for(scheme, secret)).await;
        // Signed for a URL the attacker controls, and claimed through headers.
        let mut forged = sign_as_sender(scheme, secret, &event_body(scheme, 1), now(), "x");
        let body = forged.body.clone();
        let k = secret.as_bytes();
        let t = now();
        match scheme {
            "square" => {
                forged.headers[0].1 =
                    B64.encode(hmac256(k, &[b"https://evil.example/hook", body.as_bytes()]))
            }
            "hubspot" => {
                let ms = (t * 1000).to_string();
                forged.headers = vec![
                    ("x-hubspot-request-timestamp", ms.clone()),
                    (
                        "x-hubspot-signature-v3",
                        B64.encode(hmac256(
                            k,
                            &[
                                b"POST",
                                b"https://evil.example/hook",
                                body.as_bytes(),
                                ms.as_bytes(),
                            ],
                        )),
                    ),
                ];
            }
            "twilio" => {
                let mut pairs: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes())
                    .into_owned()
                    .collect();
                pairs.sort();
                let mut m = "https://evil.example/hook".to_owned();
                for (a, b) in pairs {
                    m.push_str(&a);
                    m.push_str(&b);
                }
                forged.headers[1].1 = B64.encode(hmac1(k, &[m.as_bytes()]));
            }
            "trello" => {
                forged.headers[0].1 =
                    B64.encode(hmac1(k, &[body.as_bytes(), b"https://evil.example/hook"]))
            }
            "plivo" => {
                let mut form: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes())
                    .into_owned()
                    .collect();
                form.sort();
                let mut m = "https://evil.example/hook?a=1&b=2.".to_owned();
                for (name, value) in form {
                    m.push_str(&name);
                    m.push_str(&value);
                }
                m.push_str(".x");
                let position = forged
                    .headers
                    .iter()
                    .position(|(name, _)| *name == "x-plivo-signature-v3")
                    .expect("signed");
                forged.headers[position].1 = B64.encode(hmac256(k, &[m.as_bytes()]));
            }
            "mandrill" | "mailchimp" => {
                let events: String = form_urlencoded::parse(body.as_bytes())
                    .find(|(name, _)| name == "mandrill_events")
                    .map(|(_, value)| value.into_owned())
                    .expect("a mandrill form");
                forged.headers[1].1 = B64.encode(hmac1(
                    k,
                    &[
                        b"https://evil.example/hook",
                        b"mandrill_events",
                        events.as_bytes(),
                    ],
                ))
            }
            other => panic!("no forger for {other}"),
        }
        forged
            .headers
            .push(("x-forwarded-host", "evil.example".into()));
        forged.headers.push(("x-forwarded-proto", "https".into()));
        let answer = send(hg.addr, "POST", "/hook", &forged.headers, body).await;
        assert_eq!(answer.reject(), Some("bad_signature"), "{scheme}");
        assert_eq!(upstream.count(), 0);
    }
}

// ---------------------------------------------------------------------------
// The generic scheme describes what the presets can: each extension of
// [routes.hmac] through the proxy, signed here with the hmac crates.

fn hmac_with<M: Mac + hmac::digest::KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = <M as Mac>::new_from_slice(key).unwrap();
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

/// A request of an extension's case: path, headers, body, and the reject
/// expected (`None`: forwarded).
type Case = (
    String,
    Vec<(&'static str, String)>,
    &'static str,
    Option<&'static str>,
);

/// One `[routes.hmac]` table, and requests for it with what each gets.
struct Extension {
    table: &'static str,
    secret: &'static str,
    /// The requests, signed for Unix time `now`.
    requests: fn(i64) -> Vec<Case>,
}

#[tokio::test]
async fn each_hmac_table_extension_verifies_through_the_proxy() {
    const BODY: &str = r#"{"id":"e1"}"#;
    let cases = [
        Extension {
            // Every listed header is read; any may match (DocuSign, Box).
            table: "headers = [\"X-Sig-1\", \"X-Sig-2\"]\nencoding = \"base64\"",
            secret: "k",
            requests: |_| {
                let good = B64.encode(hmac256(b"k", &[BODY.as_bytes()]));
                let other = B64.encode(hmac256(b"other", &[BODY.as_bytes()]));
                vec![
                    ("/hook".into(), vec![("x-sig-1", other.clone()), ("x-sig-2", good)], BODY, None),
                    ("/hook".into(), vec![("x-sig-1", other)], BODY, Some("bad_signature")),
                ]
            },
        },
        Extension {
            // A query parameter (PandaDoc).
            table: "query = \"signature\"",
            secret: "k",
            requests: |_| {
                let good = hex::encode(hmac256(b"k", &[BODY.as_bytes()]));
                vec![
                    (format!("/hook?x=1&signature={good}"), vec![], BODY, None),
                    ("/hook?x=1".into(), vec![], BODY, Some("missing_signature")),
                ]
            },
        },
        Extension {
            // Key-value groups while a secret rotates (Persona).
            table: "header = \"X-Sig\"\nlist = \"kv\"\ntimestamp_key = \"t\"\nsignature_key = \"v1\"\ngroups = true\nmessage = \"{timestamp}.{body}\"",
            secret: "k",
            requests: |now| {
                let t = now.to_string();
                let sig = |k: &[u8]| hex::encode(hmac256(k, &[t.as_bytes(), b".", BODY.as_bytes()]));
                vec![(
                    "/hook".into(),
                    vec![("x-sig", format!("t={t},v1={} t={t},v1={}", sig(b"old"), sig(b"k")))],
                    BODY,
                    None,
                )]
            },
        },
        Extension {
            // A positional list, milliseconds (Recurly).
            table: "header = \"X-Sig\"\nlist = \"positional\"\ntimestamp_unit = \"ms\"\nmessage = \"{timestamp}.{body}\"",
            secret: "k",
            requests: |now| {
                let ms = (now * 1000).to_string();
                let sig = |k: &[u8]| hex::encode(hmac256(k, &[ms.as_bytes(), b".", BODY.as_bytes()]));
                let stale = ((now - 3600) * 1000).to_string();
                let old = hex::encode(hmac256(b"k", &[stale.as_bytes(), b".", BODY.as_bytes()]));
                vec![
                    ("/hook".into(), vec![("x-sig", format!("{ms},{},{}", sig(b"old"), sig(b"k")))], BODY, None),
                    ("/hook".into(), vec![("x-sig", format!("{stale},{old}"))], BODY, Some("stale_timestamp")),
                ]
            },
        },
        Extension {
            // HMAC-MD5 (Patreon; weak).
            table: "header = \"X-Sig\"\nalgorithm = \"md5\"",
            secret: "k",
            requests: |_| {
                let good = hex::encode(hmac_with::<Hmac<md5::Md5>>(b"k", &[BODY.as_bytes()]));
                vec![("/hook".into(), vec![("x-sig", good)], BODY, None)]
            },
        },
        Extension {
            // The hash named per request, from an allow-list (Sumsub).
            table: "header = \"X-Sig\"\nalgorithm_header = \"X-Alg\"\nalgorithms = { S1 = \"sha1\", S512 = \"sha512\" }",
            secret: "k",
            requests: |_| {
                let s512 = hex::encode(hmac_with::<Hmac<sha2::Sha512>>(b"k", &[BODY.as_bytes()]));
                let s256 = hex::encode(hmac256(b"k", &[BODY.as_bytes()]));
                vec![
                    ("/hook".into(), vec![("x-alg", "S512".into()), ("x-sig", s512)], BODY, None),
                    ("/hook".into(), vec![("x-alg", "S256".into()), ("x-sig", s256.clone())], BODY, Some("malformed_signature")),
                    ("/hook".into(), vec![("x-sig", s256)], BODY, Some("missing_signed_header")),
                ]
            },
        },
        Extension {
            // RFC 3339 timestamps with a fraction and an offset (Twitch, Box).
            table: "header = \"X-Sig\"\ntimestamp_header = \"X-Ts\"\ntimestamp_unit = \"rfc3339\"\nmessage = \"{timestamp}{body}\"",
            secret: "k",
            requests: |now| {
                let text = |secs: i64| crate::preset_proofs::rfc3339(secs, ".5", 2);
                let sign = |ts: &str| hex::encode(hmac256(b"k", &[ts.as_bytes(), BODY.as_bytes()]));
                let (fresh, stale) = (text(now), text(now - 3600));
                vec![
                    ("/hook".into(), vec![("x-ts", fresh.clone()), ("x-sig", sign(&fresh))], BODY, None),
                    ("/hook".into(), vec![("x-ts", stale.clone()), ("x-sig", sign(&stale))], BODY, Some("stale_timestamp")),
                    ("/hook".into(), vec![("x-ts", now.to_string()), ("x-sig", sign(&now.to_string()))], BODY, Some("malformed_timestamp")),
                ]
            },
        },
        Extension {
            // A hex key, decoded (Squarespace, Adyen).
            table: "header = \"X-Sig\"\nkey_encoding = \"hex\"",
            secret: "00ff10",
            requests: |_| {
                let good = hex::encode(hmac256(&[0x00, 0xff, 0x10], &[BODY.as_bytes()]));
                let text_key = hex::encode(hmac256(b"00ff10", &[BODY.as_bytes()]));
                vec![
                    ("/hook".into(), vec![("x-sig", good)], BODY, None),
                    ("/hook".into(), vec![("x-sig", text_key)], BODY, Some("bad_signature")),
                ]
            },
        },
        Extension {
            // A signed timestamp with no window (Sanity).
            table: "header = \"X-Sig\"\ntimestamp_header = \"X-Ts\"\nwindow = false\nmessage = \"{timestamp}.{body}\"",
            secret: "k",
            requests: |now| {
                let old = (now - 86_400 * 30).to_string();
                let sig = hex::encode(hmac256(b"k", &[old.as_bytes(), b".", BODY.as_bytes()]));
                vec![("/hook".into(), vec![("x-ts", old), ("x-sig", sig)], BODY, None)]
            },
        },
    ];
    for case in cases {
        let route = format!(
            "scheme = \"hmac\"\nsecrets = [{{ value = \"{}\" }}]\ndedupe = []\n[routes.hmac]\n{}",
            case.secret, case.table
        );
        let (upstream, hg) = start(&route).await;
        let mut forwarded = 0;
        for (path, headers, body, expected) in (case.requests)(now()) {
            let answer = send(hg.addr, "POST", &path, &headers, body).await;
            assert_eq!(
                answer.reject(),
                expected,
                "{}: {path} {headers:?}",
                case.table
            );
            if expected.is_none() {
                forwarded += 1;
                // One byte of the body changed is refused.
                let changed = body.replacen("e1", "e2", 1);
                let refused = send(hg.addr, "POST", &path, &headers, changed).await;
                assert_eq!(refused.reject(), Some("bad_signature"), "{}", case.table);
            }
        }
        assert_eq!(upstream.count(), forwarded, "{}", case.table);
    }
}
