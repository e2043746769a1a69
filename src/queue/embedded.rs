//! The embedded queue store: one redb file, written by one thread.
//!
//! redb commits with one `fsync` (`Durability::Immediate`, its default):
//! when `commit` returns, the transaction survives a crash or power loss,
//! and a torn commit is detected by checksum and rolled back to the
//! previous one on open (redb's `docs/design.md`, "1PC+C"). Commits cost a
//! disk flush (0.2 ms quiet, ~4 ms busy on the project's machine, per the
//! research notes), so every change goes through one writer thread that
//! takes everything queued while the previous commit ran and commits it as
//! one transaction (group commit): concurrent requests share a flush.
//! Reads (listings, the worker's next-due lookups) use redb's MVCC read
//! transactions and never wait for the writer. A batch holding only
//! settled attempts commits without a flush (`Durability::None`): it
//! becomes durable with the next flushed commit, and a crash before that
//! only means an item is delivered again.
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

use super::{
    record, Counts, Enqueued, Filter, Id, Item, ItemState, NewItem, QueueError, QueueStore, Settle,
};
use crate::replay::Key;

const ITEMS: TableDefinition<u128, &[u8]> = TableDefinition::new("items");
const DUE: TableDefinition<(&str, u64, u128), ()> = TableDefinition::new("due");
const IN_FLIGHT: TableDefinition<u128, ()> = TableDefinition::new("in_flight");
const DONE: TableDefinition<(u8, u64, u128), ()> = TableDefinition::new("done");
const DEDUPE: TableDefinition<&[u8; 16], (u128, u64)> = TableDefinition::new("dedupe");
const META: TableDefinition<(&str, u8), u64> = TableDefinition::new("meta");
const PAUSED: TableDefinition<&str, ()> = TableDefinition::new("paused");

/// The file's layout; an open refuses any other (see [`check_format`]).
/// 1 had separate `counts` and `dedupe_expiry` tables and no version
/// entry; 2 is this module's.
const FORMAT: u64 = 2;

/// The `meta` key of the format version. State codes are below 5, so the
/// file's own entries clash with no route's count (and are no count).
const FORMAT_KEY: (&str, u8) = ("", 200);

/// The `meta` key of the stored items' bytes.
const BYTES_KEY: (&str, u8) = ("", 201);

/// Dedupe entries one retention run looks at, per key it may remove: the
/// walk is a read of mostly cached leaves, cheap next to the removals.
const SWEEP_SCAN_PER_REMOVAL: usize = 16;

/// Most commands one transaction takes: a bound on how long one commit's
/// callers wait behind the others.
const MAX_BATCH: usize = 512;

/// redb's page cache; its own default is 1 GiB, far more than a queue of
/// mostly cold bodies needs.
const CACHE_BYTES: usize = 32 << 20;

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
    /// Opens (or creates) the store at `path`, recovering items left in
    /// flight, and starts its writer thread. Blocks for the open (redb
    /// repairs a file not closed cleanly here).
    pub fn open(path: &Path, max_bytes: u64) -> Result<EmbeddedStore, String> {
        let shown = path.display();
        let db = open_file(path).map_err(|e| format!("cannot open the queue at {shown}: {e}"))?;
        check_format(&db, path)?;
        let shared = Arc::new(Shared::default());
        let recovered = recover(&db, &shared)
            .map_err(|e| format!("cannot recover the queue at {shown}: {e}"))?;
        shared.recovered.store(recovered, Ordering::Relaxed);
        let db = Arc::new(RwLock::new(Some(Arc::new(db))));
        let (sender, receiver) = mpsc::channel();
        let (writer_db, writer_shared) = (db.clone(), shared.clone());
        let file = path.to_owned();
        std::thread::Builder::new()
            .name("hookguard-queue".into())
            .spawn(move || write_loop(&writer_db, &file, &writer_shared, max_bytes, &receiver))
            .map_err(|e| format!("cannot start the queue's writer thread: {e}"))?;
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

/// On open: every item left in flight becomes ready (delivered again: at
/// least once), and the counters are loaded. Returns how many were in
/// flight.
fn recover(db: &Database, shared: &Shared) -> Result<u64, redb::Error> {
    let txn = db.begin_write()?;
    let mut recovered = 0;
    {
        let mut tables = Tables::open(&txn)?;
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
        tables.mirror(shared)?;
    }
    txn.commit()?;
    Ok(recovered)
}

/// Refuses a file written in another layout: a new file (no tables yet) is
/// fine and gets [`FORMAT`] at recovery; one with tables but no version is
/// format 1. Nothing has been released with format 1, so there is no
/// migration: such a file is drained by the hookguard that wrote it, or
/// moved aside.
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
        None | Some(FORMAT) => Ok(()),
        Some(found) => Err(format!(
            "the queue at {shown} is in format {found}, and this hookguard reads format {FORMAT}: \
             let the hookguard that wrote it deliver what it holds, then move the file aside \
             (or delete it if nothing in it is needed) and this one starts a new queue there"
        )),
    }
}

/// The writer thread: takes the first command, then everything else
/// already queued (up to [`MAX_BATCH`]), applies them in one transaction,
/// commits once and answers each.
///
/// After a failed commit (an I/O error, a full disk) redb refuses every
/// later write until the file is opened again ("Previous I/O error
/// occurred. Please close and re-open the database.", its `PreviousIo`),
/// so the writer lets go of the database and opens the file again before
/// its next batch; until that works, each batch is refused whole. Items in
/// flight stay in flight for their worker: nothing is recovered here.
fn write_loop(
    slot: &Slot,
    path: &Path,
    shared: &Shared,
    max_bytes: u64,
    commands: &mpsc::Receiver<Command>,
) {
    let mut cursor: SweepCursor = None;
    while let Ok(first) = commands.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match commands.try_recv() {
                Ok(command) => batch.push(command),
                Err(_) => break,
            }
        }
        let mut answers = Vec::with_capacity(batch.len());
        // A batch of only settled attempts need not wait for the disk:
        // losing them in a crash only means an item is tried again (with
        // the next attempt number, as its take was durable), which
        // at-least-once allows; they become durable with the next flushed
        // commit.
        let only_transitions = batch.iter().all(|c| matches!(c, Command::Settle(..)));
        let db = match current(slot, path) {
            Ok(db) => db,
            Err(error) => {
                let error = QueueError::Io(format!("cannot reopen the queue's file: {error}"));
                for command in batch {
                    command.fail(error.clone());
                }
                continue;
            }
        };
        let mut pending = batch.into_iter();
        let mut sweep = cursor;
        let committed = (|| -> Result<(), redb::Error> {
            let mut txn = db.begin_write()?;
            if only_transitions {
                txn.set_durability(Durability::None)?;
            }
            {
                let mut tables = Tables::open(&txn)?;
                let before = tables.meta.get(BYTES_KEY)?.map_or(0, |v| v.value());
                let mut bytes = before;
                for command in pending.by_ref() {
                    answers.push(apply(
                        &mut tables,
                        command,
                        &mut bytes,
                        max_bytes,
                        &mut sweep,
                    )?);
                }
                if bytes != before {
                    tables.meta.insert(BYTES_KEY, bytes)?;
                }
                tables.mirror(shared)?;
            }
            txn.commit()?;
            Ok(())
        })();
        shared.commits.fetch_add(1, Ordering::Relaxed);
        match committed {
            Ok(()) => {
                // Moved on only once committed: a failed batch walks again.
                cursor = sweep;
                answers.into_iter().for_each(Answer::send);
            }
            Err(error) => {
                // Nothing of the batch is stored: every caller hears so.
                // Answers made before the failure were not committed.
                tracing::warn!(%error, "the queue could not commit; its file is reopened before the next write");
                let error = io(&error);
                for answer in answers {
                    answer.fail(error.clone());
                }
                for command in pending {
                    command.fail(error.clone());
                }
                if let Ok(mut held) = slot.write() {
                    *held = None;
                }
            }
        }
    }
}

/// The open database, opening the file again when a failed commit let go
/// of it. Readers may still hold the old one for a moment (redb then says
/// the file is open), so the open is retried for up to a second.
fn current(slot: &Slot, path: &Path) -> Result<Arc<Database>, String> {
    if let Some(db) = slot.read().map_err(|e| e.to_string())?.clone() {
        return Ok(db);
    }
    let mut last = String::new();
    for _ in 0..100 {
        match open_file(path) {
            Ok(db) => {
                let db = Arc::new(db);
                *slot.write().map_err(|e| e.to_string())? = Some(db.clone());
                tracing::info!(path = %path.display(), "the queue's file is open again");
                return Ok(db);
            }
            Err(error) => last = error.to_string(),
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    Err(last)
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

/// Applies one command inside the batch's transaction. A storage error
/// fails the whole batch; the command's own refusals (full, duplicate)
/// are its answer.
///
/// The reply is kept in the answer: a storage error anywhere aborts the
/// transaction and every command of the batch is answered with it.
fn apply(
    t: &mut Tables<'_>,
    command: Command,
    bytes: &mut u64,
    max_bytes: u64,
    cursor: &mut SweepCursor,
) -> Result<Answer, redb::Error> {
    Ok(match command {
        Command::Enqueue(new, now, tx) => {
            let result = enqueue(t, *new, now, bytes, max_bytes)?;
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
                t.due.remove((route.as_str(), next, id))?;
                let Some(mut item) = t.load(Id(id))? else {
                    continue;
                };
                t.count(&item.route, item.state, -1)?;
                item.state = ItemState::InFlight;
                item.tries += 1;
                t.store(&item)?;
                t.count(&item.route, item.state, 1)?;
                t.in_flight.insert(id, ())?;
                taken.push(item);
            }
            Answer::Take(tx, taken)
        }
        Command::Settle(id, settle, now, tx) => {
            if t.in_flight.remove(id.0)?.is_some() {
                if let Some(mut item) = t.load(id)? {
                    t.count(&item.route, item.state, -1)?;
                    match settle {
                        Settle::Delivered { last } => {
                            (item.state, item.finished_ms, item.last) =
                                (ItemState::Delivered, now, last)
                        }
                        Settle::Dead { last } => {
                            (item.state, item.finished_ms, item.last) = (ItemState::Dead, now, last)
                        }
                        Settle::Retry { next_ms, last } => {
                            item.attempts += 1;
                            (item.state, item.next_ms, item.last) =
                                (ItemState::Waiting, next_ms, last)
                        }
                        Settle::Release { next_ms, last } => {
                            (item.state, item.next_ms, item.last) =
                                (ItemState::Ready, next_ms, last)
                        }
                    }
                    t.place(&item)?;
                    t.store(&item)?;
                    t.count(&item.route, item.state, 1)?;
                }
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

/// Stores a new item and its keys, unless full or a duplicate.
fn enqueue(
    t: &mut Tables<'_>,
    new: NewItem,
    now: u64,
    bytes: &mut u64,
    max_bytes: u64,
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
    for key in &item.keys {
        t.dedupe.insert(key, (id.0, expires))?;
    }
    t.items.insert(id.0, record.as_slice())?;
    *bytes += record.len() as u64;
    t.place(&item)?;
    t.count(&item.route, item.state, 1)?;
    Ok(Ok(Enqueued::Queued(id)))
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
                "the queue at {} is in format 1, and this hookguard reads format 2: let the \
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
        let dir = Dir::new("queue-format3");
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
                "the queue at {} is in format 3, and this hookguard reads format 2",
                path.display()
            )),
            "{said}"
        );
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
