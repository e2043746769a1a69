//! The `paypal` preset through a real hookguard, with a certificate
//! authority made on the spot and a real HTTPS server on loopback serving
//! PayPal-style certificates (hookguard's `unsafe_cert_source`, which
//! only ever names a loopback origin).
//!
//! The independent signer: the signed string comes from PayPal's own SDK,
//! paypalrestsdk 1.13.3 (PyPI) `WebhookEvent._get_expected_sig` in
//! `paypalrestsdk/notifications.py`, and is signed here with the rsa crate
//! (PKCS#1 v1.5, SHA-256), the leaf's private key; hookguard builds its
//! message and verifies on its own. The CRC-32 is also computed here
//! bit by bit from the IEEE definition, pinned by the standard check value.

use std::collections::HashMap;
use std::convert::Infallible;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::Bytes;
use http::Response;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rsa::pkcs8::EncodePrivateKey;
use rsa::signature::{SignatureEncoding, Signer};
use sha2::Sha256;
use tokio::net::TcpListener;

use crate::support::{admin_get, metric, now, send, Answer, Hookguard, TempDir, Upstream};
use hookguard::config::Config;

const WEBHOOK_ID: &str = "WH-4SW78779LY2325805-07E03580SX1414828";
const PAYPAL_NAME: &str = "messageverificationcerts.paypal.com";

/// CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320), bit by bit: a
/// second implementation, not the crate hookguard uses.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for byte in bytes {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// The string PayPal signs, as PayPal's Python SDK builds it.
fn sdk_message(id: &str, time: &str, webhook_id: &str, body: &str) -> String {
    let script = "import sys\nfrom paypalrestsdk.notifications import WebhookEvent as W\nsys.stdout.write(W._get_expected_sig(*sys.argv[1:5]))";
    let out = Command::new("python3")
        .args(["-c", script, id, time, webhook_id, body])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "paypalrestsdk==1.13.3 is needed (.ci/run installs it): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let message = String::from_utf8(out.stdout).unwrap();
    // The SDK and the bitwise CRC agree.
    assert_eq!(
        message,
        format!("{id}|{time}|{webhook_id}|{}", crc32(body.as_bytes()))
    );
    message
}

/// A certificate authority, leaves it signed, and their PEM files (the SNS
/// tests use it too).
pub struct Pki {
    pub ca_file: String,
    /// The server's TLS configuration (a certificate for 127.0.0.1).
    tls: Arc<rustls::ServerConfig>,
    /// The signing key of the PayPal leaves.
    key: rsa::pkcs1v15::SigningKey<Sha256>,
    /// The same key, for other digests.
    pub private: rsa::RsaPrivateKey,
    /// Path on the certificate server → PEM it serves; a path with two
    /// serves the first to the first fetch and the second afterwards (a
    /// certificate replaced at its URL).
    files: HashMap<&'static str, Vec<String>>,
    _dir: TempDir,
}

pub fn pki() -> Pki {
    let dir = TempDir::new("paypal");
    let ca = |name: &str| {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        (cert, rcgen::Issuer::new(params, key))
    };
    let (ca_cert, issuer) = ca("hookguard paypal test CA");
    let (_, stranger) = ca("a CA nobody trusts");
    let tls_key = rcgen::KeyPair::generate().unwrap();
    let tls_leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&tls_key, &issuer)
        .unwrap();
    // PayPal's certificates carry RSA keys; rcgen (ring) signs with an
    // imported one.
    let private = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048).unwrap();
    let der = private.to_pkcs8_der().unwrap();
    let leaf_key = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(
        &rustls::pki_types::PrivatePkcs8KeyDer::from(der.as_bytes().to_vec()),
        &rcgen::PKCS_RSA_SHA256,
    )
    .unwrap();
    let leaf = |name: &str, life: Life, by: &rcgen::Issuer<'_, rcgen::KeyPair>| {
        let mut params = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        match life {
            Life::Expired => {
                params.not_before = rcgen::date_time_ymd(2019, 1, 1);
                params.not_after = rcgen::date_time_ymd(2020, 1, 1);
            }
            // Inside hookguard's week of refresh margin.
            Life::Expiring => {
                params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(2);
            }
            Life::Fresh => {}
        }
        vec![params.signed_by(&leaf_key, by).unwrap().pem()]
    };
    let files = HashMap::from([
        ("/certs/good.pem", leaf(PAYPAL_NAME, Life::Fresh, &issuer)),
        (
            "/certs/expired.pem",
            leaf(PAYPAL_NAME, Life::Expired, &issuer),
        ),
        (
            "/certs/untrusted.pem",
            leaf(PAYPAL_NAME, Life::Fresh, &stranger),
        ),
        (
            "/certs/not-paypal.pem",
            leaf("webhooks.example.com", Life::Fresh, &issuer),
        ),
        // PayPal's, but not its signing certificate's name.
        (
            "/certs/www-paypal.pem",
            leaf("www.paypal.com", Life::Fresh, &issuer),
        ),
        ("/certs/garbage.pem", vec!["not a certificate".to_owned()]),
        // Expiring in two days, then replaced at the same URL.
        (
            "/certs/rotating.pem",
            [
                leaf(PAYPAL_NAME, Life::Expiring, &issuer),
                leaf(PAYPAL_NAME, Life::Fresh, &issuer),
            ]
            .concat(),
        ),
    ]);
    let ca_file = dir.0.join("ca.pem");
    std::fs::write(&ca_file, ca_cert.pem()).unwrap();
    let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![tls_leaf.der().clone()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(tls_key.serialize_der().into()),
    )
    .unwrap();
    Pki {
        ca_file: ca_file.display().to_string(),
        tls: Arc::new(tls),
        key: rsa::pkcs1v15::SigningKey::new(private.clone()),
        private,
        files,
        _dir: dir,
    }
}

/// How long a test leaf is valid.
#[derive(Clone, Copy)]
enum Life {
    Fresh,
    Expiring,
    Expired,
}

/// An HTTPS server on 127.0.0.1:0 serving the PEM files, counting fetches
/// (all, and by path).
pub async fn cert_server(pki: &Pki) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let files = Arc::new(pki.files.clone());
    let by_path = Arc::new(std::sync::Mutex::new(HashMap::<String, usize>::new()));
    let acceptor = tokio_rustls::TlsAcceptor::from(pki.tls.clone());
    let counting = hits.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (files, acceptor, hits) = (files.clone(), acceptor.clone(), counting.clone());
            let by_path = by_path.clone();
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(stream).await else {
                    return;
                };
                let service = service_fn(move |request: http::Request<_>| {
                    hits.fetch_add(1, Ordering::SeqCst);
                    let path = request.uri().path().to_owned();
                    let n = {
                        let mut by_path = by_path.lock().unwrap();
                        let n = by_path.entry(path.clone()).or_insert(0);
                        *n += 1;
                        *n
                    };
                    // The first version to the first fetch of its path, the
                    // last one afterwards.
                    let found = files
                        .get(path.as_str())
                        .map(|versions| versions[(n - 1).min(versions.len() - 1)].clone());
                    async move {
                        let mut response = Response::new(Full::new(Bytes::from(
                            found.clone().unwrap_or_default(),
                        )));
                        if found.is_none() {
                            *response.status_mut() = http::StatusCode::NOT_FOUND;
                        }
                        Ok::<_, Infallible>(response)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, hits)
}

fn route(origin: &str, ca_file: &str, webhook_id: &str) -> String {
    format!(
        "[server]\nupstream = \"{{upstream}}\"\n\n[[routes]]\nname = \"pp\"\npath = \"/paypal\"\nscheme = \"paypal\"\nwebhook_id = \"{webhook_id}\"\nunsafe_cert_source = {{ origin = \"{origin}\", ca_file = {} }}\n",
        serde_json::to_string(ca_file).unwrap()
    )
}

fn rfc3339(seconds: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(seconds)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// A delivery signed as PayPal signs it.
struct Delivery {
    id: String,
    time: String,
    cert_url: String,
    algo: &'static str,
    webhook_id: &'static str,
}

impl Delivery {
    fn new(id: &str, cert_url: &str) -> Self {
        Delivery {
            id: id.to_owned(),
            time: rfc3339(now()),
            cert_url: cert_url.to_owned(),
            algo: "SHA256withRSA",
            webhook_id: WEBHOOK_ID,
        }
    }

    fn headers(&self, pki: &Pki, body: &str) -> Vec<(&'static str, String)> {
        let message = sdk_message(&self.id, &self.time, self.webhook_id, body);
        let signature = pki.key.sign(message.as_bytes());
        vec![
            ("paypal-transmission-id", self.id.clone()),
            ("paypal-transmission-time", self.time.clone()),
            ("paypal-transmission-sig", B64.encode(signature.to_bytes())),
            ("paypal-cert-url", self.cert_url.clone()),
            ("paypal-auth-algo", self.algo.to_owned()),
            ("content-type", "application/json".to_owned()),
        ]
    }
}

/// Sends delivery `n`'s body, signed as `delivery` says.
async fn deliver(hg: &Hookguard, pki: &Pki, delivery: &Delivery, n: u32) -> Answer {
    let headers = delivery.headers(pki, &body(n));
    send(hg.addr, "POST", "/paypal", &headers, body(n)).await
}

/// Sends until the answer is no longer "certificate being fetched", which
/// the first request for a new certificate gets (bounded: 10 s).
async fn send_settled(hg: &Hookguard, headers: &[(&str, String)], body: &str) -> Answer {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = send(hg.addr, "POST", "/paypal", headers, body.to_owned()).await;
        if answer.reject() != Some("key_unavailable") || Instant::now() > deadline {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn body(n: u32) -> String {
    format!(
        r#"{{"id":"WH-{n}","event_version":"1.0","create_time":"2026-12-01T03:00:00Z","resource_type":"capture","event_type":"PAYMENT.CAPTURE.COMPLETED","summary":"Payment completed for $ 7.48 USD"}}"#
    )
}

#[test]
fn the_test_crc_matches_the_standard_check_value() {
    // The check value of CRC-32/ISO-HDLC over "123456789" (the CRC
    // catalogue's `check`, reveng.sourceforge.io/crc-catalogue).
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
}

/// A PKI, its certificate server, a recording upstream and a hookguard
/// route fetching from that server.
struct Setup {
    pki: Pki,
    server: std::net::SocketAddr,
    hits: Arc<AtomicUsize>,
    origin: String,
    upstream: Upstream,
    hg: Hookguard,
    /// The URL of the trusted PayPal-named certificate.
    good: String,
}

async fn setup() -> Setup {
    let pki = pki();
    let (server, hits) = cert_server(&pki).await;
    let origin = format!("https://{server}");
    let upstream = Upstream::start().await;
    let hg = Hookguard::start(&route(&origin, &pki.ca_file, WEBHOOK_ID), &upstream.url()).await;
    let good = format!("{origin}/certs/good.pem");
    Setup {
        pki,
        server,
        hits,
        origin,
        upstream,
        hg,
        good,
    }
}

#[tokio::test]
async fn paypal_verifies_offline_with_a_pinned_fetched_certificate() {
    let Setup {
        pki,
        server,
        hits,
        origin,
        upstream,
        hg,
        good,
    } = setup().await;

    // The first request for a certificate is answered 503 with Retry-After
    // while it is fetched off the request path; PayPal retries.
    let first = Delivery::new("8f1a-0001", &good);
    let headers = first.headers(&pki, &body(1));
    let answer = send(hg.addr, "POST", "/paypal", &headers, body(1)).await;
    assert_eq!(
        (answer.status, answer.reject()),
        (503, Some("key_unavailable"))
    );
    assert!(answer.headers.contains_key("retry-after"));
    let answer = send_settled(&hg, &headers, &body(1)).await;
    assert_eq!((answer.status, answer.reject()), (200, None), "{answer:?}");
    assert_eq!(upstream.last().body, body(1).as_bytes());
    assert_eq!(
        upstream.last().headers["x-verified-by"],
        "hookguard; route=pp; scheme=paypal; key=paypal-certificate"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1, "fetched once, then cached");

    // A replay is a duplicate (default dedupe on PAYPAL-TRANSMISSION-ID).
    let again = send(hg.addr, "POST", "/paypal", &headers, body(1)).await;
    assert_eq!(again.reject(), Some("duplicate"));
    assert_eq!(upstream.count(), 1);

    // One byte of the body changed.
    let second = Delivery::new("8f1a-0002", &good);
    let headers = second.headers(&pki, &body(2));
    let changed = body(2).replacen("7.48", "7.49", 1);
    let answer = send(hg.addr, "POST", "/paypal", &headers, changed).await;
    assert_eq!(answer.reject(), Some("bad_signature"));
    // Signed for another webhook.
    let other = Delivery {
        webhook_id: "WH-SOMEONE-ELSES",
        ..Delivery::new("8f1a-0003", &good)
    };
    let answer = deliver(&hg, &pki, &other, 3).await;
    assert_eq!(answer.reject(), Some("bad_signature"));
    // Any algorithm but SHA256withRSA, even correctly signed otherwise.
    let sha1 = Delivery {
        algo: "SHA1withRSA",
        ..Delivery::new("8f1a-0004", &good)
    };
    let answer = deliver(&hg, &pki, &sha1, 4).await;
    assert_eq!(answer.reject(), Some("malformed_signature"));
    // The untouched request still passes.
    let answer = send(hg.addr, "POST", "/paypal", &headers, body(2)).await;
    assert_eq!(answer.reject(), None);

    // Certificate URLs off the pin are refused without any fetch.
    let before = hits.load(Ordering::SeqCst);
    for url in [
        format!("http://{server}/certs/good.pem"),
        format!("https://localhost:{}/certs/good.pem", server.port()),
        format!("https://127.0.0.1:{}/certs/good.pem", server.port() + 1),
        "https://api.paypal.com/v1/notifications/certs/CERT-1".to_owned(),
        format!("https://user@{server}/certs/good.pem"),
    ] {
        let delivery = Delivery::new("8f1a-0005", &url);
        let answer = deliver(&hg, &pki, &delivery, 5).await;
        assert_eq!(answer.reject(), Some("bad_signature"), "{url}");
    }
    assert_eq!(hits.load(Ordering::SeqCst), before, "nothing fetched");

    // Certificates that are fetched but not trusted are refused 401.
    for path in [
        "/certs/untrusted.pem",
        "/certs/expired.pem",
        "/certs/not-paypal.pem",
        "/certs/www-paypal.pem",
        "/certs/garbage.pem",
    ] {
        let delivery = Delivery::new("8f1a-0006", &format!("{origin}{path}"));
        let answer = send_settled(&hg, &delivery.headers(&pki, &body(6)), &body(6)).await;
        assert_eq!(
            (answer.status, answer.reject()),
            (401, Some("bad_signature")),
            "{path}"
        );
        let detail = answer.json()["detail"].to_string();
        assert!(detail.contains("not trusted"), "{path}: {detail}");
    }
    // A certificate URL that does not answer 200 is a retryable 503.
    let missing = Delivery::new("8f1a-0007", &format!("{origin}/certs/none.pem"));
    let answer = send_settled(&hg, &missing.headers(&pki, &body(7)), &body(7)).await;
    assert_eq!(
        (answer.status, answer.reject()),
        (503, Some("key_unavailable"))
    );
    assert!(answer.headers.contains_key("retry-after"));

    let (_, page) = admin_get(hg.admin, "/metrics").await;
    let refused = metric(
        &page,
        "hookguard_rejections_total{reason=\"key_unavailable\",route=\"pp\"}",
    );
    assert!(refused.is_some_and(|n| n >= 2.0), "{refused:?}");
    assert_eq!(upstream.count(), 2);
}

#[tokio::test]
async fn paypal_window_holds_at_both_edges() {
    let Setup {
        pki,
        upstream: _upstream,
        hg,
        good,
        ..
    } = setup().await;
    // Warm the cache.
    let warm = Delivery::new("edge-0", &good);
    let answer = send_settled(&hg, &warm.headers(&pki, &body(0)), &body(0)).await;
    assert_eq!(answer.reject(), None);
    // The default window is 300 s either way; 10 s of room for a slow run.
    for (n, offset, expected) in [
        (1, -290, None),
        (2, -310, Some("stale_timestamp")),
        (3, 290, None),
        (4, 310, Some("future_timestamp")),
    ] {
        let delivery = Delivery {
            time: rfc3339(now() + offset),
            ..Delivery::new(&format!("edge-{n}"), &good)
        };
        let answer = deliver(&hg, &pki, &delivery, n).await;
        assert_eq!(answer.reject(), expected, "offset {offset}");
    }
    // Not RFC 3339.
    let delivery = Delivery {
        time: now().to_string(),
        ..Delivery::new("edge-5", &good)
    };
    let answer = deliver(&hg, &pki, &delivery, 5).await;
    assert_eq!(answer.reject(), Some("malformed_timestamp"));
}

/// The errors of a route named `name` with `route`'s keys (the SNS tests
/// use it too).
pub fn config_errors_of(name: &str, route: &str) -> String {
    let text = format!(
        "[server]\nupstream = \"http://127.0.0.1:9\"\n\n[[routes]]\nname = \"{name}\"\npath = \"/{name}\"\n{route}\n"
    );
    match Config::from_toml(&text, &|_: &str| None::<String>) {
        Ok(_) => panic!("config unexpectedly valid:\n{route}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn paypal_config_names_its_keys_and_keeps_the_pin() {
    let missing = config_errors_of("pp", "scheme = \"paypal\"");
    assert!(
        missing.contains("routes[0] (\"pp\").webhook_id"),
        "{missing}"
    );
    assert!(
        missing.contains("Webhook ID") || missing.contains("webhook"),
        "{missing}"
    );
    let keys = config_errors_of(
        "pp",
        "scheme = \"paypal\"\nwebhook_id = \"WH-1\"\nsecrets = [{ id = \"a\", value = \"x\" }]",
    );
    assert!(
        keys.contains(".secrets") && keys.contains("takes no keys"),
        "{keys}"
    );
    let elsewhere = config_errors_of(
        "pp",
        "scheme = \"github\"\nsecrets = [{ id = \"a\", value = \"x\" }]\nwebhook_id = \"WH-1\"",
    );
    assert!(
        elsewhere.contains(".webhook_id") && elsewhere.contains("only for paypal"),
        "{elsewhere}"
    );
    // The test override names only loopback, never another host.
    for origin in [
        "https://api.paypal.com:443",
        "https://10.0.0.1:8443",
        "http://127.0.0.1:8443",
        "https://127.0.0.1",
    ] {
        let text = format!(
            "scheme = \"paypal\"\nwebhook_id = \"WH-1\"\nunsafe_cert_source = {{ origin = \"{origin}\", ca_file = \"/nonexistent\" }}"
        );
        let errors = config_errors_of("pp", &text);
        assert!(
            errors.contains("unsafe_cert_source.origin"),
            "{origin}: {errors}"
        );
        assert!(errors.contains("loopback"), "{origin}: {errors}");
    }
}

#[tokio::test]
async fn paypal_certificates_are_refreshed_in_the_background_before_they_expire() {
    let Setup {
        pki,
        hits,
        origin,
        upstream: _upstream,
        hg,
        ..
    } = setup().await;
    // A certificate two days from expiry: trusted now, inside the week of
    // margin, so due a refresh; its URL then serves a fresh one.
    let url = format!("{origin}/certs/rotating.pem");
    let first = Delivery::new("rot-1", &url);
    let answer = send_settled(&hg, &first.headers(&pki, &body(1)), &body(1)).await;
    assert_eq!(answer.reject(), None, "{answer:?}");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    // With no request at all, the refresher (a 2 s tick) fetches it again.
    let deadline = Instant::now() + Duration::from_secs(20);
    while hits.load(Ordering::SeqCst) < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(hits.load(Ordering::SeqCst), 2, "refreshed once");
    let (_, page) = admin_get(hg.admin, "/metrics").await;
    let refreshed = metric(
        &page,
        "hookguard_cert_fetches_total{outcome=\"ok\",scheme=\"paypal\",trigger=\"refresh\"}",
    );
    assert!(refreshed.is_some_and(|n| n >= 1.0), "{refreshed:?}");
    let cached = metric(&page, "hookguard_cert_cache_entries{scheme=\"paypal\"}");
    assert!(cached.is_some_and(|n| n >= 1.0), "{cached:?}");
    assert!(metric(
        &page,
        "hookguard_cert_cache_oldest_age_seconds{scheme=\"paypal\"}"
    )
    .is_some());
    // The replacement is far from expiry: not fetched again (two ticks
    // and more), and it verifies.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(hits.load(Ordering::SeqCst), 2, "the fresh one is not due");
    let second = Delivery::new("rot-2", &url);
    let answer = deliver(&hg, &pki, &second, 2).await;
    assert_eq!(answer.reject(), None, "{answer:?}");
}
