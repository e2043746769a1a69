//! PayPal: RSA (`SHA256withRSA`, PKCS#1 v1.5) over
//! `{transmission_id}|{transmission_time}|{webhook_id}|{crc32(body)}`, with
//! the key of the X.509 certificate that `PAYPAL-CERT-URL` names, verified
//! offline (no call to PayPal's verify-webhook-signature API).
//!
//! Facts from PayPal's own SDK, paypalrestsdk (PyPI, github.com/paypal/
//! PayPal-Python-SDK) `paypalrestsdk/notifications.py`, `WebhookEvent`:
//! the signed string is the transmission id, time, the webhook's id and the
//! unsigned CRC-32 of the body in decimal, joined by `|`; the signature
//! header is base64; a certificate is used only when it chains to a trusted
//! root, has not expired and names a host ending in `.paypal.com`. PayPal's
//! Java SDK (PayPal-Java-SDK `rest-api-sdk/.../base/SSLUtil.java`,
//! `validateCertificateChain`) narrows the name to one starting with
//! `messageverificationcerts` (live and sandbox), which hookguard follows.
//! Headers: developer.paypal.com/api/rest/webhooks/rest/. No official SDK
//! pins the certificate URL's host (the Node SDK calls PayPal's online
//! API instead); the pin here is hookguard's.
//!
//! The webhook id comes from the route, never the request. The certificate
//! URL comes from the request, so it is pinned: `https`, port 443, a host
//! ending in `.paypal.com`; anything else is refused without a fetch (the
//! SDK fetches whatever the header says). Certificates are fetched off the
//! request path, by a thread of their own with a timeout, into a bounded
//! cache: a request whose certificate is not cached yet is answered 503
//! `key_unavailable` with `Retry-After`, and PayPal retries it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine;
use bytes::Bytes;
use http::header::HeaderName;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::pkcs8::DecodePublicKey;
use rsa::signature::Verifier;
use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime};
use sha2::Sha256;

use super::hmac::TimestampUnit;
use super::{RequestView, Scheme, Verified};
use crate::dedupe::DedupeSource;
use crate::reject::{Reason, Reject};

const SIG: HeaderName = HeaderName::from_static("paypal-transmission-sig");
const ID: HeaderName = HeaderName::from_static("paypal-transmission-id");
const TIME: HeaderName = HeaderName::from_static("paypal-transmission-time");
const CERT_URL: HeaderName = HeaderName::from_static("paypal-cert-url");
const AUTH_ALGO: HeaderName = HeaderName::from_static("paypal-auth-algo");
/// [`ID`] with an address, for [`Scheme::delivery_header`].
static DELIVERY: HeaderName = ID;

/// The one algorithm accepted: the request names it, but never chooses it.
pub const AUTH_ALGO_VALUE: &str = "SHA256withRSA";

/// Hosts of PayPal's certificates end with this (the SDKs' subject rule,
/// applied to the URL too).
const PAYPAL_SUFFIX: &str = ".paypal.com";
/// The certificate's name starts with this (the Java SDK's rule):
/// `messageverificationcerts.paypal.com`, and `.sandbox.paypal.com`.
const SUBJECT_PREFIX: &str = "messageverificationcerts.";

/// Distinct certificate URLs remembered per route; PayPal uses one or two
/// at a time (a rotation), so this only bounds what requests can make us
/// remember.
const MAX_CERTS: usize = 16;
/// Fetches running at once, per route.
const MAX_FETCHING: usize = 4;
/// The longest certificate URL considered.
const MAX_URL: usize = 512;
/// The largest certificate file read (a leaf and its chain in PEM).
const MAX_CERT_BYTES: usize = 64 * 1024;
/// A fetch, connection included, gives up after this.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// After a failed fetch, the URL is not fetched again for this long.
const FAILED_BACKOFF: Duration = Duration::from_secs(30);
/// What a request waiting for a fetch is told (seconds).
const RETRY_AFTER: u64 = 5;
/// A cached certificate's chain and validity are checked again (offline)
/// when older than this, so an expired certificate stops working within it.
const RECHECK: Duration = Duration::from_secs(60);

/// Where certificates may come from, and which roots they must chain to.
#[derive(Debug, Clone)]
pub struct CertSource {
    /// `None`: PayPal's hosts (https, port 443, `*.paypal.com`). `Some`:
    /// the one loopback origin of `unsafe_paypal_cert_source` (tests).
    loopback: Option<String>,
    /// Extra roots (PEM DER) besides the system's; only with `loopback`.
    roots: Vec<CertificateDer<'static>>,
}

impl CertSource {
    /// PayPal's hosts, chained to the system's roots.
    pub fn paypal() -> Self {
        CertSource {
            loopback: None,
            roots: Vec::new(),
        }
    }

    /// A loopback origin (`https://127.0.0.1:port`) and its own CA, for
    /// tests: config refuses any host that is not loopback.
    pub fn unsafe_loopback(authority: String, roots: Vec<CertificateDer<'static>>) -> Self {
        CertSource {
            loopback: Some(authority),
            roots,
        }
    }

    /// Whether `url` may be fetched: the reason when not.
    fn pinned(&self, url: &str) -> Result<(), String> {
        if url.len() > MAX_URL {
            return Err(format!("header {CERT_URL} is longer than {MAX_URL} bytes"));
        }
        let refused = || {
            format!(
                "header {CERT_URL} does not point to PayPal (https on a host ending in {PAYPAL_SUFFIX})"
            )
        };
        let uri: http::Uri = url.parse().map_err(|_| refused())?;
        let authority = uri.authority().ok_or_else(refused)?;
        if uri.scheme_str() != Some("https") || authority.as_str().contains('@') {
            return Err(refused());
        }
        let ok = match &self.loopback {
            Some(origin) => authority.as_str() == origin,
            None => {
                let host = authority.host().to_ascii_lowercase();
                matches!(authority.port_u16(), None | Some(443))
                    && host.ends_with(PAYPAL_SUFFIX)
                    && host.len() > PAYPAL_SUFFIX.len()
            }
        };
        ok.then_some(()).ok_or_else(refused)
    }

    /// The trust anchors: the system's (loaded once per process) and the
    /// source's own.
    fn anchors(&self) -> Vec<TrustAnchor<'static>> {
        static SYSTEM: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
        let system = SYSTEM.get_or_init(|| rustls_native_certs::load_native_certs().certs);
        system
            .iter()
            .chain(&self.roots)
            .filter_map(|der| webpki::anchor_from_trusted_cert(der).ok())
            .map(|anchor| anchor.to_owned())
            .collect()
    }
}

/// A certificate URL's state in the cache.
#[derive(Debug)]
enum Slot {
    /// A fetch is running.
    Fetching,
    /// Verified; the key and the chain to check it again.
    Ready(Arc<Cached>),
    /// The fetch failed or the certificate is not trusted; not tried again
    /// before `until`.
    Failed {
        until: Instant,
        untrusted: bool,
        why: String,
    },
}

impl Slot {
    /// A failure remembered for [`FAILED_BACKOFF`]; `untrusted` when the
    /// certificate was fetched and refused (401), not when it could not be
    /// fetched (503).
    fn failed(untrusted: bool, why: String) -> Slot {
        Slot::Failed {
            until: Instant::now() + FAILED_BACKOFF,
            untrusted,
            why,
        }
    }
}

/// A verified certificate.
#[derive(Debug)]
struct Cached {
    key: VerifyingKey<Sha256>,
    chain: Vec<CertificateDer<'static>>,
    checked: Mutex<Instant>,
}

/// The certificates of one route, keyed by URL.
#[derive(Debug)]
struct Certs {
    source: CertSource,
    slots: Mutex<HashMap<String, Slot>>,
}

impl Certs {
    /// The key for `url`, or the rejection that says why there is none
    /// (yet). Starts a fetch when the URL is new and there is room.
    fn key(self: &Arc<Self>, url: &str) -> Result<Arc<Cached>, Reject> {
        let pending = || {
            Reject::with(
                Reason::KeyUnavailable,
                "PayPal's certificate is being fetched; retry shortly".to_owned(),
            )
            .retry_after(RETRY_AFTER)
        };
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        match slots.get(url) {
            Some(Slot::Ready(cached)) => return Ok(cached.clone()),
            Some(Slot::Fetching) => return Err(pending()),
            Some(Slot::Failed {
                until,
                untrusted,
                why,
            }) if *until > now => {
                let left = until.duration_since(now).as_secs().max(1);
                return Err(if *untrusted {
                    Reject::with(Reason::BadSignature, why.clone())
                } else {
                    Reject::with(Reason::KeyUnavailable, why.clone()).retry_after(left)
                });
            }
            _ => {}
        }
        slots.retain(|_, slot| !matches!(slot, Slot::Failed { until, .. } if *until <= now));
        let fetching = slots
            .values()
            .filter(|s| matches!(s, Slot::Fetching))
            .count();
        if slots.len() >= MAX_CERTS || fetching >= MAX_FETCHING {
            return Err(Reject::with(
                Reason::KeyUnavailable,
                "too many PayPal certificates are cached or being fetched".to_owned(),
            )
            .retry_after(RETRY_AFTER));
        }
        slots.insert(url.to_owned(), Slot::Fetching);
        drop(slots);
        let certs = self.clone();
        let url = url.to_owned();
        let spawned = std::thread::Builder::new()
            .name("paypal-cert".to_owned())
            .spawn(move || certs.fetch_and_store(url));
        if spawned.is_err() {
            return Err(Reject::with(
                Reason::KeyUnavailable,
                "could not start the certificate fetch".to_owned(),
            )
            .retry_after(RETRY_AFTER));
        }
        Err(pending())
    }

    /// Runs on the fetch thread: fetches, verifies and records the result.
    fn fetch_and_store(&self, url: String) {
        let slot = match fetch(&self.source, &url) {
            Err(why) => {
                tracing::warn!(url = %url, error = %why, "PayPal certificate fetch failed");
                Slot::failed(
                    false,
                    format!("PayPal's certificate could not be fetched: {why}"),
                )
            }
            Ok(pem) => match self.prepare(&pem) {
                Ok(cached) => {
                    tracing::info!(url = %url, "PayPal certificate verified and cached");
                    Slot::Ready(Arc::new(cached))
                }
                Err(why) => {
                    tracing::warn!(url = %url, error = %why, "PayPal certificate refused");
                    Slot::failed(
                        true,
                        format!("the certificate at {CERT_URL} is not trusted: {why}"),
                    )
                }
            },
        };
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.insert(url, slot);
    }

    /// Parses the PEM chain (leaf first), checks it, and takes the leaf's
    /// RSA key.
    fn prepare(&self, pem: &[u8]) -> Result<Cached, String> {
        use rustls_pki_types::pem::PemObject;
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<_, _>>()
            .map_err(|e| format!("not PEM certificates ({e})"))?;
        check_chain(&self.source, &chain)?;
        let leaf = webpki::EndEntityCert::try_from(&chain[0]).map_err(|e| e.to_string())?;
        let spki = leaf.subject_public_key_info();
        let key = rsa::RsaPublicKey::from_public_key_der(spki.as_ref())
            .map_err(|_| "the certificate's key is not RSA".to_owned())?;
        if rsa::traits::PublicKeyParts::size(&key) < 256 {
            return Err("the certificate's RSA key is shorter than 2048 bits".to_owned());
        }
        Ok(Cached {
            key: VerifyingKey::new(key),
            chain,
            checked: Mutex::new(Instant::now()),
        })
    }
}

/// Checks that the leaf chains to a trusted root through the file's other
/// certificates, is within its validity period now, may serve TLS (PayPal's
/// certificates are DigiCert server certificates), and is named
/// `messageverificationcerts.*.paypal.com` (the SDKs check the subject's CN;
/// webpki reads names from the subjectAltName, as RFC 6125 asks, and a
/// public CA puts the CN there too).
fn check_chain(source: &CertSource, chain: &[CertificateDer<'static>]) -> Result<(), String> {
    let leaf = chain.first().ok_or("no certificate in the file")?;
    let leaf = webpki::EndEntityCert::try_from(leaf).map_err(|e| e.to_string())?;
    let now = UnixTime::since_unix_epoch(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default(),
    );
    let anchors = source.anchors();
    leaf.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &anchors,
        &chain[1..],
        now,
        webpki::KeyUsage::server_auth(),
        None,
        None,
    )
    .map_err(|e| format!("{e:?}"))?;
    let paypal = leaf.valid_dns_names().any(|name| {
        let name = name.to_ascii_lowercase();
        name.starts_with(SUBJECT_PREFIX) && name.ends_with(PAYPAL_SUFFIX)
    });
    paypal.then_some(()).ok_or_else(|| {
        format!("it is not named {SUBJECT_PREFIX}…{PAYPAL_SUFFIX} (PayPal's signing certificate)")
    })
}

/// GETs `url` with a timeout and a size limit, on a runtime of its own
/// (this runs on the fetch thread, never a serving one).
fn fetch(source: &CertSource, url: &str) -> Result<Vec<u8>, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(source.anchors());
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .build();
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
    let uri: http::Uri = url.parse().map_err(|_| "not a URL".to_owned())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async move {
        let get = async {
            let response = client.get(uri).await.map_err(|e| format!("{e:?}"))?;
            if response.status() != http::StatusCode::OK {
                return Err(format!("answered {}", response.status()));
            }
            Limited::new(response.into_body(), MAX_CERT_BYTES)
                .collect()
                .await
                .map(|body| body.to_bytes().to_vec())
                .map_err(|e| format!("reading the certificate: {e}"))
        };
        tokio::time::timeout(FETCH_TIMEOUT, get)
            .await
            .map_err(|_| format!("no answer within {FETCH_TIMEOUT:?}"))?
    })
}

/// The `paypal` scheme prepared for one route.
#[derive(Debug)]
pub struct PaypalScheme {
    webhook_id: String,
    key_ids: Vec<String>,
    certs: Arc<Certs>,
}

impl PaypalScheme {
    /// `webhook_id` is PayPal's id for the webhook (the dashboard's
    /// "Webhook ID"); `source` says where certificates may come from.
    pub fn new(webhook_id: String, source: CertSource) -> Self {
        PaypalScheme {
            webhook_id,
            key_ids: vec!["paypal-certificate".to_owned()],
            certs: Arc::new(Certs {
                source,
                slots: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The signed message: `{id}|{time}|{webhook_id}|{crc32 decimal}`.
    fn message(&self, request: &RequestView<'_>) -> Result<Vec<u8>, Reject> {
        let id = header(request, &ID, Reason::MissingSignedHeader)?;
        let time = header(request, &TIME, Reason::MissingTimestamp)?;
        let crc = crc32fast::hash(request.body);
        let mut digits = itoa::Buffer::new();
        Ok([
            id.as_bytes(),
            time.as_bytes(),
            self.webhook_id.as_bytes(),
            digits.format(crc).as_bytes(),
        ]
        .join(&b'|'))
    }
}

fn header<'r>(
    request: &RequestView<'r>,
    name: &HeaderName,
    missing: Reason,
) -> Result<&'r str, Reject> {
    request
        .headers
        .get(name)
        .ok_or_else(|| Reject::with(missing, format!("header {name} is missing")))?
        .to_str()
        .map_err(|_| {
            Reject::with(
                Reason::MalformedSignature,
                format!("header {name} is not text"),
            )
        })
}

impl Scheme for PaypalScheme {
    fn name(&self) -> &'static str {
        "paypal"
    }

    fn key_ids(&self) -> &[String] {
        &self.key_ids
    }

    fn describe(&self) -> String {
        format!(
            "RSA {AUTH_ALGO_VALUE} signature (base64) in header {SIG} over \"{{{ID}}}|{{{TIME}}}|{{webhook_id}}|{{crc32(body), decimal}}\"; key from the certificate at {CERT_URL} (https, *{PAYPAL_SUFFIX} only, fetched and cached off the request path); {AUTH_ALGO} must be {AUTH_ALGO_VALUE}; timestamp in {TIME} (RFC 3339)"
        )
    }

    fn delivery_header(&self) -> Option<&HeaderName> {
        Some(&DELIVERY)
    }

    fn default_dedupe(&self) -> Vec<DedupeSource> {
        vec![DedupeSource::Header(ID)]
    }

    fn timestamp_unit(&self) -> Option<TimestampUnit> {
        Some(TimestampUnit::Rfc3339)
    }

    fn signed_message(&self, request: &RequestView<'_>) -> Option<Result<Vec<u8>, Reject>> {
        Some(self.message(request))
    }

    fn verify(&self, request: &RequestView<'_>) -> Result<Verified, Reject> {
        let signature = header(request, &SIG, Reason::MissingSignature)?;
        let algo = header(request, &AUTH_ALGO, Reason::MissingSignedHeader)?;
        if algo != AUTH_ALGO_VALUE {
            return Err(Reject::with(
                Reason::MalformedSignature,
                format!("header {AUTH_ALGO} must be {AUTH_ALGO_VALUE}"),
            ));
        }
        let time = header(request, &TIME, Reason::MissingTimestamp)?;
        let seconds = TimestampUnit::Rfc3339.parse(time).ok_or_else(|| {
            Reject::with(
                Reason::MalformedTimestamp,
                format!("header {TIME} must be an RFC 3339 date-time"),
            )
        })?;
        let message = self.message(request)?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(signature.trim())
            .ok()
            .and_then(|bytes| {
                Signature::try_from(bytes.as_slice())
                    .ok()
                    .map(|s| (s, bytes))
            })
            .ok_or_else(|| {
                Reject::with(
                    Reason::MalformedSignature,
                    format!("header {SIG} is not a base64 RSA signature"),
                )
            })?;
        let url = header(request, &CERT_URL, Reason::MissingSignedHeader)?;
        self.certs
            .source
            .pinned(url)
            .map_err(|why| Reject::with(Reason::BadSignature, why))?;
        let cached = self.certs.key(url)?;
        recheck(&self.certs, url, &cached)?;
        cached.key.verify(&message, &decoded.0).map_err(|_| {
            Reject::with(
                Reason::BadSignature,
                "the PayPal signature does not match the certificate's key".to_owned(),
            )
        })?;
        Ok(Verified {
            key: 0,
            signature: decoded.1,
            timestamp: Some(seconds),
        })
    }
}

/// Checks a cached certificate again (offline) when its last check is
/// older than [`RECHECK`]; one that no longer passes (expired) is dropped.
fn recheck(certs: &Certs, url: &str, cached: &Cached) -> Result<(), Reject> {
    let mut checked = cached.checked.lock().unwrap_or_else(|e| e.into_inner());
    if checked.elapsed() < RECHECK {
        return Ok(());
    }
    match check_chain(&certs.source, &cached.chain) {
        Ok(()) => {
            *checked = Instant::now();
            Ok(())
        }
        Err(why) => {
            drop(checked);
            let why = format!("the certificate at {CERT_URL} is no longer trusted: {why}");
            let mut slots = certs.slots.lock().unwrap_or_else(|e| e.into_inner());
            slots.insert(url.to_owned(), Slot::failed(true, why.clone()));
            Err(Reject::with(Reason::BadSignature, why))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_is_id_time_webhook_id_and_the_unsigned_decimal_crc() {
        let scheme = PaypalScheme::new("WH-1".to_owned(), CertSource::paypal());
        let mut headers = http::HeaderMap::new();
        headers.insert(ID, "id-1".parse().unwrap());
        headers.insert(TIME, "2026-12-01T03:00:00Z".parse().unwrap());
        let body = Bytes::from_static(b"123456789");
        let request = RequestView {
            method: &http::Method::POST,
            uri: &http::Uri::from_static("/paypal"),
            headers: &headers,
            body: &body,
        };
        // 0xCBF43926, CRC-32's check value, is above i32::MAX: unsigned.
        assert_eq!(
            scheme.message(&request).unwrap(),
            b"id-1|2026-12-01T03:00:00Z|WH-1|3421780262"
        );
    }

    #[test]
    fn only_paypal_hosts_over_https_are_fetched() {
        let paypal = CertSource::paypal();
        for good in [
            "https://api.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-1d93a270",
            "https://api.sandbox.paypal.com/v1/notifications/certs/CERT-1",
            "https://API.PAYPAL.COM:443/c",
        ] {
            assert_eq!(paypal.pinned(good), Ok(()), "{good}");
        }
        for bad in [
            "http://api.paypal.com/c",
            "https://paypal.com.evil.example/c",
            "https://evilpaypal.com/c",
            "https://.paypal.com/c",
            "https://api.paypal.com:8443/c",
            "https://user@api.paypal.com/c",
            "https://127.0.0.1/c",
            "/relative",
        ] {
            assert!(paypal.pinned(bad).is_err(), "{bad}");
        }
        let local = CertSource::unsafe_loopback("127.0.0.1:4443".to_owned(), Vec::new());
        assert_eq!(local.pinned("https://127.0.0.1:4443/cert.pem"), Ok(()));
        assert!(local.pinned("https://api.paypal.com/c").is_err());
        assert!(local.pinned("https://127.0.0.1:4444/cert.pem").is_err());
    }
}
