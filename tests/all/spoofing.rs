//! Headers a sender could use to pose as hookguard to the app (issue 19,
//! item 1): CGI-style apps (PHP's `$_SERVER`, Laravel, Symfony, Rack) read
//! `X_Verified_By`, `X-Verified_By` and `X.Verified.By` as the verified
//! header. With shadow mode or `unmatched = "forward"` a request that
//! failed verification is forwarded, so these names must never reach the
//! app; names with an underscore are dropped by default, passed or refused
//! as `underscores_in_headers` says.

use crate::support;

use support::{admin_get, hmac_hex, metric, send, Hookguard, Upstream};

const SECRET: &str = "spoof-secret";

fn config(underscores: &str) -> String {
    format!(
        r#"
[server]
upstream = "{{upstream}}"
unmatched = "forward"
underscores_in_headers = "{underscores}"

[[routes]]
name = "shadow"
path = "/shadow"
scheme = "hmac"
secrets = [{{ value = "{SECRET}" }}]
enforce = false

[routes.hmac]
header = "X-Signature"
"#
    )
}

/// Spellings of headers only hookguard may set, as a CGI-style app would
/// read them.
const POSING: [&str; 7] = [
    "X_Verified_By",
    "X-Verified_By",
    "X.Verified.By",
    "X_Hookguard_Shadow",
    "X-Hookguard_Reject",
    "X_Forwarded_For",
    "X_Request_Id",
];

fn posing_headers() -> Vec<(&'static str, String)> {
    let mut headers: Vec<(&str, String)> = POSING
        .iter()
        .map(|name| {
            (
                *name,
                "hookguard; route=shadow; scheme=hmac; key=0".to_owned(),
            )
        })
        .collect();
    headers.push(("X-Custom_Field", "kept?".to_owned()));
    headers.push(("X-Plain", "kept".to_owned()));
    headers
}

/// The header names the app received, lower case.
fn names(upstream: &Upstream) -> Vec<String> {
    upstream
        .last()
        .headers
        .keys()
        .map(|n| n.as_str().to_owned())
        .collect()
}

fn assert_none_posing(received: &[String]) {
    for name in POSING {
        assert!(
            !received.contains(&name.to_ascii_lowercase()),
            "{name} reached the app: {received:?}"
        );
    }
    let verified: Vec<&String> = received
        .iter()
        .filter(|n| *n != "x-verified-by" && n.replace(['_', '.'], "-") == "x-verified-by")
        .collect();
    assert!(
        verified.is_empty(),
        "a spelling of the verified marker reached the app: {verified:?}"
    );
}

#[tokio::test]
async fn no_spelling_of_hookguards_headers_reaches_the_app_from_a_failed_shadow_request() {
    let upstream = Upstream::start().await;
    let hg = Hookguard::start(&config("drop"), &upstream.url()).await;
    let mut headers = posing_headers();
    headers.push(("X-Signature", "0".repeat(64)));
    let answer = send(hg.addr, "POST", "/shadow", &headers, "{}").await;
    assert_eq!(answer.status, 200, "shadow mode forwards");
    let received = names(&upstream);
    assert_none_posing(&received);
    assert!(
        !received.contains(&"x-verified-by".to_owned()),
        "unverified: {received:?}"
    );
    assert!(received.contains(&"x-plain".to_owned()));
    assert!(
        !received.contains(&"x-custom_field".to_owned()),
        "underscores dropped by default: {received:?}"
    );
    assert_eq!(
        upstream.last().headers["x-hookguard-shadow"],
        "bad_signature",
        "hookguard's own shadow header is still there"
    );

    // The same through unmatched forwarding.
    send(hg.addr, "POST", "/elsewhere", &posing_headers(), "{}").await;
    let received = names(&upstream);
    assert_none_posing(&received);
    assert!(
        !received.contains(&"x-verified-by".to_owned()),
        "unverified: {received:?}"
    );

    let (_, page) = admin_get(hg.admin, "/metrics").await;
    let count = |route: &str, cause: &str| {
        metric(
            &page,
            &format!("hookguard_headers_dropped_total{{cause=\"{cause}\",route=\"{route}\"}}"),
        )
    };
    assert_eq!(count("shadow", "spoofed"), Some(POSING.len() as f64));
    assert_eq!(count("shadow", "underscore"), Some(1.0));
    assert_eq!(count("_unmatched", "spoofed"), Some(POSING.len() as f64));
}

#[tokio::test]
async fn underscores_can_be_passed_but_spoofing_names_never_are() {
    let upstream = Upstream::start().await;
    let hg = Hookguard::start(&config("pass"), &upstream.url()).await;
    let body = "{}";
    let mut headers = posing_headers();
    headers.push(("X-Signature", hmac_hex(SECRET, body.as_bytes())));
    let answer = send(hg.addr, "POST", "/shadow", &headers, body).await;
    assert_eq!(answer.status, 200);
    let received = names(&upstream);
    assert_none_posing(&received);
    assert!(
        received.contains(&"x-custom_field".to_owned()),
        "{received:?}"
    );
    assert_eq!(
        upstream.last().headers["x-verified-by"],
        "hookguard; route=shadow; scheme=hmac; key=0",
        "a verified request still gets hookguard's own marker, once"
    );
    assert_eq!(
        upstream
            .last()
            .headers
            .get_all("x-verified-by")
            .iter()
            .count(),
        1
    );
}

#[tokio::test]
async fn underscores_can_be_refused_with_the_header_named() {
    let upstream = Upstream::start().await;
    let hg = Hookguard::start(&config("reject"), &upstream.url()).await;
    let answer = send(
        hg.addr,
        "POST",
        "/shadow",
        &[("X-Custom_Field", "x".to_owned())],
        "{}",
    )
    .await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.reject(), Some("malformed_request"));
    let detail = answer.json()["detail"].as_str().unwrap().to_owned();
    assert!(detail.contains("x-custom_field"), "{detail}");
    assert!(detail.contains("underscores_in_headers"), "{detail}");
    assert_eq!(upstream.count(), 0);
}
