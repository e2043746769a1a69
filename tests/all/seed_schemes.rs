//! The three seed schemes exactly as `config.example.toml` describes them,
//! loaded from that file, so the example users copy is proven to work.

use crate::support;

use support::{hmac_hex, now, send, Hookguard, Upstream};

use hookguard::config::Config;

const SECRETS: &[(&str, &str)] = &[
    ("CARTELCRM_CALLBACK_SECRET", "crm-test-secret"),
    ("ZORIO_WEBHOOK_SECRET", "zorio-test-secret"),
    ("VENDOR_SECRET_CURRENT", "vendor-new"),
    ("VENDOR_SECRET_PREVIOUS", "vendor-old"),
];

async fn start() -> (Upstream, Hookguard) {
    let upstream = Upstream::start().await;
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.toml"))
        .unwrap()
        .replace("http://127.0.0.1:8080", &upstream.url());
    let env = |name: &str| {
        SECRETS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.to_string())
    };
    let config = Config::from_toml(&text, &env).unwrap_or_else(|e| panic!("{e}"));
    (upstream, Hookguard::start_config(config).await)
}

#[tokio::test]
async fn crm_callback_verifies_posts_and_signed_status_gets() {
    let (upstream, hg) = start().await;
    let body = r#"{"lead":{"id":77,"name":"Zoë"}}"#;
    let headers = vec![
        (
            "x-signature",
            format!("sha256={}", hmac_hex("crm-test-secret", body.as_bytes())),
        ),
        ("x-timestamp", now().to_string()),
    ];
    let answer = send(hg.addr, "POST", "/cartelcrm/callback", &headers, body).await;
    assert_eq!((answer.status, answer.reject()), (200, None));
    assert_eq!(
        upstream.last().headers["x-verified-by"],
        "hookguard; route=cartelcrm; scheme=hmac; key=current"
    );
    let stale = vec![
        headers[0].clone(),
        ("x-timestamp", (now() - 400).to_string()),
    ];
    let answer = send(hg.addr, "POST", "/cartelcrm/callback", &stale, body).await;
    assert_eq!(answer.reject(), Some("stale_timestamp"));

    // A signed GET with an empty body, twice: status polls are not deliveries.
    let empty = vec![
        (
            "x-signature",
            format!("sha256={}", hmac_hex("crm-test-secret", b"")),
        ),
        ("x-timestamp", now().to_string()),
    ];
    for _ in 0..2 {
        let answer = send(hg.addr, "GET", "/cartelcrm/status", &empty, "").await;
        assert_eq!((answer.status, answer.reject()), (200, None));
    }
    let unsigned = send(
        hg.addr,
        "GET",
        "/cartelcrm/status",
        &[("x-timestamp", now().to_string())],
        "",
    )
    .await;
    assert_eq!(unsigned.reject(), Some("missing_signature"));
    assert_eq!(upstream.count(), 3);
}

#[tokio::test]
async fn telephony_deliveries_are_deduplicated_by_delivery_id() {
    let (upstream, hg) = start().await;
    let sign = |body: &str, delivery: &str| {
        vec![
            (
                "x-zorio-signature",
                format!("sha256={}", hmac_hex("zorio-test-secret", body.as_bytes())),
            ),
            ("x-zorio-timestamp", now().to_string()),
            ("x-zorio-delivery", delivery.to_owned()),
        ]
    };
    let first = r#"{"call":"c1","status":"ringing"}"#;
    let answer = send(
        hg.addr,
        "POST",
        "/zorio/events",
        &sign(first, "dlv-1"),
        first,
    )
    .await;
    assert_eq!((answer.status, answer.reject()), (200, None));
    // The provider retries the same delivery with a regenerated payload.
    let retried = r#"{"call":"c1","status":"ringing","attempt":2}"#;
    let answer = send(
        hg.addr,
        "POST",
        "/zorio/events",
        &sign(retried, "dlv-1"),
        retried,
    )
    .await;
    assert_eq!((answer.status, answer.reject()), (200, Some("duplicate")));
    let next = r#"{"call":"c1","status":"answered"}"#;
    let answer = send(hg.addr, "POST", "/zorio/events", &sign(next, "dlv-2"), next).await;
    assert_eq!((answer.status, answer.reject()), (200, None));
    let forged = sign(next, "dlv-3");
    let answer = send(
        hg.addr,
        "POST",
        "/zorio/events",
        &forged,
        r#"{"call":"c1","status":"refunded"}"#,
    )
    .await;
    assert_eq!(answer.reject(), Some("bad_signature"));
    assert_eq!(upstream.count(), 2);
}

#[tokio::test]
async fn vendor_accepts_current_and_previous_secret_and_names_which() {
    let (upstream, hg) = start().await;
    let sign = |secret: &str, body: &str, ts: i64| {
        vec![
            (
                "x-vendor-signature",
                hmac_hex(secret, format!("{body}.{ts}").as_bytes()),
            ),
            ("x-vendor-timestamp", ts.to_string()),
        ]
    };
    let a = r#"{"id":"inv_1","total":10}"#;
    let answer = send(
        hg.addr,
        "POST",
        "/vendor/webhooks/invoices",
        &sign("vendor-new", a, now()),
        a,
    )
    .await;
    assert_eq!((answer.status, answer.reject()), (200, None));
    assert_eq!(
        upstream.last().headers["x-verified-by"],
        "hookguard; route=vendor; scheme=hmac; key=current"
    );

    let b = r#"{"id":"inv_2","total":20}"#;
    let answer = send(
        hg.addr,
        "POST",
        "/vendor/webhooks/invoices",
        &sign("vendor-old", b, now()),
        b,
    )
    .await;
    assert_eq!((answer.status, answer.reject()), (200, None));
    assert_eq!(
        upstream.last().headers["x-verified-by"],
        "hookguard; route=vendor; scheme=hmac; key=previous"
    );

    let c = r#"{"id":"inv_3","total":30}"#;
    let answer = send(
        hg.addr,
        "POST",
        "/vendor/webhooks/invoices",
        &sign("vendor-retired", c, now()),
        c,
    )
    .await;
    assert_eq!(answer.reject(), Some("bad_signature"));

    // The timestamp is signed: changing it breaks the signature.
    let mut moved = sign("vendor-new", c, now());
    moved[1].1 = (now() + 1).to_string();
    let answer = send(hg.addr, "POST", "/vendor/webhooks/invoices", &moved, c).await;
    assert_eq!(answer.reject(), Some("bad_signature"));

    // Re-signed later with a new timestamp, same event id: a duplicate.
    let answer = send(
        hg.addr,
        "POST",
        "/vendor/webhooks/invoices",
        &sign("vendor-new", a, now() + 5),
        a,
    )
    .await;
    assert_eq!((answer.status, answer.reject()), (200, Some("duplicate")));
    assert_eq!(upstream.count(), 2);
}
