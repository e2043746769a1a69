//! The queue store conformance suite: every [`QueueStore`] backend runs
//! these same checks (the embedded redb store here, the Redis store in
//! `durable_redis.rs`). Each check is a function over `&dyn QueueStore`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hookguard::queue::embedded::EmbeddedStore;
use hookguard::queue::{Enqueued, Filter, Id, ItemState, NewItem, QueueError, QueueStore, Settle};

use crate::support::TempDir;

pub const T0: u64 = 1_800_000_000_000;

/// The attempt timeout given to `take`: the Redis store's lease is longer.
pub const ATTEMPT: Duration = Duration::from_secs(10);

pub fn item(route: &str, key: u8, body: &[u8]) -> NewItem {
    NewItem {
        route: route.into(),
        head: b"POST /hook HTTP/1.1\r\nhost: app\r\n".to_vec(),
        body: Bytes::copy_from_slice(body),
        keys: vec![[key; 16]],
        dedupe_ttl: Duration::from_secs(60),
        received_ms: T0,
    }
}

pub async fn queued(store: &dyn QueueStore, new: NewItem) -> Id {
    match store.enqueue(new, T0).await.unwrap() {
        Enqueued::Queued(id) => id,
        other => panic!("not queued: {other:?}"),
    }
}

/// Runs every check on a fresh store made by `open` (given the check's
/// name and `max_bytes`).
pub async fn conformance<F, Fut>(mut open: F)
where
    F: FnMut(&'static str, u64) -> Fut,
    Fut: std::future::Future<Output = Arc<dyn QueueStore>>,
{
    for (name, check) in CHECKS {
        let store = open(name, 1 << 20).await;
        check(store).await;
    }
}

type Check = fn(Arc<dyn QueueStore>) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>;

const CHECKS: &[(&str, Check)] = &[
    ("stored_exactly", |s| Box::pin(stored_exactly(s))),
    ("duplicates", |s| Box::pin(duplicates(s))),
    ("lifecycle", |s| Box::pin(lifecycle(s))),
    ("full", |s| Box::pin(full(s))),
    ("retention", |s| Box::pin(retention(s))),
];

/// An item reads back with its exact bytes, and is taken once.
async fn stored_exactly(store: Arc<dyn QueueStore>) {
    let body = b"{\"id\":\"evt_1\"}\r\n\x00\xff";
    let id = queued(&*store, item("a", 1, body)).await;
    let got = store.get(id).await.unwrap().unwrap();
    assert_eq!(&got.body[..], body);
    assert_eq!(got.state, ItemState::Ready);
    assert_eq!(
        store.counts().get(&("a".into(), ItemState::Ready)),
        Some(&1)
    );
    assert_eq!(store.next_due("a").await.unwrap(), Some(T0));
    assert!(
        store.take("b", T0, 10, ATTEMPT).await.unwrap().is_empty(),
        "another route's"
    );
    let taken = store.take("a", T0, 10, ATTEMPT).await.unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!((taken[0].id, taken[0].tries), (id, 1));
    assert!(
        store.take("a", T0, 10, ATTEMPT).await.unwrap().is_empty(),
        "taken twice"
    );
    assert!(store.bytes() > body.len() as u64);
}

/// A copy sharing a key is a duplicate of the first, nothing stored;
/// once the key expires (and is swept) it is queued again.
async fn duplicates(store: Arc<dyn QueueStore>) {
    let first = queued(&*store, item("a", 2, b"x")).await;
    let copy = store.enqueue(item("a", 2, b"x"), T0 + 1).await.unwrap();
    assert_eq!(copy, Enqueued::Duplicate(first));
    assert_eq!(
        store
            .list(&Filter {
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap()
            .len(),
        1
    );
    let later = T0 + 61_000;
    store.expire(0, 0, later, 1000).await.unwrap();
    assert!(matches!(
        store.enqueue(item("a", 2, b"x"), later).await.unwrap(),
        Enqueued::Queued(_)
    ));
}

/// Retry spends an attempt and waits; release does not; delivered and
/// dead are final until redelivered.
async fn lifecycle(store: Arc<dyn QueueStore>) {
    let id = queued(&*store, item("a", 3, b"x")).await;
    store.take("a", T0, 1, ATTEMPT).await.unwrap();
    store
        .settle(
            id,
            Settle::Retry {
                next_ms: T0 + 10_000,
                last: "500".into(),
            },
            T0,
        )
        .await
        .unwrap();
    let got = store.get(id).await.unwrap().unwrap();
    assert_eq!(
        (got.state, got.attempts, got.last.as_str()),
        (ItemState::Waiting, 1, "500")
    );
    assert!(
        store
            .take("a", T0 + 9_999, 1, ATTEMPT)
            .await
            .unwrap()
            .is_empty(),
        "not due yet"
    );
    store.take("a", T0 + 10_000, 1, ATTEMPT).await.unwrap();
    store
        .settle(
            id,
            Settle::Release {
                next_ms: T0,
                last: "refused".into(),
            },
            T0,
        )
        .await
        .unwrap();
    let got = store.get(id).await.unwrap().unwrap();
    assert_eq!(
        (got.state, got.attempts, got.tries),
        (ItemState::Ready, 1, 2)
    );
    store.take("a", T0, 1, ATTEMPT).await.unwrap();
    store
        .settle(id, Settle::Dead { last: "404".into() }, T0 + 5)
        .await
        .unwrap();
    assert_eq!(store.get(id).await.unwrap().unwrap().state, ItemState::Dead);
    let dead = Filter {
        state: Some(ItemState::Dead),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(store.list(&dead).await.unwrap().len(), 1);
    // A settle for an item not in flight changes nothing.
    store
        .settle(id, Settle::Delivered { last: "200".into() }, T0)
        .await
        .unwrap();
    assert_eq!(store.get(id).await.unwrap().unwrap().state, ItemState::Dead);
    assert!(store.redeliver(id, T0 + 6).await.unwrap());
    let again = store.take("a", T0 + 6, 1, ATTEMPT).await.unwrap();
    assert_eq!(again[0].id, id);
    store
        .settle(id, Settle::Delivered { last: "200".into() }, T0 + 7)
        .await
        .unwrap();
    assert_eq!(
        store.get(id).await.unwrap().unwrap().state,
        ItemState::Delivered
    );
    assert_eq!(store.purge(&[id]).await.unwrap(), 1);
    assert!(store.get(id).await.unwrap().is_none());
    assert_eq!(store.bytes(), 0);
    store.set_paused("a", true).await.unwrap();
    assert!(store.paused("a"));
    store.set_paused("a", false).await.unwrap();
    assert!(!store.paused("a"));
}

/// Past max_bytes an item is refused with nothing stored, keys included.
async fn full(store: Arc<dyn QueueStore>) {
    let big = vec![b'x'; 300 * 1024];
    let mut stored = 0;
    let mut refused = None;
    for key in 0..10u8 {
        match store.enqueue(item("a", 100 + key, &big), T0).await {
            Ok(Enqueued::Queued(_)) => stored += 1,
            Err(error) => {
                refused = Some((key, error));
                break;
            }
            Ok(other) => panic!("{other:?}"),
        }
    }
    let (key, error) = refused.expect("a 1 MiB queue took 3 MiB");
    assert_eq!(error, QueueError::Full);
    assert_eq!(stored, 3);
    let all = Filter {
        limit: 100,
        ..Default::default()
    };
    assert_eq!(store.list(&all).await.unwrap().len(), 3);
    // The refused item's key was not taken: once room is made, it goes in.
    let first = store.list(&all).await.unwrap()[0].id;
    store.purge(&[first]).await.unwrap();
    assert!(matches!(
        store.enqueue(item("a", 100 + key, &big), T0).await.unwrap(),
        Enqueued::Queued(_)
    ));
}

/// Retention removes finished items older than their window only.
async fn retention(store: Arc<dyn QueueStore>) {
    let ids = [
        queued(&*store, item("a", 50, b"1")).await,
        queued(&*store, item("a", 51, b"2")).await,
        queued(&*store, item("a", 52, b"3")).await,
    ];
    store.take("a", T0, 3, ATTEMPT).await.unwrap();
    store
        .settle(ids[0], Settle::Delivered { last: "200".into() }, T0)
        .await
        .unwrap();
    store
        .settle(ids[1], Settle::Dead { last: "404".into() }, T0)
        .await
        .unwrap();
    // Delivered older than T0+1 go; dead ones only older than T0.
    assert_eq!(store.expire(T0 + 1, T0, T0, 1000).await.unwrap(), 1);
    assert!(store.get(ids[0]).await.unwrap().is_none());
    assert!(store.get(ids[1]).await.unwrap().is_some());
    assert_eq!(
        store.get(ids[2]).await.unwrap().unwrap().state,
        ItemState::InFlight
    );
}

fn open_embedded(dir: &std::path::Path, max_bytes: u64) -> Arc<dyn QueueStore> {
    Arc::new(EmbeddedStore::open(&dir.join("queue.db"), max_bytes).unwrap())
}

#[tokio::test]
async fn the_embedded_store_passes_the_conformance_suite() {
    let dir = TempDir::new("queue-conformance");
    conformance(|name, max_bytes| {
        let sub = dir.0.join(name);
        std::fs::create_dir_all(&sub).unwrap();
        std::future::ready(open_embedded(&sub, max_bytes))
    })
    .await;
}

#[tokio::test]
async fn items_in_flight_when_the_store_closed_are_ready_when_it_opens() {
    let dir = TempDir::new("queue-recover");
    let id = {
        let store = open_embedded(&dir.0, 1 << 20);
        let id = queued(&*store, item("a", 1, b"x")).await;
        assert_eq!(store.take("a", T0, 1, ATTEMPT).await.unwrap().len(), 1);
        id
    };
    // The writer thread holds the file until its channel closes.
    let mut reopened = None;
    for _ in 0..100 {
        match EmbeddedStore::open(&dir.0.join("queue.db"), 1 << 20) {
            Ok(store) => {
                reopened = Some(store);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    let store = reopened.expect("reopened");
    assert_eq!(store.recovered(), 1);
    assert_eq!(
        store.get(id).await.unwrap().unwrap().state,
        ItemState::Ready
    );
    assert_eq!(store.take("a", T0, 1, ATTEMPT).await.unwrap()[0].tries, 2);
}

#[tokio::test]
async fn concurrent_enqueues_share_commits() {
    let dir = TempDir::new("queue-group");
    let store = Arc::new(EmbeddedStore::open(&dir.0.join("queue.db"), 1 << 30).unwrap());
    let before = store.commits();
    let tasks: Vec<_> = (0..200u32)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut new = item("a", 0, b"x");
                new.keys[0][..4].copy_from_slice(&n.to_be_bytes());
                store.enqueue(new, T0).await.unwrap()
            })
        })
        .collect();
    for task in tasks {
        assert!(matches!(task.await.unwrap(), Enqueued::Queued(_)));
    }
    let commits = store.commits() - before;
    assert!(commits < 200, "200 enqueues took {commits} commits");
}

/// A small tmpfs mounted for one test, unmounted when dropped; `None`
/// where this process may not mount (not root, or no mount namespace).
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(at: &std::path::Path, size: &str) -> Option<SmallDisk> {
        std::fs::create_dir_all(at).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .stderr(std::process::Stdio::null())
            .status()
            .ok()?;
        status.success().then(|| SmallDisk(at.to_owned()))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        // Lazily: the store's writer thread may still hold its file for a
        // moment after the store is dropped.
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[tokio::test]
async fn a_full_disk_refuses_cleanly_keeps_what_it_acknowledged_and_writes_again_once_space_is_freed(
) {
    let dir = TempDir::new("queue-enospc");
    let Some(disk) = SmallDisk::mount(&dir.0.join("disk"), "6m") else {
        eprintln!("note: cannot mount a tmpfs here (not root?); the full-disk check is skipped");
        return;
    };
    let filler = disk.0.join("filler");
    std::fs::write(&filler, vec![0u8; 2 << 20]).unwrap();
    let store = EmbeddedStore::open(&disk.0.join("queue.db"), 1 << 30).unwrap();
    let body = vec![b'x'; 64 * 1024];
    let mut acknowledged = Vec::new();
    let mut refused = None;
    for n in 0..200u8 {
        match store.enqueue(item("a", n, &body), T0).await {
            Ok(Enqueued::Queued(id)) => acknowledged.push(id),
            Ok(other) => panic!("{other:?}"),
            Err(error) => {
                refused = Some(error);
                break;
            }
        }
    }
    let refused = refused.expect("a 6 MiB disk took 12 MiB");
    assert!(matches!(refused, QueueError::Io(_)), "{refused:?}");
    assert!(!acknowledged.is_empty());
    // Room again: the store opens its file again and takes writes.
    std::fs::remove_file(&filler).unwrap();
    let mut again = None;
    for _ in 0..5 {
        match store.enqueue(item("a", 250, b"small"), T0).await {
            Ok(result) => {
                again = Some(result);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    assert!(matches!(again, Some(Enqueued::Queued(_))), "{again:?}");
    // Everything acknowledged before the disk filled is still there.
    for id in &acknowledged {
        assert!(store.get(*id).await.unwrap().is_some(), "{id} lost");
    }
    drop(store);
    drop(disk);
}
