//! hookguard: a webhook-verification sidecar.
//!
//! It sits in front of an app that receives webhooks, verifies each
//! request's signature and timestamp, drops replays, and forwards only
//! authentic first-time deliveries, marked with a header the app can trust.
//!
//! # Layout
//!
//! Modules by layer, top first; a module uses only modules below it
//! (`tests/all/layers.rs` checks this on every test run, reading the
//! `crate::` paths in each module's code):
//!
//! ```text
//! cli
//!  └ server, reload
//!     └ admin, demo
//!        └ proxy, egress                  (proxy implements http1::Handler)
//!           └ limits, replay, queue, metrics, routes
//!              └ config                   (read, never read back)
//!                 └ schemes, http1        (http1 uses nothing of the crate)
//!                    └ dedupe, reject, logging (leaves)
//! ```
//!
//! - [`cli`]: the command line (`serve`, `check`, `sign`, `verify`,
//!   `replay`, `demo`); `main.rs` calls it.
//! - [`server`]: the accept loop, the worker threads and graceful shutdown.
//! - [`reload`]: re-reading the config and the files it read without a
//!   restart.
//! - [`admin`]: `/healthz`, `/readyz`, `/metrics`, `POST /replay/forget`.
//! - [`demo`]: the embedded example and demo upstream.
//! - [`proxy`]: the request pipeline (match, admit, read, verify, claim,
//!   forward, settle, answer), and the one place a rejection becomes a
//!   response, a log line and a metric.
//! - [`egress`]: the second listener, where the app's own calls to its
//!   partners are signed, credentialed and retried (hyper on both sides).
//! - [`limits`]: admission, judged on the request head alone (method,
//!   client address, rate, content type, header names). The body's limits
//!   are applied where it is read ([`http1::Body::read_to_end`]).
//! - [`replay`]: dedupe keys and the stores that remember them (memory,
//!   with its snapshots; redis), with the app's answers when kept.
//! - [`queue`]: durable delivery's store (the deliveries durable routes
//!   accepted, with their dedupe keys): a trait, the embedded redb backend
//!   and the Redis backend shared by replicas.
//! - [`metrics`]: the Prometheus families.
//! - [`routes`]: which route serves a path.
//! - [`config`]: the TOML file, validated once into types that cannot be
//!   invalid; every error names its key.
//! - [`schemes`]: how senders sign requests: one registry of schemes, a
//!   trait, and one module per family (generic HMAC first).
//! - [`http1`]: the wire: request heads and bodies, strict framing, the
//!   exchange with the app on pooled connections, and the relay of its
//!   answer; served through a `Handler`, it knows nothing of routes.
//! - [`dedupe`]: where a delivery's dedupe keys come from (a leaf, shared
//!   by config, schemes and replay).
//! - [`reject`]: the reasons hookguard answers itself, and their statuses.
//! - [`logging`]: log lines off the serving threads, through a bounded
//!   queue to one writer thread; dropped lines are counted.

pub mod admin;
pub mod cli;
pub mod config;
pub mod dedupe;
pub mod demo;
pub mod egress;
pub mod http1;
pub mod limits;
pub mod logging;
pub mod metrics;
pub mod proxy;
pub mod queue;
pub mod reject;
pub mod reload;
pub mod replay;
pub mod routes;
pub mod schemes;
pub mod server;
