//! Keys that arrive as certificates the sender names by URL (PayPal's
//! `PAYPAL-CERT-URL`, Amazon SNS's `SigningCertURL`): the pin that decides
//! which URLs may be fetched at all, the fetch itself, and the bounded
//! per-route cache, shared by [`super::paypal`] and [`super::sns`].
//!
//! A URL comes from the request, so it is pinned to the sender's own hosts
//! (https, port 443) before anything is fetched; a request never chooses
//! the host. Fetches run off the request path, on a thread of their own
//! with a timeout and a size limit: a request whose certificate is not
//! cached yet is answered 503 `key_unavailable` with `Retry-After`, and the
//! sender retries it. Cached certificates are fetched again in the
//! background, by one thread per cache, before they expire (when their
//! chain no longer holds [`REFRESH_MARGIN`] from now) or once they are
//! [`MAX_AGE`] old; the old certificate serves until its successor is
//! verified. Fetches are counted, and the caches sampled, for
//! `/metrics` ([`stats`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime};

use crate::reject::{Reason, Reject};

/// Distinct certificate URLs remembered per route; a sender uses one or two
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
/// How often the refresher looks for certificates due a refresh.
const REFRESH_TICK: Duration = Duration::from_secs(2);
/// A certificate whose chain no longer holds this far ahead is fetched
/// again: a sender replaces its certificate at the same URL before the
/// old one expires (PayPal's are a year long; a week leaves room for
/// failed attempts).
pub const REFRESH_MARGIN: Duration = Duration::from_secs(7 * 24 * 3600);
/// A certificate is fetched again once this old, whatever its expiry, so
/// that one replaced at the same URL is picked up.
pub const MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// After a refresh attempt, whatever its outcome, the URL is not refreshed
/// again for this long (a sender still serving an expiring certificate is
/// asked at most this often).
const REFRESH_RETRY: Duration = Duration::from_secs(300);

/// Whose hosts a source is pinned to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pin {
    /// `*.paypal.com`.
    Paypal,
    /// `sns.<region>.amazonaws.com`, a path ending in `.pem`.
    Sns,
}

/// The test-only override (`unsafe_cert_source`): one loopback origin and
/// its own CA.
#[derive(Debug, Clone)]
pub struct TestOrigin {
    /// `127.0.0.1:port`, the only authority fetched from.
    pub authority: String,
    /// Roots (DER) the fetched certificates and the origin's TLS chain to.
    pub roots: Vec<CertificateDer<'static>>,
}

/// Where certificates may come from, and which roots they must chain to.
#[derive(Debug, Clone)]
pub struct CertSource {
    pin: Pin,
    /// `Some`: the test-only loopback origin replaces the sender's hosts.
    test: Option<TestOrigin>,
}

impl CertSource {
    /// The sender's own hosts, chained to the system's roots; or, with
    /// `test`, only its loopback origin.
    pub fn new(pin: Pin, test: Option<TestOrigin>) -> Self {
        CertSource { pin, test }
    }

    /// Whether `url` may be fetched: the reason when not. `field` names
    /// where the URL was read, for the message.
    pub fn pinned(&self, url: &str, field: &str) -> Result<(), String> {
        if url.len() > MAX_URL {
            return Err(format!("{field} is longer than {MAX_URL} bytes"));
        }
        let refused = || match self.pin {
            Pin::Paypal => {
                format!("{field} does not point to PayPal (https on a host ending in .paypal.com)")
            }
            Pin::Sns => format!(
                "{field} does not point to Amazon SNS (https://sns.<region>.amazonaws.com/….pem)"
            ),
        };
        let uri: http::Uri = url.parse().map_err(|_| refused())?;
        let authority = uri.authority().ok_or_else(refused)?;
        if uri.scheme_str() != Some("https") || authority.as_str().contains('@') {
            return Err(refused());
        }
        if let Some(test) = &self.test {
            return (authority.as_str() == test.authority)
                .then_some(())
                .ok_or_else(refused);
        }
        let host = authority.host().to_ascii_lowercase();
        let ok = matches!(authority.port_u16(), None | Some(443))
            && match self.pin {
                Pin::Paypal => host.ends_with(".paypal.com") && host.len() > ".paypal.com".len(),
                Pin::Sns => {
                    sns_host(&host) && uri.path().ends_with(".pem") && uri.query().is_none()
                }
            };
        ok.then_some(()).ok_or_else(refused)
    }

    /// The trust anchors: the system's (loaded once per process) and the
    /// test origin's.
    pub fn anchors(&self) -> Vec<TrustAnchor<'static>> {
        static SYSTEM: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
        let system = SYSTEM.get_or_init(|| rustls_native_certs::load_native_certs().certs);
        let own = self.test.iter().flat_map(|t| &t.roots);
        system
            .iter()
            .chain(own)
            .filter_map(|der| webpki::anchor_from_trusted_cert(der).ok())
            .map(|anchor| anchor.to_owned())
            .collect()
    }
}

/// `sns.<region>.amazonaws.com`, the region letters, digits and dashes (the
/// host rule of AWS's own message validators, e.g. aws-sdk-ruby's
/// `Aws::SNS::MessageVerifier` and aws-php-sns-message-validator, without
/// the China partition's `.com.cn`, which hookguard does not pin).
fn sns_host(host: &str) -> bool {
    host.strip_prefix("sns.")
        .and_then(|rest| rest.strip_suffix(".amazonaws.com"))
        .is_some_and(|region| {
            region.len() >= 3
                && region
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

/// What one scheme does with a fetched file: how its key is taken and
/// trusted, and how the scheme is named in messages and metrics.
#[derive(Debug)]
pub struct Rules<K> {
    /// The scheme's name (the `scheme` label of the fetch metrics).
    pub scheme: &'static str,
    /// The sender, for messages ("PayPal").
    pub sender: &'static str,
    /// Where the URL is read, for messages ("header paypal-cert-url").
    pub field: &'static str,
    /// Checks the chain (leaf first) at a time and takes the leaf's key;
    /// the reason when it is not trusted.
    pub prepare: fn(&CertSource, &[CertificateDer<'static>], UnixTime) -> Result<K, String>,
}

/// A certificate URL's state in the cache.
#[derive(Debug)]
enum Slot<K> {
    /// A fetch is running.
    Fetching,
    /// Verified; the key and the chain to check it again.
    Ready(Arc<Cached<K>>),
    /// The fetch failed or the certificate is not trusted; not tried again
    /// before `until`.
    Failed {
        until: Instant,
        untrusted: bool,
        why: String,
    },
}

impl<K> Slot<K> {
    /// A failure remembered for [`FAILED_BACKOFF`]; `untrusted` when the
    /// certificate was fetched and refused (401), not when it could not be
    /// fetched (503).
    fn failed(untrusted: bool, why: String) -> Self {
        Slot::Failed {
            until: Instant::now() + FAILED_BACKOFF,
            untrusted,
            why,
        }
    }
}

/// A verified certificate.
#[derive(Debug)]
pub struct Cached<K> {
    /// The leaf's key, prepared for verifying.
    pub key: K,
    /// The file's certificates, to check them again offline.
    chain: Vec<CertificateDer<'static>>,
    /// When it was fetched (its age, for refreshing and metrics).
    fetched: Instant,
    /// When its chain was last checked.
    checked: Mutex<Instant>,
    /// Not refreshed before this (after an attempt).
    refresh_after: Mutex<Instant>,
}

/// How a fetch went, the `outcome` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Fetched, trusted and cached.
    Ok,
    /// Fetched, but not trusted (chain, name, key or format).
    Untrusted,
    /// Not fetched: connection, TLS, status, size or timeout.
    Unreachable,
}

impl Outcome {
    /// Every outcome, in label order.
    pub const ALL: [Outcome; 3] = [Outcome::Ok, Outcome::Untrusted, Outcome::Unreachable];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Untrusted => "untrusted",
            Outcome::Unreachable => "unreachable",
        }
    }
}

/// Why a fetch ran, the `trigger` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// A request named a URL that was not cached.
    Request,
    /// The refresher fetched a cached URL again.
    Refresh,
}

impl Trigger {
    /// Every trigger, in label order.
    pub const ALL: [Trigger; 2] = [Trigger::Request, Trigger::Refresh];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Request => "request",
            Trigger::Refresh => "refresh",
        }
    }
}

/// The schemes that fetch certificates: the `scheme` label's closed set.
pub const SCHEMES: [&str; 2] = ["paypal", "sns"];

/// Fetches by scheme, trigger and outcome, for the whole process (routes
/// come and go with reloads; the counts stay monotonic).
static FETCHES: [[[AtomicU64; 3]; 2]; 2] =
    [const { [const { [const { AtomicU64::new(0) }; 3] }; 2] }; 2];

/// The live caches, sampled for their size and age.
static LIVE: Mutex<Vec<Weak<dyn Sample>>> = Mutex::new(Vec::new());

fn count(scheme: &str, trigger: Trigger, outcome: Outcome) {
    if let Some(s) = SCHEMES.iter().position(|name| *name == scheme) {
        FETCHES[s][trigger as usize][outcome as usize].fetch_add(1, Ordering::Relaxed);
    }
}

/// One scheme's fetch figures, for `/metrics`.
#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    /// The scheme.
    pub scheme: &'static str,
    /// Fetches so far, by trigger and outcome.
    pub fetches: Vec<(Trigger, Outcome, u64)>,
    /// Certificates cached now, over every route of the scheme.
    pub cached: u64,
    /// Age of the oldest cached certificate since it was fetched.
    pub oldest: Duration,
}

/// The figures of every scheme in [`SCHEMES`], zeros included.
pub fn stats() -> Vec<Stats> {
    let mut out: Vec<Stats> = SCHEMES
        .iter()
        .enumerate()
        .map(|(s, scheme)| Stats {
            scheme,
            fetches: Trigger::ALL
                .iter()
                .flat_map(|t| {
                    Outcome::ALL.iter().map(move |o| {
                        let n = FETCHES[s][*t as usize][*o as usize].load(Ordering::Relaxed);
                        (*t, *o, n)
                    })
                })
                .collect(),
            cached: 0,
            oldest: Duration::ZERO,
        })
        .collect();
    let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    live.retain(|weak| weak.strong_count() > 0);
    for cache in live.iter().filter_map(Weak::upgrade) {
        let (cached, oldest) = cache.sample();
        if let Some(stats) = out.iter_mut().find(|s| s.scheme == cache.scheme()) {
            stats.cached += cached;
            stats.oldest = stats.oldest.max(oldest);
        }
    }
    out
}

/// What [`stats`] asks of a cache whatever its key type.
trait Sample: Send + Sync {
    fn scheme(&self) -> &'static str;
    /// Certificates cached, and the oldest one's age.
    fn sample(&self) -> (u64, Duration);
}

/// The certificates of one route, keyed by URL.
#[derive(Debug)]
pub struct Certs<K: 'static> {
    /// How the scheme trusts a file and takes its key.
    rules: &'static Rules<K>,
    /// The pin every URL is checked against before anything is fetched.
    source: CertSource,
    /// Each URL's state, at most [`MAX_CERTS`] of them.
    slots: Mutex<HashMap<String, Slot<K>>>,
    /// Whether the refresher thread was started (with the first
    /// certificate cached).
    refreshing: AtomicBool,
}

impl<K: Send + Sync + std::fmt::Debug + 'static> Sample for Certs<K> {
    fn scheme(&self) -> &'static str {
        self.rules.scheme
    }

    fn sample(&self) -> (u64, Duration) {
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots
            .values()
            .filter_map(|slot| match slot {
                Slot::Ready(cached) => Some(cached.fetched.elapsed()),
                _ => None,
            })
            .fold((0, Duration::ZERO), |(n, oldest), age| {
                (n + 1, oldest.max(age))
            })
    }
}

impl<K: Send + Sync + std::fmt::Debug + 'static> Certs<K> {
    /// An empty cache for one route.
    pub fn new(rules: &'static Rules<K>, source: CertSource) -> Arc<Self> {
        let certs = Arc::new(Certs {
            rules,
            source,
            slots: Mutex::new(HashMap::new()),
            refreshing: AtomicBool::new(false),
        });
        let weak: Weak<dyn Sample> = Arc::downgrade(&certs) as Weak<dyn Sample>;
        let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
        // Caches of reloaded-away routes are dropped here too, so the list
        // stays as long as the live routes' even if nothing scrapes.
        live.retain(|weak| weak.strong_count() > 0);
        live.push(weak);
        certs
    }

    /// The verified key for `url`, or the rejection that says why there is
    /// none (yet): off the pin (401, nothing fetched), being fetched (503),
    /// not trusted (401). Starts a fetch when the URL is new and there is
    /// room, and checks a cached certificate again when its last check is
    /// older than a minute.
    pub fn key(self: &Arc<Self>, url: &str) -> Result<Arc<Cached<K>>, Reject> {
        self.source
            .pinned(url, self.rules.field)
            .map_err(|why| Reject::with(Reason::BadSignature, why))?;
        let cached = self.lookup(url)?;
        self.recheck(url, &cached)?;
        Ok(cached)
    }

    fn lookup(self: &Arc<Self>, url: &str) -> Result<Arc<Cached<K>>, Reject> {
        let sender = self.rules.sender;
        let pending = || {
            Reject::with(
                Reason::KeyUnavailable,
                format!("{sender}'s certificate is being fetched; retry shortly"),
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
                format!("too many {sender} certificates are cached or being fetched"),
            )
            .retry_after(RETRY_AFTER));
        }
        slots.insert(url.to_owned(), Slot::Fetching);
        drop(slots);
        let certs = self.clone();
        let owned = url.to_owned();
        let spawned = std::thread::Builder::new()
            .name(format!("{}-cert", self.rules.scheme))
            .spawn(move || {
                let slot = certs.fetch_and_prepare(&owned, Trigger::Request);
                certs.store(owned, slot);
            });
        if spawned.is_err() {
            self.slots
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(url);
            return Err(Reject::with(
                Reason::KeyUnavailable,
                "could not start the certificate fetch".to_owned(),
            )
            .retry_after(RETRY_AFTER));
        }
        Err(pending())
    }

    /// Fetches `url` and verifies what came; counts the outcome.
    fn fetch_and_prepare(&self, url: &str, trigger: Trigger) -> Slot<K> {
        let (sender, field) = (self.rules.sender, self.rules.field);
        let (slot, outcome) = match fetch(&self.source, url) {
            Err(why) => {
                tracing::warn!(url = %url, error = %why, "{sender} certificate fetch failed");
                let why = format!("{sender}'s certificate could not be fetched: {why}");
                (Slot::failed(false, why), Outcome::Unreachable)
            }
            Ok(pem) => match self.prepare(&pem, now_unix()) {
                Ok(cached) => {
                    tracing::info!(url = %url, "{sender} certificate verified and cached");
                    (Slot::Ready(Arc::new(cached)), Outcome::Ok)
                }
                Err(why) => {
                    tracing::warn!(url = %url, error = %why, "{sender} certificate refused");
                    let why = format!("the certificate at {field} is not trusted: {why}");
                    (Slot::failed(true, why), Outcome::Untrusted)
                }
            },
        };
        count(self.rules.scheme, trigger, outcome);
        slot
    }

    /// Records a request-triggered fetch's result, and starts the
    /// refresher with the first certificate cached.
    fn store(self: &Arc<Self>, url: String, slot: Slot<K>) {
        let ready = matches!(slot, Slot::Ready(_));
        self.slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(url, slot);
        if ready && !self.refreshing.swap(true, Ordering::SeqCst) {
            let weak = Arc::downgrade(self);
            let started = std::thread::Builder::new()
                .name(format!("{}-refresh", self.rules.scheme))
                .spawn(move || refresher(weak));
            if started.is_err() {
                // Tried again with the next certificate cached.
                self.refreshing.store(false, Ordering::SeqCst);
            }
        }
    }

    /// Parses the PEM chain (leaf first) and hands it to the scheme's rules.
    fn prepare(&self, pem: &[u8], at: UnixTime) -> Result<Cached<K>, String> {
        use rustls_pki_types::pem::PemObject;
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<_, _>>()
            .map_err(|e| format!("not PEM certificates ({e})"))?;
        if chain.is_empty() {
            return Err("no certificate in the file".to_owned());
        }
        let key = (self.rules.prepare)(&self.source, &chain, at)?;
        let now = Instant::now();
        Ok(Cached {
            key,
            chain,
            fetched: now,
            checked: Mutex::new(now),
            refresh_after: Mutex::new(now),
        })
    }

    /// Checks a cached certificate again (offline) when its last check is
    /// older than a minute. one that no longer passes (expired) is
    /// dropped.
    fn recheck(&self, url: &str, cached: &Cached<K>) -> Result<(), Reject> {
        let mut checked = cached.checked.lock().unwrap_or_else(|e| e.into_inner());
        if checked.elapsed() < RECHECK {
            return Ok(());
        }
        match (self.rules.prepare)(&self.source, &cached.chain, now_unix()) {
            Ok(_) => {
                *checked = Instant::now();
                Ok(())
            }
            Err(why) => {
                drop(checked);
                let why = format!(
                    "the certificate at {} is no longer trusted: {why}",
                    self.rules.field
                );
                let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
                slots.insert(url.to_owned(), Slot::failed(true, why.clone()));
                Err(Reject::with(Reason::BadSignature, why))
            }
        }
    }

    /// The cached URLs due a refresh now: past their retry time, and either
    /// [`MAX_AGE`] old or no longer trusted [`REFRESH_MARGIN`] from now.
    fn due(&self) -> Vec<String> {
        let ahead = UnixTime::since_unix_epoch(
            SystemTime::now()
                .checked_add(REFRESH_MARGIN)
                .unwrap_or_else(SystemTime::now)
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default(),
        );
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots
            .iter()
            .filter_map(|(url, slot)| match slot {
                Slot::Ready(cached) => Some((url, cached)),
                _ => None,
            })
            .filter(|(_, cached)| {
                *cached
                    .refresh_after
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    <= Instant::now()
            })
            .filter(|(_, cached)| {
                cached.fetched.elapsed() >= MAX_AGE
                    || (self.rules.prepare)(&self.source, &cached.chain, ahead).is_err()
            })
            .map(|(url, _)| url.clone())
            .collect()
    }

    /// Fetches `url` again; the new certificate replaces the old only when
    /// it is trusted, else the old one serves on until its own checks fail.
    fn refresh(&self, url: &str) {
        let slot = self.fetch_and_prepare(url, Trigger::Refresh);
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let retry = Instant::now() + REFRESH_RETRY;
        match slot {
            Slot::Ready(fresh) => {
                *fresh
                    .refresh_after
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = retry;
                slots.insert(url.to_owned(), Slot::Ready(fresh));
            }
            _ => {
                if let Some(Slot::Ready(old)) = slots.get(url) {
                    *old.refresh_after.lock().unwrap_or_else(|e| e.into_inner()) = retry;
                }
            }
        }
    }
}

/// The refresher: one thread per cache, started with its first
/// certificate; it refreshes what is due, one fetch at a time, and ends
/// when the route's scheme is dropped (a reload).
fn refresher<K: Send + Sync + std::fmt::Debug + 'static>(cache: Weak<Certs<K>>) {
    loop {
        std::thread::sleep(REFRESH_TICK);
        let Some(certs) = cache.upgrade() else {
            return;
        };
        for url in certs.due() {
            certs.refresh(&url);
        }
    }
}

/// The leaf's RSA public key, refused when shorter than 2048 bits (both
/// senders sign with RSA).
pub fn leaf_rsa_key(chain: &[CertificateDer<'static>]) -> Result<rsa::RsaPublicKey, String> {
    use rsa::pkcs8::DecodePublicKey;
    let leaf = chain.first().ok_or("no certificate in the file")?;
    let leaf = webpki::EndEntityCert::try_from(leaf).map_err(|e| e.to_string())?;
    let spki = leaf.subject_public_key_info();
    let key = rsa::RsaPublicKey::from_public_key_der(spki.as_ref())
        .map_err(|_| "the certificate's key is not RSA".to_owned())?;
    if rsa::traits::PublicKeyParts::size(&key) < 256 {
        return Err("the certificate's RSA key is shorter than 2048 bits".to_owned());
    }
    Ok(key)
}

/// Now, for certificate validity checks.
pub fn now_unix() -> UnixTime {
    UnixTime::since_unix_epoch(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default(),
    )
}

/// GETs `url` with a timeout and a size limit, on a runtime of its own
/// (this runs on a fetch thread, never a serving one). The TLS connection
/// is authenticated against the source's anchors: the host, already
/// pinned, is who it says.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paypal_hosts_over_https_are_fetched() {
        let paypal = CertSource::new(Pin::Paypal, None);
        let field = "header paypal-cert-url";
        for good in [
            "https://api.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-1d93a270",
            "https://api.sandbox.paypal.com/v1/notifications/certs/CERT-1",
            "https://API.PAYPAL.COM:443/c",
        ] {
            assert_eq!(paypal.pinned(good, field), Ok(()), "{good}");
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
            assert!(paypal.pinned(bad, field).is_err(), "{bad}");
        }
        let test = |authority: &str| TestOrigin {
            authority: authority.to_owned(),
            roots: Vec::new(),
        };
        let local = CertSource::new(Pin::Paypal, Some(test("127.0.0.1:4443")));
        assert_eq!(
            local.pinned("https://127.0.0.1:4443/cert.pem", field),
            Ok(())
        );
        assert!(local.pinned("https://api.paypal.com/c", field).is_err());
        assert!(local
            .pinned("https://127.0.0.1:4444/cert.pem", field)
            .is_err());
    }

    #[test]
    fn only_sns_regional_hosts_over_https_are_fetched() {
        let sns = CertSource::new(Pin::Sns, None);
        let field = "field SigningCertURL";
        for good in [
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-7ff5318490ec183fbaddaa2a969abfda.pem",
            "https://sns.eu-west-3.amazonaws.com/SimpleNotificationService-1.pem",
            "https://SNS.US-GOV-WEST-1.AMAZONAWS.COM/x.pem",
        ] {
            assert_eq!(sns.pinned(good, field), Ok(()), "{good}");
        }
        for bad in [
            "http://sns.us-east-1.amazonaws.com/x.pem",
            "https://sns.us-east-1.amazonaws.com/x.pem?y=1",
            "https://sns.us-east-1.amazonaws.com/x.txt",
            "https://sns.us-east-1.amazonaws.com:8443/x.pem",
            "https://sns.us-east-1.amazonaws.com.evil.example/x.pem",
            "https://sqs.us-east-1.amazonaws.com/x.pem",
            "https://sns.a.amazonaws.com/x.pem",
            "https://sns.us_east.amazonaws.com/x.pem",
            "https://evil.example/sns.us-east-1.amazonaws.com/x.pem",
            "https://bucket.s3.amazonaws.com/x.pem",
            "https://user@sns.us-east-1.amazonaws.com/x.pem",
        ] {
            assert!(sns.pinned(bad, field).is_err(), "{bad}");
        }
    }
}
