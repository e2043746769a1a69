//! Graceful shutdown: readiness drops first, new connections are refused,
//! and a request in flight still gets its answer.

use crate::support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use support::{hmac_hex, send, Hookguard, Upstream};

const CONFIG: &str = r#"
[server]
upstream = "{upstream}"
shutdown_grace = "5s"

[[routes]]
name = "slow"
path = "/slow"
scheme = "hmac"
secrets = [{ value = "k" }]

[routes.hmac]
header = "X-Signature"
"#;

#[tokio::test]
async fn a_request_in_flight_finishes_during_shutdown() {
    let upstream = Upstream::start().await;
    upstream.delay_ms.store(800, Ordering::SeqCst);
    let mut hg = Hookguard::start(CONFIG, &upstream.url()).await;
    let addr = hg.addr;
    let in_flight = tokio::spawn(async move {
        let headers = vec![("x-signature", hmac_hex("k", b"payload"))];
        send(addr, "POST", "/slow", &headers, "payload").await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(support::admin_get(hg.admin, "/readyz").await.0, 200);

    let server = hg.shutdown();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        support::admin_get(hg.admin, "/readyz").await.0,
        503,
        "readiness drops at once"
    );
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no new connections once shutdown began"
    );

    let answer = in_flight.await.unwrap();
    assert_eq!((answer.status, answer.reject()), (200, None));
    tokio::time::timeout(Duration::from_secs(3), server)
        .await
        .expect("server stops once in-flight requests are done")
        .unwrap();
    assert_eq!(upstream.count(), 1);
}

#[tokio::test]
async fn shutdown_gives_up_after_the_grace_period() {
    let upstream = Upstream::start().await;
    upstream.delay_ms.store(10_000, Ordering::SeqCst);
    let config = CONFIG.replace(
        "shutdown_grace = \"5s\"",
        "shutdown_grace = \"300ms\"\nupstream_timeout = \"20s\"",
    );
    let mut hg = Hookguard::start(&config, &upstream.url()).await;
    let addr = hg.addr;
    tokio::spawn(async move {
        let headers = vec![("x-signature", hmac_hex("k", b"payload"))];
        send(addr, "POST", "/slow", &headers, "payload").await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(3), hg.shutdown())
        .await
        .expect("a stuck request must not hold shutdown past the grace")
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(250));
}
