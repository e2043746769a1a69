//! The operator's tools against real things: `hookguard sign` output sent by
//! hand and `sign --send` against a live hookguard, `hookguard verify` on
//! captured good and bad requests, and `/metrics` checked by `promtool`.

use crate::support;

use std::path::PathBuf;
use std::process::{Command, Output};

use support::{hmac_hex, now, send, Hookguard, Upstream};

const SECRET: &str = "tools-secret-5b7e";

const CONFIG: &str = r#"
[server]
upstream = "{upstream}"

[[routes]]
name = "vendor"
path = "/vendor/*"
scheme = "hmac"
secrets = [{ value = "tools-secret-5b7e", id = "current" }]
dedupe = ["signature", "json:/id"]

[routes.hmac]
header = "X-Vendor-Signature"
prefix = "sha256="
message = "{body}.{timestamp}"
timestamp_header = "X-Vendor-Timestamp"
"#;

/// Writes the config (with the upstream filled in) to a temp file.
fn config_file(name: &str, upstream: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "hookguard-tools-{name}-{}.toml",
        std::process::id()
    ));
    std::fs::write(&path, CONFIG.replace("{upstream}", upstream)).unwrap();
    path
}

async fn hookguard(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_hookguard"))
            .args(&args)
            .output()
            .expect("the hookguard binary runs")
    })
    .await
    .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn sign_send_is_accepted_by_a_live_hookguard() {
    let upstream = Upstream::start().await;
    let hg = Hookguard::start(CONFIG, &upstream.url()).await;
    let config = config_file("send", &upstream.url());
    for round in 1..=2 {
        let output = hookguard(vec![
            "sign".into(),
            "--config".into(),
            config.display().to_string(),
            "--route".into(),
            "vendor".into(),
            "--send".into(),
            format!("http://{}", hg.addr),
        ])
        .await;
        let stdout = text(&output.stdout);
        assert!(output.status.success(), "{stdout}{}", text(&output.stderr));
        assert!(stdout.starts_with("HTTP/1.1 200 OK"), "{stdout}");
        assert!(stdout.contains("app says hi"), "{stdout}");
        assert_eq!(
            upstream.count(),
            round,
            "every test event is a new delivery"
        );
    }
    let seen = upstream.last();
    assert_eq!(seen.path, "/vendor/test");
    assert_eq!(
        seen.headers["x-verified-by"],
        "hookguard; route=vendor; scheme=hmac; key=current"
    );
    let event: serde_json::Value = serde_json::from_slice(&seen.body).unwrap();
    assert_eq!(event["type"], "hookguard.test");
    std::fs::remove_file(config).unwrap();
}

#[tokio::test]
async fn printed_sign_headers_work_when_sent_by_hand() {
    let upstream = Upstream::start().await;
    let hg = Hookguard::start(CONFIG, &upstream.url()).await;
    let config = config_file("print", &upstream.url());
    let body =
        std::env::temp_dir().join(format!("hookguard-tools-body-{}.json", std::process::id()));
    std::fs::write(&body, r#"{"id":"inv_9","total":"9,99 €"}"#).unwrap();
    let output = hookguard(vec![
        "sign".into(),
        "--config".into(),
        config.display().to_string(),
        "--route".into(),
        "vendor".into(),
        "--body".into(),
        body.display().to_string(),
        "--path".into(),
        "/vendor/invoices".into(),
    ])
    .await;
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.contains("curl -i -X POST 'http://127.0.0.1:"),
        "{stdout}"
    );
    assert!(stdout.contains("--data-binary @"), "{stdout}");
    assert!(!stdout.contains(SECRET));
    let headers: Vec<(&str, String)> = stdout
        .lines()
        .take_while(|l| !l.is_empty())
        .map(|l| {
            let (name, value) = l.split_once(": ").unwrap();
            (name, value.to_owned())
        })
        .collect();
    let names: Vec<&str> = headers.iter().map(|(n, _)| *n).collect();
    assert!(
        names.contains(&"x-vendor-signature") && names.contains(&"x-vendor-timestamp"),
        "{names:?}"
    );
    let answer = send(
        hg.addr,
        "POST",
        "/vendor/invoices",
        &headers,
        std::fs::read(&body).unwrap(),
    )
    .await;
    assert_eq!((answer.status, answer.reject()), (200, None));
    std::fs::remove_file(config).unwrap();
    std::fs::remove_file(body).unwrap();
}

/// A captured request for the vendor route, signed with `secret`, with
/// `sent` as the body on the wire (the signature covers `signed`).
fn capture(secret: &str, signed: &str, sent: &str, ts: i64) -> (PathBuf, String) {
    let sig = hmac_hex(secret, format!("{signed}.{ts}").as_bytes());
    let raw = format!(
        "POST /vendor/in HTTP/1.1\r\nHost: hooks.example.com\r\nX-Vendor-Signature: sha256={sig}\r\nX-Vendor-Timestamp: {ts}\r\nContent-Length: {}\r\n\r\n{sent}",
        sent.len()
    );
    let path = std::env::temp_dir().join(format!(
        "hookguard-capture-{}-{}.http",
        std::process::id(),
        hmac_hex("n", format!("{secret}{sent}{ts}").as_bytes())
    ));
    std::fs::write(&path, raw).unwrap();
    (path, sig)
}

async fn verify(config: &std::path::Path, request: &std::path::Path) -> (bool, String) {
    let output = hookguard(vec![
        "verify".into(),
        "--config".into(),
        config.display().to_string(),
        "--route".into(),
        "vendor".into(),
        "--request".into(),
        request.display().to_string(),
    ])
    .await;
    (
        output.status.success(),
        text(&output.stdout) + &text(&output.stderr),
    )
}

#[tokio::test]
async fn verify_explains_good_changed_and_wrongly_signed_captures() {
    let config = config_file("verify", "http://127.0.0.1:9");
    let body = r#"{"id":"evt_7","amount":5}"#;

    let (good, _) = capture(SECRET, body, body, now());
    let (ok, report) = verify(&config, &good).await;
    assert!(ok, "{report}");
    assert!(
        report.contains("signature: OK, matched secret \"current\""),
        "{report}"
    );
    assert!(report.contains("inside the window"), "{report}");
    assert!(
        report
            .contains("result: hookguard would forward this request with hookguard; route=vendor"),
        "{report}"
    );

    let pretty =
        serde_json::to_string_pretty(&serde_json::from_str::<serde_json::Value>(body).unwrap())
            .unwrap();
    let (changed, _) = capture(SECRET, body, &pretty, now());
    let (ok, report) = verify(&config, &changed).await;
    assert!(!ok, "{report}");
    assert!(report.contains("401 bad_signature"), "{report}");
    assert!(report.contains("the BODY CHANGED"), "{report}");
    assert!(report.contains("re-formatted (pretty-printed)"), "{report}");
    assert!(!report.contains(SECRET));

    let (wrong, _) = capture("someone-elses-secret", body, body, now());
    let (ok, report) = verify(&config, &wrong).await;
    assert!(!ok, "{report}");
    assert!(report.contains("SECRET IS MOST LIKELY WRONG"), "{report}");
    assert!(report.contains("secrets tried: 1 (current)"), "{report}");
    // "{body}.{timestamp}": the body, a dot and ten digits.
    let signed_len = format!("signed message: {} bytes", body.len() + 11);
    assert!(report.contains(&signed_len), "{report}");
    let right = hmac_hex(SECRET, format!("{body}.{}", now()).as_bytes());
    assert!(
        !report.contains(&right[..16]),
        "the expected signature must never be printed"
    );

    let (stale, _) = capture(SECRET, body, body, now() - 3600);
    let (ok, report) = verify(&config, &stale).await;
    assert!(!ok);
    assert!(
        report.contains("signature: OK") && report.contains("stale_timestamp"),
        "{report}"
    );

    for path in [good, changed, wrong, stale, config] {
        std::fs::remove_file(path).unwrap();
    }
}

#[tokio::test]
async fn every_metric_family_exists_at_startup_and_passes_promtool() {
    let upstream = Upstream::start().await;
    let hg = Hookguard::start(CONFIG, &upstream.url()).await;
    let (_, page) = support::admin_get(hg.admin, "/metrics").await;
    for family in [
        "hookguard_requests_total",
        "hookguard_rejections_total",
        "hookguard_request_duration_seconds",
        "hookguard_upstream_duration_seconds",
        "hookguard_upstream_responses_total",
        "hookguard_secret_matches_total",
        "hookguard_timestamp_skew_seconds",
        "hookguard_replay_entries",
        "hookguard_replay_evictions_total",
        "hookguard_config_reloads_total",
        "hookguard_build_info",
    ] {
        assert!(
            page.contains(&format!("# TYPE {family} ")),
            "{family} missing from:\n{page}"
        );
    }
    assert_eq!(
        support::metric(
            &page,
            "hookguard_secret_matches_total{key=\"current\",route=\"vendor\"}"
        ),
        Some(0.0)
    );
    assert_eq!(
        support::metric(&page, "hookguard_config_reloads_total{result=\"error\"}"),
        Some(0.0)
    );
    assert_eq!(
        support::metric(
            &page,
            "hookguard_replay_evictions_total{cause=\"capacity\"}"
        ),
        Some(0.0)
    );

    // Traffic: one forwarded with a sender clock 20 s ahead, one replay, one forged.
    let body = r#"{"id":"m1"}"#;
    let ts = now() + 20;
    let headers = vec![
        (
            "x-vendor-signature",
            hmac_hex(SECRET, format!("{body}.{ts}").as_bytes()),
        ),
        ("x-vendor-timestamp", ts.to_string()),
    ];
    assert_eq!(
        send(hg.addr, "POST", "/vendor/a", &headers, body)
            .await
            .status,
        200
    );
    assert_eq!(
        send(hg.addr, "POST", "/vendor/a", &headers, body)
            .await
            .reject(),
        Some("duplicate")
    );
    let forged = vec![
        headers[0].clone(),
        ("x-vendor-timestamp", (ts + 1).to_string()),
    ];
    assert_eq!(
        send(hg.addr, "POST", "/vendor/a", &forged, body)
            .await
            .reject(),
        Some("bad_signature")
    );

    let (_, page) = support::admin_get(hg.admin, "/metrics").await;
    let value = |s: &str| support::metric(&page, s);
    assert_eq!(
        value("hookguard_requests_total{outcome=\"forwarded\",route=\"vendor\"}"),
        Some(1.0)
    );
    assert_eq!(
        value("hookguard_requests_total{outcome=\"duplicate\",route=\"vendor\"}"),
        Some(1.0)
    );
    assert_eq!(
        value("hookguard_rejections_total{reason=\"bad_signature\",route=\"vendor\"}"),
        Some(1.0)
    );
    assert_eq!(
        value("hookguard_secret_matches_total{key=\"current\",route=\"vendor\"}"),
        Some(2.0)
    );
    assert_eq!(
        value("hookguard_upstream_responses_total{code=\"2xx\",route=\"vendor\"}"),
        Some(1.0)
    );
    assert_eq!(
        value("hookguard_upstream_duration_seconds_count{route=\"vendor\"}"),
        Some(1.0)
    );
    assert_eq!(
        value("hookguard_request_duration_seconds_count{route=\"vendor\"}"),
        Some(3.0)
    );
    assert_eq!(
        value("hookguard_timestamp_skew_seconds_count{direction=\"ahead\",route=\"vendor\"}"),
        Some(2.0)
    );
    assert_eq!(value("hookguard_timestamp_skew_seconds_bucket{direction=\"ahead\",route=\"vendor\",le=\"15\"}"), Some(0.0));
    assert_eq!(value("hookguard_timestamp_skew_seconds_bucket{direction=\"ahead\",route=\"vendor\",le=\"30\"}"), Some(2.0));
    assert_eq!(
        value("hookguard_replay_entries"),
        Some(2.0),
        "signature and json:/id keys"
    );
    assert_eq!(
        value(&format!(
            "hookguard_build_info{{version=\"{}\"}}",
            env!("CARGO_PKG_VERSION")
        )),
        Some(1.0)
    );

    support::promtool_check_metrics(&page);
}
