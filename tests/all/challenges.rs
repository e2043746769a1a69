//! Endpoint challenges and setup requests hookguard answers itself, through
//! a real hookguard in front of the recording upstream: each answer is
//! computed here independently (hmac/sha2 directly) from the provider's
//! documented rule; a challenge that is not validly signed (Zoom, Twitch)
//! or not token-shaped (X, Dropbox, Nylas, Worldline) is never answered;
//! a setup secret (Asana, Notion) is confirmed only when it is the route's
//! own, or learned once into `learn_secret_file` and read by the reload;
//! Trello's HEAD and WooCommerce's ping get 200; none reaches the app;
//! `answer_challenges = false` restores the app's turn; and the answers
//! are counted under `outcome="challenge"`.

use std::time::{Duration, Instant};

use crate::support::{
    admin_get, hmac_hex, metric, now, send, Answer, Hookguard, TempDir, Upstream,
};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

fn hmac256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

async fn start(route: &str) -> (Upstream, Hookguard) {
    let upstream = Upstream::start().await;
    let text = format!(
        "[server]\nupstream = \"{{upstream}}\"\n\n[[routes]]\nname = \"c\"\npath = \"/hook\"\nmethods = [\"POST\", \"GET\"]\n{route}\n"
    );
    let hg = Hookguard::start(&text, &upstream.url()).await;
    (upstream, hg)
}

fn zoom_headers(secret: &[u8], body: &str) -> Vec<(&'static str, String)> {
    let ts = now().to_string();
    let sig = hex::encode(hmac256(
        secret,
        &[b"v0:", ts.as_bytes(), b":", body.as_bytes()],
    ));
    vec![
        ("x-zm-request-timestamp", ts),
        ("x-zm-signature", format!("v0={sig}")),
    ]
}

#[tokio::test]
async fn zoom_url_validation_is_answered_only_when_validly_signed() {
    // developers.zoom.us, "Using webhooks": the answer is plainToken and
    // encryptedToken = hex HMAC-SHA256(secret token, plainToken).
    let (upstream, hg) = start("scheme = \"zoom\"\nsecrets = [{ value = \"zoom-token\" }]").await;
    let body = r#"{"payload":{"plainToken":"qgg8vlvZRS6UYooatFL8Aw"},"event_ts":1654503849680,"event":"endpoint.url_validation"}"#;
    let answer = send(
        hg.addr,
        "POST",
        "/hook",
        &zoom_headers(b"zoom-token", body),
        body,
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.headers["x-hookguard-answered"], "challenge");
    assert_eq!(answer.headers["x-content-type-options"], "nosniff");
    let expected = hex::encode(hmac256(b"zoom-token", &[b"qgg8vlvZRS6UYooatFL8Aw"]));
    assert_eq!(
        answer.json(),
        serde_json::json!({"plainToken": "qgg8vlvZRS6UYooatFL8Aw", "encryptedToken": expected})
    );
    // Not validly signed: refused, never answered (no signing oracle).
    for headers in [zoom_headers(b"another-secret", body), Vec::new()] {
        let answer = send(hg.addr, "POST", "/hook", &headers, body).await;
        assert_ne!(answer.status, 200);
        assert!(answer.reject().is_some());
        assert!(!answer.body.windows(14).any(|w| w == b"encryptedToken"));
    }
    // An ordinary signed event still goes to the app.
    let event = r#"{"event":"meeting.started","payload":{}}"#;
    let answer = send(
        hg.addr,
        "POST",
        "/hook",
        &zoom_headers(b"zoom-token", event),
        event,
    )
    .await;
    assert_eq!((answer.status, answer.reject()), (200, None));
    assert_eq!(
        upstream.count(),
        1,
        "only the ordinary event reached the app"
    );
    let (_, page) = admin_get(hg.admin, "/metrics").await;
    assert_eq!(
        metric(
            &page,
            "hookguard_requests_total{outcome=\"challenge\",route=\"c\"}"
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn x_crc_is_answered_for_token_shaped_values_and_never_for_bodies() {
    // developer.x.com, Account Activity API, "Securing webhooks": the answer
    // to GET ?crc_token=T is {"response_token":"sha256=" + base64 HMAC-SHA256
    // (consumer secret, T)}.
    for scheme in ["x", "twitter"] {
        let (upstream, hg) = start(&format!(
            "scheme = \"{scheme}\"\nsecrets = [{{ value = \"consumer-secret\" }}]"
        ))
        .await;
        let token = "Zm9vYmFyLXRva2VuLTEyMw==";
        let answer = send(
            hg.addr,
            "GET",
            &format!(
                "/hook?crc_token={}",
                token.replace('=', "%3D").replace('+', "%2B")
            ),
            &[],
            "",
        )
        .await;
        assert_eq!(answer.status, 200, "{scheme}");
        let expected = format!(
            "sha256={}",
            B64.encode(hmac256(b"consumer-secret", &[token.as_bytes()]))
        );
        assert_eq!(
            answer.json(),
            serde_json::json!({ "response_token": expected })
        );
        // A JSON body as the token would make the answer a valid signature
        // of a POST with that body: refused, like anything not token-shaped.
        for evil in [r#"{"id":"evt_1"}"#, "<b>x</b>", &"a".repeat(300)] {
            let path = format!(
                "/hook?{}",
                form_urlencoded::Serializer::new(String::new())
                    .append_pair("crc_token", evil)
                    .finish()
            );
            let answer = send(hg.addr, "GET", &path, &[], "").await;
            assert_eq!(answer.reject(), Some("malformed_request"), "{evil}");
            assert!(!answer.body.windows(14).any(|w| w == b"response_token"));
        }
        // A GET that is not a CRC is an unsigned request, refused.
        let answer = send(hg.addr, "GET", "/hook", &[], "").await;
        assert_eq!(answer.reject(), Some("missing_signature"));
        assert_eq!(upstream.count(), 0);
    }
}

#[tokio::test]
async fn twitch_verification_is_answered_with_its_challenge_when_signed() {
    // dev.twitch.tv/docs/eventsub/handling-webhook-events: the reply to a
    // webhook_callback_verification is the challenge, as text/plain.
    let secret = b"twitch-secret-123";
    let (upstream, hg) =
        start("scheme = \"twitch\"\nsecrets = [{ value = \"twitch-secret-123\" }]").await;
    let body = r#"{"challenge":"pogchamp-kappa-360noscope-vohiyo","subscription":{"id":"f1c2"}}"#;
    let sign = |key: &[u8], id: &str| {
        let when = crate::preset_proofs::rfc3339(now(), ".123456789", 0);
        let sig = hex::encode(hmac256(
            key,
            &[id.as_bytes(), when.as_bytes(), body.as_bytes()],
        ));
        vec![
            ("twitch-eventsub-message-id", id.to_owned()),
            ("twitch-eventsub-message-timestamp", when),
            (
                "twitch-eventsub-message-type",
                "webhook_callback_verification".to_owned(),
            ),
            ("twitch-eventsub-message-signature", format!("sha256={sig}")),
        ]
    };
    let answer = send(hg.addr, "POST", "/hook", &sign(secret, "m-1"), body).await;
    assert_eq!(answer.status, 200);
    assert_eq!(&answer.body[..], b"pogchamp-kappa-360noscope-vohiyo");
    assert!(answer.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let answer = send(
        hg.addr,
        "POST",
        "/hook",
        &sign(b"not-the-secret", "m-2"),
        body,
    )
    .await;
    assert_eq!(answer.reject(), Some("bad_signature"));
    assert_eq!(upstream.count(), 0);
}

#[tokio::test]
async fn xero_intent_to_receive_gets_200_without_a_body_when_signed_and_401_when_not() {
    // developer.xero.com/documentation/webhooks/configuring-your-server:
    // validation POSTs carry no events; 200 with no body for the correctly
    // signed ones, 401 for the others.
    let key = "xero-webhook-key";
    let (upstream, hg) = start(&format!(
        "scheme = \"xero\"\nsecrets = [{{ value = \"{key}\" }}]"
    ))
    .await;
    let sign = |key: &str, body: &str| {
        vec![(
            "x-xero-signature",
            B64.encode(hmac256(key.as_bytes(), &[body.as_bytes()])),
        )]
    };
    let validation = |entropy: &str| {
        format!(
            r#"{{"events":[],"lastEventSequence":0,"firstEventSequence":0,"entropy":"{entropy}"}}"#
        )
    };
    for entropy in ["S0m3r4Nd0mt3xt", "An0th3rR4nd0m"] {
        let body = validation(entropy);
        let answer = send(hg.addr, "POST", "/hook", &sign(key, &body), body.clone()).await;
        assert_eq!((answer.status, answer.reject()), (200, None), "{answer:?}");
        assert!(answer.body.is_empty(), "no body: {:?}", answer.body);
        assert!(!answer.headers.contains_key("set-cookie"));
        let answer = send(hg.addr, "POST", "/hook", &sign("wrong-key", &body), body).await;
        assert_eq!(
            (answer.status, answer.reject()),
            (401, Some("bad_signature"))
        );
    }
    assert_eq!(
        upstream.count(),
        0,
        "validation requests stay with hookguard"
    );
    // A delivery with events goes to the app.
    let body = r#"{"events":[{"resourceId":"r1","eventCategory":"INVOICE","eventType":"UPDATE"}],"lastEventSequence":1,"firstEventSequence":1,"entropy":"x"}"#;
    let answer = send(hg.addr, "POST", "/hook", &sign(key, body), body).await;
    assert_eq!((answer.status, answer.reject()), (200, None));
    assert_eq!(upstream.count(), 1);
}

#[tokio::test]
async fn dropbox_and_nylas_challenges_are_echoed_as_text_and_only_when_token_shaped() {
    for scheme in ["dropbox", "nylas"] {
        let (upstream, hg) = start(&format!(
            "scheme = \"{scheme}\"\nsecrets = [{{ value = \"app-secret\" }}]"
        ))
        .await;
        let answer = send(hg.addr, "GET", "/hook?challenge=a1B2c3-d4_e5", &[], "").await;
        assert_eq!(
            (answer.status, &answer.body[..]),
            (200, &b"a1B2c3-d4_e5"[..]),
            "{scheme}"
        );
        assert_eq!(answer.headers["x-content-type-options"], "nosniff");
        let answer = send(hg.addr, "GET", "/hook?challenge=%3Cscript%3E", &[], "").await;
        assert_eq!(answer.reject(), Some("malformed_request"), "{scheme}");
        assert_eq!(upstream.count(), 0);
    }
}

#[tokio::test]
async fn worldline_verification_get_is_answered_with_its_header_value() {
    // docs.connect.worldline-solutions.com/documentation/webhooks: "respond
    // to the GET action and echo the X-GCS-Webhooks-Endpoint-Verification
    // header value in the body".
    let (upstream, hg) =
        start("scheme = \"worldline\"\nsecrets = [{ value = \"webhook-key\" }]").await;
    let header = "x-gcs-webhooks-endpoint-verification";
    let token = "2b5e3c1a-9f4d-4c55-8a1e-7e3f0b6d2c11";
    let answer = send(hg.addr, "GET", "/hook", &[(header, token.to_owned())], "").await;
    assert_eq!((answer.status, &answer.body[..]), (200, token.as_bytes()));
    assert_eq!(answer.headers["x-hookguard-answered"], "challenge");
    assert!(answer.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    // Nothing a browser could read as markup is reflected.
    let answer = send(
        hg.addr,
        "GET",
        "/hook",
        &[(header, "<b>hi</b>".to_owned())],
        "",
    )
    .await;
    assert_eq!(answer.reject(), Some("malformed_request"));
    // A GET without the header is an unsigned request, refused.
    let answer = send(hg.addr, "GET", "/hook", &[], "").await;
    assert_eq!(answer.reject(), Some("missing_signature"));
    assert_eq!(upstream.count(), 0);
}

#[tokio::test]
async fn asana_handshake_is_echoed_only_for_the_routes_own_secret() {
    // developers.asana.com/docs/webhooks-guide: the handshake is a POST
    // with X-Hook-Secret, answered 200 with the same X-Hook-Secret.
    let (upstream, hg) =
        start("scheme = \"asana\"\nsecrets = [{ value = \"0f1e2d3c4b5a69788796a5b4c3d2e1f0\" }]")
            .await;
    let secret = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
    let answer = handshake(&hg, secret).await;
    assert_eq!((answer.status, answer.reject()), (200, None));
    assert_eq!(answer.headers["x-hook-secret"], secret);
    assert_eq!(answer.headers["x-hookguard-answered"], "challenge");
    // Any other value is refused and never echoed: no oracle, and no
    // webhook of someone else's confirmed through this URL.
    for other in ["0f1e2d3c4b5a69788796a5b4c3d2e1f1", "short", "<b>"] {
        let answer = handshake(&hg, other).await;
        assert_eq!(
            answer.status,
            if other == "<b>" { 400 } else { 401 },
            "{other}"
        );
        assert!(!answer.headers.contains_key("x-hook-secret"));
        assert!(!answer
            .body
            .windows(other.len())
            .any(|w| w == other.as_bytes()));
    }
    // Deliveries are verified as ever.
    let body = r#"{"events":[{"action":"changed"}]}"#;
    let signed = vec![("x-hook-signature", hmac_hex(secret, body.as_bytes()))];
    assert_eq!(
        send(hg.addr, "POST", "/hook", &signed, body).await.reject(),
        None
    );
    assert_eq!(upstream.count(), 1, "only the delivery reached the app");
}

/// Asana's handshake carrying `value`.
async fn handshake(hg: &Hookguard, value: &str) -> Answer {
    let headers = [("x-hook-secret", value.to_owned())];
    send(hg.addr, "POST", "/hook", &headers, "").await
}

/// Sends until `done` holds for the answer (bounded: 10 s).
async fn until(
    hg: &Hookguard,
    headers: &[(&str, String)],
    body: &str,
    done: impl Fn(&Answer) -> bool,
) -> Answer {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = send(hg.addr, "POST", "/hook", headers, body.to_owned()).await;
        if done(&answer) || Instant::now() > deadline {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A reloading hookguard whose one route learns its secret into a file.
async fn learning(scheme: &str) -> (Upstream, Hookguard, TempDir, std::path::PathBuf) {
    let upstream = Upstream::start().await;
    let dir = TempDir::new("learn");
    let file = dir.0.join("learned.secret");
    let config = dir.0.join("hookguard.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nupstream = \"{}\"\nreload_interval = \"100ms\"\n\n[[routes]]\nname = \"c\"\npath = \"/hook\"\nscheme = \"{scheme}\"\nlearn_secret_file = \"{}\"\n",
            upstream.url(),
            file.display()
        ),
    )
    .unwrap();
    let hg = Hookguard::start_reloading(&config).await;
    (upstream, hg, dir, file)
}

#[tokio::test]
async fn asana_route_learns_the_handshake_secret_once_into_its_file() {
    use std::os::unix::fs::PermissionsExt;
    let (upstream, hg, _dir, file) = learning("asana").await;
    let secret = "a8c1f3e27d9b4c6a8e0f1d2c3b4a5968";
    let body = r#"{"events":[]}"#;
    let signed = vec![("x-hook-signature", hmac_hex(secret, body.as_bytes()))];
    // No secret yet: deliveries are refused.
    let answer = send(hg.addr, "POST", "/hook", &signed, body).await;
    assert_eq!(answer.reject(), Some("bad_signature"));
    // The handshake is answered and its secret written, privately.
    let answer = handshake(&hg, secret).await;
    assert_eq!((answer.status, answer.reject()), (200, None), "{answer:?}");
    assert_eq!(answer.headers["x-hook-secret"], secret);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), secret);
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    // A second handshake (someone racing the first) learns nothing.
    let other = "ffffffffffffffffffffffffffffffff";
    let answer = handshake(&hg, other).await;
    assert_eq!(answer.reject(), Some("bad_signature"));
    assert!(!answer.headers.contains_key("x-hook-secret"));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), secret);
    // The reload reads the file: deliveries signed with it now pass.
    let answer = until(&hg, &signed, body, |a| a.status == 200).await;
    assert_eq!((answer.status, answer.reject()), (200, None), "{answer:?}");
    assert_eq!(
        upstream.last().headers["x-verified-by"],
        "hookguard; route=c; scheme=asana; key=learned"
    );
    // And the handshake with the learned secret is still confirmed.
    let answer = handshake(&hg, secret).await;
    assert_eq!(answer.status, 200);
    assert_eq!(upstream.count(), 1);
    // Another secret now is refused, saying how to learn anew.
    let answer = handshake(&hg, other).await;
    assert_eq!(answer.reject(), Some("bad_signature"));
    let detail = answer.json()["detail"].as_str().unwrap().to_owned();
    assert!(detail.contains("has one already"), "{detail}");
    assert!(
        !detail.contains(other) && !detail.contains(secret),
        "{detail}"
    );
}

#[tokio::test]
async fn notion_verification_token_is_learned_into_its_file_once() {
    // developers.notion.com/reference/webhooks: one unsigned POST with
    // {"verification_token": ..}; the token then keys X-Notion-Signature.
    let (upstream, hg, _dir, file) = learning("notion").await;
    let token = "secret_tMrlL1qK5vuQAh1b6cZGhFChZTSYJlce98V0pYn7yBl";
    let verification = format!(r#"{{"verification_token":"{token}"}}"#);
    let answer = send(hg.addr, "POST", "/hook", &[], verification.clone()).await;
    assert_eq!((answer.status, answer.reject()), (200, None), "{answer:?}");
    assert!(answer.body.is_empty());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), token);
    // A second token is refused; the file keeps the first.
    let answer = send(
        hg.addr,
        "POST",
        "/hook",
        &[],
        r#"{"verification_token":"secret_other"}"#,
    )
    .await;
    assert_eq!(answer.reject(), Some("bad_signature"));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), token);
    let body = r#"{"id":"evt-1","type":"page.created"}"#;
    let signed = vec![(
        "x-notion-signature",
        format!("sha256={}", hmac_hex(token, body.as_bytes())),
    )];
    let answer = until(&hg, &signed, body, |a| a.status == 200).await;
    assert_eq!((answer.status, answer.reject()), (200, None), "{answer:?}");
    assert_eq!(
        upstream.count(),
        1,
        "the verification never reached the app"
    );
}

#[tokio::test]
async fn trello_head_and_woocommerce_ping_are_answered_without_reaching_the_app() {
    let upstream = Upstream::start().await;
    let text = "[server]\nupstream = \"{upstream}\"\n\n[[routes]]\nname = \"trello\"\npath = \"/trello\"\nmethods = [\"POST\", \"HEAD\"]\nscheme = \"trello\"\npublic_url = \"https://hooks.example.com/trello\"\nsecrets = [{ value = \"trello-secret\" }]\n\n[[routes]]\nname = \"woo\"\npath = \"/woo\"\nscheme = \"woocommerce\"\nsecrets = [{ value = \"woo-secret\" }]\n";
    let hg = Hookguard::start(text, &upstream.url()).await;
    // developer.atlassian.com/cloud/trello/guides/rest-api/webhooks: a HEAD
    // to the callback URL when the webhook is created.
    let answer = send(hg.addr, "HEAD", "/trello", &[], "").await;
    assert_eq!((answer.status, answer.reject()), (200, None));
    assert!(answer.body.is_empty());
    // WooCommerce's WC_Webhook::deliver_ping: POST "webhook_id=<id>",
    // unsigned, which must get exactly 200.
    let form = vec![(
        "content-type",
        "application/x-www-form-urlencoded".to_owned(),
    )];
    let answer = send(hg.addr, "POST", "/woo", &form, "webhook_id=42").await;
    assert_eq!((answer.status, answer.reject()), (200, None));
    assert!(answer.body.is_empty());
    // Anything more than the ping is an unsigned request, refused.
    for body in ["webhook_id=42&total=1", "webhook_id=", "webhook_id=4x"] {
        let answer = send(hg.addr, "POST", "/woo", &form, body).await;
        assert_eq!(answer.reject(), Some("missing_signature"), "{body}");
    }
    assert_eq!(upstream.count(), 0);
}

/// The errors of a stripe route with `extra` keys.
fn stripe_route_errors(extra: &str) -> String {
    let text = format!("[server]\nupstream = \"http://127.0.0.1:9\"\n[[routes]]\nname = \"c\"\npath = \"/c\"\nscheme = \"stripe\"\nsecrets = [{{ value = \"s\" }}]\n{extra}\n");
    hookguard::config::Config::from_toml(&text, &|_: &str| None::<String>)
        .expect_err("refused")
        .to_string()
}

#[test]
fn learn_secret_file_is_only_for_senders_that_send_their_secret() {
    let errors = stripe_route_errors("learn_secret_file = \"/tmp/x\"");
    assert!(
        errors.contains(r#"routes[0] ("c").learn_secret_file: scheme stripe sends no secret in its setup request; learn_secret_file is only for asana, notion"#),
        "{errors}"
    );
    let text = "[server]\nupstream = \"http://127.0.0.1:9\"\n[[routes]]\nname = \"c\"\npath = \"/c\"\nscheme = \"asana\"\nlearn_secret_file = \"/tmp/x\"\nanswer_challenges = false\n";
    let errors = hookguard::config::Config::from_toml(text, &|_: &str| None::<String>)
        .expect_err("refused")
        .to_string();
    assert!(
        errors.contains(r#"routes[0] ("c").learn_secret_file: learns from the setup request"#),
        "{errors}"
    );
}

#[tokio::test]
async fn answer_challenges_false_leaves_them_to_the_app_as_before() {
    let (upstream, hg) = start(
        "scheme = \"dropbox\"\nsecrets = [{ value = \"app-secret\" }]\nanswer_challenges = false",
    )
    .await;
    let answer = send(hg.addr, "GET", "/hook?challenge=abc", &[], "").await;
    assert_eq!(answer.reject(), Some("missing_signature"));
    assert_eq!(upstream.count(), 0);
}

#[test]
fn answer_challenges_is_refused_where_the_scheme_has_none() {
    let errors = stripe_route_errors("answer_challenges = true");
    assert!(
        errors.contains(r#"routes[0] ("c").answer_challenges: scheme stripe has no endpoint challenge hookguard answers; answer_challenges is only for zoom, worldline, x, twitter, twitch, asana, trello, notion, dropbox, nylas, xero, woocommerce"#),
        "{errors}"
    );
}
