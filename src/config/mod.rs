//! Configuration: the TOML file, validated once into types that cannot be
//! invalid.
//!
//! [`Config::from_toml`] walks the document with a path-tracking
//! [`reader::Section`], collecting every problem (each naming its key) before
//! giving up, resolves every secret source, and prepares each route's scheme.
//! Anything that holds a [`Config`] can rely on it: addresses parse, sizes and
//! durations are in range, templates only name values the scheme provides, and
//! secrets exist.

pub mod reader;
mod scheme;
pub mod secrets;
pub mod units;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderName, HeaderValue};
use http::{Method, Uri};
use ipnet::IpNet;

use crate::dedupe::DedupeSource;
use crate::schemes::Scheme;
pub use reader::ConfigError;
pub use reader::ConfigErrors;
use reader::{as_section, Section};
use secrets::read_source;
pub use secrets::{Env, ProcessEnv, Secret, Source};

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
    /// How often the config file and secret files are checked for changes.
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

impl Upstream {
    /// The URI a request for `path_and_query` is forwarded to.
    pub fn uri_for(&self, path_and_query: &str) -> Result<Uri, http::Error> {
        let mut target = String::with_capacity(self.base_path.len() + path_and_query.len());
        target.push_str(&self.base_path);
        target.push_str(path_and_query);
        Uri::builder()
            .scheme("http")
            .authority(self.authority.clone())
            .path_and_query(target)
            .build()
    }
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
    /// False for shadow mode: verify and count everything, forward anyway.
    pub enforce: bool,
    /// Requests allowed per second, checked before the body is read.
    pub rate_limit: Option<RateLimit>,
    /// Client networks allowed; empty allows any.
    pub allow_ips: Vec<IpNet>,
    /// Accepted media types, lower-case, without parameters; empty allows
    /// any.
    pub content_types: Vec<String>,
}

/// A route's `rate_limit`, with its limiter (rebuilt on reload).
pub struct RateLimit {
    /// Sustained rate.
    pub requests_per_second: std::num::NonZeroU32,
    /// Requests allowed at once above the rate.
    pub burst: std::num::NonZeroU32,
    /// The shared limiter.
    pub limiter: governor::DefaultDirectRateLimiter,
}

impl std::fmt::Debug for RateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RateLimit({}/s, burst {})",
            self.requests_per_second, self.burst
        )
    }
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path, env: &dyn Env) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            let mut errors = ConfigErrors::default();
            errors.push(
                "",
                format!("cannot read config file {}: {e}", path.display()),
            );
            errors
        })?;
        Config::from_toml(&text, env)
    }

    /// Validates a config document, reporting every problem at once.
    pub fn from_toml(text: &str, env: &dyn Env) -> Result<Config, ConfigErrors> {
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
            Some(section) => parse_server(section, &mut errors),
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
            Some(section) => parse_replay(section, env, &mut errors),
            None => Some(Replay {
                store: StoreKind::Memory,
                max_entries: DEFAULT_MAX_ENTRIES,
            }),
        };
        let default_max_body = server.as_ref().map_or(DEFAULT_MAX_BODY, |s| s.max_body);
        let mut routes = Vec::new();
        match root.array("routes", &mut errors) {
            Some(items) if !items.is_empty() => {
                for (index, (path, item)) in items.into_iter().enumerate() {
                    if let Some(section) = as_section(path, item, &mut errors) {
                        if let Some(route) =
                            parse_route(section, default_max_body, env, &mut errors)
                        {
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
        check_unique_routes(&routes, &mut errors);
        root.finish(&mut errors);
        match (server, replay) {
            (Some(server), Some(replay)) if errors.is_empty() => Ok(Config {
                server,
                replay,
                routes: routes
                    .into_iter()
                    .map(|(_, route)| Arc::new(route))
                    .collect(),
            }),
            _ => Err(errors),
        }
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
        }
        out
    }
}

const DEFAULT_MAX_BODY: u64 = 1 << 20;
const DEFAULT_MAX_HEADER_BYTES: usize = 64 << 10;
const DEFAULT_MAX_ENTRIES: u64 = 1_000_000;

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

fn parse_server(mut s: Section<'_>, errors: &mut ConfigErrors) -> Option<Server> {
    let listen = socket_addr(&mut s, "listen", "0.0.0.0:8000", errors);
    let admin_listen = socket_addr(&mut s, "admin_listen", "127.0.0.1:9901", errors);
    let upstream = match s.string("upstream", errors) {
        Some(text) => parse_upstream(text)
            .map_err(|m| errors.push(s.key("upstream"), m))
            .ok(),
        None => {
            if !s.has("upstream") {
                errors.push(
                    s.key("upstream"),
                    "missing: set the app's address, e.g. \"http://127.0.0.1:8080\"",
                );
            }
            None
        }
    };
    let verified_header = match s.string("verified_header", errors) {
        Some(name) => header_name(name)
            .map_err(|m| errors.push(s.key("verified_header"), m))
            .ok(),
        None => Some(HeaderName::from_static("x-verified-by")),
    };
    let max_body = s.size("max_body", errors).unwrap_or(DEFAULT_MAX_BODY);
    if max_body == 0 {
        errors.push(s.key("max_body"), "must be greater than 0");
    }
    let header_timeout = positive_duration(&mut s, "header_timeout", 10, errors);
    let body_timeout = positive_duration(&mut s, "body_timeout", 30, errors);
    let upstream_timeout = positive_duration(&mut s, "upstream_timeout", 30, errors);
    let shutdown_grace = s
        .duration("shutdown_grace", errors)
        .unwrap_or(Duration::from_secs(25));
    let unmatched = match s.choice("unmatched", &["reject", "forward"], errors) {
        Some("forward") => Unmatched::Forward,
        _ => Unmatched::Reject,
    };
    let reload_interval = positive_duration(&mut s, "reload_interval", 10, errors);
    let trusted_proxies = cidr_list(&mut s, "trusted_proxies", errors).unwrap_or_default();
    let max_connections = bounded(&mut s, "max_connections", 10_000, 1..=1_000_000, errors);
    // One by default: a sidecar shares the pod's CPU with the app it
    // guards, and one worker serves tens of thousands of verified requests
    // a second, with a better tail than two (see `crate::server`).
    let workers = bounded(&mut s, "workers", 1, 1..=MAX_WORKERS, errors);
    let max_headers = bounded(&mut s, "max_headers", 100, 1..=1_000, errors);
    // Below 8 KiB, ordinary requests with a few long signature headers
    // would be refused.
    let max_header_bytes = match s.size("max_header_bytes", errors) {
        Some(n) if !(8_192..=1 << 20).contains(&n) => {
            errors.push(
                s.key("max_header_bytes"),
                format!("{n} is out of range: use 8KiB to 1MiB"),
            );
            DEFAULT_MAX_HEADER_BYTES
        }
        Some(n) => n as usize,
        None => DEFAULT_MAX_HEADER_BYTES,
    };
    s.finish(errors);
    Some(Server {
        reload_interval,
        trusted_proxies,
        max_connections,
        workers,
        max_headers,
        max_header_bytes,
        listen: listen?,
        admin_listen: admin_listen?,
        upstream: upstream?,
        verified_header: verified_header?,
        max_body,
        header_timeout,
        body_timeout,
        upstream_timeout,
        shutdown_grace,
        unmatched,
    })
}

fn socket_addr(
    s: &mut Section<'_>,
    key: &str,
    default: &str,
    errors: &mut ConfigErrors,
) -> Option<SocketAddr> {
    let text = s.string(key, errors).unwrap_or(default);
    text.parse()
        .map_err(|_| {
            errors.push(
                s.key(key),
                format!("{text:?} is not an address: use IP:PORT, e.g. \"0.0.0.0:8000\""),
            )
        })
        .ok()
}

fn positive_duration(
    s: &mut Section<'_>,
    key: &str,
    default_secs: u64,
    errors: &mut ConfigErrors,
) -> Duration {
    let value = s
        .duration(key, errors)
        .unwrap_or(Duration::from_secs(default_secs));
    if value.is_zero() {
        errors.push(s.key(key), "must be greater than 0");
    }
    value
}

/// An integer key with a default and an allowed range.
/// Most worker threads; more than cores only adds switching.
const MAX_WORKERS: usize = 256;

fn bounded(
    s: &mut Section<'_>,
    key: &str,
    default: usize,
    range: std::ops::RangeInclusive<usize>,
    errors: &mut ConfigErrors,
) -> usize {
    match s.unsigned(key, errors) {
        Some(n) if range.contains(&(n as usize)) => n as usize,
        Some(n) => {
            errors.push(
                s.key(key),
                format!(
                    "{n} is out of range: use {} to {}",
                    range.start(),
                    range.end()
                ),
            );
            default
        }
        None => default,
    }
}

/// A list of CIDRs (`"10.0.0.0/8"`, `"2001:db8::/32"`); a bare address is
/// taken as a single host.
fn cidr_list(s: &mut Section<'_>, key: &str, errors: &mut ConfigErrors) -> Option<Vec<IpNet>> {
    let list = s.strings(key, errors)?;
    let mut nets = Vec::with_capacity(list.len());
    for (i, text) in list.iter().enumerate() {
        let parsed = text
            .parse::<IpNet>()
            .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from));
        match parsed {
            Ok(net) => nets.push(net.trunc()),
            Err(_) => errors.push(
                format!("{}[{i}]", s.key(key)),
                format!("{text:?} is not a CIDR such as \"10.0.0.0/8\" or \"2001:db8::/32\""),
            ),
        }
    }
    Some(nets)
}

fn parse_upstream(text: &str) -> Result<Upstream, String> {
    let uri: Uri = text
        .parse()
        .map_err(|_| format!("{text:?} is not a URL: use e.g. \"http://127.0.0.1:8080\""))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!(
            "{text:?}: only http:// upstreams are supported (the app runs in the same pod)"
        ));
    }
    let authority = uri
        .authority()
        .cloned()
        .ok_or_else(|| format!("{text:?} has no host"))?;
    if authority.port_u16().is_none() {
        return Err(format!(
            "{text:?} has no port: write it as http://HOST:PORT"
        ));
    }
    if uri.query().is_some() {
        return Err(format!(
            "{text:?}: an upstream URL cannot have a query string"
        ));
    }
    let base_path = uri.path().trim_end_matches('/').to_owned();
    Ok(Upstream {
        authority,
        base_path,
    })
}

pub(crate) fn header_name(text: &str) -> Result<HeaderName, String> {
    HeaderName::from_bytes(text.as_bytes())
        .map_err(|_| format!("{text:?} is not a valid header name"))
}

/// Keys of `[replay]` that only a Redis store reads.
const REDIS_ONLY_KEYS: &[&str] = &[
    "redis_url",
    "redis_password",
    "key_prefix",
    "store_timeout",
    "on_store_error",
];

const DEFAULT_KEY_PREFIX: &str = "hookguard:";
const DEFAULT_STORE_TIMEOUT: Duration = Duration::from_millis(250);

fn parse_replay(mut s: Section<'_>, env: &dyn Env, errors: &mut ConfigErrors) -> Option<Replay> {
    let kind = match s.string("store", errors) {
        None if s.has("store") => None,
        None | Some("memory") => Some("memory"),
        Some("redis") => Some("redis"),
        Some(other) => {
            errors.push(
                s.key("store"),
                format!("{other:?} is not one of memory, redis"),
            );
            None
        }
    };
    let max_entries = s.unsigned("max_entries", errors);
    if max_entries == Some(0) {
        errors.push(s.key("max_entries"), "must be greater than 0");
    }
    // Every key is read (and type-checked) whatever the store, so that one
    // pass reports everything; which keys belong to which store comes after.
    let url = s.string("redis_url", errors).map(|text| {
        parse_redis_url(text)
            .map_err(|m| errors.push(s.key("redis_url"), m))
            .ok()
    });
    let password = parse_redis_password(&mut s, env, errors);
    let key_prefix = s.string("key_prefix", errors).and_then(|prefix| {
        check_key_prefix(prefix)
            .map_err(|m| errors.push(s.key("key_prefix"), m))
            .ok()
    });
    let store_timeout = s.duration("store_timeout", errors);
    match store_timeout {
        Some(t) if t.is_zero() => errors.push(s.key("store_timeout"), "must be greater than 0"),
        Some(t) if t > Duration::from_secs(10) => errors.push(
            s.key("store_timeout"),
            "must be at most 10s: requests wait this long for the store",
        ),
        _ => {}
    }
    let on_store_error = s
        .choice("on_store_error", &["reject", "allow"], errors)
        .map(|choice| match choice {
            "allow" => OnStoreError::Allow,
            _ => OnStoreError::Reject,
        });
    let present: Vec<&str> = ["max_entries", "redis_url"]
        .iter()
        .chain(REDIS_ONLY_KEYS)
        .copied()
        .filter(|key| s.has(key))
        .collect();
    let path = s.path().to_owned();
    let key = |name: &str| format!("{path}.{name}");
    s.finish(errors);
    let store = match kind? {
        "redis" => {
            if present.contains(&"max_entries") {
                errors.push(
                    key("max_entries"),
                    "applies only to store = \"memory\"; a Redis store is bounded by Redis's maxmemory",
                );
            }
            if !present.contains(&"redis_url") {
                errors.push(
                    key("redis_url"),
                    "missing: store = \"redis\" needs the server's address, e.g. \"redis://redis.default.svc:6379/0\"",
                );
            }
            let (mut connection, password) = (url??, password?);
            if let Some(password) = password {
                if connection.redis_settings().password().is_some() {
                    errors.push(
                        key("redis_password"),
                        "redis_url already carries a password: give it in one place only",
                    );
                    return None;
                }
                let settings = connection.redis_settings().clone().set_password(password);
                connection = connection.set_redis_settings(settings);
            }
            StoreKind::Redis(Box::new(RedisReplay {
                connection,
                key_prefix: key_prefix.unwrap_or(DEFAULT_KEY_PREFIX).to_owned(),
                store_timeout: store_timeout.unwrap_or(DEFAULT_STORE_TIMEOUT),
                on_store_error: on_store_error.unwrap_or(OnStoreError::Reject),
            }))
        }
        _ => {
            for name in REDIS_ONLY_KEYS {
                if present.contains(name) {
                    errors.push(key(name), "applies only to store = \"redis\"");
                }
            }
            StoreKind::Memory
        }
    };
    Some(Replay {
        store,
        max_entries: max_entries.unwrap_or(DEFAULT_MAX_ENTRIES),
    })
}

/// Validates `redis_url`. The value is never echoed: it may hold a password.
fn parse_redis_url(text: &str) -> Result<redis::ConnectionInfo, String> {
    const USE: &str = "use redis://[:PASSWORD@]HOST[:PORT][/DB], or rediss:// for TLS";
    match text.split_once("://") {
        Some(("redis" | "rediss", _)) => {}
        _ => return Err(format!("is not a redis:// or rediss:// URL: {USE}")),
    }
    redis::IntoConnectionInfo::into_connection_info(text).map_err(|e| {
        // The crate's message is "<what> - <kind>"; the kind is noise here.
        let error = e.to_string();
        let what = error.split(" - ").next().unwrap_or("unreadable");
        format!("is not a usable Redis URL ({what}): {USE}")
    })
}

/// `redis_password = { env = "VAR" }` (or `file`, or `value`): the password
/// kept out of the URL. `Some(None)` when absent; `None` when invalid.
fn parse_redis_password(
    s: &mut Section<'_>,
    env: &dyn Env,
    errors: &mut ConfigErrors,
) -> Option<Option<String>> {
    let key = s.key("redis_password");
    let Some(mut entry) = s.table("redis_password", errors) else {
        return if s.has("redis_password") {
            None
        } else {
            Some(None)
        };
    };
    let source = read_source(&mut entry, errors);
    entry.finish(errors);
    let bytes = source?
        .resolve(env)
        .map_err(|message| errors.push(key.as_str(), message))
        .ok()?;
    match String::from_utf8(bytes) {
        Ok(password) => Some(Some(password)),
        Err(_) => {
            errors.push(key, "the password is not UTF-8 text");
            None
        }
    }
}

/// Key prefixes are printable ASCII without spaces, so that keys read well
/// in `redis-cli` and cannot smuggle protocol bytes into logs.
fn check_key_prefix(prefix: &str) -> Result<&str, String> {
    if prefix.len() > 64 {
        return Err(format!(
            "is {} bytes long; use at most 64 (it is stored in every key)",
            prefix.len()
        ));
    }
    if !prefix.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "{prefix:?} has spaces or non-ASCII characters; use printable ASCII, e.g. \"hookguard:\""
        ));
    }
    Ok(prefix)
}

fn parse_route(
    mut s: Section<'_>,
    default_max_body: u64,
    env: &dyn Env,
    errors: &mut ConfigErrors,
) -> Option<Route> {
    let name = match s.string("name", errors) {
        Some(name) => check_route_name(name)
            .map_err(|m| errors.push(s.key("name"), m))
            .ok()
            .map(str::to_owned),
        None => {
            if !s.has("name") {
                errors.push(s.key("name"), "missing: every route needs a unique name");
            }
            None
        }
    };
    let path = match s.string("path", errors) {
        Some(path) => parse_path(path)
            .map_err(|m| errors.push(s.key("path"), m))
            .ok(),
        None => {
            if !s.has("path") {
                errors.push(s.key("path"), "missing: e.g. \"/webhooks/stripe\"");
            }
            None
        }
    };
    let methods = parse_methods(&mut s, errors);
    let scheme = scheme::parse(&mut s, env, errors);
    let tolerance = s.duration("tolerance", errors).unwrap_or_else(|| {
        scheme.as_ref().map_or(Duration::from_secs(300), |scheme| {
            scheme.default_tolerance()
        })
    });
    // Only a route's own zero is its error; a zero server default is
    // reported once, under server.max_body.
    let max_body = s.size("max_body", errors);
    if max_body == Some(0) {
        errors.push(s.key("max_body"), "must be greater than 0");
    }
    let max_body = max_body.unwrap_or(default_max_body);
    let dedupe = parse_dedupe(&mut s, errors).unwrap_or_else(|| {
        scheme.as_ref().map_or_else(
            || vec![DedupeSource::Signature],
            |scheme| scheme.default_dedupe(),
        )
    });
    let dedupe_ttl = s
        .duration("dedupe_ttl", errors)
        .unwrap_or(Duration::from_secs(24 * 3600));
    if dedupe_ttl.is_zero() {
        errors.push(s.key("dedupe_ttl"), "must be greater than 0");
    }
    let enforce = s.boolean("enforce", errors).unwrap_or(true);
    let rate_limit = parse_rate_limit(&mut s, errors);
    let allow_ips = cidr_list(&mut s, "allow_ips", errors).unwrap_or_default();
    let content_types = parse_content_types(&mut s, errors);
    s.finish(errors);

    let (name, path, methods, scheme) = (name?, path?, methods?, scheme?);
    let verified_values = scheme
        .key_ids()
        .iter()
        .map(|key| {
            HeaderValue::from_str(&format!(
                "hookguard; route={name}; scheme={}; key={key}",
                scheme.name(),
            ))
            .expect("route names and secret ids are validated as header-safe")
        })
        .collect();
    let delivery_header = dedupe
        .iter()
        .find_map(|source| match source {
            DedupeSource::Header(name) => Some(name.clone()),
            _ => None,
        })
        .or_else(|| scheme.delivery_header().cloned());
    let allow_text: Vec<&str> = methods.iter().map(Method::as_str).collect();
    let allow =
        HeaderValue::from_str(&allow_text.join(", ")).expect("method names are header-safe");
    Some(Route {
        name,
        path,
        methods,
        allow,
        scheme,
        tolerance,
        max_body,
        dedupe,
        dedupe_ttl,
        verified_values,
        delivery_header,
        enforce,
        rate_limit,
        allow_ips,
        content_types,
    })
}

/// `rate_limit = { requests_per_second = 50, burst = 100 }`; burst defaults
/// to the rate.
fn parse_rate_limit(s: &mut Section<'_>, errors: &mut ConfigErrors) -> Option<RateLimit> {
    let mut t = s.table("rate_limit", errors)?;
    let positive = |t: &mut Section<'_>, key: &str, errors: &mut ConfigErrors| {
        let n = t.unsigned(key, errors)?;
        match u32::try_from(n).ok().and_then(std::num::NonZeroU32::new) {
            Some(n) => Some(n),
            None => {
                errors.push(
                    t.key(key),
                    format!("{n} is out of range: use 1 to {}", u32::MAX),
                );
                None
            }
        }
    };
    let rate = positive(&mut t, "requests_per_second", errors);
    if !t.has("requests_per_second") {
        errors.push(t.key("requests_per_second"), "missing: e.g. 50");
    }
    let burst = positive(&mut t, "burst", errors);
    let had_burst = t.has("burst");
    t.finish(errors);
    let rate = rate?;
    let burst = if had_burst { burst? } else { rate };
    let quota = governor::Quota::per_second(rate).allow_burst(burst);
    Some(RateLimit {
        requests_per_second: rate,
        burst,
        limiter: governor::RateLimiter::direct(quota),
    })
}

/// `content_types = ["application/json"]`: media types without parameters.
fn parse_content_types(s: &mut Section<'_>, errors: &mut ConfigErrors) -> Vec<String> {
    let Some(list) = s.strings("content_types", errors) else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(list.len());
    for (i, text) in list.iter().enumerate() {
        let media = text.trim().to_ascii_lowercase();
        let valid = media.split_once('/').is_some_and(|(kind, sub)| {
            !kind.is_empty()
                && !sub.is_empty()
                && media
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"/.+-_".contains(&b))
        });
        if valid {
            out.push(media);
        } else {
            errors.push(
                format!("{}[{i}]", s.key("content_types")),
                format!(
                    "{text:?} is not a media type such as \"application/json\" (no parameters)"
                ),
            );
        }
    }
    if list.is_empty() {
        errors.push(
            s.key("content_types"),
            "is empty: leave it out to accept any type",
        );
    }
    out
}

/// Route names and key ids end up in metric labels and in a header the app
/// parses, so they are kept to a conservative alphabet.
pub(crate) fn is_label_safe(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 64
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn check_route_name(name: &str) -> Result<&str, String> {
    if name == UNMATCHED_ROUTE {
        return Err(format!(
            "{name:?} is reserved for requests no route matches"
        ));
    }
    if !is_label_safe(name) {
        return Err(format!(
            "{name:?} must be 1 to 64 characters of letters, digits, '-', '_' or '.'"
        ));
    }
    Ok(name)
}

fn parse_path(text: &str) -> Result<PathPattern, String> {
    if !text.starts_with('/') {
        return Err(format!("{text:?} must start with \"/\""));
    }
    if let Some(prefix) = text.strip_suffix("/*") {
        if prefix.contains('*') {
            return Err(format!("{text:?}: '*' is only allowed as a final \"/*\""));
        }
        return Ok(PathPattern::Prefix(format!("{prefix}/")));
    }
    if text.contains('*') {
        return Err(format!(
            "{text:?}: '*' is only allowed as a final \"/*\" (prefix match)"
        ));
    }
    if text.contains('?') || text.contains('#') {
        return Err(format!(
            "{text:?}: a route path cannot contain a query or fragment"
        ));
    }
    Ok(PathPattern::Exact(text.to_owned()))
}

fn parse_methods(s: &mut Section<'_>, errors: &mut ConfigErrors) -> Option<Vec<Method>> {
    let Some(list) = s.strings("methods", errors) else {
        return if s.has("methods") {
            None
        } else {
            Some(vec![Method::POST])
        };
    };
    if list.is_empty() {
        errors.push(
            s.key("methods"),
            "must list at least one method, e.g. [\"POST\"]",
        );
        return None;
    }
    let mut methods = Vec::new();
    let mut ok = true;
    for (i, text) in list.iter().enumerate() {
        let upper = text.to_ascii_uppercase();
        match Method::from_bytes(upper.as_bytes()) {
            Ok(m) if !methods.contains(&m) => methods.push(m),
            Ok(_) => {
                errors.push(
                    format!("{}[{i}]", s.key("methods")),
                    format!("{text:?} is listed twice"),
                );
                ok = false;
            }
            Err(_) => {
                errors.push(
                    format!("{}[{i}]", s.key("methods")),
                    format!("{text:?} is not an HTTP method"),
                );
                ok = false;
            }
        }
    }
    ok.then_some(methods)
}

/// The route's own `dedupe` list; `None` when it has none (the scheme's
/// default applies).
fn parse_dedupe(s: &mut Section<'_>, errors: &mut ConfigErrors) -> Option<Vec<DedupeSource>> {
    let list = s.strings("dedupe", errors)?;
    let mut out = Vec::new();
    for (i, text) in list.iter().enumerate() {
        let key = format!("{}[{i}]", s.key("dedupe"));
        match DedupeSource::parse(text) {
            Ok(source) if out.contains(&source) => {
                errors.push(key, format!("{text:?} is listed twice"))
            }
            Ok(source) => out.push(source),
            Err(m) => errors.push(key, m),
        }
    }
    Some(out)
}

/// `routes` pairs each valid route with its index in the file.
fn check_unique_routes(routes: &[(usize, Route)], errors: &mut ConfigErrors) {
    let mut names = HashSet::new();
    let mut paths = HashSet::new();
    for (i, route) in routes {
        if !names.insert(route.name.as_str()) {
            errors.push(
                format!("routes[{i}].name"),
                format!("{:?} is used by an earlier route", route.name),
            );
        }
        if !paths.insert(route.path.to_string()) {
            errors.push(
                format!("routes[{i}].path"),
                format!("{:?} is used by an earlier route", route.path.to_string()),
            );
        }
    }
}
