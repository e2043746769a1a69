//! The shared replay store against a real redis-server: two hookguard
//! replicas on one Redis behave like one replica with the memory store
//! (duplicates, deliveries in flight, claims released for retries), keys
//! carry TTLs, and a Redis outage is handled as configured (fast 503 and an
//! unready `/readyz`, or forwarding counted as unprotected), with recovery
//! once Redis is back. Skipped, saying so, where redis-server is not
//! installed, except in CI.

use crate::support;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hookguard::replay::{ClaimResult, ReplayStore, StoredAnswer};
use redis::AsyncCommands;
use support::{
    admin_get, hmac_hex, metric, now, send, wait_ready_status, Answer, Hookguard, RedisServer,
    Upstream,
};

const SECRET: &str = "s3";

/// Two dedupe sources besides the signature, so that a request has
/// several keys to claim together.
const CONFIG: &str = r#"
[server]
upstream = "{upstream}"
upstream_timeout = "1s"
settle_timeout = "1s"

[replay]
store = "redis"
redis_url = "{redis}"
on_store_error = "{policy}"

[[routes]]
name = "events"
path = "/events"
scheme = "hmac"
secrets = [{ value = "s3" }]
dedupe = ["signature", "header:X-Delivery", "json:/id"]
dedupe_ttl = "1h"

[routes.hmac]
header = "X-Signature"
message = "{timestamp}.{body}"
timestamp_header = "X-Timestamp"
"#;

fn config(redis: &str, policy: &str) -> String {
    CONFIG.replace("{redis}", redis).replace("{policy}", policy)
}

/// A replica with the reject policy, ready (its store answered a ping).
async fn replica(redis: &RedisServer, upstream: &str) -> Hookguard {
    replica_with(&config(&redis.url(), "reject"), upstream).await
}

async fn replica_with(config: &str, upstream: &str) -> Hookguard {
    let hg = Hookguard::start(config, upstream).await;
    assert!(
        wait_ready_status(hg.admin, 200, Duration::from_secs(5))
            .await
            .is_some(),
        "the replica never became ready"
    );
    hg
}

/// A signed delivery with a delivery id and a JSON id.
fn delivery(id: &str) -> (String, Vec<(&'static str, String)>) {
    let body = format!(r#"{{"id":"{id}"}}"#);
    let ts = now();
    let headers = vec![
        (
            "x-signature",
            hmac_hex(SECRET, format!("{ts}.{body}").as_bytes()),
        ),
        ("x-timestamp", ts.to_string()),
        ("x-delivery", format!("d-{id}")),
    ];
    (body, headers)
}

async fn post(hg: &Hookguard, delivery: &(String, Vec<(&'static str, String)>)) -> Answer {
    send(hg.addr, "POST", "/events", &delivery.1, delivery.0.clone()).await
}

/// The keys hookguard wrote, with their values and remaining TTLs in ms.
async fn stored(redis: &RedisServer) -> Vec<(String, String, i64)> {
    let mut connection = redis.client().await;
    let keys: Vec<String> = connection.keys("hookguard:*").await.unwrap();
    let mut out = Vec::new();
    for key in keys {
        // Answers are binary; dedupe keys' values are text.
        let value: Vec<u8> = connection.get(&key).await.unwrap();
        let value = String::from_utf8_lossy(&value).into_owned();
        let ttl: i64 = connection.pttl(&key).await.unwrap();
        out.push((key, value, ttl));
    }
    out
}

#[tokio::test]
async fn a_delivery_to_one_replica_is_a_duplicate_at_the_other_and_its_keys_expire() {
    let Some(redis) = RedisServer::start(&[]).await else {
        return;
    };
    let upstream = Upstream::start().await;
    let a = replica(&redis, &upstream.url()).await;
    let b = replica(&redis, &upstream.url()).await;
    let first = delivery("evt_shared");
    assert_eq!(post(&a, &first).await.status, 200);
    let again = post(&b, &first).await;
    assert_eq!((again.status, again.reject()), (200, Some("duplicate")));
    assert_eq!(upstream.count(), 1);

    // Three keys (signature, header, JSON id), all completed, all with the
    // route's one-hour TTL.
    let keys = stored(&redis).await;
    assert_eq!(keys.len(), 3, "{keys:?}");
    for (key, value, ttl) in &keys {
        assert_eq!(key.len(), "hookguard:".len() + 32, "{key}");
        assert_eq!(value, "done", "{key}");
        assert!(
            (3_500_000..=3_600_000).contains(ttl),
            "{key} has PTTL {ttl}, expected about one hour"
        );
    }
}

#[tokio::test]
async fn a_claim_in_flight_holds_a_token_with_a_short_lease_and_is_in_flight_at_the_other() {
    let Some(redis) = RedisServer::start(&[]).await else {
        return;
    };
    let upstream = Upstream::start().await;
    upstream.delay_ms.store(600, Ordering::SeqCst);
    let a = replica(&redis, &upstream.url()).await;
    let b = replica(&redis, &upstream.url()).await;
    let slow = delivery("evt_slow");
    let (addr, body, headers) = (a.addr, slow.0.clone(), slow.1.clone());
    let first = tokio::spawn(async move { send(addr, "POST", "/events", &headers, body).await });
    tokio::time::sleep(Duration::from_millis(200)).await;

    let keys = stored(&redis).await;
    assert_eq!(keys.len(), 3, "{keys:?}");
    for (key, value, ttl) in &keys {
        assert_eq!(value.len(), 32, "{key} holds a claim token, not {value:?}");
        assert_ne!(value, "done");
        // settle_timeout 1 s + 2 × store_timeout + 5 s margin, not 1 h.
        assert!(
            (5_000..=6_500).contains(ttl),
            "{key} has PTTL {ttl}, expected the in-flight lease"
        );
    }
    let during = post(&b, &slow).await;
    assert_eq!((during.status, during.reject()), (503, Some("in_flight")));
    assert_eq!(during.headers["retry-after"], "5");

    assert_eq!(first.await.unwrap().status, 200);
    assert_eq!(post(&b, &slow).await.reject(), Some("duplicate"));
    assert_eq!(upstream.count(), 1);
}

#[tokio::test]
async fn a_claim_released_after_an_upstream_5xx_lets_the_retry_through_at_the_other_replica() {
    let Some(redis) = RedisServer::start(&[]).await else {
        return;
    };
    let upstream = Upstream::start().await;
    upstream.status.store(503, Ordering::SeqCst);
    let a = replica(&redis, &upstream.url()).await;
    let b = replica(&redis, &upstream.url()).await;
    let flaky = delivery("evt_5xx");
    let first = post(&a, &flaky).await;
    assert_eq!(
        (first.status, first.reject()),
        (503, None),
        "the app's answer"
    );
    assert!(stored(&redis).await.is_empty(), "the claim was released");

    upstream.status.store(200, Ordering::SeqCst);
    let retry = post(&b, &flaky).await;
    assert_eq!((retry.status, retry.reject()), (200, None));
    assert_eq!(upstream.count(), 2);
    assert_eq!(post(&a, &flaky).await.reject(), Some("duplicate"));
}

#[tokio::test]
async fn a_claim_released_after_connection_refused_lets_the_retry_through_at_the_other_replica() {
    let Some(redis) = RedisServer::start(&[]).await else {
        return;
    };
    let (_closed, closed_url) = crate::support::closed_port().await;
    let upstream = Upstream::start().await;
    let a = replica(&redis, &closed_url).await;
    let b = replica(&redis, &upstream.url()).await;
    let lost = delivery("evt_refused");
    let first = post(&a, &lost).await;
    assert_eq!(
        (first.status, first.reject()),
        (502, Some("upstream_unavailable"))
    );
    let retry = post(&b, &lost).await;
    assert_eq!((retry.status, retry.reject()), (200, None));
    assert_eq!(upstream.count(), 1);
}

#[tokio::test]
async fn concurrent_identical_deliveries_spread_over_both_replicas_forward_exactly_one() {
    let Some(redis) = RedisServer::start(&[]).await else {
        return;
    };
    let upstream = Upstream::start().await;
    upstream.delay_ms.store(300, Ordering::SeqCst);
    let a = replica(&redis, &upstream.url()).await;
    let b = replica(&redis, &upstream.url()).await;
    let race = delivery("evt_race");
    let mut tasks = Vec::new();
    for i in 0..16 {
        let addr = if i % 2 == 0 { a.addr } else { b.addr };
        let (body, headers) = race.clone();
        tasks.push(tokio::spawn(async move {
            send(addr, "POST", "/events", &headers, body).await
        }));
    }
    let (mut forwarded, mut in_flight) = (0, 0);
    for task in tasks {
        let answer = task.await.unwrap();
        match (answer.status, answer.reject()) {
            (200, None) => forwarded += 1,
            (503, Some("in_flight")) => in_flight += 1,
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert_eq!((forwarded, in_flight), (1, 15));
    assert_eq!(upstream.count(), 1);
    for replica in [&a, &b] {
        assert_eq!(post(replica, &race).await.reject(), Some("duplicate"));
    }
}

#[tokio::test]
async fn redis_killed_under_reject_answers_503_fast_turns_unready_and_recovers() {
    let Some(mut redis) = RedisServer::start(&[]).await else {
        return;
    };
    let upstream = Upstream::start().await;
    let hg = replica(&redis, &upstream.url()).await;
    assert_eq!(post(&hg, &delivery("evt_before")).await.status, 200);

    redis.kill();
    // The health check alone notices, without any traffic.
    let unready = wait_ready_status(hg.admin, 503, Duration::from_secs(3)).await;
    assert!(
        unready.is_some_and(|t| t < Duration::from_millis(1_500)),
        "/readyz turned 503 after {unready:?}"
    );
    let started = Instant::now();
    let refused = post(&hg, &delivery("evt_during")).await;
    let took = started.elapsed();
    assert_eq!(
        (refused.status, refused.reject()),
        (503, Some("store_unavailable"))
    );
    assert!(took < Duration::from_millis(600), "took {took:?}");
    assert_eq!(upstream.count(), 1, "nothing forwarded unprotected");
    eprintln!("outage: /readyz 503 after {unready:?}, a request refused in {took:?}");
    let (_, text) = admin_get(hg.admin, "/readyz").await;
    assert_eq!(text, "not ready: the replay store is unreachable\n");
    // Every request during the outage is refused quickly, never hangs.
    for i in 0..5 {
        let started = Instant::now();
        let answer = post(&hg, &delivery(&format!("evt_outage_{i}"))).await;
        assert_eq!(answer.reject(), Some("store_unavailable"));
        assert!(started.elapsed() < Duration::from_millis(600));
    }
    let (_, page) = admin_get(hg.admin, "/metrics").await;
    assert!(
        metric(&page, "hookguard_replay_store_errors_total{op=\"claim\"}").unwrap() >= 6.0,
        "{page}"
    );
    assert!(metric(&page, "hookguard_replay_store_errors_total{op=\"ping\"}").unwrap() >= 1.0);

    redis.restart().await;
    let ready = wait_ready_status(hg.admin, 200, Duration::from_secs(5)).await;
    assert!(
        ready.is_some_and(|t| t < Duration::from_millis(1_500)),
        "/readyz turned 200 after {ready:?}"
    );
    eprintln!("recovery: /readyz 200 after {ready:?}");
    let back = delivery("evt_after");
    assert_eq!(post(&hg, &back).await.status, 200);
    assert_eq!(post(&hg, &back).await.reject(), Some("duplicate"));
    assert_eq!(upstream.count(), 2);
}

#[tokio::test]
async fn redis_killed_under_allow_forwards_unprotected_counts_it_and_stays_ready() {
    let Some(mut redis) = RedisServer::start(&[]).await else {
        return;
    };
    let upstream = Upstream::start().await;
    let hg = replica_with(&config(&redis.url(), "allow"), &upstream.url()).await;
    redis.kill();
    let outage = delivery("evt_allow");
    for _ in 0..2 {
        let started = Instant::now();
        let answer = post(&hg, &outage).await;
        assert_eq!((answer.status, answer.reject()), (200, None));
        assert!(started.elapsed() < Duration::from_millis(600));
    }
    // That is the trade: without the store, a replay is forwarded too.
    assert_eq!(upstream.count(), 2);
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert_eq!(admin_get(hg.admin, "/readyz").await.0, 200);
    let (_, page) = admin_get(hg.admin, "/metrics").await;
    assert_eq!(
        metric(
            &page,
            "hookguard_replay_store_bypass_total{route=\"events\"}"
        ),
        Some(2.0)
    );
    assert!(metric(&page, "hookguard_replay_store_errors_total{op=\"claim\"}").unwrap() >= 2.0);

    redis.restart().await;
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let back = delivery("evt_allow_after");
    assert_eq!(post(&hg, &back).await.status, 200);
    assert_eq!(post(&hg, &back).await.reject(), Some("duplicate"));
}

#[tokio::test]
async fn a_password_from_redis_password_is_used_and_a_wrong_one_keeps_the_replica_unready() {
    let Some(redis) = RedisServer::start(&["--requirepass", "hunter2"]).await else {
        return;
    };
    let upstream = Upstream::start().await;
    let with = |password: &str| {
        config(&redis.url(), "reject").replace(
            "on_store_error",
            &format!("redis_password = {{ value = \"{password}\" }}\non_store_error"),
        )
    };
    let good = replica_with(&with("hunter2"), &upstream.url()).await;
    let once = delivery("evt_auth");
    assert_eq!(post(&good, &once).await.status, 200);
    assert_eq!(post(&good, &once).await.reject(), Some("duplicate"));

    let bad = Hookguard::start(&with("wrong"), &upstream.url()).await;
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let (status, _) = admin_get(bad.admin, "/readyz").await;
    assert_eq!(status, 503);
    let answer = post(&bad, &delivery("evt_bad_auth")).await;
    assert_eq!(answer.reject(), Some("store_unavailable"));
    assert!(
        !String::from_utf8_lossy(&answer.body).contains("hunter2")
            && !String::from_utf8_lossy(&answer.body).contains("wrong"),
        "{:?}",
        answer.body
    );
}

#[tokio::test]
async fn the_store_metrics_exist_at_zero_and_pass_promtool() {
    let Some(redis) = RedisServer::start(&[]).await else {
        return;
    };
    let upstream = Upstream::start().await;
    let hg = replica(&redis, &upstream.url()).await;
    let (_, page) = admin_get(hg.admin, "/metrics").await;
    for op in ["claim", "complete", "release", "ping"] {
        assert_eq!(
            metric(
                &page,
                &format!("hookguard_replay_store_errors_total{{op=\"{op}\"}}")
            ),
            Some(0.0),
            "{op}"
        );
        assert!(page.contains(&format!(
            "hookguard_replay_store_duration_seconds_count{{op=\"{op}\"}}"
        )));
    }
    assert_eq!(
        metric(
            &page,
            "hookguard_replay_store_bypass_total{route=\"events\"}"
        ),
        Some(0.0)
    );
    assert_eq!(post(&hg, &delivery("evt_metrics")).await.status, 200);
    let (_, page) = admin_get(hg.admin, "/metrics").await;
    for op in ["claim", "complete"] {
        assert_eq!(
            metric(
                &page,
                &format!("hookguard_replay_store_duration_seconds_count{{op=\"{op}\"}}")
            ),
            Some(1.0),
            "{op}"
        );
    }
    support::promtool_check_metrics(&page);
}

#[tokio::test]
async fn a_hung_redis_costs_a_request_at_most_store_timeout_and_recovers_when_it_thaws() {
    let Some(redis) = RedisServer::start(&[]).await else {
        return;
    };
    let upstream = Upstream::start().await;
    let hg = replica(&redis, &upstream.url()).await;
    assert_eq!(post(&hg, &delivery("evt_warm")).await.status, 200);

    redis.freeze(true);
    for i in 0..3 {
        let started = Instant::now();
        let answer = post(&hg, &delivery(&format!("evt_hung_{i}"))).await;
        let took = started.elapsed();
        assert_eq!(
            (answer.status, answer.reject()),
            (503, Some("store_unavailable"))
        );
        // store_timeout is 250 ms; the rest is the request's own work.
        assert!(
            (Duration::from_millis(240)..Duration::from_millis(600)).contains(&took),
            "took {took:?}"
        );
    }
    let unready = wait_ready_status(hg.admin, 503, Duration::from_secs(3)).await;
    assert!(unready.is_some(), "/readyz stayed 200 with redis hung");

    // Long enough for the health check to give up on the connection and
    // build a new one.
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    redis.freeze(false);
    let ready = wait_ready_status(hg.admin, 200, Duration::from_secs(5)).await;
    eprintln!("thaw: /readyz 200 after {ready:?}");
    assert!(
        ready.is_some_and(|t| t < Duration::from_millis(2_500)),
        "/readyz turned 200 after {ready:?}"
    );
    let back = delivery("evt_thawed");
    assert_eq!(post(&hg, &back).await.status, 200);
    assert_eq!(post(&hg, &back).await.reject(), Some("duplicate"));
    // The hung claims' follow-up releases left nothing in flight.
    assert_eq!(post(&hg, &delivery("evt_hung_0")).await.status, 200);
}

/// A store of this test's own on `redis`, as a replica's would be.
fn store(redis: &RedisServer) -> hookguard::replay::redis::RedisStore {
    let settings = hookguard::config::RedisReplay {
        connection: redis::IntoConnectionInfo::into_connection_info(redis.url().as_str()).unwrap(),
        key_prefix: "hookguard:".to_owned(),
        store_timeout: Duration::from_secs(2),
        on_store_error: hookguard::config::OnStoreError::Reject,
    };
    hookguard::replay::redis::RedisStore::new(
        &settings,
        Duration::from_secs(1),
        std::sync::Arc::new(|_, _, _| {}),
    )
}

fn stored_answer(body: &'static str) -> StoredAnswer {
    StoredAnswer::new(
        http::StatusCode::CREATED,
        Some(http::HeaderValue::from_static("application/json")),
        bytes::Bytes::from_static(body.as_bytes()),
    )
    .unwrap()
}

#[tokio::test]
async fn a_remembered_answer_is_kept_once_with_the_keys_ttl_and_given_at_every_replica() {
    let Some(redis) = RedisServer::start(&[]).await else {
        return;
    };
    let (a, b) = (store(&redis), store(&redis));
    let keys = vec![[1u8; 16], [2u8; 16]];
    let ClaimResult::Claimed(claim) = a
        .claim(keys.clone(), Duration::from_secs(3600))
        .await
        .unwrap()
    else {
        panic!("fresh keys are claimed");
    };
    a.complete(&claim, Some(stored_answer(r#"{"id":7}"#)))
        .await
        .unwrap();
    for key in &keys {
        match b
            .claim(vec![*key], Duration::from_secs(3600))
            .await
            .unwrap()
        {
            ClaimResult::Duplicate(Some(answer)) => {
                assert_eq!(answer, stored_answer(r#"{"id":7}"#))
            }
            other => panic!("expected the original answer, got {other:?}"),
        }
    }
    // Two keys marked done:<token>, one answer string, all with the TTL.
    let stored = stored(&redis).await;
    assert_eq!(stored.len(), 3, "{stored:?}");
    let answer_keys: Vec<_> = stored
        .iter()
        .filter(|(key, _, _)| key.starts_with("hookguard:answer:"))
        .collect();
    assert_eq!(answer_keys.len(), 1, "{stored:?}");
    let token = &answer_keys[0].0["hookguard:answer:".len()..];
    for (key, value, ttl) in &stored {
        assert!((3_500_000..=3_600_000).contains(ttl), "{key}: PTTL {ttl}");
        if !key.starts_with("hookguard:answer:") {
            assert_eq!(value, &format!("done:{token}"), "{key}");
        }
    }
}

#[tokio::test]
async fn a_completed_key_whose_answer_is_gone_is_still_a_duplicate() {
    let Some(redis) = RedisServer::start(&[]).await else {
        return;
    };
    let store = store(&redis);
    let ClaimResult::Claimed(claim) = store
        .claim(vec![[3u8; 16]], Duration::from_secs(60))
        .await
        .unwrap()
    else {
        panic!("a fresh key is claimed");
    };
    store
        .complete(&claim, Some(stored_answer("{}")))
        .await
        .unwrap();
    let mut connection = redis.client().await;
    let answers: Vec<String> = connection.keys("hookguard:answer:*").await.unwrap();
    // An answer from some other version, then none at all: the copy is
    // still refused, with the status answer.
    let _: () = connection.set(&answers[0], "\x09garbage").await.unwrap();
    assert!(matches!(
        store
            .claim(vec![[3u8; 16]], Duration::from_secs(60))
            .await
            .unwrap(),
        ClaimResult::Duplicate(None)
    ));
    let _: () = connection.del(&answers[0]).await.unwrap();
    assert!(matches!(
        store
            .claim(vec![[3u8; 16]], Duration::from_secs(60))
            .await
            .unwrap(),
        ClaimResult::Duplicate(None)
    ));
}

#[tokio::test]
async fn forget_removes_completed_keys_with_or_without_an_answer_and_leaves_claims_in_flight() {
    let Some(redis) = RedisServer::start(&[]).await else {
        return;
    };
    let store = store(&redis);
    let ttl = Duration::from_secs(60);
    for (key, answer) in [([4u8; 16], None), ([5u8; 16], Some(stored_answer("{}")))] {
        let ClaimResult::Claimed(claim) = store.claim(vec![key], ttl).await.unwrap() else {
            panic!("a fresh key is claimed");
        };
        store.complete(&claim, answer).await.unwrap();
    }
    let ClaimResult::Claimed(_flying) = store.claim(vec![[6u8; 16]], ttl).await.unwrap() else {
        panic!("a fresh key is claimed");
    };
    let removed = store
        .forget(&[[4u8; 16], [5u8; 16], [6u8; 16], [7u8; 16]])
        .await
        .unwrap();
    assert_eq!(removed, 2);
    assert!(matches!(
        store.claim(vec![[4u8; 16]], ttl).await.unwrap(),
        ClaimResult::Claimed(_)
    ));
    assert!(matches!(
        store.claim(vec![[5u8; 16]], ttl).await.unwrap(),
        ClaimResult::Claimed(_)
    ));
    assert!(matches!(
        store.claim(vec![[6u8; 16]], ttl).await.unwrap(),
        ClaimResult::InFlight
    ));
}

#[tokio::test]
async fn a_delivery_forgotten_at_one_replica_is_forwarded_again_at_the_other() {
    let Some(redis) = RedisServer::start(&[]).await else {
        return;
    };
    let upstream = Upstream::start().await;
    let a = replica(&redis, &upstream.url()).await;
    let b = replica(&redis, &upstream.url()).await;
    let first = delivery("evt_forget");
    assert_eq!(post(&a, &first).await.status, 200);
    assert_eq!(post(&b, &first).await.reject(), Some("duplicate"));
    for (source, value) in [
        ("signature", first.1[0].1.clone()),
        ("header:X-Delivery", first.1[2].1.clone()),
        ("json:/id", "evt_forget".to_owned()),
    ] {
        let answer = support::forget(b.admin, "events", source, value.into()).await;
        assert_eq!(
            (answer.status, answer.json()),
            (200, serde_json::json!({ "removed": 1 })),
            "{source}"
        );
    }
    let again = post(&a, &first).await;
    assert_eq!((again.status, again.reject()), (200, None));
    assert_eq!(upstream.count(), 2);
    assert_eq!(post(&b, &first).await.reject(), Some("duplicate"));
}

/// The calls Redis counted for `command` since the last `CONFIG RESETSTAT`.
async fn calls(connection: &mut redis::aio::MultiplexedConnection, command: &str) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(connection)
        .await
        .unwrap();
    info.lines()
        .find_map(|line| line.strip_prefix(&format!("cmdstat_{command}:calls=")))
        .and_then(|rest| rest.split(',').next()?.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn one_key_claims_and_completions_are_native_commands_with_the_scripts_behaviour() {
    let Some(redis) = RedisServer::start(&[]).await else {
        return;
    };
    // Native commands are used once the health check has seen Redis 7+.
    let (a, b) = (
        std::sync::Arc::new(store(&redis)),
        std::sync::Arc::new(store(&redis)),
    );
    let checks = [
        hookguard::replay::redis::spawn_health_check(&a),
        hookguard::replay::redis::spawn_health_check(&b),
    ];
    let deadline = Instant::now() + Duration::from_secs(5);
    while !(a.healthy() && b.healthy()) {
        assert!(Instant::now() < deadline, "the stores never became healthy");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut connection = redis.client().await;
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut connection)
        .await
        .unwrap();
    let hour = Duration::from_secs(3600);

    // A claim holds a token for the lease (store_timeout 2 s twice, the
    // 1 s forward, 5 s margin) and is in flight at the other replica.
    let ClaimResult::Claimed(first) = a.claim(vec![[5u8; 16]], hour).await.unwrap() else {
        panic!("a fresh key is claimed");
    };
    let held = stored(&redis).await;
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0].1.len(), 32, "a claim token, not {:?}", held[0].1);
    assert!((9_000..=10_000).contains(&held[0].2), "PTTL {}", held[0].2);
    assert!(matches!(
        b.claim(vec![[5u8; 16]], hour).await.unwrap(),
        ClaimResult::InFlight
    ));

    // Completed with an answer: the other replica gets the answer, and
    // the key and the answer live for the dedupe TTL.
    a.complete(&first, Some(stored_answer(r#"{"id":9}"#)))
        .await
        .unwrap();
    match b.claim(vec![[5u8; 16]], hour).await.unwrap() {
        ClaimResult::Duplicate(Some(answer)) => assert_eq!(answer, stored_answer(r#"{"id":9}"#)),
        other => panic!("expected the original answer, got {other:?}"),
    }
    let done = stored(&redis).await;
    assert_eq!(done.len(), 2, "{done:?}");
    for (key, value, ttl) in &done {
        assert!((3_500_000..=3_600_000).contains(ttl), "{key}: PTTL {ttl}");
        if !key.starts_with("hookguard:answer:") {
            assert!(value.starts_with("done:"), "{key}: {value}");
        }
    }

    // Released, the key is free for the other replica; completed without
    // an answer, it is a plain duplicate.
    let ClaimResult::Claimed(second) = a.claim(vec![[6u8; 16]], hour).await.unwrap() else {
        panic!("a fresh key is claimed");
    };
    a.release(&second).await.unwrap();
    let ClaimResult::Claimed(third) = b.claim(vec![[6u8; 16]], hour).await.unwrap() else {
        panic!("a released key is free");
    };
    b.complete(&third, None).await.unwrap();
    assert!(matches!(
        a.claim(vec![[6u8; 16]], hour).await.unwrap(),
        ClaimResult::Duplicate(None)
    ));

    // Only the release ran a script.
    assert_eq!(calls(&mut connection, "eval").await, 1, "scripts run");
    assert!(calls(&mut connection, "set").await >= 7, "native SETs");
    for check in checks {
        check.abort();
    }
}
