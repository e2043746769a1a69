//! Measures what the in-memory replay store costs per remembered key:
//! resident memory before and after filling it with 1,000,000 completed
//! deliveries (`cargo run --release --example replay_memory [N]`).
//! `bench/run.sh` prints its figure.

use std::sync::Arc;
use std::time::Duration;

use hookguard::replay::memory::MemoryStore;
use hookguard::replay::{ClaimResult, ReplayStore};

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

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let entries: u64 = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let before = rss_bytes();
    let store = MemoryStore::new(entries, Arc::new(|_| {}));
    let ttl = Duration::from_secs(24 * 3600);
    for n in 0..entries {
        let mut key = [0u8; 16];
        key[..8].copy_from_slice(&n.to_le_bytes());
        key[8..].copy_from_slice(&(n.wrapping_mul(0x9e37_79b9_7f4a_7c15)).to_le_bytes());
        match store.claim(vec![key], ttl).await {
            Ok(ClaimResult::Claimed(claim)) => store.complete(&claim).await.expect("memory store"),
            other => panic!("unique key {n} not claimed: {other:?}"),
        }
    }
    let held = store.entries();
    let after = rss_bytes();
    let per_entry = (after.saturating_sub(before)) as f64 / held.max(1) as f64;
    println!(
        "replay store: {held} entries, resident memory {:.1} MiB -> {:.1} MiB, {per_entry:.0} bytes per entry",
        before as f64 / 1048576.0,
        after as f64 / 1048576.0
    );
}
