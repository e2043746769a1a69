//! Replay protection through the real proxy: duplicates, deliveries in
//! flight, and claims released when the app did not take a delivery, so
//! that nothing is lost and nothing arrives twice.

use crate::support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use support::{hmac_hex, now, send, Hookguard, Upstream};

const SECRET: &str = "s3";

const CONFIG: &str = r#"
[server]
upstream = "{upstream}"
upstream_timeout = "1s"

[[routes]]
name = "events"
path = "/events"
scheme = "hmac"
secrets = [{ value = "s3" }]
dedupe = ["signature", "header:X-Delivery", "json:/id"]

[routes.hmac]
header = "X-Signature"
message = "{timestamp}.{body}"
timestamp_header = "X-Timestamp"

[[routes]]
name = "nodedupe"
path = "/nodedupe"
scheme = "hmac"
secrets = [{ value = "s3" }]
dedupe = []

[routes.hmac]
header = "X-Signature"
"#;

/// A signed delivery; the signature covers timestamp and body, so a
/// re-sent delivery with a new timestamp has a new signature.
fn delivery(body: &str, ts: i64, delivery_id: Option<&str>) -> Vec<(&'static str, String)> {
    let mut headers = vec![
        (
            "x-signature",
            hmac_hex(SECRET, format!("{ts}.{body}").as_bytes()),
        ),
        ("x-timestamp", ts.to_string()),
    ];
    if let Some(id) = delivery_id {
        headers.push(("x-delivery", id.to_owned()));
    }
    headers
}

async fn post(hg: &Hookguard, body: &str, headers: &[(&str, String)]) -> support::Answer {
    send(hg.addr, "POST", "/events", headers, body.to_owned()).await
}

#[tokio::test]
async fn a_replayed_delivery_is_answered_200_duplicate_and_not_forwarded() {
    let upstream = Upstream::start().await;
    let hg = Hookguard::start(CONFIG, &upstream.url()).await;
    let body = r#"{"id":"evt_1"}"#;
    let headers = delivery(body, now(), Some("d-1"));
    assert_eq!(post(&hg, body, &headers).await.status, 200);
    let again = post(&hg, body, &headers).await;
    assert_eq!((again.status, again.reject()), (200, Some("duplicate")));
    assert_eq!(again.json()["status"], "duplicate");
    assert_eq!(upstream.count(), 1);
}

#[tokio::test]
async fn each_dedupe_entry_is_its_own_key() {
    let upstream = Upstream::start().await;
    let hg = Hookguard::start(CONFIG, &upstream.url()).await;
    let ts = now();
    assert_eq!(
        post(
            &hg,
            r#"{"id":"a"}"#,
            &delivery(r#"{"id":"a"}"#, ts, Some("d-a"))
        )
        .await
        .status,
        200
    );
    // Same delivery header, re-signed with a new timestamp and another body.
    let answer = post(
        &hg,
        r#"{"id":"b"}"#,
        &delivery(r#"{"id":"b"}"#, ts + 1, Some("d-a")),
    )
    .await;
    assert_eq!(answer.reject(), Some("duplicate"), "header key");
    // Same JSON id, new signature, new delivery header.
    let body = r#"{"id":"a","retry":1}"#;
    let answer = post(&hg, body, &delivery(body, ts + 2, Some("d-new"))).await;
    assert_eq!(answer.reject(), Some("duplicate"), "json key");
    // A source absent from the request yields no key; the rest still apply.
    let body = r#"{"no_id":true}"#;
    assert_eq!(post(&hg, body, &delivery(body, ts, None)).await.status, 200);
    assert_eq!(
        post(&hg, body, &delivery(body, ts, None)).await.reject(),
        Some("duplicate")
    );
    assert_eq!(upstream.count(), 2);
}

#[tokio::test]
async fn an_empty_dedupe_list_turns_replay_protection_off() {
    let upstream = Upstream::start().await;
    let hg = Hookguard::start(CONFIG, &upstream.url()).await;
    let headers = vec![("x-signature", hmac_hex(SECRET, b"same"))];
    for _ in 0..2 {
        let answer = send(hg.addr, "POST", "/nodedupe", &headers, "same").await;
        assert_eq!((answer.status, answer.reject()), (200, None));
    }
    assert_eq!(upstream.count(), 2);
}

#[tokio::test]
async fn concurrent_identical_deliveries_forward_exactly_one() {
    let upstream = Upstream::start().await;
    upstream.delay_ms.store(300, Ordering::SeqCst);
    let hg = Hookguard::start(CONFIG, &upstream.url()).await;
    let body = r#"{"id":"evt_race"}"#;
    let headers = delivery(body, now(), Some("d-race"));
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let headers = headers.clone();
        let addr = hg.addr;
        tasks.push(tokio::spawn(async move {
            send(addr, "POST", "/events", &headers, body).await
        }));
    }
    let mut forwarded = 0;
    let mut in_flight = 0;
    for task in tasks {
        let answer = task.await.unwrap();
        match (answer.status, answer.reject()) {
            (200, None) => forwarded += 1,
            (503, Some("in_flight")) => {
                assert_eq!(answer.headers["retry-after"], "5");
                in_flight += 1;
            }
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert_eq!((forwarded, in_flight), (1, 11));
    assert_eq!(upstream.count(), 1);
    // Once the first completed, a retry is a plain duplicate.
    assert_eq!(post(&hg, body, &headers).await.reject(), Some("duplicate"));
}

#[tokio::test]
async fn an_upstream_5xx_is_passed_back_and_the_retry_is_delivered() {
    let upstream = Upstream::start().await;
    upstream.status.store(503, Ordering::SeqCst);
    let hg = Hookguard::start(CONFIG, &upstream.url()).await;
    let body = r#"{"id":"evt_5xx"}"#;
    let headers = delivery(body, now(), Some("d-5xx"));
    let first = post(&hg, body, &headers).await;
    assert_eq!(
        (first.status, first.reject()),
        (503, None),
        "the app's answer, as is"
    );
    assert_eq!(&first.body[..], b"app says hi");
    upstream.status.store(200, Ordering::SeqCst);
    let retry = post(&hg, body, &headers).await;
    assert_eq!((retry.status, retry.reject()), (200, None));
    assert_eq!(upstream.count(), 2);
    assert_eq!(post(&hg, body, &headers).await.reject(), Some("duplicate"));
}

#[tokio::test]
async fn an_unreachable_upstream_gets_502_and_the_retry_is_delivered_once_it_is_back() {
    let (port, url) = crate::support::closed_port().await;
    let hg = Hookguard::start(CONFIG, &url).await;
    let body = r#"{"id":"evt_down"}"#;
    let headers = delivery(body, now(), Some("d-down"));
    let first = post(&hg, body, &headers).await;
    assert_eq!(
        (first.status, first.reject()),
        (502, Some("upstream_unavailable"))
    );

    let upstream = Upstream::serve(port.listen());
    let retry = post(&hg, body, &headers).await;
    assert_eq!((retry.status, retry.reject()), (200, None));
    assert_eq!(upstream.count(), 1);
}

#[tokio::test]
async fn a_late_answer_settles_the_claim_while_the_sender_was_told_504() {
    let upstream = Upstream::start().await;
    upstream.delay_ms.store(1_500, Ordering::SeqCst);
    let hg = Hookguard::start(CONFIG, &upstream.url()).await;
    let body = r#"{"id":"evt_slow"}"#;
    let headers = delivery(body, now(), Some("d-slow"));
    let first = post(&hg, body, &headers).await;
    assert_eq!(
        (first.status, first.reject()),
        (504, Some("upstream_timeout"))
    );
    // The app is still working on the first copy: the retry must wait.
    let during = post(&hg, body, &headers).await;
    assert_eq!((during.status, during.reject()), (503, Some("in_flight")));
    assert_eq!(during.headers["retry-after"], "5");
    // The app answers 200 at 1.5 s: the claim completes.
    tokio::time::sleep(Duration::from_millis(900)).await;
    let after = post(&hg, body, &headers).await;
    assert_eq!((after.status, after.reject()), (200, Some("duplicate")));
    assert_eq!(
        upstream.count(),
        1,
        "the app took the first copy late; the retry must not reach it again"
    );
    let (_, page) = support::admin_get(hg.admin, "/metrics").await;
    assert_eq!(
        support::metric(
            &page,
            "hookguard_late_answers_total{result=\"completed\",route=\"events\"}"
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn a_late_failure_releases_the_claim_and_the_retry_is_delivered() {
    let upstream = Upstream::start().await;
    upstream.delay_ms.store(1_300, Ordering::SeqCst);
    upstream.status.store(500, Ordering::SeqCst);
    let hg = Hookguard::start(CONFIG, &upstream.url()).await;
    let body = r#"{"id":"evt_slow_500"}"#;
    let headers = delivery(body, now(), Some("d-slow-500"));
    assert_eq!(post(&hg, body, &headers).await.status, 504);
    tokio::time::sleep(Duration::from_millis(600)).await;
    upstream.delay_ms.store(0, Ordering::SeqCst);
    upstream.status.store(200, Ordering::SeqCst);
    let retry = post(&hg, body, &headers).await;
    assert_eq!((retry.status, retry.reject()), (200, None));
    assert_eq!(upstream.count(), 2);
}

#[tokio::test]
async fn past_settle_timeout_the_claim_is_released_and_the_retry_is_delivered() {
    let upstream = Upstream::start().await;
    upstream.delay_ms.store(2_500, Ordering::SeqCst);
    let config = CONFIG.replace(
        "upstream_timeout = \"1s\"",
        "upstream_timeout = \"300ms\"\nsettle_timeout = \"600ms\"",
    );
    let hg = Hookguard::start(&config, &upstream.url()).await;
    let body = r#"{"id":"evt_hung"}"#;
    let headers = delivery(body, now(), Some("d-hung"));
    assert_eq!(post(&hg, body, &headers).await.status, 504);
    tokio::time::sleep(Duration::from_millis(500)).await;
    upstream.delay_ms.store(0, Ordering::SeqCst);
    let retry = post(&hg, body, &headers).await;
    assert_eq!((retry.status, retry.reject()), (200, None));
    let (_, page) = support::admin_get(hg.admin, "/metrics").await;
    assert_eq!(
        support::metric(
            &page,
            "hookguard_late_answers_total{result=\"expired\",route=\"events\"}"
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn a_sender_hanging_up_does_not_leave_the_claim_in_flight() {
    let upstream = Upstream::start().await;
    upstream.delay_ms.store(300, Ordering::SeqCst);
    let hg = Hookguard::start(CONFIG, &upstream.url()).await;
    let body = r#"{"id":"evt_hangup"}"#;
    let headers = delivery(body, now(), Some("d-hangup"));
    let addr = hg.addr;
    let h = headers.clone();
    let sender = tokio::spawn(async move { send(addr, "POST", "/events", &h, body).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    sender.abort();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The app took the first copy; the claim completed although nobody
    // was left to hear the answer.
    assert_eq!(upstream.count(), 1);
    assert_eq!(post(&hg, body, &headers).await.reject(), Some("duplicate"));
}

#[tokio::test]
async fn only_a_2xx_completes_a_claim_by_default_so_401_404_and_429_are_retried() {
    let upstream = Upstream::start().await;
    let hg = Hookguard::start(CONFIG, &upstream.url()).await;
    for status in [401u16, 403, 404, 409, 429] {
        upstream.status.store(status, Ordering::SeqCst);
        let body = format!(r#"{{"id":"evt_{status}"}}"#);
        let headers = delivery(&body, now(), Some(&format!("d-{status}")));
        let first = post(&hg, &body, &headers).await;
        assert_eq!(
            (first.status, first.reject()),
            (status, None),
            "the app's {status} is passed back unchanged"
        );
        upstream.status.store(200, Ordering::SeqCst);
        let retry = post(&hg, &body, &headers).await;
        assert_eq!(
            (retry.status, retry.reject()),
            (200, None),
            "after the app's {status}, the sender's retry reaches the app"
        );
        let again = post(&hg, &body, &headers).await;
        assert_eq!(again.reject(), Some("duplicate"), "then it is a duplicate");
    }
    assert_eq!(upstream.count(), 10);
}

#[tokio::test]
async fn complete_on_lets_an_app_with_its_own_idempotency_answer_complete_with_409() {
    let upstream = Upstream::start().await;
    let config = CONFIG.replace(
        "dedupe = [\"signature\", \"header:X-Delivery\", \"json:/id\"]",
        "dedupe = [\"signature\", \"header:X-Delivery\", \"json:/id\"]\ncomplete_on = [\"2xx\", \"409\"]\nin_flight_status = 429",
    );
    let hg = Hookguard::start(&config, &upstream.url()).await;
    upstream.status.store(409, Ordering::SeqCst);
    let body = r#"{"id":"evt_known"}"#;
    let headers = delivery(body, now(), Some("d-known"));
    assert_eq!(post(&hg, body, &headers).await.status, 409);
    let retry = post(&hg, body, &headers).await;
    assert_eq!((retry.status, retry.reject()), (200, Some("duplicate")));
    assert_eq!(upstream.count(), 1);

    // The route's in-flight answer is its own choice of retryable status.
    upstream.status.store(200, Ordering::SeqCst);
    upstream.delay_ms.store(400, Ordering::SeqCst);
    let slow = r#"{"id":"evt_inflight"}"#;
    let slow_headers = delivery(slow, now(), Some("d-inflight"));
    let (addr, h) = (hg.addr, slow_headers.clone());
    let first = tokio::spawn(async move { send(addr, "POST", "/events", &h, slow).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let during = post(&hg, slow, &slow_headers).await;
    assert_eq!((during.status, during.reject()), (429, Some("in_flight")));
    assert_eq!(during.headers["retry-after"], "5");
    assert_eq!(first.await.unwrap().status, 200);
}

/// `POST /replay/forget` for one source of the events route; the count.
async fn forget(hg: &Hookguard, source: &str, value: serde_json::Value) -> u64 {
    let answer = support::forget(hg.admin, "events", source, value).await;
    assert_eq!(answer.status, 200, "{source}: {:?}", answer.body);
    answer.json()["removed"].as_u64().unwrap()
}

#[tokio::test]
async fn a_forgotten_delivery_is_forwarded_again_once_each_of_its_keys_is_forgotten() {
    let upstream = Upstream::start().await;
    let hg = Hookguard::start(CONFIG, &upstream.url()).await;
    let body = r#"{"id":"evt_forget"}"#;
    let headers = delivery(body, now(), Some("d-forget"));
    assert_eq!(post(&hg, body, &headers).await.status, 200);
    assert_eq!(post(&hg, body, &headers).await.reject(), Some("duplicate"));

    // One source forgotten (its header name in any case): the copy's other
    // keys still remember the delivery.
    assert_eq!(forget(&hg, "header:x-DELIVERY", "d-forget".into()).await, 1);
    assert_eq!(post(&hg, body, &headers).await.reject(), Some("duplicate"));
    assert_eq!(upstream.count(), 1);

    // The signature (as the hex digits it was sent in) and the JSON id too.
    let signature = headers[0].1.clone();
    assert_eq!(forget(&hg, "signature", signature.into()).await, 1);
    assert_eq!(forget(&hg, "json:/id", "evt_forget".into()).await, 1);
    assert_eq!(forget(&hg, "json:/id", "evt_forget".into()).await, 0);
    let again = post(&hg, body, &headers).await;
    assert_eq!((again.status, again.reject()), (200, None));
    assert_eq!(upstream.count(), 2);
    assert_eq!(post(&hg, body, &headers).await.reject(), Some("duplicate"));
}

#[tokio::test]
async fn a_delivery_in_flight_is_not_forgotten() {
    let upstream = Upstream::start().await;
    upstream.delay_ms.store(400, Ordering::SeqCst);
    let hg = Hookguard::start(CONFIG, &upstream.url()).await;
    let body = r#"{"id":"evt_flying"}"#;
    let headers = delivery(body, now(), Some("d-flying"));
    let (addr, h) = (hg.addr, headers.clone());
    let first = tokio::spawn(async move { send(addr, "POST", "/events", &h, body).await });
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(forget(&hg, "header:X-Delivery", "d-flying".into()).await, 0);
    assert_eq!(first.await.unwrap().status, 200);
    assert_eq!(post(&hg, body, &headers).await.reject(), Some("duplicate"));
    assert_eq!(upstream.count(), 1);
}

#[tokio::test]
async fn a_forget_request_that_cannot_be_understood_gets_400_naming_the_field() {
    let upstream = Upstream::start().await;
    let hg = Hookguard::start(CONFIG, &upstream.url()).await;
    let raw = |body: &'static str| send(hg.admin, "POST", "/replay/forget", &[], body);
    let cases: Vec<(support::Answer, &str, &str)> = vec![
        (raw("not json").await, "body", "not JSON"),
        (raw("[1]").await, "body", "JSON object"),
        (
            raw(r#"{"source":"json:/id","value":"x"}"#).await,
            "route",
            "route is missing",
        ),
        (
            support::forget(hg.admin, "nope", "json:/id", "x".into()).await,
            "route",
            r#"no route named "nope"; routes are: events, nodedupe"#,
        ),
        (
            support::forget(hg.admin, "events", "header:X-Other", "x".into()).await,
            "source",
            r#""header:X-Other" is not in route "events"'s dedupe list [signature, header:x-delivery, json:/id]"#,
        ),
        (
            support::forget(hg.admin, "nodedupe", "signature", "ab".into()).await,
            "source",
            "is not in route",
        ),
        (
            raw(r#"{"route":"events","source":"json:/id"}"#).await,
            "value",
            "value is missing",
        ),
        (
            support::forget(hg.admin, "events", "signature", "not hex".into()).await,
            "value",
            "hex digits",
        ),
        (
            support::forget(hg.admin, "events", "header:X-Delivery", 7.into()).await,
            "value",
            "as a string",
        ),
    ];
    for (answer, field, says) in cases {
        assert_eq!(answer.status, 400, "{field}: {:?}", answer.body);
        let error = answer.json();
        assert_eq!(error["field"], field, "{error}");
        let message = error["error"].as_str().unwrap();
        assert!(message.contains(says), "{field}: {message}");
    }
    let big = send(hg.admin, "POST", "/replay/forget", &[], vec![b' '; 20_000]).await;
    assert_eq!(
        (big.status, big.json()["field"].as_str()),
        (413, Some("body"))
    );
    let get = send(hg.admin, "GET", "/replay/forget", &[], "").await;
    assert_eq!(get.status, 405);
}

#[tokio::test]
async fn duplicate_answer_original_replays_the_apps_first_2xx_answer() {
    let upstream = Upstream::start().await;
    let config = CONFIG.replace(
        "dedupe = [\"signature\", \"header:X-Delivery\", \"json:/id\"]",
        "dedupe = [\"signature\", \"header:X-Delivery\", \"json:/id\"]\nduplicate_answer = \"original\"",
    );
    let hg = Hookguard::start(&config, &upstream.url()).await;
    upstream.status.store(201, Ordering::SeqCst);
    let body = r#"{"id":"evt_idem"}"#;
    let headers = delivery(body, now(), Some("d-idem"));
    let first = post(&hg, body, &headers).await;
    assert_eq!((first.status, &first.body[..]), (201, &b"app says hi"[..]));
    upstream.status.store(200, Ordering::SeqCst);
    let copy = post(&hg, body, &headers).await;
    assert_eq!(copy.status, 201, "the app's own status");
    assert_eq!(&copy.body[..], b"app says hi", "the app's own body");
    assert_eq!(copy.headers["content-type"], "text/plain");
    assert_eq!(
        copy.reject(),
        Some("duplicate"),
        "marked as hookguard's answer"
    );
    assert_eq!(upstream.count(), 1);

    // An answer over replay.max_answer_bytes falls back to the status answer.
    let small = config.replacen(
        "[[routes]]",
        "[replay]\nmax_answer_bytes = \"4B\"\n\n[[routes]]",
        1,
    );
    let hg = Hookguard::start(&small, &upstream.url()).await;
    let body = r#"{"id":"evt_big"}"#;
    let headers = delivery(body, now(), Some("d-big"));
    assert_eq!(post(&hg, body, &headers).await.status, 200);
    let copy = post(&hg, body, &headers).await;
    assert_eq!((copy.status, copy.reject()), (200, Some("duplicate")));
    assert_eq!(copy.json()["status"], "duplicate");
}

#[tokio::test]
async fn replays_stay_refused_across_a_restart_with_a_snapshot() {
    let upstream = Upstream::start().await;
    let dir = support::TempDir::new("snapshot");
    std::fs::create_dir_all(&dir.0).unwrap();
    let path = dir.0.join("replay.snapshot");
    let config = CONFIG.replacen(
        "[[routes]]",
        &format!(
            "[replay]\nsnapshot_path = \"{}\"\nsnapshot_interval = \"1h\"\n\n[[routes]]",
            path.display()
        ),
        1,
    );
    let mut first = Hookguard::start(&config, &upstream.url()).await;
    let body = r#"{"id":"evt_restart"}"#;
    let headers = delivery(body, now(), Some("d-restart"));
    assert_eq!(post(&first, body, &headers).await.status, 200);
    first.shutdown().await.unwrap();
    assert!(path.exists(), "the final snapshot is written on shutdown");

    let second = Hookguard::start(&config, &upstream.url()).await;
    let copy = post(&second, body, &headers).await;
    assert_eq!(
        copy.reject(),
        Some("duplicate"),
        "a capture replayed after a restart is still refused"
    );
    assert_eq!(upstream.count(), 1);
    let (_, page) = support::admin_get(second.admin, "/metrics").await;
    assert_eq!(
        support::metric(
            &page,
            "hookguard_replay_snapshots_total{op=\"load\",result=\"ok\"}"
        ),
        Some(1.0)
    );

    // A corrupt snapshot is logged and counted; hookguard starts anyway.
    std::fs::write(&path, b"HGREPLAY garbage").unwrap();
    let third = Hookguard::start(&config, &upstream.url()).await;
    let fresh = r#"{"id":"evt_after_corrupt"}"#;
    let headers = delivery(fresh, now(), Some("d-after"));
    assert_eq!(post(&third, fresh, &headers).await.status, 200);
    let (_, page) = support::admin_get(third.admin, "/metrics").await;
    let refused: f64 = ["truncated", "corrupt", "not_a_snapshot", "version"]
        .iter()
        .filter_map(|r| {
            support::metric(
                &page,
                &format!("hookguard_replay_snapshots_total{{op=\"load\",result=\"{r}\"}}"),
            )
        })
        .sum();
    assert_eq!(refused, 1.0, "{page}");
}

#[tokio::test]
async fn require_dedupe_refuses_a_request_lacking_a_source_and_names_it() {
    let upstream = Upstream::start().await;
    let config = CONFIG.replace(
        "dedupe = [\"signature\", \"header:X-Delivery\", \"json:/id\"]",
        "dedupe = [\"signature\", \"header:X-Delivery\", \"json:/id\"]\nrequire_dedupe = true",
    );
    let hg = Hookguard::start(&config, &upstream.url()).await;
    let body = r#"{"id":"evt_no_delivery_id"}"#;
    let refused = post(&hg, body, &delivery(body, now(), None)).await;
    assert_eq!(
        (refused.status, refused.reject()),
        (400, Some("missing_dedupe_source"))
    );
    let detail = refused.json()["detail"].as_str().unwrap().to_owned();
    assert!(detail.contains("header:x-delivery"), "{detail}");
    assert_eq!(upstream.count(), 0, "never reaches the app");
    let accepted = post(&hg, body, &delivery(body, now(), Some("d-1"))).await;
    assert_eq!((accepted.status, accepted.reject()), (200, None));
}
