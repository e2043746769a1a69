//! Prometheus metrics, served on the admin listener's `/metrics`.
//!
//! Label values come only from configuration (route names, the closed sets
//! of outcomes and reasons), never from request data, so the series count is
//! bounded. Every known series is created at zero on startup so dashboards
//! and alerts see zeros rather than missing series.

use prometheus::{Encoder, IntCounterVec, Opts, Registry, TextEncoder};

use crate::config::{Config, UNMATCHED_ROUTE};
use crate::reject::{Outcome, Reason};

/// The metric families hookguard exports.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// `hookguard_requests_total{route,outcome}`.
    requests: IntCounterVec,
    /// `hookguard_rejections_total{route,reason}`.
    rejections: IntCounterVec,
}

impl Metrics {
    /// Registers the families and initialises the known series at zero.
    pub fn new(config: &Config) -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "hookguard_requests_total",
                "Requests by route and outcome (forwarded, rejected, duplicate).",
            ),
            &["route", "outcome"],
        )
        .expect("static metric definition is valid");
        let rejections = IntCounterVec::new(
            Opts::new(
                "hookguard_rejections_total",
                "Requests answered by hookguard itself, by route and X-Hookguard-Reject reason.",
            ),
            &["route", "reason"],
        )
        .expect("static metric definition is valid");
        registry
            .register(Box::new(requests.clone()))
            .expect("registered once");
        registry
            .register(Box::new(rejections.clone()))
            .expect("registered once");
        let metrics = Metrics {
            registry,
            requests,
            rejections,
        };
        let routes = config
            .routes
            .iter()
            .map(|r| r.name.as_str())
            .chain([UNMATCHED_ROUTE]);
        for route in routes {
            for outcome in Outcome::ALL {
                metrics
                    .requests
                    .with_label_values(&[route, outcome.as_str()]);
            }
            for reason in Reason::ALL {
                metrics
                    .rejections
                    .with_label_values(&[route, reason.as_str()]);
            }
        }
        metrics
    }

    /// Counts one finished request.
    pub fn request(&self, route: &str, outcome: Outcome, reason: Option<Reason>) {
        self.requests
            .with_label_values(&[route, outcome.as_str()])
            .inc();
        if let Some(reason) = reason {
            self.rejections
                .with_label_values(&[route, reason.as_str()])
                .inc();
        }
    }

    /// The Prometheus text exposition of every family.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("encoding into a Vec cannot fail");
        out
    }
}
