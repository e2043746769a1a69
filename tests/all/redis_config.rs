//! `[replay]` with the Redis store, validated through `Config::from_toml`:
//! the defaults, which keys belong to which store, and errors that name
//! their key and never echo a password. No redis-server needed.

use std::time::Duration;

use hookguard::config::{Config, OnStoreError, StoreKind};

/// `[server]` and one valid route around a `[replay]` section.
fn with_replay(replay: &str) -> String {
    format!(
        r#"
[server]
upstream = "http://127.0.0.1:8080"

[replay]
{replay}

[[routes]]
name = "r"
path = "/r"
scheme = "hmac"
secrets = [{{ value = "s" }}]

[routes.hmac]
header = "X-Signature"
"#
    )
}

fn env(name: &str) -> Option<String> {
    (name == "REDIS_PASSWORD").then(|| "from-env".to_owned())
}

fn valid(replay: &str) -> Config {
    Config::from_toml(&with_replay(replay), &env)
        .unwrap_or_else(|e| panic!("expected a valid config, got:\n{e}\n---\n{replay}"))
}

/// Asserts exactly these errors (in any order).
#[track_caller]
fn assert_errors(replay: &str, expected: &[&str]) {
    let mut found: Vec<String> = match Config::from_toml(&with_replay(replay), &env) {
        Ok(config) => panic!("expected errors, got {config:?}"),
        Err(errors) => errors.0.iter().map(ToString::to_string).collect(),
    };
    found.sort();
    let mut expected: Vec<String> = expected.iter().map(|e| (*e).to_owned()).collect();
    expected.sort();
    assert_eq!(found, expected, "[replay] was:\n{replay}");
}

#[test]
fn a_redis_store_needs_only_a_url_and_defaults_the_rest() {
    let config = valid(
        r#"store = "redis"
redis_url = "redis://redis.default.svc:6379/0""#,
    );
    let StoreKind::Redis(redis) = &config.replay.store else {
        panic!("expected the redis store");
    };
    assert_eq!(redis.key_prefix, "hookguard:");
    assert_eq!(redis.store_timeout, Duration::from_millis(250));
    assert_eq!(redis.on_store_error, OnStoreError::Reject);
    assert_eq!(redis.connection.redis_settings().db(), 0);
    assert_eq!(redis.connection.redis_settings().password(), None);
}

#[test]
fn every_redis_key_is_read() {
    let config = valid(
        r#"store = "redis"
redis_url = "rediss://cache.example.com:6380/2"
redis_password = { env = "REDIS_PASSWORD" }
key_prefix = "hg:prod:"
store_timeout = "100ms"
on_store_error = "allow""#,
    );
    let StoreKind::Redis(redis) = &config.replay.store else {
        panic!("expected the redis store");
    };
    assert_eq!(redis.key_prefix, "hg:prod:");
    assert_eq!(redis.store_timeout, Duration::from_millis(100));
    assert_eq!(redis.on_store_error, OnStoreError::Allow);
    assert_eq!(redis.connection.redis_settings().db(), 2);
    assert_eq!(
        redis.connection.redis_settings().password(),
        Some("from-env")
    );
    assert!(matches!(
        redis.connection.addr(),
        redis::ConnectionAddr::TcpTls { host, port: 6380, insecure: false, .. } if host == "cache.example.com"
    ));
    // The config's Debug (logged by `check`) never shows the password.
    assert!(!format!("{config:?}").contains("from-env"));
}

#[test]
fn a_password_in_the_url_is_used_and_never_printed() {
    let config = valid(
        r#"store = "redis"
redis_url = "redis://:pa55word@127.0.0.1:6379""#,
    );
    let StoreKind::Redis(redis) = &config.replay.store else {
        panic!("expected the redis store");
    };
    assert_eq!(
        redis.connection.redis_settings().password(),
        Some("pa55word")
    );
    assert!(!format!("{config:?}").contains("pa55word"));
}

#[test]
fn the_memory_store_stays_the_default() {
    let config = valid("max_entries = 10");
    assert!(matches!(config.replay.store, StoreKind::Memory));
    assert_eq!(config.replay.max_entries, 10);
}

#[test]
fn redis_url_is_required_with_the_redis_store() {
    assert_errors(
        r#"store = "redis""#,
        &[
            r#"replay.redis_url: missing: store = "redis" needs the server's address, e.g. "redis://redis.default.svc:6379/0""#,
        ],
    );
}

#[test]
fn redis_keys_are_refused_with_the_memory_store() {
    assert_errors(
        r#"store = "memory"
redis_url = "redis://127.0.0.1:6379"
redis_password = { value = "x" }
key_prefix = "a:"
store_timeout = "1s"
on_store_error = "allow""#,
        &[
            r#"replay.redis_url: applies only to store = "redis""#,
            r#"replay.redis_password: applies only to store = "redis""#,
            r#"replay.key_prefix: applies only to store = "redis""#,
            r#"replay.store_timeout: applies only to store = "redis""#,
            r#"replay.on_store_error: applies only to store = "redis""#,
        ],
    );
    // No `store` means memory, too.
    assert_errors(
        r#"redis_url = "redis://127.0.0.1:6379""#,
        &[r#"replay.redis_url: applies only to store = "redis""#],
    );
}

#[test]
fn max_entries_is_refused_with_the_redis_store() {
    assert_errors(
        r#"store = "redis"
redis_url = "redis://127.0.0.1:6379"
max_entries = 1000"#,
        &[
            r#"replay.max_entries: applies only to store = "memory"; a Redis store is bounded by Redis's maxmemory"#,
        ],
    );
}

#[test]
fn bad_values_are_all_reported_each_naming_its_key() {
    assert_errors(
        r#"store = "redis"
redis_url = "http://user:secret@127.0.0.1:6379"
key_prefix = "hook guard:"
store_timeout = "0ms"
on_store_error = "maybe"
unknown = 1"#,
        &[
            "replay.redis_url: is not a redis:// or rediss:// URL: use redis://[:PASSWORD@]HOST[:PORT][/DB], or rediss:// for TLS",
            r#"replay.key_prefix: "hook guard:" has spaces or non-ASCII characters; use printable ASCII, e.g. "hookguard:""#,
            "replay.store_timeout: must be greater than 0",
            r#"replay.on_store_error: "maybe" is not one of reject, allow"#,
            "replay.unknown: unknown key",
        ],
    );
    assert_errors(
        r#"store = "redis"
redis_url = "redis://:secret@127.0.0.1:6379/notanumber"
store_timeout = "11s""#,
        &[
            "replay.redis_url: is not a usable Redis URL (Invalid database number): use redis://[:PASSWORD@]HOST[:PORT][/DB], or rediss:// for TLS",
            "replay.store_timeout: must be at most 10s: requests wait this long for the store",
        ],
    );
    assert_errors(
        r#"store = "valkey""#,
        &[r#"replay.store: "valkey" is not one of memory, redis"#],
    );
}

#[test]
fn redis_password_comes_from_exactly_one_source_and_one_place() {
    assert_errors(
        r#"store = "redis"
redis_url = "redis://127.0.0.1:6379"
redis_password = { env = "UNSET_VAR" }"#,
        &["replay.redis_password: environment variable UNSET_VAR is not set"],
    );
    assert_errors(
        r#"store = "redis"
redis_url = "redis://127.0.0.1:6379"
redis_password = { env = "REDIS_PASSWORD", value = "x" }"#,
        &[
            r#"replay.redis_password: give exactly one of env = "VAR", file = "/path" or value = "...""#,
        ],
    );
    assert_errors(
        r#"store = "redis"
redis_url = "redis://:inline@127.0.0.1:6379"
redis_password = { env = "REDIS_PASSWORD" }"#,
        &["replay.redis_password: redis_url already carries a password: give it in one place only"],
    );
    assert_errors(
        r#"store = "redis"
redis_url = "redis://127.0.0.1:6379"
redis_password = "plain""#,
        &["replay.redis_password: expected a table, found a string"],
    );
}
