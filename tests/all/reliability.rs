//! Safe operations through the real proxy: shadow mode, rate limits,
//! allowlists, content types, hostile framing and slow clients, bounded
//! connections and replay entries, and reloads with rotated secrets and a
//! rotated Meta verify token.

use crate::support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use support::{hmac_hex, send, Hookguard, TempDir, Upstream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SECRET: &str = "rel-secret";

fn route(name: &str, path: &str, extra: &str) -> String {
    format!(
        r#"
[[routes]]
name = "{name}"
path = "{path}"
scheme = "hmac"
secrets = [{{ value = "rel-secret" }}]
{extra}
[routes.hmac]
header = "X-Signature"
"#
    )
}

fn signed(body: &str) -> Vec<(&'static str, String)> {
    vec![("x-signature", hmac_hex(SECRET, body.as_bytes()))]
}

fn server(extra: &str) -> String {
    format!("[server]\nupstream = \"{{upstream}}\"\n{extra}\n")
}

#[tokio::test]
async fn shadow_mode_forwards_everything_and_says_what_failed() {
    let upstream = Upstream::start().await;
    let config = server("")
        + &route(
            "adopt",
            "/adopt",
            "enforce = false\ncontent_types = [\"application/json\"]",
        );
    let hg = Hookguard::start(&config, &upstream.url()).await;

    let good = send(
        hg.addr,
        "POST",
        "/adopt",
        &[
            signed("{}"),
            vec![("content-type", "application/json".into())],
        ]
        .concat(),
        "{}",
    )
    .await;
    assert_eq!((good.status, good.reject()), (200, None));
    let seen = upstream.last();
    assert_eq!(
        seen.headers["x-verified-by"],
        "hookguard; route=adopt; scheme=hmac; key=0"
    );
    assert!(seen.headers.get("x-hookguard-shadow").is_none());

    let forged = vec![
        ("x-signature", hmac_hex("wrong", b"{\"a\":1}")),
        ("content-type", "application/json".into()),
    ];
    let answer = send(hg.addr, "POST", "/adopt", &forged, "{\"a\":1}").await;
    assert_eq!(
        (answer.status, answer.reject()),
        (200, None),
        "forwarded despite the bad signature"
    );
    let seen = upstream.last();
    assert_eq!(seen.headers["x-hookguard-shadow"], "bad_signature");
    assert!(
        seen.headers.get("x-verified-by").is_none(),
        "never marked verified"
    );

    let replay = send(
        hg.addr,
        "POST",
        "/adopt",
        &[
            signed("{}"),
            vec![("content-type", "application/json".into())],
        ]
        .concat(),
        "{}",
    )
    .await;
    assert_eq!(replay.status, 200);
    assert_eq!(upstream.last().headers["x-hookguard-shadow"], "duplicate");
    assert!(upstream.last().headers.get("x-verified-by").is_none());

    // The first failing check is reported: here the content type.
    let answer = send(
        hg.addr,
        "POST",
        "/adopt",
        &[("content-type", "text/plain".to_owned())],
        "x",
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        upstream.last().headers["x-hookguard-shadow"],
        "unsupported_media_type"
    );
    assert_eq!(upstream.count(), 4);

    let (_, page) = support::admin_get(hg.admin, "/metrics").await;
    assert_eq!(
        support::metric(
            &page,
            "hookguard_requests_total{outcome=\"shadow\",route=\"adopt\"}"
        ),
        Some(3.0)
    );
    assert_eq!(
        support::metric(
            &page,
            "hookguard_requests_total{outcome=\"forwarded\",route=\"adopt\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        support::metric(
            &page,
            "hookguard_rejections_total{reason=\"bad_signature\",route=\"adopt\"}"
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn past_the_burst_verified_requests_get_429_and_forged_ones_spend_nothing() {
    let upstream = Upstream::start().await;
    let config = server("")
        + &route(
            "limited",
            "/limited",
            "rate_limit = { requests_per_second = 1, burst = 3 }",
        );
    let hg = Hookguard::start(&config, &upstream.url()).await;
    // A flood of forged requests first: refused for their signature, and
    // the real sender's budget is untouched.
    for n in 0..10 {
        let forged = vec![("x-signature", "0".repeat(64))];
        let answer = send(hg.addr, "POST", "/limited", &forged, format!("{n}")).await;
        assert_eq!(answer.reject(), Some("bad_signature"));
    }
    let mut statuses = Vec::new();
    for n in 0..5 {
        let body = format!("{{\"n\":{n}}}");
        let answer = send(hg.addr, "POST", "/limited", &signed(&body), body).await;
        if answer.status == 429 {
            assert_eq!(answer.reject(), Some("rate_limited"));
            let wait: u64 = answer.headers["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((1..=2).contains(&wait), "{wait}");
        }
        statuses.push(answer.status);
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    assert_eq!(upstream.count(), 3);
}

#[tokio::test]
async fn a_client_past_its_own_rate_gets_429_on_the_head_alone() {
    let upstream = Upstream::start().await;
    let config = server("")
        + &route(
            "guarded",
            "/guarded",
            "client_rate_limit = { requests_per_minute = 30, burst = 2 }",
        );
    let hg = Hookguard::start(&config, &upstream.url()).await;
    for n in 0..2 {
        let body = format!("{{\"n\":{n}}}");
        let answer = send(hg.addr, "POST", "/guarded", &signed(&body), body).await;
        assert_eq!(answer.status, 200);
    }
    // Checked on the head alone: a declared body that is never sent still
    // gets 429 at once, not 413 or a timeout.
    let mut stream = TcpStream::connect(hg.addr).await.unwrap();
    stream
        .write_all(b"POST /guarded HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
        .await
        .unwrap();
    let mut head = vec![0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut head))
        .await
        .unwrap()
        .unwrap();
    let head = String::from_utf8_lossy(&head[..n]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 429"), "{head}");
    assert!(
        head.contains("retry-after: 2"),
        "one request every 2 s: {head}"
    );
    assert!(head.contains("30 requests per minute"), "{head}");
    assert_eq!(upstream.count(), 2);
}

#[tokio::test]
async fn allow_ips_use_the_peer_and_believe_forwarded_for_only_from_trusted_proxies() {
    let upstream = Upstream::start().await;
    let closed = server("")
        + &route(
            "internal",
            "/internal",
            "allow_ips = [\"10.0.0.0/8\", \"2001:db8::/32\"]",
        );
    let hg = Hookguard::start(&closed, &upstream.url()).await;
    let mut headers = signed("x");
    headers.push(("x-forwarded-for", "10.1.2.3".into()));
    let answer = send(hg.addr, "POST", "/internal", &headers, "x").await;
    assert_eq!(
        (answer.status, answer.reject()),
        (403, Some("ip_denied")),
        "an untrusted peer's X-Forwarded-For is ignored"
    );
    assert!(answer.json()["detail"]
        .as_str()
        .unwrap()
        .contains("127.0.0.1"));

    let trusting = server("trusted_proxies = [\"127.0.0.1/32\"]")
        + &route("internal", "/internal", "allow_ips = [\"10.0.0.0/8\"]");
    let hg = Hookguard::start(&trusting, &upstream.url()).await;
    let answer = send(hg.addr, "POST", "/internal", &headers, "x").await;
    assert_eq!(
        (answer.status, answer.reject()),
        (200, None),
        "client behind a trusted proxy"
    );
    // The right-most untrusted entry is the client; a forged entry to its
    // left does not help.
    let mut spoofed = signed("y");
    spoofed.push(("x-forwarded-for", "10.9.9.9, 192.0.2.7".into()));
    let answer = send(hg.addr, "POST", "/internal", &spoofed, "y").await;
    assert_eq!(answer.reject(), Some("ip_denied"));
    assert!(answer.json()["detail"]
        .as_str()
        .unwrap()
        .contains("192.0.2.7"));
    assert_eq!(upstream.count(), 1);
}

#[tokio::test]
async fn content_types_are_checked_with_parameters_allowed() {
    let upstream = Upstream::start().await;
    let config = server("") + &route("json", "/json", "content_types = [\"application/json\"]");
    let hg = Hookguard::start(&config, &upstream.url()).await;
    let mut headers = signed("{}");
    headers.push(("content-type", "Application/JSON; charset=utf-8".into()));
    assert_eq!(
        send(hg.addr, "POST", "/json", &headers, "{}").await.status,
        200
    );
    let mut headers = signed("a=1");
    headers.push(("content-type", "application/x-www-form-urlencoded".into()));
    let answer = send(hg.addr, "POST", "/json", &headers, "a=1").await;
    assert_eq!(
        (answer.status, answer.reject()),
        (415, Some("unsupported_media_type"))
    );
    let answer = send(hg.addr, "POST", "/json", &signed("b"), "b").await;
    assert_eq!(
        answer.status, 415,
        "a missing Content-Type is not accepted either"
    );
    assert_eq!(upstream.count(), 1);
}

/// Writes raw bytes and returns what came back before the server closed the
/// connection or went quiet for `quiet`.
async fn raw(addr: std::net::SocketAddr, bytes: &[u8], quiet: Duration) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let _ = stream.write_all(bytes).await;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(quiet, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn smuggling_shapes_are_refused_with_400_and_never_forwarded() {
    let upstream = Upstream::start().await;
    let config = server("unmatched = \"forward\"") + &route("r", "/r", "");
    let hg = Hookguard::start(&config, &upstream.url()).await;
    let sig = hmac_hex(SECRET, b"hello");
    let both = format!(
        "POST /r HTTP/1.1\r\nHost: x\r\nX-Signature: {sig}\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    );
    let reply = raw(hg.addr, both.as_bytes(), Duration::from_secs(2)).await;
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    assert!(reply.contains("ambiguous_framing"), "{reply}");
    let twice = format!("POST /r HTTP/1.1\r\nHost: x\r\nX-Signature: {sig}\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello");
    let reply = raw(hg.addr, twice.as_bytes(), Duration::from_secs(2)).await;
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    // Unmatched pass-through gets the same protection.
    let both = "POST /elsewhere HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
    let reply = raw(hg.addr, both.as_bytes(), Duration::from_secs(2)).await;
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    assert_eq!(upstream.count(), 0);
}

#[tokio::test]
async fn oversized_heads_are_refused() {
    let upstream = Upstream::start().await;
    let config = server("max_headers = 20\nmax_header_bytes = \"8KiB\"") + &route("r", "/r", "");
    let hg = Hookguard::start(&config, &upstream.url()).await;
    let mut many = String::from("POST /r HTTP/1.1\r\nHost: x\r\n");
    for i in 0..30 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("Content-Length: 0\r\n\r\n");
    let reply = raw(hg.addr, many.as_bytes(), Duration::from_secs(2)).await;
    assert!(
        reply.starts_with("HTTP/1.1 431"),
        "too many headers: {reply}"
    );
    let huge = format!(
        "POST /r HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nContent-Length: 0\r\n\r\n",
        "a".repeat(16 * 1024)
    );
    let reply = raw(hg.addr, huge.as_bytes(), Duration::from_secs(2)).await;
    assert!(reply.starts_with("HTTP/1.1 431"), "head too large: {reply}");
    assert_eq!(upstream.count(), 0);
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    let upstream = Upstream::start().await;
    let config = server("header_timeout = \"300ms\"") + &route("r", "/r", "");
    let hg = Hookguard::start(&config, &upstream.url()).await;
    let mut stream = TcpStream::connect(hg.addr).await.unwrap();
    stream
        .write_all(b"POST /r HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(3), stream.read_to_end(&mut buf)).await;
    assert!(
        read.is_ok(),
        "the connection must be closed, not left hanging"
    );
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert_eq!(upstream.count(), 0);
}

#[tokio::test]
async fn past_max_connections_new_connections_wait_without_harming_existing_ones() {
    let upstream = Upstream::start().await;
    let config = server("max_connections = 2") + &route("r", "/r", "dedupe = []");
    let hg = Hookguard::start(&config, &upstream.url()).await;
    // Two kept-alive connections hold both slots.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut connection = support::Connection::open(hg.addr).await;
        assert_eq!(connection.post("/r", &signed("ok"), "ok").await, 200);
        held.push(connection);
    }
    let addr = hg.addr;
    let waiting =
        tokio::spawn(async move { send(addr, "POST", "/r", &signed("late"), "late").await });
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        !waiting.is_finished(),
        "a third connection must wait for a slot"
    );
    assert_eq!(upstream.count(), 2);
    // The held connections still work.
    assert_eq!(held[0].post("/r", &signed("again"), "again").await, 200);
    drop(held);
    let answer = tokio::time::timeout(Duration::from_secs(3), waiting)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(upstream.count(), 4);
}

#[tokio::test]
async fn the_replay_store_stays_within_max_entries_under_a_flood_and_counts_evictions() {
    let upstream = Upstream::start().await;
    let config = server("") + "[replay]\nmax_entries = 50\n" + &route("r", "/r", "");
    let hg = Hookguard::start(&config, &upstream.url()).await;
    for n in 0..300 {
        let body = format!("{{\"n\":{n}}}");
        assert_eq!(
            send(hg.addr, "POST", "/r", &signed(&body), body)
                .await
                .status,
            200
        );
    }
    let (_, page) = support::admin_get(hg.admin, "/metrics").await;
    let entries = support::metric(&page, "hookguard_replay_entries").unwrap();
    assert!(entries <= 50.0, "{entries} entries for max_entries = 50");
    let evicted = support::metric(
        &page,
        "hookguard_replay_evictions_total{cause=\"capacity\"}",
    )
    .unwrap();
    assert!(evicted >= 250.0, "{evicted} capacity evictions");
}

/// Polls `check` every 100 ms for up to 4 s; true once it holds. Reloads are
/// noticed by polling, so their effects are awaited this way.
async fn eventually<F: std::future::Future<Output = bool>>(mut check: impl FnMut() -> F) -> bool {
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if check().await {
            return true;
        }
    }
    false
}

/// Mounts `contents` as `data/<file>` in `dir` the way Kubernetes mounts a
/// Secret: a symlink into a versioned directory, rotated by swapping the
/// link, so the link's own mtime never changes. Returns the file's path.
fn mount(dir: &TempDir, version: &str, file: &str, contents: &str) -> std::path::PathBuf {
    std::fs::create_dir_all(dir.0.join(version)).unwrap();
    std::fs::write(dir.0.join(version).join(file), contents).unwrap();
    std::os::unix::fs::symlink(dir.0.join(version), dir.0.join("data.tmp")).unwrap();
    std::fs::rename(dir.0.join("data.tmp"), dir.0.join("data")).unwrap();
    dir.0.join("data").join(file)
}

/// A reloading config with one generic HMAC route whose secret is the file
/// `secret`.
fn file_secret_config(upstream: &Upstream, secret: &std::path::Path) -> String {
    format!(
        "[server]\nupstream = \"{}\"\nreload_interval = \"100ms\"\n\n[[routes]]\nname = \"r\"\npath = \"/r\"\nscheme = \"hmac\"\nsecrets = [{{ file = \"{}\" }}]\n[routes.hmac]\nheader = \"X-Signature\"\n",
        upstream.url(),
        secret.display()
    )
}

#[tokio::test]
async fn reloads_pick_up_rotated_secret_files_and_refuse_broken_configs() {
    let upstream = Upstream::start().await;
    let dir = TempDir::new("reload");
    let secret_path = mount(&dir, "v1", "secret", "old-secret\n");
    let config_path = dir.0.join("hookguard.toml");
    let config = file_secret_config(&upstream, &secret_path);
    std::fs::write(&config_path, &config).unwrap();
    let hg = Hookguard::start_reloading(&config_path).await;
    let post = |secret: &'static str, body: &'static str| {
        let addr = hg.addr;
        async move {
            send(
                addr,
                "POST",
                "/r",
                &[("x-signature", hmac_hex(secret, body.as_bytes()))],
                body,
            )
            .await
        }
    };
    assert_eq!(post("old-secret", "a").await.status, 200);

    mount(&dir, "v2", "secret", "new-secret\n");
    let rotated = eventually(|| async { post("new-secret", "b").await.status == 200 }).await;
    assert!(rotated, "the rotated secret file was not picked up");
    assert_eq!(
        post("old-secret", "c").await.reject(),
        Some("bad_signature")
    );
    // The replay cache survived the reload.
    let replay = send(
        hg.addr,
        "POST",
        "/r",
        &[("x-signature", hmac_hex("old-secret", b"a"))],
        "a",
    )
    .await;
    assert_eq!(
        replay.reject(),
        Some("bad_signature"),
        "old signature no longer verifies at all"
    );
    assert_eq!(post("new-secret", "b").await.reject(), Some("duplicate"));

    std::fs::write(
        &config_path,
        config.replace("scheme = \"hmac\"", "scheme = \"md5\""),
    )
    .unwrap();
    let refused = eventually(|| async {
        let (_, page) = support::admin_get(hg.admin, "/metrics").await;
        let refused =
            support::metric(&page, "hookguard_config_reloads_total{result=\"error\"}") == Some(1.0);
        if refused {
            assert_eq!(
                support::metric(&page, "hookguard_config_reloads_total{result=\"success\"}"),
                Some(1.0)
            );
        }
        refused
    })
    .await;
    assert!(refused, "the broken config push was not seen");
    assert_eq!(
        support::admin_get(hg.admin, "/readyz").await.0,
        200,
        "still ready on the old config"
    );
    assert_eq!(
        post("new-secret", "d").await.status,
        200,
        "the last good config keeps serving"
    );
    upstream.delay_ms.store(0, Ordering::SeqCst);
}

#[tokio::test]
async fn reloads_pick_up_a_rotated_meta_verify_token_file_by_polling() {
    let upstream = Upstream::start().await;
    let dir = TempDir::new("reload-meta");
    let token_path = mount(&dir, "v1", "verify-token", "old-token\n");
    let config_path = dir.0.join("hookguard.toml");
    std::fs::write(
        &config_path,
        format!(
            "[server]\nupstream = \"{}\"\nreload_interval = \"100ms\"\n\n[[routes]]\nname = \"meta\"\npath = \"/meta\"\nmethods = [\"GET\", \"POST\"]\nscheme = \"meta\"\nsecrets = [{{ value = \"app-secret\" }}]\nverify_token = {{ file = \"{}\" }}\n",
            upstream.url(),
            token_path.display()
        ),
    )
    .unwrap();
    let hg = Hookguard::start_reloading(&config_path).await;
    // Each handshake has its own challenge: the challenge is the dedupe key.
    let challenges = std::sync::atomic::AtomicU32::new(0);
    let handshake = |token: &'static str| {
        let n = challenges.fetch_add(1, Ordering::SeqCst);
        let addr = hg.addr;
        async move {
            let path =
                format!("/meta?hub.mode=subscribe&hub.challenge=c{n}&hub.verify_token={token}");
            send(addr, "GET", &path, &[], "").await
        }
    };
    assert_eq!(handshake("old-token").await.status, 200);

    mount(&dir, "v2", "verify-token", "new-token\n");
    let rotated = eventually(|| async { handshake("new-token").await.status == 200 }).await;
    assert!(rotated, "the rotated verify_token file was not picked up");
    assert_eq!(handshake("old-token").await.reject(), Some("bad_signature"));
    let (_, page) = support::admin_get(hg.admin, "/metrics").await;
    assert_eq!(
        support::metric(&page, "hookguard_config_reloads_total{result=\"success\"}"),
        Some(1.0),
        "one rotation, one reload"
    );
}

#[tokio::test]
async fn a_config_refused_for_a_missing_secret_file_is_loaded_once_the_file_appears() {
    let upstream = Upstream::start().await;
    let dir = TempDir::new("reload-late");
    let config_path = dir.0.join("hookguard.toml");
    let first = dir.0.join("first");
    std::fs::write(&first, "first-secret").unwrap();
    std::fs::write(&config_path, file_secret_config(&upstream, &first)).unwrap();
    let hg = Hookguard::start_reloading(&config_path).await;
    let post = |secret: &'static str, body: &'static str| {
        let addr = hg.addr;
        async move {
            let headers = [("x-signature", hmac_hex(secret, body.as_bytes()))];
            send(addr, "POST", "/r", &headers, body).await.status
        }
    };
    assert_eq!(post("first-secret", "a").await, 200);
    // The config moves to a secret file that is not there yet (its Secret
    // is mounted after the config map): refused, the old config serves.
    let later = dir.0.join("later");
    std::fs::write(&config_path, file_secret_config(&upstream, &later)).unwrap();
    let metric = |result: &'static str| {
        let admin = hg.admin;
        async move {
            let (_, page) = support::admin_get(admin, "/metrics").await;
            let series = format!("hookguard_config_reloads_total{{result=\"{result}\"}}");
            support::metric(&page, &series)
        }
    };
    let refused = eventually(|| async { metric("error").await == Some(1.0) }).await;
    assert!(refused, "the config naming a missing file was not tried");
    std::fs::write(&later, "later-secret").unwrap();
    let loaded = eventually(|| async { metric("success").await == Some(1.0) }).await;
    assert!(loaded, "the secret file that appeared was not noticed");
    assert_eq!(post("later-secret", "b").await, 200);
}

/// A bank that signs nothing and is known by its addresses (seed 003).
const BANK: &str = r#"
[[routes]]
name = "bank"
path = "/bank"
scheme = "none"
allow_ips = ["127.0.0.0/8"]
dedupe = ["header:X-Bank-Id"]
"#;

#[tokio::test]
async fn a_route_without_a_signature_accepts_by_address_marks_it_and_still_dedupes() {
    let upstream = Upstream::start().await;
    let hg = Hookguard::start(&(server("") + BANK), &upstream.url()).await;
    let headers = vec![("x-bank-id", "pay-1".to_owned())];
    let first = send(hg.addr, "POST", "/bank", &headers, "{}").await;
    assert_eq!((first.status, first.reject()), (200, None));
    assert_eq!(
        upstream.last().headers["x-verified-by"],
        "hookguard; route=bank; scheme=none; key=allow_ips"
    );
    let again = send(hg.addr, "POST", "/bank", &headers, "{}").await;
    assert_eq!(again.reject(), Some("duplicate"));
    assert_eq!(upstream.count(), 1);

    // From an address outside allow_ips (a trusted proxy says so).
    let outside = server("trusted_proxies = [\"127.0.0.1/32\"]") + BANK;
    let hg = Hookguard::start(&outside, &upstream.url()).await;
    let headers = vec![
        ("x-bank-id", "pay-2".to_owned()),
        ("x-forwarded-for", "198.51.100.7".to_owned()),
    ];
    let refused = send(hg.addr, "POST", "/bank", &headers, "{}").await;
    assert_eq!((refused.status, refused.reject()), (403, Some("ip_denied")));
    assert_eq!(upstream.count(), 1);
}

#[tokio::test]
async fn emptying_an_optional_previous_secrets_file_retires_it_on_reload() {
    let upstream = Upstream::start().await;
    let dir = TempDir::new("optional");
    std::fs::create_dir_all(&dir.0).unwrap();
    let current = dir.0.join("current");
    let previous = dir.0.join("previous");
    std::fs::write(&current, "new-secret\n").unwrap();
    std::fs::write(&previous, "old-secret\n").unwrap();
    let config_path = dir.0.join("hookguard.toml");
    std::fs::write(
        &config_path,
        format!(
            "[server]\nupstream = \"{}\"\nreload_interval = \"100ms\"\n\n[[routes]]\nname = \"r\"\npath = \"/r\"\nscheme = \"hmac\"\nsecrets = [{{ file = \"{}\", id = \"current\" }}, {{ file = \"{}\", id = \"previous\", optional = true }}]\n[routes.hmac]\nheader = \"X-Signature\"\n",
            upstream.url(),
            current.display(),
            previous.display()
        ),
    )
    .unwrap();
    let hg = Hookguard::start_reloading(&config_path).await;
    let post = |secret: &'static str, body: &'static str| {
        let addr = hg.addr;
        async move {
            send(
                addr,
                "POST",
                "/r",
                &[("x-signature", hmac_hex(secret, body.as_bytes()))],
                body,
            )
            .await
        }
    };
    assert_eq!(post("old-secret", "a").await.status, 200, "both accepted");
    assert_eq!(post("new-secret", "b").await.status, 200);
    // The rotation procedure: empty the previous secret (the seed's .env
    // with WEBHOOK_SECRET_PREVIOUS= empty).
    std::fs::write(&previous, "").unwrap();
    let retired = eventually(|| async { post("old-secret", "c").await.status == 401 }).await;
    assert!(retired, "the emptied optional secret was not retired");
    assert_eq!(post("new-secret", "d").await.status, 200);
    let (_, page) = support::admin_get(hg.admin, "/metrics").await;
    assert_eq!(
        support::metric(&page, "hookguard_config_reloads_total{result=\"error\"}"),
        Some(0.0),
        "retiring an optional secret is a good config, not a refused one"
    );
}
