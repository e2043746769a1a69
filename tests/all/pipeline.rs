//! The request pipeline end to end: a real hookguard in front of a real
//! recording upstream, every answer hookguard can give before forwarding.

use crate::support;

use std::time::Duration;

use support::{hmac_hex, now, send, Hookguard, Upstream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SECRET: &str = "crm-secret";

const CONFIG: &str = r#"
[server]
upstream = "{upstream}"
upstream_timeout = "2s"
body_timeout = "1s"

[[routes]]
name = "crm"
path = "/crm/callback"
methods = ["POST", "PUT"]
scheme = "hmac"
secrets = [{ value = "crm-secret", id = "current" }]
max_body = "1KiB"

[routes.hmac]
header = "X-Signature"
prefix = "sha256="
timestamp_header = "X-Timestamp"
"#;

fn signed(body: &[u8], ts: i64) -> Vec<(&'static str, String)> {
    vec![
        ("x-signature", format!("sha256={}", hmac_hex(SECRET, body))),
        ("x-timestamp", ts.to_string()),
        ("content-type", "application/json".to_owned()),
    ]
}

async fn setup() -> (Upstream, Hookguard) {
    let upstream = Upstream::start().await;
    let hookguard = Hookguard::start(CONFIG, &upstream.url()).await;
    (upstream, hookguard)
}

#[tokio::test]
async fn a_valid_delivery_reaches_the_app_byte_identical_and_marked_verified() {
    let (upstream, hg) = setup().await;
    let body = "{\"id\":\"évt_1\",\"note\":\"Grüße 🚀 — 12,50 €\"}"
        .as_bytes()
        .to_vec();
    let mut headers = signed(&body, now());
    headers.push((
        "x-verified-by",
        "hookguard; route=crm; scheme=hmac; key=forged".to_owned(),
    ));
    headers.push(("x-hookguard-shadow", "spoofed".to_owned()));
    headers.push(("connection", "keep-alive, x-drop-me".to_owned()));
    headers.push(("x-drop-me", "hop".to_owned()));

    let answer = send(
        hg.addr,
        "POST",
        "/crm/callback?tenant=7",
        &headers,
        body.clone(),
    )
    .await;

    assert_eq!(answer.status, 200);
    assert_eq!(answer.reject(), None, "the app answered, not hookguard");
    assert_eq!(answer.headers["x-app"], "yes");
    assert_eq!(&answer.body[..], b"app says hi");
    let seen = upstream.last();
    assert_eq!(upstream.count(), 1);
    assert_eq!(
        seen.body.as_ref(),
        &body[..],
        "body must be forwarded byte for byte"
    );
    assert_eq!(seen.path, "/crm/callback?tenant=7");
    let verified: Vec<_> = seen.headers.get_all("x-verified-by").iter().collect();
    assert_eq!(verified, ["hookguard; route=crm; scheme=hmac; key=current"]);
    assert!(seen.headers.get("x-hookguard-shadow").is_none());
    assert!(
        seen.headers.get("x-drop-me").is_none(),
        "headers named in Connection are hop-by-hop"
    );
    assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen.headers["x-forwarded-proto"], "http");
    assert_eq!(seen.headers["x-forwarded-host"], "hooks.example.com");
    assert_eq!(seen.headers["host"], "hooks.example.com");
    assert_eq!(
        seen.headers["content-length"],
        body.len().to_string().as_str()
    );
}

#[tokio::test]
async fn the_signature_prefix_is_optional_on_the_wire() {
    let (upstream, hg) = setup().await;
    let body = b"{\"id\":2}".to_vec();
    let headers = vec![
        ("x-signature", hmac_hex(SECRET, &body)),
        ("x-timestamp", now().to_string()),
    ];
    let answer = send(hg.addr, "POST", "/crm/callback", &headers, body).await;
    assert_eq!(answer.status, 200);
    assert_eq!(upstream.count(), 1);
}

/// Headers, body, expected reason.
type Case<'a> = (Vec<(&'a str, String)>, &'a [u8], &'a str);

#[tokio::test]
async fn signature_problems_are_told_apart_and_never_reach_the_app() {
    let (upstream, hg) = setup().await;
    let body = b"{\"id\":3}".to_vec();
    let good = hmac_hex(SECRET, &body);
    let ts = now().to_string();
    let cases: Vec<Case> = vec![
        (
            vec![("x-timestamp", ts.clone())],
            &body,
            "missing_signature",
        ),
        (
            vec![
                ("x-signature", "sha256=not-hex".into()),
                ("x-timestamp", ts.clone()),
            ],
            &body,
            "malformed_signature",
        ),
        (
            vec![
                ("x-signature", "sha256=abcd".into()),
                ("x-timestamp", ts.clone()),
            ],
            &body,
            "bad_signature",
        ),
        (
            vec![
                ("x-signature", format!("sha256={good}")),
                ("x-timestamp", ts.clone()),
            ],
            b"{\"id\":4}",
            "bad_signature",
        ),
        (
            vec![
                (
                    "x-signature",
                    format!("sha256={}", hmac_hex("wrong", &body)),
                ),
                ("x-timestamp", ts.clone()),
            ],
            &body,
            "bad_signature",
        ),
    ];
    for (headers, sent_body, reason) in cases {
        let answer = send(
            hg.addr,
            "POST",
            "/crm/callback",
            &headers,
            sent_body.to_vec(),
        )
        .await;
        assert_eq!(answer.status, 401, "{reason}");
        assert_eq!(answer.reject(), Some(reason));
        assert_eq!(answer.headers["content-type"], "application/json");
        let json = answer.json();
        assert_eq!(json["error"], reason);
        assert_eq!(json["route"], "crm");
        let text = String::from_utf8_lossy(&answer.body);
        assert!(
            !text.contains(&good),
            "the expected signature must never be disclosed"
        );
        assert!(!text.contains(SECRET));
    }
    assert_eq!(upstream.count(), 0);
}

#[tokio::test]
async fn timestamps_are_checked_in_both_directions() {
    let (upstream, hg) = setup().await;
    let body = b"{}".to_vec();
    let sig = format!("sha256={}", hmac_hex(SECRET, &body));
    let at = |ts: String| vec![("x-signature", sig.clone()), ("x-timestamp", ts)];
    let cases = [
        (
            vec![("x-signature", sig.clone())],
            401,
            Some("missing_timestamp"),
        ),
        (at("yesterday".into()), 401, Some("malformed_timestamp")),
        (at((now() - 301).to_string()), 401, Some("stale_timestamp")),
        (at((now() + 301).to_string()), 401, Some("future_timestamp")),
    ];
    for (headers, status, reason) in cases {
        let answer = send(hg.addr, "POST", "/crm/callback", &headers, body.clone()).await;
        assert_eq!((answer.status, answer.reject()), (status, reason));
    }
    assert_eq!(upstream.count(), 0);
    // Inside the window on either side: accepted. Different bodies, so the
    // signature dedupe key does not turn the second into a duplicate.
    for (offset, body) in [(-290, b"{\"a\":1}".to_vec()), (290, b"{\"a\":2}".to_vec())] {
        let headers = signed(&body, now() + offset);
        let answer = send(hg.addr, "POST", "/crm/callback", &headers, body).await;
        assert_eq!(answer.status, 200, "offset {offset}");
    }
    assert_eq!(upstream.count(), 2);
}

#[tokio::test]
async fn unknown_paths_and_methods_are_refused() {
    let (upstream, hg) = setup().await;
    let answer = send(hg.addr, "POST", "/elsewhere", &[], "x").await;
    assert_eq!((answer.status, answer.reject()), (404, Some("no_route")));
    assert!(answer.json()["route"].is_null());

    let answer = send(hg.addr, "GET", "/crm/callback", &[], "").await;
    assert_eq!(
        (answer.status, answer.reject()),
        (405, Some("method_not_allowed"))
    );
    assert_eq!(answer.headers["allow"], "POST, PUT");
    assert_eq!(upstream.count(), 0);
}

#[tokio::test]
async fn a_declared_oversize_body_is_refused_before_reading_and_the_connection_closed() {
    let (upstream, hg) = setup().await;
    let body = vec![b'a'; 1025];
    let answer = send(
        hg.addr,
        "POST",
        "/crm/callback",
        &signed(&body, now()),
        body,
    )
    .await;
    assert_eq!(
        (answer.status, answer.reject()),
        (413, Some("body_too_large"))
    );
    assert_eq!(answer.headers["connection"], "close");
    let body = vec![b'a'; 1024];
    let answer = send(
        hg.addr,
        "POST",
        "/crm/callback",
        &signed(&body, now()),
        body,
    )
    .await;
    assert_eq!(answer.status, 200, "exactly the limit is allowed");
    assert_eq!(upstream.count(), 1);
}

/// Writes a raw request and returns everything the server sent until it
/// closed the connection (bounded by a timeout).
async fn raw_exchange(addr: std::net::SocketAddr, head: &str, chunks: &[&[u8]]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    for chunk in chunks {
        if stream.write_all(chunk).await.is_err() {
            break;
        }
    }
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn a_chunked_body_is_counted_while_streaming() {
    let (upstream, hg) = setup().await;
    let head = "POST /crm/callback HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nX-Signature: sha256=00\r\n\r\n";
    let chunk = format!("200\r\n{}\r\n", "a".repeat(512));
    // 3 x 512 bytes > 1 KiB, and the terminating chunk never comes: the
    // limit must trip on what was counted, not on a declared length.
    let reply = raw_exchange(
        hg.addr,
        head,
        &[chunk.as_bytes(), chunk.as_bytes(), chunk.as_bytes()],
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    assert!(
        reply
            .to_ascii_lowercase()
            .contains("x-hookguard-reject: body_too_large"),
        "{reply}"
    );
    assert!(
        reply.to_ascii_lowercase().contains("connection: close"),
        "{reply}"
    );
    assert_eq!(upstream.count(), 0);
}

#[tokio::test]
async fn a_declared_length_over_the_limit_is_refused_without_waiting_for_the_body() {
    let (upstream, hg) = setup().await;
    // Only the head is sent: an answer can only come from the declared length
    // (waiting for the body would end in 408 instead).
    let head = "POST /crm/callback HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\nX-Signature: sha256=00\r\n\r\n";
    let reply = raw_exchange(hg.addr, head, &[]).await;
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    assert_eq!(upstream.count(), 0);
}

#[tokio::test]
async fn a_body_that_stalls_gets_408() {
    let (upstream, hg) = setup().await;
    let head = "POST /crm/callback HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\nX-Signature: sha256=00\r\n\r\n";
    let reply = raw_exchange(hg.addr, head, &[b"only part of it"]).await;
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    assert!(reply.contains("body_timeout"), "{reply}");
    assert_eq!(upstream.count(), 0);
}

#[tokio::test]
async fn unmatched_requests_pass_through_unverified_when_configured() {
    let upstream = Upstream::start().await;
    let config = CONFIG.replace("[server]\n", "[server]\nunmatched = \"forward\"\n");
    let hg = Hookguard::start(&config, &upstream.url()).await;
    let headers = vec![(
        "x-verified-by",
        "hookguard; route=crm; scheme=hmac; key=current".to_owned(),
    )];
    let answer = send(hg.addr, "POST", "/health/check", &headers, "ping").await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.reject(), None);
    let seen = upstream.last();
    assert_eq!(seen.path, "/health/check");
    assert!(
        seen.headers.get("x-verified-by").is_none(),
        "unmatched requests are never marked verified"
    );
    assert_eq!(&seen.body[..], b"ping");
}

#[tokio::test]
async fn metrics_count_each_outcome_and_reason_per_route() {
    let (_upstream, hg) = setup().await;
    let (_, page) = support::admin_get(hg.admin, "/metrics").await;
    assert_eq!(
        support::metric(
            &page,
            "hookguard_requests_total{outcome=\"forwarded\",route=\"crm\"}"
        ),
        Some(0.0)
    );
    assert_eq!(
        support::metric(
            &page,
            "hookguard_rejections_total{reason=\"in_flight\",route=\"_unmatched\"}"
        ),
        Some(0.0)
    );

    let body = b"{\"id\":9}".to_vec();
    send(
        hg.addr,
        "POST",
        "/crm/callback",
        &signed(&body, now()),
        body.clone(),
    )
    .await;
    send(
        hg.addr,
        "POST",
        "/crm/callback",
        &signed(&body, now()),
        body.clone(),
    )
    .await;
    send(hg.addr, "POST", "/crm/callback", &[], body.clone()).await;
    send(hg.addr, "POST", "/nope", &[], body).await;

    let (status, page) = support::admin_get(hg.admin, "/metrics").await;
    assert_eq!(status, 200);
    let value = |s: &str| support::metric(&page, s);
    assert_eq!(
        value("hookguard_requests_total{outcome=\"forwarded\",route=\"crm\"}"),
        Some(1.0)
    );
    assert_eq!(
        value("hookguard_requests_total{outcome=\"duplicate\",route=\"crm\"}"),
        Some(1.0)
    );
    assert_eq!(
        value("hookguard_requests_total{outcome=\"rejected\",route=\"crm\"}"),
        Some(1.0)
    );
    assert_eq!(
        value("hookguard_rejections_total{reason=\"missing_signature\",route=\"crm\"}"),
        Some(1.0)
    );
    assert_eq!(
        value("hookguard_rejections_total{reason=\"duplicate\",route=\"crm\"}"),
        Some(1.0)
    );
    assert_eq!(
        value("hookguard_requests_total{outcome=\"rejected\",route=\"_unmatched\"}"),
        Some(1.0)
    );
    assert_eq!(
        value("hookguard_rejections_total{reason=\"no_route\",route=\"_unmatched\"}"),
        Some(1.0)
    );
}

#[tokio::test]
async fn health_and_readiness_answer_on_the_admin_listener() {
    let (_upstream, hg) = setup().await;
    assert_eq!(support::admin_get(hg.admin, "/healthz").await.0, 200);
    assert_eq!(support::admin_get(hg.admin, "/readyz").await.0, 200);
    assert_eq!(support::admin_get(hg.admin, "/other").await.0, 404);
    // The public listener does not expose admin endpoints.
    let answer = send(hg.addr, "GET", "/metrics", &[], "").await;
    assert_eq!(answer.reject(), Some("no_route"));
}

#[tokio::test]
async fn request_ids_are_kept_or_made_forwarded_and_returned() {
    let (upstream, hg) = setup().await;
    let body = b"{\"id\":\"rid\"}".to_vec();
    let mut headers = signed(&body, now());
    headers.push(("x-request-id", "sender-req-7f3a".to_owned()));
    let answer = send(hg.addr, "POST", "/crm/callback", &headers, body.clone()).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.headers["x-request-id"], "sender-req-7f3a");
    assert_eq!(upstream.last().headers["x-request-id"], "sender-req-7f3a");

    // A rejection carries one too; an unusable incoming id is replaced.
    let bad = vec![("x-request-id", "two words\u{7f}".replace('\u{7f}', ""))];
    let answer = send(hg.addr, "POST", "/crm/callback", &bad, "x").await;
    assert_eq!(answer.reject(), Some("missing_signature"));
    let made = answer.headers["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(made.len(), 32, "{made}");
    assert!(made.bytes().all(|b| b.is_ascii_hexdigit()));

    let answer = send(hg.addr, "GET", "/nowhere", &[], "").await;
    let other = answer.headers["x-request-id"].to_str().unwrap();
    assert_ne!(other, made, "generated ids are unique");
    assert_eq!(upstream.count(), 1);
}

#[tokio::test]
async fn refusal_details_say_what_happened_duplicate_missing_id_and_a_wrong_unit() {
    let (upstream, hg) = setup().await;
    // A copy of a delivery the app took: the detail says the app answered.
    let body = br#"{"id":"evt_dup"}"#;
    let first = send(
        hg.addr,
        "POST",
        "/crm/callback",
        &signed(body, now()),
        &body[..],
    )
    .await;
    assert_eq!(first.status, 200);
    let copy = send(
        hg.addr,
        "POST",
        "/crm/callback",
        &signed(body, now()),
        &body[..],
    )
    .await;
    assert_eq!(copy.reject(), Some("duplicate"));
    assert_eq!(
        copy.json()["detail"],
        "the app already took this delivery (it answered an earlier copy with 2xx: complete_on)"
    );
    // A millisecond timestamp on this seconds route.
    let body = br#"{"id":"evt_ms"}"#;
    let answer = send(
        hg.addr,
        "POST",
        "/crm/callback",
        &signed(body, now() * 1000),
        &body[..],
    )
    .await;
    assert_eq!(answer.reject(), Some("future_timestamp"));
    let detail = answer.json()["detail"].as_str().unwrap().to_owned();
    assert!(
        detail.ends_with("; it looks like milliseconds; this route reads seconds (timestamp_unit)"),
        "{detail}"
    );
    assert_eq!(upstream.count(), 1);

    // An id_header that only requires a header is not called signed.
    for (message, role) in [
        ("{body}", "the delivery id this route requires"),
        ("{id}.{body}", "the signed id"),
    ] {
        let config = CONFIG.replace(
            "timestamp_header = \"X-Timestamp\"",
            &format!("id_header = \"X-Id\"\nmessage = \"{message}\""),
        );
        let hg = Hookguard::start(&config, &upstream.url()).await;
        let headers = [("x-signature", format!("sha256={}", hmac_hex(SECRET, b"{}")))];
        let answer = send(hg.addr, "POST", "/crm/callback", &headers, "{}").await;
        assert_eq!(answer.reject(), Some("missing_signed_header"));
        assert_eq!(
            answer.json()["detail"],
            format!("header x-id ({role}) is missing").as_str()
        );
    }
}
