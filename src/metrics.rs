//! Prometheus metrics, served on the admin listener's `/metrics`.
//!
//! Label values come only from configuration (route names, key ids) and
//! closed sets (outcomes, reasons, status classes), never from request data,
//! so the number of series is bounded. Every series whose labels are known in
//! advance is created at zero on startup, so dashboards and alerts see zeros
//! rather than missing series.
//!
//! | family | labels | meaning |
//! |---|---|---|
//! | `hookguard_requests_total` | route, outcome | every request, once |
//! | `hookguard_rejections_total` | route, reason | answers hookguard made itself |
//! | `hookguard_request_duration_seconds` | route | whole request, histogram |
//! | `hookguard_upstream_duration_seconds` | route | upstream exchange, histogram |
//! | `hookguard_upstream_responses_total` | route, code | app answers by class |
//! | `hookguard_secret_matches_total` | route, key | which secret verified |
//! | `hookguard_timestamp_skew_seconds` | route, direction | sender clock vs ours |
//! | `hookguard_replay_entries` | | keys remembered now |
//! | `hookguard_replay_evictions_total` | cause | keys dropped, by cause |
//! | `hookguard_replay_store_errors_total` | op | shared-store operations that failed |
//! | `hookguard_replay_store_duration_seconds` | op | shared-store operations, histogram |
//! | `hookguard_replay_store_bypass_total` | route | forwarded unprotected (store down, `allow`) |
//! | `hookguard_headers_dropped_total` | route, cause | request headers not forwarded: `spoofed` (read by CGI-style apps as one hookguard sets), `underscore` (`underscores_in_headers = "drop"`) |
//! | `hookguard_late_answers_total` | route, result | answers that came after the sender was told 504: `completed`, `released`, or `expired` (none within `settle_timeout`) |
//! | `hookguard_replay_snapshots_total` | op, result | memory-store snapshots loaded and written: `ok`, or why not (`io`, `not_a_snapshot`, `version`, `truncated`, `corrupt`) |
//! | `hookguard_config_reloads_total` | result | reload attempts |
//! | `hookguard_connections_closed_total` | cause | connections the wire closed mid-way or timed out |
//! | `hookguard_log_lines_dropped_total` | | log lines dropped because stderr's reader was slower than the traffic (see [`crate::logging`]) |
//! | `hookguard_captures_dropped_total` | | captures of refused requests deleted or not written to stay within `capture_max_files` / `capture_max_bytes` |
//! | `hookguard_egress_requests_total` | route, outcome | app calls through egress, once each: `ok` (the partner's final answer was 1xx-3xx), `partner_error` (its final answer was 4xx/5xx), `timeout` (504 `egress_timeout`), `unavailable` (no connection), `refused` (hookguard refused the call) |
//! | `hookguard_egress_attempts_total` | route, status_class | attempts sent to partners: `2xx`..`5xx`, `connect_error`, `timeout` |
//! | `hookguard_egress_duration_seconds` | route | whole app call, retries and waits included, histogram |
//! | `hookguard_egress_attempt_duration_seconds` | route | one attempt, histogram |
//! | `hookguard_egress_retry_after_seconds` | route | waits a partner's `Retry-After` asked for and hookguard honoured, histogram |
//! | `hookguard_queue_items` | route, state | durable deliveries stored, by state (`ready`, `waiting`, `in_flight`, `delivered`, `dead`) |
//! | `hookguard_queue_bytes` | | bytes the stored deliveries take (bounded by `queue.max_bytes`) |
//! | `hookguard_queue_oldest_ready_age_seconds` | route | age of the oldest delivery due now (0 when none) |
//! | `hookguard_queue_enqueue_duration_seconds` | | from the body's last byte to the flushed journal record, or the durable commit without a journal (`fdatasync` included), histogram |
//! | `hookguard_queue_store_errors_total` | kind | enqueues refused: `full` (`max_bytes`) or `io` |
//! | `hookguard_delivery_attempts_total` | route, outcome | attempts to deliver a queued item: `delivered`, `refused` (connect), `shed` (429, 502, 503, 504), `error` (other answers retried), `timeout`, `broken`, `rejected` (a `dead_on` status) |
//! | `hookguard_queue_dead_total` | route, reason | items given up on: `status`, `max_age`, `max_attempts` |
//! | `hookguard_queue_route_paused` | route | 1 while a durable route is paused (from the app's first shed answer until one that is not, probes included; or an operator) |
//! | `hookguard_queue_recovered_items` | | items whose attempt was cut off, found in flight and made ready again since start: at open, and on the Redis queue each lease that ran out (its replica stopped mid-delivery) reclaimed by this replica |
//! | `hookguard_cert_fetches_total` | scheme, trigger, outcome | certificates fetched for `paypal` and `sns`: `trigger` `request` (a request named an uncached URL) or `refresh` (the background refresher), `outcome` `ok`, `untrusted` (fetched, refused) or `unreachable` (not fetched) |
//! | `hookguard_cert_cache_entries` | scheme | certificates cached now, over every route of the scheme |
//! | `hookguard_cert_cache_oldest_age_seconds` | scheme | age of the oldest cached certificate since it was fetched (0 when none) |
//! | `hookguard_build_info` | version | always 1 |

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::config::UNMATCHED_ROUTE;
use crate::http1::CloseCause;
use crate::reject::{Outcome, Reason};

/// Latency buckets in seconds: sub-millisecond proxying up to slow apps.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Skew buckets in seconds (absolute value; the sign is the `direction`
/// label, so that `_sum` stays monotonic as Prometheus expects).
const SKEW_BUCKETS: &[f64] = &[
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 240.0, 300.0, 600.0, 3600.0,
];

/// Status classes of `hookguard_upstream_responses_total`.
const STATUS_CLASSES: &[&str] = &["2xx", "3xx", "4xx", "5xx"];

/// Why a replay key left the store early or on time.
pub const EVICTION_CAUSES: &[&str] = &["capacity", "expired"];

/// Operations of the shared replay store, as `op` labels.
pub const STORE_OPS: &[&str] = &["claim", "complete", "release", "ping"];

/// Causes of `hookguard_headers_dropped_total`, in [`HeaderDrop`] order.
pub const HEADER_DROP_CAUSES: &[&str] = &["spoofed", "underscore"];

/// Why a request header was not forwarded to the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderDrop {
    /// Its name, read the way CGI-style apps read names, is one only
    /// hookguard may set.
    Spoofed,
    /// Its name has an underscore, and the server drops those.
    Underscore,
}

/// What became of a claim whose answer came after the sender was told 504,
/// in `LATE_RESULTS` order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LateAnswer {
    /// The app answered in time for `settle_timeout`, and the claim
    /// completed.
    Completed,
    /// The app answered (or failed) in time, and the claim was released.
    Released,
    /// No answer within `settle_timeout`; the claim was released.
    Expired,
}

/// Results of `hookguard_late_answers_total`.
pub const LATE_RESULTS: &[&str] = &["completed", "released", "expired"];

impl LateAnswer {
    /// The `result` label.
    pub fn as_str(self) -> &'static str {
        LATE_RESULTS[self as usize]
    }
}

/// Results of `hookguard_replay_snapshots_total`: `ok`, or the reasons a
/// snapshot is refused (`replay::memory::snapshot::SnapshotError::reason`).
pub const SNAPSHOT_RESULTS: &[&str] = &[
    "ok",
    "io",
    "not_a_snapshot",
    "version",
    "truncated",
    "corrupt",
];

/// Outcomes of `hookguard_egress_requests_total`, in [`EgressOutcome`]
/// order.
pub const EGRESS_OUTCOMES: &[&str] = &["ok", "partner_error", "timeout", "unavailable", "refused"];

/// What became of one app call through egress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EgressOutcome {
    /// The partner's final answer was 1xx to 3xx.
    Ok,
    /// The partner's final answer was 4xx or 5xx.
    PartnerError,
    /// The budget ran out without an answer (504 `egress_timeout`).
    Timeout,
    /// No connection could be made (502 `upstream_unavailable`).
    Unavailable,
    /// Hookguard refused the call itself.
    Refused,
}

impl EgressOutcome {
    /// The `outcome` label.
    pub fn as_str(self) -> &'static str {
        EGRESS_OUTCOMES[self as usize]
    }
}

/// Status classes of `hookguard_egress_attempts_total`, in [`Attempt`]
/// order.
pub const ATTEMPT_CLASSES: &[&str] = &["2xx", "3xx", "4xx", "5xx", "connect_error", "timeout"];

/// How one attempt to a partner ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// An answer with this status.
    Status(u16),
    /// No connection.
    ConnectError,
    /// No answer in time, or the connection broke after sending.
    Timeout,
}

impl Attempt {
    /// The `status_class` label's index in [`ATTEMPT_CLASSES`].
    fn class(self) -> usize {
        match self {
            Attempt::Status(status) => usize::from(status.clamp(200, 599) / 100 - 2),
            Attempt::ConnectError => 4,
            Attempt::Timeout => 5,
        }
    }
}

/// Results of `hookguard_config_reloads_total`.
pub const RELOAD_RESULTS: &[&str] = &["success", "error"];

/// The metric families hookguard exports. Cheap to clone (shared handles).
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    rejections: IntCounterVec,
    request_duration: HistogramVec,
    upstream_duration: HistogramVec,
    upstream_responses: IntCounterVec,
    secret_matches: IntCounterVec,
    skew: HistogramVec,
    replay_entries: IntGauge,
    replay_evictions: IntCounterVec,
    store_errors: IntCounterVec,
    store_duration: HistogramVec,
    store_bypass: IntCounterVec,
    headers_dropped: IntCounterVec,
    late_answers: IntCounterVec,
    snapshots: IntCounterVec,
    config_reloads: IntCounterVec,
    connections_closed: IntCounterVec,
    captures_dropped: IntCounter,
    /// Copied from [`crate::logging::dropped_lines`] at each scrape; the
    /// lock keeps two scrapes from both adding the same difference.
    log_lines_dropped: Arc<std::sync::Mutex<IntCounter>>,
    certs: CertMetrics,
    egress_requests: IntCounterVec,
    egress_attempts: IntCounterVec,
    egress_duration: HistogramVec,
    egress_attempt_duration: HistogramVec,
    egress_retry_after: HistogramVec,
    queue: QueueMetrics,
}

/// The fetched certificates' families, sampled from
/// [`crate::schemes::fetched::stats`] at each scrape.
#[derive(Debug, Clone)]
struct CertMetrics {
    /// The lock keeps two scrapes from both adding the same difference.
    fetches: Arc<std::sync::Mutex<IntCounterVec>>,
    entries: IntGaugeVec,
    oldest: IntGaugeVec,
}

impl CertMetrics {
    fn new(r: &Registry) -> Self {
        let gauge = |name: &str, help: &str| {
            let family =
                IntGaugeVec::new(Opts::new(name, help), &["scheme"]).expect("valid definition");
            r.register(Box::new(family.clone()))
                .expect("registered once");
            family
        };
        let certs = CertMetrics {
            fetches: Arc::new(std::sync::Mutex::new(counter(
                r,
                "hookguard_cert_fetches_total",
                "Certificates fetched (paypal, sns) by scheme, trigger (request, refresh) and \
                 outcome (ok, untrusted, unreachable).",
                &["scheme", "trigger", "outcome"],
            ))),
            entries: gauge(
                "hookguard_cert_cache_entries",
                "Fetched certificates cached now, by scheme.",
            ),
            oldest: gauge(
                "hookguard_cert_cache_oldest_age_seconds",
                "Age of the oldest cached certificate since it was fetched, by scheme.",
            ),
        };
        certs.sample();
        certs
    }

    /// Copies the process's fetch counts and cache figures in.
    fn sample(&self) {
        let fetches = self.fetches.lock().unwrap_or_else(|e| e.into_inner());
        for stats in crate::schemes::fetched::stats() {
            for (trigger, outcome, n) in &stats.fetches {
                let counter =
                    fetches.with_label_values(&[stats.scheme, trigger.as_str(), outcome.as_str()]);
                if *n > counter.get() {
                    counter.inc_by(n - counter.get());
                }
            }
            self.entries
                .with_label_values(&[stats.scheme])
                .set(i64::try_from(stats.cached).unwrap_or(i64::MAX));
            self.oldest
                .with_label_values(&[stats.scheme])
                .set(i64::try_from(stats.oldest.as_secs()).unwrap_or(i64::MAX));
        }
    }
}

/// The durable queue's families (see the table in the module doc).
#[derive(Debug, Clone)]
pub struct QueueMetrics {
    items: IntGaugeVec,
    bytes: IntGauge,
    oldest_ready: IntGaugeVec,
    enqueue_duration: Histogram,
    store_errors: IntCounterVec,
    attempts: IntCounterVec,
    dead: IntCounterVec,
    paused: IntGaugeVec,
    recovered: IntGauge,
}

/// Outcomes of `hookguard_delivery_attempts_total`.
pub const ATTEMPT_OUTCOMES: &[&str] = &[
    "delivered",
    "refused",
    "shed",
    "error",
    "timeout",
    "broken",
    "rejected",
];

/// Reasons of `hookguard_queue_dead_total`.
pub const DEAD_REASONS: &[&str] = &["status", "max_age", "max_attempts"];

/// Enqueue buckets: a commit is a disk flush, 0.1 ms quiet to tens of ms
/// on a busy shared disk.
const ENQUEUE_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

impl QueueMetrics {
    fn new(r: &Registry) -> Self {
        let gauge_vec = |name: &str, help: &str, labels: &[&str]| {
            let family = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid definition");
            r.register(Box::new(family.clone()))
                .expect("registered once");
            family
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("valid definition");
            r.register(Box::new(g.clone())).expect("registered once");
            g
        };
        let enqueue_duration = Histogram::with_opts(
            HistogramOpts::new(
                "hookguard_queue_enqueue_duration_seconds",
                "Time to store a durable route's request: from the body's last byte to its flushed journal record or durable commit (fdatasync included).",
            )
            .buckets(ENQUEUE_BUCKETS.to_vec()),
        )
        .expect("valid definition");
        r.register(Box::new(enqueue_duration.clone()))
            .expect("registered once");
        let store_errors = counter(
            r,
            "hookguard_queue_store_errors_total",
            "Requests a durable route could not store, by kind (full: queue.max_bytes; io: the store failed).",
            &["kind"],
        );
        for kind in ["full", "io"] {
            store_errors.with_label_values(&[kind]);
        }
        QueueMetrics {
            items: gauge_vec(
                "hookguard_queue_items",
                "Durable deliveries stored, by route and state.",
                &["route", "state"],
            ),
            bytes: gauge(
                "hookguard_queue_bytes",
                "Bytes the stored durable deliveries take (bounded by queue.max_bytes).",
            ),
            oldest_ready: gauge_vec(
                "hookguard_queue_oldest_ready_age_seconds",
                "Age of the route's oldest delivery due now; 0 when none is due.",
                &["route"],
            ),
            enqueue_duration,
            store_errors,
            attempts: counter(
                r,
                "hookguard_delivery_attempts_total",
                "Attempts to deliver queued items to the app, by route and outcome.",
                &["route", "outcome"],
            ),
            dead: counter(
                r,
                "hookguard_queue_dead_total",
                "Queued items given up on, by route and reason.",
                &["route", "reason"],
            ),
            paused: gauge_vec(
                "hookguard_queue_route_paused",
                "1 while a durable route's deliveries are paused (the app not taking them, or an operator).",
                &["route"],
            ),
            recovered: gauge(
                "hookguard_queue_recovered_items",
                "Items found in flight since start (their attempt cut off: at open, or on the Redis queue a lease that ran out), made ready again.",
            ),
        }
    }

    /// Creates a durable route's series at zero.
    pub fn route(&self, route: &str) {
        for outcome in ATTEMPT_OUTCOMES {
            self.attempts.with_label_values(&[route, outcome]);
        }
        for reason in DEAD_REASONS {
            self.dead.with_label_values(&[route, reason]);
        }
        self.paused.with_label_values(&[route]);
        self.oldest_ready.with_label_values(&[route]);
    }

    /// Records one enqueue's duration.
    pub fn enqueued(&self, took: Duration) {
        self.enqueue_duration.observe(took.as_secs_f64());
    }

    /// Counts an enqueue the store refused.
    pub fn store_error(&self, kind: &str) {
        self.store_errors.with_label_values(&[kind]).inc();
    }

    /// Counts one delivery attempt's outcome (one of [`ATTEMPT_OUTCOMES`]).
    pub fn attempt(&self, route: &str, outcome: &str) {
        self.attempts.with_label_values(&[route, outcome]).inc();
    }

    /// Counts an item given up on (one of [`DEAD_REASONS`]).
    pub fn dead(&self, route: &str, reason: &str) {
        self.dead.with_label_values(&[route, reason]).inc();
    }

    /// Says whether a route is paused.
    pub fn paused(&self, route: &str, paused: bool) {
        self.paused
            .with_label_values(&[route])
            .set(i64::from(paused));
    }

    /// Records the items recovered since start (see the store's `recovered`).
    pub fn recovered(&self, items: u64) {
        self.recovered.set(i64::try_from(items).unwrap_or(i64::MAX));
    }

    /// Samples the store's gauges before a scrape: items by route and
    /// state (every state of every `routes` at zero first, so that emptied
    /// states read 0), bytes, and each route's oldest ready age.
    pub fn sample(
        &self,
        counts: &crate::queue::Counts,
        routes: &[String],
        bytes: u64,
        oldest: &[(String, u64)],
    ) {
        self.items.reset();
        for route in routes {
            for state in crate::queue::ItemState::ALL {
                self.items.with_label_values(&[route, state.as_str()]);
            }
        }
        for ((route, state), n) in counts {
            self.items
                .with_label_values(&[route, state.as_str()])
                .set(i64::try_from(*n).unwrap_or(i64::MAX));
        }
        self.bytes.set(i64::try_from(bytes).unwrap_or(i64::MAX));
        for (route, age) in oldest {
            self.oldest_ready
                .with_label_values(&[route])
                .set(i64::try_from(*age).unwrap_or(i64::MAX));
        }
    }
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let family = IntCounterVec::new(Opts::new(name, help), labels).expect("valid definition");
    registry
        .register(Box::new(family.clone()))
        .expect("registered once");
    family
}

fn histogram(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: &[f64],
) -> HistogramVec {
    let family = HistogramVec::new(
        HistogramOpts::new(name, help).buckets(buckets.to_vec()),
        labels,
    )
    .expect("valid definition");
    registry
        .register(Box::new(family.clone()))
        .expect("registered once");
    family
}

impl Metrics {
    /// Registers the families and initialises the series whose labels are
    /// fixed at zero; a route's series are created with its
    /// [`RouteSeries`], when the config is loaded.
    pub fn new() -> Self {
        let registry = Registry::new();
        let r = &registry;
        let metrics = Metrics {
            requests: counter(
                r,
                "hookguard_requests_total",
                "Requests by route and outcome (forwarded, rejected, duplicate, shadow).",
                &["route", "outcome"],
            ),
            rejections: counter(
                r,
                "hookguard_rejections_total",
                "Requests answered by hookguard itself, by route and X-Hookguard-Reject reason.",
                &["route", "reason"],
            ),
            request_duration: histogram(
                r,
                "hookguard_request_duration_seconds",
                "Time from request head to response head, by route.",
                &["route"],
                LATENCY_BUCKETS,
            ),
            upstream_duration: histogram(
                r,
                "hookguard_upstream_duration_seconds",
                "Time from forwarding to the app's response head, by route.",
                &["route"],
                LATENCY_BUCKETS,
            ),
            upstream_responses: counter(
                r,
                "hookguard_upstream_responses_total",
                "Responses from the app by route and status class.",
                &["route", "code"],
            ),
            secret_matches: counter(
                r,
                "hookguard_secret_matches_total",
                "Verified requests by route and the id of the secret or key that matched.",
                &["route", "key"],
            ),
            skew: histogram(
                r,
                "hookguard_timestamp_skew_seconds",
                "Absolute difference between the sender's timestamp and hookguard's clock; \
                 direction=ahead when the sender's clock is ahead.",
                &["route", "direction"],
                SKEW_BUCKETS,
            ),
            replay_entries: {
                let gauge = IntGauge::new(
                    "hookguard_replay_entries",
                    "Dedupe keys currently remembered by the replay store.",
                )
                .expect("valid definition");
                r.register(Box::new(gauge.clone())).expect("registered once");
                gauge
            },
            replay_evictions: counter(
                r,
                "hookguard_replay_evictions_total",
                "Dedupe keys dropped by the replay store; cause=capacity weakens replay protection.",
                &["cause"],
            ),
            store_errors: counter(
                r,
                "hookguard_replay_store_errors_total",
                "Shared replay store operations that failed or timed out, by operation.",
                &["op"],
            ),
            store_duration: histogram(
                r,
                "hookguard_replay_store_duration_seconds",
                "Time taken by shared replay store operations, by operation.",
                &["op"],
                LATENCY_BUCKETS,
            ),
            store_bypass: counter(
                r,
                "hookguard_replay_store_bypass_total",
                "Requests forwarded without replay protection because the store failed \
                 (on_store_error = allow).",
                &["route"],
            ),
            headers_dropped: counter(
                r,
                "hookguard_headers_dropped_total",
                "Request headers not forwarded to the app: spoofed (a name CGI-style apps \
                 read as one hookguard sets) or underscore (underscores_in_headers = drop).",
                &["route", "cause"],
            ),
            late_answers: counter(
                r,
                "hookguard_late_answers_total",
                "Answers from the app that came after the sender was told 504, by what \
                 became of the claim (completed, released, expired).",
                &["route", "result"],
            ),
            snapshots: counter(
                r,
                "hookguard_replay_snapshots_total",
                "Memory-store snapshots loaded (op=load) and written (op=write), by result: \
                 ok, or why not.",
                &["op", "result"],
            ),
            config_reloads: counter(
                r,
                "hookguard_config_reloads_total",
                "Configuration reload attempts by result.",
                &["result"],
            ),
            connections_closed: counter(
                r,
                "hookguard_connections_closed_total",
                "Connections hookguard closed that no answer closed: timeouts (header, idle, \
                 write), answers the sender did not take, answers the app broke off.",
                &["cause"],
            ),
            captures_dropped: {
                let family = IntCounter::new(
                    "hookguard_captures_dropped_total",
                    "Captures of refused requests dropped to stay within capture_max_files and \
                     capture_max_bytes: the oldest deleted, or one too large not written.",
                )
                .expect("valid definition");
                r.register(Box::new(family.clone()))
                    .expect("registered once");
                family
            },
            log_lines_dropped: {
                let family = IntCounter::new(
                    "hookguard_log_lines_dropped_total",
                    "Log lines dropped because the log destination (stderr's reader) was slower \
                     than the traffic and the queue to the log writer was full; requests never \
                     wait for the log.",
                )
                .expect("valid definition");
                r.register(Box::new(family.clone()))
                    .expect("registered once");
                Arc::new(std::sync::Mutex::new(family))
            },
            certs: CertMetrics::new(r),
            egress_requests: counter(
                r,
                "hookguard_egress_requests_total",
                "App calls through the egress listener by route and outcome (ok, partner_error, \
                 timeout, unavailable, refused).",
                &["route", "outcome"],
            ),
            egress_attempts: counter(
                r,
                "hookguard_egress_attempts_total",
                "Attempts sent to partners by route and how each ended (2xx..5xx, \
                 connect_error, timeout).",
                &["route", "status_class"],
            ),
            egress_duration: histogram(
                r,
                "hookguard_egress_duration_seconds",
                "Whole app call through egress, retries and waits included, by route.",
                &["route"],
                LATENCY_BUCKETS,
            ),
            egress_attempt_duration: histogram(
                r,
                "hookguard_egress_attempt_duration_seconds",
                "One attempt to a partner, from sending to its response head, by route.",
                &["route"],
                LATENCY_BUCKETS,
            ),
            egress_retry_after: histogram(
                r,
                "hookguard_egress_retry_after_seconds",
                "Waits a partner asked for with Retry-After and hookguard honoured, by route.",
                &["route"],
                LATENCY_BUCKETS,
            ),
            queue: QueueMetrics::new(r),
            registry,
        };
        let build_info = IntGaugeVec::new(
            Opts::new("hookguard_build_info", "Build information; always 1."),
            &["version"],
        )
        .expect("valid definition");
        metrics
            .registry
            .register(Box::new(build_info.clone()))
            .expect("registered once");
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        for cause in EVICTION_CAUSES {
            metrics.replay_evictions.with_label_values(&[cause]);
        }
        for op in STORE_OPS {
            metrics.store_errors.with_label_values(&[op]);
            metrics.store_duration.with_label_values(&[op]);
        }
        for op in ["load", "write"] {
            for result in SNAPSHOT_RESULTS {
                metrics.snapshots.with_label_values(&[op, result]);
            }
        }
        for result in RELOAD_RESULTS {
            metrics.config_reloads.with_label_values(&[result]);
        }
        for cause in CloseCause::ALL {
            metrics
                .connections_closed
                .with_label_values(&[cause.as_str()]);
        }
        metrics
    }

    /// The durable queue's families.
    pub fn queue(&self) -> &QueueMetrics {
        &self.queue
    }

    /// Counts a snapshot loaded or written (`op`), by result.
    pub fn snapshot(&self, op: &str, result: &str) {
        self.snapshots.with_label_values(&[op, result]).inc();
    }

    /// The series of one route, resolved now so that counting a request
    /// does not look labels up (six lookups per request otherwise). Creates
    /// them at zero if new.
    pub fn route(&self, route: &str, key_ids: &[String]) -> RouteSeries {
        let matched = route != UNMATCHED_ROUTE;
        RouteSeries {
            requests: Outcome::ALL
                .iter()
                .map(|o| self.requests.with_label_values(&[route, o.as_str()]))
                .collect(),
            rejections: Reason::ALL
                .iter()
                .map(|r| self.rejections.with_label_values(&[route, r.as_str()]))
                .collect(),
            request_duration: self.request_duration.with_label_values(&[route]),
            upstream_duration: self.upstream_duration.with_label_values(&[route]),
            upstream_responses: STATUS_CLASSES
                .iter()
                .map(|class| self.upstream_responses.with_label_values(&[route, class]))
                .collect(),
            secret_matches: key_ids
                .iter()
                .map(|key| self.secret_matches.with_label_values(&[route, key]))
                .collect(),
            // The unmatched route verifies nothing and claims nothing.
            skew: matched.then(|| {
                ["ahead", "behind"]
                    .map(|direction| self.skew.with_label_values(&[route, direction]))
            }),
            store_bypass: matched.then(|| self.store_bypass.with_label_values(&[route])),
            headers_dropped: HEADER_DROP_CAUSES
                .iter()
                .map(|cause| self.headers_dropped.with_label_values(&[route, cause]))
                .collect(),
            told_of_drops: Arc::new(AtomicBool::new(false)),
            late_answers: LATE_RESULTS
                .iter()
                .map(|result| self.late_answers.with_label_values(&[route, result]))
                .collect(),
        }
    }

    /// Counts a replay key dropped by the store.
    pub fn eviction(&self, cause: &str) {
        self.replay_evictions.with_label_values(&[cause]).inc();
    }

    /// Records one shared-store operation.
    pub fn store_op(&self, op: &str, took: Duration, ok: bool) {
        self.store_duration
            .with_label_values(&[op])
            .observe(took.as_secs_f64());
        if !ok {
            self.store_errors.with_label_values(&[op]).inc();
        }
    }

    /// Counts a reload attempt.
    pub fn reload(&self, success: bool) {
        self.config_reloads
            .with_label_values(&[if success { "success" } else { "error" }])
            .inc();
    }

    /// An egress route's series, created at zero (`_unmatched` for calls
    /// no route serves).
    pub fn egress_route(&self, route: &str) -> EgressSeries {
        EgressSeries {
            requests: EGRESS_OUTCOMES
                .iter()
                .map(|o| self.egress_requests.with_label_values(&[route, o]))
                .collect(),
            attempts: ATTEMPT_CLASSES
                .iter()
                .map(|c| self.egress_attempts.with_label_values(&[route, c]))
                .collect(),
            duration: self.egress_duration.with_label_values(&[route]),
            attempt_duration: self.egress_attempt_duration.with_label_values(&[route]),
            retry_after: self.egress_retry_after.with_label_values(&[route]),
        }
    }

    /// Counts captures of refused requests dropped by the bounds.
    pub fn captures_dropped(&self, count: u64) {
        self.captures_dropped.inc_by(count);
    }

    /// Counts a connection the wire closed for `cause`.
    pub fn connection_closed(&self, cause: CloseCause) {
        self.connections_closed
            .with_label_values(&[cause.as_str()])
            .inc();
    }

    /// The Prometheus text exposition of every family; `replay_entries` is
    /// sampled now.
    pub fn render(&self, replay_entries: u64) -> Vec<u8> {
        self.replay_entries
            .set(i64::try_from(replay_entries).unwrap_or(i64::MAX));
        {
            let counter = self
                .log_lines_dropped
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let dropped = crate::logging::dropped_lines();
            if dropped > counter.get() {
                counter.inc_by(dropped - counter.get());
            }
        }
        self.certs.sample();
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("encoding into a Vec cannot fail");
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// One route's series (see [`Metrics::route`]); kept with the live config.
#[derive(Debug, Clone)]
pub struct RouteSeries {
    /// By [`Outcome`], in `Outcome::ALL` order.
    requests: Vec<IntCounter>,
    /// By [`Reason`], in `Reason::ALL` order.
    rejections: Vec<IntCounter>,
    request_duration: Histogram,
    upstream_duration: Histogram,
    /// By class, in `STATUS_CLASSES` order.
    upstream_responses: Vec<IntCounter>,
    /// By key index.
    secret_matches: Vec<IntCounter>,
    /// Ahead, behind; `None` for the unmatched route.
    skew: Option<[Histogram; 2]>,
    store_bypass: Option<IntCounter>,
    /// By [`HeaderDrop`], in `HEADER_DROP_CAUSES` order.
    headers_dropped: Vec<IntCounter>,
    /// Whether dropped headers were logged for this route yet: once per
    /// route (and config) is enough to tell an operator why, and a sender
    /// cannot flood the log.
    told_of_drops: Arc<AtomicBool>,
    /// By [`LateAnswer`], in `LATE_RESULTS` order.
    late_answers: Vec<IntCounter>,
}

impl RouteSeries {
    /// Counts one request under its outcome (and reason, if any).
    pub fn request(&self, outcome: Outcome, reason: Option<Reason>, took: Duration) {
        self.requests[outcome as usize].inc();
        if let Some(reason) = reason {
            self.rejections[reason as usize].inc();
        }
        self.request_duration.observe(took.as_secs_f64());
    }

    /// Counts one answer from the app.
    pub fn upstream(&self, status: u16, took: Duration) {
        let class = match status {
            200..=299 => 0,
            300..=399 => 1,
            400..=499 => 2,
            // 1xx never reaches here (interim answers are skipped).
            _ => 3,
        };
        self.upstream_responses[class].inc();
        self.upstream_duration.observe(took.as_secs_f64());
    }

    /// Records which key verified a request, and the sender's clock skew.
    pub fn verified(&self, key: usize, skew_seconds: Option<i64>) {
        if let Some(counter) = self.secret_matches.get(key) {
            counter.inc();
        }
        if let (Some(skew), Some(histograms)) = (skew_seconds, &self.skew) {
            let direction = usize::from(skew <= 0);
            histograms[direction].observe(skew.unsigned_abs() as f64);
        }
    }

    /// Counts `count` request headers dropped for `cause`; says whether
    /// this is the route's first drop (to be logged).
    pub fn headers_dropped(&self, cause: HeaderDrop, count: u32) -> bool {
        self.headers_dropped[cause as usize].inc_by(u64::from(count));
        !self.told_of_drops.swap(true, Ordering::Relaxed)
    }

    /// Counts an answer that came after the sender was told 504.
    pub fn late_answer(&self, result: LateAnswer) {
        self.late_answers[result as usize].inc();
    }

    /// Counts a request forwarded without a claim because the store failed.
    pub fn store_bypass(&self) {
        if let Some(counter) = &self.store_bypass {
            counter.inc();
        }
    }
}

/// One egress route's series (see [`Metrics::egress_route`]).
#[derive(Debug, Clone)]
pub struct EgressSeries {
    /// By [`EgressOutcome`], in `EGRESS_OUTCOMES` order.
    requests: Vec<IntCounter>,
    /// By [`Attempt`] class, in `ATTEMPT_CLASSES` order.
    attempts: Vec<IntCounter>,
    duration: Histogram,
    attempt_duration: Histogram,
    retry_after: Histogram,
}

impl EgressSeries {
    /// Counts one app call under its outcome.
    pub fn request(&self, outcome: EgressOutcome, took: Duration) {
        self.requests[outcome as usize].inc();
        self.duration.observe(took.as_secs_f64());
    }

    /// Counts one attempt and how long it took.
    pub fn attempt(&self, attempt: Attempt, took: Duration) {
        self.attempts[attempt.class()].inc();
        self.attempt_duration.observe(took.as_secs_f64());
    }

    /// Records a wait a partner's `Retry-After` asked for.
    pub fn retry_after(&self, wait: Duration) {
        self.retry_after.observe(wait.as_secs_f64());
    }
}
