//! The queue store conformance suite: every [`QueueStore`] backend runs
//! these same checks (the embedded redb store here, the Redis store in
//! `durable_redis.rs`). Each check is a function over `&dyn QueueStore`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hookguard::queue::embedded::{EmbeddedStore, Journaling};
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
async fn the_embedded_store_without_its_journal_passes_the_conformance_suite() {
    let dir = TempDir::new("queue-conformance-unjournaled");
    let unjournaled = Journaling {
        bytes: 0,
        ..Journaling::default()
    };
    conformance(|name, max_bytes| {
        let sub = dir.0.join(name);
        std::fs::create_dir_all(&sub).unwrap();
        let store = EmbeddedStore::open_with_journal(&sub.join("queue.db"), max_bytes, unjournaled);
        std::future::ready(Arc::new(store.unwrap()) as Arc<dyn QueueStore>)
    })
    .await;
}

/// Set in the child process of the crash test below: its queue's file.
const CRASH_CHILD: &str = "HOOKGUARD_TEST_QUEUE_CRASH_CHILD";

/// The enqueues, takes and settles a process made before it crashed, with
/// no durable commit of the store since it opened, are all there when it
/// opens again: they were in the journal alone. The child (this same test
/// binary, running this test with [`CRASH_CHILD`] set) enqueues, takes
/// and settles, prints what it did, and aborts: no destructor runs, no
/// close, as in a `SIGKILL`.
#[tokio::test]
async fn what_the_journal_acknowledged_is_there_after_a_crash_with_no_checkpoint() {
    // No idle checkpoint: whatever the child acknowledged is in the
    // journal only.
    let journaling = Journaling {
        idle_checkpoint: Duration::from_secs(3600),
        ..Journaling::default()
    };
    if let Ok(file) = std::env::var(CRASH_CHILD) {
        let store = EmbeddedStore::open_with_journal(file.as_ref(), 1 << 30, journaling).unwrap();
        for n in 0..40u8 {
            let id = queued(&store, item("a", n, &[n; 700])).await;
            println!("queued {id}");
        }
        for item in store.take("a", T0, 10, ATTEMPT).await.unwrap() {
            println!("delivered {}", item.id);
            store
                .settle(item.id, Settle::Delivered { last: "200".into() }, T0)
                .await
                .unwrap();
        }
        // Taken, and in flight at the crash.
        for item in store.take("a", T0, 5, ATTEMPT).await.unwrap() {
            println!("taken {}", item.id);
        }
        use std::io::Write;
        std::io::stdout().flush().unwrap();
        std::process::abort();
    }
    let dir = TempDir::new("queue-crash");
    let file = dir.0.join("queue.db");
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "durable_store::what_the_journal_acknowledged_is_there_after_a_crash_with_no_checkpoint",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CRASH_CHILD, &file)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&child.stdout);
    assert!(!child.status.success(), "the child did not crash: {out}");
    let ids = |what: &str| -> Vec<Id> {
        out.lines()
            // The harness's own "test ... " may start the first line.
            .filter_map(|line| line.split_once(what))
            .map(|(_, id)| id.trim().parse().unwrap())
            .collect()
    };
    let (queued_ids, delivered, taken) = (ids("queued "), ids("delivered "), ids("taken "));
    assert_eq!(
        (queued_ids.len(), delivered.len(), taken.len()),
        (40, 10, 5),
        "{out}\n{}",
        String::from_utf8_lossy(&child.stderr)
    );
    // The file itself holds none of it: only the journal does.
    {
        let db = redb::Database::open(&file).unwrap();
        let txn = redb::ReadableDatabase::begin_read(&db).unwrap();
        let items = txn
            .open_table(redb::TableDefinition::<u128, &[u8]>::new("items"))
            .unwrap();
        assert_eq!(redb::ReadableTableMetadata::len(&items).unwrap(), 0);
    }
    let store = EmbeddedStore::open_with_journal(&file, 1 << 30, journaling).unwrap();
    for (n, id) in queued_ids.iter().enumerate() {
        let item = store
            .get(*id)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{id} lost"));
        assert_eq!(item.body.as_ref(), &[n as u8; 700][..]);
        // Takes and settles were journaled: the tries made are counted, and
        // what the app took is not delivered again. (The settles were
        // written but not flushed, which a crash of the process alone does
        // not lose.)
        let (state, tries) = if delivered.contains(id) {
            (ItemState::Delivered, 1)
        } else if taken.contains(id) {
            (ItemState::Ready, 1)
        } else {
            (ItemState::Ready, 0)
        };
        assert_eq!((item.state, item.tries), (state, tries), "{id}");
    }
    assert_eq!(store.recovered(), 5);
    assert_eq!(store.counts().values().sum::<u64>(), 40);
    // The dedupe keys came back with the items.
    assert!(matches!(
        store.enqueue(item("a", 3, b"again"), T0).await.unwrap(),
        Enqueued::Duplicate(id) if id == queued_ids[3]
    ));
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

/// Without a journal, and with a small one that fits the disk (the
/// default's 16 MiB does not, and the store then runs without).
#[tokio::test]
async fn a_full_disk_refuses_cleanly_keeps_what_it_acknowledged_and_writes_again_once_space_is_freed(
) {
    for bytes in [0, 1 << 20] {
        let journaling = Journaling {
            bytes,
            ..Journaling::default()
        };
        full_disk(journaling).await;
    }
}

async fn full_disk(journaling: Journaling) {
    let dir = TempDir::new("queue-enospc");
    let Some(disk) = SmallDisk::mount(&dir.0.join("disk"), "6m") else {
        eprintln!("note: cannot mount a tmpfs here (not root?); the full-disk check is skipped");
        return;
    };
    let filler = disk.0.join("filler");
    std::fs::write(&filler, vec![0u8; 2 << 20]).unwrap();
    let store =
        EmbeddedStore::open_with_journal(&disk.0.join("queue.db"), 1 << 30, journaling).unwrap();
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
    let refused = refused.unwrap_or_else(|| panic!("a 6 MiB disk took 12 MiB ({journaling:?})"));
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
