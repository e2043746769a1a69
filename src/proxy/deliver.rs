//! Durable routes' delivery: one worker per durable route takes due items
//! from the queue, sends each to the app on hookguard's own client (the
//! pooled connections sync forwarding uses), and settles it by the answer.
//!
//! Each attempt carries `X-Hookguard-Delivery-Id`, `X-Hookguard-Attempt`
//! (1-based: the how-manieth time hookguard tries to send the item, a
//! paused route's probes whose connection was refused included) and
//! `X-Hookguard-Received-At` (an HTTP date) after the headers sync mode
//! would have sent. The answer decides:
//! - 2xx: delivered.
//! - connection refused, 429, 502, 503, 504: the app is not taking
//!   deliveries. The item goes back as it was, no attempt spent, and the
//!   route pauses for the answer's `Retry-After` (at most an hour) or its
//!   current backoff step; then one item (the earliest due) probes, and
//!   the first answer that is not one of these resumes full concurrency.
//! - a `dead_on` status (by default every 4xx but 408, 409, 425, 429):
//!   dead at once.
//! - anything else (other 5xx, 408, 409, 425, a timeout, a connection that
//!   broke before the answer): one attempt spent, retried after the
//!   jittered backoff step for that attempt (the last step repeats).
//! - past `max_attempts` or `max_age`: dead.
//!
//! Retention runs here too: delivered and dead items past their windows,
//! and expired dedupe keys, are purged in bounded batches once a minute.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use http::uri::Authority;
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::{AbortHandle, JoinHandle};

use super::respond::DELIVERY_ID_HEADER;
use super::{forward, State};
use crate::config::{Durable, StatusSet};
use crate::http1::app::{self, Failure};
use crate::http1::write::{header_line, number_line};
use crate::metrics::QueueMetrics;
use crate::queue::{self, Item, QueueStore, Settle};

/// Header telling the app which attempt this is, 1-based.
pub const ATTEMPT_HEADER: &str = "x-hookguard-attempt";
/// Header telling the app when hookguard received the request.
pub const RECEIVED_AT_HEADER: &str = "x-hookguard-received-at";

/// Longest a worker sleeps without looking at the queue: a reload that
/// resumes a route, or a clock step, is noticed within this.
const IDLE_POLL: Duration = Duration::from_secs(1);

/// The longest `Retry-After` from the app that is honoured as given.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Room left at the end of `shutdown_grace` (at most a quarter of it) for
/// handing back the items whose attempts were still running.
const HAND_BACK_ROOM: Duration = Duration::from_secs(1);

/// Largest answer body read to keep the connection; a larger one closes it.
const MAX_ANSWER_BODY: usize = 64 * 1024;

/// How often retention runs, and the most items one of its transactions
/// deletes per state.
const RETENTION_INTERVAL: Duration = Duration::from_secs(60);
const RETENTION_BATCH: usize = 1000;

/// One [`Notify`] per durable route, so that an enqueue wakes its worker
/// at once instead of at its next poll.
#[derive(Debug, Default)]
pub struct Wakers {
    routes: Mutex<HashMap<String, Arc<Notify>>>,
}

impl Wakers {
    /// Wakes `route`'s worker (or the next one to wait).
    pub fn wake(&self, route: &str) {
        self.get(route).notify_one();
    }

    fn get(&self, route: &str) -> Arc<Notify> {
        let mut routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        routes.entry(route.to_owned()).or_default().clone()
    }
}

/// Runs the durable routes' workers, and retention, until `stop` turns
/// true; then waits for the attempts in flight to end, and hands back
/// the items of those still running near the end of `shutdown_grace`
/// (see `hand_back`). A route made
/// durable by a reload gets its worker within a second; a worker whose
/// route is gone or no longer durable ends once its attempts have.
pub async fn run(state: Arc<State>, mut stop: watch::Receiver<bool>) {
    let Some(store) = state.queue.get().cloned() else {
        return;
    };
    let mut workers: HashMap<String, JoinHandle<()>> = HashMap::new();
    let mut last_retention: Option<tokio::time::Instant> = None;
    loop {
        if *stop.borrow() {
            break;
        }
        let live = state.live.load_full();
        for route in live.config.routes.iter().filter(|r| r.delivery.is_some()) {
            if workers.get(&route.name).is_none_or(JoinHandle::is_finished) {
                let worker = tokio::spawn(route_worker(
                    state.clone(),
                    store.clone(),
                    route.name.clone(),
                    stop.clone(),
                ));
                workers.insert(route.name.clone(), worker);
            }
        }
        if let Some(settings) = &live.config.queue {
            if last_retention.is_none_or(|at| at.elapsed() >= RETENTION_INTERVAL) {
                last_retention = Some(tokio::time::Instant::now());
                retain(&*store, settings.retain_delivered, settings.retain_dead).await;
            }
        }
        tokio::select! {
            () = tokio::time::sleep(IDLE_POLL) => {}
            changed = stop.changed() => if changed.is_err() { break },
        }
    }
    for (_, worker) in workers {
        let _ = worker.await;
    }
}

/// Purges what retention allows, a bounded batch per transaction, at most
/// a few batches per run so the writer is never held long.
async fn retain(store: &dyn QueueStore, delivered: Duration, dead: Duration) {
    let now = queue::now_ms();
    let before = |keep: Duration| now.saturating_sub(keep.as_millis() as u64);
    for _ in 0..10 {
        match store
            .expire(before(delivered), before(dead), now, RETENTION_BATCH)
            .await
        {
            Ok(0) => break,
            Ok(removed) => tracing::debug!(removed, "queue retention purged items"),
            Err(error) => {
                tracing::warn!(%error, "queue retention failed");
                break;
            }
        }
    }
}

/// A route's pause while the app is not taking deliveries.
#[derive(Debug, Default)]
struct Circuit {
    /// Paused until then (Unix ms); after it, one item probes.
    until: Option<u64>,
    /// Which backoff step the next pause waits.
    step: usize,
}

impl Circuit {
    /// The app shed an attempt: pause (again, with the next step), unless a
    /// pause already runs (attempts that were in flight with it).
    fn open(&mut self, now: u64, retry_after: Option<Duration>, backoff: &[Duration]) {
        if self.until.is_some_and(|until| until > now) {
            return;
        }
        let step = backoff[self.step.min(backoff.len() - 1)];
        let wait = retry_after.unwrap_or(step);
        self.until = Some(now + wait.as_millis() as u64);
        self.step += 1;
    }

    /// The app answered: deliver at full concurrency again.
    fn close(&mut self) {
        *self = Circuit::default();
    }
}

/// What one attempt came to.
#[derive(Debug)]
enum Verdict {
    Delivered(u16),
    /// The app is not taking deliveries; with its `Retry-After`.
    Shed {
        outcome: &'static str,
        last: String,
        retry_after: Option<Duration>,
    },
    /// The message failed; retried.
    Retry {
        outcome: &'static str,
        last: String,
    },
    /// A `dead_on` status.
    Dead(u16),
}

/// One durable route's worker (see the module doc).
async fn route_worker(
    state: Arc<State>,
    store: Arc<dyn QueueStore>,
    name: String,
    mut stop: watch::Receiver<bool>,
) {
    let wake = state.wakers.get(&name);
    let metrics = state.metrics.queue().clone();
    metrics.route(&name);
    let (done, mut finished) = mpsc::unbounded_channel::<(Item, Verdict)>();
    // The items being attempted: where each was due (to hand it back as it
    // was) and its attempt's task.
    let mut in_flight: HashMap<queue::Id, (u64, AbortHandle)> = HashMap::new();
    let mut circuit = Circuit::default();
    let mut hand_back_at: Option<tokio::time::Instant> = None;
    loop {
        let live = state.live.load_full();
        if hand_back_at.is_none() && *stop.borrow() {
            hand_back_at = Some(hand_back_deadline(live.config.server.shutdown_grace));
        }
        let stopping = hand_back_at.is_some();
        let durable = live
            .config
            .route(&name)
            .and_then(|route| route.delivery.clone());
        if !in_flight.is_empty() && hand_back_at.is_some_and(|at| at <= tokio::time::Instant::now())
        {
            for (_, task) in in_flight.values() {
                task.abort();
            }
            // Attempts that ended before the abort are settled by their answer.
            while let Ok((item, verdict)) = finished.try_recv() {
                in_flight.remove(&item.id);
                let durable = durable.as_ref();
                settle(
                    &*store,
                    &metrics,
                    &name,
                    durable,
                    &mut circuit,
                    item,
                    verdict,
                )
                .await;
            }
            hand_back(&*store, &name, in_flight.drain()).await;
        }
        let running = in_flight.len();
        if (stopping || durable.is_none()) && running == 0 {
            metrics.paused(&name, false);
            return;
        }
        let now = queue::now_ms();
        let held = store.paused(&name);
        // Paused from the first shed answer until an answer that is not
        // one, the probes in between included: the route is not
        // delivering at full concurrency until then.
        metrics.paused(&name, held || circuit.until.is_some());
        let mut wait = IDLE_POLL;
        if let (Some(durable), false, false) = (&durable, stopping, held) {
            if let Some(until) = circuit.until.filter(|until| *until > now) {
                wait = Duration::from_millis(until - now).min(IDLE_POLL);
            } else {
                // After a pause, one item at a time until the app answers.
                let limit = if circuit.until.is_some() {
                    1
                } else {
                    durable.concurrency
                };
                // Slots are refilled once half are free (or none is
                // busy): a take is a flushed commit, so taking one item
                // per finished attempt would make the disk the limit.
                let refill = running == 0 || limit - running >= limit.div_ceil(2);
                if running < limit && refill {
                    match store
                        .take(&name, now, limit - running, durable.timeout)
                        .await
                    {
                        Ok(items) => {
                            for item in items {
                                if too_old(&item, durable, now) {
                                    let last = format!(
                                        "max_age: received {} s ago",
                                        (now - item.received_ms) / 1000
                                    );
                                    give_up(&*store, &metrics, &name, &item, "max_age", last).await;
                                    continue;
                                }
                                let authority = live.config.server.upstream.authority.clone();
                                let (timeout, dead_on) = (durable.timeout, durable.dead_on.clone());
                                let done = done.clone();
                                let (id, due) = (item.id, item.next_ms);
                                let task = tokio::spawn(async move {
                                    let verdict =
                                        attempt(&authority, &item, timeout, &dead_on).await;
                                    let _ = done.send((item, verdict));
                                });
                                in_flight.insert(id, (due, task.abort_handle()));
                            }
                        }
                        Err(error) => {
                            tracing::warn!(route = %name, %error, "the queue could not hand out deliveries")
                        }
                    }
                }
                if running < limit && refill {
                    if let Ok(Some(next)) = store.next_due(&name).await {
                        let until = Duration::from_millis(next.saturating_sub(queue::now_ms()));
                        wait = until.clamp(Duration::from_millis(5), IDLE_POLL);
                    }
                }
            }
        }
        tokio::select! {
            Some(first) = finished.recv() => {
                // Every attempt that ended meanwhile, before the next take.
                let mut ended = vec![first];
                while let Ok(more) = finished.try_recv() {
                    ended.push(more);
                }
                for (item, _) in &ended {
                    in_flight.remove(&item.id);
                }
                let durable = durable.as_ref().or(live.config.route(&name).and_then(|r| r.delivery.as_ref()));
                for (item, verdict) in ended {
                    settle(&*store, &metrics, &name, durable, &mut circuit, item, verdict).await;
                }
            }
            () = wake.notified() => {}
            () = tokio::time::sleep(wait) => {}
            () = sleep_until(hand_back_at) => {}
            changed = stop.changed(), if !stopping => if changed.is_err() {
                hand_back_at = Some(hand_back_deadline(live.config.server.shutdown_grace));
            },
        }
    }
}

/// Sleeps until `at`, or forever without one.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// When a stopping worker hands back the items still being attempted:
/// shortly before `shutdown_grace` ends (the server stops waiting for the
/// deliveries then), leaving room for the hand-back's own writes.
fn hand_back_deadline(grace: Duration) -> tokio::time::Instant {
    tokio::time::Instant::now() + grace - (grace / 4).min(HAND_BACK_ROOM)
}

/// Puts the items of the attempts cut off at shutdown (the worker has
/// aborted them) back as they were, no attempt spent: the app may have
/// received them, and is
/// sent them again (deliveries are at least once). Without this, an item
/// on the Redis queue would wait out its lease (the route's `timeout` and
/// more) before another replica could take it; on the embedded store the
/// next start would find it in flight and do the same.
async fn hand_back(
    store: &dyn QueueStore,
    route: &str,
    in_flight: impl Iterator<Item = (queue::Id, (u64, AbortHandle))>,
) {
    let mut count = 0u64;
    for (id, (next_ms, _)) in in_flight {
        count += 1;
        let settled = Settle::Release {
            next_ms,
            last: "hookguard stopped during the attempt: handed back".to_owned(),
        };
        if let Err(error) = store.settle(id, settled, queue::now_ms()).await {
            tracing::warn!(route, %id, %error, "the queue could not take back a delivery cut off by shutdown: it is delivered again once its lease runs out");
        }
    }
    tracing::info!(route, count, "shutdown grace ending: deliveries still being attempted are handed back to the queue, and sent again");
}

/// Whether an item is past its route's `max_age`.
fn too_old(item: &Item, durable: &Durable, now: u64) -> bool {
    now.saturating_sub(item.received_ms) > durable.max_age.as_millis() as u64
}

/// Records an attempt's verdict in the store, and in the route's pause.
async fn settle(
    store: &dyn QueueStore,
    metrics: &QueueMetrics,
    route: &str,
    durable: Option<&Durable>,
    circuit: &mut Circuit,
    item: Item,
    verdict: Verdict,
) {
    let now = queue::now_ms();
    let settled = match verdict {
        Verdict::Delivered(status) => {
            circuit.close();
            metrics.attempt(route, "delivered");
            Settle::Delivered {
                last: status.to_string(),
            }
        }
        Verdict::Shed {
            outcome,
            last,
            retry_after,
        } => {
            metrics.attempt(route, outcome);
            if let Some(durable) = durable {
                if circuit.until.is_none_or(|until| until <= now) {
                    tracing::info!(route, id = %item.id, %last, "the app is not taking deliveries: the route pauses");
                }
                circuit.open(now, retry_after, &durable.backoff);
            }
            // Back where it was: the earliest due probes when the pause ends.
            Settle::Release {
                next_ms: item.next_ms,
                last,
            }
        }
        Verdict::Dead(status) => {
            circuit.close();
            metrics.attempt(route, "rejected");
            return give_up(store, metrics, route, &item, "status", status.to_string()).await;
        }
        Verdict::Retry { outcome, last } => {
            circuit.close();
            metrics.attempt(route, outcome);
            let Some(durable) = durable else {
                return release(store, &item, last).await;
            };
            let attempts = item.attempts + 1;
            if durable.max_attempts > 0 && attempts >= durable.max_attempts {
                let last = format!("max_attempts: {attempts} attempts, the last {last}");
                return give_up(store, metrics, route, &item, "max_attempts", last).await;
            }
            let step = durable.backoff[(item.attempts as usize).min(durable.backoff.len() - 1)];
            let next_ms = now + jittered(step).as_millis() as u64;
            if next_ms.saturating_sub(item.received_ms) > durable.max_age.as_millis() as u64 {
                let last = format!("max_age: no retry possible within it, the last attempt {last}");
                return give_up(store, metrics, route, &item, "max_age", last).await;
            }
            Settle::Retry { next_ms, last }
        }
    };
    if let Err(error) = store.settle(item.id, settled, now).await {
        // The item stays in flight in the store, and is delivered again
        // when the store is next opened.
        tracing::warn!(route, id = %item.id, %error, "the queue could not record a delivery attempt");
    }
}

/// Puts an item back as it was (its route is gone from the config).
async fn release(store: &dyn QueueStore, item: &Item, last: String) {
    let settled = Settle::Release {
        next_ms: item.next_ms,
        last,
    };
    if let Err(error) = store.settle(item.id, settled, queue::now_ms()).await {
        tracing::warn!(id = %item.id, %error, "the queue could not record a delivery attempt");
    }
}

/// Marks an item dead, logs and counts it.
async fn give_up(
    store: &dyn QueueStore,
    metrics: &QueueMetrics,
    route: &str,
    item: &Item,
    reason: &'static str,
    last: String,
) {
    metrics.dead(route, reason);
    tracing::warn!(route, id = %item.id, reason, %last, tries = item.tries, "a queued delivery is dead: kept for queue.retain_dead; `hookguard queue redeliver` sends it again");
    if let Err(error) = store
        .settle(item.id, Settle::Dead { last }, queue::now_ms())
        .await
    {
        tracing::warn!(route, id = %item.id, %error, "the queue could not record a dead delivery");
    }
}

/// `step` ± up to 20 %, so that items failed together do not retry
/// together.
fn jittered(step: Duration) -> Duration {
    let mut random = [0u8; 4];
    let _ = getrandom::fill(&mut random);
    let unit = f64::from(u32::from_le_bytes(random)) / f64::from(u32::MAX);
    step.mul_f64(0.8 + 0.4 * unit)
}

/// Sends one item to the app within `timeout` and judges the answer.
async fn attempt(
    authority: &Authority,
    item: &Item,
    timeout: Duration,
    dead_on: &StatusSet,
) -> Verdict {
    let mut head = Vec::with_capacity(item.head.len() + 160 + item.body.len().min(16 * 1024));
    head.extend_from_slice(&item.head);
    header_line(
        &mut head,
        DELIVERY_ID_HEADER,
        item.id.to_string().as_bytes(),
    );
    number_line(&mut head, ATTEMPT_HEADER, u64::from(item.tries));
    let received = UNIX_EPOCH + Duration::from_millis(item.received_ms);
    header_line(
        &mut head,
        RECEIVED_AT_HEADER,
        httpdate::fmt_http_date(received).as_bytes(),
    );
    head.extend_from_slice(b"\r\n");
    let body: Bytes = forward::inline_body(&mut head, item.body.clone());
    let head_request = item.head.starts_with(b"HEAD ");
    let exchange = async {
        let mut response = app::exchange(authority, &head, &body, head_request).await?;
        let status = response.head.status.as_u16();
        let retry_after = retry_after(&response.head.lines);
        // The answer is read whole so that the connection can be kept.
        let read = response.small_body(MAX_ANSWER_BODY, timeout).await;
        if read.is_some() && response.head.keep_alive {
            response.checkin();
        }
        Ok::<_, Failure>((status, retry_after))
    };
    match tokio::time::timeout(timeout, exchange).await {
        Err(_elapsed) => Verdict::Retry {
            outcome: "timeout",
            last: format!("timeout: no answer within {} ms", timeout.as_millis()),
        },
        Ok(Err(Failure::Connect(error))) => Verdict::Shed {
            outcome: "refused",
            last: format!("refused: {error}"),
            retry_after: None,
        },
        Ok(Err(Failure::Broken(why))) => Verdict::Retry {
            outcome: "broken",
            last: format!("broken: {why}"),
        },
        Ok(Ok((status, retry_after))) => judge(status, retry_after, dead_on),
    }
}

/// What an answer's status says (see the module doc).
fn judge(status: u16, retry_after: Option<Duration>, dead_on: &StatusSet) -> Verdict {
    match status {
        200..=299 => Verdict::Delivered(status),
        429 | 502 | 503 | 504 => Verdict::Shed {
            outcome: "shed",
            last: status.to_string(),
            retry_after,
        },
        _ if dead_on.contains(status) => Verdict::Dead(status),
        _ => Verdict::Retry {
            outcome: "error",
            last: status.to_string(),
        },
    }
}

/// The answer's `Retry-After` (seconds or an HTTP date), at most
/// [`MAX_RETRY_AFTER`]; `lines` are its header lines.
fn retry_after(lines: &[u8]) -> Option<Duration> {
    let text = std::str::from_utf8(lines).ok()?;
    let value = text.split("\r\n").find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("retry-after")
            .then(|| value.trim())
    })?;
    let wait = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => httpdate::parse_http_date(value)
            .ok()?
            .duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_judged_as_the_issue_says() {
        let mut dead_on = StatusSet::empty();
        dead_on.add("4xx").unwrap();
        dead_on.remove(&[408, 409, 425, 429]);
        assert!(matches!(
            judge(204, None, &dead_on),
            Verdict::Delivered(204)
        ));
        for shed in [429, 502, 503, 504] {
            assert!(
                matches!(judge(shed, None, &dead_on), Verdict::Shed { .. }),
                "{shed}"
            );
        }
        for dead in [400, 401, 404, 422] {
            assert!(
                matches!(judge(dead, None, &dead_on), Verdict::Dead(_)),
                "{dead}"
            );
        }
        for retried in [408, 409, 425, 500, 501, 301] {
            assert!(
                matches!(judge(retried, None, &dead_on), Verdict::Retry { .. }),
                "{retried}"
            );
        }
    }

    #[test]
    fn retry_after_is_read_in_seconds_or_as_a_date_and_capped() {
        assert_eq!(
            retry_after(b"content-type: text/plain\r\nRetry-After: 7\r\n"),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            retry_after(b"retry-after: 999999\r\n"),
            Some(MAX_RETRY_AFTER)
        );
        assert_eq!(
            retry_after(b"retry-after: Wed, 21 Oct 2015 07:28:00 GMT\r\n"),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after(b"x-other: 1\r\n"), None);
    }

    #[test]
    fn pauses_take_the_backoff_steps_in_turn_and_retry_after_first() {
        let backoff = [Duration::from_secs(1), Duration::from_secs(5)];
        let mut circuit = Circuit::default();
        circuit.open(0, None, &backoff);
        assert_eq!(circuit.until, Some(1000));
        circuit.open(500, None, &backoff);
        assert_eq!(circuit.until, Some(1000), "a pause running is not extended");
        circuit.open(1000, None, &backoff);
        assert_eq!(circuit.until, Some(6000));
        circuit.open(6000, None, &backoff);
        assert_eq!(circuit.until, Some(11000), "the last step repeats");
        circuit.open(11000, Some(Duration::from_secs(2)), &backoff);
        assert_eq!(circuit.until, Some(13000));
        circuit.close();
        assert_eq!(circuit.until, None);
    }
}
