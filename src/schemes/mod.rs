//! Signature schemes: how a sender signs a request, and how hookguard checks it.
//!
//! A [`Scheme`] is built once from a validated route (its keys prepared
//! then, not per request) and asked to [`Scheme::verify`] each buffered
//! request. Verification covers the signature and extracting the timestamp;
//! the freshness window itself is checked by the pipeline, so that every
//! scheme applies the route's `tolerance` the same way.
//!
//! - [`registry`]: every accepted `scheme` value, what each needs from the
//!   route, and how each is built; the one list of scheme names.
//! - [`hmac`]: the HMAC family: the generic description (`scheme = "hmac"`)
//!   and the machinery every HMAC preset runs on.
//! - [`presets`]: provider presets that are filled-in HMAC descriptions
//!   (Stripe, GitHub, Slack, Standard Webhooks, ...; [`registry`] lists
//!   them all).
//! - [`twilio`], [`plivo`], [`contentful`], [`hygraph`], [`gitlab`],
//!   [`tbank`]: presets whose rules differ (signed URL and form parameters,
//!   a canonical request, the body wrapped in JSON, a plain token, a hash
//!   inside the JSON body).
//! - [`asymmetric`]: public-key presets (Discord Ed25519, SendGrid ECDSA).
//! - [`jwt`]: Tochka's RS256 JWS bodies.
//! - [`paypal`]: PayPal's RSA signature with the key of a certificate
//!   fetched (pinned to PayPal's hosts, cached) off the request path.
//! - [`sns`]: Amazon SNS's RSA signature over the message's fields, with
//!   the key of a certificate fetched from SNS's regional hosts.
//! - [`fetched`]: the pin, fetch, cache and background refresh of those
//!   certificates, shared by the two.
//! - [`none`]: no signature; the route accepts by `allow_ips` alone.
//! - [`meta`]: Meta's GitHub-style signature plus its GET subscription
//!   handshake, authenticated by the verify token.
//! - [`template`]: the signed-message template (`"{timestamp}.{body}"`).
//! - [`encoding`]: decoding signatures from hex or base64.
//! - [`challenge`]: the endpoint challenges hookguard answers itself.
//! - [`keys`]: shared secrets as prepared MAC states, for the schemes of
//!   their own module.

pub mod asymmetric;
pub mod challenge;
pub mod contentful;
pub mod encoding;
pub mod fetched;
pub mod gitlab;
pub mod hmac;
pub mod hygraph;
pub mod jwt;
pub mod keys;
pub mod meta;
pub mod none;
pub mod paypal;
pub mod plivo;
pub mod presets;
pub mod registry;
pub mod sns;
pub mod tbank;
pub mod template;
pub mod twilio;

use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, Uri};

use crate::dedupe::DedupeSource;
use crate::reject::{Reason, Reject};

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

impl<'a> RequestView<'a> {
    /// The value of a header the scheme cannot verify without: absent, it
    /// is refused for `missing`, naming the header. Every scheme answers a
    /// missing header in these words.
    pub fn required(&self, name: &HeaderName, missing: Reason) -> Result<&'a HeaderValue, Reject> {
        self.headers
            .get(name)
            .ok_or_else(|| Reject::with(missing, format!("header {name} is missing")))
    }
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

/// A request to be signed as its sender would sign it (`hookguard sign`,
/// tests). The scheme adds its headers, and may rewrite the body for
/// schemes that carry the signature inside it.
#[derive(Debug, Clone)]
pub struct Unsigned {
    /// The request method.
    pub method: Method,
    /// The request target (path and query).
    pub uri: Uri,
    /// Headers so far; the scheme adds its own.
    pub headers: HeaderMap,
    /// The body to sign.
    pub body: Bytes,
    /// The signing time, Unix seconds.
    pub now: i64,
    /// A fresh delivery id, for schemes that send one.
    pub id: String,
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

    /// One or two sentences saying what is read and how (headers, encoding,
    /// signed message); for `check` and `verify` output. No key material.
    fn describe(&self) -> String;

    /// The header carrying the sender's delivery id, if the scheme has one;
    /// logged with each request.
    fn delivery_header(&self) -> Option<&http::HeaderName> {
        None
    }

    /// Headers the signature covers besides the scheme's own (a
    /// `{header:Name}` in the signed message): `hookguard sign` fills them
    /// with a fresh value before signing.
    fn signed_headers(&self) -> Vec<http::HeaderName> {
        Vec::new()
    }

    /// The route's dedupe keys when it sets no `dedupe` of its own.
    fn default_dedupe(&self) -> Vec<DedupeSource> {
        vec![DedupeSource::Signature]
    }

    /// Whether a verified request was authenticated by a key. Only
    /// `scheme = "none"` says no: its routes rest on `allow_ips`.
    fn authenticates(&self) -> bool {
        true
    }

    /// The unit the scheme reads its timestamp in, when it reads one and
    /// the unit can be mistaken (the HMAC family's `timestamp_unit`); a
    /// refused timestamp a thousand times off is then explained by it.
    fn timestamp_unit(&self) -> Option<hmac::TimestampUnit> {
        None
    }

    /// Whether a request carries the shared secret itself rather than a
    /// signature made with it (GitLab's token; Meta's verify token in the
    /// handshake): such a request must never be written to a capture.
    fn sends_secret(&self) -> bool {
        false
    }

    /// When `request` is an endpoint challenge this scheme answers itself,
    /// the answer (or why the challenge is refused). Asked before
    /// verification with `verified` `None` (unsigned challenges), and after
    /// a successful one with the result (signed challenges, which are never
    /// answered unless validly signed). `None`: not a challenge, go on.
    fn challenge(
        &self,
        request: &RequestView<'_>,
        verified: Option<&Verified>,
    ) -> Option<Result<challenge::Reply, Reject>> {
        let _ = (request, verified);
        None
    }

    /// The challenge this scheme answers, if any (for `check` and config).
    fn challenge_kind(&self) -> Option<challenge::Kind> {
        None
    }

    /// The route's timestamp window when it sets no `tolerance` of its own.
    fn default_tolerance(&self) -> Duration {
        Duration::from_secs(300)
    }

    /// The exact bytes that were signed, for explaining a verification
    /// (their length and SHA-256 are printed, never the MAC). `None` when the
    /// scheme has no single message (token comparison).
    fn signed_message(&self, request: &RequestView<'_>) -> Option<Result<Vec<u8>, Reject>> {
        let _ = request;
        None
    }

    /// Signs `request` with key `key` as the sender would. Schemes that
    /// verify with a public key cannot sign and say so.
    fn sign(&self, key: usize, request: &mut Unsigned) -> Result<(), String> {
        let _ = (key, request);
        Err(format!(
            "scheme {} verifies with public keys and cannot sign requests",
            self.name()
        ))
    }

    /// Signs `request` with every key at once, as a sender in the middle of
    /// a rotation does, so that a receiver holding either secret accepts it
    /// (the egress signer). Schemes with room for one signature sign with
    /// the first key.
    fn sign_with_every_key(&self, request: &mut Unsigned) -> Result<(), String> {
        self.sign(0, request)
    }
}
