//! The shared queue store on Redis: every replica enqueues into and
//! delivers from the same Redis, so any replica may deliver an item any
//! other accepted, and a replica that dies mid-delivery leaves its items to
//! the others once their lease runs out.
//!
//! Layout (every key starts with `key_prefix`, `P` below):
//! - `P item:<id>`: a hash per item: route `r`, state `s` (the
//!   [`ItemState`] code), tries `t`, attempts `a`, received `rc`, due `n`,
//!   finished `f`, last outcome `l`, dedupe keys `k` (16 bytes each), head
//!   `h`, body `b`, counted size `z`, and while in flight the taker's token
//!   `o`.
//! - `P due:<route>`: ready and waiting items, scored by when they are due
//!   (the embedded store's `due` table); `P live:<route>`: items in flight,
//!   scored by when their lease ends on Redis's own clock; `P done:3` and
//!   `P done:4`: delivered and dead items, scored by when they finished,
//!   for retention; `P ids`: every id (lexical order is id order, for
//!   listings).
//! - `P dedupe:<32 hex digits>`: a dedupe key, holding `<id>:<expiry ms>`,
//!   with a Redis TTL of the route's `dedupe_ttl` so Redis forgets it.
//! - `P counts` (route and state → n), `P bytes`, `P paused`, `P routes`.
//!
//! Why sorted sets and not a stream with a consumer group: an item's life
//! here has states a stream cannot hold (waiting for a backoff step,
//! delivered and kept, dead and kept, redelivered, purged by id), so a
//! stream would still need a delayed set, an index by id and a state per
//! entry beside it, and every change would touch both. One sorted set per
//! route of due items is the queue, another of leases is the pending list,
//! and each change of state is one Lua script: atomic, with its counters.
//!
//! Every change is one script, which Redis runs atomically. The enqueue
//! checks the dedupe keys, the room left under `max_bytes`, stores the item
//! and takes its keys in one step, so a copy of a queued request is a
//! duplicate and a refused request leaves nothing behind. A take first
//! returns items whose lease ran out (their taker died) to the due set,
//! then moves due items to the lease set with a lease of the route's
//! attempt timeout plus a margin, stamped with a token naming the taker; a
//! settle applies only while the item still holds that token, so a late
//! answer from a replica whose lease ran out never overrides the replica
//! that took the item after it.
//!
//! What Redis acknowledges must survive a crash of Redis, or a 202 would
//! be a promise nobody keeps: [`RedisQueue::open`] refuses a server that
//! does not write its append-only file before answering (`appendonly yes`
//! with `appendfsync always`) or that may evict keys (`maxmemory-policy`
//! other than `noeviction`), unless `accept_redis_risk` says to start
//! anyway. A multi-key script needs its keys on one node: like the replay
//! store, this is for a single primary, not Redis Cluster.
//!
//! The counters, the stored bytes and the paused routes are read without
//! waiting (the trait's `counts`, `bytes`, `paused`): every script answers
//! them along with its result, and a background refresh every
//! [`REFRESH_INTERVAL`] picks up the other replicas' changes.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use super::{
    Counts, Enqueued, Filter, Id, Item, ItemState, NewItem, QueueError, QueueStore, Settle,
};
use crate::config::RedisQueue as Settings;
use crate::replay::redis::{describe, manager, millis, random_u64};
use async_trait::async_trait;
use bytes::Bytes;
use redis::aio::ConnectionManager;
use redis::{Cmd, FromRedisValue, RedisError};
use sha1::{Digest, Sha1};

/// How often the counters, bytes and paused routes are read again, for
/// the other replicas' changes.
pub const REFRESH_INTERVAL: Duration = Duration::from_millis(500);

/// Added to a route's attempt timeout to make its lease: room for the
/// settle after the attempt and for a starved scheduler.
const LEASE_MARGIN: Duration = Duration::from_secs(5);

/// Connections per store (see [`RedisQueue`]'s `connections`).
const CONNECTIONS: usize = 8;

/// Expired leases returned to the due set per take, at most.
const RECLAIM_BATCH: usize = 100;

/// Ids a listing reads per script.
const LIST_PAGE: usize = 256;

/// The fields of an item's hash in the order scripts answer them (after
/// the id); the scripts that answer items name them in this order too.
const FIELDS: [&str; 11] = ["r", "s", "t", "a", "rc", "n", "f", "l", "k", "h", "b"];

/// A script: the functions every script starts with, then `$body`. ARGV[1]
/// is always the key prefix. `summary()` is what every changing script
/// answers besides its result: the counters, the stored bytes and the
/// paused routes. `fields(id)` reads an item's [`FIELDS`]. Put together
/// at compile time.
macro_rules! script {
    ($body:literal) => {
        concat!(
            r"
local P = ARGV[1]
local function count(route, state, by)
  local field = route .. '\n' .. state
  if redis.call('HINCRBY', P .. 'counts', field, by) <= 0 then
    redis.call('HDEL', P .. 'counts', field)
  end
end
local function place(id, route, state, due, finished)
  if state <= 1 then redis.call('ZADD', P .. 'due:' .. route, due, id)
  elseif state >= 3 then redis.call('ZADD', P .. 'done:' .. state, finished, id) end
end
local function unplace(id, route, state)
  if state <= 1 then redis.call('ZREM', P .. 'due:' .. route, id)
  elseif state == 2 then redis.call('ZREM', P .. 'live:' .. route, id)
  else redis.call('ZREM', P .. 'done:' .. state, id) end
end
local function delete(id)
  local item = P .. 'item:' .. id
  local f = redis.call('HMGET', item, 'r', 's', 'z')
  if not f[1] then return 0 end
  local state = tonumber(f[2])
  unplace(id, f[1], state)
  count(f[1], state, -1)
  redis.call('DECRBY', P .. 'bytes', f[3])
  redis.call('DEL', item)
  redis.call('ZREM', P .. 'ids', id)
  return 1
end
local function clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function reclaim(route, max)
  local ids = redis.call('ZRANGEBYSCORE', P .. 'live:' .. route, '-inf', clock(), 'LIMIT', 0, max)
  for _, id in ipairs(ids) do
    local item = P .. 'item:' .. id
    redis.call('ZREM', P .. 'live:' .. route, id)
    if redis.call('HGET', item, 's') == '2' then
      redis.call('HSET', item, 's', 0)
      redis.call('HDEL', item, 'o')
      redis.call('ZADD', P .. 'due:' .. route, redis.call('HGET', item, 'n'), id)
      count(route, 2, -1)
      count(route, 0, 1)
    end
  end
  return #ids
end
local function summary()
  return {redis.call('HGETALL', P .. 'counts'), redis.call('GET', P .. 'bytes') or '0',
          redis.call('SMEMBERS', P .. 'paused')}
end
local function fields(id)
  local f = redis.call('HMGET', P .. 'item:' .. id, 'r', 's', 't', 'a', 'rc', 'n', 'f', 'l', 'k', 'h', 'b')
  table.insert(f, 1, id)
  return f
end
",
            $body
        )
    };
}

/// A script's text and its SHA-1. Scripts are run by `EVALSHA`, and sent
/// whole (`EVAL`, which also loads them) only when Redis does not know
/// them yet: a script is ~3 KiB, and Redis reads at most 16 KiB of one
/// connection per turn of its event loop, then fsyncs its append-only file
/// once for the turn (`appendfsync always`), so the bytes per command
/// decide how many enqueues share an fsync.
struct Script {
    text: &'static str,
    sha: OnceLock<String>,
}

impl Script {
    const fn new(text: &'static str) -> Script {
        Script {
            text,
            sha: OnceLock::new(),
        }
    }

    fn sha(&self) -> &str {
        self.sha
            .get_or_init(|| hex::encode(Sha1::digest(self.text.as_bytes())))
    }
}

/// Stores an item and its dedupe keys, unless a key belongs to an item
/// whose keys have not expired (`{1, id}`), or the item would pass
/// `max_bytes` (`{2}`), or its id is taken (`{3}`, made again). KEYS: the
/// dedupe keys. ARGV: prefix, now, max bytes, id, route, received, size,
/// key TTL ms, key expiry ms, the keys' bytes, head, body.
static ENQUEUE: Script = Script::new(script!(
    r"
local now = tonumber(ARGV[2])
for _, key in ipairs(KEYS) do
  local held = redis.call('GET', key)
  if held then
    local at = string.find(held, ':', 1, true)
    if at and tonumber(string.sub(held, at + 1)) > now then
      return {{1, string.sub(held, 1, at - 1)}, summary()}
    end
  end
end
local size = tonumber(ARGV[7])
if tonumber(redis.call('GET', P .. 'bytes') or '0') + size > tonumber(ARGV[3]) then
  return {{2, ''}, summary()}
end
local id, route = ARGV[4], ARGV[5]
local item = P .. 'item:' .. id
if redis.call('EXISTS', item) == 1 then return {{3, ''}, summary()} end
redis.call('HSET', item, 'r', route, 's', 0, 't', 0, 'a', 0, 'rc', ARGV[6], 'n', ARGV[6],
  'f', 0, 'l', '', 'k', ARGV[10], 'h', ARGV[11], 'b', ARGV[12], 'z', size)
redis.call('ZADD', P .. 'ids', 0, id)
redis.call('ZADD', P .. 'due:' .. route, ARGV[6], id)
redis.call('SADD', P .. 'routes', route)
redis.call('INCRBY', P .. 'bytes', size)
count(route, 0, 1)
for _, key in ipairs(KEYS) do
  redis.call('SET', key, id .. ':' .. ARGV[9], 'PX', ARGV[8])
end
return {{0, id}, summary()}
"
));

/// Returns the route's expired leases to the due set, then takes up to
/// `max` items due at `now`. ARGV: prefix, route, now, max, lease ms,
/// token, most leases to reclaim. Answers the leases reclaimed and the items' fields.
static TAKE: Script = Script::new(script!(
    r"
local route = ARGV[2]
local reclaimed = reclaim(route, tonumber(ARGV[7]))
local deadline = clock() + tonumber(ARGV[5])
local ids = redis.call('ZRANGEBYSCORE', P .. 'due:' .. route, '-inf', ARGV[3], 'LIMIT', 0, ARGV[4])
local items = {}
for _, id in ipairs(ids) do
  local item = P .. 'item:' .. id
  redis.call('ZREM', P .. 'due:' .. route, id)
  local state = tonumber(redis.call('HGET', item, 's'))
  if state then
    count(route, state, -1)
    count(route, 2, 1)
    redis.call('HSET', item, 's', 2, 'o', ARGV[6])
    redis.call('HINCRBY', item, 't', 1)
    redis.call('ZADD', P .. 'live:' .. route, deadline, id)
    table.insert(items, fields(id))
  end
end
return {{reclaimed, items}, summary()}
"
));

/// Returns every route's expired leases to the due sets (at open).
/// ARGV: prefix.
static RECLAIM_ALL: Script = Script::new(script!(
    r"
local reclaimed = 0
for _, route in ipairs(redis.call('SMEMBERS', P .. 'routes')) do
  reclaimed = reclaimed + reclaim(route, 100000)
end
return {reclaimed, summary()}
"
));

/// Settles an item in flight under the token given; anything else is
/// left alone. ARGV: prefix, id, token, kind (d, x, r, p: delivered, dead,
/// retry, release), now, due, last.
static SETTLE: Script = Script::new(script!(
    r"
local id, kind = ARGV[2], ARGV[4]
local item = P .. 'item:' .. id
local f = redis.call('HMGET', item, 'r', 's', 'o')
if not f[1] or f[2] ~= '2' or f[3] ~= ARGV[3] then return {0, summary()} end
local route = f[1]
redis.call('ZREM', P .. 'live:' .. route, id)
redis.call('HDEL', item, 'o')
count(route, 2, -1)
local state = 0
if kind == 'd' then state = 3 elseif kind == 'x' then state = 4
elseif kind == 'r' then state = 1; redis.call('HINCRBY', item, 'a', 1) end
if state >= 3 then
  redis.call('HSET', item, 's', state, 'f', ARGV[5], 'l', ARGV[7])
else
  redis.call('HSET', item, 's', state, 'n', ARGV[6], 'l', ARGV[7])
end
place(id, route, state, ARGV[6], ARGV[5])
count(route, state, 1)
return {1, summary()}
"
));

/// Makes an item that is not in flight ready now. ARGV: prefix, id, now.
static REDELIVER: Script = Script::new(script!(
    r"
local id = ARGV[2]
local item = P .. 'item:' .. id
local f = redis.call('HMGET', item, 'r', 's')
if not f[1] or f[2] == '2' then return {0, summary()} end
local state = tonumber(f[2])
unplace(id, f[1], state)
count(f[1], state, -1)
redis.call('HSET', item, 's', 0, 'n', ARGV[3], 'f', 0)
place(id, f[1], 0, ARGV[3], 0)
count(f[1], 0, 1)
return {1, summary()}
"
));

/// Deletes items by id. ARGV: prefix, ids.
static PURGE: Script = Script::new(script!(
    r"
local removed = 0
for i = 2, #ARGV do removed = removed + delete(ARGV[i]) end
return {removed, summary()}
"
));

/// Deletes delivered items finished before ARGV[2] and dead ones before
/// ARGV[3], at most ARGV[4] of each. Dedupe keys expire by their TTL.
static EXPIRE: Script = Script::new(script!(
    r"
local removed = 0
for state, before in pairs({[3] = ARGV[2], [4] = ARGV[3]}) do
  local ids = redis.call('ZRANGEBYSCORE', P .. 'done:' .. state, '-inf', '(' .. before, 'LIMIT', 0, ARGV[4])
  for _, id in ipairs(ids) do removed = removed + delete(id) end
end
return {removed, summary()}
"
));

/// Pauses (ARGV[3] = 1) or resumes a route. ARGV: prefix, route, flag.
static PAUSE: Script = Script::new(script!(
    r"
if ARGV[3] == '1' then redis.call('SADD', P .. 'paused', ARGV[2])
else redis.call('SREM', P .. 'paused', ARGV[2]) end
return {0, summary()}
"
));

/// Only the summary (the background refresh). ARGV: prefix.
static SUMMARY: Script = Script::new(script!("return {0, summary()}"));

/// The arrival of the oldest of the first 64 items due. ARGV: prefix,
/// route, now.
static OLDEST: Script = Script::new(script!(
    r"
local oldest = false
for _, id in ipairs(redis.call('ZRANGEBYSCORE', P .. 'due:' .. ARGV[2], '-inf', ARGV[3], 'LIMIT', 0, 64)) do
  local at = tonumber(redis.call('HGET', P .. 'item:' .. id, 'rc'))
  if at and (not oldest or at < oldest) then oldest = at end
end
return oldest
"
));

/// Up to ARGV[4] items after the id ARGV[2] (exclusive; '' from the
/// start) matching route ARGV[5] (or any, ''), state ARGV[6] (or any,
/// -1) and time before ARGV[7] (or any, -1), reading at most ARGV[3] ids.
/// Answers the last id read ('' at the end) and the items' fields.
static LIST: Script = Script::new(script!(
    r"
local from = '-'
if ARGV[2] ~= '' then from = '(' .. ARGV[2] end
local ids = redis.call('ZRANGEBYLEX', P .. 'ids', from, '+', 'LIMIT', 0, ARGV[3])
local want, state, before = tonumber(ARGV[4]), tonumber(ARGV[6]), tonumber(ARGV[7])
local items, last = {}, ''
for _, id in ipairs(ids) do
  if #items >= want then break end
  last = id
  local f = redis.call('HMGET', P .. 'item:' .. id, 'r', 's', 'rc', 'f')
  if f[1] then
    local s = tonumber(f[2])
    local when = tonumber(f[3])
    if s >= 3 then when = tonumber(f[4]) end
    if (ARGV[5] == '' or f[1] == ARGV[5]) and (state < 0 or s == state)
       and (before < 0 or when < before) then
      table.insert(items, fields(id))
    end
  end
end
if #ids < tonumber(ARGV[3]) and #items < want then last = '' end
return {last, items}
"
));

/// The shared store (see the module doc).
pub struct RedisQueue {
    /// Reconnecting connections (the replay store's kind), used in turn:
    /// Redis reads a bounded amount of each connection per turn of its
    /// event loop, and fsyncs once per turn, so several connections let
    /// more enqueues share one fsync.
    connections: Vec<ConnectionManager>,
    /// Which connection the next operation uses.
    next_connection: AtomicUsize,
    /// Where it is, for messages.
    addr: String,
    /// Prepended to every key.
    prefix: String,
    /// Bound on every operation.
    timeout: Duration,
    /// Past this many stored bytes, enqueues are refused.
    max_bytes: u64,
    /// This process's random id, the first half of every take's token.
    replica: u64,
    /// The second half: a counter, unique within this process.
    next_token: AtomicU64,
    /// The tokens of this process's takes, by item, until settled.
    owned: Mutex<HashMap<Id, String>>,
    /// What the last script answered (see [`Summary`]).
    shown: Mutex<Summary>,
    /// The stored bytes, as last answered.
    bytes: AtomicU64,
    /// Leases found expired at open (their taker died) and made ready.
    recovered: AtomicU64,
    /// Whether the last operation reached Redis (the refresh runs every
    /// [`REFRESH_INTERVAL`], so this follows an outage within about that
    /// plus `store_timeout`).
    healthy: AtomicBool,
}

impl std::fmt::Debug for RedisQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisQueue")
            .field("addr", &self.addr)
            .field("prefix", &self.prefix)
            .finish()
    }
}

/// The counters and paused routes every script answers.
#[derive(Debug, Default)]
struct Summary {
    counts: Counts,
    paused: HashSet<String>,
}

/// Why the queue could not be opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenError {
    /// Redis did not answer: worth trying again.
    Unreachable(String),
    /// Redis answered, but may lose what it acknowledges; the message
    /// names each setting and its fix. Starting needs those fixed, or
    /// `accept_redis_risk = true`.
    Unsafe(String),
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::Unreachable(why) | OpenError::Unsafe(why) => f.write_str(why),
        }
    }
}

/// The script's answer and the summary beside it.
type Answered<T> = (T, (HashMap<String, u64>, u64, Vec<String>));

/// An item's fields as scripts answer them: its id, then [`FIELDS`].
type Fields = Vec<Option<Vec<u8>>>;

impl RedisQueue {
    /// Connects, checks that Redis keeps what it acknowledges (see the
    /// module doc), returns leases whose taker died to the due sets, and
    /// reads the counters. Call [`spawn_refresh`] to follow the other
    /// replicas' changes.
    pub async fn open(settings: &Settings, max_bytes: u64) -> Result<RedisQueue, OpenError> {
        let (client, first, addr) = check(settings).await?;
        let mut connections = vec![first];
        while connections.len() < CONNECTIONS {
            connections.push(manager(&client, settings.store_timeout));
        }
        let store = RedisQueue {
            connections,
            next_connection: AtomicUsize::new(0),
            addr,
            prefix: settings.key_prefix.clone(),
            timeout: settings.store_timeout,
            max_bytes,
            replica: random_u64(),
            next_token: AtomicU64::new(0),
            owned: Mutex::default(),
            shown: Mutex::default(),
            bytes: AtomicU64::new(0),
            recovered: AtomicU64::new(0),
            healthy: AtomicBool::new(true),
        };
        let reclaimed: u64 = store
            .change(&RECLAIM_ALL, |_| {})
            .await
            .map_err(|e| OpenError::Unreachable(format!("redis at {}: {e}", store.addr)))?;
        store.recovered.store(reclaimed, Ordering::Relaxed);
        Ok(store)
    }

    /// Sends `command` on the next connection, under the timeout.
    async fn attempt<T: FromRedisValue>(
        &self,
        command: Cmd,
    ) -> Result<Result<T, RedisError>, QueueError> {
        let turn = self.next_connection.fetch_add(1, Ordering::Relaxed);
        let mut connection = self.connections[turn % self.connections.len()].clone();
        let answer = tokio::time::timeout(self.timeout, command.query_async::<T>(&mut connection))
            .await
            .map_err(|_| {
                QueueError::Io(format!(
                    "redis did not answer within {} ms",
                    self.timeout.as_millis()
                ))
            });
        let reached = match &answer {
            Ok(Ok(_)) => true,
            // An error Redis sent (NOSCRIPT, OOM) is an answer.
            Ok(Err(error)) => error.code().is_some(),
            Err(_) => false,
        };
        self.healthy.store(reached, Ordering::Relaxed);
        answer
    }

    /// Runs `command`; a Redis error becomes a [`QueueError`].
    async fn query<T: FromRedisValue>(&self, command: Cmd) -> Result<T, QueueError> {
        self.attempt(command).await?.map_err(failed)
    }

    /// Runs `script` (by its SHA-1, or whole when Redis does not know it)
    /// with the prefix first among the arguments; `args` adds the rest.
    async fn run<T: FromRedisValue>(
        &self,
        script: &Script,
        keys: &[String],
        args: impl Fn(&mut Cmd),
    ) -> Result<T, QueueError> {
        let command = |verb: &str, script: &str| {
            let mut command = redis::cmd(verb);
            command
                .arg(script)
                .arg(keys.len())
                .arg(keys)
                .arg(&self.prefix);
            args(&mut command);
            command
        };
        match self.attempt(command("EVALSHA", script.sha())).await? {
            Err(error) if error.code() == Some("NOSCRIPT") => {
                self.query(command("EVAL", script.text)).await
            }
            answer => answer.map_err(failed),
        }
    }

    /// Runs a script that answers `{result, summary()}`, keeps the
    /// summary, and returns the result.
    async fn change<T: FromRedisValue>(
        &self,
        script: &Script,
        args: impl Fn(&mut Cmd),
    ) -> Result<T, QueueError> {
        self.change_keyed(script, &[], args).await
    }

    async fn change_keyed<T: FromRedisValue>(
        &self,
        script: &Script,
        keys: &[String],
        args: impl Fn(&mut Cmd),
    ) -> Result<T, QueueError> {
        let (result, summary) = self.run::<Answered<T>>(script, keys, args).await?;
        self.show(summary);
        Ok(result)
    }

    /// Keeps a script's summary for the trait's readers.
    fn show(&self, (counts, bytes, paused): (HashMap<String, u64>, u64, Vec<String>)) {
        let counts = counts
            .into_iter()
            .filter_map(|(field, n)| {
                let (route, code) = field.rsplit_once('\n')?;
                let state = ItemState::from_code(code.parse().ok()?)?;
                Some(((route.to_owned(), state), n))
            })
            .collect();
        self.bytes.store(bytes, Ordering::Relaxed);
        if let Ok(mut shown) = self.shown.lock() {
            *shown = Summary {
                counts,
                paused: paused.into_iter().collect(),
            };
        }
    }

    /// Reads the summary again (the background refresh).
    async fn refresh(&self) -> Result<(), QueueError> {
        self.change::<i64>(&SUMMARY, |_| {}).await.map(drop)
    }

    /// The Redis key of a dedupe key.
    fn dedupe_key(&self, key: &[u8; 16]) -> String {
        format!("{}dedupe:{}", self.prefix, hex::encode(key))
    }
}

/// Connects and checks that Redis keeps what it acknowledges (see the
/// module doc): the start-up check, which `hookguard serve` also runs
/// before it binds anything, to refuse to start. Returns the client, the
/// connection that checked, and the server's address for messages.
pub async fn check(
    settings: &Settings,
) -> Result<(redis::Client, ConnectionManager, String), OpenError> {
    // As the replay store does: ring, whatever else may be installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = redis::Client::open(settings.connection.clone())
        .expect("opening a client from parsed connection info does not fail");
    let addr = settings.connection.addr().to_string();
    let mut connection = manager(&client, settings.store_timeout);
    let limit = settings.store_timeout.max(Duration::from_secs(1));
    let problems = tokio::time::timeout(limit, persistence_problems(&mut connection))
        .await
        .map_err(|_| OpenError::Unreachable(format!("redis at {addr} did not answer")))?
        .map_err(|e| OpenError::Unreachable(format!("redis at {addr}: {}", describe(&e))))?;
    if !problems.is_empty() {
        if !settings.accept_redis_risk {
            return Err(OpenError::Unsafe(format!(
                "the queue's redis at {addr} may lose deliveries hookguard acknowledged: {}; fix that, or set queue.accept_redis_risk = true to start anyway",
                problems.join("; ")
            )));
        }
        for problem in &problems {
            tracing::warn!(%problem, "queue.accept_redis_risk = true: starting on a redis that may lose acknowledged deliveries");
        }
    }
    Ok((client, connection, addr))
}

/// What may make Redis lose what it acknowledged, each naming its setting
/// and the fix; empty when nothing does. `CONFIG GET` refused (managed
/// services often rename or forbid it) is one such problem: hookguard
/// cannot tell.
async fn persistence_problems(
    connection: &mut ConnectionManager,
) -> Result<Vec<String>, RedisError> {
    let mut problems = Vec::new();
    let mut settings = HashMap::new();
    for name in ["appendonly", "appendfsync", "maxmemory-policy"] {
        let answer = redis::cmd("CONFIG")
            .arg("GET")
            .arg(name)
            .query_async::<HashMap<String, String>>(connection)
            .await;
        match answer {
            Ok(mut pair) => {
                settings.insert(name, pair.remove(name).unwrap_or_default());
            }
            Err(error) if error.code().is_some() => {
                problems.push(format!(
                    "CONFIG GET is refused ({}), so hookguard cannot check that redis writes its append-only file before answering (appendonly yes, appendfsync always) and never evicts keys (maxmemory-policy noeviction); check those yourself",
                    error.code().unwrap_or("an error")
                ));
                return Ok(problems);
            }
            Err(error) => return Err(error),
        }
    }
    if settings["appendonly"] != "yes" {
        problems.push(format!(
            "appendonly is {:?}: redis keeps the queue in memory only and loses it when it restarts; set `appendonly yes` (and `appendfsync always`)",
            settings["appendonly"]
        ));
    } else if settings["appendfsync"] != "always" {
        problems.push(format!(
            "appendfsync is {:?}: redis answers before the append-only file is on disk, so a crash of redis loses deliveries senders were told were stored; set `appendfsync always`",
            settings["appendfsync"]
        ));
    }
    if settings["maxmemory-policy"] != "noeviction" {
        problems.push(format!(
            "maxmemory-policy is {:?}: redis may evict queued deliveries when its memory is full; set `maxmemory-policy noeviction` (a full redis then refuses new deliveries, which senders get as 503 and retry)",
            settings["maxmemory-policy"]
        ));
    }
    Ok(problems)
}

/// Starts the background refresh of `store`'s summary; it ends by itself
/// once the store is dropped.
pub fn spawn_refresh(store: &Arc<RedisQueue>) -> tokio::task::JoinHandle<()> {
    let store: Weak<RedisQueue> = Arc::downgrade(store);
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(REFRESH_INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let Some(store) = store.upgrade() else {
                return;
            };
            if let Err(error) = store.refresh().await {
                tracing::debug!(%error, "queue: the counters could not be read");
            }
        }
    })
}

/// A Redis error as a [`QueueError`] (the details to the debug log).
fn failed(error: RedisError) -> QueueError {
    tracing::debug!(%error, "queue: redis operation failed");
    QueueError::Io(describe(&error))
}

/// An item from a script's fields; `None` for one that does not read.
fn item(fields: Fields) -> Option<Item> {
    let mut fields = fields.into_iter();
    let mut next = || fields.next().flatten();
    let text = |bytes: Vec<u8>| String::from_utf8(bytes).ok();
    let number = |bytes: Vec<u8>| -> Option<u64> { std::str::from_utf8(&bytes).ok()?.parse().ok() };
    let id: Id = text(next()?)?.parse().ok()?;
    let route = text(next()?)?;
    let state = ItemState::from_code(u8::try_from(number(next()?)?).ok()?)?;
    let tries = u32::try_from(number(next()?)?).ok()?;
    let attempts = u32::try_from(number(next()?)?).ok()?;
    let received_ms = number(next()?)?;
    let next_ms = number(next()?)?;
    let finished_ms = number(next()?)?;
    let last = text(next().unwrap_or_default())?;
    let keys = next()
        .unwrap_or_default()
        .chunks_exact(16)
        .map(|chunk| chunk.try_into().expect("chunks of 16"))
        .collect();
    let head = next()?;
    let body = Bytes::from(next().unwrap_or_default());
    Some(Item {
        id,
        route,
        state,
        received_ms,
        next_ms,
        finished_ms,
        tries,
        attempts,
        last,
        keys,
        head,
        body,
    })
}

#[async_trait]
impl QueueStore for RedisQueue {
    async fn enqueue(&self, new: NewItem, now_ms: u64) -> Result<Enqueued, QueueError> {
        let keys: Vec<String> = new.keys.iter().map(|k| self.dedupe_key(k)).collect();
        let size = new.head.len() + new.body.len() + 16 * new.keys.len() + 64;
        let ttl = millis(new.dedupe_ttl);
        let blob: Vec<u8> = new.keys.concat();
        loop {
            let id = Id::new(new.received_ms);
            let (code, held): (i64, String) = self
                .change_keyed(&ENQUEUE, &keys, |c| {
                    c.arg(now_ms)
                        .arg(self.max_bytes)
                        .arg(id.to_string())
                        .arg(&new.route)
                        .arg(new.received_ms)
                        .arg(size)
                        .arg(ttl)
                        .arg(now_ms.saturating_add(ttl))
                        .arg(&blob)
                        .arg(&new.head)
                        .arg(&new.body[..]);
                })
                .await?;
            return match code {
                0 => Ok(Enqueued::Queued(id)),
                1 => held
                    .parse()
                    .map(Enqueued::Duplicate)
                    .map_err(|_| QueueError::Io("a dedupe key holds no delivery id".into())),
                2 => Err(QueueError::Full),
                3 => continue,
                other => Err(QueueError::Io(format!(
                    "the enqueue script answered {other}, which this version does not know"
                ))),
            };
        }
    }

    async fn take(
        &self,
        route: &str,
        now_ms: u64,
        max: usize,
        timeout: Duration,
    ) -> Result<Vec<Item>, QueueError> {
        let token = format!(
            "{:016x}{:016x}",
            self.replica,
            self.next_token.fetch_add(1, Ordering::Relaxed)
        );
        let lease = timeout + 2 * self.timeout + LEASE_MARGIN;
        let (reclaimed, taken): (u64, Vec<Fields>) = self
            .change(&TAKE, |c| {
                c.arg(route)
                    .arg(now_ms)
                    .arg(max)
                    .arg(millis(lease))
                    .arg(&token)
                    .arg(RECLAIM_BATCH);
            })
            .await?;
        if reclaimed > 0 {
            self.recovered.fetch_add(reclaimed, Ordering::Relaxed);
            tracing::info!(route, reclaimed, "queue: deliveries whose lease ran out (their replica stopped mid-delivery) are due again");
        }
        let items: Vec<Item> = taken.into_iter().filter_map(item).collect();
        if let Ok(mut owned) = self.owned.lock() {
            for item in &items {
                owned.insert(item.id, token.clone());
            }
        }
        Ok(items)
    }

    async fn settle(&self, id: Id, settle: Settle, now_ms: u64) -> Result<(), QueueError> {
        let Some(token) = self.owned.lock().ok().and_then(|mut o| o.remove(&id)) else {
            // Not taken here (or settled already): not this replica's.
            return Ok(());
        };
        let (kind, next, last) = match settle {
            Settle::Delivered { last } => ("d", 0, last),
            Settle::Dead { last } => ("x", 0, last),
            Settle::Retry { next_ms, last } => ("r", next_ms, last),
            Settle::Release { next_ms, last } => ("p", next_ms, last),
        };
        let result = self
            .change::<i64>(&SETTLE, |c| {
                c.arg(id.to_string())
                    .arg(&token)
                    .arg(kind)
                    .arg(now_ms)
                    .arg(next)
                    .arg(&last);
            })
            .await;
        // A failed settle leaves the item in flight: its lease runs out and
        // it is delivered again.
        result.map(drop)
    }

    async fn next_due(&self, route: &str) -> Result<Option<u64>, QueueError> {
        let mut command = redis::cmd("ZRANGE");
        command
            .arg(format!("{}due:{route}", self.prefix))
            .arg(0)
            .arg(0)
            .arg("WITHSCORES");
        let first: Vec<(String, f64)> = self.query(command).await?;
        Ok(first.first().map(|(_, due)| *due as u64))
    }

    async fn oldest_due(&self, route: &str, now_ms: u64) -> Result<Option<u64>, QueueError> {
        self.run(&OLDEST, &[], |c| {
            c.arg(route).arg(now_ms);
        })
        .await
    }

    async fn get(&self, id: Id) -> Result<Option<Item>, QueueError> {
        let mut command = redis::cmd("HMGET");
        command.arg(format!("{}item:{id}", self.prefix));
        command.arg(&FIELDS[..]);
        let mut fields: Fields = self.query(command).await?;
        if fields.first().is_none_or(Option::is_none) {
            return Ok(None);
        }
        fields.insert(0, Some(id.to_string().into_bytes()));
        Ok(item(fields))
    }

    async fn list(&self, filter: &Filter) -> Result<Vec<Item>, QueueError> {
        let mut out = Vec::new();
        let mut after = String::new();
        while out.len() < filter.limit {
            let want = filter.limit - out.len();
            let (last, page): (String, Vec<Fields>) = self
                .run(&LIST, &[], |c| {
                    c.arg(&after)
                        .arg(LIST_PAGE)
                        .arg(want)
                        .arg(filter.route.as_deref().unwrap_or(""))
                        .arg(filter.state.map_or(-1, |s| i64::from(s.code())))
                        .arg(filter.before_ms.map_or(-1, |b| b as i64));
                })
                .await?;
            out.extend(page.into_iter().filter_map(item));
            if last.is_empty() {
                break;
            }
            after = last;
        }
        Ok(out)
    }

    async fn redeliver(&self, id: Id, now_ms: u64) -> Result<bool, QueueError> {
        let done: i64 = self
            .change(&REDELIVER, |c| {
                c.arg(id.to_string()).arg(now_ms);
            })
            .await?;
        Ok(done == 1)
    }

    async fn purge(&self, ids: &[Id]) -> Result<u64, QueueError> {
        let mut removed = 0;
        for chunk in ids.chunks(1000) {
            removed += self
                .change::<u64>(&PURGE, |c| {
                    for id in chunk {
                        c.arg(id.to_string());
                    }
                })
                .await?;
        }
        Ok(removed)
    }

    async fn expire(
        &self,
        delivered_before_ms: u64,
        dead_before_ms: u64,
        _now_ms: u64,
        max: usize,
    ) -> Result<u64, QueueError> {
        self.change(&EXPIRE, |c| {
            c.arg(delivered_before_ms).arg(dead_before_ms).arg(max);
        })
        .await
    }

    async fn set_paused(&self, route: &str, paused: bool) -> Result<(), QueueError> {
        self.change::<i64>(&PAUSE, |c| {
            c.arg(route).arg(u8::from(paused));
        })
        .await
        .map(drop)
    }

    fn paused(&self, route: &str) -> bool {
        self.shown
            .lock()
            .is_ok_and(|shown| shown.paused.contains(route))
    }

    fn counts(&self) -> Counts {
        self.shown
            .lock()
            .map(|shown| shown.counts.clone())
            .unwrap_or_default()
    }

    fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    fn recovered(&self) -> u64 {
        self.recovered.load(Ordering::Relaxed)
    }

    fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }
}
