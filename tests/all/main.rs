//! hookguard's integration tests, one module per concern, built as one test
//! binary: linking one binary instead of sixteen is most of a rebuild's
//! time. Each module starts real servers on `127.0.0.1:0`; the shared
//! launchers and signers are in [`support`].
//!
//! Run one concern with `cargo test --test all http1::` (a module path
//! filter), the ignored soak run with `cargo test --test all soak -- --ignored`.

mod support;

mod capture;
mod challenges;
mod cli;
mod config_errors;
mod differential;
mod docs;
mod durable;
mod durable_redis;
mod durable_store;
mod egress;
mod http1;
mod layers;
mod logging;
mod paypal;
mod pipeline;
mod preset_proofs;
mod presets;
mod presets_asymmetric;
mod properties;
mod redis;
mod redis_config;
mod reliability;
mod replay;
mod seed_schemes;
mod shutdown;
mod sns;
mod soak;
mod spoofing;
mod tools;
