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
//! ms)) with `dedupe_expiry` ((expiry ms, key)), `counts` ((route, state) →
//! n), `meta` (stored bytes) and `paused` (route). A change and its index
//! entries and counters are always in one transaction.

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
const DEDUPE_EXPIRY: TableDefinition<(u64, &[u8; 16]), ()> = TableDefinition::new("dedupe_expiry");
const COUNTS: TableDefinition<(&str, u8), u64> = TableDefinition::new("counts");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const PAUSED: TableDefinition<&str, ()> = TableDefinition::new("paused");

/// The `meta` entry holding the stored items' bytes.
const BYTES: &str = "bytes";

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
    /// What is counted, mirrored from the `counts` table after each commit.
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
        tables.mirror(shared)?;
    }
    txn.commit()?;
    Ok(recovered)
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
        let committed = (|| -> Result<(), redb::Error> {
            let mut txn = db.begin_write()?;
            if only_transitions {
                txn.set_durability(Durability::None)?;
            }
            {
                let mut tables = Tables::open(&txn)?;
                let mut bytes = tables.meta.get(BYTES)?.map_or(0, |v| v.value());
                for command in pending.by_ref() {
                    answers.push(apply(&mut tables, command, &mut bytes, max_bytes)?);
                }
                tables.meta.insert(BYTES, bytes)?;
                tables.mirror(shared)?;
            }
            txn.commit()?;
            Ok(())
        })();
        shared.commits.fetch_add(1, Ordering::Relaxed);
        match committed {
            Ok(()) => answers.into_iter().for_each(Answer::send),
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
            let expired: Vec<(u64, Key)> = t
                .dedupe_expiry
                .range((0u64, &[0u8; 16])..(now, &[0u8; 16]))?
                .take(max)
                .map(|entry| entry.map(|(key, _)| (key.value().0, *key.value().1)))
                .collect::<Result<_, _>>()?;
            for (at, key) in expired {
                t.dedupe_expiry.remove((at, &key))?;
                let current = t.dedupe.get(&key)?.map(|v| v.value().1);
                if current == Some(at) {
                    t.dedupe.remove(&key)?;
                }
            }
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
        t.dedupe_expiry.insert((expires, key), ())?;
    }
    t.items.insert(id.0, record.as_slice())?;
    *bytes += record.len() as u64;
    t.place(&item)?;
    t.count(&item.route, item.state, 1)?;
    Ok(Ok(Enqueued::Queued(id)))
}

/// The tables of one write transaction.
struct Tables<'t> {
    items: redb::Table<'t, u128, &'static [u8]>,
    due: redb::Table<'t, (&'static str, u64, u128), ()>,
    in_flight: redb::Table<'t, u128, ()>,
    done: redb::Table<'t, (u8, u64, u128), ()>,
    dedupe: redb::Table<'t, &'static [u8; 16], (u128, u64)>,
    dedupe_expiry: redb::Table<'t, (u64, &'static [u8; 16]), ()>,
    counts: redb::Table<'t, (&'static str, u8), u64>,
    meta: redb::Table<'t, &'static str, u64>,
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
            dedupe_expiry: txn.open_table(DEDUPE_EXPIRY)?,
            counts: txn.open_table(COUNTS)?,
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
        let now = self.counts.get(key)?.map_or(0, |v| v.value());
        let next = now.saturating_add_signed(by);
        if next == 0 {
            self.counts.remove(key)?;
        } else {
            self.counts.insert(key, next)?;
        }
        Ok(())
    }

    /// Copies the counters, the bytes and the paused routes where readers
    /// see them without a transaction. Done before the commit; a failed
    /// commit leaves the copy ahead until the next one, which is only a
    /// gauge briefly wrong.
    fn mirror(&self, shared: &Shared) -> Result<(), redb::Error> {
        let mut counts = BTreeMap::new();
        for entry in self.counts.iter()? {
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
        let bytes = self.meta.get(BYTES)?.map_or(0, |v| v.value());
        shared.bytes.store(bytes, Ordering::Relaxed);
        Ok(())
    }
}
