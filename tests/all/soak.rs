//! A fault and load run: for a bounded time, valid, forged, replayed,
//! oversized and slow requests are driven concurrently at a real hookguard in
//! front of a real upstream that is restarted in the middle, and that
//! refuses some deliveries the first time (401, as an app still on the old
//! secret; 429, its own throttle) and answers others slower than
//! `upstream_timeout`. Afterwards the upstream's own record must show every
//! valid delivery exactly once (after the senders' retries) and nothing
//! forged or replayed.
//!
//! Ignored by default (it takes time); `.ci/run` runs it in a short form:
//! `SOAK_SECONDS=8 cargo test --test all soak -- --ignored --nocapture`.
//! Loopback only, bounded in time and in request count.

use crate::support;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use support::{hmac_hex, now, Hookguard};

const SECRET: &str = "soak-secret";

/// Delivery ids the app acknowledged, in order. The app records a delivery
/// only when it answers it, as a real app commits before it acknowledges: a
/// delivery cut off by the restart was never taken, and must come again.
type Ledger = Arc<Mutex<Vec<String>>>;

/// How the app treats the first copy of delivery `d<n>` that reaches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum First {
    /// Takes it (the usual case).
    Take,
    /// Answers 401 without taking it (still on the old secret).
    Unauthorized,
    /// Answers 429 without taking it (its own throttle).
    Throttled,
    /// Takes it, but answers later than hookguard's `upstream_timeout`.
    Slow,
}

fn first_answer(id: &str) -> First {
    let n: u64 = id.trim_start_matches('d').parse().unwrap_or(0);
    match n {
        _ if n.is_multiple_of(17) => First::Unauthorized,
        _ if n.is_multiple_of(19) => First::Throttled,
        _ if n.is_multiple_of(23) => First::Slow,
        _ => First::Take,
    }
}

/// Longer than the soak config's `upstream_timeout` (300 ms).
const SLOW: Duration = Duration::from_millis(700);

/// An app that takes a few milliseconds per delivery, until aborted; the
/// first copy of some deliveries it refuses or answers late (see
/// [`First`]). `copies` counts the copies that reached it, by id.
fn app(
    listener: TcpListener,
    ledger: Ledger,
    copies: Arc<Mutex<HashMap<String, u32>>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut connections = JoinSet::new();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (ledger, copies) = (ledger.clone(), copies.clone());
            connections.spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let (ledger, copies) = (ledger.clone(), copies.clone());
                    async move {
                        let id = req
                            .headers()
                            .get("x-delivery")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("?")
                            .to_owned();
                        let verified = req.headers().contains_key("x-verified-by");
                        let _ = req.into_body().collect().await;
                        let copy = {
                            let mut copies = copies.lock().unwrap();
                            let n = copies.entry(id.clone()).or_default();
                            *n += 1;
                            *n
                        };
                        let treat = if copy == 1 {
                            first_answer(&id)
                        } else {
                            First::Take
                        };
                        let status = match treat {
                            First::Unauthorized => 401,
                            First::Throttled => 429,
                            First::Slow => {
                                tokio::time::sleep(SLOW).await;
                                200
                            }
                            First::Take => {
                                tokio::time::sleep(Duration::from_millis(3)).await;
                                200
                            }
                        };
                        if status == 200 {
                            ledger.lock().unwrap().push(if verified {
                                id
                            } else {
                                format!("UNVERIFIED {id}")
                            });
                        }
                        let mut answer = Response::new(Full::new(Bytes::from_static(b"taken")));
                        *answer.status_mut() = http::StatusCode::from_u16(status).unwrap();
                        Ok::<_, Infallible>(answer)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

/// One signed delivery, with retries until it is taken or time runs out.
async fn deliver(
    addr: SocketAddr,
    id: String,
    deadline: Instant,
    retries: Arc<AtomicU64>,
) -> Result<String, String> {
    let body = format!("{{\"id\":\"{id}\",\"amount\":1}}");
    let mut attempt = 0u64;
    loop {
        let ts = now();
        let headers = vec![
            (
                "x-signature",
                hmac_hex(SECRET, format!("{ts}.{body}").as_bytes()),
            ),
            ("x-timestamp", ts.to_string()),
            ("x-delivery", id.clone()),
        ];
        let answer = support::send(addr, "POST", "/events", &headers, body.clone()).await;
        match answer.status {
            // Taken now, or a duplicate of a copy the app already took.
            200 => return Ok(id),
            // The app is down, slow or refused it, or a copy is in flight:
            // retry later, as senders retry any answer but a 2xx.
            401 | 409 | 429 | 502 | 503 | 504 => {
                attempt += 1;
                retries.fetch_add(1, Ordering::Relaxed);
                if Instant::now() > deadline {
                    return Err(format!(
                        "{id}: still {} after {attempt} attempts",
                        answer.status
                    ));
                }
                tokio::time::sleep(Duration::from_millis(20 + 10 * attempt.min(10))).await;
            }
            other => return Err(format!("{id}: unexpected {other} {:?}", answer.reject())),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a bounded load run; CI runs it with --ignored"]
async fn every_valid_delivery_arrives_exactly_once_and_nothing_forged_does() {
    let seconds: u64 = std::env::var("SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    let ledger: Ledger = Arc::default();
    let copies: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app_addr = listener.local_addr().unwrap();
    let app_task = app(listener, ledger.clone(), copies.clone());
    let config = r#"
[server]
upstream = "{upstream}"
upstream_timeout = "300ms"
settle_timeout = "5s"
body_timeout = "500ms"

[[routes]]
name = "events"
path = "/events"
scheme = "hmac"
secrets = [{ value = "soak-secret" }]
max_body = "4KiB"
dedupe = ["signature", "header:X-Delivery"]

[routes.hmac]
header = "X-Signature"
message = "{timestamp}.{body}"
timestamp_header = "X-Timestamp"
"#;
    let hg = Hookguard::start(config, &format!("http://{app_addr}")).await;
    let addr = hg.addr;
    let started = Instant::now();
    let run_for = Duration::from_secs(seconds);
    let deadline = started + run_for + Duration::from_secs(20);
    let retries = Arc::new(AtomicU64::new(0));
    let counts: Arc<Mutex<HashMap<&'static str, u64>>> = Arc::default();
    let count = |counts: &Arc<Mutex<HashMap<&'static str, u64>>>, what: &'static str| {
        *counts.lock().unwrap().entry(what).or_default() += 1;
    };

    // Mid-run the app goes away for half a second, cutting off deliveries
    // in flight, while senders keep sending.
    let (restart_ledger, restart_copies) = (ledger.clone(), copies.clone());
    let restarter = tokio::spawn(async move {
        tokio::time::sleep(run_for / 2).await;
        app_task.abort();
        tokio::time::sleep(Duration::from_millis(500)).await;
        // The restarted app serves until the test ends.
        drop(app(
            TcpListener::bind(app_addr).await.unwrap(),
            restart_ledger,
            restart_copies,
        ));
    });

    let mut valid = JoinSet::new();
    let mut hostile = JoinSet::new();
    let mut sent = 0u64;
    // At most 4,000 valid deliveries, whatever the machine's speed.
    while started.elapsed() < run_for && sent < 4_000 {
        for _ in 0..8 {
            sent += 1;
            valid.spawn(deliver(addr, format!("d{sent}"), deadline, retries.clone()));
        }
        let c = counts.clone();
        hostile.spawn(async move {
            // Forged: signed with the wrong secret.
            let ts = now();
            let body = format!("{{\"id\":\"forged{ts}\"}}");
            let headers = vec![
                (
                    "x-signature",
                    hmac_hex("not-the-secret", format!("{ts}.{body}").as_bytes()),
                ),
                ("x-timestamp", ts.to_string()),
                ("x-delivery", format!("forged-{}", rand_suffix())),
            ];
            let answer = support::send(addr, "POST", "/events", &headers, body).await;
            assert_eq!(answer.status, 401, "forged");
            count(&c, "forged refused");
            // Oversized.
            let body = "x".repeat(8 * 1024);
            let answer = support::send(addr, "POST", "/events", &[], body).await;
            assert_eq!(answer.status, 413, "oversized");
            count(&c, "oversized refused");
            // Slow: a body that never completes.
            let mut stream = TcpStream::connect(addr).await.unwrap();
            stream
                .write_all(b"POST /events HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\nslow")
                .await
                .unwrap();
            let mut reply = Vec::new();
            let _ = tokio::time::timeout(
                Duration::from_secs(3),
                tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut reply),
            )
            .await;
            assert!(
                String::from_utf8_lossy(&reply).starts_with("HTTP/1.1 408"),
                "slow"
            );
            count(&c, "slow refused");
        });
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    let mut delivered = Vec::new();
    while let Some(result) = valid.join_next().await {
        delivered.push(result.unwrap().unwrap_or_else(|e| panic!("{e}")));
    }
    while let Some(result) = hostile.join_next().await {
        result.unwrap();
    }
    let restarted = restarter.is_finished();
    restarter.await.unwrap();
    // Replays of deliveries the app took: all refused as duplicates.
    let replayed = replay_some(addr, &ledger).await;

    let record = ledger.lock().unwrap().clone();
    let mut seen: HashMap<&str, u32> = HashMap::new();
    for id in &record {
        *seen.entry(id.as_str()).or_default() += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    let unverified: Vec<_> = record
        .iter()
        .filter(|id| id.starts_with("UNVERIFIED") || id.contains("forged"))
        .collect();
    let missing: Vec<_> = delivered
        .iter()
        .filter(|id| !seen.contains_key(id.as_str()))
        .collect();
    println!(
        "soak: {}s, {} valid deliveries sent, {} acknowledged by the app, {} sender retries, {} replays refused, upstream restarted: {restarted}, hostile: {:?}",
        seconds,
        sent,
        record.len(),
        retries.load(Ordering::Relaxed),
        replayed,
        counts.lock().unwrap()
    );
    assert!(restarted, "the run was too short to restart the upstream");
    assert!(
        retries.load(Ordering::Relaxed) > 0,
        "the restart cut off no delivery; nothing was proven"
    );
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    assert!(
        missing.is_empty(),
        "{} valid deliveries never arrived: {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    assert!(
        unverified.is_empty(),
        "forged or unverified requests reached the app: {unverified:?}"
    );
    assert_eq!(record.len() as u64, sent);
    let refused_first = delivered
        .iter()
        .filter(|id| matches!(first_answer(id), First::Unauthorized | First::Throttled))
        .count();
    let slow_first = delivered
        .iter()
        .filter(|id| first_answer(id) == First::Slow)
        .count();
    println!(
        "soak: {refused_first} deliveries refused by the app at first (401/429) and retried, {slow_first} answered late"
    );
    assert!(
        refused_first > 0 && slow_first > 0,
        "the run was too short to refuse or delay any delivery"
    );
}

/// Re-sends some acknowledged deliveries with fresh signatures; each must be
/// a duplicate. Returns how many were refused.
async fn replay_some(addr: SocketAddr, ledger: &Ledger) -> u64 {
    let ids: Vec<String> = ledger.lock().unwrap().iter().step_by(25).cloned().collect();
    let mut refused = 0;
    for id in ids {
        let ts = now();
        let body = format!("{{\"id\":\"{id}\",\"amount\":1}}");
        let headers = vec![
            (
                "x-signature",
                hmac_hex(SECRET, format!("{ts}.{body}").as_bytes()),
            ),
            ("x-timestamp", ts.to_string()),
            ("x-delivery", id.clone()),
        ];
        let answer = support::send(addr, "POST", "/events", &headers, body).await;
        assert_eq!(
            (answer.status, answer.reject()),
            (200, Some("duplicate")),
            "replay of {id}"
        );
        refused += 1;
    }
    refused
}

fn rand_suffix() -> u64 {
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}
