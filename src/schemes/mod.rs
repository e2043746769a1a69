//! Signature schemes: how a sender signs a request, and how hookguard checks it.
//!
//! A [`Scheme`] is built once from a validated route (its keys prepared
//! then, not per request) and asked to [`Scheme::verify`] each buffered
//! request. Verification covers the signature and extracting the timestamp;
//! the freshness window itself is checked by the pipeline, so that every
//! scheme applies the route's `tolerance` the same way.
//!
//! - [`hmac`]: the generic HMAC description (`scheme = "hmac"`); provider
//!   presets will be filled-in instances of it.
//! - [`template`]: the signed-message template (`"{timestamp}.{body}"`).
//! - [`encoding`]: decoding signatures from hex or base64.

pub mod encoding;
pub mod hmac;
pub mod template;

use bytes::Bytes;
use http::{HeaderMap, Method, Uri};

use crate::reject::Reject;

/// The parts of a buffered request a scheme may look at.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    /// The request method.
    pub method: &'a Method,
    /// The request target as received.
    pub uri: &'a Uri,
    /// The request headers as received.
    pub headers: &'a HeaderMap,
    /// The exact body bytes received.
    pub body: &'a Bytes,
}

/// What a successful verification established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Index of the secret (or key) that matched, into [`Scheme::key_ids`].
    pub key: usize,
    /// The decoded signature that matched; authenticated, so usable as a
    /// dedupe key.
    pub signature: Vec<u8>,
    /// The sender's timestamp in Unix seconds, when the scheme carries one.
    pub timestamp: Option<i64>,
}

/// A way of verifying requests, prepared for one route.
pub trait Scheme: Send + Sync + std::fmt::Debug {
    /// The scheme's name as written in the config (`"hmac"`).
    fn name(&self) -> &'static str;

    /// The ids of the secrets or keys, in configuration order.
    fn key_ids(&self) -> &[String];

    /// Checks the request's signature. Must compare in constant time, and
    /// must not put the expected signature into the returned rejection.
    fn verify(&self, request: &RequestView<'_>) -> Result<Verified, Reject>;
}
