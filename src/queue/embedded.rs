//! The embedded queue store: one redb file, written by one thread.
//!
//! Every change goes through one writer thread that takes everything
//! queued while the previous commit ran and applies it as one transaction
//! (group commit): concurrent requests share a flush. Reads (listings, the
//! worker's next-due lookups) use redb's MVCC read transactions and never
//! wait for the writer.
//!
//! What makes an acknowledged change durable is the journal beside the
//! file (the `journal` module), not the redb commit. A durable redb commit
//! (`Durability::Immediate`, one `fsync` with checksummed commit slots,
//! redb's `docs/design.md`, "1PC+C") writes every page the transaction
//! changed, about 13 of 4 KiB for one enqueue, and the disk's flush
//! latency grows with that: its p99 was 2 to 15 ms over a bare small
//! `fdatasync` on the project's machine. So a batch of enqueues and takes
//! is written to the journal as one record and flushed with one
//! `fdatasync`, and redb commits it without a flush (`Durability::None`,
//! kept in redb's memory and visible to readers at once). A durable commit
//! (a checkpoint) follows when the journal is full, when the writer has
//! been idle for a while ([`Journaling`]), and for every operator action; each
//! records in `meta` the sequence number the journal's next record will
//! have, and the journal starts over. At open, and whenever the file is
//! opened again after a failed commit, the records the last durable
//! commit does not cover are applied again (`restore`).
//!
//! Settled attempts are journaled but not flushed on their own: the next
//! flushed record carries them, and losing the last few in a crash only
//! means an item is delivered again (with the next attempt number, as its
//! take was journaled), which at-least-once allows. Retention's removals
//! are not journaled at all: lost, they are purged again. Operator
//! actions (redeliver, purge, pause, resume) are durable redb commits.
//!
//! Tables: `items` (id → record), `due` ((route, due ms, id) for ready and
//! waiting items), `in_flight` (id), `done` ((state, finished ms, id) for
//! delivered and dead ones, for retention), `dedupe` (key → (id, expiry
//! ms)), `meta` ((route, state) → n, and the file's own entries under the
//! route "": its format version and the stored bytes) and `paused`
//! (route). A change and its index entries and counters are always in one
//! transaction.
//!
//! An enqueue writes the fewest tables it can, as each table it touches is
//! a B-tree whose changed leaf and branch pages are written before the
//! commit's flush: the counters and the bytes share one table (one leaf),
//! and expired dedupe keys are found by walking `dedupe` itself, a bounded
//! stretch per retention run (see `sweep_dedupe`), rather than through an
//! expiry index every enqueue would also write (format 1 had both: a
//! single-item commit wrote 16 pages of 4 KiB, now 13).

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, RwLock};

use async_trait::async_trait;
use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction,
};
use tokio::sync::oneshot;

use journal::Journal;

use super::{
    record, Counts, Enqueued, Filter, Id, Item, ItemState, NewItem, QueueError, QueueStore, Settle,
};
use crate::replay::Key;

mod journal;

const ITEMS: TableDefinition<u128, &[u8]> = TableDefinition::new("items");
const DUE: TableDefinition<(&str, u64, u128), ()> = TableDefinition::new("due");
const IN_FLIGHT: TableDefinition<u128, ()> = TableDefinition::new("in_flight");
const DONE: TableDefinition<(u8, u64, u128), ()> = TableDefinition::new("done");
const DEDUPE: TableDefinition<&[u8; 16], (u128, u64)> = TableDefinition::new("dedupe");
const META: TableDefinition<(&str, u8), u64> = TableDefinition::new("meta");
const PAUSED: TableDefinition<&str, ()> = TableDefinition::new("paused");

/// The file's layout; an open refuses any other (see [`check_format`]).
/// 1 had separate `counts` and `dedupe_expiry` tables and no version
/// entry; 2 had these tables and no journal; 3 is this module's: the same
/// tables, with changes past the last durable commit in the journal, which
/// a build reading format 2 would ignore (losing what a crash left there),
/// so it must refuse the file.
const FORMAT: u64 = 3;

/// An older format this build opens as its own: 2 is 3 without a journal
/// (the open records 3).
const READS_ALSO: u64 = 2;

/// The `meta` key of the format version. State codes are below 5, so the
/// file's own entries clash with no route's count (and are no count).
const FORMAT_KEY: (&str, u8) = ("", 200);

/// The `meta` key of the stored items' bytes.
const BYTES_KEY: (&str, u8) = ("", 201);

/// The `meta` key of the journal's next sequence number as of the last
/// durable commit: records below it are in that commit (or were voided).
const JOURNAL_KEY: (&str, u8) = ("", 202);

/// How the store uses its journal; [`Journaling::default`] is what
/// hookguard runs with.
#[derive(Debug, Clone, Copy)]
pub struct Journaling {
    /// The journal's size; 0 for none (every batch is then a durable redb
    /// commit). A full journal makes the next batch a checkpoint, so this
    /// bounds what a restart applies again and how often a steady stream
    /// of enqueues waits for a durable redb commit.
    pub bytes: u64,
    /// A writer with nothing to do for this long, and records in its
    /// journal, makes a checkpoint: quiet stretches pay for it, not
    /// requests.
    pub idle_checkpoint: std::time::Duration,
}

impl Default for Journaling {
    /// 16 MiB (about 13,000 enqueues of 1 KiB: a checkpoint every 13 s at
    /// 1,000 a second) and 250 ms.
    fn default() -> Self {
        Journaling {
            bytes: 16 << 20,
            idle_checkpoint: std::time::Duration::from_millis(250),
        }
    }
}

/// Journal operations: an enqueued item (id, dedupe expiry, its record),
/// a take (id), a settled attempt (id, when, outcome, next due, why).
const OP_ENQUEUED: u8 = 1;
const OP_TAKEN: u8 = 2;
const OP_SETTLED: u8 = 3;

/// Dedupe entries one retention run looks at, per key it may remove: the
/// walk is a read of mostly cached leaves, cheap next to the removals.
const SWEEP_SCAN_PER_REMOVAL: usize = 16;

/// Most commands one transaction takes: a bound on how long one commit's
/// callers wait behind the others.
const MAX_BATCH: usize = 512;

/// redb's page cache; its own default is 1 GiB, far more than a queue of
/// mostly cold bodies needs.
const CACHE_BYTES: usize = 8 << 20;

/// How often the file is flushed ahead of a checkpoint (see
/// [`flush_ahead`]).
const FLUSH_AHEAD: std::time::Duration = std::time::Duration::from_millis(100);

/// The embedded store (see the module doc).
pub struct EmbeddedStore {
    /// The open database, for read transactions; the writer empties it
    /// after a failed commit and opens the file again (see [`write_loop`]).
    db: Arc<Slot>,
    /// To the writer thread.
    writer: Mutex<mpsc::Sender<Command>>,
    /// What is counted, mirrored from the `meta` table after each commit.
    shared: Arc<Shared>,
    /// The file, for messages.
    path: PathBuf,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EmbeddedStore({})", self.path.display())
    }
}

/// What readers see of the writer's work without a transaction.
#[derive(Debug, Default)]
struct Shared {
    counts: Mutex<Counts>,
    bytes: AtomicU64,
    paused: Mutex<HashSet<String>>,
    recovered: AtomicU64,
    /// Commits made, and items they carried (for the batch-size metric).
    commits: AtomicU64,
    /// Durable commits made since open (checkpoints of the journal).
    checkpoints: AtomicU64,
}

/// Where the next retention run's walk of `dedupe` starts: after this key,
/// or at the first when `None` (at open, and after reaching the end). Only
/// the writer thread uses it.
type SweepCursor = Option<Key>;

/// A change for the writer thread, with where its answer goes.
enum Command {
    Enqueue(Box<NewItem>, u64, Reply<Enqueued>),
    Take(String, u64, usize, Reply<Vec<Item>>),
    Settle(Id, Settle, u64, Reply<()>),
    Redeliver(Id, u64, Reply<bool>),
    Purge(Vec<Id>, Reply<u64>),
    Expire([u64; 3], usize, Reply<u64>),
    Pause(String, bool, Reply<()>),
}

type Reply<T> = oneshot::Sender<Result<T, QueueError>>;

/// The database, shared by the writer and readers; `None` while the writer
/// reopens it.
type Slot = RwLock<Option<Arc<Database>>>;

/// Opens the file with hookguard's settings.
fn open_file(path: &Path) -> Result<Database, redb::DatabaseError> {
    Database::builder().set_cache_size(CACHE_BYTES).create(path)
}

impl EmbeddedStore {
    /// Opens (or creates) the store at `path` with the default
    /// [`Journaling`], recovering what a crash left (see
    /// [`EmbeddedStore::open_with_journal`]).
    pub fn open(path: &Path, max_bytes: u64) -> Result<EmbeddedStore, String> {
        EmbeddedStore::open_with_journal(path, max_bytes, Journaling::default())
    }

    /// Opens (or creates) the store at `path`, applies what its journal
    /// holds beyond the last durable commit, makes items left in flight
    /// ready, and starts its writer thread. Blocks for the open (redb
    /// repairs a file not closed cleanly here).
    ///
    /// A journal that cannot be made (a full disk) is as none: every
    /// batch is then a durable redb commit, and the log says so.
    pub fn open_with_journal(
        path: &Path,
        max_bytes: u64,
        journaling: Journaling,
    ) -> Result<EmbeddedStore, String> {
        let shown = path.display();
        let db = open_file(path).map_err(|e| format!("cannot open the queue at {shown}: {e}"))?;
        check_format(&db, path)?;
        let shared = Arc::new(Shared::default());
        let journal_path = journal::path_for(path);
        let (recovered, next_seq) = restore(&db, &journal_path, &shared)
            .map_err(|e| format!("cannot recover the queue at {shown}: {e}"))?;
        shared.recovered.store(recovered, Ordering::Relaxed);
        let journal = make_journal(&journal_path, journaling.bytes);
        let db = Arc::new(RwLock::new(Some(Arc::new(db))));
        let (sender, receiver) = mpsc::channel();
        let mut writer = Writer {
            slot: db.clone(),
            path: path.to_owned(),
            journal_path,
            shared: shared.clone(),
            max_bytes,
            journal,
            journaling,
            next_seq,
            cursor: None,
        };
        std::thread::Builder::new()
            .name("hookguard-queue".into())
            .spawn(move || writer.run(&receiver))
            .map_err(|e| format!("cannot start the queue's writer thread: {e}"))?;
        if journaling.bytes > 0 {
            let (file, alive) = (path.to_owned(), Arc::downgrade(&shared));
            std::thread::Builder::new()
                .name("hookguard-queue-flush".into())
                .spawn(move || flush_ahead(&file, &alive))
                .map_err(|e| format!("cannot start the queue's flusher thread: {e}"))?;
        }
        Ok(EmbeddedStore {
            db,
            writer: Mutex::new(sender),
            shared,
            path: path.to_owned(),
        })
    }

    /// Commits made so far.
    pub fn commits(&self) -> u64 {
        self.shared.commits.load(Ordering::Relaxed)
    }

    /// Durable commits made so far (each a checkpoint of the journal).
    pub fn checkpoints(&self) -> u64 {
        self.shared.checkpoints.load(Ordering::Relaxed)
    }

    async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, QueueError> {
        let (tx, rx) = oneshot::channel();
        let sent = self.writer.lock().map_err(|_| closed())?.send(make(tx));
        if sent.is_err() {
            return Err(closed());
        }
        rx.await.map_err(|_| closed())?
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> Result<T, redb::Error> + Send + 'static,
    ) -> Result<T, QueueError> {
        let db = self
            .db
            .read()
            .map_err(|_| closed())?
            .clone()
            .ok_or_else(|| QueueError::Io("the queue's file is being reopened".into()))?;
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(|e| QueueError::Io(e.to_string()))?
            .map_err(io)
    }
}

fn closed() -> QueueError {
    QueueError::Io("the queue's writer has stopped".into())
}

fn io(error: impl std::fmt::Display) -> QueueError {
    QueueError::Io(error.to_string())
}

#[async_trait]
impl QueueStore for EmbeddedStore {
    async fn enqueue(&self, item: NewItem, now_ms: u64) -> Result<Enqueued, QueueError> {
        self.ask(|tx| Command::Enqueue(Box::new(item), now_ms, tx))
            .await
    }

    /// One process owns the file: nothing else can take an item, so there
    /// is no lease (items in flight at a crash are ready on open).
    async fn take(
        &self,
        route: &str,
        now_ms: u64,
        max: usize,
        _timeout: std::time::Duration,
    ) -> Result<Vec<Item>, QueueError> {
        self.ask(|tx| Command::Take(route.to_owned(), now_ms, max, tx))
            .await
    }

    async fn settle(&self, id: Id, settle: Settle, now_ms: u64) -> Result<(), QueueError> {
        self.ask(|tx| Command::Settle(id, settle, now_ms, tx)).await
    }

    async fn next_due(&self, route: &str) -> Result<Option<u64>, QueueError> {
        let route = route.to_owned();
        self.read(move |db| {
            let txn = db.begin_read()?;
            let due = txn.open_table(DUE)?;
            let first = due
                .range((route.as_str(), 0u64, 0u128)..=(route.as_str(), u64::MAX, u128::MAX))?
                .next()
                .transpose()?;
            Ok(first.map(|(key, _)| key.value().1))
        })
        .await
    }

    async fn oldest_due(&self, route: &str, now_ms: u64) -> Result<Option<u64>, QueueError> {
        let route = route.to_owned();
        self.read(move |db| {
            let txn = db.begin_read()?;
            let (due, items) = (txn.open_table(DUE)?, txn.open_table(ITEMS)?);
            let mut oldest: Option<u64> = None;
            // Due entries are in due order; the oldest arrival among the
            // first few due is close enough for an alert and bounded.
            for entry in due
                .range((route.as_str(), 0u64, 0u128)..=(route.as_str(), now_ms, u128::MAX))?
                .take(64)
            {
                let (key, _) = entry?;
                if let Some(record) = items.get(key.value().2)? {
                    if let Some(item) = record::decode(Id(key.value().2), record.value()) {
                        oldest = Some(oldest.map_or(item.received_ms, |o| o.min(item.received_ms)));
                    }
                }
            }
            Ok(oldest)
        })
        .await
    }

    async fn get(&self, id: Id) -> Result<Option<Item>, QueueError> {
        self.read(move |db| {
            let txn = db.begin_read()?;
            let items = txn.open_table(ITEMS)?;
            Ok(items
                .get(id.0)?
                .and_then(|record| record::decode(id, record.value())))
        })
        .await
    }

    async fn list(&self, filter: &Filter) -> Result<Vec<Item>, QueueError> {
        let filter = filter.clone();
        self.read(move |db| {
            let txn = db.begin_read()?;
            let items = txn.open_table(ITEMS)?;
            let mut out = Vec::new();
            for entry in items.iter()? {
                if out.len() >= filter.limit {
                    break;
                }
                let (id, record) = entry?;
                let Some(item) = record::decode(Id(id.value()), record.value()) else {
                    continue;
                };
                let when = if item.state.is_done() {
                    item.finished_ms
                } else {
                    item.received_ms
                };
                if filter.route.as_ref().is_some_and(|r| *r != item.route)
                    || filter.state.is_some_and(|s| s != item.state)
                    || filter.before_ms.is_some_and(|before| when >= before)
                {
                    continue;
                }
                out.push(item);
            }
            Ok(out)
        })
        .await
    }

    async fn redeliver(&self, id: Id, now_ms: u64) -> Result<bool, QueueError> {
        self.ask(|tx| Command::Redeliver(id, now_ms, tx)).await
    }

    async fn purge(&self, ids: &[Id]) -> Result<u64, QueueError> {
        self.ask(|tx| Command::Purge(ids.to_vec(), tx)).await
    }

    async fn expire(
        &self,
        delivered_before_ms: u64,
        dead_before_ms: u64,
        now_ms: u64,
        max: usize,
    ) -> Result<u64, QueueError> {
        self.ask(|tx| Command::Expire([delivered_before_ms, dead_before_ms, now_ms], max, tx))
            .await
    }

    async fn set_paused(&self, route: &str, paused: bool) -> Result<(), QueueError> {
        self.ask(|tx| Command::Pause(route.to_owned(), paused, tx))
            .await
    }

    fn paused(&self, route: &str) -> bool {
        self.shared
            .paused
            .lock()
            .is_ok_and(|paused| paused.contains(route))
    }

    fn counts(&self) -> Counts {
        self.shared
            .counts
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default()
    }

    fn bytes(&self) -> u64 {
        self.shared.bytes.load(Ordering::Relaxed)
    }

    fn recovered(&self) -> u64 {
        self.shared.recovered.load(Ordering::Relaxed)
    }
}

/// Brings the file to where the acknowledged changes left it: applies
/// the journal's records from the sequence number the last durable commit
/// recorded on, makes every item left in flight ready (delivered again: at
/// least once), loads the counters, and commits that durably. Run at open
/// and whenever the writer opens the file again after a failed commit
/// (which loses redb's commits made without a flush, the journal's
/// records among them). Returns how many items were in flight, and the
/// journal's next sequence number.
fn restore(db: &Database, journal: &Path, shared: &Shared) -> Result<(u64, u64), String> {
    let records = journal::read(journal)
        .map_err(|e| format!("cannot read its journal {}: {e}", journal.display()))?;
    let restored = (|| -> Result<(u64, u64), redb::Error> {
        let txn = db.begin_write()?;
        let mut recovered = 0;
        let next_seq;
        {
            let mut tables = Tables::open(&txn)?;
            let from = tables.meta.get(JOURNAL_KEY)?.map_or(0, |v| v.value());
            let mut next = from;
            let mut bytes = tables.meta.get(BYTES_KEY)?.map_or(0, |v| v.value());
            for (seq, payload) in records.iter().filter(|(seq, _)| *seq >= from) {
                replay(&mut tables, payload, &mut bytes)?;
                next = next.max(seq + 1);
            }
            tables.meta.insert(BYTES_KEY, bytes)?;
            let stuck: Vec<u128> = tables
                .in_flight
                .iter()?
                .map(|entry| entry.map(|(id, _)| id.value()))
                .collect::<Result<_, _>>()?;
            for id in stuck {
                tables.in_flight.remove(id)?;
                if let Some(mut item) = tables.load(Id(id))? {
                    tables.count(&item.route, item.state, -1)?;
                    item.state = ItemState::Ready;
                    tables.store(&item)?;
                    tables.count(&item.route, item.state, 1)?;
                    tables
                        .due
                        .insert((item.route.as_str(), item.next_ms, id), ())?;
                    recovered += 1;
                }
            }
            tables.meta.insert(FORMAT_KEY, FORMAT)?;
            tables.meta.insert(JOURNAL_KEY, next)?;
            next_seq = next;
            tables.mirror(shared)?;
        }
        txn.commit()?;
        Ok((recovered, next_seq))
    })();
    restored.map_err(|e| e.to_string())
}

/// Applies one journal record's operations again. An item already in the
/// file is left as it is (a record is applied at most once after the
/// commit that covers it, but a file opened again after a failed commit
/// may hold some of it).
fn replay(t: &mut Tables<'_>, payload: &[u8], bytes: &mut u64) -> Result<(), redb::Error> {
    let mut r = payload;
    let mut take = |n: usize| -> Option<&[u8]> {
        let (head, rest) = (r.get(..n)?, r.get(n..)?);
        r = rest;
        Some(head)
    };
    // The CRC has vouched for the bytes: a short read is a record from
    // another version, where stopping is all there is to do.
    while let Some(op) = take(1) {
        let Some(id) = take(16).map(|b| u128::from_le_bytes(b.try_into().expect("16 bytes")))
        else {
            break;
        };
        match op[0] {
            OP_ENQUEUED => {
                let Some(expires) = take(8).map(|b| u64::from_le_bytes(b.try_into().expect("8")))
                else {
                    break;
                };
                let Some(len) = take(4).map(|b| u32::from_le_bytes(b.try_into().expect("4")))
                else {
                    break;
                };
                let Some(record) = take(len as usize) else {
                    break;
                };
                if t.items.get(id)?.is_none() {
                    if let Some(item) = record::decode(Id(id), record) {
                        insert(t, &item, record, expires, bytes)?;
                    }
                }
            }
            OP_TAKEN => {
                if let Some(item) = t.load(Id(id))? {
                    mark_taken(t, item)?;
                }
            }
            OP_SETTLED => {
                let Some(now) = take(8).map(|b| u64::from_le_bytes(b.try_into().expect("8")))
                else {
                    break;
                };
                let Some(kind) = take(1).map(|b| b[0]) else {
                    break;
                };
                let Some(next_ms) = take(8).map(|b| u64::from_le_bytes(b.try_into().expect("8")))
                else {
                    break;
                };
                let Some(len) = take(2).map(|b| u16::from_le_bytes(b.try_into().expect("2")))
                else {
                    break;
                };
                let Some(last) = take(usize::from(len)) else {
                    break;
                };
                let last = String::from_utf8_lossy(last).into_owned();
                let settle = match kind {
                    0 => Settle::Delivered { last },
                    1 => Settle::Dead { last },
                    2 => Settle::Retry { next_ms, last },
                    3 => Settle::Release { next_ms, last },
                    _ => break,
                };
                settle_one(t, Id(id), &settle, now)?;
            }
            _ => break,
        }
    }
    Ok(())
}

/// Flushes the file every [`FLUSH_AHEAD`] while the store is open, off
/// the writer thread: redb writes the pages of commits made without a
/// flush to the file as its cache fills, and the next checkpoint's `fsync`
/// would otherwise carry them all at once, with every enqueue waiting
/// behind it. Flushing more than redb asks for is safe: its durable state
/// is the commit slot a durable commit writes, and the pages written ahead
/// are ones that state does not use.
fn flush_ahead(path: &Path, alive: &std::sync::Weak<Shared>) {
    let Ok(file) = std::fs::File::open(path) else {
        return;
    };
    while alive.strong_count() > 0 {
        std::thread::sleep(FLUSH_AHEAD);
        let _ = file.sync_data();
    }
}

/// The journal at `path`, made `bytes` long; none if `bytes` is 0 or it
/// cannot be made (logged: the store then commits every batch durably).
fn make_journal(path: &Path, bytes: u64) -> Option<Journal> {
    if bytes == 0 {
        return None;
    }
    match Journal::create(path, bytes) {
        Ok(journal) => Some(journal),
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "the queue's journal cannot be made; every enqueue waits for a full commit until it can");
            None
        }
    }
}

/// Refuses a file written in another layout: a new file (no tables yet),
/// or one of format [`READS_ALSO`], is fine and gets [`FORMAT`] at
/// recovery; one with tables but no version is format 1. Nothing has been
/// released with format 1, so there is no migration: such a file is
/// drained by the hookguard that wrote it, or moved aside.
fn check_format(db: &Database, path: &Path) -> Result<(), String> {
    let shown = path.display();
    let found = (|| -> Result<Option<u64>, redb::Error> {
        let txn = db.begin_read()?;
        if txn.list_tables()?.next().is_none() {
            return Ok(None);
        }
        Ok(Some(match txn.open_table(META) {
            Ok(meta) => meta.get(FORMAT_KEY)?.map_or(1, |v| v.value()),
            // Format 1's `meta` was keyed by name alone.
            Err(redb::TableError::TableTypeMismatch { .. }) => 1,
            Err(redb::TableError::TableDoesNotExist(_)) => 1,
            Err(error) => return Err(error.into()),
        }))
    })()
    .map_err(|e| format!("cannot read the queue at {shown}: {e}"))?;
    match found {
        None | Some(FORMAT | READS_ALSO) => Ok(()),
        Some(found) => Err(format!(
            "the queue at {shown} is in format {found}, and this hookguard reads format {FORMAT}: \
             let the hookguard that wrote it deliver what it holds, then move the file aside \
             (or delete it if nothing in it is needed) and this one starts a new queue there"
        )),
    }
}

/// The writer thread's state.
struct Writer {
    /// The open database, shared with readers; emptied after a failed
    /// commit, and filled again (with [`restore`]) before the next batch.
    slot: Arc<Slot>,
    path: PathBuf,
    journal_path: PathBuf,
    shared: Arc<Shared>,
    max_bytes: u64,
    /// `None` when there is none to be had (see [`make_journal`]), or
    /// after it failed, until the next checkpoint makes it again.
    journal: Option<Journal>,
    journaling: Journaling,
    /// The next journal record's sequence number.
    next_seq: u64,
    cursor: SweepCursor,
}

/// How a batch's transaction is made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Durable {
    /// Not at all (settled attempts, retention: see the module doc), or
    /// nothing changed.
    Not,
    /// By the journal record written for it.
    Journaled,
    /// By the commit itself (a checkpoint).
    Commit,
}

impl Writer {
    /// Takes the first command, then everything else already queued (up
    /// to [`MAX_BATCH`]), applies them in one transaction, makes it durable
    /// as [`Durable`] says, and answers each. Idle with records in the
    /// journal, makes a checkpoint.
    ///
    /// After a failed commit (an I/O error, a full disk) redb refuses every
    /// later write until the file is opened again ("Previous I/O error
    /// occurred. Please close and re-open the database.", its `PreviousIo`),
    /// so the writer lets go of the database and opens the file again,
    /// with [`restore`], before its next batch; until that works, each
    /// batch is refused whole.
    fn run(&mut self, commands: &mpsc::Receiver<Command>) {
        loop {
            let first = match commands.recv_timeout(self.journaling.idle_checkpoint) {
                Ok(command) => command,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if self.journal.as_ref().is_some_and(|j| !j.is_empty()) {
                        self.checkpoint();
                    }
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match commands.try_recv() {
                    Ok(command) => batch.push(command),
                    Err(_) => break,
                }
            }
            self.commit(batch);
        }
        // Closed: what the journal holds goes into the file, so the next
        // open has nothing to apply.
        if self.journal.as_ref().is_some_and(|j| !j.is_empty()) {
            self.checkpoint();
        }
    }

    fn commit(&mut self, batch: Vec<Command>) {
        let mut answers = Vec::with_capacity(batch.len());
        let lossy = batch
            .iter()
            .all(|c| matches!(c, Command::Settle(..) | Command::Expire(..)));
        // An operator's change is rare and should hold at once: it commits
        // durably, which also empties the journal.
        let operator = batch.iter().any(|c| {
            matches!(
                c,
                Command::Redeliver(..) | Command::Purge(..) | Command::Pause(..)
            )
        });
        let db = match self.current() {
            Ok(db) => db,
            Err(error) => {
                let error = QueueError::Io(format!("cannot reopen the queue's file: {error}"));
                for command in batch {
                    command.fail(error.clone());
                }
                return;
            }
        };
        let mut pending = batch.into_iter();
        let mut sweep = self.cursor;
        let mut ops = Vec::new();
        let mut durable = Durable::Not;
        let committed = (|| -> Result<(), redb::Error> {
            let mut txn = db.begin_write()?;
            {
                let mut tables = Tables::open(&txn)?;
                let before = tables.meta.get(BYTES_KEY)?.map_or(0, |v| v.value());
                let mut bytes = before;
                for command in pending.by_ref() {
                    answers.push(apply(
                        &mut tables,
                        command,
                        &mut bytes,
                        self.max_bytes,
                        &mut sweep,
                        &mut ops,
                    )?);
                }
                if bytes != before {
                    tables.meta.insert(BYTES_KEY, bytes)?;
                }
                durable = self.make_durable(lossy, operator, &ops);
                if durable == Durable::Commit {
                    tables.meta.insert(JOURNAL_KEY, self.next_seq)?;
                }
                tables.mirror(&self.shared)?;
            }
            if durable != Durable::Commit {
                txn.set_durability(Durability::None)?;
            }
            txn.commit()?;
            Ok(())
        })();
        self.shared.commits.fetch_add(1, Ordering::Relaxed);
        match committed {
            Ok(()) => {
                // Moved on only once committed: a failed batch walks again.
                self.cursor = sweep;
                if durable == Durable::Commit {
                    self.journal_restarts();
                }
                answers.into_iter().for_each(Answer::send);
            }
            Err(error) => {
                // Nothing of the batch is stored: every caller hears so.
                // Answers made before the failure were not committed, and
                // their journal record must not bring them back.
                tracing::warn!(%error, "the queue could not commit; its file is reopened before the next write");
                if durable == Durable::Journaled {
                    self.void_last();
                }
                let error = io(&error);
                for answer in answers {
                    answer.fail(error.clone());
                }
                for command in pending {
                    command.fail(error.clone());
                }
                if let Ok(mut held) = self.slot.write() {
                    *held = None;
                }
            }
        }
    }

    /// Decides how the batch whose journal operations are `ops` becomes
    /// durable, writing its journal record if that is the way. A journal
    /// that fails is given up until the next checkpoint; the batch then
    /// commits durably, and that commit's sequence number voids whatever
    /// of the failed record reached the disk.
    fn make_durable(&mut self, lossy: bool, operator: bool, ops: &[u8]) -> Durable {
        if operator {
            return Durable::Commit;
        }
        if ops.is_empty() {
            return Durable::Not;
        }
        let Some(journal) = self.journal.as_mut().filter(|j| j.fits(ops.len())) else {
            return if lossy { Durable::Not } else { Durable::Commit };
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        // Settled attempts are written but not flushed: the next flush
        // (the next enqueue or take, or a checkpoint) carries them.
        match journal.append(seq, ops, !lossy) {
            Ok(()) => Durable::Journaled,
            Err(error) => {
                tracing::warn!(path = %journal.path().display(), %error, "the queue's journal failed; enqueues wait for full commits until the next checkpoint");
                self.journal = None;
                Durable::Commit
            }
        }
    }

    /// After a durable commit: the journal starts over, or is made again if
    /// it had failed.
    fn journal_restarts(&mut self) {
        self.shared.checkpoints.fetch_add(1, Ordering::Relaxed);
        match &mut self.journal {
            Some(journal) => journal.restart(),
            None => self.journal = make_journal(&self.journal_path, self.journaling.bytes),
        }
    }

    /// Takes back the record of a batch that did not commit; if even that
    /// fails, the journal is given up (see [`Writer::make_durable`]): the
    /// record could then come back in a crash before the next durable
    /// commit, delivering a request that was refused, never the reverse.
    fn void_last(&mut self) {
        if let Some(journal) = &mut self.journal {
            if let Err(error) = journal.void_last() {
                tracing::warn!(path = %journal.path().display(), %error, "the queue's journal could not take back a record that was not committed");
                self.journal = None;
            }
        }
    }

    /// A durable commit that changes nothing but the journal's sequence
    /// number: what the journal holds is then in the file, and it starts
    /// over.
    fn checkpoint(&mut self) {
        let done = self.current().and_then(|db| {
            (|| -> Result<(), redb::Error> {
                let txn = db.begin_write()?;
                txn.open_table(META)?.insert(JOURNAL_KEY, self.next_seq)?;
                txn.commit()?;
                Ok(())
            })()
            .map_err(|e| e.to_string())
        });
        self.shared.commits.fetch_add(1, Ordering::Relaxed);
        match done {
            Ok(()) => self.journal_restarts(),
            Err(error) => {
                tracing::warn!(%error, "the queue could not make a checkpoint; its file is reopened before the next write");
                if let Ok(mut held) = self.slot.write() {
                    *held = None;
                }
            }
        }
    }

    /// The open database, opening the file again (and restoring it) when a
    /// failed commit let go of it. Readers may still hold the old one for
    /// a moment (redb then says the file is open), so the open is retried
    /// for up to a second.
    fn current(&mut self) -> Result<Arc<Database>, String> {
        if let Some(db) = self.slot.read().map_err(|e| e.to_string())?.clone() {
            return Ok(db);
        }
        let mut last = String::new();
        for _ in 0..100 {
            match open_file(&self.path) {
                Ok(db) => {
                    let (recovered, next_seq) = restore(&db, &self.journal_path, &self.shared)?;
                    self.shared
                        .recovered
                        .fetch_add(recovered, Ordering::Relaxed);
                    self.next_seq = self.next_seq.max(next_seq);
                    self.journal_restarts();
                    let db = Arc::new(db);
                    *self.slot.write().map_err(|e| e.to_string())? = Some(db.clone());
                    tracing::info!(path = %self.path.display(), recovered, "the queue's file is open again");
                    return Ok(db);
                }
                Err(error) => last = error.to_string(),
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        Err(last)
    }
}

impl Command {
    /// Answers with `error` without doing anything.
    fn fail(self, error: QueueError) {
        match self {
            Command::Enqueue(_, _, tx) => drop(tx.send(Err(error))),
            Command::Take(_, _, _, tx) => drop(tx.send(Err(error))),
            Command::Settle(_, _, _, tx) | Command::Pause(_, _, tx) => drop(tx.send(Err(error))),
            Command::Redeliver(_, _, tx) => drop(tx.send(Err(error))),
            Command::Purge(_, tx) | Command::Expire(_, _, tx) => drop(tx.send(Err(error))),
        }
    }
}

/// A computed answer, sent only once its transaction committed.
enum Answer {
    Enqueue(Reply<Enqueued>, Result<Enqueued, QueueError>),
    Take(Reply<Vec<Item>>, Vec<Item>),
    Unit(Reply<()>),
    Flag(Reply<bool>, bool),
    Count(Reply<u64>, u64),
}

impl Answer {
    fn send(self) {
        match self {
            Answer::Enqueue(tx, result) => drop(tx.send(result)),
            Answer::Take(tx, items) => drop(tx.send(Ok(items))),
            Answer::Unit(tx) => drop(tx.send(Ok(()))),
            Answer::Flag(tx, flag) => drop(tx.send(Ok(flag))),
            Answer::Count(tx, n) => drop(tx.send(Ok(n))),
        }
    }

    fn fail(self, error: QueueError) {
        match self {
            Answer::Enqueue(tx, _) => drop(tx.send(Err(error))),
            Answer::Take(tx, _) => drop(tx.send(Err(error))),
            Answer::Unit(tx) => drop(tx.send(Err(error))),
            Answer::Flag(tx, _) => drop(tx.send(Err(error))),
            Answer::Count(tx, _) => drop(tx.send(Err(error))),
        }
    }
}

/// Applies one command inside the batch's transaction, adding what the
/// journal must hold of it to `ops`. A storage error fails the whole
/// batch; the command's own refusals (full, duplicate) are its answer.
///
/// The reply is kept in the answer: a storage error anywhere aborts the
/// transaction and every command of the batch is answered with it.
fn apply(
    t: &mut Tables<'_>,
    command: Command,
    bytes: &mut u64,
    max_bytes: u64,
    cursor: &mut SweepCursor,
    ops: &mut Vec<u8>,
) -> Result<Answer, redb::Error> {
    Ok(match command {
        Command::Enqueue(new, now, tx) => {
            let result = enqueue(t, *new, now, bytes, max_bytes, ops)?;
            Answer::Enqueue(tx, result)
        }
        Command::Take(route, now, max, tx) => {
            let due: Vec<(u64, u128)> = t
                .due
                .range((route.as_str(), 0u64, 0u128)..=(route.as_str(), now, u128::MAX))?
                .take(max)
                .map(|entry| entry.map(|(key, _)| (key.value().1, key.value().2)))
                .collect::<Result<_, _>>()?;
            let mut taken = Vec::with_capacity(due.len());
            for (next, id) in due {
                let Some(item) = t.load(Id(id))? else {
                    // An index entry without its item: dropped.
                    t.due.remove((route.as_str(), next, id))?;
                    continue;
                };
                ops.push(OP_TAKEN);
                ops.extend_from_slice(&id.to_le_bytes());
                taken.push(mark_taken(t, item)?);
            }
            Answer::Take(tx, taken)
        }
        Command::Settle(id, settle, now, tx) => {
            if settle_one(t, id, &settle, now)? {
                ops.push(OP_SETTLED);
                ops.extend_from_slice(&id.0.to_le_bytes());
                ops.extend_from_slice(&now.to_le_bytes());
                let (kind, next_ms, last) = match &settle {
                    Settle::Delivered { last } => (0u8, 0, last),
                    Settle::Dead { last } => (1, 0, last),
                    Settle::Retry { next_ms, last } => (2, *next_ms, last),
                    Settle::Release { next_ms, last } => (3, *next_ms, last),
                };
                ops.push(kind);
                ops.extend_from_slice(&next_ms.to_le_bytes());
                let last = &last.as_bytes()[..last.len().min(u16::MAX as usize)];
                ops.extend_from_slice(&(last.len() as u16).to_le_bytes());
                ops.extend_from_slice(last);
            }
            Answer::Unit(tx)
        }
        Command::Redeliver(id, now, tx) => {
            let done = match t.load(id)? {
                Some(mut item) if item.state != ItemState::InFlight => {
                    t.unplace(&item)?;
                    t.count(&item.route, item.state, -1)?;
                    (item.state, item.next_ms, item.finished_ms) = (ItemState::Ready, now, 0);
                    t.place(&item)?;
                    t.store(&item)?;
                    t.count(&item.route, item.state, 1)?;
                    true
                }
                _ => false,
            };
            Answer::Flag(tx, done)
        }
        Command::Purge(ids, tx) => {
            let mut removed = 0;
            for id in ids {
                if t.delete(id, bytes)? {
                    removed += 1;
                }
            }
            Answer::Count(tx, removed)
        }
        Command::Expire([delivered_before, dead_before, now], max, tx) => {
            let mut removed = 0;
            for (state, before) in [
                (ItemState::Delivered, delivered_before),
                (ItemState::Dead, dead_before),
            ] {
                let old: Vec<u128> = t
                    .done
                    .range((state.code(), 0u64, 0u128)..(state.code(), before, 0u128))?
                    .take(max)
                    .map(|entry| entry.map(|(key, _)| key.value().2))
                    .collect::<Result<_, _>>()?;
                for id in old {
                    if t.delete(Id(id), bytes)? {
                        removed += 1;
                    }
                }
            }
            sweep_dedupe(t, now, max, cursor)?;
            Answer::Count(tx, removed)
        }
        Command::Pause(route, paused, tx) => {
            if paused {
                t.paused.insert(route.as_str(), ())?;
            } else {
                t.paused.remove(route.as_str())?;
            }
            Answer::Unit(tx)
        }
    })
}

/// Stores a new item and its keys, unless full or a duplicate, and adds
/// it to the journal's `ops`.
fn enqueue(
    t: &mut Tables<'_>,
    new: NewItem,
    now: u64,
    bytes: &mut u64,
    max_bytes: u64,
    ops: &mut Vec<u8>,
) -> Result<Result<Enqueued, QueueError>, redb::Error> {
    for key in &new.keys {
        if let Some(entry) = t.dedupe.get(key)? {
            let (id, expires) = entry.value();
            if expires > now {
                return Ok(Ok(Enqueued::Duplicate(Id(id))));
            }
        }
    }
    let mut id = Id::new(new.received_ms);
    while t.items.get(id.0)?.is_some() {
        id = Id::new(new.received_ms);
    }
    let item = Item {
        id,
        route: new.route,
        state: ItemState::Ready,
        received_ms: new.received_ms,
        next_ms: new.received_ms,
        finished_ms: 0,
        tries: 0,
        attempts: 0,
        last: String::new(),
        keys: new.keys,
        head: new.head,
        body: new.body,
    };
    let record = record::encode(&item);
    if *bytes + record.len() as u64 > max_bytes {
        return Ok(Err(QueueError::Full));
    }
    let expires = now.saturating_add(new.dedupe_ttl.as_millis() as u64);
    insert(t, &item, &record, expires, bytes)?;
    ops.push(OP_ENQUEUED);
    ops.extend_from_slice(&id.0.to_le_bytes());
    ops.extend_from_slice(&expires.to_le_bytes());
    ops.extend_from_slice(&(record.len() as u32).to_le_bytes());
    ops.extend_from_slice(&record);
    Ok(Ok(Enqueued::Queued(id)))
}

/// Stores a new item (encoded as `record`) with its index entry, counter
/// and dedupe keys (expiring at `expires`).
fn insert(
    t: &mut Tables<'_>,
    item: &Item,
    record: &[u8],
    expires: u64,
    bytes: &mut u64,
) -> Result<(), redb::Error> {
    for key in &item.keys {
        t.dedupe.insert(key, (item.id.0, expires))?;
    }
    t.items.insert(item.id.0, record)?;
    *bytes += record.len() as u64;
    t.place(item)?;
    t.count(&item.route, item.state, 1)
}

/// Settles an item in flight by its attempt's outcome; whether it was in
/// flight (an item recovered meanwhile is not, and stays as it is).
fn settle_one(t: &mut Tables<'_>, id: Id, settle: &Settle, now: u64) -> Result<bool, redb::Error> {
    if t.in_flight.remove(id.0)?.is_none() {
        return Ok(false);
    }
    let Some(mut item) = t.load(id)? else {
        return Ok(false);
    };
    t.count(&item.route, item.state, -1)?;
    match settle.clone() {
        Settle::Delivered { last } => {
            (item.state, item.finished_ms, item.last) = (ItemState::Delivered, now, last)
        }
        Settle::Dead { last } => {
            (item.state, item.finished_ms, item.last) = (ItemState::Dead, now, last)
        }
        Settle::Retry { next_ms, last } => {
            item.attempts += 1;
            (item.state, item.next_ms, item.last) = (ItemState::Waiting, next_ms, last)
        }
        Settle::Release { next_ms, last } => {
            (item.state, item.next_ms, item.last) = (ItemState::Ready, next_ms, last)
        }
    }
    t.place(&item)?;
    t.store(&item)?;
    t.count(&item.route, item.state, 1)?;
    Ok(true)
}

/// Moves an item in flight for one more try.
fn mark_taken(t: &mut Tables<'_>, mut item: Item) -> Result<Item, redb::Error> {
    t.unplace(&item)?;
    t.count(&item.route, item.state, -1)?;
    item.state = ItemState::InFlight;
    item.tries += 1;
    t.store(&item)?;
    t.count(&item.route, item.state, 1)?;
    t.place(&item)?;
    Ok(item)
}

/// Removes up to `max` dedupe keys expired at `now`, walking at most
/// [`SWEEP_SCAN_PER_REMOVAL`] x `max` entries from the cursor on (wrapping
/// at the end). An expired key left for a later run is harmless: a lookup
/// checks the expiry itself, so this only frees space.
fn sweep_dedupe(
    t: &mut Tables<'_>,
    now: u64,
    max: usize,
    cursor: &mut SweepCursor,
) -> Result<(), redb::Error> {
    if max == 0 {
        return Ok(());
    }
    let budget = max.saturating_mul(SWEEP_SCAN_PER_REMOVAL);
    let mut expired: Vec<Key> = Vec::new();
    let mut seen = 0;
    let mut last = None;
    let walk = match cursor {
        Some(after) => t.dedupe.range::<&[u8; 16]>((
            std::ops::Bound::Excluded(&*after),
            std::ops::Bound::Unbounded,
        ))?,
        None => t.dedupe.range::<&[u8; 16]>(..)?,
    };
    for entry in walk {
        let (key, value) = entry?;
        seen += 1;
        last = Some(*key.value());
        if value.value().1 <= now {
            expired.push(*key.value());
        }
        if seen >= budget || expired.len() >= max {
            break;
        }
    }
    // Short of the budget means the walk reached the end: start over.
    *cursor = if seen >= budget || expired.len() >= max {
        last
    } else {
        None
    };
    for key in expired {
        t.dedupe.remove(&key)?;
    }
    Ok(())
}

/// The tables of one write transaction.
struct Tables<'t> {
    items: redb::Table<'t, u128, &'static [u8]>,
    due: redb::Table<'t, (&'static str, u64, u128), ()>,
    in_flight: redb::Table<'t, u128, ()>,
    done: redb::Table<'t, (u8, u64, u128), ()>,
    dedupe: redb::Table<'t, &'static [u8; 16], (u128, u64)>,
    meta: redb::Table<'t, (&'static str, u8), u64>,
    paused: redb::Table<'t, &'static str, ()>,
}

impl<'t> Tables<'t> {
    fn open(txn: &'t WriteTransaction) -> Result<Self, redb::Error> {
        Ok(Tables {
            items: txn.open_table(ITEMS)?,
            due: txn.open_table(DUE)?,
            in_flight: txn.open_table(IN_FLIGHT)?,
            done: txn.open_table(DONE)?,
            dedupe: txn.open_table(DEDUPE)?,
            meta: txn.open_table(META)?,
            paused: txn.open_table(PAUSED)?,
        })
    }

    fn load(&self, id: Id) -> Result<Option<Item>, redb::Error> {
        Ok(self
            .items
            .get(id.0)?
            .and_then(|record| record::decode(id, record.value())))
    }

    /// Rewrites an item whose size does not change (only its fixed-size
    /// fields and `last` do; `last` is bounded and not counted).
    fn store(&mut self, item: &Item) -> Result<(), redb::Error> {
        self.items
            .insert(item.id.0, record::encode(item).as_slice())?;
        Ok(())
    }

    /// Adds the index entry an item's state calls for.
    fn place(&mut self, item: &Item) -> Result<(), redb::Error> {
        match item.state {
            ItemState::Ready | ItemState::Waiting => {
                self.due
                    .insert((item.route.as_str(), item.next_ms, item.id.0), ())?;
            }
            ItemState::InFlight => {
                self.in_flight.insert(item.id.0, ())?;
            }
            ItemState::Delivered | ItemState::Dead => {
                self.done
                    .insert((item.state.code(), item.finished_ms, item.id.0), ())?;
            }
        }
        Ok(())
    }

    /// Removes the index entry [`Tables::place`] added.
    fn unplace(&mut self, item: &Item) -> Result<(), redb::Error> {
        match item.state {
            ItemState::Ready | ItemState::Waiting => {
                self.due
                    .remove((item.route.as_str(), item.next_ms, item.id.0))?;
            }
            ItemState::InFlight => {
                self.in_flight.remove(item.id.0)?;
            }
            ItemState::Delivered | ItemState::Dead => {
                self.done
                    .remove((item.state.code(), item.finished_ms, item.id.0))?;
            }
        }
        Ok(())
    }

    /// Deletes an item with its index entry; whether it was there.
    fn delete(&mut self, id: Id, bytes: &mut u64) -> Result<bool, redb::Error> {
        let Some(item) = self.load(id)? else {
            return Ok(false);
        };
        self.unplace(&item)?;
        self.count(&item.route, item.state, -1)?;
        if let Some(record) = self.items.remove(id.0)? {
            *bytes = bytes.saturating_sub(record.value().len() as u64);
        }
        Ok(true)
    }

    fn count(&mut self, route: &str, state: ItemState, by: i64) -> Result<(), redb::Error> {
        let key = (route, state.code());
        let now = self.meta.get(key)?.map_or(0, |v| v.value());
        let next = now.saturating_add_signed(by);
        if next == 0 {
            self.meta.remove(key)?;
        } else {
            self.meta.insert(key, next)?;
        }
        Ok(())
    }

    /// Copies the counters, the bytes and the paused routes where readers
    /// see them without a transaction. Done before the commit; a failed
    /// commit leaves the copy ahead until the next one, which is only a
    /// gauge briefly wrong.
    fn mirror(&self, shared: &Shared) -> Result<(), redb::Error> {
        let mut counts = BTreeMap::new();
        for entry in self.meta.iter()? {
            let (key, n) = entry?;
            let (route, code) = key.value();
            if let Some(state) = ItemState::from_code(code) {
                counts.insert((route.to_owned(), state), n.value());
            }
        }
        let mut paused = HashSet::new();
        for entry in self.paused.iter()? {
            paused.insert(entry?.0.value().to_owned());
        }
        if let Ok(mut shown) = shared.counts.lock() {
            *shown = counts;
        }
        if let Ok(mut shown) = shared.paused.lock() {
            *shown = paused;
        }
        let bytes = self.meta.get(BYTES_KEY)?.map_or(0, |v| v.value());
        shared.bytes.store(bytes, Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::TableHandle;
    use std::time::Duration;

    /// A directory of its own under the system's temporary one, removed
    /// when dropped.
    struct Dir(PathBuf);

    impl Dir {
        fn new(name: &str) -> Dir {
            let dir = std::env::temp_dir().join(format!(
                "hookguard-{name}-{}-{}",
                std::process::id(),
                Id::new(0).0
            ));
            std::fs::create_dir_all(&dir).expect("create the test's directory");
            Dir(dir)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn new_item(key: u8, ttl: Duration) -> NewItem {
        NewItem {
            route: "a".into(),
            head: b"POST / HTTP/1.1\r\n".to_vec(),
            body: bytes::Bytes::from_static(b"{}"),
            keys: vec![[key; 16]],
            dedupe_ttl: ttl,
            received_ms: 1_000,
        }
    }

    fn dedupe_keys(store: &EmbeddedStore) -> usize {
        let db = store.db.read().unwrap().clone().unwrap();
        let txn = db.begin_read().unwrap();
        let dedupe = txn.open_table(DEDUPE).unwrap();
        dedupe.iter().unwrap().count()
    }

    #[test]
    fn a_queue_file_of_format_1_is_refused_naming_the_file_and_what_to_do() {
        let dir = Dir::new("queue-format1");
        let path = dir.0.join("queue.db");
        {
            // Format 1's own tables: `meta` keyed by name, counts apart.
            let db = Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let old_meta: TableDefinition<&str, u64> = TableDefinition::new("meta");
                let old_counts: TableDefinition<(&str, u8), u64> = TableDefinition::new("counts");
                txn.open_table(old_meta)
                    .unwrap()
                    .insert("bytes", 10)
                    .unwrap();
                txn.open_table(old_counts)
                    .unwrap()
                    .insert(("a", 0), 1)
                    .unwrap();
                txn.open_table(ITEMS).unwrap();
            }
            txn.commit().unwrap();
        }
        let said = EmbeddedStore::open(&path, 1 << 20).unwrap_err();
        assert_eq!(
            said,
            format!(
                "the queue at {} is in format 1, and this hookguard reads format 3: let the \
                 hookguard that wrote it deliver what it holds, then move the file aside (or \
                 delete it if nothing in it is needed) and this one starts a new queue there",
                path.display()
            )
        );
        // Refused, not changed: the old tables are still there.
        let db = Database::open(&path).unwrap();
        let txn = db.begin_read().unwrap();
        let names: Vec<String> = txn
            .list_tables()
            .unwrap()
            .map(|t| t.name().to_owned())
            .collect();
        assert!(names.contains(&"counts".to_owned()), "{names:?}");
    }

    #[test]
    fn a_queue_file_of_a_newer_format_is_refused() {
        let dir = Dir::new("queue-format4");
        let path = dir.0.join("queue.db");
        {
            let db = Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(META)
                .unwrap()
                .insert(FORMAT_KEY, FORMAT + 1)
                .unwrap();
            txn.commit().unwrap();
        }
        let said = EmbeddedStore::open(&path, 1 << 20).unwrap_err();
        assert!(
            said.starts_with(&format!(
                "the queue at {} is in format 4, and this hookguard reads format 3",
                path.display()
            )),
            "{said}"
        );
    }

    #[tokio::test]
    async fn a_queue_file_of_format_2_opens_and_is_recorded_as_format_3() {
        let dir = Dir::new("queue-format2");
        let path = dir.0.join("queue.db");
        {
            let db = Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            Tables::open(&txn)
                .unwrap()
                .meta
                .insert(FORMAT_KEY, 2)
                .unwrap();
            txn.commit().unwrap();
        }
        let store = EmbeddedStore::open(&path, 1 << 20).unwrap();
        store
            .enqueue(new_item(1, Duration::from_secs(60)), 1_000)
            .await
            .unwrap();
        let db = store.db.read().unwrap().clone().unwrap();
        let txn = db.begin_read().unwrap();
        let meta = txn.open_table(META).unwrap();
        assert_eq!(meta.get(FORMAT_KEY).unwrap().unwrap().value(), 3);
    }

    #[tokio::test]
    async fn a_new_queue_file_records_its_format_and_opens_again() {
        let dir = Dir::new("queue-format-new");
        let path = dir.0.join("queue.db");
        let store = EmbeddedStore::open(&path, 1 << 20).unwrap();
        store
            .enqueue(new_item(1, Duration::from_secs(60)), 1_000)
            .await
            .unwrap();
        assert_eq!(store.counts().values().sum::<u64>(), 1);
        drop(store);
        // The writer thread lets go of the file once its channel closes.
        let mut reopened = Err(String::new());
        for _ in 0..100 {
            reopened = EmbeddedStore::open(&path, 1 << 20);
            if reopened.is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let store = reopened.unwrap();
        assert_eq!(store.counts().values().sum::<u64>(), 1);
        assert!(store.bytes() > 0);
    }

    /// The sweep walks `dedupe` a bounded stretch per run from where the
    /// last one stopped, removing only expired keys, and starts over at
    /// the end.
    #[tokio::test]
    async fn the_dedupe_sweep_removes_expired_queue_keys_across_runs_and_keeps_live_ones() {
        let dir = Dir::new("queue-sweep");
        let store = EmbeddedStore::open(&dir.0.join("queue.db"), 1 << 20).unwrap();
        for key in 0..40u8 {
            // Every fourth key lives long; the first in key order expires.
            let ttl = if key % 4 == 1 { 3_600 } else { 1 };
            store
                .enqueue(new_item(key, Duration::from_secs(ttl)), 1_000)
                .await
                .unwrap();
        }
        assert_eq!(dedupe_keys(&store), 40);
        let later = 1_000 + 2_000;
        store.expire(0, 0, later, 0).await.unwrap();
        assert_eq!(dedupe_keys(&store), 40, "max 0 removes nothing");
        // At most 2 removals and 32 entries looked at per run.
        store.expire(0, 0, later, 2).await.unwrap();
        assert_eq!(dedupe_keys(&store), 38);
        for _ in 0..20 {
            store.expire(0, 0, later, 2).await.unwrap();
        }
        assert_eq!(dedupe_keys(&store), 10, "the 10 long-lived keys stay");
        let copy = store
            .enqueue(new_item(5, Duration::from_secs(60)), later)
            .await
            .unwrap();
        assert!(matches!(copy, Enqueued::Duplicate(_)), "{copy:?}");
    }
}
