//! Contentful (`scheme = "contentful"`): request verification, an
//! HMAC-SHA256 over a canonical request whose signed headers the request
//! itself lists.
//!
//! The rule is the one of Contentful's toolkit (npm
//! `@contentful/node-apps-toolkit` 3.16.1, `lib/requests`, `signRequest`
//! and `verifyRequest`): the method, the path, the signed headers and the
//! body, joined by newlines. The path is the request target as received,
//! its query escaped as Node's `querystring.escape` does and the whole then
//! as `encodeURI` does (so `a=1` signs as `a%253D1`); the headers are those
//! `x-contentful-signed-headers` names plus itself and
//! `x-contentful-timestamp`, as `name:value` (names lower-case, values
//! trimmed) sorted by name and joined by `;`. The signature is hex in
//! `x-contentful-signature`; the timestamp is milliseconds, and the
//! toolkit's window is 30 seconds.

use std::time::Duration;

use hmac::Hmac;
use http::header::HeaderName;
use sha2::Sha256;

use super::encoding::{self, Encoding};
use super::keys::MacKeys;
use super::{RequestView, Scheme, Unsigned, Verified};
use crate::reject::{Reason, Reject};

const SIGNATURE: HeaderName = HeaderName::from_static("x-contentful-signature");
const SIGNED_HEADERS: HeaderName = HeaderName::from_static("x-contentful-signed-headers");
const TIMESTAMP: HeaderName = HeaderName::from_static("x-contentful-timestamp");

/// Contentful's scheme for one route.
pub struct ContentfulScheme {
    keys: MacKeys<Hmac<Sha256>>,
}

impl std::fmt::Debug for ContentfulScheme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContentfulScheme")
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

/// Percent-encodes every byte of `text` but those `keep` allows.
fn escape(text: &str, keep: impl Fn(u8) -> bool) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if keep(byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// What Node's `querystring.escape` leaves alone.
fn unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&byte)
}

/// What `encodeURI` leaves alone.
fn uri_char(byte: u8) -> bool {
    unreserved(byte) || b";,/?:@&=+$#".contains(&byte)
}

/// The path as the toolkit canonicalises it.
pub fn canonical_path(target: &str) -> String {
    let path = match target.split_once('?') {
        Some((path, query)) if !query.is_empty() => format!("{path}?{}", escape(query, unreserved)),
        Some((path, _)) => path.to_owned(),
        None => target.to_owned(),
    };
    escape(&path, uri_char)
}

impl ContentfulScheme {
    /// Prepares one keyed state per signing secret.
    pub fn new(keys: Vec<(String, Vec<u8>)>) -> Self {
        ContentfulScheme {
            keys: MacKeys::new(keys),
        }
    }

    /// The timestamp (ms) and the canonical request.
    fn canonical(request: &RequestView<'_>) -> Result<(i64, Vec<u8>), Reject> {
        let text = |name: &HeaderName| {
            request
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
        };
        let listed = text(&SIGNED_HEADERS).ok_or_else(|| {
            Reject::with(
                Reason::MissingSignedHeader,
                format!("header {SIGNED_HEADERS} is missing"),
            )
        })?;
        let timestamp: i64 = text(&TIMESTAMP)
            .ok_or_else(|| {
                Reject::with(
                    Reason::MissingTimestamp,
                    format!("header {TIMESTAMP} is missing"),
                )
            })?
            .parse()
            .map_err(|_| {
                Reject::with(
                    Reason::MalformedTimestamp,
                    format!("{TIMESTAMP} must be an integer number of Unix milliseconds"),
                )
            })?;
        // The listed headers present, plus the two the toolkit always signs.
        let mut names: Vec<String> = listed
            .split(',')
            .map(|name| name.trim().to_ascii_lowercase())
            .filter(|name| {
                !name.is_empty()
                    && name != SIGNED_HEADERS.as_str()
                    && name != TIMESTAMP.as_str()
                    && request.headers.contains_key(name.as_str())
            })
            .collect();
        names.push(SIGNED_HEADERS.as_str().to_owned());
        names.push(TIMESTAMP.as_str().to_owned());
        names.sort();
        names.dedup();
        let signed_list = names.join(",");
        let headers: Vec<String> = names
            .iter()
            .map(|name| {
                let value = match name.as_str() {
                    n if n == SIGNED_HEADERS.as_str() => signed_list.clone(),
                    n if n == TIMESTAMP.as_str() => timestamp.to_string(),
                    n => request
                        .headers
                        .get(n)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .trim()
                        .to_owned(),
                };
                format!("{name}:{value}")
            })
            .collect();
        let target = request.uri.path_and_query().map_or("/", |pq| pq.as_str());
        let mut message = format!(
            "{}\n{}\n{}\n",
            request.method,
            canonical_path(target),
            headers.join(";")
        )
        .into_bytes();
        message.extend_from_slice(request.body);
        Ok((timestamp, message))
    }
}

impl Scheme for ContentfulScheme {
    fn name(&self) -> &'static str {
        "contentful"
    }

    fn key_ids(&self) -> &[String] {
        self.keys.ids()
    }

    fn describe(&self) -> String {
        format!(
            "HMAC-SHA256 of the canonical request (method, escaped path, the headers {SIGNED_HEADERS} lists, body), hex in header {SIGNATURE}; timestamp in {TIMESTAMP} (ms)"
        )
    }

    fn default_tolerance(&self) -> Duration {
        Duration::from_secs(30)
    }

    fn timestamp_unit(&self) -> Option<super::hmac::TimestampUnit> {
        Some(super::hmac::TimestampUnit::Millis)
    }

    fn verify(&self, request: &RequestView<'_>) -> Result<Verified, Reject> {
        let candidate = request
            .required(&SIGNATURE, Reason::MissingSignature)?
            .to_str()
            .ok()
            .and_then(|t| encoding::decode(Encoding::Hex, t.trim()))
            .ok_or_else(|| {
                Reject::with(
                    Reason::MalformedSignature,
                    format!("header {SIGNATURE} holds no hex signature"),
                )
            })?;
        let (timestamp, message) = Self::canonical(request)?;
        if let Some((key, signature)) = self.keys.find(&message, &[candidate]) {
            return Ok(Verified {
                key,
                signature,
                timestamp: Some(timestamp.div_euclid(1000)),
            });
        }
        Err(Reject::with(
            Reason::BadSignature,
            format!(
                "the contentful signature matches none of the route's {} secret(s)",
                self.keys.len()
            ),
        ))
    }

    fn signed_message(&self, request: &RequestView<'_>) -> Option<Result<Vec<u8>, Reject>> {
        Some(Self::canonical(request).map(|(_, message)| message))
    }

    fn sign(&self, key: usize, request: &mut Unsigned) -> Result<(), String> {
        request.headers.insert(
            TIMESTAMP,
            (request.now * 1000).to_string().parse().expect("digits"),
        );
        request.headers.insert(
            SIGNED_HEADERS,
            http::HeaderValue::from_static("x-contentful-signed-headers,x-contentful-timestamp"),
        );
        let view = RequestView {
            method: &request.method,
            uri: &request.uri,
            headers: &request.headers,
            body: &request.body,
        };
        let (_, message) = Self::canonical(&view).map_err(|r| r.detail.into_owned())?;
        let signature = encoding::encode(Encoding::Hex, &self.keys.tag(key, &message));
        request
            .headers
            .insert(SIGNATURE, signature.parse().expect("hex is a header"));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_escaped_twice_as_the_toolkit_does() {
        // Checked against @contentful/node-apps-toolkit 3.16.1 signRequest.
        assert_eq!(
            canonical_path("/hook?a=1&b=x y"),
            "/hook?a%253D1%2526b%253Dx%2520y"
        );
        assert_eq!(canonical_path("/a/b"), "/a/b");
        assert_eq!(canonical_path("/a%20b"), "/a%2520b");
        assert_eq!(canonical_path("/a?"), "/a");
    }
}
