//! What each replay store costs in memory per remembered delivery key, the
//! figures the README quotes. Ignored by default (it takes a while and
//! measures rather than checks); run with
//! `cargo test --test all redis_memory -- --ignored --nocapture`.

use crate::support;

use std::sync::Arc;
use std::time::Duration;

use hookguard::config::{OnStoreError, RedisReplay};
use hookguard::replay::memory::MemoryStore;
use hookguard::replay::redis::RedisStore;
use hookguard::replay::{ClaimResult, Key, ReplayStore};
use sha2::{Digest, Sha256};
use support::RedisServer;

const TTL: Duration = Duration::from_secs(24 * 3600);

fn key(n: u32) -> Key {
    // Real keys are truncated SHA-256 digests; the memory store relies on
    // their bits being uniform.
    let digest = Sha256::digest(n.to_be_bytes());
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest[..16]);
    key
}

/// Resident set size of this process, in bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

async fn claim_and_complete(store: &dyn ReplayStore, n: u32) {
    let ClaimResult::Claimed(claim) = store.claim(vec![key(n)], TTL).await.unwrap() else {
        panic!("fresh keys are always claimed");
    };
    store.complete(&claim).await.unwrap();
}

#[tokio::test]
#[ignore]
async fn memory_per_key_of_each_store() {
    const MEMORY_KEYS: u32 = 1_000_000;
    let started = std::time::Instant::now();
    let before = rss();
    let store = MemoryStore::new(u64::from(MEMORY_KEYS) * 2, Arc::new(|_| {}));
    for n in 0..MEMORY_KEYS {
        claim_and_complete(&store, n).await;
    }
    assert_eq!(store.entries(), u64::from(MEMORY_KEYS));
    let grown = rss() - before;
    println!(
        "memory store: {MEMORY_KEYS} keys, RSS +{} MiB, {} bytes per key",
        grown >> 20,
        grown / u64::from(MEMORY_KEYS)
    );
    println!("memory run took {:?}", started.elapsed());
    drop(store);

    let Some(redis) = RedisServer::start(&[]).await else {
        return;
    };
    let started = std::time::Instant::now();
    const REDIS_KEYS: u32 = 200_000;
    let settings = RedisReplay {
        connection: redis::IntoConnectionInfo::into_connection_info(redis.url()).unwrap(),
        key_prefix: "hookguard:".to_owned(),
        store_timeout: Duration::from_secs(5),
        on_store_error: OnStoreError::Reject,
    };
    let store = Arc::new(RedisStore::new(
        &settings,
        Duration::from_secs(30),
        Arc::new(|_, _, _| {}),
    ));
    let mut connection = redis.client().await;
    let used = |info: String| -> u64 {
        info.lines()
            .find_map(|l| l.strip_prefix("used_memory:"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let before = used(
        redis::cmd("INFO")
            .arg("memory")
            .query_async(&mut connection)
            .await
            .unwrap(),
    );
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..32u32 {
        let store = store.clone();
        tasks.spawn(async move {
            let mut n = worker;
            while n < REDIS_KEYS {
                claim_and_complete(store.as_ref(), n).await;
                n += 32;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let keys: u64 = redis::cmd("DBSIZE")
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(keys, u64::from(REDIS_KEYS));
    let after = used(
        redis::cmd("INFO")
            .arg("memory")
            .query_async(&mut connection)
            .await
            .unwrap(),
    );
    let sample: String = redis::cmd("MEMORY")
        .arg("USAGE")
        .arg(format!("hookguard:{}", hex::encode(key(7))))
        .query_async::<i64>(&mut connection)
        .await
        .unwrap()
        .to_string();
    println!("redis run took {:?}", started.elapsed());
    println!(
        "redis store: {REDIS_KEYS} keys, used_memory +{} MiB, {} bytes per key (MEMORY USAGE of one key: {sample})",
        (after - before) >> 20,
        (after - before) / u64::from(REDIS_KEYS)
    );
}
