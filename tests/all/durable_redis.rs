//! The Redis queue store against a real redis-server (with its append-only
//! file written before each answer, as hookguard requires): the
//! conformance suite, then what only a shared store has: replicas that
//! deliver each item once between them, a replica killed mid-delivery
//! whose item another delivers once the lease runs out, one stopped
//! mid-delivery that hands its item back for another at once, and the start-up
//! check that refuses a Redis that may lose what it acknowledged.
//! Skipped, saying so, where redis-server is not installed, except in CI.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hookguard::config::RedisQueue as Settings;
use hookguard::queue::redis::{OpenError, RedisQueue};
use hookguard::queue::{Enqueued, ItemState, QueueStore, Settle};
use redis::IntoConnectionInfo;

use crate::durable::{serve, Served};
use crate::durable_store::{conformance, item, queued, ATTEMPT, T0};
use crate::support::{
    self, hmac_hex, send, wait_ready_status, Hookguard, RedisServer, TempDir, Upstream,
};

const SECRET: &str = "redis-queue-secret";

/// A redis-server that writes its append-only file before it answers, in
/// a directory of its own; `extra` arguments override.
struct Persistent {
    redis: RedisServer,
    _dir: TempDir,
}

async fn persistent(extra: &[&str]) -> Option<Persistent> {
    let dir = TempDir::new("redis-queue-aof");
    let shown = dir.0.display().to_string();
    let mut args = vec![
        "--dir",
        &shown,
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
    ];
    args.extend_from_slice(extra);
    let redis = RedisServer::start(&args).await?;
    Some(Persistent { redis, _dir: dir })
}

/// A fresh key prefix, so that stores in one test do not meet.
fn prefix(name: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!("hgq-{name}-{}:", N.fetch_add(1, Ordering::SeqCst))
}

fn settings(redis: &RedisServer, prefix: &str) -> Settings {
    Settings {
        connection: redis.url().as_str().into_connection_info().unwrap(),
        key_prefix: prefix.to_owned(),
        store_timeout: Duration::from_millis(500),
        accept_redis_risk: false,
    }
}

async fn open(redis: &RedisServer, prefix: &str, max_bytes: u64) -> Arc<RedisQueue> {
    Arc::new(
        RedisQueue::open(&settings(redis, prefix), max_bytes)
            .await
            .unwrap(),
    )
}

#[tokio::test]
async fn the_redis_store_passes_the_conformance_suite() {
    let Some(server) = persistent(&[]).await else {
        return;
    };
    conformance(|name, max_bytes| {
        let redis = &server.redis;
        async move { open(redis, &prefix(name), max_bytes).await as Arc<dyn QueueStore> }
    })
    .await;
}

#[tokio::test]
async fn an_item_whose_taker_stops_settling_is_taken_by_another_replica_after_the_lease() {
    let Some(server) = persistent(&[]).await else {
        return;
    };
    let shared = prefix("lease");
    let (a, b) = (
        open(&server.redis, &shared, 1 << 20).await,
        open(&server.redis, &shared, 1 << 20).await,
    );
    let id = queued(&*a, item("r", 1, b"x")).await;
    // Copies through either replica are duplicates of the one item.
    assert_eq!(
        b.enqueue(item("r", 1, b"x"), T0).await.unwrap(),
        Enqueued::Duplicate(id)
    );
    let taken_at = Instant::now();
    // A lease of the attempt timeout (0 here) + 2 store timeouts + 5 s.
    assert_eq!(a.take("r", T0, 5, Duration::ZERO).await.unwrap().len(), 1);
    assert!(
        b.take("r", T0, 5, ATTEMPT).await.unwrap().is_empty(),
        "taken again while its lease runs"
    );
    let again = loop {
        let taken = b.take("r", T0, 5, ATTEMPT).await.unwrap();
        if !taken.is_empty() {
            break taken;
        }
        assert!(
            taken_at.elapsed() < Duration::from_secs(15),
            "never taken again"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let waited = taken_at.elapsed();
    assert!(waited >= Duration::from_secs(6), "after {waited:?}");
    assert_eq!((again[0].id, again[0].tries), (id, 2));
    // The first taker's late answer changes nothing: the item is b's now.
    a.settle(id, Settle::Delivered { last: "200".into() }, T0)
        .await
        .unwrap();
    assert_eq!(b.get(id).await.unwrap().unwrap().state, ItemState::InFlight);
    b.settle(
        id,
        Settle::Retry {
            next_ms: T0 + 5,
            last: "500".into(),
        },
        T0,
    )
    .await
    .unwrap();
    let got = a.get(id).await.unwrap().unwrap();
    assert_eq!((got.state, got.attempts), (ItemState::Waiting, 1));
    // A replica opened later sees the others' counters; an operator's
    // pause through one replica is every replica's (here b hears of it
    // with its next change, at the latest within a refresh).
    let c = open(&server.redis, &shared, 1 << 20).await;
    assert_eq!(c.counts().get(&("r".into(), ItemState::Waiting)), Some(&1));
    assert_eq!(c.bytes(), a.bytes());
    c.set_paused("r", true).await.unwrap();
    assert!(!b.paused("r"), "b has not heard yet");
    b.take("other", T0, 1, ATTEMPT).await.unwrap();
    assert!(b.paused("r"));
    a.set_paused("r", false).await.unwrap();
    c.expire(0, 0, T0, 10).await.unwrap();
    assert!(!c.paused("r"));
}

#[tokio::test]
async fn a_redis_that_may_lose_what_it_acknowledges_is_refused_naming_the_setting_and_the_fix() {
    for (args, setting, fix) in [
        (&["--appendonly", "no"][..], "appendonly", "appendonly yes"),
        (
            &["--appendfsync", "everysec"][..],
            "appendfsync",
            "appendfsync always",
        ),
        (
            &["--maxmemory-policy", "allkeys-lru"][..],
            "maxmemory-policy",
            "maxmemory-policy noeviction",
        ),
        (
            &["--rename-command", "CONFIG", ""][..],
            "CONFIG GET is refused",
            "appendfsync always",
        ),
    ] {
        let Some(server) = persistent(args).await else {
            return;
        };
        let mut settings = settings(&server.redis, &prefix("check"));
        let error = RedisQueue::open(&settings, 1 << 20).await.unwrap_err();
        let OpenError::Unsafe(message) = &error else {
            panic!("{args:?}: {error:?}");
        };
        for needle in [setting, fix, "queue.accept_redis_risk = true"] {
            assert!(
                message.contains(needle),
                "{args:?}: {needle:?} not in {message}"
            );
        }
        settings.accept_redis_risk = true;
        assert!(
            RedisQueue::open(&settings, 1 << 20).await.is_ok(),
            "{args:?}: the risk accepted, it opens"
        );
    }
}

/// A durable route on the Redis queue; `{redis}`, `{prefix}`, `{extra}`
/// (more `[queue]` keys) and `{timeout}` are filled in.
fn config(redis: &str, prefix: &str, extra: &str, timeout: &str) -> String {
    format!(
        r#"
[server]
upstream = "{{upstream}}"

[queue]
store = "redis"
redis_url = "{redis}"
key_prefix = "{prefix}"
max_bytes = "1MiB"
{extra}

[[routes]]
name = "vendor"
path = "/vendor"
scheme = "hmac"
secrets = [{{ value = "{SECRET}" }}]
dedupe = ["header:X-Delivery"]

[routes.hmac]
header = "X-Signature"

[routes.delivery]
mode = "durable"
backoff = ["50ms", "100ms"]
max_age = "1h"
timeout = "{timeout}"
"#
    )
}

async fn post(addr: std::net::SocketAddr, body: &[u8], delivery: &str) -> support::Answer {
    let headers = vec![
        ("x-signature", hmac_hex(SECRET, body)),
        ("x-delivery", delivery.to_owned()),
    ];
    send(addr, "POST", "/vendor", &headers, body.to_vec()).await
}

async fn wait_count(upstream: &Upstream, n: usize, limit: Duration) {
    let started = Instant::now();
    while upstream.count() < n {
        assert!(
            started.elapsed() < limit,
            "the app got {} of {n} deliveries",
            upstream.count()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn header(recorded: &support::Recorded, name: &str) -> String {
    recorded.headers[name].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn two_replicas_on_one_redis_deliver_each_item_once() {
    let Some(server) = persistent(&[]).await else {
        return;
    };
    let upstream = Upstream::start().await;
    let text = config(&server.redis.url(), &prefix("replicas"), "", "10s");
    let replicas = [
        Hookguard::start(&text, &upstream.url()).await,
        Hookguard::start(&text, &upstream.url()).await,
    ];
    for hg in &replicas {
        wait_ready_status(hg.admin, 200, Duration::from_secs(10))
            .await
            .expect("ready once the queue is open");
    }
    const N: usize = 40;
    let mut ids = std::collections::HashSet::new();
    for n in 0..N {
        let answer = post(
            replicas[n % 2].addr,
            format!("{{\"n\":{n}}}").as_bytes(),
            &format!("d-{n}"),
        )
        .await;
        assert_eq!(answer.status, 202, "{:?}", answer.body);
        ids.insert(answer.json()["id"].as_str().unwrap().to_owned());
        // The sender's retry through the other replica is a duplicate.
        let copy = post(
            replicas[(n + 1) % 2].addr,
            format!("{{\"n\":{n}}}").as_bytes(),
            &format!("d-{n}"),
        )
        .await;
        assert_eq!(copy.status, 200, "{:?}", copy.body);
        assert_eq!(copy.json()["status"], "duplicate");
    }
    wait_count(&upstream, N, Duration::from_secs(20)).await;
    // Both replicas poll the shared queue: give a second delivery (there
    // must be none) time to happen.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let requests = upstream.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), N, "some item was delivered twice");
    let delivered: std::collections::HashSet<String> = requests
        .iter()
        .map(|r| header(r, "x-hookguard-delivery-id"))
        .collect();
    assert_eq!(delivered, ids);
    assert!(requests
        .iter()
        .all(|r| header(r, "x-hookguard-attempt") == "1"));
    // Both replicas see the shared counters.
    for hg in &replicas {
        let stats = support::admin_get(hg.admin, "/queue/stats").await;
        assert_eq!(stats.0, 200, "{}", stats.1);
        let stats: serde_json::Value = serde_json::from_str(&stats.1).unwrap();
        assert_eq!(stats["routes"]["vendor"]["delivered"], N as u64, "{stats}");
    }
}

/// A `hookguard serve` child on `text`, listening where it likes.
fn serve_file(dir: &TempDir, text: &str, upstream: &Upstream, name: &str) -> std::path::PathBuf {
    let text = text.replace("{upstream}", &upstream.url()).replace(
        "[server]\n",
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n",
    );
    let path = dir.0.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn a_replica_killed_mid_delivery_has_its_item_delivered_by_another_after_the_lease() {
    let Some(server) = persistent(&[]).await else {
        return;
    };
    let dir = TempDir::new("redis-queue-kill");
    let upstream = Upstream::start().await;
    // The app holds the first attempt past the kill.
    upstream.delay_ms.store(30_000, Ordering::SeqCst);
    let text = config(&server.redis.url(), &prefix("kill"), "", "3s");
    let path = serve_file(&dir, &text, &upstream, "a.toml");
    let (mut first, listen, admin) = serve(&path);
    wait_ready_status(admin, 200, Duration::from_secs(10))
        .await
        .unwrap();
    let answer = post(listen, b"{\"n\":1}", "k-1").await;
    assert_eq!(answer.status, 202);
    let id = answer.json()["id"].as_str().unwrap().to_owned();
    wait_count(&upstream, 1, Duration::from_secs(10)).await;
    let killed_at = Instant::now();
    first.kill(); // SIGKILL, mid-delivery
    upstream.delay_ms.store(0, Ordering::SeqCst);
    let (_second, _, admin): (Served, _, _) = serve(&path);
    wait_ready_status(admin, 200, Duration::from_secs(10))
        .await
        .unwrap();
    // Lease: timeout 3 s + 2 x store_timeout (2 s) + 5 s margin = 12 s.
    wait_count(&upstream, 2, Duration::from_secs(30)).await;
    let waited = killed_at.elapsed();
    assert!(
        waited >= Duration::from_secs(6),
        "taken again after {waited:?}, before the lease ran out"
    );
    let again = upstream.last();
    assert_eq!(header(&again, "x-hookguard-delivery-id"), id);
    assert_eq!(header(&again, "x-hookguard-attempt"), "2");
    // The app's answer is recorded in the store just after it arrives.
    let started = Instant::now();
    loop {
        let shown = support::admin_get(admin, &format!("/queue/{id}")).await;
        if shown.1.contains("\"state\":\"delivered\"") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "{}", shown.1);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_replica_stopped_mid_delivery_hands_its_item_back_to_the_others_at_once() {
    let Some(server) = persistent(&[]).await else {
        return;
    };
    let upstream = Upstream::start().await;
    // The app holds the first attempt past the stop.
    upstream.delay_ms.store(60_000, Ordering::SeqCst);
    let text = config(&server.redis.url(), &prefix("handback"), "", "20s")
        .replace("[server]\n", "[server]\nshutdown_grace = \"1s\"\n");
    let mut first = Hookguard::start(&text, &upstream.url()).await;
    wait_ready_status(first.admin, 200, Duration::from_secs(10))
        .await
        .unwrap();
    let answer = post(first.addr, b"{\"n\":1}", "h-1").await;
    assert_eq!(answer.status, 202);
    let id = answer.json()["id"].as_str().unwrap().to_owned();
    wait_count(&upstream, 1, Duration::from_secs(10)).await;
    let stopped_at = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), first.shutdown())
        .await
        .expect("stopped within shutdown_grace")
        .unwrap();
    upstream.delay_ms.store(0, Ordering::SeqCst);
    let second = Hookguard::start(&text, &upstream.url()).await;
    wait_ready_status(second.admin, 200, Duration::from_secs(10))
        .await
        .unwrap();
    // Its lease (20 s + 2 x 2 s + 5 s) has 29 s to run: handed back, it is
    // due again at once.
    wait_count(&upstream, 2, Duration::from_secs(10)).await;
    let waited = stopped_at.elapsed();
    assert!(
        waited < Duration::from_secs(15),
        "taken again only after {waited:?}"
    );
    let again = upstream.last();
    assert_eq!(header(&again, "x-hookguard-delivery-id"), id);
    assert_eq!(header(&again, "x-hookguard-attempt"), "2");
    let started = Instant::now();
    loop {
        let shown = support::admin_get(second.admin, &format!("/queue/{id}")).await;
        if shown.1.contains("\"state\":\"delivered\"") {
            // Handed back, not failed: no attempt of max_attempts spent.
            let item: serde_json::Value = serde_json::from_str(&shown.1).unwrap();
            assert_eq!(item["attempts"], 0, "{item}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "{}", shown.1);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn hookguard_serve_refuses_to_start_on_a_redis_without_appendfsync_always() {
    let Some(server) = persistent(&["--appendfsync", "everysec"]).await else {
        return;
    };
    let dir = TempDir::new("redis-queue-refused");
    let upstream = Upstream::start().await;
    let text = config(&server.redis.url(), &prefix("refused"), "", "3s");
    let path = serve_file(&dir, &text, &upstream, "refused.toml");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_hookguard"))
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .expect("the hookguard binary runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("appendfsync is \"everysec\""), "{stderr}");
    assert!(stderr.contains("set `appendfsync always`"), "{stderr}");
    assert!(
        stderr.contains("queue.accept_redis_risk = true"),
        "{stderr}"
    );
    // Started as a library (no `serve` check), it stays unready and
    // refuses durable requests, storing nothing.
    let hg = Hookguard::start(&text, &upstream.url()).await;
    assert!(wait_ready_status(hg.admin, 200, Duration::from_secs(2))
        .await
        .is_none());
    let refused = post(hg.addr, b"{}", "r-1").await;
    assert_eq!(refused.status, 503);
    // With the risk accepted it starts and delivers.
    let accepted = config(
        &server.redis.url(),
        &prefix("accepted"),
        "accept_redis_risk = true",
        "3s",
    );
    let path = serve_file(&dir, &accepted, &upstream, "accepted.toml");
    let (_child, listen, admin) = serve(&path);
    wait_ready_status(admin, 200, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(post(listen, b"{}", "r-2").await.status, 202);
    wait_count(&upstream, 1, Duration::from_secs(10)).await;
}

#[test]
fn hookguard_check_refuses_an_embedded_queue_for_more_than_one_replica_and_takes_a_redis_one() {
    let dir = TempDir::new("check-replicas");
    let embedded = format!(
        "[server]\nupstream = \"http://127.0.0.1:9\"\n\n[queue]\npath = \"{}/q.db\"\n",
        dir.0.display()
    );
    let redis = "[server]\nupstream = \"http://127.0.0.1:9\"\n\n[queue]\nstore = \"redis\"\nredis_url = \"redis://127.0.0.1:1/0\"\n";
    let route = format!(
        "\n[[routes]]\nname = \"vendor\"\npath = \"/vendor\"\nscheme = \"hmac\"\nsecrets = [{{ value = \"{SECRET}\" }}]\n[routes.hmac]\nheader = \"X-Signature\"\n[routes.delivery]\nmode = \"durable\"\n"
    );
    let check = |text: &str, replicas: &str| {
        let path = dir.0.join("config.toml");
        std::fs::write(&path, format!("{text}{route}")).unwrap();
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_hookguard"))
            .args(["check", "--replicas", replicas, "--config"])
            .arg(&path)
            .output()
            .expect("the hookguard binary runs");
        let said = String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr);
        (output.status.code(), said)
    };
    let (code, said) = check(&embedded, "1");
    assert_eq!(code, Some(0), "{said}");
    let (code, said) = check(&embedded, "3");
    assert_eq!(code, Some(2), "{said}");
    assert!(
        said.contains("queue.store: \"embedded\" is one file for one process, and 3 replicas would run this config: use store = \"redis\""),
        "{said}"
    );
    let (code, said) = check(redis, "3");
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("queue redis 127.0.0.1:1"), "{said}");
    let (code, said) = check(&embedded, "0");
    assert_eq!(code, Some(2), "{said}");
}

#[tokio::test]
async fn what_redis_acknowledged_survives_a_sigkill_of_redis_and_an_outage_refuses_enqueues() {
    let Some(mut server) = persistent(&[]).await else {
        return;
    };
    let shared = prefix("redis-kill");
    let store = open(&server.redis, &shared, 1 << 20).await;
    let mut ids = Vec::new();
    for key in 0..20u8 {
        ids.push(queued(&*store, item("r", key, &[key; 100])).await);
    }
    server.redis.kill(); // SIGKILL: no chance to flush anything more
    let refused = store.enqueue(item("r", 200, b"x"), T0).await;
    assert!(
        matches!(refused, Err(hookguard::queue::QueueError::Io(_))),
        "{refused:?}"
    );
    server.redis.restart().await;
    let reopened = open(&server.redis, &shared, 1 << 20).await;
    for id in &ids {
        assert!(reopened.get(*id).await.unwrap().is_some(), "{id} lost");
    }
    assert_eq!(
        reopened.counts().get(&("r".into(), ItemState::Ready)),
        Some(&20)
    );
    // The refused item left nothing behind: its key is free.
    assert!(matches!(
        reopened.enqueue(item("r", 200, b"x"), T0).await.unwrap(),
        Enqueued::Queued(_)
    ));
    // And the first store, reconnected, works again.
    let mut again = None;
    for _ in 0..50 {
        if let Ok(found) = store.get(ids[0]).await {
            again = found;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(again.is_some(), "the first store never reconnected");
}

#[tokio::test]
async fn readyz_follows_the_queues_redis_and_deliveries_resume_after_an_outage() {
    let Some(mut server) = persistent(&[]).await else {
        return;
    };
    let upstream = Upstream::start().await;
    let text = config(
        &server.redis.url(),
        &prefix("outage"),
        "store_timeout = \"300ms\"",
        "10s",
    );
    let hg = Hookguard::start(&text, &upstream.url()).await;
    wait_ready_status(hg.admin, 200, Duration::from_secs(10))
        .await
        .expect("ready once the queue is open");
    assert_eq!(post(hg.addr, b"{\"n\":1}", "o-1").await.status, 202);
    wait_count(&upstream, 1, Duration::from_secs(10)).await;
    server.redis.kill();
    assert!(
        wait_ready_status(hg.admin, 503, Duration::from_secs(5))
            .await
            .is_some(),
        "still ready with the queue's redis gone"
    );
    let (_, said) = support::admin_get(hg.admin, "/readyz").await;
    assert!(
        said.contains("delivery queue's store is unreachable"),
        "{said}"
    );
    let refused = post(hg.addr, b"{\"n\":2}", "o-2").await;
    assert_eq!(refused.status, 503, "{:?}", refused.body);
    server.redis.restart().await;
    assert!(
        wait_ready_status(hg.admin, 200, Duration::from_secs(10))
            .await
            .is_some(),
        "never ready again"
    );
    assert_eq!(post(hg.addr, b"{\"n\":2}", "o-2").await.status, 202);
    wait_count(&upstream, 2, Duration::from_secs(10)).await;
}
