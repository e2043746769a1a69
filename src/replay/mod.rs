//! Replay protection: dedupe keys, and the store that remembers them.
//!
//! Each entry of a route's `dedupe` list yields one key per request, derived
//! from the route name, the entry and the value, and hashed, so the store
//! never holds request data. A request's keys are claimed together or not at
//! all; the claim is completed when the upstream took the delivery (status
//! below 500) and released when it did not, so that the sender's retry goes
//! through. That is what makes "nothing lost, nothing twice" hold.
//!
//! - [`memory`]: the in-process store (the default): a compact sharded map.
//! - [`redis`]: one Redis shared by every replica of the app.

pub mod memory;
pub mod redis;

use std::time::Duration;

use async_trait::async_trait;
use sha2::{Digest, Sha256};

use crate::config::Route;
use crate::dedupe::DedupeSource;
use crate::schemes::{RequestView, Verified};

/// A hashed dedupe key. 128 bits keep accidental collisions out of reach
/// while keeping each store entry small.
pub type Key = [u8; 16];

/// What a claim attempt found.
#[derive(Debug)]
pub enum ClaimResult {
    /// All keys were free and are now held by this request.
    Claimed(Claim),
    /// One of the keys belongs to a delivery that completed.
    Duplicate,
    /// One of the keys belongs to a delivery being forwarded right now.
    InFlight,
}

/// Keys held by one request until it completes or releases them.
#[derive(Debug, Clone)]
pub struct Claim {
    /// The claimed keys, sorted (claims take keys in one global order, so
    /// two requests sharing keys cannot both fail each other).
    pub keys: Vec<Key>,
    /// Identifies this claim, so that only its holder can release it.
    pub token: u64,
    /// How long completed keys are remembered.
    pub ttl: Duration,
}

/// The replay store could not answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

/// A place to claim, complete and release dedupe keys.
#[async_trait]
pub trait ReplayStore: Send + Sync + std::fmt::Debug {
    /// Claims every key or none.
    async fn claim(&self, keys: Vec<Key>, ttl: Duration) -> Result<ClaimResult, StoreError>;
    /// Marks a claim's keys as delivered, remembered for the claim's ttl.
    async fn complete(&self, claim: &Claim) -> Result<(), StoreError>;
    /// Frees a claim's keys (only where they are still held by this claim).
    async fn release(&self, claim: &Claim) -> Result<(), StoreError>;
    /// How many keys the store holds now, as far as this process knows.
    fn entries(&self) -> u64;
    /// Whether the store answers now. A store in this process always does;
    /// a remote one says what its last health check found.
    fn healthy(&self) -> bool {
        true
    }
}

/// Derives a request's dedupe keys. Sources absent from the request (a
/// header not sent, a body that is not JSON or lacks the pointer) yield no
/// key; `signature` always yields one, and it is authenticated.
pub fn keys_for(route: &Route, verified: &Verified, request: &RequestView<'_>) -> Vec<Key> {
    let mut json: Option<Option<serde_json::Value>> = None;
    let mut keys = Vec::with_capacity(route.dedupe.len());
    for (index, source) in route.dedupe.iter().enumerate() {
        let key = match source {
            DedupeSource::Signature => Some(derive(&route.name, index, &verified.signature)),
            DedupeSource::Header(name) => request
                .headers
                .get(name)
                .map(|v| derive(&route.name, index, v.as_bytes())),
            DedupeSource::Json(pointer) => json
                .get_or_insert_with(|| serde_json::from_slice(request.body).ok())
                .as_ref()
                .and_then(|doc| doc.pointer(pointer))
                .map(|value| match value {
                    serde_json::Value::String(s) => derive(&route.name, index, s.as_bytes()),
                    other => derive(&route.name, index, other.to_string().as_bytes()),
                }),
            // One key from all the values, or none when any is absent. Each
            // value is length-prefixed so that no two tuples concatenate
            // alike.
            DedupeSource::JsonAll(pointers) => json
                .get_or_insert_with(|| serde_json::from_slice(request.body).ok())
                .as_ref()
                .and_then(|doc| {
                    let mut joined = Vec::new();
                    for pointer in pointers {
                        let value = doc.pointer(pointer)?;
                        let text = match value {
                            serde_json::Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        joined.extend_from_slice(&(text.len() as u64).to_be_bytes());
                        joined.extend_from_slice(text.as_bytes());
                    }
                    Some(derive(&route.name, index, &joined))
                }),
        };
        keys.extend(key);
    }
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// Hashes route, dedupe entry position and value into a key. Lengths are
/// included so that no two different inputs concatenate alike.
fn derive(route: &str, source_index: usize, value: &[u8]) -> Key {
    let mut hasher = Sha256::new();
    hasher.update((route.len() as u64).to_be_bytes());
    hasher.update(route.as_bytes());
    hasher.update((source_index as u64).to_be_bytes());
    hasher.update(value);
    let digest = hasher.finalize();
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest[..16]);
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_differ_by_route_and_source() {
        let a = derive("a", 0, b"x");
        assert_eq!(a, derive("a", 0, b"x"));
        assert_ne!(a, derive("b", 0, b"x"));
        assert_ne!(a, derive("a", 1, b"x"));
        assert_ne!(a, derive("a", 0, b"y"));
        // Length prefixes keep "ab"+"c" apart from "a"+"bc".
        assert_ne!(derive("ab", 0, b"c"), derive("a", 0, b"bc"));
    }
}
