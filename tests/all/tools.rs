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
        "hookguard_headers_dropped_total",
        "hookguard_late_answers_total",
        "hookguard_connections_closed_total",
        "hookguard_replay_snapshots_total",
        "hookguard_cert_fetches_total",
        "hookguard_cert_cache_entries",
        "hookguard_cert_cache_oldest_age_seconds",
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

/// A route with every check `verify` and the proxy share: a method list,
/// content types, a small body limit, a signature and a window.
const PARITY_CONFIG: &str = r#"
[server]
upstream = "{upstream}"

[[routes]]
name = "vendor"
path = "/vendor/*"
scheme = "hmac"
secrets = [{ value = "tools-secret-5b7e", id = "current" }]
methods = ["POST"]
content_types = ["application/json"]
max_body = "64B"
tolerance = "5m"

[routes.hmac]
header = "X-Vendor-Signature"
prefix = "sha256="
message = "{body}.{timestamp}"
timestamp_header = "X-Vendor-Timestamp"
"#;

/// A raw capture: `method`, content type, body, and the timestamp and
/// secret it is signed with (no signature header when `secret` is empty).
fn parity_capture(method: &str, content_type: &str, body: &str, ts: i64, secret: &str) -> String {
    let signature = if secret.is_empty() {
        String::new()
    } else {
        let sig = hmac_hex(secret, format!("{body}.{ts}").as_bytes());
        format!("X-Vendor-Signature: sha256={sig}\r\n")
    };
    format!(
        "{method} /vendor/in HTTP/1.1\r\nHost: hooks.example.com\r\nContent-Type: {content_type}\r\n{signature}X-Vendor-Timestamp: {ts}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// What the running proxy did with raw request bytes: `None` when it
/// forwarded them (the app answered), else its reason.
async fn proxy_verdict(addr: std::net::SocketAddr, raw: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(raw.as_bytes()).await.unwrap();
    stream.shutdown().await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        stream.read_to_end(&mut answer),
    )
    .await;
    let answer = text(&answer).to_ascii_lowercase();
    assert!(answer.starts_with("http/1.1 "), "no answer: {answer:?}");
    answer
        .lines()
        .find_map(|l| l.strip_prefix("x-hookguard-reject: "))
        .map(|r| r.trim().to_owned())
}

#[tokio::test]
async fn verify_and_the_running_proxy_give_the_same_verdict_on_every_capture() {
    let upstream = Upstream::start().await;
    let hg = Hookguard::start(PARITY_CONFIG, &upstream.url()).await;
    let config = hookguard::config::Config::from_toml(
        &PARITY_CONFIG.replace("{upstream}", &upstream.url()),
        &|_: &str| None,
    )
    .unwrap();
    let route = &config.routes[0];
    let t = now();
    let json = "application/json";
    let table: Vec<(&str, String, Option<&str>)> = vec![
        (
            "signed JSON",
            parity_capture("POST", json, r#"{"n":1}"#, t, SECRET),
            None,
        ),
        (
            "signed, but text/plain (the drift the review found)",
            parity_capture("POST", "text/plain", r#"{"n":2}"#, t, SECRET),
            Some("unsupported_media_type"),
        ),
        (
            "PUT",
            parity_capture("PUT", json, r#"{"n":3}"#, t, SECRET),
            Some("method_not_allowed"),
        ),
        (
            "over max_body",
            parity_capture(
                "POST",
                json,
                &format!(r#"{{"pad":"{}"}}"#, "x".repeat(80)),
                t,
                SECRET,
            ),
            Some("body_too_large"),
        ),
        (
            "wrong secret",
            parity_capture("POST", json, r#"{"n":4}"#, t, "someone-elses"),
            Some("bad_signature"),
        ),
        (
            "unsigned",
            parity_capture("POST", json, r#"{"n":5}"#, t, ""),
            Some("missing_signature"),
        ),
        (
            "an hour old",
            parity_capture("POST", json, r#"{"n":6}"#, t - 3600, SECRET),
            Some("stale_timestamp"),
        ),
        (
            "ten minutes ahead",
            parity_capture("POST", json, r#"{"n":7}"#, t + 600, SECRET),
            Some("future_timestamp"),
        ),
    ];
    for (case, raw, expected) in table {
        let captured = hookguard::cli::verify::parse(raw.as_bytes()).unwrap();
        let (report, forwards) =
            hookguard::cli::verify::explain(&config.server, route, &captured, now());
        let proxy = proxy_verdict(hg.addr, &raw).await;
        assert_eq!(proxy.as_deref(), expected, "{case}: the proxy's verdict");
        match expected {
            None => assert!(forwards, "{case}: verify must say forward\n{report}"),
            Some(reason) => {
                assert!(!forwards, "{case}: verify must not say forward\n{report}");
                let result = report
                    .lines()
                    .find(|l| l.starts_with("result: "))
                    .unwrap_or_default();
                assert!(
                    result.contains(&format!(" {reason}:")),
                    "{case}: verify's result names {reason}: {result}"
                );
            }
        }
    }
    assert_eq!(upstream.count(), 1, "only the good capture reached the app");
}

#[tokio::test]
async fn replay_forget_makes_a_live_hookguard_forward_a_copy_again() {
    let upstream = Upstream::start().await;
    let hg = Hookguard::start(CONFIG, &upstream.url()).await;
    // The CLI finds the admin listener in the config, as an operator's would.
    let config = config_file("forget", &upstream.url());
    let text_config = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text_config.replace(
            "[server]\n",
            &format!("[server]\nadmin_listen = \"{}\"\n", hg.admin),
        ),
    )
    .unwrap();
    let body = r#"{"id":"inv_forget"}"#;
    let ts = now().to_string();
    let signature = hmac_hex(SECRET, format!("{body}.{ts}").as_bytes());
    let headers = vec![
        ("x-vendor-signature", format!("sha256={signature}")),
        ("x-vendor-timestamp", ts),
    ];
    let post = || send(hg.addr, "POST", "/vendor/x", &headers, body);
    assert_eq!(post().await.status, 200);
    assert_eq!(post().await.reject(), Some("duplicate"));

    let forget = |source: &str, value: &str| {
        hookguard(vec![
            "replay".into(),
            "forget".into(),
            "--config".into(),
            config.display().to_string(),
            "--route".into(),
            "vendor".into(),
            "--source".into(),
            source.into(),
            "--value".into(),
            value.into(),
        ])
    };
    for (source, value) in [
        ("signature", signature.as_str()),
        ("json:/id", "inv_forget"),
    ] {
        let output = forget(source, value).await;
        assert_eq!(
            text(&output.stdout),
            "removed 1\n",
            "{}",
            text(&output.stderr)
        );
        assert!(output.status.success());
    }
    let again = forget("json:/id", "inv_forget").await;
    assert_eq!(text(&again.stdout), "removed 0\n");
    assert_eq!(again.status.code(), Some(1), "nothing removed is a no");
    let refused = forget("header:X-Other", "x").await;
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        text(&refused.stderr).contains(r#"source: "header:X-Other" is not in route "vendor""#),
        "{}",
        text(&refused.stderr)
    );

    let copy = post().await;
    assert_eq!((copy.status, copy.reject()), (200, None));
    assert_eq!(upstream.count(), 2);
    std::fs::remove_file(config).unwrap();
}

/// A route that dedupes on a header the scheme does not set, and a GET
/// route: what `sign` must fill in and leave out.
const HEADER_DEDUPE_CONFIG: &str = r#"
[server]
upstream = "{upstream}"

[[routes]]
name = "zorio"
path = "/zorio"
scheme = "hmac"
secrets = [{ value = "tools-secret-5b7e" }]
dedupe = ["header:X-Zorio-Delivery"]

[routes.hmac]
header = "X-Zorio-Signature"
message = "{header:X-Zorio-Tenant}.{body}"

[[routes]]
name = "poll"
path = "/poll"
methods = ["GET"]
scheme = "hmac"
secrets = [{ value = "tools-secret-5b7e" }]

[routes.hmac]
header = "X-Poll-Signature"
"#;

#[tokio::test]
async fn sign_fills_every_header_the_route_dedupes_on_or_signs_and_sends_get_without_a_body() {
    let path =
        std::env::temp_dir().join(format!("hookguard-tools-zorio-{}.toml", std::process::id()));
    std::fs::write(
        &path,
        HEADER_DEDUPE_CONFIG.replace("{upstream}", "http://127.0.0.1:9"),
    )
    .unwrap();
    let sign = |route: &str| {
        hookguard(vec![
            "sign".into(),
            "--config".into(),
            path.display().to_string(),
            "--route".into(),
            route.into(),
        ])
    };
    let zorio = text(&sign("zorio").await.stdout);
    let header = |out: &str, name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")).map(str::to_owned))
    };
    let delivery = header(&zorio, "x-zorio-delivery").expect("the dedupe header is set");
    assert!(delivery.starts_with("hg_test_"), "{zorio}");
    assert!(header(&zorio, "x-zorio-tenant").is_some(), "{zorio}");
    let again = text(&sign("zorio").await.stdout);
    assert_ne!(
        header(&again, "x-zorio-delivery"),
        Some(delivery),
        "each test event is a new delivery"
    );
    let poll = text(&sign("poll").await.stdout);
    assert!(poll.contains("curl -i -X GET"), "{poll}");
    assert!(!poll.contains("--data-binary"), "{poll}");
    assert!(header(&poll, "content-type").is_none(), "{poll}");
    std::fs::remove_file(path).unwrap();
}

#[tokio::test]
async fn sign_send_prints_the_answers_headers_so_hookguards_refusal_shows() {
    let upstream = Upstream::start().await;
    // hookguard knows another secret than the config `sign` reads.
    let hg = Hookguard::start(&CONFIG.replace(SECRET, "another-secret"), &upstream.url()).await;
    let config = config_file("refused", &upstream.url());
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
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.starts_with("HTTP/1.1 401 Unauthorized\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("\nx-hookguard-reject: bad_signature\n"),
        "{stdout}"
    );
    assert!(stdout.contains("\nx-request-id: "), "{stdout}");
    assert!(
        stdout.contains("\n\n{\"error\":\"bad_signature\""),
        "{stdout}"
    );
    assert_eq!(upstream.count(), 0);
    std::fs::remove_file(config).unwrap();
}
