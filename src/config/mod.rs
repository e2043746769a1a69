//! Configuration: the TOML file, validated once into types that cannot be
//! invalid.
//!
//! [`Config::from_toml`] walks the document with a path-tracking
//! [`reader::Section`], collecting every problem (each naming its key) before
//! giving up, resolves every secret source, and prepares each route's scheme.
//! Anything that holds a [`Config`] can rely on it: addresses parse, sizes and
//! durations are in range, templates only name values the scheme provides, and
//! secrets exist.
//!
//! This file holds the validated types and the walk over the document; each
//! table's validator sits in its own file:
//! - [`reader`]: the path-tracking reader and its typed getters.
//! - `server`, `replay`, `route`: `[server]`, `[replay]`, `[[routes]]`.
//! - `egress`: `[egress]` and `[[egress.routes]]`, the app's signed calls
//!   to partners.
//! - `queue`: `[queue]` and each route's `[routes.delivery]`.
//! - `scheme`: a route's scheme and key material, by the scheme registry.
//! - [`secrets`]: `env`/`file`/`value` sources; [`units`]: sizes, durations.

mod egress;
mod queue;
pub mod reader;
mod replay;
mod route;
mod scheme;
pub mod secrets;
mod server;
pub mod units;

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderName, HeaderValue};
use http::{Method, StatusCode};
use ipnet::IpNet;

use crate::dedupe::DedupeSource;
use crate::schemes::Scheme;
pub use egress::{AppCredentials, Egress, EgressRoute, Idempotency, KeySource, PartnerUrl, Retry};
pub use reader::ConfigError;
pub use reader::ConfigErrors;
use reader::{as_section, Section};
pub use secrets::{Env, ProcessEnv, Secret, Source, SourceReader};

/// Route name used in metrics and logs for requests no route matched.
pub const UNMATCHED_ROUTE: &str = "_unmatched";

/// The whole validated configuration.
#[derive(Debug)]
pub struct Config {
    /// Listener, upstream and limits.
    pub server: Server,
    /// Replay protection store.
    pub replay: Replay,
    /// Routes in configuration order.
    pub routes: Vec<Arc<Route>>,
    /// The egress listener and its partner routes, when configured.
    pub egress: Option<Arc<Egress>>,
    /// Where durable routes keep their deliveries; `None` without a
    /// `[queue]` table (then no route is durable).
    pub queue: Option<Queue>,
    /// The files the key sources read, for [`Config::watched_files`].
    watched: Vec<PathBuf>,
}

/// `[server]`.
#[derive(Debug, Clone)]
pub struct Server {
    /// Where webhook senders connect.
    pub listen: SocketAddr,
    /// Where `/healthz`, `/readyz` and `/metrics` are served; kept apart from
    /// `listen` so that the public listener exposes nothing but routes.
    pub admin_listen: SocketAddr,
    /// The app behind the sidecar.
    pub upstream: Upstream,
    /// Header the app trusts; always stripped from incoming requests.
    pub verified_header: HeaderName,
    /// Default body limit for routes and for unmatched forwarding.
    pub max_body: u64,
    /// Time allowed for a request's headers to arrive.
    pub header_timeout: Duration,
    /// Time allowed for a request's body to arrive.
    pub body_timeout: Duration,
    /// Time allowed for the upstream's response headers.
    pub upstream_timeout: Duration,
    /// How long in-flight requests may take to finish on shutdown.
    pub shutdown_grace: Duration,
    /// What to do with requests no route matches.
    pub unmatched: Unmatched,
    /// How often the config file and the files its key sources read are
    /// checked for changes.
    pub reload_interval: Duration,
    /// Peers whose `X-Forwarded-For` is believed (an ingress, a load
    /// balancer); empty means the socket peer is always the client.
    pub trusted_proxies: Vec<IpNet>,
    /// Connections served at once; further ones wait in the accept backlog.
    pub max_connections: usize,
    /// Threads serving connections, each with its own single-threaded
    /// runtime (see [`crate::server`]).
    pub workers: usize,
    /// Most header lines accepted in one request.
    pub max_headers: usize,
    /// Largest request head (request line and headers) accepted, in bytes.
    pub max_header_bytes: usize,
    /// What becomes of request headers with `_` in their name.
    pub underscores_in_headers: Underscores,
    /// Longest a write of an answer may stall (the sender reads nothing);
    /// the connection is closed after it, so a sender that never reads
    /// cannot hold a connection slot for ever.
    pub write_timeout: Duration,
    /// How long hookguard waits for the app's answer to a delivery whose
    /// sender was already told 504: the claim stays in flight until the
    /// app answers, then is settled by that answer.
    pub settle_timeout: Duration,
    /// Where routes with `capture_rejected` write the requests they refuse,
    /// and how much may be kept; `None` without `capture_dir`.
    pub capture: Option<Capture>,
}

/// `capture_dir` and its bounds: refused requests kept as files for
/// `hookguard verify --request`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capture {
    /// An existing directory hookguard could write to at load.
    pub dir: PathBuf,
    /// Most captures kept; the oldest is deleted first.
    pub max_files: usize,
    /// Most bytes all captures may take; the oldest are deleted first.
    pub max_bytes: u64,
}

/// What becomes of request headers with an underscore in their name.
///
/// PHP, Laravel, Symfony, Rack and every CGI-style reader see `X_Foo` and
/// `X-Foo` as the same variable (`HTTP_X_FOO`), so a sender could pass a
/// header the app reads as one hookguard set. Those that collide with
/// hookguard's own are always removed; this says what happens to the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Underscores {
    /// Removed before forwarding (nginx's default), counted.
    Drop,
    /// Forwarded.
    Pass,
    /// The request is refused with 400 `malformed_request`.
    Reject,
}

/// The upstream app's address.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// `host:port` of the app.
    pub authority: http::uri::Authority,
    /// A path prefix prepended to every forwarded path (without a trailing
    /// slash; empty for none).
    pub base_path: String,
}

/// Policy for requests no route matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unmatched {
    /// Answer 404 `no_route`.
    Reject,
    /// Forward as-is, never marked verified.
    Forward,
}

/// `[replay]`.
#[derive(Debug, Clone)]
pub struct Replay {
    /// Which store backs replay protection, with that store's settings.
    pub store: StoreKind,
    /// Upper bound on remembered keys (memory store; Redis is bounded by its
    /// own `maxmemory`).
    pub max_entries: u64,
    /// Largest app answer remembered for `duplicate_answer = "original"`;
    /// larger ones fall back to the status answer.
    pub max_answer_bytes: usize,
    /// Where and how often the memory store writes its keys, so that a
    /// restart does not reopen the replay window; `None` for no snapshots
    /// (and always for Redis).
    pub snapshot: Option<Snapshot>,
}

/// `replay.snapshot_path` and `replay.snapshot_interval`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The snapshot file; written atomically beside itself.
    pub path: PathBuf,
    /// How often it is written (and once more on a graceful shutdown).
    pub interval: Duration,
}

/// `[queue]`: the store durable routes keep their deliveries in.
#[derive(Debug, Clone)]
pub struct Queue {
    /// Which store, with where it is.
    pub store: QueueStoreKind,
    /// Past this many stored bytes, new deliveries are refused (503 with
    /// `Retry-After`) until deliveries and purges free room.
    pub max_bytes: u64,
    /// How long dead items are kept for an operator to see and redeliver.
    pub retain_dead: Duration,
    /// How long delivered items are kept for an operator to look at.
    pub retain_delivered: Duration,
}

/// The queue store backends.
#[derive(Debug, Clone)]
pub enum QueueStoreKind {
    /// One redb file on a volume this process alone writes.
    Embedded(PathBuf),
    /// One Redis shared by every replica.
    Redis(Box<RedisQueue>),
}

/// `store = "redis"` under `[queue]`: where the shared queue is.
#[derive(Debug, Clone)]
pub struct RedisQueue {
    /// Address, database, TLS and credentials (`redis_url`, with
    /// `redis_password` folded in); its `Debug` redacts the password.
    pub connection: redis::ConnectionInfo,
    /// Prepended to every key; apart from the replay store's by default,
    /// so the two may share a database.
    pub key_prefix: String,
    /// Longest a request waits for one queue operation (the enqueue
    /// included); past it the request gets 503 and nothing is claimed.
    pub store_timeout: Duration,
    /// `accept_redis_risk`: start even where Redis may lose what it
    /// acknowledged (no `appendfsync always`, an evicting
    /// `maxmemory-policy`, or settings hookguard may not read).
    pub accept_redis_risk: bool,
}

/// A durable route's `[routes.delivery]`: how its queued deliveries reach
/// the app.
#[derive(Debug, Clone)]
pub struct Durable {
    /// Waits between message-level retries, never decreasing; the last
    /// repeats. Each is jittered by up to 20 % either way.
    pub backoff: Vec<Duration>,
    /// Past this age (from receipt) an item is dead.
    pub max_age: Duration,
    /// Attempts that failed for the message (not the app being down) after
    /// which an item is dead; 0 for no limit but `max_age`.
    pub max_attempts: u32,
    /// Time allowed for one attempt, the app's whole answer included.
    pub timeout: Duration,
    /// Deliveries in flight to the app at once for this route.
    pub concurrency: usize,
    /// The app's answers that make an item dead at once.
    pub dead_on: StatusSet,
}

/// What a copy of a delivery the app already took is answered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DuplicateAnswer {
    /// `200 {"status":"duplicate",...}`.
    Status,
    /// The app's own first 2xx answer (status, `Content-Type`, body), when
    /// it was small enough to remember; else as `Status`.
    Original,
}

/// The replay store backends.
#[derive(Debug, Clone)]
pub enum StoreKind {
    /// In-process map: one per process, the default.
    Memory,
    /// One Redis (or Valkey) shared by every replica of the app.
    Redis(Box<RedisReplay>),
}

/// `store = "redis"`: where the shared store is and how hookguard uses it.
#[derive(Debug, Clone)]
pub struct RedisReplay {
    /// Address, database, TLS and credentials (`redis_url`, with
    /// `redis_password` folded in); its `Debug` redacts the password.
    pub connection: redis::ConnectionInfo,
    /// Prepended to every key, so that hookguard's keys stay apart from
    /// anything else kept in the same database.
    pub key_prefix: String,
    /// Longest a request waits for one store operation; past it the store
    /// counts as unavailable for that request.
    pub store_timeout: Duration,
    /// What a request does when the store cannot answer.
    pub on_store_error: OnStoreError,
}

/// `on_store_error`: availability or replay protection, when Redis fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnStoreError {
    /// Answer 503 `store_unavailable`; the sender retries later. `/readyz`
    /// reports not ready while the store is down.
    Reject,
    /// Forward without replay protection, counted in
    /// `hookguard_replay_store_bypass_total`.
    Allow,
}

/// How a route's path is matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathPattern {
    /// The path must equal this.
    Exact(String),
    /// The path must start with this (written `"/prefix/*"`; stored as
    /// `"/prefix/"`).
    Prefix(String),
}

impl PathPattern {
    /// True when `path` matches.
    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathPattern::Exact(p) => path == p,
            PathPattern::Prefix(p) => path.starts_with(p.as_str()),
        }
    }
}

impl std::fmt::Display for PathPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PathPattern::Exact(p) => f.write_str(p),
            PathPattern::Prefix(p) => write!(f, "{p}*"),
        }
    }
}

/// One validated `[[routes]]` entry.
#[derive(Debug)]
pub struct Route {
    /// Unique name; used in metrics, logs and the verified header.
    pub name: String,
    /// Which paths this route serves.
    pub path: PathPattern,
    /// Accepted methods.
    pub methods: Vec<Method>,
    /// The `Allow` header for 405 answers, prepared once.
    pub allow: HeaderValue,
    /// The prepared verifier.
    pub scheme: Box<dyn Scheme>,
    /// Timestamp window, applied in both directions.
    pub tolerance: Duration,
    /// Body limit.
    pub max_body: u64,
    /// Dedupe key sources; empty turns replay protection off.
    pub dedupe: Vec<DedupeSource>,
    /// How long a completed delivery is remembered.
    pub dedupe_ttl: Duration,
    /// The verified header value for each key, prepared once.
    pub verified_values: Vec<HeaderValue>,
    /// Header whose value is logged as the delivery id: the first
    /// `header:` dedupe source, else the scheme's own id header.
    pub delivery_header: Option<HeaderName>,
    /// When no header gives the delivery id: the index in `dedupe` of the
    /// first JSON source, whose value is logged as the delivery id instead.
    pub delivery_json: Option<usize>,
    /// False for shadow mode: verify and count everything, forward anyway.
    pub enforce: bool,
    /// The rate of verified requests the app is sent; forged requests do
    /// not spend it.
    pub rate_limit: Option<RateLimit>,
    /// The rate of requests one client address may send, checked on the
    /// head before any work; protects hookguard's own CPU.
    pub client_rate_limit: Option<ClientRateLimit>,
    /// Client networks allowed; empty allows any.
    pub allow_ips: Vec<IpNet>,
    /// Accepted media types, lower-case, without parameters; empty allows
    /// any.
    pub content_types: Vec<String>,
    /// The app's answers that complete a claim (later copies are
    /// duplicates); any other answer releases it, so the sender's retry is
    /// delivered.
    pub complete_on: StatusSet,
    /// The status a copy of a delivery still in flight is answered with:
    /// one the sender retries.
    pub in_flight_status: StatusCode,
    /// Ids of `optional` secrets that were not set when the config was
    /// read (retired, or not rotated in yet); shown by `check`.
    pub skipped_secrets: Vec<String>,
    /// What a duplicate is answered with.
    pub duplicate_answer: DuplicateAnswer,
    /// Refuse a request lacking any `dedupe` source (400
    /// `missing_dedupe_source`) instead of deduping it on the rest.
    pub require_dedupe: bool,
    /// Write each request this route refuses to `server.capture_dir`.
    pub capture_rejected: bool,
    /// Whether hookguard answers the scheme's endpoint challenge itself
    /// (`answer_challenges`, default true where the scheme has one); false
    /// leaves signed challenges to the app and refuses unsigned ones.
    pub answer_challenges: bool,
    /// With `[routes.delivery] mode = "durable"`: the sender is answered
    /// 202 once the request is stored, and the queue delivers it; `None`
    /// for synchronous forwarding.
    pub delivery: Option<Durable>,
}

/// A set of HTTP status codes, written as classes (`"2xx"`) and single
/// codes (`"409"`).
#[derive(Clone, PartialEq, Eq)]
pub struct StatusSet {
    /// One bit per code 0..640.
    bits: [u64; 10],
}

impl StatusSet {
    /// The empty set.
    pub fn empty() -> Self {
        StatusSet { bits: [0; 10] }
    }

    /// Adds a class (`"2xx"`) or a code (`"409"`); `Err` says what was
    /// wrong with `text`.
    pub fn add(&mut self, text: &str) -> Result<(), String> {
        let bad =
            || format!("{text:?} is neither a status class (1xx to 5xx) nor a code (100 to 599)");
        let (first, last) = match text.as_bytes() {
            [c @ b'1'..=b'5', b'x' | b'X', b'x' | b'X'] => {
                let base = u16::from(c - b'0') * 100;
                (base, base + 99)
            }
            [b'1'..=b'5', b'0'..=b'9', b'0'..=b'9'] => {
                let code: u16 = text.parse().map_err(|_| bad())?;
                (code, code)
            }
            _ => return Err(bad()),
        };
        for code in first..=last {
            self.bits[usize::from(code / 64)] |= 1 << (code % 64);
        }
        Ok(())
    }

    /// Takes `codes` out of the set.
    pub fn remove(&mut self, codes: &[u16]) {
        for code in codes {
            if let Some(word) = self.bits.get_mut(usize::from(code / 64)) {
                *word &= !(1 << (code % 64));
            }
        }
    }

    /// Whether `status` is in the set.
    pub fn contains(&self, status: u16) -> bool {
        self.bits
            .get(usize::from(status / 64))
            .is_some_and(|word| word & (1 << (status % 64)) != 0)
    }
}

impl std::fmt::Display for StatusSet {
    /// Whole classes as `2xx`, other codes one by one: `2xx, 409`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        for class in 1..=5u16 {
            let codes: Vec<u16> = (class * 100..class * 100 + 100)
                .filter(|c| self.contains(*c))
                .collect();
            if codes.len() == 100 {
                parts.push(format!("{class}xx"));
            } else if codes.len() >= 90 {
                // A class with a few taken out (dead_on's default).
                let missing: Vec<String> = (class * 100..class * 100 + 100)
                    .filter(|c| !self.contains(*c))
                    .map(|c| c.to_string())
                    .collect();
                parts.push(format!("{class}xx but {}", missing.join(" ")));
            } else {
                parts.extend(codes.iter().map(u16::to_string));
            }
        }
        f.write_str(&parts.join(", "))
    }
}

impl std::fmt::Debug for StatusSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StatusSet({self})")
    }
}

/// A configured rate: `requests_per_second` or `requests_per_minute`,
/// either possibly fractional, with its burst.
#[derive(Debug, Clone, PartialEq)]
pub struct Rate {
    /// Sustained requests per second.
    pub per_second: f64,
    /// Requests allowed at once above the rate.
    pub burst: NonZeroU32,
    /// The rate as the config wrote it, for messages
    /// (`"60 requests per minute"`).
    pub text: String,
}

impl Rate {
    /// governor's quota for this rate: one request every `1 / per_second`,
    /// `burst` at once.
    pub fn quota(&self) -> governor::Quota {
        let period = Duration::from_secs_f64(1.0 / self.per_second);
        governor::Quota::with_period(period)
            .expect("rates are validated positive and bounded")
            .allow_burst(self.burst)
    }
}

/// A route's `rate_limit`, counted on verified requests only, with its
/// limiter (rebuilt on reload).
pub struct RateLimit {
    /// The configured rate.
    pub rate: Rate,
    /// The route's one bucket.
    pub limiter: governor::DefaultDirectRateLimiter,
}

impl std::fmt::Debug for RateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RateLimit({}, burst {})",
            self.rate.text, self.rate.burst
        )
    }
}

/// A route's `client_rate_limit`: one bucket per client address, judged on
/// the request head before any verification work (rebuilt on reload).
pub struct ClientRateLimit {
    /// The configured rate, per client.
    pub rate: Rate,
    /// The buckets by client (an IPv6 client by its /64, which one host
    /// usually holds whole); bounded by `limits::MAX_CLIENTS`.
    pub limiter: governor::DefaultKeyedRateLimiter<std::net::IpAddr>,
}

impl std::fmt::Debug for ClientRateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ClientRateLimit({} per client, burst {})",
            self.rate.text, self.rate.burst
        )
    }
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path, env: &dyn Env) -> Result<Config, ConfigErrors> {
        Config::load_with(path, &mut SourceReader::new(env))
    }

    /// Reads and validates a config file, resolving key sources through
    /// `sources`, which is left holding every file they named, valid
    /// config or not: a reload watches those to notice the fix of a config
    /// that is refused for a secret file that is not there yet.
    pub fn load_with(path: &Path, sources: &mut SourceReader<'_>) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            let mut errors = ConfigErrors::default();
            errors.push(
                "",
                format!("cannot read config file {}: {e}", path.display()),
            );
            errors
        })?;
        Config::parse(&text, sources)
    }

    /// Validates a config document, reporting every problem at once.
    pub fn from_toml(text: &str, env: &dyn Env) -> Result<Config, ConfigErrors> {
        Config::parse(text, &mut SourceReader::new(env))
    }

    /// Whether `replicas` processes may run this config at once: an
    /// embedded queue is one file for one process (a second would find it
    /// locked, or on a volume of its own strand what it accepted there);
    /// the error says so under `queue.store`.
    pub fn check_replicas(&self, replicas: u32) -> Result<(), ConfigErrors> {
        match self.queue.as_ref().map(|q| &q.store) {
            Some(QueueStoreKind::Embedded(_)) if replicas > 1 => {
                let mut errors = ConfigErrors::default();
                errors.push(
                    "queue.store",
                    format!("\"embedded\" is one file for one process, and {replicas} replicas would run this config: use store = \"redis\" (shared by every replica) or run one replica"),
                );
                Err(errors)
            }
            _ => Ok(()),
        }
    }

    /// The files the key sources read (`file = ...` under `secrets`,
    /// `public_keys`, `verify_token` and `redis_password`), each once: with
    /// the config file, what a reload polls for changes.
    pub fn watched_files(&self) -> &[PathBuf] {
        &self.watched
    }

    fn parse(text: &str, sources: &mut SourceReader<'_>) -> Result<Config, ConfigErrors> {
        let mut errors = ConfigErrors::default();
        let document: toml::Table = match text.parse() {
            Ok(table) => table,
            Err(e) => {
                errors.push("", syntax_error(text, &e));
                return Err(errors);
            }
        };
        let mut root = Section::root(&document);
        let server = match root.table("server", &mut errors) {
            Some(section) => server::parse(section, &mut errors),
            None => {
                if !root.has("server") {
                    errors.push(
                        "server",
                        "missing: a [server] table with at least `upstream` is required",
                    );
                }
                None
            }
        };
        let replay = match root.table("replay", &mut errors) {
            Some(section) => replay::parse(section, sources, &mut errors),
            None => Some(replay::absent()),
        };
        let default_max_body = server
            .as_ref()
            .map_or(server::DEFAULT_MAX_BODY, |s| s.max_body);
        // An invalid [server] is reported there; routes are not also told
        // that capture_dir is missing.
        let capture_dir = server.as_ref().is_none_or(|s| s.capture.is_some());
        let mut routes = Vec::new();
        match root.array("routes", &mut errors) {
            Some(items) if !items.is_empty() => {
                for (index, (path, item)) in items.into_iter().enumerate() {
                    if let Some(section) = as_section(path, item, &mut errors) {
                        if let Some(route) = route::parse(
                            section,
                            default_max_body,
                            capture_dir,
                            sources,
                            &mut errors,
                        ) {
                            // The index in the file, not in `routes`: an
                            // invalid earlier route must not shift the keys
                            // that duplicate errors name.
                            routes.push((index, route));
                        }
                    }
                }
            }
            _ => errors.push("routes", "at least one [[routes]] entry is required"),
        }
        route::check_unique(&routes, &mut errors);
        let egress = root
            .table("egress", &mut errors)
            .and_then(|section| egress::parse(section, sources, &mut errors))
            .map(Arc::new);
        let queue = root
            .table("queue", &mut errors)
            .and_then(|section| queue::parse(section, sources, &mut errors));
        queue::check_durable_routes(root.has("queue"), queue.as_ref(), &routes, &mut errors);
        root.finish(&mut errors);
        match (server, replay) {
            (Some(server), Some(replay)) if errors.is_empty() => Ok(Config {
                egress,
                server,
                replay,
                routes: routes
                    .into_iter()
                    .map(|(_, route)| Arc::new(route))
                    .collect(),
                queue,
                watched: sources.files().to_vec(),
            }),
            _ => Err(errors),
        }
    }

    /// The route named `name`, if there is one.
    pub fn route(&self, name: &str) -> Option<&Route> {
        self.routes
            .iter()
            .map(Arc::as_ref)
            .find(|route| route.name == name)
    }

    /// A human-readable summary of the routes, for `hookguard check`. Names
    /// secret ids, never secrets.
    pub fn summary(&self) -> String {
        let mut out = format!(
            "listen {}  admin {}  upstream http://{}{}  unmatched={}\n",
            self.server.listen,
            self.server.admin_listen,
            self.server.upstream.authority,
            self.server.upstream.base_path,
            match self.server.unmatched {
                Unmatched::Reject => "reject",
                Unmatched::Forward => "forward",
            }
        );
        if let Some(queue) = &self.queue {
            let store = match &queue.store {
                QueueStoreKind::Embedded(path) => {
                    format!("embedded {} (one process: run one replica)", path.display())
                }
                QueueStoreKind::Redis(redis) => format!(
                    "redis {}  key_prefix={}{} (shared by every replica)",
                    redis.connection.addr(),
                    redis.key_prefix,
                    if redis.accept_redis_risk {
                        "  accept_redis_risk=true"
                    } else {
                        ""
                    }
                ),
            };
            out.push_str(&format!(
                "queue {store}  max_bytes={}  retain_delivered={}s  retain_dead={}s\n",
                queue.max_bytes,
                queue.retain_delivered.as_secs(),
                queue.retain_dead.as_secs()
            ));
        }
        for route in &self.routes {
            let methods: Vec<&str> = route.methods.iter().map(Method::as_str).collect();
            let dedupe: Vec<String> = route.dedupe.iter().map(ToString::to_string).collect();
            out.push_str(&format!(
                "route {:?}: {} {}  scheme={}  keys=[{}]  tolerance={}s  max_body={}  dedupe=[{}]  dedupe_ttl={}s\n",
                route.name,
                methods.join(","),
                route.path,
                route.scheme.name(),
                route.scheme.key_ids().join(", "),
                route.tolerance.as_secs(),
                route.max_body,
                dedupe.join(", "),
                route.dedupe_ttl.as_secs(),
            ));
            // Everything else that decides what is refused or settled.
            let mut refuses = Vec::new();
            if !route.content_types.is_empty() {
                refuses.push(format!(
                    "content_types=[{}]",
                    route.content_types.join(", ")
                ));
            }
            if !route.allow_ips.is_empty() {
                let nets: Vec<String> = route.allow_ips.iter().map(ToString::to_string).collect();
                refuses.push(format!("allow_ips=[{}]", nets.join(", ")));
            }
            if let Some(limit) = &route.rate_limit {
                refuses.push(format!(
                    "rate_limit={} burst {} (verified requests)",
                    limit.rate.text, limit.rate.burst
                ));
            }
            if let Some(limit) = &route.client_rate_limit {
                refuses.push(format!(
                    "client_rate_limit={} burst {} per client",
                    limit.rate.text, limit.rate.burst
                ));
            }
            refuses.push(format!(
                "complete_on=[{}]  in_flight_status={}",
                route.complete_on,
                route.in_flight_status.as_u16()
            ));
            if let Some(durable) = &route.delivery {
                let backoff: Vec<String> = durable
                    .backoff
                    .iter()
                    .map(|step| format!("{}ms", step.as_millis()))
                    .collect();
                refuses.push(format!(
                    "delivery=durable backoff=[{}] max_age={}s max_attempts={} timeout={}ms concurrency={} dead_on=[{}]",
                    backoff.join(", "),
                    durable.max_age.as_secs(),
                    durable.max_attempts,
                    durable.timeout.as_millis(),
                    durable.concurrency,
                    durable.dead_on
                ));
            }
            if route.capture_rejected {
                if let Some(capture) = &self.server.capture {
                    refuses.push(format!("capture_rejected -> {}", capture.dir.display()));
                }
            }
            out.push_str(&format!("  {}\n", refuses.join("  ")));
            if !route.skipped_secrets.is_empty() {
                out.push_str(&format!(
                    "  optional secrets not set, skipped: {}\n",
                    route.skipped_secrets.join(", ")
                ));
            }
            if !route.enforce {
                out.push_str(&format!(
                    "  WARNING: route {:?} is in SHADOW MODE (enforce = false): requests that fail a check are FORWARDED anyway, without the verified header\n",
                    route.name
                ));
            }
            if !route.scheme.authenticates() {
                out.push_str(&format!(
                    "  WARNING: route {:?} has scheme = \"none\": NOTHING IS AUTHENTICATED; requests are accepted by allow_ips alone\n",
                    route.name
                ));
            }
        }
        if let Some(egress) = &self.egress {
            out.push_str(&egress.summary());
        }
        out
    }
}

/// Reports a TOML syntax error by line and column only. toml's own message
/// quotes the offending source line, which could be a secret `value`.
fn syntax_error(text: &str, error: &toml::de::Error) -> String {
    match error.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let line_start = before.rfind('\n').map_or(0, |i| i + 1);
            let column = before[line_start..].chars().count() + 1;
            format!(
                "TOML syntax error at line {line}, column {column}: {}",
                error.message().trim().replace('\n', "; ")
            )
        }
        None => format!("TOML syntax error: {}", error.message()),
    }
}
