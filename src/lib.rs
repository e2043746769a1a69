//! hookguard: a webhook-verification sidecar.
//!
//! It sits in front of an app that receives webhooks, verifies each
//! request's signature and timestamp, drops replays, and forwards only
//! authentic first-time deliveries, marked with a header the app can trust.
//!
//! # Layout
//!
//! - [`cli`]: the command line (`serve`, `check`, `sign`, `verify`, `replay`,
//!   `demo`); `main.rs` calls it.
//! - [`config`]: the TOML file, validated once into types that cannot be
//!   invalid; every error names its key.
//! - [`routes`]: which route serves a path.
//! - [`schemes`]: how senders sign requests; a trait and one module per
//!   family (generic HMAC first).
//! - [`limits`]: admission (method, client address, rate, content
//!   type) and body size and time limits, applied before work.
//! - [`replay`]: dedupe keys and the stores that remember them (memory,
//!   with its snapshots; redis), with the app's answers when kept.
//! - [`proxy`]: the request pipeline, forwarding, and the one place a
//!   rejection becomes a response, a log line and a metric.
//! - [`reject`]: the reasons hookguard answers itself, and their statuses.
//! - [`reload`]: re-reading the config and secrets without a restart.
//! - [`admin`]: `/healthz`, `/readyz`, `/metrics`, `POST /replay/forget`.
//! - [`metrics`]: the Prometheus families.
//! - [`server`]: the accept loop and graceful shutdown.
//! - [`http1`]: the wire: request heads and bodies, strict framing, and
//!   the exchange with the app on pooled connections.
//! - [`demo`]: the embedded example and demo upstream.

pub mod admin;
pub mod cli;
pub mod config;
pub mod demo;
pub mod http1;
pub mod limits;
pub mod metrics;
pub mod proxy;
pub mod reject;
pub mod reload;
pub mod replay;
pub mod routes;
pub mod schemes;
pub mod server;
