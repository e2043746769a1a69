//! Measures what each replay store costs per remembered delivery key, the
//! figures the README quotes: the in-memory store's resident memory and a
//! real Redis's `used_memory`, each before and after filling it with
//! completed deliveries, first without remembered answers, then with a
//! 1 KiB answer per delivery (`duplicate_answer = "original"`).
//!
//! `cargo run --release --example replay_memory [MEMORY_KEYS] [REDIS_KEYS]
//! [ANSWERED_KEYS]` (defaults 1,000,000, 200,000 and 100,000). The memory
//! store with answers is measured in a child process of this example, so
//! that the first measurement's freed memory (which the allocator may keep)
//! does not hide the second's growth. The Redis half starts its own
//! `redis-server` on a free loopback port, without persistence, and is
//! skipped with a message where `redis-server` is not installed.
//! `bench/run.sh` prints every figure.

use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hookguard::config::{OnStoreError, RedisReplay};
use hookguard::replay::memory::MemoryStore;
use hookguard::replay::redis::RedisStore;
use hookguard::replay::{ClaimResult, Key, ReplayStore, StoredAnswer};
use http::{HeaderValue, StatusCode};
use redis::aio::MultiplexedConnection;

/// Long enough that nothing expires while it is measured.
const TTL: Duration = Duration::from_secs(24 * 3600);

/// The body size of the remembered answers measured.
const ANSWER_BYTES: usize = 1024;

/// Set (to the number of keys) in the child process that measures the
/// memory store with answers.
const CHILD: &str = "REPLAY_MEMORY_ANSWERED_KEYS";

/// Concurrent claims against Redis: one at a time would measure the round
/// trip, not the memory, and take minutes.
const REDIS_WORKERS: u64 = 32;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    if let Some(keys) = std::env::var(CHILD).ok().and_then(|n| n.parse().ok()) {
        return finish(measure_memory(keys, true).await);
    }
    let mut args = std::env::args().skip(1);
    let mut count = |default: u64| args.next().and_then(|n| n.parse().ok()).unwrap_or(default);
    let (memory_keys, redis_keys, answered_keys) =
        (count(1_000_000), count(200_000), count(100_000));
    let measured = async {
        measure_memory(memory_keys, false).await?;
        measure_in_child(answered_keys)?;
        measure_redis(redis_keys, answered_keys).await
    };
    finish(measured.await)
}

/// The exit code for a measurement's outcome, saying why it failed.
fn finish(measured: Result<(), String>) -> ExitCode {
    match measured {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("replay_memory: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Key `n`. Its high 64 bits, which pick the memory store's shard, are
/// spread by a multiplicative hash, as a real key's (a truncated SHA-256)
/// are.
fn key(n: u64) -> Key {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&n.to_le_bytes());
    key[8..].copy_from_slice(&(n.wrapping_mul(0x9e37_79b9_7f4a_7c15)).to_le_bytes());
    key
}

/// A fresh answer with a body of its own, as each delivery's would be.
fn answer() -> StoredAnswer {
    StoredAnswer::new(
        StatusCode::OK,
        Some(HeaderValue::from_static("application/json")),
        Bytes::from(vec![b'x'; ANSWER_BYTES]),
    )
    .expect("a short content type is kept")
}

/// Claims and completes key `n`, as a delivery the app took, remembering
/// a 1 KiB answer when `answered`.
async fn deliver(store: &dyn ReplayStore, n: u64, answered: bool) -> Result<(), String> {
    match store.claim(vec![key(n)], TTL).await {
        Ok(ClaimResult::Claimed(claim)) => store
            .complete(&claim, answered.then(answer))
            .await
            .map_err(|e| format!("completing key {n}: {e:?}")),
        other => Err(format!("unique key {n} not claimed: {other:?}")),
    }
}

/// Resident set size in bytes, from /proc (Linux).
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1048576.0
}

/// What a measurement line says about answers.
fn with_answers(answered: bool) -> String {
    if answered {
        format!(" with a {ANSWER_BYTES}-byte answer each")
    } else {
        String::new()
    }
}

async fn measure_memory(entries: u64, answered: bool) -> Result<(), String> {
    let before = rss_bytes();
    let store = MemoryStore::new(entries, Arc::new(|_| {}));
    for n in 0..entries {
        deliver(&store, n, answered).await?;
    }
    let held = store.entries();
    let after = rss_bytes();
    let per_entry = (after.saturating_sub(before)) as f64 / held.max(1) as f64;
    println!(
        "replay store: {held} entries{}, resident memory {:.1} MiB -> {:.1} MiB, {per_entry:.0} bytes per entry",
        with_answers(answered),
        mib(before),
        mib(after)
    );
    Ok(())
}

/// Runs this example again to measure the memory store with answers in a
/// fresh process; its line goes to this one's output.
fn measure_in_child(keys: u64) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this example: {e}"))?;
    let status = Command::new(exe)
        .env(CHILD, keys.to_string())
        .status()
        .map_err(|e| format!("cannot run the measurement with answers: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("the measurement with answers failed ({status})"))
    }
}

/// Fills a fresh Redis with `keys` completed deliveries, then, emptied,
/// with `answered_keys` deliveries with answers, printing each cost.
async fn measure_redis(keys: u64, answered_keys: u64) -> Result<(), String> {
    let Some(server) = RedisServer::start()? else {
        println!("redis store: skipped, redis-server is not installed");
        return Ok(());
    };
    let mut connection = server.connect().await?;
    let url = server.url();
    let settings = RedisReplay {
        connection: redis::IntoConnectionInfo::into_connection_info(url.as_str())
            .map_err(|e| format!("{url}: {e}"))?,
        key_prefix: "hookguard:".to_owned(),
        store_timeout: Duration::from_secs(5),
        on_store_error: OnStoreError::Reject,
    };
    let store = Arc::new(RedisStore::new(
        &settings,
        Duration::from_secs(30),
        Arc::new(|_, _, _| {}),
    ));
    fill_redis(&store, &mut connection, keys, false).await?;
    query::<()>(&mut connection, &mut redis::cmd("FLUSHALL")).await?;
    fill_redis(&store, &mut connection, answered_keys, true).await
}

/// Completes `keys` deliveries in Redis and prints what they cost per
/// delivery key (the answer's own string included).
async fn fill_redis(
    store: &Arc<RedisStore>,
    connection: &mut MultiplexedConnection,
    keys: u64,
    answered: bool,
) -> Result<(), String> {
    let before = used_memory(connection).await?;
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..REDIS_WORKERS {
        let store = store.clone();
        workers.spawn(async move {
            for n in (worker..keys).step_by(REDIS_WORKERS as usize) {
                deliver(store.as_ref(), n, answered).await?;
            }
            Ok::<(), String>(())
        });
    }
    while let Some(done) = workers.join_next().await {
        done.map_err(|e| format!("a worker stopped: {e}"))??;
    }
    let after = used_memory(connection).await?;
    let held: u64 = query(connection, &mut redis::cmd("DBSIZE")).await?;
    // Each delivery here has one dedupe key, plus its answer's string.
    let delivery_keys = if answered { held / 2 } else { held };
    let sample: i64 = query(
        connection,
        redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(format!("hookguard:{}", hex::encode(key(7)))),
    )
    .await?;
    let grown = after.saturating_sub(before);
    println!(
        "redis store: {delivery_keys} keys{}, used_memory {:.1} MiB -> {:.1} MiB, {} bytes per key (MEMORY USAGE of one key: {sample})",
        with_answers(answered),
        mib(before),
        mib(after),
        grown / delivery_keys.max(1)
    );
    Ok(())
}

async fn query<T: redis::FromRedisValue>(
    connection: &mut MultiplexedConnection,
    command: &mut redis::Cmd,
) -> Result<T, String> {
    command
        .query_async(connection)
        .await
        .map_err(|e| format!("redis: {e}"))
}

/// Redis's own count of the bytes it holds (`INFO memory`), which leaves
/// out allocator slack that resident memory would include.
async fn used_memory(connection: &mut MultiplexedConnection) -> Result<u64, String> {
    let info: String = query(connection, redis::cmd("INFO").arg("memory")).await?;
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| "INFO memory has no used_memory".to_owned())
}

/// A `redis-server` of this run's own, killed when dropped.
struct RedisServer {
    port: u16,
    child: Child,
}

impl RedisServer {
    /// Starts one on a free loopback port; `None` when `redis-server` is
    /// not installed.
    fn start() -> Result<Option<RedisServer>, String> {
        // The port is free once the probe is dropped; another process could
        // take it in between, which `connect`'s deadline would report.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|probe| probe.local_addr())
            .map_err(|e| format!("no free loopback port: {e}"))?
            .port();
        let spawned = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(std::env::temp_dir())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        match spawned {
            Ok(child) => Ok(Some(RedisServer { port, child })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("cannot start redis-server: {e}")),
        }
    }

    /// `redis://127.0.0.1:PORT/0`.
    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// A connection, once the server answers PING (it takes a moment to
    /// start listening).
    async fn connect(&self) -> Result<MultiplexedConnection, String> {
        let client = redis::Client::open(self.url()).map_err(|e| format!("redis client: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut connection) = client.get_multiplexed_async_connection().await {
                if query::<String>(&mut connection, &mut redis::cmd("PING"))
                    .await
                    .is_ok()
                {
                    return Ok(connection);
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "redis-server on port {} did not answer PING within 10 s",
                    self.port
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
