//! Snapshots of the memory store, so that a restart does not reopen the
//! replay window: schemes without a timestamp (GitHub's) would otherwise
//! accept any captured delivery again once the process is new.
//!
//! [`MemoryStore::write_snapshot`] writes the live completed keys, with
//! their expiry as an absolute time and their remembered answers, to a
//! temporary file in the target's directory, syncs it and renames it over
//! the target, so that a crash mid-write leaves the previous snapshot
//! whole. [`MemoryStore::load_snapshot`] reads one back at start, dropping
//! keys that expired meanwhile. Claims in flight are not written: a restart
//! ends their requests, and the senders' retries must go through.
//! [`spawn_writer`] writes one every interval; the final write at shutdown
//! is the server's call.
//!
//! # Format, version 1
//!
//! Integers are big-endian. A 20-byte header: the magic `HGREPLAY`, the
//! format version (u32) and the writing time (u64, Unix milliseconds).
//! Then records, each starting with its type byte:
//!
//! - `1`, a key: the key (16 bytes), its expiry (u64, Unix milliseconds),
//!   and the id of its answer (u64; 0 for none);
//! - `2`, an answer: its id (u64), its length (u32) and its
//!   [`StoredAnswer::encode`] bytes; written after the keys, once for all
//!   the keys that refer to it;
//! - `0`, the end: how many key and answer records came before (u64 each).
//!
//! Last, the SHA-256 of everything before it (32 bytes): a file cut short
//! or changed is refused whole rather than half-loaded. Answer ids are the
//! writer's own and are renumbered on load.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;

use super::{as_u128, Kept, MemoryStore, Slot, ANSWERED, COMPLETED};
use crate::replay::{Key, StoredAnswer};

/// The first bytes of every snapshot.
const MAGIC: &[u8; 8] = b"HGREPLAY";

/// The format this version writes and reads.
const VERSION: u32 = 1;

/// Magic, version, writing time.
const HEADER_LEN: usize = 8 + 4 + 8;

/// The SHA-256 at the end.
const DIGEST_LEN: usize = 32;

/// Record types.
const END: u8 = 0;
const KEY: u8 = 1;
const ANSWER: u8 = 2;

/// What a snapshot write put in the file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Written {
    /// Completed keys written.
    pub keys: u64,
    /// Remembered answers written (each once, however many keys share it).
    pub answers: u64,
    /// The file's size.
    pub bytes: u64,
}

/// What loading a snapshot did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// False when there was no snapshot file (a first start): nothing to
    /// load, and nothing wrong.
    pub found: bool,
    /// Keys now remembered again.
    pub loaded: u64,
    /// Keys whose TTL ended while the process was down, dropped.
    pub expired: u64,
    /// Keys left out because the store is smaller than the one that wrote
    /// the file (`replay.max_entries` lowered): the soonest to expire go.
    pub over_capacity: u64,
    /// Answers remembered again.
    pub answers: u64,
}

/// A snapshot could not be written or read. Never fatal: the caller logs
/// it, counts it ([`SnapshotError::reason`]) and runs on with what it has.
#[derive(Debug)]
pub struct SnapshotError {
    /// The snapshot file.
    pub path: PathBuf,
    /// What was wrong.
    pub problem: Problem,
}

/// What was wrong with a snapshot file, or with writing one.
#[derive(Debug)]
pub enum Problem {
    /// Reading, writing, syncing or renaming failed.
    Io(io::Error),
    /// The file does not start with the snapshot magic.
    NotASnapshot,
    /// The file is in a format version this hookguard does not read.
    Version(u32),
    /// The file ends early: a write cut short (a full disk, a copy).
    Truncated,
    /// The file's bytes are not what was written.
    Corrupt(String),
}

impl SnapshotError {
    fn new(path: &Path, problem: Problem) -> Self {
        SnapshotError {
            path: path.to_owned(),
            problem,
        }
    }

    /// A short label for metrics: `io`, `not_a_snapshot`, `version`,
    /// `truncated` or `corrupt`.
    pub fn reason(&self) -> &'static str {
        match self.problem {
            Problem::Io(_) => "io",
            Problem::NotASnapshot => "not_a_snapshot",
            Problem::Version(_) => "version",
            Problem::Truncated => "truncated",
            Problem::Corrupt(_) => "corrupt",
        }
    }
}

impl std::fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let path = self.path.display();
        match &self.problem {
            Problem::Io(error) => write!(f, "replay snapshot {path}: {error}"),
            Problem::NotASnapshot => write!(
                f,
                "replay snapshot {path} is not a hookguard replay snapshot (it does not start with HGREPLAY)"
            ),
            Problem::Version(found) => write!(
                f,
                "replay snapshot {path} is in format version {found}; this hookguard reads version {VERSION}"
            ),
            Problem::Truncated => write!(
                f,
                "replay snapshot {path} is truncated: it ends before its end record and checksum"
            ),
            Problem::Corrupt(what) => write!(f, "replay snapshot {path} is corrupt: {what}"),
        }
    }
}

impl std::error::Error for SnapshotError {}

impl MemoryStore {
    /// Writes the live completed keys and their answers to `path`,
    /// atomically (see the module doc). Blocking file I/O: from async code,
    /// call it through `spawn_blocking`, as [`spawn_writer`] does. Writes
    /// are serialised, so a final write waits for a periodic one.
    pub fn write_snapshot(&self, path: &Path) -> Result<Written, SnapshotError> {
        let _writing = self
            .writing
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let temp = temp_path(path);
        let written = self
            .write_file(&temp)
            .and_then(|written| fs::rename(&temp, path).map(|()| written))
            .and_then(|written| sync_parent(path).map(|()| written));
        if written.is_err() {
            let _ = fs::remove_file(&temp);
        }
        written.map_err(|error| SnapshotError::new(path, Problem::Io(error)))
    }

    /// Writes the snapshot to `temp` and syncs it. Each shard is copied
    /// under its lock and written after, so requests wait for a copy, never
    /// for the disk.
    fn write_file(&self, temp: &Path) -> io::Result<Written> {
        let mut out = Hashing::new(BufWriter::new(File::create(temp)?));
        let (now_unix, now) = (unix_ms(), self.now_ms());
        out.write_all(MAGIC)?;
        out.write_all(&VERSION.to_be_bytes())?;
        out.write_all(&now_unix.to_be_bytes())?;
        let mut written = Written::default();
        let mut answer_ids = HashSet::new();
        let mut batch = Vec::new();
        for index in 0..self.shards.len() {
            batch.clear();
            batch.extend(
                self.shard_at(index)
                    .slots
                    .iter()
                    .filter(|(_, slot)| slot.is_completed() && slot.expires > now)
                    .map(|(key, slot)| (*key, slot.expires - now, slot.answer_id())),
            );
            for &(key, remaining, answer) in &batch {
                out.write_all(&[KEY])?;
                out.write_all(&key.to_le_bytes())?;
                out.write_all(&now_unix.saturating_add(remaining).to_be_bytes())?;
                // Claim tokens start at 1, so no answer id is 0.
                out.write_all(&answer.unwrap_or(0).to_be_bytes())?;
                answer_ids.extend(answer);
            }
            written.keys += batch.len() as u64;
        }
        let mut encoded = Vec::new();
        for id in answer_ids {
            // Freed since its keys were copied: they load without it.
            let Some(answer) = self.answer(id) else {
                continue;
            };
            encoded.clear();
            answer.encode(&mut encoded);
            let Ok(len) = u32::try_from(encoded.len()) else {
                continue;
            };
            out.write_all(&[ANSWER])?;
            out.write_all(&id.to_be_bytes())?;
            out.write_all(&len.to_be_bytes())?;
            out.write_all(&encoded)?;
            written.answers += 1;
        }
        out.write_all(&[END])?;
        out.write_all(&written.keys.to_be_bytes())?;
        out.write_all(&written.answers.to_be_bytes())?;
        let (buffered, digest, len) = out.finish();
        let mut file = buffered.into_inner().map_err(|e| e.into_error())?;
        file.write_all(&digest)?;
        file.sync_all()?;
        written.bytes = len + DIGEST_LEN as u64;
        Ok(written)
    }

    /// Loads the snapshot at `path` into this store: the keys still live,
    /// as many as fit, the longest-lived first. A missing file loads
    /// nothing and is no error; a file that is not a whole, valid snapshot
    /// of this version is refused whole. Keys this store already holds live
    /// are left as they are. Meant for a fresh store at start; blocking.
    pub fn load_snapshot(&self, path: &Path) -> Result<LoadReport, SnapshotError> {
        let bytes = match fs::read(path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Ok(LoadReport::default())
            }
            Err(error) => return Err(SnapshotError::new(path, Problem::Io(error))),
        };
        let parsed = parse(&bytes).map_err(|problem| SnapshotError::new(path, problem))?;
        Ok(self.restore(parsed))
    }

    /// Puts parsed records into the store (see [`MemoryStore::load_snapshot`]).
    fn restore(&self, mut parsed: Parsed) -> LoadReport {
        let mut report = LoadReport {
            found: true,
            ..LoadReport::default()
        };
        let (now_unix, now) = (unix_ms(), self.now_ms());
        let before = parsed.keys.len();
        parsed.keys.retain(|record| record.expires > now_unix);
        report.expired = (before - parsed.keys.len()) as u64;
        // Longest-lived first, so that a smaller store keeps those.
        parsed
            .keys
            .sort_unstable_by_key(|record| std::cmp::Reverse(record.expires));
        let mut room: Vec<usize> = (0..self.shards.len())
            .map(|index| {
                self.shard_capacity
                    .saturating_sub(self.shard_at(index).slots.len())
            })
            .collect();
        parsed.keys.retain(|record| {
            let room = &mut room[self.shard_index(as_u128(&record.key))];
            if *room == 0 {
                report.over_capacity += 1;
                return false;
            }
            *room -= 1;
            true
        });
        // Answers under new ids (the writer's may be this process's
        // tokens), counted by the keys that stay.
        let mut refs: HashMap<u64, u32> = HashMap::new();
        for record in &parsed.keys {
            if parsed.answers.contains_key(&record.answer) {
                *refs.entry(record.answer).or_default() += 1;
            }
        }
        let mut renamed = HashMap::with_capacity(refs.len());
        for (old, count) in refs {
            if let Some(answer) = parsed.answers.remove(&old) {
                let id = self
                    .next_token
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.answers().insert(
                    id,
                    Kept {
                        answer,
                        refs: count,
                    },
                );
                renamed.insert(old, id);
                report.answers += 1;
            }
        }
        // Soonest to expire first into each shard's FIFO, so that a later
        // capacity eviction drops them first, as it would have.
        for record in parsed.keys.iter().rev() {
            let id = renamed.get(&record.answer).copied();
            let slot = Slot {
                token: id.map_or(COMPLETED, |id| ANSWERED | id),
                expires: now.saturating_add(record.expires - now_unix),
            };
            let key = as_u128(&record.key);
            let mut shard = self.shard(key);
            if shard.slots.get(&key).is_some_and(|held| held.expires > now) {
                if let Some(id) = id {
                    self.unref(id, 1);
                }
                continue;
            }
            if let Some(expired) = shard.slots.insert(key, slot) {
                self.vacate(&expired);
            }
            shard.order.push_back(key);
            report.loaded += 1;
        }
        report
    }
}

/// Writes `store`'s snapshot to `path` every `every` (at least 1 ms), the
/// first one interval after the start, until the task is aborted or the
/// store dropped; each outcome goes to `report`, for the caller to log and
/// count. Abort it before the final write at shutdown: a write already
/// running finishes first (writes are serialised).
pub fn spawn_writer(
    store: &Arc<MemoryStore>,
    path: PathBuf,
    every: Duration,
    report: impl Fn(Result<Written, SnapshotError>) + Send + 'static,
) -> JoinHandle<()> {
    let store: Weak<MemoryStore> = Arc::downgrade(store);
    // `interval` panics on a zero period.
    let every = every.max(Duration::from_millis(1));
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let Some(store) = store.upgrade() else {
                return;
            };
            let target = path.clone();
            let outcome = tokio::task::spawn_blocking(move || store.write_snapshot(&target)).await;
            report(outcome.unwrap_or_else(|stopped| {
                Err(SnapshotError::new(
                    &path,
                    Problem::Io(io::Error::other(format!("the writer stopped: {stopped}"))),
                ))
            }));
        }
    })
}

/// A key record as read.
struct Record {
    key: Key,
    /// Unix milliseconds.
    expires: u64,
    /// The writer's answer id; 0 for none.
    answer: u64,
}

/// A snapshot's records, checked.
struct Parsed {
    keys: Vec<Record>,
    answers: HashMap<u64, StoredAnswer>,
}

/// Checks and reads a whole snapshot file. The header is checked first, so
/// that a file of another kind or version is named as such; then the
/// checksum, and a file whose checksum fails is called truncated when its
/// records end early, corrupt otherwise.
fn parse(bytes: &[u8]) -> Result<Parsed, Problem> {
    if !bytes.starts_with(MAGIC) {
        return Err(if MAGIC.starts_with(bytes) && !bytes.is_empty() {
            Problem::Truncated
        } else {
            Problem::NotASnapshot
        });
    }
    let mut header = Reader(&bytes[MAGIC.len()..]);
    let version = header.u32()?;
    if version != VERSION {
        return Err(Problem::Version(version));
    }
    if bytes.len() < HEADER_LEN + DIGEST_LEN {
        return Err(Problem::Truncated);
    }
    let (body, digest) = bytes.split_at(bytes.len() - DIGEST_LEN);
    let intact = Sha256::digest(body)[..] == *digest;
    match (intact, records(&body[HEADER_LEN..])) {
        (true, Ok(parsed)) => Ok(parsed),
        (false, Err(Problem::Truncated)) => Err(Problem::Truncated),
        (false, _) => Err(Problem::Corrupt(
            "its checksum does not match its contents".to_owned(),
        )),
        (true, Err(Problem::Truncated)) => Err(Problem::Corrupt(
            "its records end before the end record".to_owned(),
        )),
        (true, Err(problem)) => Err(problem),
    }
}

/// Reads the records between the header and the checksum.
fn records(bytes: &[u8]) -> Result<Parsed, Problem> {
    let mut reader = Reader(bytes);
    let mut parsed = Parsed {
        keys: Vec::new(),
        answers: HashMap::new(),
    };
    loop {
        match reader.take(1)?[0] {
            KEY => {
                let mut key = [0u8; 16];
                key.copy_from_slice(reader.take(16)?);
                let (expires, answer) = (reader.u64()?, reader.u64()?);
                parsed.keys.push(Record {
                    key,
                    expires,
                    answer,
                });
            }
            ANSWER => {
                let id = reader.u64()?;
                let len = reader.u32()? as usize;
                // A copy of its own, so that a remembered body does not
                // keep the whole file's buffer alive.
                let encoded = Bytes::copy_from_slice(reader.take(len)?);
                let answer = StoredAnswer::decode(&encoded).ok_or_else(|| {
                    Problem::Corrupt(format!("answer {id} is not a readable answer"))
                })?;
                parsed.answers.insert(id, answer);
            }
            END => {
                let (keys, answers) = (reader.u64()?, reader.u64()?);
                if keys != parsed.keys.len() as u64 || answers != parsed.answers.len() as u64 {
                    return Err(Problem::Corrupt(format!(
                        "its end record counts {keys} keys and {answers} answers, the file holds {} and {}",
                        parsed.keys.len(),
                        parsed.answers.len()
                    )));
                }
                if !reader.0.is_empty() {
                    return Err(Problem::Corrupt("bytes follow its end record".to_owned()));
                }
                return Ok(parsed);
            }
            other => {
                return Err(Problem::Corrupt(format!(
                    "record type {other} is not one this version writes"
                )))
            }
        }
    }
}

/// Bounds-checked reads from a byte slice; running out is
/// [`Problem::Truncated`].
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Problem> {
        if self.0.len() < n {
            return Err(Problem::Truncated);
        }
        let (taken, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(taken)
    }

    fn u32(&mut self) -> Result<u32, Problem> {
        let mut bytes = [0u8; 4];
        bytes.copy_from_slice(self.take(4)?);
        Ok(u32::from_be_bytes(bytes))
    }

    fn u64(&mut self) -> Result<u64, Problem> {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(bytes))
    }
}

/// A writer that hashes and counts what passes through it.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    len: u64,
}

impl<W: Write> Hashing<W> {
    fn new(inner: W) -> Self {
        Hashing {
            inner,
            hasher: Sha256::new(),
            len: 0,
        }
    }

    /// The inner writer, the digest and the length of what was written.
    fn finish(self) -> (W, [u8; DIGEST_LEN], u64) {
        (self.inner, self.hasher.finalize().into(), self.len)
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The temporary file beside `path` (same directory, so the rename is
/// atomic): `.<name>.tmp`. Writes are serialised, so one name serves.
fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map_or_else(|| "snapshot".into(), |n| n.to_string_lossy());
    path.with_file_name(format!(".{name}.tmp"))
}

/// Syncs the directory holding `path`, so that the rename itself survives
/// a power loss.
fn sync_parent(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        let parent = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        File::open(parent)?.sync_all()?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Unix milliseconds now: expiries in the file are absolute, since the
/// store's own clock starts anew with each process.
fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{answer, claimed};
    use super::*;
    use crate::replay::{ClaimResult, ReplayStore};

    const HOUR: Duration = Duration::from_secs(3600);

    /// A fresh directory for one test, removed at the end.
    struct Dir(PathBuf);

    impl Dir {
        fn new(name: &str) -> Dir {
            let dir = std::env::temp_dir()
                .join(format!("hookguard-snapshot-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            Dir(dir)
        }

        fn file(&self) -> PathBuf {
            self.0.join("replay.snapshot")
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn store(max_entries: u64) -> MemoryStore {
        MemoryStore::new(max_entries, Arc::new(|_| {}))
    }

    fn key(n: u32) -> Key {
        let mut key = [0u8; 16];
        key[..4].copy_from_slice(&n.to_be_bytes());
        // Spread over shards as real keys are.
        key[8..12].copy_from_slice(&n.wrapping_mul(0x9e37_79b9).to_be_bytes());
        key
    }

    async fn deliver(
        store: &MemoryStore,
        keys: Vec<Key>,
        ttl: Duration,
        with: Option<&'static str>,
    ) {
        let claim = claimed(store, keys, ttl).await;
        store.complete(&claim, with.map(answer)).await.unwrap();
    }

    /// What a fresh claim of `key` finds.
    async fn state(store: &MemoryStore, key: Key) -> ClaimResult {
        store.claim(vec![key], HOUR).await.unwrap()
    }

    #[tokio::test]
    async fn completed_keys_and_their_answers_survive_a_round_trip_and_claims_in_flight_do_not() {
        let dir = Dir::new("round-trip");
        let before = store(10_000);
        deliver(&before, vec![key(1), key(2)], HOUR, Some(r#"{"a":1}"#)).await;
        deliver(&before, vec![key(3)], HOUR, None).await;
        let _flying = claimed(&before, vec![key(4)], HOUR).await;
        let written = before.write_snapshot(&dir.file()).unwrap();
        assert_eq!((written.keys, written.answers), (3, 1));
        assert_eq!(written.bytes, fs::metadata(dir.file()).unwrap().len());
        assert!(
            !temp_path(&dir.file()).exists(),
            "the temporary file is renamed"
        );

        let after = store(10_000);
        let report = after.load_snapshot(&dir.file()).unwrap();
        assert_eq!(
            report,
            LoadReport {
                found: true,
                loaded: 3,
                expired: 0,
                over_capacity: 0,
                answers: 1,
            }
        );
        for k in [key(1), key(2)] {
            match state(&after, k).await {
                ClaimResult::Duplicate(Some(found)) => assert_eq!(found, answer(r#"{"a":1}"#)),
                other => panic!("expected the answer back, got {other:?}"),
            }
        }
        assert!(matches!(
            state(&after, key(3)).await,
            ClaimResult::Duplicate(None)
        ));
        assert!(matches!(
            state(&after, key(4)).await,
            ClaimResult::Claimed(_)
        ));
        assert_eq!(after.answers().len(), 1, "one answer for both keys");
        // The loaded keys keep their remaining TTL, not a new one.
        let slot = after.shard(as_u128(&key(3))).slots[&as_u128(&key(3))];
        let remaining = slot.expires - after.now_ms();
        assert!(remaining <= HOUR.as_millis() as u64 && remaining > 3_500_000);
    }

    #[tokio::test]
    async fn keys_that_expired_while_down_are_dropped_on_load() {
        let dir = Dir::new("expired");
        let before = store(100);
        deliver(
            &before,
            vec![key(1)],
            Duration::from_millis(100),
            Some("{}"),
        )
        .await;
        deliver(&before, vec![key(2)], HOUR, None).await;
        before.write_snapshot(&dir.file()).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let after = store(100);
        let report = after.load_snapshot(&dir.file()).unwrap();
        assert_eq!((report.loaded, report.expired, report.answers), (1, 1, 0));
        assert!(after.answers().is_empty());
        assert!(matches!(
            state(&after, key(1)).await,
            ClaimResult::Claimed(_)
        ));
        assert!(matches!(
            state(&after, key(2)).await,
            ClaimResult::Duplicate(None)
        ));
    }

    #[tokio::test]
    async fn a_smaller_store_keeps_the_longest_lived_keys_of_a_bigger_ones_snapshot() {
        let dir = Dir::new("smaller");
        let before = store(1_000);
        for n in 0..500 {
            let ttl = Duration::from_secs(600 + u64::from(n));
            deliver(&before, vec![key(n)], ttl, (n % 2 == 0).then_some("{}")).await;
        }
        before.write_snapshot(&dir.file()).unwrap();
        let after = store(100);
        let report = after.load_snapshot(&dir.file()).unwrap();
        assert_eq!((report.loaded, report.over_capacity), (100, 400));
        assert_eq!(after.entries(), 100);
        assert_eq!(report.answers, 50);
        assert_eq!(
            after.answers().len(),
            50,
            "answers of dropped keys are not kept"
        );
        assert!(matches!(
            state(&after, key(499)).await,
            ClaimResult::Duplicate(_)
        ));
        assert!(matches!(
            state(&after, key(0)).await,
            ClaimResult::Claimed(_)
        ));
    }

    #[test]
    fn a_missing_file_loads_nothing_and_is_no_error() {
        let dir = Dir::new("missing");
        let report = store(100).load_snapshot(&dir.file()).unwrap();
        assert_eq!(report, LoadReport::default());
        assert!(!report.found);
    }

    /// A valid snapshot of a few keys, one with an answer.
    async fn valid_file(dir: &Dir) -> Vec<u8> {
        let before = store(100);
        deliver(&before, vec![key(1), key(2)], HOUR, Some("{}")).await;
        deliver(&before, vec![key(3)], HOUR, None).await;
        before.write_snapshot(&dir.file()).unwrap();
        fs::read(dir.file()).unwrap()
    }

    /// Loads `bytes` written as a snapshot into a fresh store: the error's
    /// reason and message, and that nothing was loaded.
    fn refused(dir: &Dir, bytes: &[u8]) -> (&'static str, String) {
        fs::write(dir.file(), bytes).unwrap();
        let after = store(100);
        let error = after.load_snapshot(&dir.file()).unwrap_err();
        assert_eq!(after.entries(), 0, "a refused file loads nothing");
        (error.reason(), error.to_string())
    }

    #[tokio::test]
    async fn truncated_files_are_refused_and_called_truncated() {
        let dir = Dir::new("truncated");
        let valid = valid_file(&dir).await;
        for len in [
            3,
            10,
            HEADER_LEN,
            HEADER_LEN + 20,
            valid.len() / 2,
            valid.len() - 1,
        ] {
            let (reason, message) = refused(&dir, &valid[..len]);
            assert_eq!(reason, "truncated", "cut at {len}: {message}");
            assert!(message.contains("is truncated"), "{message}");
            assert!(
                message.contains("replay.snapshot"),
                "names the file: {message}"
            );
        }
    }

    #[tokio::test]
    async fn changed_bytes_are_refused_as_corrupt() {
        let dir = Dir::new("corrupt");
        let valid = valid_file(&dir).await;
        for at in [HEADER_LEN + 5, valid.len() / 2, valid.len() - 1] {
            let mut changed = valid.clone();
            changed[at] ^= 0x01;
            let (reason, message) = refused(&dir, &changed);
            assert_eq!(reason, "corrupt", "byte {at}: {message}");
            assert!(message.contains("checksum does not match"), "{message}");
        }
        let mut longer = valid.clone();
        longer.extend_from_slice(b"extra");
        assert_eq!(refused(&dir, &longer).0, "corrupt");
    }

    #[tokio::test]
    async fn other_files_and_other_versions_are_refused_with_what_they_are() {
        let dir = Dir::new("version");
        let valid = valid_file(&dir).await;
        let mut newer = valid.clone();
        newer[8..12].copy_from_slice(&2u32.to_be_bytes());
        let (reason, message) = refused(&dir, &newer);
        assert_eq!(reason, "version");
        assert!(
            message.contains("format version 2; this hookguard reads version 1"),
            "{message}"
        );
        let (reason, message) = refused(&dir, b"[server]\nlisten = \"0.0.0.0:8000\"\n");
        assert_eq!(reason, "not_a_snapshot");
        assert!(
            message.contains("is not a hookguard replay snapshot"),
            "{message}"
        );
        assert_eq!(refused(&dir, b"").0, "not_a_snapshot");
    }

    #[tokio::test]
    async fn a_write_replaces_the_previous_snapshot_whole() {
        let dir = Dir::new("replace");
        let store = store(100);
        deliver(&store, vec![key(1)], HOUR, None).await;
        store.write_snapshot(&dir.file()).unwrap();
        deliver(&store, vec![key(2)], HOUR, None).await;
        assert_eq!(store.write_snapshot(&dir.file()).unwrap().keys, 2);
        let names: Vec<_> = fs::read_dir(&dir.0).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file left: {names:?}");
    }

    #[test]
    fn a_write_that_fails_is_reported_and_leaves_nothing_behind() {
        let dir = Dir::new("unwritable");
        let path = dir.0.join("missing-dir").join("replay.snapshot");
        let error = store(100).write_snapshot(&path).unwrap_err();
        assert_eq!(error.reason(), "io");
        assert!(error.to_string().contains("missing-dir"), "{error}");
    }

    #[tokio::test]
    async fn the_writer_writes_every_interval_and_stops_with_the_store() {
        let dir = Dir::new("writer");
        let store = Arc::new(store(100));
        deliver(&store, vec![key(1)], HOUR, None).await;
        let (sender, mut outcomes) = tokio::sync::mpsc::unbounded_channel();
        let writer = spawn_writer(
            &store,
            dir.file(),
            Duration::from_millis(20),
            move |outcome| {
                let _ = sender.send(outcome.map(|written| written.keys));
            },
        );
        for _ in 0..2 {
            let outcome = tokio::time::timeout(Duration::from_secs(5), outcomes.recv())
                .await
                .expect("a write within 5 s")
                .expect("the writer is running");
            assert_eq!(outcome.unwrap(), 1);
        }
        drop(store);
        tokio::time::timeout(Duration::from_secs(5), writer)
            .await
            .expect("the writer ends once the store is gone")
            .unwrap();
    }
}
