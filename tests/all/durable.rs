//! Durable delivery through the real proxy: the sender's 202 only once the
//! request is stored, the app's copy with the delivery headers, pauses that
//! spend no attempts, dead items, duplicates of queued deliveries, a full
//! queue, and redelivery after a `SIGKILL`.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::support::{
    self, closed_port, hmac_hex, send, wait_ready_status, Hookguard, TempDir, Upstream,
};

const SECRET: &str = "durable-secret";

/// A durable route deduping on `X-Delivery`, with short backoff steps so
/// that retries and pauses happen within a test; `{extra}` goes into
/// `[routes.delivery]`.
fn config(dir: &TempDir, extra: &str) -> String {
    let extra = if extra.contains("timeout") {
        extra.to_owned()
    } else {
        // Long enough that a CI machine starved for a second does not time
        // out an attempt the app answered, which would (rightly, at least
        // once) send it again and break the tests' exact counts.
        format!("timeout = \"10s\"\n{extra}")
    };
    format!(
        r#"
[server]
upstream = "{{upstream}}"

[queue]
path = "{}/queue.db"
max_bytes = "1MiB"

[[routes]]
name = "vendor"
path = "/vendor"
scheme = "hmac"
secrets = [{{ value = "{SECRET}" }}]
dedupe = ["header:X-Delivery"]
max_body = "400KiB"

[routes.hmac]
header = "X-Signature"

[routes.delivery]
mode = "durable"
backoff = ["50ms", "100ms"]
max_age = "1h"
{extra}
"#,
        dir.0.display()
    )
}

async fn start(config: &str, upstream: &str) -> Hookguard {
    let hg = Hookguard::start(config, upstream).await;
    wait_ready_status(hg.admin, 200, Duration::from_secs(10))
        .await
        .expect("ready once the queue is open");
    hg
}

fn signed(body: &[u8], delivery: &str) -> Vec<(&'static str, String)> {
    vec![
        ("x-signature", hmac_hex(SECRET, body)),
        ("x-delivery", delivery.to_owned()),
        ("content-type", "application/json".to_owned()),
    ]
}

async fn post(addr: std::net::SocketAddr, body: &[u8], delivery: &str) -> support::Answer {
    send(
        addr,
        "POST",
        "/vendor",
        &signed(body, delivery),
        body.to_vec(),
    )
    .await
}

/// Waits until the upstream has recorded `n` requests (at most 10 s).
async fn wait_count(upstream: &Upstream, n: usize) {
    for _ in 0..400 {
        if upstream.count() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the app received {} of {n} requests", upstream.count());
}

/// Asserts that each series reads its value on a scraped page.
#[track_caller]
fn expect_metrics(page: &str, expected: &[(&str, f64)]) {
    for (series, want) in expected {
        assert_eq!(support::metric(page, series), Some(*want), "{series}");
    }
}

async fn metrics(hg: &Hookguard) -> String {
    support::admin_get(hg.admin, "/metrics").await.1
}

#[tokio::test]
async fn the_sender_gets_202_once_stored_and_the_app_the_exact_bytes_with_the_delivery_headers() {
    let dir = TempDir::new("durable-basic");
    let upstream = Upstream::start().await;
    let hg = start(&config(&dir, ""), &upstream.url()).await;
    let body = b"{\"id\":\"evt_1\",\"amount\":100}\r\n";
    let answer = post(hg.addr, body, "d-1").await;
    assert_eq!(answer.status, 202, "{:?}", answer.body);
    let json = answer.json();
    assert_eq!(json["status"], "queued");
    let id = json["id"].as_str().unwrap().to_owned();
    assert_eq!(answer.headers["x-hookguard-delivery-id"], id.as_str());
    wait_count(&upstream, 1).await;
    let got = upstream.last();
    assert_eq!(&got.body[..], body);
    assert_eq!(got.path, "/vendor");
    assert_eq!(got.headers["x-hookguard-delivery-id"], id.as_str());
    assert_eq!(got.headers["x-hookguard-attempt"], "1");
    assert!(
        httpdate::parse_http_date(got.headers["x-hookguard-received-at"].to_str().unwrap()).is_ok()
    );
    assert!(
        got.headers["x-verified-by"]
            .to_str()
            .unwrap()
            .starts_with("hookguard; route=vendor"),
        "{:?}",
        got.headers
    );
    assert_eq!(got.headers["x-delivery"], "d-1");
    assert_eq!(got.headers["x-forwarded-for"], "127.0.0.1");
    // Delivered, not sent again.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(upstream.count(), 1);
    let page = metrics(&hg).await;
    expect_metrics(
        &page,
        &[
            (
                r#"hookguard_requests_total{outcome="queued",route="vendor"}"#,
                1.0,
            ),
            (
                r#"hookguard_queue_items{route="vendor",state="delivered"}"#,
                1.0,
            ),
            (
                r#"hookguard_delivery_attempts_total{outcome="delivered",route="vendor"}"#,
                1.0,
            ),
        ],
    );
    support::promtool_check_metrics(&page);
}

#[tokio::test]
async fn with_the_app_down_senders_get_202_and_the_app_gets_everything_once_it_is_up() {
    let dir = TempDir::new("durable-down");
    let (port, url) = closed_port().await;
    let hg = start(&config(&dir, ""), &url).await;
    let mut ids = Vec::new();
    for n in 0..5 {
        let body = format!("{{\"n\":{n}}}");
        let answer = post(hg.addr, body.as_bytes(), &format!("d-{n}")).await;
        assert_eq!(answer.status, 202);
        ids.push(answer.json()["id"].as_str().unwrap().to_owned());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let page = metrics(&hg).await;
    expect_metrics(
        &page,
        &[(r#"hookguard_queue_route_paused{route="vendor"}"#, 1.0)],
    );
    let upstream = Upstream::serve(port.listen());
    wait_count(&upstream, 5).await;
    let mut got: Vec<String> = upstream
        .requests
        .lock()
        .unwrap()
        .iter()
        .map(|r| {
            r.headers["x-hookguard-delivery-id"]
                .to_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    got.sort();
    ids.sort();
    assert_eq!(got, ids, "each queued delivery reaches the app once");
}

#[tokio::test]
async fn an_app_shedding_load_pauses_the_route_without_spending_attempts() {
    let dir = TempDir::new("durable-shed");
    let upstream = Upstream::start().await;
    upstream.status.store(503, Ordering::SeqCst);
    // One attempt allowed: a 503 that spent it would make the item dead.
    let hg = start(&config(&dir, "max_attempts = 1"), &upstream.url()).await;
    assert_eq!(post(hg.addr, b"{}", "d-1").await.status, 202);
    wait_count(&upstream, 3).await;
    upstream.status.store(200, Ordering::SeqCst);
    let before = upstream.count();
    wait_count(&upstream, before + 1).await;
    let last = upstream.last();
    assert_eq!(
        last.headers["x-hookguard-attempt"].to_str().unwrap(),
        (before + 1).to_string(),
        "each send counts as a try"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let page = metrics(&hg).await;
    expect_metrics(
        &page,
        &[
            (
                r#"hookguard_queue_items{route="vendor",state="delivered"}"#,
                1.0,
            ),
            (
                r#"hookguard_queue_dead_total{reason="max_attempts",route="vendor"}"#,
                0.0,
            ),
        ],
    );
    assert!(
        support::metric(
            &page,
            r#"hookguard_delivery_attempts_total{outcome="shed",route="vendor"}"#
        )
        .unwrap()
            >= 3.0
    );
}

#[tokio::test]
async fn a_4xx_is_dead_at_once_and_other_failures_die_at_max_attempts() {
    let dir = TempDir::new("durable-dead");
    let upstream = Upstream::start().await;
    upstream.status.store(404, Ordering::SeqCst);
    let hg = start(&config(&dir, "max_attempts = 3"), &upstream.url()).await;
    assert_eq!(post(hg.addr, b"{\"a\":1}", "d-404").await.status, 202);
    wait_count(&upstream, 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(upstream.count(), 1, "a 404 is not retried");
    upstream.status.store(500, Ordering::SeqCst);
    assert_eq!(post(hg.addr, b"{\"a\":2}", "d-500").await.status, 202);
    wait_count(&upstream, 4).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(upstream.count(), 4, "three attempts for the 500, then dead");
    let page = metrics(&hg).await;
    expect_metrics(
        &page,
        &[
            (
                r#"hookguard_queue_dead_total{reason="status",route="vendor"}"#,
                1.0,
            ),
            (
                r#"hookguard_queue_dead_total{reason="max_attempts",route="vendor"}"#,
                1.0,
            ),
            (r#"hookguard_queue_items{route="vendor",state="dead"}"#, 2.0),
        ],
    );
}

#[tokio::test]
async fn a_copy_of_a_queued_delivery_is_a_duplicate() {
    let dir = TempDir::new("durable-dup");
    let (_port, url) = closed_port().await;
    let hg = start(&config(&dir, ""), &url).await;
    let first = post(hg.addr, b"{\"x\":1}", "d-same").await;
    assert_eq!(first.status, 202);
    let id = first.json()["id"].as_str().unwrap().to_owned();
    let copy = post(hg.addr, b"{\"x\":1}", "d-same").await;
    assert_eq!((copy.status, copy.reject()), (200, Some("duplicate")));
    assert!(
        copy.json()["detail"].as_str().unwrap().contains(&id),
        "{:?}",
        copy.body
    );
}

#[tokio::test]
async fn a_full_queue_answers_503_with_retry_after_and_stores_nothing() {
    let dir = TempDir::new("durable-full");
    let (port, url) = closed_port().await;
    let hg = start(&config(&dir, ""), &url).await;
    let big = vec![b'7'; 400 * 1024];
    assert_eq!(post(hg.addr, &big, "f-1").await.status, 202);
    assert_eq!(post(hg.addr, &big, "f-2").await.status, 202);
    let full = post(hg.addr, &big, "f-3").await;
    assert_eq!((full.status, full.reject()), (503, Some("queue_full")));
    assert_eq!(full.headers["retry-after"], "30");
    let page = metrics(&hg).await;
    expect_metrics(
        &page,
        &[(r#"hookguard_queue_store_errors_total{kind="full"}"#, 1.0)],
    );
    let upstream = Upstream::serve(port.listen());
    wait_count(&upstream, 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(upstream.count(), 2, "the refused request was not stored");
}

/// A `hookguard serve` child, killed when dropped (a failed test leaves no
/// process behind).
pub struct Served(pub std::process::Child);

impl Served {
    /// SIGKILL, and reaped.
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `hookguard serve` on `config`, returning the child and its addresses
/// once it logged that it is ready.
pub fn serve(config: &std::path::Path) -> (Served, std::net::SocketAddr, std::net::SocketAddr) {
    use std::io::{BufRead, BufReader};
    let mut child = Served(
        std::process::Command::new(env!("CARGO_BIN_EXE_hookguard"))
            .args(["serve", "--config"])
            .arg(config)
            .env("RUST_LOG", "info")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("the hookguard binary starts"),
    );
    let mut lines = BufReader::new(child.0.stderr.take().unwrap()).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let Ok(parsed) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if parsed["message"] == "hookguard is ready" {
            let listen = parsed["listen"].as_str().unwrap().parse().unwrap();
            let admin = parsed["admin"].as_str().unwrap().parse().unwrap();
            // Keep draining stderr so the child never blocks on a full pipe.
            std::thread::spawn(move || for _ in lines {});
            return (child, listen, admin);
        }
    }
    panic!("hookguard exited before it was ready");
}

#[tokio::test]
async fn items_in_flight_at_a_sigkill_are_delivered_again_after_the_restart() {
    let dir = TempDir::new("durable-kill");
    let upstream = Upstream::start().await;
    // The app holds every request past the kill.
    upstream.delay_ms.store(5_000, Ordering::SeqCst);
    let text = config(&dir, "timeout = \"10s\"")
        .replace("{upstream}", &upstream.url())
        .replace(
            "[server]\n",
            "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n",
        );
    let path = dir.0.join("hookguard.toml");
    std::fs::write(&path, text).unwrap();
    let (mut child, listen, admin) = serve(&path);
    wait_ready_status(admin, 200, Duration::from_secs(10))
        .await
        .unwrap();
    let mut ids = Vec::new();
    for n in 0..3 {
        let answer = post(
            listen,
            format!("{{\"n\":{n}}}").as_bytes(),
            &format!("k-{n}"),
        )
        .await;
        assert_eq!(answer.status, 202);
        ids.push(answer.json()["id"].as_str().unwrap().to_owned());
    }
    wait_count(&upstream, 3).await;
    child.kill(); // SIGKILL
    upstream.delay_ms.store(0, Ordering::SeqCst);
    let (_child, _, admin) = serve(&path);
    let ready = wait_ready_status(admin, 200, Duration::from_secs(10)).await;
    assert!(ready.is_some(), "ready after recovery");
    wait_count(&upstream, 6).await;
    let again: Vec<(String, String)> = upstream.requests.lock().unwrap()[3..]
        .iter()
        .map(|r| {
            (
                r.headers["x-hookguard-delivery-id"]
                    .to_str()
                    .unwrap()
                    .to_owned(),
                r.headers["x-hookguard-attempt"]
                    .to_str()
                    .unwrap()
                    .to_owned(),
            )
        })
        .collect();
    for id in &ids {
        assert!(
            again.contains(&(id.clone(), "2".to_owned())),
            "{id} not redelivered: {again:?}"
        );
    }
    let page = support::admin_get(admin, "/metrics").await.1;
    expect_metrics(&page, &[("hookguard_queue_recovered_items", 3.0)]);
}

/// An admin request with an optional JSON body; status and JSON answer.
async fn admin(
    hg: &Hookguard,
    method: &str,
    path: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let body = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    let answer = send(hg.admin, method, path, &[], body).await;
    (
        answer.status,
        serde_json::from_slice(&answer.body).unwrap_or_default(),
    )
}

#[tokio::test]
async fn operators_list_show_redeliver_purge_and_pause_through_the_admin_listener_and_the_cli() {
    let dir = TempDir::new("durable-ops");
    let upstream = Upstream::start().await;
    upstream.status.store(410, Ordering::SeqCst);
    let hg = start(&config(&dir, ""), &upstream.url()).await;
    let answer = post(hg.addr, b"{\"op\":1}", "o-1").await;
    let id = answer.json()["id"].as_str().unwrap().to_owned();
    wait_count(&upstream, 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, listed) = admin(
        &hg,
        "GET",
        "/queue?state=dead&route=vendor",
        serde_json::Value::Null,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(listed["items"][0]["id"], id.as_str());
    assert_eq!(listed["items"][0]["last"], "410");
    // Shown without any credential: the signature header is redacted.
    let (status, shown) = admin(
        &hg,
        "GET",
        &format!("/queue/{id}?body=1"),
        serde_json::Value::Null,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(shown["body"], "{\"op\":1}");
    let headers = shown["headers"].to_string();
    assert!(
        headers.contains(r#"["x-signature","<redacted>"]"#),
        "{headers}"
    );
    assert!(
        !headers.contains(&hmac_hex(SECRET, b"{\"op\":1}")),
        "{headers}"
    );
    // Redelivered (same id, next try) once the app takes it.
    upstream.status.store(200, Ordering::SeqCst);
    let (status, redelivered) = admin(
        &hg,
        "POST",
        "/queue/redeliver",
        serde_json::json!({"route": "vendor", "state": "dead"}),
    )
    .await;
    assert_eq!(
        (status, redelivered["redelivered"].as_u64()),
        (200, Some(1))
    );
    wait_count(&upstream, 2).await;
    assert_eq!(
        upstream.last().headers["x-hookguard-delivery-id"],
        id.as_str()
    );
    assert_eq!(upstream.last().headers["x-hookguard-attempt"], "2");
    // Paused: accepted, not delivered, until resumed.
    assert_eq!(
        admin(&hg, "POST", "/queue/pause/vendor", serde_json::Value::Null)
            .await
            .0,
        200
    );
    assert_eq!(post(hg.addr, b"{\"op\":2}", "o-2").await.status, 202);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(upstream.count(), 2);
    let (_, stats) = admin(&hg, "GET", "/queue/stats", serde_json::Value::Null).await;
    assert_eq!(stats["routes"]["vendor"]["paused"], true);
    assert_eq!(stats["routes"]["vendor"]["ready"], 1);

    // The same through the CLI, pointed at this admin listener.
    let file = dir.0.join("cli.toml");
    let text = config(&dir, "")
        .replace("{upstream}", &upstream.url())
        .replace(
            "[server]\n",
            &format!("[server]\nadmin_listen = \"{}\"\n", hg.admin),
        );
    std::fs::write(&file, text).unwrap();
    let cli = |args: &'static [&'static str]| {
        let file = file.clone();
        tokio::task::spawn_blocking(move || {
            let output = std::process::Command::new(env!("CARGO_BIN_EXE_hookguard"))
                .arg("queue")
                .args(args)
                .arg("--config")
                .arg(&file)
                .output()
                .unwrap();
            (
                output.status.code(),
                String::from_utf8_lossy(&output.stdout).into_owned(),
                String::from_utf8_lossy(&output.stderr).into_owned(),
            )
        })
    };
    let (code, out, err) = cli(&["resume", "vendor"]).await.unwrap();
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, "vendor resumed\n");
    wait_count(&upstream, 3).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (code, out, _) = cli(&["ls", "--state", "delivered"]).await.unwrap();
    assert_eq!(code, Some(0));
    assert_eq!(out.lines().count(), 3, "a header and two items:\n{out}");
    // Each figure stands under its column's name.
    let header = out.lines().next().unwrap();
    let column = |line: &str, name: &str| {
        let start = header.find(name).unwrap();
        line.get(start..start + name.len())
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    for line in out.lines().skip(1) {
        let state = header.find("STATE").unwrap();
        assert!(
            line.get(state..)
                .unwrap_or_default()
                .starts_with("delivered "),
            "{out}"
        );
        assert!(column(line, "TRIES").parse::<u32>().is_ok(), "{out}");
        assert!(column(line, "ATTEMPTS").parse::<u32>().is_ok(), "{out}");
    }
    let (code, out, _) = cli(&["stats", "--json"]).await.unwrap();
    assert_eq!(code, Some(0));
    let stats: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(stats["routes"]["vendor"]["delivered"], 2);
    let (code, _, err) = cli(&["purge"]).await.unwrap();
    assert_eq!(code, Some(2), "purging everything at once is refused");
    assert!(err.contains("state"), "{err}");
    let (code, out, _) = cli(&["purge", "--state", "delivered"]).await.unwrap();
    assert_eq!((code, out.as_str()), (Some(0), "purged 2\n"));
    let (status, _) = admin(&hg, "GET", &format!("/queue/{id}"), serde_json::Value::Null).await;
    assert_eq!(status, 404);
}

/// One attempt to send a signed delivery; `None` when the connection
/// failed (hookguard being killed or restarting).
async fn try_post(
    addr: std::net::SocketAddr,
    body: &[u8],
    delivery: &str,
) -> Option<(u16, serde_json::Value)> {
    use http_body_util::BodyExt;
    let attempt = async {
        let stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .ok()?;
        tokio::spawn(conn);
        let mut request = http::Request::builder()
            .method("POST")
            .uri("/vendor")
            .header("host", "hooks.example.com");
        for (name, value) in signed(body, delivery) {
            request = request.header(name, value);
        }
        let request = request
            .body(http_body_util::Full::new(bytes::Bytes::copy_from_slice(
                body,
            )))
            .ok()?;
        let response = sender.send_request(request).await.ok()?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.ok()?.to_bytes();
        Some((status, serde_json::from_slice(&body).unwrap_or_default()))
    };
    tokio::time::timeout(Duration::from_secs(5), attempt)
        .await
        .ok()
        .flatten()
}

/// A port free now, for a listener hookguard binds after each restart.
fn free_port() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// The soak: deliveries at a steady rate while hookguard is killed with
/// `SIGKILL` and restarted several times and the app is stopped for a
/// while. From the app's own record: every request that got 202 (or, after
/// a lost answer, `duplicate`) was delivered at least once, and every
/// repeated delivery carries the id of the first.
///
/// Ignored by default; `.ci/run`'s soak line runs it briefly:
/// `SOAK_SECONDS=8 cargo test --test all soak -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn sigkill_soak_every_acknowledged_delivery_arrives_with_a_stable_id() {
    let seconds: u64 = std::env::var("SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    let dir = TempDir::new("durable-soak");
    let app_addr = free_port();
    let apps = std::sync::Arc::new(std::sync::Mutex::new(vec![Upstream::serve(
        TcpListener::bind(app_addr).await.unwrap(),
    )]));
    let (listen, admin_listen) = (free_port(), free_port());
    let text = config(&dir, "timeout = \"2s\"")
        .replace("{upstream}", &format!("http://{app_addr}"))
        .replace("max_bytes = \"1MiB\"", "max_bytes = \"256MiB\"")
        .replace(
            "[server]\n",
            &format!("[server]\nlisten = \"{listen}\"\nadmin_listen = \"{admin_listen}\"\n"),
        );
    let path = dir.0.join("hookguard.toml");
    std::fs::write(&path, text).unwrap();
    let (first, _, _) = serve(&path);
    let served = std::sync::Arc::new(std::sync::Mutex::new(first));
    let deadline = std::time::Instant::now() + Duration::from_secs(seconds);

    // The sender: one delivery every 5 ms, each retried until acknowledged.
    let sender = tokio::spawn(async move {
        let mut acked: Vec<(u64, String)> = Vec::new();
        let mut n = 0u64;
        while std::time::Instant::now() < deadline {
            let body = format!("{{\"n\":{n}}}");
            let delivery = format!("s-{n}");
            loop {
                match try_post(listen, body.as_bytes(), &delivery).await {
                    Some((202, json)) => {
                        acked.push((n, json["id"].as_str().unwrap().to_owned()));
                        break;
                    }
                    Some((200, json)) if json["error"] == "duplicate" => {
                        // The first copy was stored, its answer lost.
                        let detail = json["detail"].as_str().unwrap();
                        let id = detail
                            .rsplit("delivery id ")
                            .next()
                            .unwrap()
                            .trim_end_matches(')');
                        acked.push((n, id.to_owned()));
                        break;
                    }
                    _ => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
            n += 1;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        (n, acked)
    });

    // The harness: SIGKILL and restart every ~1.5 s; once, the app stops
    // for a second.
    let mut kills = 0;
    let mut stopped_app = false;
    while std::time::Instant::now() + Duration::from_millis(1500) < deadline {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        served.lock().unwrap().kill();
        kills += 1;
        if !stopped_app {
            apps.lock().unwrap().last().unwrap().stop();
            stopped_app = true;
        }
        let (next, _, admin) = serve(&path);
        *served.lock().unwrap() = next;
        wait_ready_status(admin, 200, Duration::from_secs(10))
            .await
            .unwrap();
        if kills == 1 {
            tokio::time::sleep(Duration::from_millis(700)).await;
            let again = Upstream::serve(TcpListener::bind(app_addr).await.unwrap());
            apps.lock().unwrap().push(again);
        }
    }
    let (sent, acked) = sender.await.unwrap();

    // Every acknowledged delivery reaches the app, within 30 s.
    let delivered = |apps: &[Upstream]| {
        let mut seen: std::collections::HashMap<String, Vec<String>> = Default::default();
        for app in apps {
            for request in app.requests.lock().unwrap().iter() {
                let n = request.headers["x-delivery"].to_str().unwrap().to_owned();
                let id = request.headers["x-hookguard-delivery-id"]
                    .to_str()
                    .unwrap()
                    .to_owned();
                seen.entry(n).or_default().push(id);
            }
        }
        seen
    };
    let mut seen = delivered(&apps.lock().unwrap());
    for _ in 0..300 {
        if acked
            .iter()
            .all(|(n, _)| seen.contains_key(&format!("s-{n}")))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        seen = delivered(&apps.lock().unwrap());
    }
    let missing: Vec<u64> = acked
        .iter()
        .filter(|(n, _)| !seen.contains_key(&format!("s-{n}")))
        .map(|(n, _)| *n)
        .collect();
    let copies: usize = seen.values().map(Vec::len).sum();
    println!(
        "durable soak: {seconds} s, {sent} sent, {} acknowledged, {kills} SIGKILLs, app stopped once; {} delivered, {} copies ({} repeated), {} missing",
        acked.len(),
        seen.len(),
        copies,
        copies - seen.len(),
        missing.len()
    );
    assert!(kills >= 2, "the run was too short to kill hookguard twice");
    assert!(
        missing.is_empty(),
        "acknowledged but never delivered: {missing:?}"
    );
    for (n, id) in &acked {
        let ids = &seen[&format!("s-{n}")];
        assert!(
            ids.iter().all(|got| got == id),
            "s-{n}: acknowledged as {id}, delivered as {ids:?}"
        );
    }
}
