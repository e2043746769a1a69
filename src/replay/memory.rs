//! The in-process replay store, on a moka cache.
//!
//! Each key maps to a small slot: the claiming request's token while it is in
//! flight, [`COMPLETED`] once delivered. Slots expire after their own ttl (a
//! route's `dedupe_ttl`, restarted on completion). `max_entries` bounds the
//! cache; when it is full moka evicts by its admission policy, and those
//! early evictions weaken replay protection, so they are counted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use moka::notification::RemovalCause;
use moka::ops::compute::Op;
use moka::sync::Cache;
use moka::Expiry;

use super::{Claim, ClaimResult, Key, ReplayStore, StoreError};

/// Token value marking a delivered key; live tokens start at 1.
const COMPLETED: u64 = 0;

#[derive(Debug, Clone, Copy)]
struct Slot {
    token: u64,
    ttl: Duration,
}

/// Each slot lives for its own ttl, counted from its last write.
struct SlotTtl;

impl Expiry<Key, Slot> for SlotTtl {
    fn expire_after_create(&self, _key: &Key, slot: &Slot, _at: Instant) -> Option<Duration> {
        Some(slot.ttl)
    }

    fn expire_after_update(
        &self,
        _key: &Key,
        slot: &Slot,
        _at: Instant,
        _remaining: Option<Duration>,
    ) -> Option<Duration> {
        Some(slot.ttl)
    }
}

/// Called with `"capacity"` or `"expired"` when a key leaves the store on
/// its own (releases and completions are not evictions).
pub type EvictionHook = Arc<dyn Fn(&'static str) + Send + Sync>;

/// The moka-backed store.
pub struct MemoryStore {
    cache: Cache<Key, Slot>,
    next_token: AtomicU64,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("entries", &self.cache.entry_count())
            .finish()
    }
}

impl MemoryStore {
    /// A store remembering at most `max_entries` keys; `on_evict` hears of
    /// keys dropped for capacity or expiry.
    pub fn new(max_entries: u64, on_evict: EvictionHook) -> Self {
        let cache = Cache::builder()
            .max_capacity(max_entries)
            .expire_after(SlotTtl)
            .eviction_listener(move |_key, _slot, cause| match cause {
                RemovalCause::Size => on_evict("capacity"),
                RemovalCause::Expired => on_evict("expired"),
                RemovalCause::Explicit | RemovalCause::Replaced => {}
            })
            .build();
        MemoryStore {
            cache,
            next_token: AtomicU64::new(COMPLETED + 1),
        }
    }

    fn release_keys(&self, keys: &[Key], token: u64) {
        for key in keys {
            self.cache.entry(*key).and_compute_with(|slot| match slot {
                Some(slot) if slot.value().token == token => Op::Remove,
                _ => Op::Nop,
            });
        }
    }
}

#[async_trait]
impl ReplayStore for MemoryStore {
    async fn claim(&self, keys: Vec<Key>, ttl: Duration) -> Result<ClaimResult, StoreError> {
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        let fresh = Slot { token, ttl };
        for (taken, key) in keys.iter().enumerate() {
            let entry = self.cache.entry(*key).or_insert_with(|| fresh);
            if !entry.is_fresh() {
                // Undo the keys taken so far: all or nothing.
                self.release_keys(&keys[..taken], token);
                return Ok(if entry.into_value().token == COMPLETED {
                    ClaimResult::Duplicate
                } else {
                    ClaimResult::InFlight
                });
            }
        }
        Ok(ClaimResult::Claimed(Claim { keys, token, ttl }))
    }

    async fn complete(&self, claim: &Claim) -> Result<(), StoreError> {
        let done = Slot {
            token: COMPLETED,
            ttl: claim.ttl,
        };
        for key in &claim.keys {
            self.cache.entry(*key).and_compute_with(|slot| match slot {
                // Ours, or expired meanwhile: either way it is now delivered.
                Some(slot) if slot.value().token != claim.token => Op::Nop,
                _ => Op::Put(done),
            });
        }
        Ok(())
    }

    async fn release(&self, claim: &Claim) -> Result<(), StoreError> {
        self.release_keys(&claim.keys, claim.token);
        Ok(())
    }

    fn entries(&self) -> u64 {
        // moka counts lazily; settle pending work so the figure is current.
        self.cache.run_pending_tasks();
        self.cache.entry_count()
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
        store.complete(&claim).await.unwrap();
        assert!(matches!(
            store.claim(vec![key(1)], TTL).await.unwrap(),
            ClaimResult::Duplicate
        ));
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
        store.complete(&claim).await.unwrap();
        assert!(matches!(
            store.claim(vec![key(4)], ttl).await.unwrap(),
            ClaimResult::Duplicate
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
            store.complete(&claim).await.unwrap();
        }
        let entries = store.entries();
        assert!(entries <= 100, "{entries} entries for a bound of 100");
        assert!(evicted.load(Ordering::Relaxed) >= 900 - 100);
    }
}
