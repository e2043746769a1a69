//! The in-process replay store: a compact, sharded map from dedupe key to
//! claim state.
//!
//! hookguard started on moka; at 1,000,000 remembered deliveries moka cost
//! 446 bytes per key (measured with `examples/replay_memory.rs`: its
//! general-purpose entries carry reference counts, LRU links, timer-wheel
//! nodes and frequency sketches). Replay protection needs much less: the
//! keys are uniformly distributed hashes, the value is a token and a
//! deadline, and eviction only has to drop the oldest keys when the bound is
//! reached. So each shard holds a hash map of 32-byte slots, keyed directly
//! by the key's bits (no rehashing), and a FIFO of keys in insertion order
//! for capacity eviction. Expired keys are treated as absent at once and
//! removed by a sweep amortised over inserts.
//!
//! Each key maps to the claiming request's token while it is in flight, and
//! to `COMPLETED` once delivered. A slot lives for its own ttl (the
//! route's `dedupe_ttl`), restarted on completion. `max_entries` bounds the
//! store; keys dropped for capacity before their ttl weaken replay
//! protection, so they are reported.
//!
//! Remembered answers ([`StoredAnswer`]) live in a side table, so that the
//! slots of deliveries without one stay 16 bytes. A completed slot with an
//! answer holds `ANSWERED | token` (the completing claim's token, unique in
//! this process) instead of `COMPLETED`; the table maps that token to the
//! answer, kept once for all of the claim's keys and counted by them, and
//! freed when the last of them leaves the store (expiry, eviction, or being
//! claimed again). Its size is bounded by the slots': at most `max_entries`
//! answers of at most `replay.max_answer_bytes`.
//!
//! - [`snapshot`]: writing the completed keys to a file and reading them
//!   back at start, so that a restart does not forget them.

pub mod snapshot;

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{Claim, ClaimResult, Key, ReplayStore, StoreError, StoredAnswer};

/// Token value marking a delivered key without a remembered answer; live
/// tokens start at 1.
const COMPLETED: u64 = 0;

/// Set in the token of a delivered key whose answer is remembered; the
/// other bits are the answer's id in the side table. Claim tokens count up
/// from 1 and never reach this bit.
const ANSWERED: u64 = 1 << 63;

/// Most shards; concurrent requests rarely wait on the same lock.
const MAX_SHARDS: u64 = 64;

/// Fewest keys per shard before another shard is worth it. Capacity is
/// enforced per shard, so small stores use one shard and stay exact.
const MIN_SHARD_KEYS: u64 = 4096;

/// Called with `"capacity"` or `"expired"` when a key leaves the store on
/// its own (releases and completions are not evictions).
pub type EvictionHook = Arc<dyn Fn(&'static str) + Send + Sync>;

/// What the store remembers per key: 16 bytes, beside the 16-byte key.
#[derive(Debug, Clone, Copy)]
struct Slot {
    /// The holder's token, [`COMPLETED`], or [`ANSWERED`] with an answer id.
    token: u64,
    /// Milliseconds since the store's epoch after which the slot is gone.
    expires: u64,
}

impl Slot {
    /// Whether the delivery holding this key was completed.
    fn is_completed(&self) -> bool {
        self.token == COMPLETED || self.token & ANSWERED != 0
    }

    /// The id of the answer remembered with this key, if any.
    fn answer_id(&self) -> Option<u64> {
        (self.token & ANSWERED != 0).then_some(self.token & !ANSWERED)
    }
}

/// A remembered answer and how many slots refer to it.
struct Kept {
    answer: StoredAnswer,
    refs: u32,
}

/// Answer id to answer; see the module doc.
type AnswerTable = HashMap<u64, Kept>;

/// Keys are truncated SHA-256 digests: already uniform, so the map uses
/// their low bits as the hash instead of hashing them again.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Not reached for u128 keys; a correct fallback all the same.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u128(&mut self, n: u128) {
        self.0 = n as u64;
    }
}

type SlotMap = HashMap<u128, Slot, BuildHasherDefault<KeyHasher>>;

/// One shard: the slots, and the keys in insertion order.
#[derive(Default)]
struct Shard {
    slots: SlotMap,
    /// Keys in the order they were claimed; may hold keys already released
    /// or re-claimed (skipped when popped, compacted when it grows).
    order: VecDeque<u128>,
    /// Inserts since the last sweep for expired slots.
    inserts_since_sweep: usize,
}

impl Shard {
    /// A shard sized for its share of `max_entries` from the start. A map
    /// that grows doubles, rehashing every slot under the shard's lock:
    /// with keys spread evenly every shard doubled at about the same
    /// moment, and at 2,000,000 keys that was 64 stalls of 5 ms in a row
    /// on the request path (measured: one claim in 3,700 took over 100 µs).
    /// Sized once, only the first touch of each page costs, spread out; the
    /// pages of slots never used are never touched, so a store that stays
    /// small stays small in resident memory.
    fn with_capacity(slots: usize) -> Self {
        Shard {
            slots: SlotMap::with_capacity_and_hasher(slots, BuildHasherDefault::default()),
            order: VecDeque::with_capacity(slots),
            inserts_since_sweep: 0,
        }
    }
}

/// The in-memory store.
///
/// Locks are taken shard first, then the answer table, never the other way
/// round, so that no two operations wait on each other in a circle.
pub struct MemoryStore {
    shards: Vec<Mutex<Shard>>,
    /// Most keys per shard.
    shard_capacity: usize,
    /// The remembered answers, apart from the slots (see the module doc).
    answers: Mutex<AnswerTable>,
    /// Held while a snapshot is written, so that the final write at
    /// shutdown waits for a periodic one still running instead of racing it
    /// to the same file.
    writing: Mutex<()>,
    epoch: Instant,
    next_token: AtomicU64,
    on_evict: EvictionHook,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("shard_capacity", &self.shard_capacity)
            .finish()
    }
}

fn as_u128(key: &Key) -> u128 {
    u128::from_le_bytes(*key)
}

impl MemoryStore {
    /// A store remembering at most `max_entries` keys; `on_evict` hears of
    /// keys dropped for capacity or expiry.
    pub fn new(max_entries: u64, on_evict: EvictionHook) -> Self {
        let shards = (max_entries / MIN_SHARD_KEYS).clamp(1, MAX_SHARDS);
        // Rounded down, so that all shards together never exceed the bound.
        let per_shard = usize::try_from(max_entries / shards).unwrap_or(usize::MAX);
        MemoryStore {
            shards: (0..shards)
                .map(|_| Mutex::new(Shard::with_capacity(per_shard)))
                .collect(),
            shard_capacity: per_shard.max(1),
            answers: Mutex::default(),
            writing: Mutex::default(),
            epoch: Instant::now(),
            next_token: AtomicU64::new(COMPLETED + 1),
            on_evict,
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn deadline(&self, ttl: Duration) -> u64 {
        self.now_ms().saturating_add(ttl.as_millis() as u64)
    }

    /// The index of a key's shard: from its high half, independent of the
    /// low bits the map hashes with.
    fn shard_index(&self, key: u128) -> usize {
        ((key >> 64) as u64 % self.shards.len() as u64) as usize
    }

    /// The shard for a key.
    fn shard(&self, key: u128) -> MutexGuard<'_, Shard> {
        self.shard_at(self.shard_index(key))
    }

    /// Shard `index`, locked.
    fn shard_at(&self, index: usize) -> MutexGuard<'_, Shard> {
        // A poisoned lock means a panic mid-update of plain data; the slots
        // are still consistent enough to keep protecting against replays.
        self.shards[index]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The answer table. A poisoned lock is recovered as for the shards:
    /// at worst an answer is missing and the status answer is given.
    fn answers(&self) -> MutexGuard<'_, AnswerTable> {
        self.answers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A copy of answer `id` (its body is shared, not copied).
    fn answer(&self, id: u64) -> Option<StoredAnswer> {
        self.answers().get(&id).map(|kept| kept.answer.clone())
    }

    /// Drops `count` of answer `id`'s references; the last one frees it.
    fn unref(&self, id: u64, count: u32) {
        if let Entry::Occupied(mut kept) = self.answers().entry(id) {
            kept.get_mut().refs = kept.get().refs.saturating_sub(count);
            if kept.get().refs == 0 {
                kept.remove();
            }
        }
    }

    /// Accounts for a slot leaving the store: its answer loses a reference.
    fn vacate(&self, slot: &Slot) {
        if let Some(id) = slot.answer_id() {
            self.unref(id, 1);
        }
    }

    /// Claims one key for `token`; `Err` with what holds it.
    fn claim_one(&self, key: u128, token: u64, ttl: Duration) -> Result<(), ClaimResult> {
        let now = self.now_ms();
        let mut shard = self.shard(key);
        if let Some(slot) = shard.slots.get(&key) {
            if slot.expires > now {
                return Err(if slot.is_completed() {
                    ClaimResult::Duplicate(slot.answer_id().and_then(|id| self.answer(id)))
                } else {
                    ClaimResult::InFlight
                });
            }
        }
        let slot = Slot {
            token,
            expires: now.saturating_add(ttl.as_millis() as u64),
        };
        if let Some(expired) = shard.slots.insert(key, slot) {
            // An expired slot replaced in place.
            self.vacate(&expired);
            (self.on_evict)("expired");
        }
        shard.order.push_back(key);
        shard.inserts_since_sweep += 1;
        self.maintain(&mut shard, now);
        Ok(())
    }

    /// Keeps a shard within its capacity and its FIFO within bounds, and
    /// sweeps expired slots once enough inserts have passed.
    fn maintain(&self, shard: &mut Shard, now: u64) {
        let Shard {
            slots,
            order,
            inserts_since_sweep,
        } = shard;
        // Every half capacity's worth of inserts, not every half of the
        // current size: a filling shard swept at 1.5x, 2.25x, ... its size
        // scanned itself a score of times on the request path on its way
        // to full; expired slots count as absent anyway, and capacity
        // eviction keeps the shard bounded meanwhile.
        if *inserts_since_sweep > self.shard_capacity / 2 + 64 {
            *inserts_since_sweep = 0;
            let before = slots.len();
            // Stays unallocated unless answers are remembered.
            let mut freed = Vec::new();
            slots.retain(|_, slot| {
                let live = slot.expires > now;
                if !live {
                    freed.extend(slot.answer_id());
                }
                live
            });
            for id in freed {
                self.unref(id, 1);
            }
            for _ in slots.len()..before {
                (self.on_evict)("expired");
            }
        }
        while slots.len() > self.shard_capacity {
            let Some(oldest) = order.pop_front() else {
                break;
            };
            if let Some(slot) = slots.remove(&oldest) {
                self.vacate(&slot);
                (self.on_evict)(if slot.expires > now {
                    "capacity"
                } else {
                    "expired"
                });
            }
        }
        // Released and re-claimed keys leave stale FIFO entries behind.
        if order.len() > 2 * self.shard_capacity.max(slots.len()) + 64 {
            order.retain(|key| slots.contains_key(key));
        }
    }

    fn release_keys(&self, keys: &[Key], token: u64) {
        for key in keys {
            let key = as_u128(key);
            let mut shard = self.shard(key);
            if shard
                .slots
                .get(&key)
                .is_some_and(|slot| slot.token == token)
            {
                shard.slots.remove(&key);
            }
        }
    }
}

#[async_trait]
impl ReplayStore for MemoryStore {
    async fn claim(&self, keys: Vec<Key>, ttl: Duration) -> Result<ClaimResult, StoreError> {
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        for (taken, key) in keys.iter().enumerate() {
            if let Err(held) = self.claim_one(as_u128(key), token, ttl) {
                // Undo the keys taken so far: all or nothing.
                self.release_keys(&keys[..taken], token);
                return Ok(held);
            }
        }
        Ok(ClaimResult::Claimed(Claim { keys, token, ttl }))
    }

    async fn complete(
        &self,
        claim: &Claim,
        answer: Option<StoredAnswer>,
    ) -> Result<(), StoreError> {
        let expires = self.deadline(claim.ttl);
        let keys = u32::try_from(claim.keys.len()).unwrap_or(u32::MAX);
        // The answer goes in first, counted by every key, so that a copy
        // finding a marked key always finds its answer; keys left unmarked
        // give their references back below.
        let token = match answer {
            Some(answer) => {
                self.answers()
                    .entry(claim.token)
                    .or_insert(Kept { answer, refs: 0 })
                    .refs += keys;
                ANSWERED | claim.token
            }
            None => COMPLETED,
        };
        let mut marked = 0;
        for key in &claim.keys {
            let key = as_u128(key);
            let mut shard = self.shard(key);
            match shard.slots.get_mut(&key) {
                Some(slot) if slot.token == claim.token => {
                    *slot = Slot { token, expires };
                    marked += 1;
                }
                // Someone else holds it now (ours expired and was
                // re-claimed): theirs to settle.
                Some(_) => {}
                // Ours expired and was swept: it is delivered all the same.
                None => {
                    shard.slots.insert(key, Slot { token, expires });
                    shard.order.push_back(key);
                    marked += 1;
                }
            }
        }
        if token != COMPLETED && marked < keys {
            self.unref(claim.token, keys - marked);
        }
        Ok(())
    }

    async fn release(&self, claim: &Claim) -> Result<(), StoreError> {
        self.release_keys(&claim.keys, claim.token);
        Ok(())
    }

    async fn forget(&self, keys: &[Key]) -> Result<u64, StoreError> {
        let now = self.now_ms();
        let mut removed = 0;
        for key in keys {
            let key = as_u128(key);
            let mut shard = self.shard(key);
            // An expired key is gone already, whatever the sweep says.
            let live_and_completed = shard
                .slots
                .get(&key)
                .is_some_and(|slot| slot.is_completed() && slot.expires > now);
            if live_and_completed {
                if let Some(slot) = shard.slots.remove(&key) {
                    self.vacate(&slot);
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    fn entries(&self) -> u64 {
        self.shards
            .iter()
            .map(|shard| {
                shard
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .slots
                    .len() as u64
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(60);

    fn store(max_entries: u64) -> MemoryStore {
        MemoryStore::new(max_entries, Arc::new(|_| {}))
    }

    fn key(n: u8) -> Key {
        [n; 16]
    }

    #[tokio::test]
    async fn claim_then_complete_makes_duplicates() {
        let store = store(100);
        let ClaimResult::Claimed(claim) = store.claim(vec![key(1)], TTL).await.unwrap() else {
            panic!("first claim must succeed");
        };
        assert!(matches!(
            store.claim(vec![key(1)], TTL).await.unwrap(),
            ClaimResult::InFlight
        ));
        store.complete(&claim, None).await.unwrap();
        assert!(matches!(
            store.claim(vec![key(1)], TTL).await.unwrap(),
            ClaimResult::Duplicate(None)
        ));
    }

    /// An answer with `body`, for the store's tests and its snapshot's.
    pub(super) fn answer(body: &'static str) -> StoredAnswer {
        StoredAnswer::new(
            http::StatusCode::ACCEPTED,
            Some(http::HeaderValue::from_static("application/json")),
            bytes::Bytes::from_static(body.as_bytes()),
        )
        .unwrap()
    }

    /// Claims `keys`, which must be free.
    pub(super) async fn claimed(store: &MemoryStore, keys: Vec<Key>, ttl: Duration) -> Claim {
        match store.claim(keys, ttl).await.unwrap() {
            ClaimResult::Claimed(claim) => claim,
            other => panic!("expected a claim, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_remembered_answer_is_given_for_every_key_of_the_delivery() {
        let store = store(100);
        let claim = claimed(&store, vec![key(1), key(2)], TTL).await;
        store
            .complete(&claim, Some(answer(r#"{"id":1}"#)))
            .await
            .unwrap();
        for k in [key(1), key(2)] {
            match store.claim(vec![k], TTL).await.unwrap() {
                ClaimResult::Duplicate(Some(found)) => assert_eq!(found, answer(r#"{"id":1}"#)),
                other => panic!("expected the original answer, got {other:?}"),
            }
        }
        assert_eq!(store.answers().len(), 1, "one answer for both keys");
    }

    #[tokio::test]
    async fn an_answer_is_freed_with_the_last_of_its_keys() {
        let store = store(100);
        let ttl = Duration::from_millis(100);
        let claim = claimed(&store, vec![key(1), key(2)], ttl).await;
        store.complete(&claim, Some(answer("first"))).await.unwrap();
        std::thread::sleep(Duration::from_millis(150));
        // Claiming an expired key again replaces its slot: one reference
        // gone, the other key still refers to the answer.
        claimed(&store, vec![key(1)], TTL).await;
        assert_eq!(store.answers()[&claim.token].refs, 1);
        claimed(&store, vec![key(2)], TTL).await;
        assert!(store.answers().is_empty());
    }

    #[tokio::test]
    async fn answers_leave_with_keys_evicted_for_capacity() {
        let store = store(10);
        for n in 0..100u8 {
            let claim = claimed(&store, vec![key(n)], TTL).await;
            store.complete(&claim, Some(answer("ok"))).await.unwrap();
        }
        assert!(store.entries() <= 10);
        assert_eq!(store.answers().len() as u64, store.entries());
    }

    #[tokio::test]
    async fn keys_held_by_another_claim_do_not_keep_the_answer() {
        let store = store(100);
        let ttl = Duration::from_millis(100);
        let late = claimed(&store, vec![key(1)], ttl).await;
        std::thread::sleep(Duration::from_millis(150));
        // The first claim's key expired and another request took it.
        let _other = claimed(&store, vec![key(1)], TTL).await;
        store.complete(&late, Some(answer("late"))).await.unwrap();
        assert!(store.answers().is_empty());
        assert!(matches!(
            store.claim(vec![key(1)], TTL).await.unwrap(),
            ClaimResult::InFlight
        ));
    }

    #[tokio::test]
    async fn forget_removes_completed_keys_and_their_answer_but_not_claims_in_flight() {
        let store = store(100);
        let done = claimed(&store, vec![key(1), key(2)], TTL).await;
        store.complete(&done, Some(answer("ok"))).await.unwrap();
        let _flying = claimed(&store, vec![key(3)], TTL).await;
        assert_eq!(store.forget(&[key(1), key(3), key(9)]).await.unwrap(), 1);
        claimed(&store, vec![key(1)], TTL).await;
        assert!(matches!(
            store.claim(vec![key(3)], TTL).await.unwrap(),
            ClaimResult::InFlight
        ));
        assert_eq!(store.forget(&[key(2)]).await.unwrap(), 1);
        assert!(store.answers().is_empty(), "the last key took its answer");
        assert_eq!(store.forget(&[key(2)]).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn release_frees_the_key_for_a_retry() {
        let store = store(100);
        let ClaimResult::Claimed(claim) = store.claim(vec![key(1)], TTL).await.unwrap() else {
            panic!("first claim must succeed");
        };
        store.release(&claim).await.unwrap();
        assert!(matches!(
            store.claim(vec![key(1)], TTL).await.unwrap(),
            ClaimResult::Claimed(_)
        ));
    }

    #[tokio::test]
    async fn claims_are_all_or_nothing() {
        let store = store(100);
        let ClaimResult::Claimed(_held) = store.claim(vec![key(2)], TTL).await.unwrap() else {
            panic!("claim must succeed");
        };
        // key 1 is free, key 2 is held: nothing may stay claimed.
        assert!(matches!(
            store.claim(vec![key(1), key(2)], TTL).await.unwrap(),
            ClaimResult::InFlight
        ));
        assert!(matches!(
            store.claim(vec![key(1)], TTL).await.unwrap(),
            ClaimResult::Claimed(_)
        ));
    }

    #[tokio::test]
    async fn a_stale_release_does_not_free_someone_elses_claim() {
        let store = store(100);
        let ClaimResult::Claimed(first) = store.claim(vec![key(3)], TTL).await.unwrap() else {
            panic!("claim must succeed");
        };
        store.release(&first).await.unwrap();
        let ClaimResult::Claimed(_second) = store.claim(vec![key(3)], TTL).await.unwrap() else {
            panic!("claim must succeed");
        };
        store.release(&first).await.unwrap();
        assert!(matches!(
            store.claim(vec![key(3)], TTL).await.unwrap(),
            ClaimResult::InFlight
        ));
    }

    #[tokio::test]
    async fn completed_keys_expire_after_their_ttl() {
        let store = store(100);
        let ttl = Duration::from_millis(200);
        let ClaimResult::Claimed(claim) = store.claim(vec![key(4)], ttl).await.unwrap() else {
            panic!("claim must succeed");
        };
        store.complete(&claim, None).await.unwrap();
        assert!(matches!(
            store.claim(vec![key(4)], ttl).await.unwrap(),
            ClaimResult::Duplicate(None)
        ));
        std::thread::sleep(Duration::from_millis(350));
        assert!(matches!(
            store.claim(vec![key(4)], ttl).await.unwrap(),
            ClaimResult::Claimed(_)
        ));
    }

    #[tokio::test]
    async fn the_capacity_bound_holds_and_evictions_are_reported() {
        let evicted = Arc::new(AtomicU64::new(0));
        let seen = evicted.clone();
        let store = MemoryStore::new(
            100,
            Arc::new(move |cause| {
                assert_eq!(cause, "capacity");
                seen.fetch_add(1, Ordering::Relaxed);
            }),
        );
        for n in 0..1_000u32 {
            let mut key = [0u8; 16];
            key[..4].copy_from_slice(&n.to_be_bytes());
            let ClaimResult::Claimed(claim) = store.claim(vec![key], TTL).await.unwrap() else {
                panic!("unique keys are always claimed");
            };
            store.complete(&claim, None).await.unwrap();
        }
        let entries = store.entries();
        assert!(entries <= 100, "{entries} entries for a bound of 100");
        assert!(evicted.load(Ordering::Relaxed) >= 900 - 100);
    }
}
