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
//! | `hookguard_config_reloads_total` | result | reload attempts |
//! | `hookguard_build_info` | version | always 1 |

use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::config::{Config, UNMATCHED_ROUTE};
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
    config_reloads: IntCounterVec,
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
    /// Registers the families and initialises the known series at zero.
    pub fn new(config: &Config) -> Self {
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
            config_reloads: counter(
                r,
                "hookguard_config_reloads_total",
                "Configuration reload attempts by result.",
                &["result"],
            ),
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
        for result in RELOAD_RESULTS {
            metrics.config_reloads.with_label_values(&[result]);
        }
        metrics.add_routes(config);
        metrics
    }

    /// Creates every series of the config's routes at zero (also called after
    /// a reload adds routes; existing series keep their values).
    pub fn add_routes(&self, config: &Config) {
        let routes = config
            .routes
            .iter()
            .map(|r| (r.name.as_str(), r.scheme.key_ids()))
            .chain([(UNMATCHED_ROUTE, &[][..])]);
        for (route, keys) in routes {
            for outcome in Outcome::ALL {
                self.requests.with_label_values(&[route, outcome.as_str()]);
            }
            for reason in Reason::ALL {
                self.rejections.with_label_values(&[route, reason.as_str()]);
            }
            for class in STATUS_CLASSES {
                self.upstream_responses.with_label_values(&[route, class]);
            }
            self.request_duration.with_label_values(&[route]);
            self.upstream_duration.with_label_values(&[route]);
            for key in keys {
                self.secret_matches.with_label_values(&[route, key]);
            }
            if route != UNMATCHED_ROUTE {
                self.store_bypass.with_label_values(&[route]);
                for direction in ["ahead", "behind"] {
                    self.skew.with_label_values(&[route, direction]);
                }
            }
        }
    }

    /// Counts one finished request.
    pub fn request(&self, route: &str, outcome: Outcome, reason: Option<Reason>, took: Duration) {
        self.requests
            .with_label_values(&[route, outcome.as_str()])
            .inc();
        if let Some(reason) = reason {
            self.rejections
                .with_label_values(&[route, reason.as_str()])
                .inc();
        }
        self.request_duration
            .with_label_values(&[route])
            .observe(took.as_secs_f64());
    }

    /// Counts one answer from the app.
    pub fn upstream(&self, route: &str, status: u16, took: Duration) {
        let class = match status {
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            // 1xx never reaches here (hyper handles informational answers).
            _ => "5xx",
        };
        self.upstream_responses
            .with_label_values(&[route, class])
            .inc();
        self.upstream_duration
            .with_label_values(&[route])
            .observe(took.as_secs_f64());
    }

    /// Records which key verified a request, and the sender's clock skew.
    pub fn verified(&self, route: &str, key: &str, skew_seconds: Option<i64>) {
        self.secret_matches.with_label_values(&[route, key]).inc();
        if let Some(skew) = skew_seconds {
            let direction = if skew > 0 { "ahead" } else { "behind" };
            self.skew
                .with_label_values(&[route, direction])
                .observe(skew.unsigned_abs() as f64);
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

    /// Counts a request forwarded without a claim because the store failed.
    pub fn store_bypass(&self, route: &str) {
        self.store_bypass.with_label_values(&[route]).inc();
    }

    /// Counts a reload attempt.
    pub fn reload(&self, success: bool) {
        self.config_reloads
            .with_label_values(&[if success { "success" } else { "error" }])
            .inc();
    }

    /// The Prometheus text exposition of every family; `replay_entries` is
    /// sampled now.
    pub fn render(&self, replay_entries: u64) -> Vec<u8> {
        self.replay_entries
            .set(i64::try_from(replay_entries).unwrap_or(i64::MAX));
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("encoding into a Vec cannot fail");
        out
    }
}
