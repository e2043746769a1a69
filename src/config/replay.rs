//! `[replay]`: which store remembers dedupe keys, and for a shared Redis,
//! where it is, its password, the key prefix and what a request does when it
//! cannot answer.

use std::time::Duration;

use super::reader::{ConfigErrors, Section};
use super::secrets::{read_source, SourceReader};
use super::{OnStoreError, RedisReplay, Replay, Snapshot, StoreKind};

const DEFAULT_MAX_ENTRIES: u64 = 1_000_000;

/// Keys of `[replay]` that only the memory store reads.
const MEMORY_ONLY_KEYS: &[&str] = &["max_entries", "snapshot_path", "snapshot_interval"];

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

/// Remembered answers up to this size by default: an idempotency-key
/// client's answer is a small JSON object.
const DEFAULT_MAX_ANSWER_BYTES: u64 = 4 * 1024;

/// The largest remembered answer allowed; past this, the memory a key costs
/// is the answer's, not the key's.
const MAX_ANSWER_BYTES: u64 = 64 * 1024;

/// How often the memory store's snapshot is written by default.
const DEFAULT_SNAPSHOT_INTERVAL: Duration = Duration::from_secs(30);

/// `[replay]` when the file has none: the in-memory store.
pub(super) fn absent() -> Replay {
    Replay {
        store: StoreKind::Memory,
        max_entries: DEFAULT_MAX_ENTRIES,
        max_answer_bytes: DEFAULT_MAX_ANSWER_BYTES as usize,
        snapshot: None,
    }
}

/// Validates `[replay]`; `None` after recording errors.
pub(super) fn parse(
    mut s: Section<'_>,
    sources: &mut SourceReader<'_>,
    errors: &mut ConfigErrors,
) -> Option<Replay> {
    let kind = match s.choice("store", &["memory", "redis"], errors) {
        None if s.has("store") => None,
        None => Some("memory"),
        chosen => chosen,
    };
    let max_entries = s.unsigned("max_entries", errors);
    if max_entries == Some(0) {
        errors.push(s.key("max_entries"), "must be greater than 0");
    }
    let max_answer_bytes = match s.size("max_answer_bytes", errors) {
        Some(n) if n > MAX_ANSWER_BYTES => {
            errors.push(
                s.key("max_answer_bytes"),
                format!("{n} is over the limit of {MAX_ANSWER_BYTES} bytes (64KiB)"),
            );
            DEFAULT_MAX_ANSWER_BYTES
        }
        Some(n) => n,
        None => DEFAULT_MAX_ANSWER_BYTES,
    };
    let snapshot_path = s
        .string("snapshot_path", errors)
        .map(std::path::PathBuf::from);
    if snapshot_path
        .as_ref()
        .is_some_and(|p| p.as_os_str().is_empty())
    {
        errors.push(s.key("snapshot_path"), "must not be empty");
    }
    let snapshot_interval = s.positive_duration(
        "snapshot_interval",
        DEFAULT_SNAPSHOT_INTERVAL.as_secs(),
        errors,
    );
    if s.has("snapshot_interval") && snapshot_path.is_none() && !s.has("snapshot_path") {
        errors.push(
            s.key("snapshot_interval"),
            "applies only with snapshot_path (where the memory store's keys are written)",
        );
    }
    // Every key is read (and type-checked) whatever the store, so that one
    // pass reports everything; which keys belong to which store comes after.
    let url = s
        .string("redis_url", errors)
        .map(|text| s.checked("redis_url", parse_redis_url(text), errors));
    let password = parse_redis_password(&mut s, sources, errors);
    let key_prefix = s
        .string("key_prefix", errors)
        .and_then(|prefix| s.checked("key_prefix", check_key_prefix(prefix), errors));
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
    let present: Vec<&str> = ["redis_url"]
        .iter()
        .chain(MEMORY_ONLY_KEYS)
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
            for name in ["snapshot_path", "snapshot_interval"] {
                if present.contains(&name) {
                    errors.push(
                        key(name),
                        "applies only to store = \"memory\"; Redis keeps its keys across hookguard restarts itself",
                    );
                }
            }
            if !present.contains(&"redis_url") {
                errors.push(
                    key("redis_url"),
                    "missing: store = \"redis\" needs the server's address, e.g. \"redis://redis.default.svc:6379/0\"",
                );
            }
            let connection = with_password(url??, password?, &key("redis_password"), errors)?;
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
    let snapshot = match (&store, snapshot_path) {
        (StoreKind::Memory, Some(path)) => Some(Snapshot {
            path,
            interval: snapshot_interval,
        }),
        _ => None,
    };
    Some(Replay {
        store,
        max_entries: max_entries.unwrap_or(DEFAULT_MAX_ENTRIES),
        // At most 64 KiB, checked above.
        max_answer_bytes: max_answer_bytes as usize,
        snapshot,
    })
}

/// Validates `redis_url`. The value is never echoed: it may hold a password.
pub(super) fn parse_redis_url(text: &str) -> Result<redis::ConnectionInfo, String> {
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
pub(super) fn parse_redis_password(
    s: &mut Section<'_>,
    sources: &mut SourceReader<'_>,
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
    let bytes = sources
        .resolve(&source?)
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

/// `connection` with `password` (from `redis_password`, named `key`)
/// folded in; `None` after an error when the URL carries one too.
pub(super) fn with_password(
    connection: redis::ConnectionInfo,
    password: Option<String>,
    key: &str,
    errors: &mut ConfigErrors,
) -> Option<redis::ConnectionInfo> {
    let Some(password) = password else {
        return Some(connection);
    };
    if connection.redis_settings().password().is_some() {
        errors.push(
            key,
            "redis_url already carries a password: give it in one place only",
        );
        return None;
    }
    let settings = connection.redis_settings().clone().set_password(password);
    Some(connection.set_redis_settings(settings))
}

/// Key prefixes are printable ASCII without spaces, so that keys read well
/// in `redis-cli` and cannot smuggle protocol bytes into logs.
pub(super) fn check_key_prefix(prefix: &str) -> Result<&str, String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_urls_are_refused_without_echoing_them() {
        let error = parse_redis_url("http://user:hunter2@redis:6379").unwrap_err();
        assert!(
            error.starts_with("is not a redis:// or rediss:// URL"),
            "{error}"
        );
        assert!(!error.contains("hunter2"));
        assert!(parse_redis_url("redis://:hunter2@redis:6379/0").is_ok());
        assert!(parse_redis_url("rediss://redis:6380").is_ok());
    }

    #[test]
    fn key_prefixes_are_short_printable_ascii() {
        assert_eq!(check_key_prefix("hookguard:"), Ok("hookguard:"));
        assert!(check_key_prefix("hook guard:").is_err());
        assert!(check_key_prefix(&"x".repeat(65))
            .unwrap_err()
            .contains("65 bytes"));
    }
}
