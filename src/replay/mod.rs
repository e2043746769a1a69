//! Replay protection: dedupe keys, and the store that remembers them.
//!
//! Each entry of a route's `dedupe` list yields one key per request, derived
//! from the route name, the entry and the value, and hashed, so the store
//! never holds request data. A request's keys are claimed together or not at
//! all; the claim is completed when the upstream took the delivery (status
//! below 500) and released when it did not, so that the sender's retry goes
//! through. That is what makes "nothing lost, nothing twice" hold.
//!
//! A completed claim may carry the app's answer ([`StoredAnswer`]), so that
//! a later copy can be answered as the first was; stores keep it beside the
//! keys, for as long as the keys, in the one encoding [`StoredAnswer::encode`]
//! defines (Redis values and memory snapshots alike).
//!
//! - [`memory`]: the in-process store (the default): a compact sharded map.
//! - [`redis`]: one Redis shared by every replica of the app.

pub mod memory;
pub mod redis;

use std::borrow::Cow;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderValue, StatusCode};
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
    /// One of the keys belongs to a delivery that completed; with the app's
    /// answer to it when the completion kept one (and the store still has
    /// it).
    Duplicate(Option<StoredAnswer>),
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

/// The app's answer to a delivery, remembered with its keys so that later
/// copies can be answered with it: the status, the `Content-Type`, and the
/// body (its size is the caller's to bound, `replay.max_answer_bytes`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAnswer {
    status: StatusCode,
    content_type: Option<HeaderValue>,
    body: Bytes,
}

/// The first byte of every encoded [`StoredAnswer`]. A reader that finds
/// another refuses the answer (and falls back to the status answer) rather
/// than misreading one written by a newer hookguard.
const ANSWER_VERSION: u8 = 1;

/// The longest `Content-Type` kept. Real ones are a few dozen bytes; the
/// bound keeps the encoding's length field small and the entry bounded.
pub const MAX_CONTENT_TYPE_BYTES: usize = 1024;

impl StoredAnswer {
    /// An answer to remember; `None` when its `Content-Type` is longer than
    /// [`MAX_CONTENT_TYPE_BYTES`] (the caller then falls back to the status
    /// answer, as for a body that is too large).
    pub fn new(status: StatusCode, content_type: Option<HeaderValue>, body: Bytes) -> Option<Self> {
        if content_type
            .as_ref()
            .is_some_and(|ct| ct.len() > MAX_CONTENT_TYPE_BYTES)
        {
            return None;
        }
        Some(StoredAnswer {
            status,
            content_type,
            body,
        })
    }

    /// The app's status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The app's `Content-Type`, when it sent one.
    pub fn content_type(&self) -> Option<&HeaderValue> {
        self.content_type.as_ref()
    }

    /// The app's body.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The length of [`StoredAnswer::encode`]'s output.
    pub fn encoded_len(&self) -> usize {
        1 + 2 + 2 + self.content_type.as_ref().map_or(0, HeaderValue::len) + self.body.len()
    }

    /// Appends the versioned encoding: version (1 byte), status (u16 BE),
    /// `Content-Type` length (u16 BE, 0 when absent) and bytes, then the body
    /// to the end. The caller delimits it (a Redis value, a snapshot record).
    pub fn encode(&self, out: &mut Vec<u8>) {
        let content_type = self
            .content_type
            .as_ref()
            .map_or(&[][..], |ct| ct.as_bytes());
        out.reserve(self.encoded_len());
        out.push(ANSWER_VERSION);
        out.extend_from_slice(&self.status.as_u16().to_be_bytes());
        // `new` bounds it to MAX_CONTENT_TYPE_BYTES, well within a u16.
        out.extend_from_slice(&(content_type.len() as u16).to_be_bytes());
        out.extend_from_slice(content_type);
        out.extend_from_slice(&self.body);
    }

    /// Reads [`StoredAnswer::encode`]'s output; `None` for another version
    /// or bytes that are not a valid answer. Borrows the body from `bytes`.
    pub fn decode(bytes: &Bytes) -> Option<Self> {
        let (&version, rest) = bytes.split_first()?;
        if version != ANSWER_VERSION || rest.len() < 4 {
            return None;
        }
        let status = StatusCode::from_u16(u16::from_be_bytes([rest[0], rest[1]])).ok()?;
        let ct_len = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        let body_start = 5usize.checked_add(ct_len)?;
        if bytes.len() < body_start {
            return None;
        }
        let content_type = match ct_len {
            0 => None,
            _ => Some(HeaderValue::from_maybe_shared(bytes.slice(5..body_start)).ok()?),
        };
        StoredAnswer::new(status, content_type, bytes.slice(body_start..))
    }
}

/// The replay store could not answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

/// A place to claim, complete and release dedupe keys.
#[async_trait]
pub trait ReplayStore: Send + Sync + std::fmt::Debug {
    /// Claims every key or none.
    async fn claim(&self, keys: Vec<Key>, ttl: Duration) -> Result<ClaimResult, StoreError>;
    /// Marks a claim's keys as delivered, remembered for the claim's ttl,
    /// with the app's answer when the caller wants later copies to get it.
    async fn complete(&self, claim: &Claim, answer: Option<StoredAnswer>)
        -> Result<(), StoreError>;
    /// Frees a claim's keys (only where they are still held by this claim).
    async fn release(&self, claim: &Claim) -> Result<(), StoreError>;
    /// Forgets completed keys on an operator's request (admin
    /// `POST /replay/forget`), so that a copy of their delivery is forwarded
    /// again; answers how many were removed. Keys in flight are left alone:
    /// their copy is with the app right now, freeing them would let another
    /// copy reach it meanwhile, and settling the claim would mark them
    /// again anyway.
    async fn forget(&self, keys: &[Key]) -> Result<u64, StoreError>;
    /// How many keys the store holds now, as far as this process knows.
    fn entries(&self) -> u64;
    /// Whether the store answers now. A store in this process always does;
    /// a remote one says what its last health check found.
    fn healthy(&self) -> bool {
        true
    }
}

/// A request's dedupe keys, and the first of the route's sources the
/// request lacked.
#[derive(Debug)]
pub struct Keys<'r> {
    /// The keys derived, sorted, without repeats.
    pub keys: Vec<Key>,
    /// The first source absent from the request (a header not sent, a body
    /// that is not JSON or lacks the pointer), for `require_dedupe`.
    pub missing: Option<&'r DedupeSource>,
    /// The value of the route's `delivery_json` source, for the log line
    /// (bounded to [`MAX_DELIVERY_ID`] bytes).
    pub delivery: Option<String>,
}

/// Longest delivery id kept for the log: ids are for finding a delivery.
pub const MAX_DELIVERY_ID: usize = 128;

/// The value of the route's `delivery_json` source in `body`, for the log
/// line of a request whose keys were not derived (refused before its
/// claim): the one place a refused body is parsed for it.
pub fn delivery_id(route: &Route, body: &[u8]) -> Option<String> {
    let source = &route.dedupe[route.delivery_json?];
    let doc = serde_json::from_slice(body).ok()?;
    source_text(source, &doc)
}

/// The text of a JSON source's value(s) in `doc`, bounded: several values
/// are joined with `,`.
fn source_text(source: &DedupeSource, doc: &serde_json::Value) -> Option<String> {
    let mut text = match source {
        DedupeSource::Json(pointer) => json_text(doc.pointer(pointer)?).into_owned(),
        DedupeSource::JsonAll(pointers) => {
            let values: Option<Vec<_>> = pointers.iter().map(|p| doc.pointer(p)).collect();
            let texts: Vec<_> = values?.into_iter().map(json_text).collect();
            texts.join(",")
        }
        DedupeSource::Signature | DedupeSource::Header(_) => return None,
    };
    if text.len() > MAX_DELIVERY_ID {
        let mut end = MAX_DELIVERY_ID;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    Some(text)
}

/// Derives a request's dedupe keys. Sources absent from the request yield
/// no key (the first is reported); `signature` always yields one, and it
/// is authenticated.
pub fn keys_for<'r>(route: &'r Route, verified: &Verified, request: &RequestView<'_>) -> Keys<'r> {
    let mut missing = None;
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
                .map(|value| derive(&route.name, index, json_text(value).as_bytes())),
            DedupeSource::JsonAll(pointers) => json
                .get_or_insert_with(|| serde_json::from_slice(request.body).ok())
                .as_ref()
                .and_then(|doc| {
                    let values: Option<Vec<_>> = pointers.iter().map(|p| doc.pointer(p)).collect();
                    Some(derive(&route.name, index, &joined(&values?)))
                }),
        };
        match key {
            Some(key) => keys.push(key),
            None => {
                missing.get_or_insert(source);
            }
        }
    }
    keys.sort_unstable();
    keys.dedup();
    // From the document already parsed for the keys, so a verified request
    // is not parsed twice for its log line.
    let delivery = route.delivery_json.and_then(|index| {
        let doc = json.as_ref()?.as_ref()?;
        source_text(&route.dedupe[index], doc)
    });
    Keys {
        keys,
        missing,
        delivery,
    }
}

/// The key [`keys_for`] derives from `source` of `route` when the request
/// carries `value` there, given as JSON (what an operator types into
/// `POST /replay/forget`): for `signature` the decoded signature as hex
/// digits; for a header its value as a string; for `json:/pointer` the
/// value found there (a string, or any JSON value); for `json:(/a,/b)` an
/// array of those values, in the pointers' order. `Err` says what `value`
/// should have been; `None` in the `Ok` means `source` is not in the
/// route's `dedupe` list.
pub fn key_for(
    route: &Route,
    source: &DedupeSource,
    value: &serde_json::Value,
) -> Result<Option<Key>, String> {
    let Some(index) = route.dedupe.iter().position(|s| s == source) else {
        return Ok(None);
    };
    let hashed = match (source, value) {
        (DedupeSource::Signature, serde_json::Value::String(digits)) => {
            hex::decode(digits).map_err(|_| "the signature's bytes as hex digits".to_owned())?
        }
        (DedupeSource::Signature, _) => {
            return Err("the signature's bytes as hex digits".to_owned());
        }
        (DedupeSource::Header(_), serde_json::Value::String(text)) => text.as_bytes().to_vec(),
        (DedupeSource::Header(_), _) => return Err("the header's value as a string".to_owned()),
        (DedupeSource::Json(_), value) => json_text(value).as_bytes().to_vec(),
        (DedupeSource::JsonAll(pointers), serde_json::Value::Array(values))
            if values.len() == pointers.len() =>
        {
            joined(&values.iter().collect::<Vec<_>>())
        }
        (DedupeSource::JsonAll(pointers), _) => {
            return Err(format!(
                "an array of {} values, one for each pointer of {source}",
                pointers.len()
            ));
        }
    };
    Ok(Some(derive(&route.name, index, &hashed)))
}

/// The text of a JSON value as a dedupe key hashes it: a string as it is,
/// anything else as its JSON text (so `"123"` and `123` are one key).
fn json_text(value: &serde_json::Value) -> Cow<'_, str> {
    match value {
        serde_json::Value::String(s) => Cow::Borrowed(s),
        other => Cow::Owned(other.to_string()),
    }
}

/// Several values made into one key's input. Each value is length-prefixed
/// so that no two tuples concatenate alike.
fn joined(values: &[&serde_json::Value]) -> Vec<u8> {
    let mut joined = Vec::new();
    for value in values {
        let text = json_text(value);
        joined.extend_from_slice(&(text.len() as u64).to_be_bytes());
        joined.extend_from_slice(text.as_bytes());
    }
    joined
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

    fn answer(content_type: Option<&'static str>, body: &'static [u8]) -> StoredAnswer {
        StoredAnswer::new(
            StatusCode::CREATED,
            content_type.map(HeaderValue::from_static),
            Bytes::from_static(body),
        )
        .unwrap()
    }

    #[test]
    fn answers_survive_their_encoding() {
        for original in [
            answer(Some("application/json"), br#"{"ok":true}"#),
            answer(None, b""),
            answer(Some("text/plain"), b""),
            answer(None, b"\x00\xffbinary"),
        ] {
            let mut encoded = Vec::new();
            original.encode(&mut encoded);
            assert_eq!(encoded.len(), original.encoded_len());
            assert_eq!(StoredAnswer::decode(&Bytes::from(encoded)), Some(original));
        }
    }

    #[test]
    fn foreign_or_broken_answers_are_refused() {
        let mut encoded = Vec::new();
        answer(Some("application/json"), b"{}").encode(&mut encoded);
        let decode = |bytes: &[u8]| StoredAnswer::decode(&Bytes::copy_from_slice(bytes));
        assert!(decode(&[]).is_none());
        let mut newer = encoded.clone();
        newer[0] = ANSWER_VERSION + 1;
        assert!(decode(&newer).is_none(), "another version");
        assert!(
            decode(&encoded[..6]).is_none(),
            "cut inside the content type"
        );
        let mut bad_status = encoded.clone();
        bad_status[1..3].copy_from_slice(&1000u16.to_be_bytes());
        assert!(decode(&bad_status).is_none(), "status 1000");
        let mut bad_header = encoded;
        bad_header[5] = b'\n';
        assert!(
            decode(&bad_header).is_none(),
            "a newline in the content type"
        );
    }

    #[test]
    fn an_overlong_content_type_is_not_remembered() {
        let long = HeaderValue::from_str(&"a".repeat(MAX_CONTENT_TYPE_BYTES + 1)).unwrap();
        assert!(StoredAnswer::new(StatusCode::OK, Some(long), Bytes::new()).is_none());
    }

    #[test]
    fn key_for_derives_the_keys_of_keys_for() {
        let config = crate::config::Config::from_toml(
            r#"
            [server]
            upstream = "http://127.0.0.1:1"
            [[routes]]
            name = "events"
            path = "/events"
            scheme = "hmac"
            secrets = [{ value = "s" }]
            dedupe = ["signature", "header:X-Delivery", "json:/id", "json:(/a,/b)"]
            [routes.hmac]
            header = "X-Signature"
            "#,
            &|_: &str| None::<String>,
        )
        .unwrap();
        let route = &config.routes[0];
        let mut headers = http::HeaderMap::new();
        headers.insert("x-delivery", HeaderValue::from_static("d-1"));
        let body = Bytes::from_static(br#"{"id":123,"a":"x","b":true}"#);
        let verified = Verified {
            key: 0,
            signature: vec![0xab, 0xcd],
            timestamp: None,
        };
        let view = RequestView {
            method: &http::Method::POST,
            uri: &"/events".parse().unwrap(),
            headers: &headers,
            body: &body,
        };
        let derived = keys_for(route, &verified, &view).keys;
        let given = [
            serde_json::json!("ABCD"),
            serde_json::json!("d-1"),
            serde_json::json!("123"),
            serde_json::json!(["x", true]),
        ];
        let mut from_values: Vec<Key> = route
            .dedupe
            .iter()
            .zip(&given)
            .map(|(source, value)| key_for(route, source, value).unwrap().unwrap())
            .collect();
        from_values.sort_unstable();
        assert_eq!(derived, from_values);
        // A number given as a number is the same key as its text.
        assert_eq!(
            key_for(route, &route.dedupe[2], &serde_json::json!(123)),
            key_for(route, &route.dedupe[2], &serde_json::json!("123"))
        );
        let other = DedupeSource::Header(http::HeaderName::from_static("x-other"));
        assert_eq!(key_for(route, &other, &given[1]), Ok(None));
        for (source, bad) in [
            (&route.dedupe[0], serde_json::json!("not hex")),
            (&route.dedupe[1], serde_json::json!(7)),
            (&route.dedupe[3], serde_json::json!(["only one"])),
        ] {
            assert!(key_for(route, source, &bad).is_err(), "{source} with {bad}");
        }
    }

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
