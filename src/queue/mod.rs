//! Durable delivery's store: the deliveries a durable route accepted and
//! has not finished with, and their dedupe keys.
//!
//! A durable route answers the sender 202 only once its request (the head
//! as it will be sent to the app, the exact body bytes) and its dedupe keys
//! are on stable storage in one commit ([`QueueStore::enqueue`]); the
//! delivery worker (`proxy::deliver`) then takes due items, sends them and
//! settles each by the app's answer. Every backend implements
//! [`QueueStore`] and runs the same conformance tests
//! (`tests/all/durable_store.rs`).
//!
//! An item's life: `ready` (just queued, released by a paused route, or
//! redelivered) or `waiting` (for its next retry) → `in_flight` (taken) →
//! `delivered`, `dead`, or back to `waiting`/`ready`. Items still
//! `in_flight` when the store is opened were interrupted (a restart, a
//! `SIGKILL`) and become `ready` again (in a shared store: once their
//! lease ran out): delivery is at least once.
//!
//! - [`embedded`]: one redb file, written by one thread with group commit.
//! - [`redis`]: one Redis shared by every replica, each change one Lua
//!   script; items a dead replica had in flight are taken again once
//!   their lease runs out.

pub mod embedded;
pub mod redis;

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;

use crate::replay::Key;

/// A delivery's id: 48 bits of milliseconds since the epoch, then 80
/// random bits (a ULID's layout), written as 32 hex digits. Ids sort by the
/// time they were made, which is the order listings show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Id(pub u128);

impl Id {
    /// A fresh id for an item received at `now_ms`.
    pub fn new(now_ms: u64) -> Id {
        let mut random = [0u8; 16];
        // Without randomness ids would still be unique within a process by
        // the store's own check; getrandom failing is not expected on Linux.
        let _ = getrandom::fill(&mut random);
        let random = u128::from_be_bytes(random) & ((1u128 << 80) - 1);
        Id((u128::from(now_ms) & ((1u128 << 48) - 1)) << 80 | random)
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl FromStr for Id {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.len() != 32 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("{text:?} is not a delivery id (32 hex digits)"));
        }
        u128::from_str_radix(text, 16)
            .map(Id)
            .map_err(|e| e.to_string())
    }
}

/// Where an item is in its life (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ItemState {
    /// Due now (new, released by a paused route, or redelivered).
    Ready,
    /// Due at its `next_ms`, after a failed attempt.
    Waiting,
    /// Being delivered.
    InFlight,
    /// The app took it.
    Delivered,
    /// Given up on: kept for `retain_dead` to be looked at and redelivered.
    Dead,
}

impl ItemState {
    /// Every state, in the order metrics and listings show them.
    pub const ALL: [ItemState; 5] = [
        ItemState::Ready,
        ItemState::Waiting,
        ItemState::InFlight,
        ItemState::Delivered,
        ItemState::Dead,
    ];

    /// The name in listings, the CLI's `--state` and the metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            ItemState::Ready => "ready",
            ItemState::Waiting => "waiting",
            ItemState::InFlight => "in_flight",
            ItemState::Delivered => "delivered",
            ItemState::Dead => "dead",
        }
    }

    /// The state named `text` (as [`ItemState::as_str`] writes it).
    pub fn parse(text: &str) -> Option<ItemState> {
        ItemState::ALL
            .into_iter()
            .find(|s| s.as_str() == text || s.as_str().replace('_', "-") == text)
    }

    fn code(self) -> u8 {
        self as u8
    }

    fn from_code(code: u8) -> Option<ItemState> {
        ItemState::ALL.get(usize::from(code)).copied()
    }

    /// Whether the item is finished with (delivered or dead).
    pub fn is_done(self) -> bool {
        matches!(self, ItemState::Delivered | ItemState::Dead)
    }
}

/// A request to queue: what the app will be sent, and the keys that make
/// a copy of it a duplicate.
#[derive(Debug, Clone)]
pub struct NewItem {
    /// The route's name.
    pub route: String,
    /// The request head as sync mode would send it (request line and
    /// header lines, `X-Verified-By` included), without the blank line
    /// that ends it: delivery adds its own headers, then the blank line.
    pub head: Vec<u8>,
    /// The exact body bytes that were verified.
    pub body: Bytes,
    /// The request's dedupe keys.
    pub keys: Vec<Key>,
    /// How long the keys are remembered (the route's `dedupe_ttl`).
    pub dedupe_ttl: Duration,
    /// When the request arrived, in Unix milliseconds.
    pub received_ms: u64,
}

/// What queueing a request came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// Stored durably under this id.
    Queued(Id),
    /// A dedupe key belongs to this earlier item; nothing was stored.
    Duplicate(Id),
}

/// Why the store could not do what it was asked; nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueError {
    /// Storing the item would pass `max_bytes`.
    Full,
    /// The store failed (an I/O error, a full disk, a closed store).
    Io(String),
}

impl QueueError {
    /// The `kind` label of `hookguard_queue_store_errors_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            QueueError::Full => "full",
            QueueError::Io(_) => "io",
        }
    }
}

impl fmt::Display for QueueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueueError::Full => f.write_str("the queue is full (queue.max_bytes)"),
            QueueError::Io(detail) => write!(f, "the queue store failed: {detail}"),
        }
    }
}

/// A stored item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// Its id (`X-Hookguard-Delivery-Id`).
    pub id: Id,
    /// The route that accepted it.
    pub route: String,
    /// Where it is in its life.
    pub state: ItemState,
    /// When the request arrived (Unix ms).
    pub received_ms: u64,
    /// When it is due (ready and waiting items).
    pub next_ms: u64,
    /// When it was delivered or given up on (0 before).
    pub finished_ms: u64,
    /// Times it was sent to the app (`X-Hookguard-Attempt` is this, once
    /// taken).
    pub tries: u32,
    /// Attempts that failed for the message itself (counted against
    /// `max_attempts`; a paused route spends none).
    pub attempts: u32,
    /// The last outcome: the app's status, or why an attempt failed or the
    /// item died.
    pub last: String,
    /// Its dedupe keys.
    pub keys: Vec<Key>,
    /// The head to send (see [`NewItem::head`]).
    pub head: Vec<u8>,
    /// The body to send.
    pub body: Bytes,
}

/// How an attempt ended, for [`QueueStore::settle`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settle {
    /// The app took it; `last` says with which status.
    Delivered { last: String },
    /// The message failed: one attempt spent, due again at `next_ms`.
    Retry { next_ms: u64, last: String },
    /// The app was not taking deliveries: no attempt spent, due again at
    /// `next_ms`.
    Release { next_ms: u64, last: String },
    /// Given up on, with why.
    Dead { last: String },
}

/// What [`QueueStore::list`] returns.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only this route's items.
    pub route: Option<String>,
    /// Only items in this state.
    pub state: Option<ItemState>,
    /// Only items finished (or received, when not finished) before this
    /// Unix ms.
    pub before_ms: Option<u64>,
    /// At most this many, oldest first.
    pub limit: usize,
}

/// Items counted by route and state, for metrics and `queue stats`.
pub type Counts = std::collections::BTreeMap<(String, ItemState), u64>;

/// A store of durable deliveries. Every change is atomic: it happens
/// whole or, with an error, not at all.
#[async_trait]
pub trait QueueStore: Send + Sync + fmt::Debug {
    /// Stores `item` and its dedupe keys in one durable commit, unless one
    /// of the keys belongs to an item (of any age) whose keys have not
    /// expired: then nothing is stored and that item's id is returned.
    async fn enqueue(&self, item: NewItem, now_ms: u64) -> Result<Enqueued, QueueError>;

    /// Takes up to `max` of `route`'s items due at `now_ms`, earliest due
    /// first, marking them in flight (and counting a try). `timeout` is the
    /// longest an attempt on them takes: a shared store lets another
    /// replica take them again only once a lease longer than that ran out
    /// without a settle (the taker died).
    async fn take(
        &self,
        route: &str,
        now_ms: u64,
        max: usize,
        timeout: Duration,
    ) -> Result<Vec<Item>, QueueError>;

    /// Records how an attempt on an in-flight item ended. An item no longer
    /// in flight (purged meanwhile) is left alone.
    async fn settle(&self, id: Id, settle: Settle, now_ms: u64) -> Result<(), QueueError>;

    /// When `route`'s earliest ready or waiting item is due, if it has any.
    async fn next_due(&self, route: &str) -> Result<Option<u64>, QueueError>;

    /// The arrival time of `route`'s oldest item due at `now_ms`.
    async fn oldest_due(&self, route: &str, now_ms: u64) -> Result<Option<u64>, QueueError>;

    /// One item, body included.
    async fn get(&self, id: Id) -> Result<Option<Item>, QueueError>;

    /// Items matching `filter`, oldest first.
    async fn list(&self, filter: &Filter) -> Result<Vec<Item>, QueueError>;

    /// Makes a waiting, dead or delivered item ready now (same id, its
    /// counters kept). `false` when there is no such item, or it is in
    /// flight.
    async fn redeliver(&self, id: Id, now_ms: u64) -> Result<bool, QueueError>;

    /// Deletes items (their dedupe keys stay until they expire); returns
    /// how many there were.
    async fn purge(&self, ids: &[Id]) -> Result<u64, QueueError>;

    /// Deletes, in one bounded batch of at most `max` each, delivered items
    /// finished before `delivered_before_ms`, dead ones finished before
    /// `dead_before_ms`, and dedupe keys expired at `now_ms` (a store may
    /// find only some of those in one call: an expired key is ignored by
    /// [`QueueStore::enqueue`] anyway, so this only frees space); returns
    /// how many items went.
    async fn expire(
        &self,
        delivered_before_ms: u64,
        dead_before_ms: u64,
        now_ms: u64,
        max: usize,
    ) -> Result<u64, QueueError>;

    /// Pauses (or resumes) a route's deliveries on an operator's word;
    /// kept across restarts.
    async fn set_paused(&self, route: &str, paused: bool) -> Result<(), QueueError>;

    /// Whether an operator paused `route`.
    fn paused(&self, route: &str) -> bool;

    /// Items by route and state.
    fn counts(&self) -> Counts;

    /// Bytes the stored items take (what `max_bytes` bounds).
    fn bytes(&self) -> u64;

    /// Items found in flight since this process opened the store (their
    /// attempt was cut off) and made ready again: at open, and on the
    /// Redis queue each lease this replica reclaimed since.
    fn recovered(&self) -> u64;

    /// Whether the store answered lately: a shared store's server may go
    /// away (the embedded store, once open, is always there). `/readyz`
    /// follows it.
    fn healthy(&self) -> bool {
        true
    }
}

/// Unix milliseconds now: the queue's clock.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The versioned encoding of an [`Item`] (everything but its id, which is
/// the record's key): version 1, then state, tries, attempts, the three
/// times, the route, the last outcome, the keys, the head and the body,
/// each variable field length-prefixed.
mod record {
    use super::{Id, Item, ItemState, Key};
    use bytes::Bytes;

    const VERSION: u8 = 1;

    pub fn encode(item: &Item) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            64 + item.route.len()
                + item.last.len()
                + 16 * item.keys.len()
                + item.head.len()
                + item.body.len(),
        );
        out.push(VERSION);
        out.push(item.state.code());
        out.extend_from_slice(&item.tries.to_be_bytes());
        out.extend_from_slice(&item.attempts.to_be_bytes());
        for time in [item.received_ms, item.next_ms, item.finished_ms] {
            out.extend_from_slice(&time.to_be_bytes());
        }
        for text in [item.route.as_bytes(), item.last.as_bytes()] {
            out.extend_from_slice(&(text.len().min(u16::MAX as usize) as u16).to_be_bytes());
            out.extend_from_slice(&text[..text.len().min(u16::MAX as usize)]);
        }
        out.extend_from_slice(&(item.keys.len() as u16).to_be_bytes());
        for key in &item.keys {
            out.extend_from_slice(key);
        }
        out.extend_from_slice(&(item.head.len() as u32).to_be_bytes());
        out.extend_from_slice(&item.head);
        out.extend_from_slice(&item.body);
        out
    }

    /// Reads a record; `None` for one this version cannot read.
    pub fn decode(id: Id, bytes: &[u8]) -> Option<Item> {
        let mut r = Reader(bytes);
        if r.take(1)?[0] != VERSION {
            return None;
        }
        let state = ItemState::from_code(r.take(1)?[0])?;
        let tries = u32::from_be_bytes(r.take(4)?.try_into().ok()?);
        let attempts = u32::from_be_bytes(r.take(4)?.try_into().ok()?);
        let received_ms = r.u64()?;
        let next_ms = r.u64()?;
        let finished_ms = r.u64()?;
        let route = r.text()?;
        let last = r.text()?;
        let count = usize::from(u16::from_be_bytes(r.take(2)?.try_into().ok()?));
        let mut keys = Vec::with_capacity(count);
        for _ in 0..count {
            keys.push(Key::try_from(r.take(16)?).ok()?);
        }
        let head_len = u32::from_be_bytes(r.take(4)?.try_into().ok()?) as usize;
        let head = r.take(head_len)?.to_vec();
        Some(Item {
            id,
            route,
            state,
            received_ms,
            next_ms,
            finished_ms,
            tries,
            attempts,
            last,
            keys,
            head,
            body: Bytes::copy_from_slice(r.0),
        })
    }

    struct Reader<'a>(&'a [u8]);

    impl<'a> Reader<'a> {
        fn take(&mut self, n: usize) -> Option<&'a [u8]> {
            if self.0.len() < n {
                return None;
            }
            let (head, rest) = self.0.split_at(n);
            self.0 = rest;
            Some(head)
        }

        fn u64(&mut self) -> Option<u64> {
            Some(u64::from_be_bytes(self.take(8)?.try_into().ok()?))
        }

        fn text(&mut self) -> Option<String> {
            let len = usize::from(u16::from_be_bytes(self.take(2)?.try_into().ok()?));
            String::from_utf8(self.take(len)?.to_vec()).ok()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_print_as_32_hex_digits_sort_by_time_and_parse_back() {
        let (a, b) = (Id::new(1_000), Id::new(2_000));
        assert!(a < b);
        let text = a.to_string();
        assert_eq!(text.len(), 32);
        assert_eq!(text.parse::<Id>().unwrap(), a);
        assert!("xyz".parse::<Id>().is_err());
    }

    #[test]
    fn a_record_reads_back_as_written() {
        let item = Item {
            id: Id(7),
            route: "vendor".into(),
            state: ItemState::Waiting,
            received_ms: 1,
            next_ms: 2,
            finished_ms: 3,
            tries: 4,
            attempts: 5,
            last: "503".into(),
            keys: vec![[9; 16], [8; 16]],
            head: b"POST / HTTP/1.1\r\nhost: a\r\n".to_vec(),
            body: Bytes::from_static(b"{\"id\":1}\r\n\x00"),
        };
        assert_eq!(record::decode(Id(7), &record::encode(&item)), Some(item));
        assert_eq!(record::decode(Id(7), &[2, 0]), None);
    }
}
