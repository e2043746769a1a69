//! `[queue]` and `[routes.delivery]`: where durable routes keep their
//! deliveries, and how each durable route delivers them to the app.
//!
//! A route delivers synchronously (today's behaviour) unless its
//! `[routes.delivery]` says `mode = "durable"`; a durable route needs a
//! `[queue]`. The checks here are the "bad input" list: an empty or
//! unordered `backoff`, a `max_age` shorter than its first step, a `path`
//! hookguard cannot write, a `max_bytes` too small to hold a delivery; a
//! `dedupe_ttl` set shorter than `max_age` only warns (a sender's late
//! retry of an item still queued would then be queued again); an unset one
//! is raised to `max_age`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::reader::{ConfigErrors, Section};
use super::replay;
use super::secrets::SourceReader;
use super::{Durable, Queue, QueueStoreKind, RedisQueue, StatusSet};

/// `max_bytes` unless set: room for ~1.4 million 1 KiB deliveries.
const DEFAULT_MAX_BYTES: u64 = 2 << 30;
/// The smallest `max_bytes` accepted: below this the store's own pages
/// are most of it.
pub(super) const MIN_MAX_BYTES: u64 = 1 << 20;
const DEFAULT_RETAIN_DEAD: Duration = Duration::from_secs(30 * 86_400);
const DEFAULT_RETAIN_DELIVERED: Duration = Duration::from_secs(86_400);

/// Keys of `[queue]` that only `store = "redis"` reads.
const REDIS_ONLY_KEYS: [&str; 5] = [
    "redis_url",
    "redis_password",
    "key_prefix",
    "store_timeout",
    "accept_redis_risk",
];

/// The queue's keys start with this unless `key_prefix` says otherwise:
/// apart from the replay store's `hookguard:` strings (those are
/// `hookguard:` and hex digits only), so one database can hold both.
const DEFAULT_KEY_PREFIX: &str = "hookguard:queue:";

/// `store_timeout` unless set: an enqueue waits for Redis to write its
/// append-only file (`appendfsync always`), so more than the replay
/// store's lookups.
const DEFAULT_STORE_TIMEOUT: Duration = Duration::from_secs(2);

/// Validates `[queue]`; `None` after recording errors.
pub(super) fn parse(
    mut s: Section<'_>,
    sources: &mut SourceReader<'_>,
    errors: &mut ConfigErrors,
) -> Option<Queue> {
    let kind = match s.choice("store", &["embedded", "redis"], errors) {
        None if s.has("store") => None,
        None => Some("embedded"),
        chosen => chosen,
    };
    let path = s.string("path", errors).map(PathBuf::from);
    let max_bytes = s.size("max_bytes", errors).unwrap_or(DEFAULT_MAX_BYTES);
    if max_bytes < MIN_MAX_BYTES {
        errors.push(
            s.key("max_bytes"),
            format!("{max_bytes} bytes is too small: the queue needs at least 1MiB ({MIN_MAX_BYTES} bytes)"),
        );
    }
    let retain_dead = s.positive_duration("retain_dead", DEFAULT_RETAIN_DEAD.as_secs(), errors);
    let retain_delivered = s.positive_duration(
        "retain_delivered",
        DEFAULT_RETAIN_DELIVERED.as_secs(),
        errors,
    );
    // Every key is read (and type-checked) whatever the store, so that one
    // pass reports everything; which keys belong to which store comes after.
    let url = s
        .string("redis_url", errors)
        .map(|text| s.checked("redis_url", replay::parse_redis_url(text), errors));
    let password = replay::parse_redis_password(&mut s, sources, errors);
    let key_prefix = s
        .string("key_prefix", errors)
        .and_then(|prefix| s.checked("key_prefix", replay::check_key_prefix(prefix), errors));
    let store_timeout = s.duration("store_timeout", errors);
    match store_timeout {
        Some(t) if t.is_zero() => errors.push(s.key("store_timeout"), "must be greater than 0"),
        Some(t) if t > Duration::from_secs(30) => errors.push(
            s.key("store_timeout"),
            "must be at most 30s: a sender waits this long for its answer",
        ),
        _ => {}
    }
    let accept_redis_risk = s.boolean("accept_redis_risk", errors).unwrap_or(false);
    let present: Vec<&str> = REDIS_ONLY_KEYS
        .into_iter()
        .chain(["path"])
        .filter(|key| s.has(key))
        .collect();
    let path_key = s.key("path");
    let key = |name: &str| s.key(name);
    let keys: Vec<(&str, String)> = REDIS_ONLY_KEYS.iter().map(|k| (*k, key(k))).collect();
    s.finish(errors);
    let store = match kind? {
        "redis" => {
            if present.contains(&"path") {
                errors.push(
                    path_key,
                    "applies only to store = \"embedded\"; a Redis queue is kept by Redis",
                );
            }
            if !present.contains(&"redis_url") {
                errors.push(
                    keys[0].1.clone(),
                    "missing: store = \"redis\" needs the server's address, e.g. \"redis://redis.default.svc:6379/0\" (it may be the replay store's)",
                );
            }
            let connection = replay::with_password(url??, password?, &keys[1].1, errors)?;
            QueueStoreKind::Redis(Box::new(RedisQueue {
                connection,
                key_prefix: key_prefix.unwrap_or(DEFAULT_KEY_PREFIX).to_owned(),
                store_timeout: store_timeout.unwrap_or(DEFAULT_STORE_TIMEOUT),
                accept_redis_risk,
            }))
        }
        _ => {
            for (name, at) in &keys {
                if present.contains(name) {
                    errors.push(at.clone(), "applies only to store = \"redis\"");
                }
            }
            let Some(path) = path else {
                errors.push(
                    path_key,
                    "missing: store = \"embedded\" needs the file to keep deliveries in, e.g. \"/var/lib/hookguard/queue.db\" (on a ReadWriteOnce volume, never NFS)",
                );
                return None;
            };
            if let Err(message) = writable_file(&path) {
                errors.push(path_key, message);
                return None;
            }
            QueueStoreKind::Embedded(path)
        }
    };
    Some(Queue {
        store,
        max_bytes,
        retain_dead,
        retain_delivered,
    })
}

/// Whether hookguard can create (or open for writing) the store's file:
/// its directory must exist and take a new file, and the file, if there,
/// must be a file.
fn writable_file(path: &Path) -> Result<(), String> {
    let shown = path.display();
    if path.as_os_str().is_empty() {
        return Err("must not be empty".into());
    }
    if let Ok(meta) = std::fs::metadata(path) {
        if !meta.is_file() {
            return Err(format!("{shown} exists and is not a file"));
        }
        if meta.permissions().readonly() {
            return Err(format!("{shown} is read-only"));
        }
    }
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    super::server::writable_dir(dir).map_err(|message| format!("{message} (the queue's directory)"))
}

/// The defaults of `[routes.delivery]`, as the example.
const DEFAULT_BACKOFF: [u64; 4] = [10, 30, 60, 120];
const DEFAULT_MAX_AGE: Duration = Duration::from_secs(72 * 3600);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_CONCURRENCY: usize = 8;

/// Statuses that say "not now" rather than "never": they pause the route
/// (429) or are retried (408, 409, 425), so `dead_on` may not name them;
/// nor 502/503/504, which pause the route.
const NEVER_DEAD: [u16; 7] = [408, 409, 425, 429, 502, 503, 504];

/// Keys of `[routes.delivery]` that only `mode = "durable"` reads.
const DURABLE_KEYS: [&str; 6] = [
    "backoff",
    "max_age",
    "max_attempts",
    "timeout",
    "concurrency",
    "dead_on",
];

/// Validates a route's `[routes.delivery]`: `None` for synchronous
/// delivery (the default), the durable settings otherwise. Errors are
/// recorded under the route's own path. `dedupe_ttl` is the route's when
/// the file sets one (an unset one follows `max_age`, see `route`).
pub(super) fn parse_delivery(
    mut s: Section<'_>,
    dedupe_ttl: Option<Duration>,
    errors: &mut ConfigErrors,
) -> Option<Durable> {
    let durable = s.choice("mode", &["sync", "durable"], errors) == Some("durable");
    let backoff = parse_backoff(&mut s, errors);
    let max_age = s.positive_duration("max_age", DEFAULT_MAX_AGE.as_secs(), errors);
    let max_attempts = match s.unsigned("max_attempts", errors) {
        Some(n) => match u32::try_from(n) {
            Ok(n) => n,
            Err(_) => {
                errors.push(s.key("max_attempts"), format!("{n} is too large"));
                0
            }
        },
        None => 0,
    };
    let timeout = s.positive_duration("timeout", DEFAULT_TIMEOUT.as_secs(), errors);
    let concurrency = s.bounded("concurrency", DEFAULT_CONCURRENCY, 1..=1024, errors);
    let dead_on = parse_dead_on(&mut s, errors);
    if let Some(first) = backoff.first() {
        if max_age < *first {
            errors.push(
                s.key("max_age"),
                format!(
                    "{} s is shorter than the first backoff step ({} s): an item would be dead before its first retry",
                    max_age.as_secs(),
                    first.as_secs()
                ),
            );
        }
    }
    let present: Vec<&str> = DURABLE_KEYS.into_iter().filter(|k| s.has(k)).collect();
    if !durable {
        for key in present {
            errors.push(s.key(key), "applies only to mode = \"durable\"");
        }
        s.finish(errors);
        return None;
    }
    if let Some(dedupe_ttl) = dedupe_ttl.filter(|ttl| *ttl < max_age) {
        tracing::warn!(
            key = %s.key("max_age"),
            dedupe_ttl_s = dedupe_ttl.as_secs(),
            max_age_s = max_age.as_secs(),
            "dedupe_ttl is shorter than delivery.max_age: a sender's retry of a delivery still queued after dedupe_ttl is queued again"
        );
    }
    s.finish(errors);
    Some(Durable {
        backoff,
        max_age,
        max_attempts,
        timeout,
        concurrency,
        dead_on,
    })
}

/// `backoff = ["10s", "30s", "1m", "2m"]`: each step positive, none
/// shorter than the one before (the last repeats).
fn parse_backoff(s: &mut Section<'_>, errors: &mut ConfigErrors) -> Vec<Duration> {
    let key = s.key("backoff");
    let Some(list) = s.strings("backoff", errors) else {
        return DEFAULT_BACKOFF.map(Duration::from_secs).to_vec();
    };
    if list.is_empty() {
        errors.push(
            key.clone(),
            "must not be empty: give the waits between attempts, e.g. [\"10s\", \"30s\", \"1m\", \"2m\"] (the last repeats)",
        );
    }
    let mut steps = Vec::with_capacity(list.len());
    for (i, text) in list.iter().enumerate() {
        match super::units::parse_duration(text) {
            Ok(step) if step.is_zero() => {
                errors.push(format!("{key}[{i}]"), "must be greater than 0")
            }
            Ok(step) => {
                if let Some(previous) = steps.last().filter(|p| step < **p) {
                    errors.push(
                        format!("{key}[{i}]"),
                        format!(
                            "{text:?} is shorter than the step before it ({} ms): steps must not decrease",
                            Duration::as_millis(previous)
                        ),
                    );
                }
                steps.push(step);
            }
            Err(message) => errors.push(format!("{key}[{i}]"), message),
        }
    }
    steps
}

/// `dead_on = ["4xx"]`: the app's answers that make an item dead at once.
/// Defaults to every 4xx but 408, 409, 425 and 429 (those are retried or
/// pause the route); a class given here has those taken out again.
fn parse_dead_on(s: &mut Section<'_>, errors: &mut ConfigErrors) -> StatusSet {
    let key = s.key("dead_on");
    let list = s.strings("dead_on", errors).unwrap_or_else(|| vec!["4xx"]);
    let mut set = StatusSet::empty();
    for (i, text) in list.iter().enumerate() {
        if !(text.starts_with('4') || text.starts_with('5')) {
            errors.push(
                format!("{key}[{i}]"),
                format!("{text:?} is not a 4xx or 5xx status or class: only refusals can make an item dead"),
            );
            continue;
        }
        let exact = text.parse::<u16>().ok();
        if let Some(code) = exact.filter(|c| NEVER_DEAD.contains(c)) {
            errors.push(
                format!("{key}[{i}]"),
                format!("{code} says \"not now\": it is retried (408, 409, 425) or pauses the route (429, 502, 503, 504)"),
            );
            continue;
        }
        if let Err(message) = set.add(text) {
            errors.push(format!("{key}[{i}]"), message);
        }
    }
    set.remove(&NEVER_DEAD);
    set
}

/// Durable routes need a `[queue]` (errors under each such route's
/// `delivery.mode`), and the queue must hold one delivery of each at its
/// largest (`max_body`). `has_table` says whether the file had a `[queue]`
/// (an invalid one is reported already).
pub(super) fn check_durable_routes(
    has_table: bool,
    queue: Option<&Queue>,
    routes: &[(usize, super::Route)],
    errors: &mut ConfigErrors,
) {
    for (index, route) in routes {
        if route.delivery.is_none() {
            continue;
        }
        let at = format!("routes[{index}] ({:?}).delivery", route.name);
        match queue {
            None if !has_table => errors.push(
                format!("{at}.mode"),
                "durable delivery needs a [queue] table saying where deliveries are kept, e.g. store = \"embedded\", path = \"/var/lib/hookguard/queue.db\"",
            ),
            Some(queue) if queue.max_bytes < route.max_body => errors.push(
                "queue.max_bytes",
                format!(
                    "{} bytes cannot hold one delivery of route {:?}, whose max_body is {} bytes",
                    queue.max_bytes, route.name, route.max_body
                ),
            ),
            _ => {}
        }
    }
}
