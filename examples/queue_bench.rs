//! Measures the embedded queue store against the disk it sits on: the
//! disk's own fsync latency (write 1.2 KiB, `fdatasync`) and enqueue
//! latency at 1,000 requests a second (each its own caller), in turns
//! over the same seconds, journal checkpoints included, then
//! the accept rate with 64 callers at once (group commit), then take and
//! settle throughput (the worker's side). Run it on the volume the queue
//! will use:
//!
//! ```sh
//! cargo run --release --example queue_bench -- /var/lib/hookguard
//! ```
//!
//! Given a `redis://` URL instead, it measures the Redis store there (a
//! fresh key prefix, deleted after; the fsync figure is then the local
//! disk's, for comparison): run that Redis with `appendonly yes`,
//! `appendfsync always` and `maxmemory-policy noeviction`, as hookguard
//! requires.
//!
//! Bounded: 6,000 fsyncs, 30,000 paced enqueues (about 35 s), 5 s of
//! concurrent ones.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hookguard::queue::embedded::EmbeddedStore;
use hookguard::queue::redis::RedisQueue;
use hookguard::queue::{NewItem, QueueStore, Settle};
use redis::IntoConnectionInfo;

const RECORD: usize = 1200;

/// Blocks of paced enqueues (1,000 each) and bare fsyncs (200 each).
const BLOCKS: u64 = 30;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn show(label: &str, mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    let (p50, p99) = (percentile(&samples, 0.5), percentile(&samples, 0.99));
    println!(
        "{label}: p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms ({} samples)",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        percentile(&samples, 0.999).as_secs_f64() * 1e3,
        samples.last().unwrap().as_secs_f64() * 1e3,
        samples.len()
    );
    p99
}

fn item(n: u64) -> NewItem {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&n.to_be_bytes());
    NewItem {
        route: "bench".into(),
        head: vec![b'h'; 200],
        body: Bytes::from(vec![b'b'; RECORD - 200]),
        keys: vec![key],
        dedupe_ttl: Duration::from_secs(3600),
        received_ms: hookguard::queue::now_ms(),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let target = std::env::args().nth(1).unwrap_or_else(|| ".".into());
    let redis_url = target.starts_with("redis://").then(|| target.clone());
    let base = if redis_url.is_some() {
        std::env::temp_dir().display().to_string()
    } else {
        target
    };
    let dir = std::path::Path::new(&base).join(format!("queue-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    let prefix = format!("queue-bench-{}:", std::process::id());
    let (store, embedded): (Arc<dyn QueueStore>, Option<Arc<EmbeddedStore>>) = match &redis_url {
        Some(url) => {
            let settings = hookguard::config::RedisQueue {
                connection: url.as_str().into_connection_info().unwrap(),
                key_prefix: prefix.clone(),
                store_timeout: Duration::from_secs(5),
                accept_redis_risk: false,
            };
            let store = RedisQueue::open(&settings, 8 << 30)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            (Arc::new(store), None)
        }
        None => {
            let store = Arc::new(EmbeddedStore::open(&dir.join("queue.db"), 8 << 30).unwrap());
            (store.clone(), Some(store))
        }
    };
    // The disk's fsync latency moves within seconds on a shared volume, so
    // the two are measured in turns over the same stretch of time: blocks
    // of 200 bare fsyncs, each followed by 1,000 enqueues at one a
    // millisecond, each its own caller (as senders are), so that requests
    // arriving during a commit wait for it and share the next. 30,000
    // enqueues fill the store's 16 MiB journal twice: the durable commits
    // that empty it (checkpoints) are in the figures, at the rate a steady
    // 1,000 a second brings them.
    let checkpoints_before = embedded.as_ref().map_or(0, |e| e.checkpoints());
    let mut file = std::fs::File::create(dir.join("fsync")).unwrap();
    let mut fsyncs = Vec::new();
    let mut paced = Vec::new();
    for block in 0..BLOCKS {
        for _ in 0..200 {
            let started = Instant::now();
            file.write_all(&[7u8; RECORD]).unwrap();
            file.sync_data().unwrap();
            fsyncs.push(started.elapsed());
        }
        let mut next = Instant::now();
        let mut callers = Vec::new();
        for n in block * 1000..(block + 1) * 1000 {
            next += Duration::from_millis(1);
            tokio::time::sleep_until(next.into()).await;
            let store = store.clone();
            callers.push(tokio::spawn(async move {
                let started = Instant::now();
                store
                    .enqueue(item(n), hookguard::queue::now_ms())
                    .await
                    .unwrap();
                started.elapsed()
            }));
        }
        for caller in callers {
            paced.push(caller.await.unwrap());
        }
    }
    let fsync_p99 = show(
        &format!("fsync (write 1.2 KiB + fdatasync), in {BLOCKS} blocks"),
        fsyncs,
    );
    let enqueue_p99 = show(
        &format!("enqueue at 1,000/s, in the {BLOCKS} blocks between"),
        paced,
    );
    if let Some(embedded) = &embedded {
        println!(
            "  durable commits (journal checkpoints) among them: {}",
            embedded.checkpoints() - checkpoints_before
        );
    }
    println!(
        "enqueue p99 - fsync p99 = {:+.3} ms (target: at most +2 ms)",
        (enqueue_p99.as_secs_f64() - fsync_p99.as_secs_f64()) * 1e3
    );

    let commits_before = embedded.as_ref().map_or(0, |e| e.commits());
    let stop = Instant::now() + Duration::from_secs(5);
    let tasks: Vec<_> = (0..64u64)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut n = 0u64;
                while Instant::now() < stop {
                    store
                        .enqueue(
                            item(1_000_000 + t * 10_000_000 + n),
                            hookguard::queue::now_ms(),
                        )
                        .await
                        .unwrap();
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    match &embedded {
        Some(embedded) => {
            let commits = embedded.commits() - commits_before;
            println!(
                "64 callers for 5 s: {} enqueues/s, {:.1} per commit",
                total / 5,
                total as f64 / commits as f64
            );
        }
        None => println!("64 callers for 5 s: {} enqueues/s", total / 5),
    }

    let started = Instant::now();
    let mut settled = 0u64;
    loop {
        let items = store
            .take("bench", u64::MAX, 64, Duration::from_secs(30))
            .await
            .unwrap();
        if items.is_empty() {
            break;
        }
        let settles: Vec<_> = items
            .into_iter()
            .map(|item| {
                let store = store.clone();
                tokio::spawn(async move {
                    store
                        .settle(
                            item.id,
                            Settle::Delivered { last: "200".into() },
                            hookguard::queue::now_ms(),
                        )
                        .await
                        .unwrap()
                })
            })
            .collect();
        for s in settles {
            s.await.unwrap();
            settled += 1;
        }
    }
    let took = started.elapsed().as_secs_f64();
    println!(
        "take 64 + settle each, drained {settled} items in {took:.1} s: {:.0} items/s",
        settled as f64 / took
    );
    drop(store);
    drop(embedded);
    if let Some(url) = &redis_url {
        // The settled items stay for retention; the bench's keys go.
        let mut connection = redis::Client::open(url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}*"))
            .query_async(&mut connection)
            .await
            .unwrap();
        for chunk in keys.chunks(1000) {
            let _: () = redis::cmd("DEL")
                .arg(chunk)
                .query_async(&mut connection)
                .await
                .unwrap();
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
