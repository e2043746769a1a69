//! The shared replay store on Redis (or Valkey), for apps with several
//! replicas.
//!
//! Each dedupe key is one Redis string, `<key_prefix><32 hex digits>`. While
//! a delivery is being forwarded the string holds the claim's token (this
//! process's random 64-bit id and a per-claim counter, so no two claims
//! anywhere share one); once the app took the delivery it holds `COMPLETED`.
//! Every string carries a TTL, so Redis forgets keys on its own.
//!
//! A request with one dedupe key (the usual case) is claimed with one
//! native command, `SET key token NX PX lease GET` (Redis 7.0 or later, which the
//! health check reads from `INFO server`; until then, and against an older
//! server, the script below), and completed with a plain `SET key done PX ttl`: Redis runs a Lua
//! script several times slower than a native command, and the two scripts
//! cost Redis more CPU than the rest of a request cost hookguard. The plain
//! completion also marks the key if another claim took it meanwhile (the
//! lease ran out, or an operator's `forget`): the app did take this
//! delivery, so `done` is the truth, and the other claim's own settle
//! leaves a key that no longer holds its token alone.
//!
//! With several keys, claim, complete and release are each one Lua script, because Redis runs a
//! script atomically: "claim every key or none" needs to look at all keys
//! before writing any, which neither `SET NX` per key (it would leave some
//! keys taken when a later one is held) nor `MULTI` (it cannot branch on what
//! it reads) can do. Complete and release write only where the key still
//! holds this claim's token, so a late settle never overwrites another
//! replica's claim. A multi-key script needs all its keys on one node: this
//! store is for a single primary (with or without replicas and failover
//! behind one address), not for Redis Cluster.
//!
//! A delivery completed with the app's answer is marked `done:<token>`
//! instead, and the answer ([`StoredAnswer::encode`]) is one more string,
//! `<key_prefix>answer:<token>`, with the same TTL: written once however
//! many keys the delivery has, and fetched by the claim script in the same
//! atomic step that finds the key completed. That script reads a key it was
//! not given in `KEYS`, which Redis allows outside Cluster (not supported
//! anyway, see above). A replica of an older hookguard reads `done:...` as
//! a claim in flight (`in_flight`, which senders retry), never as free.
//!
//! A claim in flight lives for a *lease* (the longest a forward can take,
//! plus margin), not for the dedupe TTL: if a replica dies mid-forward, its
//! keys free themselves and the sender's retry goes through on another
//! replica instead of meeting `in_flight` for a day. Completion restarts the
//! TTL at the route's `dedupe_ttl`.
//!
//! Each thread that serves requests on its own single-threaded runtime (the
//! server's workers) gets its own [`ConnectionManager`] (one multiplexed
//! connection, reconnecting with backoff), made on first use so that its
//! driver task runs on that thread: a command then never wakes another
//! thread and waits to be woken back, which cost about as much CPU as the
//! commands themselves when every worker shared one connection driven on
//! the main runtime. Everything else (admin, health checks) shares one.
//! Each operation is bounded by `store_timeout`. A background check pings every [`HEALTH_INTERVAL`]; it
//! drives [`ReplayStore::healthy`] (and so `/readyz`), and after a few failed
//! pings in a row it replaces the connection manager outright, so that even a
//! connection that hangs silently (a failed-over primary behind the same
//! name) is left behind.

use std::cell::RefCell;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, RedisError};
use tokio::task::JoinHandle;

use super::{Claim, ClaimResult, Key, ReplayStore, StoreError, StoredAnswer};
use crate::config::RedisReplay;

/// The value of a key whose delivery the app took. Tokens are 32 hex
/// digits, so they can never equal it.
const COMPLETED: &str = "done";

/// The start of the value of a key whose delivery the app took and whose
/// answer is remembered; the completing claim's token follows, naming the
/// answer's string.
const ANSWERED: &str = "done:";

/// Between the key prefix and the token in the name of an answer's string;
/// dedupe keys are hex digits only, so the two never meet.
const ANSWER_INFIX: &str = "answer:";

/// How often the background check pings Redis: readiness follows an outage
/// and a recovery within about this plus one `store_timeout`.
pub const HEALTH_INTERVAL: Duration = Duration::from_millis(500);

/// Failed pings in a row after which the connection manager is replaced.
const RENEW_AFTER_FAILED_PINGS: u32 = 3;

/// Added to the longest forward to make the in-flight lease: room for the
/// claim and the settle themselves and for scheduling delays.
const LEASE_MARGIN: Duration = Duration::from_secs(5);

/// Claims every key or none. KEYS: the request's keys, sorted. ARGV: token,
/// lease in ms, the completed marker, the answered marker, the start of an
/// answer's name. Answers `{0, nil}` when claimed; otherwise the state of
/// the first key (in the keys' order) already held: `{1, answer or nil}`
/// completed, `{2, nil}` in flight, as the memory store does.
const CLAIM: &str = r"
for _, key in ipairs(KEYS) do
  local held = redis.call('GET', key)
  if held then
    if held == ARGV[3] then return {1, false} end
    if string.sub(held, 1, #ARGV[4]) == ARGV[4] then
      return {1, redis.call('GET', ARGV[5] .. string.sub(held, #ARGV[4] + 1))}
    end
    return {2, false}
  end
end
for _, key in ipairs(KEYS) do
  redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
end
return {0, false}
";

/// Marks a claim's keys delivered for the dedupe TTL. KEYS: the claim's
/// keys. ARGV: token, the completed marker (`done`, or `done:<token>` with
/// an answer), TTL in ms, and with an answer its string's name and value.
/// A key that expired meanwhile is marked too (the app did take the
/// delivery); a key another claim holds is left to that claim. The answer
/// is written only when some key refers to it.
const COMPLETE: &str = r"
local marked = 0
for _, key in ipairs(KEYS) do
  local held = redis.call('GET', key)
  if not held or held == ARGV[1] then
    redis.call('SET', key, ARGV[2], 'PX', ARGV[3])
    marked = marked + 1
  end
end
if ARGV[4] and marked > 0 then
  redis.call('SET', ARGV[4], ARGV[5], 'PX', ARGV[3])
end
return 0
";

/// Frees a claim's keys where they still hold its token. KEYS: the claim's
/// keys. ARGV: token.
const RELEASE: &str = r"
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    redis.call('DEL', key)
  end
end
return 0
";

/// Removes the keys that hold a completed delivery, with or without an
/// answer; keys in flight stay. KEYS: the keys. ARGV: the completed marker,
/// the answered marker. Answers how many were removed. An answer's string
/// is left to its TTL: other keys of its delivery may still refer to it.
const FORGET: &str = r"
local removed = 0
for _, key in ipairs(KEYS) do
  local held = redis.call('GET', key)
  if held and (held == ARGV[1] or string.sub(held, 1, #ARGV[2]) == ARGV[2]) then
    redis.call('DEL', key)
    removed = removed + 1
  end
end
return removed
";

/// Hears of every store operation: its name (`claim`, `complete`,
/// `release`, `forget`, `ping`), how long it took, and whether it succeeded.
pub type StoreObserver = Arc<dyn Fn(&'static str, Duration, bool) + Send + Sync>;

/// The Redis-backed store.
pub struct RedisStore {
    /// Where to connect; kept to build a fresh connection manager.
    client: redis::Client,
    /// The pooled, reconnecting connection; swapped whole by the health
    /// check when it stops answering.
    connection: ArcSwap<ConnectionManager>,
    /// Whether one-key claims use `SET ... NX GET`: set by the health
    /// check once it has seen a server of Redis 7.0 or later (Valkey
    /// reports a Redis version too).
    native_claim: AtomicBool,
    /// Bumped each time the health check swaps `connection`, so that the
    /// per-thread connections are made afresh too.
    generation: AtomicU64,
    /// Prepended to every key.
    prefix: String,
    /// Bound on every operation.
    timeout: Duration,
    /// How long an unsettled claim holds its keys.
    lease: Duration,
    /// This process's random id, the first half of every token it writes.
    replica: u64,
    /// The second half: a counter, unique within this process.
    next_token: AtomicU64,
    /// The health check's verdict; an operation failing clears it at once.
    healthy: AtomicBool,
    /// Metrics for each operation.
    observe: StoreObserver,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("addr", self.client.get_connection_info().addr())
            .field("prefix", &self.prefix)
            .field("healthy", &self.healthy.load(Ordering::Relaxed))
            .finish()
    }
}

impl RedisStore {
    /// A store on `settings`; `longest_forward` (the upstream timeout) sets
    /// the in-flight lease. Connects lazily: Redis being down at start makes
    /// the store unhealthy, not the process fail. Call [`spawn_health_check`]
    /// to keep [`ReplayStore::healthy`] current.
    pub fn new(settings: &RedisReplay, longest_forward: Duration, observe: StoreObserver) -> Self {
        // Whichever crypto provider rustls finds first would do; installing
        // ring explicitly keeps rediss:// working if another dependency ever
        // enables a second provider. An error means one is installed already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = redis::Client::open(settings.connection.clone())
            .expect("opening a client from parsed connection info does not fail");
        let connection = ArcSwap::from_pointee(manager(&client, settings.store_timeout));
        RedisStore {
            client,
            connection,
            native_claim: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            prefix: settings.key_prefix.clone(),
            timeout: settings.store_timeout,
            lease: longest_forward + 2 * settings.store_timeout + LEASE_MARGIN,
            replica: random_u64(),
            next_token: AtomicU64::new(0),
            healthy: AtomicBool::new(false),
            observe,
        }
    }

    /// The Redis key for a dedupe key.
    fn redis_key(&self, key: &Key) -> String {
        let mut out = String::with_capacity(self.prefix.len() + 2 * key.len());
        out.push_str(&self.prefix);
        out.push_str(&hex::encode(key));
        out
    }

    /// The name of the string holding the answer of the claim whose token
    /// value is `token`.
    fn answer_key(&self, token: &str) -> String {
        format!("{}{ANSWER_INFIX}{token}", self.prefix)
    }

    /// The value a claim writes: unique across replicas and claims.
    fn token_value(&self, token: u64) -> String {
        format!("{:016x}{token:016x}", self.replica)
    }

    /// A handle on the connection to use here (a cheap clone): on a
    /// single-threaded runtime this thread's own, made on first use;
    /// elsewhere the shared one.
    fn connection(&self) -> ConnectionManager {
        let on_own_thread = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread);
        if !on_own_thread {
            return ConnectionManager::clone(&self.connection.load());
        }
        let generation = self.generation.load(Ordering::Acquire);
        THREAD_CONNECTION.with_borrow_mut(|slot| match slot {
            Some((replica, made, connection))
                if *replica == self.replica && *made == generation =>
            {
                connection.clone()
            }
            _ => {
                let connection = manager(&self.client, self.timeout);
                *slot = Some((self.replica, generation, connection.clone()));
                connection
            }
        })
    }

    /// Runs one operation under the timeout, reports it, and turns the
    /// outcome into a [`StoreError`] fit for a sender's eyes (details go to
    /// the debug log).
    async fn run<T>(
        &self,
        op: &'static str,
        operation: impl Future<Output = Result<T, RedisError>>,
    ) -> Result<T, StoreError> {
        let result = timed(op, self.timeout, &self.observe, operation).await;
        if result.is_err() {
            self.healthy.store(false, Ordering::Relaxed);
        }
        result
    }

    /// One health check: a PING; after several failures in a row, a new
    /// connection manager.
    async fn check(&self, failures: &mut u32) {
        let mut connection = self.connection();
        let ping = self
            .run(
                "ping",
                redis::cmd("PING").query_async::<()>(&mut connection),
            )
            .await;
        match ping {
            Ok(()) => {
                if !self.healthy.load(Ordering::Relaxed) {
                    // Before turning ready, so that every claim from then
                    // on takes the same path.
                    self.learn_version(&mut connection).await;
                    tracing::info!("replay store: redis is reachable");
                    self.healthy.store(true, Ordering::Relaxed);
                }
                *failures = 0;
            }
            Err(error) => {
                *failures += 1;
                if *failures == 1 {
                    tracing::warn!(error = %error.0, "replay store: redis is unreachable");
                }
                if failures.is_multiple_of(RENEW_AFTER_FAILED_PINGS) {
                    tracing::debug!("replay store: replacing the redis connection");
                    self.connection
                        .store(Arc::new(manager(&self.client, self.timeout)));
                    self.generation.fetch_add(1, Ordering::Release);
                }
            }
        }
    }

    /// Reads the server's version, to know whether `SET ... NX GET` is
    /// there (after every outage: a failover may land on another version).
    async fn learn_version(&self, connection: &mut ConnectionManager) {
        let info = self
            .run(
                "ping",
                redis::cmd("INFO")
                    .arg("server")
                    .query_async::<String>(connection),
            )
            .await;
        let major = info.ok().and_then(|info| {
            let version = info
                .lines()
                .find_map(|l| l.strip_prefix("redis_version:"))?;
            version.split('.').next()?.trim().parse::<u32>().ok()
        });
        let native = major.is_some_and(|major| major >= 7);
        if !native {
            tracing::info!("replay store: redis is older than 7.0 (or did not say), so one-key claims run a script instead of SET NX GET");
        }
        self.native_claim.store(native, Ordering::Relaxed);
    }

    /// Claims one key with `SET key token NX PX lease GET`, and reads what
    /// holds it if it is taken (a remembered answer with a second command:
    /// only duplicates pay for it).
    async fn claim_one(&self, key: &str, value: &str, ttl: Duration) -> Result<Held, ClaimFailed> {
        let mut command = redis::cmd("SET");
        command
            .arg(key)
            .arg(value)
            .arg("NX")
            .arg("PX")
            .arg(millis(ttl.min(self.lease)))
            .arg("GET");
        let mut connection = self.connection();
        let held = timed(
            "claim",
            self.timeout,
            &self.observe,
            command.query_async::<Option<Vec<u8>>>(&mut connection),
        )
        .await;
        let held = match held {
            Ok(held) => held,
            Err(error) => {
                self.healthy.store(false, Ordering::Relaxed);
                return Err(ClaimFailed(error, connection));
            }
        };
        let Some(held) = held else {
            return Ok(Held::Free);
        };
        if held == COMPLETED.as_bytes() {
            return Ok(Held::Completed(None));
        }
        let Some(token) = held.strip_prefix(ANSWERED.as_bytes()) else {
            return Ok(Held::InFlight);
        };
        let name = self.answer_key(&String::from_utf8_lossy(token));
        let answer = self
            .run(
                "claim",
                redis::cmd("GET")
                    .arg(name)
                    .query_async::<Option<Vec<u8>>>(&mut connection),
            )
            .await
            .map_err(|error| ClaimFailed(error, connection))?;
        Ok(Held::Completed(answer.and_then(|bytes| {
            let decoded = StoredAnswer::decode(&bytes::Bytes::from(bytes));
            if decoded.is_none() {
                tracing::debug!("replay store: a remembered answer could not be read");
            }
            decoded
        })))
    }

    /// Marks one key delivered with plain `SET`s (see the module doc), the
    /// answer first so that whoever finds the key finds its answer.
    async fn complete_one(
        &self,
        key: &str,
        token: &str,
        ttl: Duration,
        answer: Option<StoredAnswer>,
    ) -> Result<(), StoreError> {
        let ttl = millis(ttl);
        let mut connection = self.connection();
        match answer {
            None => {
                let mut command = redis::cmd("SET");
                command.arg(key).arg(COMPLETED).arg("PX").arg(ttl);
                self.run("complete", command.query_async::<()>(&mut connection))
                    .await
            }
            Some(answer) => {
                let mut encoded = Vec::new();
                answer.encode(&mut encoded);
                let mut pipe = redis::pipe();
                pipe.cmd("SET")
                    .arg(self.answer_key(token))
                    .arg(encoded)
                    .arg("PX")
                    .arg(ttl)
                    .ignore()
                    .cmd("SET")
                    .arg(key)
                    .arg(format!("{ANSWERED}{token}"))
                    .arg("PX")
                    .arg(ttl)
                    .ignore();
                self.run("complete", pipe.query_async::<()>(&mut connection))
                    .await
            }
        }
    }

    /// A claim that timed out may still run in Redis after the request gave
    /// up on it (a stalled server catching up); undo it, or the sender's
    /// retry would meet `in_flight` until the lease ends. Commands on one
    /// connection run in order, so this release runs after the claim, on
    /// the same connection, kept open until it is answered or the lease is
    /// over.
    fn undo_unanswered(
        &self,
        error: &StoreError,
        connection: &mut ConnectionManager,
        keys: Vec<String>,
        value: String,
    ) {
        if !error.0.starts_with(NO_ANSWER) {
            return;
        }
        let (lease, observe, mut connection) =
            (self.lease, self.observe.clone(), connection.clone());
        tokio::spawn(async move {
            let _ = timed(
                "release",
                lease,
                &observe,
                release(&mut connection, &keys, &value),
            )
            .await;
        });
    }
}

/// What held a key a one-key claim asked for.
enum Held {
    Free,
    Completed(Option<StoredAnswer>),
    InFlight,
}

/// A one-key claim that failed, with its connection for the undo.
struct ClaimFailed(StoreError, ConnectionManager);

#[async_trait]
impl ReplayStore for RedisStore {
    async fn claim(&self, keys: Vec<Key>, ttl: Duration) -> Result<ClaimResult, StoreError> {
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        let value = self.token_value(token);
        let redis_keys: Vec<String> = keys.iter().map(|k| self.redis_key(k)).collect();
        if redis_keys.len() == 1 && self.native_claim.load(Ordering::Relaxed) {
            return match self.claim_one(&redis_keys[0], &value, ttl).await {
                Ok(Held::Free) => Ok(ClaimResult::Claimed(Claim { keys, token, ttl })),
                Ok(Held::Completed(answer)) => Ok(ClaimResult::Duplicate(answer)),
                Ok(Held::InFlight) => Ok(ClaimResult::InFlight),
                Err(ClaimFailed(error, mut connection)) => {
                    self.undo_unanswered(&error, &mut connection, redis_keys, value);
                    Err(error)
                }
            };
        }
        let mut command = eval(CLAIM, &redis_keys);
        command
            .arg(&value)
            .arg(millis(ttl.min(self.lease)))
            .arg(COMPLETED)
            .arg(ANSWERED)
            .arg(self.answer_key(""));
        let mut connection = self.connection();
        let answer = self
            .run(
                "claim",
                command.query_async::<(i64, Option<Vec<u8>>)>(&mut connection),
            )
            .await;
        match answer {
            Ok((0, _)) => Ok(ClaimResult::Claimed(Claim { keys, token, ttl })),
            Ok((1, answer)) => Ok(ClaimResult::Duplicate(answer.and_then(|bytes| {
                let decoded = StoredAnswer::decode(&bytes::Bytes::from(bytes));
                if decoded.is_none() {
                    tracing::debug!("replay store: a remembered answer could not be read");
                }
                decoded
            }))),
            Ok((2, _)) => Ok(ClaimResult::InFlight),
            Ok((other, _)) => Err(StoreError(format!(
                "the claim script answered {other}, which this version does not know"
            ))),
            Err(error) => {
                self.undo_unanswered(&error, &mut connection, redis_keys, value);
                Err(error)
            }
        }
    }

    async fn complete(
        &self,
        claim: &Claim,
        answer: Option<StoredAnswer>,
    ) -> Result<(), StoreError> {
        let keys: Vec<String> = claim.keys.iter().map(|k| self.redis_key(k)).collect();
        let token = self.token_value(claim.token);
        if let [key] = keys.as_slice() {
            return self.complete_one(key, &token, claim.ttl, answer).await;
        }
        let mut command = eval(COMPLETE, &keys);
        command.arg(&token);
        match answer {
            None => command.arg(COMPLETED).arg(millis(claim.ttl)),
            Some(answer) => {
                let mut encoded = Vec::new();
                answer.encode(&mut encoded);
                command
                    .arg(format!("{ANSWERED}{token}"))
                    .arg(millis(claim.ttl))
                    .arg(self.answer_key(&token))
                    .arg(encoded)
            }
        };
        let mut connection = self.connection();
        self.run("complete", command.query_async::<()>(&mut connection))
            .await
    }

    async fn release(&self, claim: &Claim) -> Result<(), StoreError> {
        let keys: Vec<String> = claim.keys.iter().map(|k| self.redis_key(k)).collect();
        let value = self.token_value(claim.token);
        let mut connection = self.connection();
        self.run("release", release(&mut connection, &keys, &value))
            .await
    }

    async fn forget(&self, keys: &[Key]) -> Result<u64, StoreError> {
        let keys: Vec<String> = keys.iter().map(|k| self.redis_key(k)).collect();
        let mut command = eval(FORGET, &keys);
        command.arg(COMPLETED).arg(ANSWERED);
        let mut connection = self.connection();
        self.run("forget", command.query_async::<u64>(&mut connection))
            .await
    }

    /// Redis holds the keys of every replica; counting this prefix's keys
    /// would need a SCAN, so this store reports none (watch Redis's own
    /// `db0:keys` instead).
    fn entries(&self) -> u64 {
        0
    }

    fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }
}

thread_local! {
    /// This thread's connection: the store it belongs to (its `replica`
    /// id), the store's generation it was made in, and the connection. One
    /// slot: a process runs one Redis store at a time (a reload that
    /// replaces it makes the next use here connect afresh).
    static THREAD_CONNECTION: RefCell<Option<(u64, u64, ConnectionManager)>> =
        const { RefCell::new(None) };
}

/// Starts the background health check of `store`; it ends by itself once
/// the store is dropped.
pub fn spawn_health_check(store: &Arc<RedisStore>) -> JoinHandle<()> {
    let store: Weak<RedisStore> = Arc::downgrade(store);
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(HEALTH_INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failures = 0;
        loop {
            ticker.tick().await;
            let Some(store) = store.upgrade() else {
                return;
            };
            store.check(&mut failures).await;
        }
    })
}

/// The start of a timeout's [`StoreError`] message.
const NO_ANSWER: &str = "redis did not answer";

/// Runs `operation` for at most `timeout` and reports it to `observe`.
async fn timed<T>(
    op: &'static str,
    timeout: Duration,
    observe: &StoreObserver,
    operation: impl Future<Output = Result<T, RedisError>>,
) -> Result<T, StoreError> {
    let started = Instant::now();
    let result = match tokio::time::timeout(timeout, operation).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => {
            tracing::debug!(op, %error, "replay store: redis operation failed");
            Err(StoreError(describe(&error)))
        }
        Err(_elapsed) => Err(StoreError(format!(
            "{NO_ANSWER} within {} ms",
            timeout.as_millis()
        ))),
    };
    observe(op, started.elapsed(), result.is_ok());
    result
}

/// Sends the release script for `keys` held by `value`.
async fn release(
    connection: &mut ConnectionManager,
    keys: &[String],
    value: &str,
) -> Result<(), RedisError> {
    let mut command = eval(RELEASE, keys);
    command.arg(value);
    command.query_async::<()>(connection).await
}

/// `EVAL script numkeys keys...`, arguments to follow. The script text goes
/// with every call rather than `EVALSHA` and a `SCRIPT LOAD` on `NOSCRIPT`:
/// a few hundred bytes buy exactly one command per operation, even on a
/// freshly restarted Redis, and so a strict order on the connection.
fn eval(script: &str, keys: &[String]) -> Cmd {
    let mut command = redis::cmd("EVAL");
    command.arg(script).arg(keys.len()).arg(keys);
    command
}

/// A short, secret-free account of a Redis error for the sender's answer.
pub(crate) fn describe(error: &RedisError) -> String {
    if error.is_connection_refusal() {
        "redis refused the connection".to_owned()
    } else if error.is_io_error() || error.is_connection_dropped() || error.is_timeout() {
        "the connection to redis failed".to_owned()
    } else {
        match error.code() {
            Some(code) => format!("redis answered with an error ({code})"),
            None => "redis could not be used".to_owned(),
        }
    }
}

/// The connection manager: one multiplexed connection per process,
/// reconnecting in the background with short backoffs (at most 500 ms
/// apart), each attempt bounded, so that a returning Redis is found quickly.
pub(crate) fn manager(client: &redis::Client, timeout: Duration) -> ConnectionManager {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout.max(Duration::from_secs(1))))
        // Callers bound their own waits; a connection-level timeout would
        // also cut short the release that follows a timed-out claim.
        .set_response_timeout(None)
        .set_number_of_retries(2)
        .set_exponent_base(2.0)
        .set_min_delay(Duration::from_millis(100))
        .set_max_delay(Duration::from_millis(500));
    ConnectionManager::new_lazy_with_config(client.clone(), config)
        .expect("a manager without push subscriptions is always valid")
}

/// A duration in whole milliseconds, at least 1 (`PX 0` is an error).
pub(crate) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// 64 random bits from the operating system, naming this process in tokens.
pub(crate) fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        // No OS randomness: fall back to something per-process that still
        // differs between replicas started at the same moment.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        return (u64::from(std::process::id()) << 32) ^ u64::from(nanos);
    }
    u64::from_ne_bytes(bytes)
}
