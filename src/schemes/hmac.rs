//! The generic HMAC scheme (`scheme = "hmac"`), described by `[routes.hmac]`.
//!
//! Each secret's keyed MAC state is prepared once at config load; a request
//! clones it (a copy of the inner/outer hash state) instead of re-deriving
//! the key schedule. The decoded wire signature is compared with each
//! candidate in constant time; any secret matching passes, which is how
//! rotation works.

use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use http::header::HeaderName;
use sha1::Sha1;
use sha2::{Sha256, Sha512};
use subtle::ConstantTimeEq;

use super::encoding::{self, Encoding};
use super::template::{Part, Template, Values};
use super::{RequestView, Scheme, Unsigned, Verified};
use crate::config::Secret;
use crate::reject::{Reason, Reject};

/// The hash under the HMAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// HMAC-SHA1, still used by telephony and older providers.
    Sha1,
    /// HMAC-SHA256, the common case.
    Sha256,
    /// HMAC-SHA512.
    Sha512,
}

impl Algorithm {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "sha1",
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }
}

/// Whether a timestamp header counts seconds or milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampUnit {
    /// Unix seconds.
    Seconds,
    /// Unix milliseconds.
    Millis,
}

/// A validated `[routes.hmac]` table.
#[derive(Debug, Clone)]
pub struct HmacSpec {
    /// Header carrying the signature.
    pub header: HeaderName,
    /// Optional prefix such as `sha256=`; accepted with or without it.
    pub prefix: Option<String>,
    /// The hash function.
    pub algorithm: Algorithm,
    /// How the signature is written.
    pub encoding: Encoding,
    /// What was signed.
    pub message: Template,
    /// When set, the timestamp is required and checked against the window.
    pub timestamp_header: Option<HeaderName>,
    /// Unit of the timestamp header.
    pub timestamp_unit: TimestampUnit,
    /// Fills `{id}` in the template.
    pub id_header: Option<HeaderName>,
}

/// A keyed MAC state ready to be cloned per request.
#[derive(Clone)]
enum PreparedKey {
    Sha1(Hmac<Sha1>),
    Sha256(Hmac<Sha256>),
    Sha512(Hmac<Sha512>),
}

impl PreparedKey {
    fn new(algorithm: Algorithm, secret: &[u8]) -> Self {
        // HMAC accepts keys of any length (long ones are hashed first), so
        // `new_from_slice` cannot fail here.
        match algorithm {
            Algorithm::Sha1 => PreparedKey::Sha1(
                <Hmac<Sha1> as KeyInit>::new_from_slice(secret).expect("HMAC takes any key length"),
            ),
            Algorithm::Sha256 => PreparedKey::Sha256(
                <Hmac<Sha256> as KeyInit>::new_from_slice(secret)
                    .expect("HMAC takes any key length"),
            ),
            Algorithm::Sha512 => PreparedKey::Sha512(
                <Hmac<Sha512> as KeyInit>::new_from_slice(secret)
                    .expect("HMAC takes any key length"),
            ),
        }
    }

    /// MACs the message the template describes.
    fn tag(&self, template: &Template, values: &Values<'_>) -> Result<Vec<u8>, Reject> {
        fn run<M: Mac + Clone>(
            key: &M,
            template: &Template,
            values: &Values<'_>,
        ) -> Result<Vec<u8>, Reject> {
            let mut mac = key.clone();
            template.feed(values, &mut |bytes| mac.update(bytes))?;
            Ok(mac.finalize().into_bytes().to_vec())
        }
        match self {
            PreparedKey::Sha1(k) => run(k, template, values),
            PreparedKey::Sha256(k) => run(k, template, values),
            PreparedKey::Sha512(k) => run(k, template, values),
        }
    }
}

impl std::fmt::Debug for PreparedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PreparedKey(<redacted>)")
    }
}

/// The generic HMAC scheme for one route.
#[derive(Debug)]
pub struct HmacScheme {
    spec: HmacSpec,
    key_ids: Vec<String>,
    keys: Vec<PreparedKey>,
}

impl HmacScheme {
    /// Prepares one keyed state per secret.
    pub fn new(spec: HmacSpec, secrets: &[Secret]) -> Self {
        HmacScheme {
            keys: secrets
                .iter()
                .map(|s| PreparedKey::new(spec.algorithm, s.expose()))
                .collect(),
            key_ids: secrets.iter().map(|s| s.id.clone()).collect(),
            spec,
        }
    }

    /// The validated description this scheme was built from.
    pub fn spec(&self) -> &HmacSpec {
        &self.spec
    }

    /// Signs as a sender would, with secret `key`: the header value including
    /// the prefix. For the `sign` tooling and tests; never called on the
    /// request path.
    pub fn signature_for(&self, key: usize, values: &Values<'_>) -> Result<String, Reject> {
        let tag = self.keys[key].tag(&self.spec.message, values)?;
        let encoded = encoding::encode(self.spec.encoding, &tag);
        Ok(match &self.spec.prefix {
            Some(prefix) => format!("{prefix}{encoded}"),
            None => encoded,
        })
    }

    /// Reads and decodes the signature header. A header may carry several
    /// signatures (repeated, or separated by commas or spaces, as senders do
    /// during their own key rotation); entries that do not decode are
    /// skipped, and only a header where none decodes is malformed.
    fn signatures(&self, request: &RequestView<'_>) -> Result<Vec<Vec<u8>>, Reject> {
        let header = &self.spec.header;
        let mut values = request.headers.get_all(header).iter().peekable();
        if values.peek().is_none() {
            return Err(Reject::with(
                Reason::MissingSignature,
                format!("header {header} is missing"),
            ));
        }
        let candidates: Vec<Vec<u8>> = values
            .filter_map(|value| value.to_str().ok())
            .flat_map(|text| text.split(|c: char| c == ',' || c.is_ascii_whitespace()))
            .filter(|token| !token.is_empty())
            .filter_map(|token| {
                let token = match &self.spec.prefix {
                    Some(prefix) => strip_prefix_ignore_case(token, prefix),
                    None => token,
                };
                encoding::decode(self.spec.encoding, token)
            })
            .collect();
        if candidates.is_empty() {
            return Err(Reject::with(
                Reason::MalformedSignature,
                format!(
                    "header {header} holds no {} signature{}",
                    self.spec.encoding.as_str(),
                    match &self.spec.prefix {
                        Some(p) => format!(" (optionally prefixed with {p:?})"),
                        None => String::new(),
                    }
                ),
            ));
        }
        Ok(candidates)
    }

    /// Reads the timestamp header, when the scheme has one: the text as sent
    /// (it is what was signed) and its value in Unix seconds.
    fn timestamp<'r>(&self, request: &RequestView<'r>) -> Result<Option<(&'r str, i64)>, Reject> {
        let Some(header) = &self.spec.timestamp_header else {
            return Ok(None);
        };
        let raw = request.headers.get(header).ok_or_else(|| {
            Reject::with(
                Reason::MissingTimestamp,
                format!("header {header} is missing"),
            )
        })?;
        let malformed = || {
            Reject::with(
                Reason::MalformedTimestamp,
                format!(
                    "header {header} must be an integer number of Unix {}",
                    match self.spec.timestamp_unit {
                        TimestampUnit::Seconds => "seconds",
                        TimestampUnit::Millis => "milliseconds",
                    }
                ),
            )
        };
        let text = raw.to_str().map_err(|_| malformed())?.trim();
        let value: i64 = text.parse().map_err(|_| malformed())?;
        let seconds = match self.spec.timestamp_unit {
            TimestampUnit::Seconds => value,
            TimestampUnit::Millis => value.div_euclid(1000),
        };
        Ok(Some((text, seconds)))
    }

    fn id<'r>(&self, request: &RequestView<'r>) -> Result<Option<&'r str>, Reject> {
        let Some(header) = &self.spec.id_header else {
            return Ok(None);
        };
        let missing = || {
            Reject::with(
                Reason::MissingSignedHeader,
                format!("header {header} (the signed id) is missing"),
            )
        };
        let value = request.headers.get(header).ok_or_else(missing)?;
        value.to_str().map(Some).map_err(|_| missing())
    }
}

impl Scheme for HmacScheme {
    fn name(&self) -> &'static str {
        "hmac"
    }

    fn describe(&self) -> String {
        let spec = &self.spec;
        let mut text = format!(
            "HMAC-{} of \"{}\", {}-encoded in header {}",
            spec.algorithm.as_str().to_uppercase(),
            spec.message,
            spec.encoding.as_str(),
            spec.header
        );
        if let Some(prefix) = &spec.prefix {
            text.push_str(&format!(" (prefix {prefix:?} optional)"));
        }
        if let Some(ts) = &spec.timestamp_header {
            let unit = match spec.timestamp_unit {
                TimestampUnit::Seconds => "s",
                TimestampUnit::Millis => "ms",
            };
            text.push_str(&format!("; timestamp in {ts} ({unit})"));
        }
        if let Some(id) = &spec.id_header {
            text.push_str(&format!("; id in {id}"));
        }
        text
    }

    fn delivery_header(&self) -> Option<&HeaderName> {
        self.spec.id_header.as_ref()
    }

    fn signed_message(&self, request: &RequestView<'_>) -> Option<Result<Vec<u8>, Reject>> {
        let build = || {
            let timestamp = self.timestamp(request)?;
            let id = self.id(request)?;
            let values = values_of(request, timestamp.map(|(text, _)| text), id);
            let mut message = Vec::new();
            self.spec
                .message
                .feed(&values, &mut |bytes| message.extend_from_slice(bytes))?;
            Ok(message)
        };
        Some(build())
    }

    fn sign(&self, key: usize, request: &mut Unsigned) -> Result<(), String> {
        let spec = &self.spec;
        if let Some(header) = &spec.timestamp_header {
            let value = match spec.timestamp_unit {
                TimestampUnit::Seconds => request.now,
                TimestampUnit::Millis => request.now * 1000,
            };
            request.headers.insert(header.clone(), value.into());
        }
        if let Some(header) = &spec.id_header {
            let value = http::HeaderValue::from_str(&request.id)
                .map_err(|_| "the delivery id is not a valid header value".to_owned())?;
            request.headers.insert(header.clone(), value);
        }
        let timestamp_text = spec
            .timestamp_header
            .as_ref()
            .and_then(|h| request.headers.get(h))
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let path = request.uri.path_and_query().map_or("/", |pq| pq.as_str());
        let values = Values {
            method: request.method.as_str(),
            path,
            body: &request.body,
            timestamp: timestamp_text.as_deref(),
            id: spec.id_header.as_ref().map(|_| request.id.as_str()),
            headers: &request.headers,
        };
        let signature = self
            .signature_for(key, &values)
            .map_err(|r| r.detail.into_owned())?;
        let value = http::HeaderValue::from_str(&signature)
            .map_err(|_| "the signature prefix is not a valid header value".to_owned())?;
        request.headers.insert(spec.header.clone(), value);
        Ok(())
    }

    fn key_ids(&self) -> &[String] {
        &self.key_ids
    }

    fn verify(&self, request: &RequestView<'_>) -> Result<Verified, Reject> {
        let candidates = self.signatures(request)?;
        let timestamp = self.timestamp(request)?;
        let id = self.id(request)?;
        let values = values_of(request, timestamp.map(|(text, _)| text), id);
        for (index, key) in self.keys.iter().enumerate() {
            let expected = key.tag(&self.spec.message, &values)?;
            // Length is public (it is the algorithm's output size); the
            // contents are compared without early exit. A candidate of the
            // wrong length is simply not a match.
            let matched = candidates.iter().position(|candidate| {
                candidate.len() == expected.len() && bool::from(expected.ct_eq(candidate))
            });
            if let Some(found) = matched {
                return Ok(Verified {
                    key: index,
                    signature: candidates
                        .into_iter()
                        .nth(found)
                        .expect("position is in range"),
                    timestamp: timestamp.map(|(_, seconds)| seconds),
                });
            }
        }
        Err(Reject::with(
            Reason::BadSignature,
            format!(
                "the {} signature in {} matches none of the route's {} secret(s)",
                self.spec.algorithm.as_str(),
                self.spec.header,
                self.keys.len()
            ),
        ))
    }
}

/// The template values of a received request.
fn values_of<'r>(
    request: &RequestView<'r>,
    timestamp: Option<&'r str>,
    id: Option<&'r str>,
) -> Values<'r> {
    Values {
        method: request.method.as_str(),
        path: request.uri.path_and_query().map_or("/", |pq| pq.as_str()),
        body: request.body,
        timestamp,
        id,
        headers: request.headers,
    }
}

/// `sha256=abc` and `SHA256=abc` both lose the prefix; text without it is
/// returned unchanged (the prefix is optional on the wire).
fn strip_prefix_ignore_case<'t>(text: &'t str, prefix: &str) -> &'t str {
    match text.get(..prefix.len()) {
        Some(head) if head.eq_ignore_ascii_case(prefix) => &text[prefix.len()..],
        _ => text,
    }
}

/// True when the template refers to the timestamp; used by validation.
pub fn template_needs_timestamp(template: &Template) -> bool {
    template.uses(&Part::Timestamp)
}

/// True when the template refers to the id; used by validation.
pub fn template_needs_id(template: &Template) -> bool {
    template.uses(&Part::Id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http::{HeaderMap, Method, Uri};

    fn scheme(prefix: Option<&str>, encoding: Encoding, secrets: &[&str]) -> HmacScheme {
        let spec = HmacSpec {
            header: HeaderName::from_static("x-signature"),
            prefix: prefix.map(str::to_owned),
            algorithm: Algorithm::Sha256,
            encoding,
            message: Template::parse("{body}").unwrap(),
            timestamp_header: None,
            timestamp_unit: TimestampUnit::Seconds,
            id_header: None,
        };
        let secrets: Vec<Secret> = secrets
            .iter()
            .enumerate()
            .map(|(i, s)| Secret::new(i.to_string(), s.as_bytes().to_vec()))
            .collect();
        HmacScheme::new(spec, &secrets)
    }

    fn verify(s: &HmacScheme, sig: Option<&str>, body: &'static [u8]) -> Result<Verified, Reject> {
        let mut headers = HeaderMap::new();
        if let Some(sig) = sig {
            headers.insert("x-signature", sig.parse().unwrap());
        }
        let body = Bytes::from_static(body);
        let uri = Uri::from_static("/hook");
        s.verify(&RequestView {
            method: &Method::POST,
            uri: &uri,
            headers: &headers,
            body: &body,
        })
    }

    // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
    const RFC4231_TC2_SHA256: &str =
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";

    #[test]
    fn matches_the_rfc_4231_vector_with_or_without_prefix() {
        let s = scheme(Some("sha256="), Encoding::Hex, &["Jefe"]);
        let body: &'static [u8] = b"what do ya want for nothing?";
        assert!(verify(&s, Some(RFC4231_TC2_SHA256), body).is_ok());
        let prefixed = format!("sha256={RFC4231_TC2_SHA256}");
        let ok = verify(&s, Some(&prefixed), body).unwrap();
        assert_eq!(ok.key, 0);
        assert_eq!(hex::encode(ok.signature), RFC4231_TC2_SHA256);
        let upper = format!("SHA256={}", RFC4231_TC2_SHA256.to_uppercase());
        assert!(verify(&s, Some(&upper), body).is_ok());
    }

    #[test]
    fn decoding_failures_and_wrong_lengths_have_distinct_reasons() {
        let s = scheme(Some("sha256="), Encoding::Hex, &["Jefe"]);
        let body: &'static [u8] = b"what do ya want for nothing?";
        assert_eq!(
            verify(&s, None, body).unwrap_err().reason,
            Reason::MissingSignature
        );
        assert_eq!(
            verify(&s, Some("sha256=xyz"), body).unwrap_err().reason,
            Reason::MalformedSignature
        );
        assert_eq!(
            verify(&s, Some("sha256="), body).unwrap_err().reason,
            Reason::MalformedSignature
        );
        // Valid hex, wrong length: simply not a match.
        assert_eq!(
            verify(&s, Some("abcd"), body).unwrap_err().reason,
            Reason::BadSignature
        );
        let mut tampered = RFC4231_TC2_SHA256.to_owned();
        tampered.replace_range(0..1, "6");
        let err = verify(&s, Some(&tampered), body).unwrap_err();
        assert_eq!(err.reason, Reason::BadSignature);
        assert!(!err.detail.contains(RFC4231_TC2_SHA256));
    }

    #[test]
    fn a_list_of_signatures_passes_when_any_entry_matches() {
        let s = scheme(Some("sha256="), Encoding::Hex, &["Jefe"]);
        let body: &'static [u8] = b"what do ya want for nothing?";
        let list = format!("sha256=zz, sha256=abcd sha256={RFC4231_TC2_SHA256}");
        let ok = verify(&s, Some(&list), body).unwrap();
        assert_eq!(hex::encode(ok.signature), RFC4231_TC2_SHA256);
        assert_eq!(
            verify(&s, Some("sha256=zz, nothex"), body)
                .unwrap_err()
                .reason,
            Reason::MalformedSignature
        );
        assert_eq!(
            verify(&s, Some("sha256=abcd, sha256=00ff"), body)
                .unwrap_err()
                .reason,
            Reason::BadSignature
        );
    }

    #[test]
    fn any_secret_matching_passes_and_is_named() {
        let s = scheme(None, Encoding::Base64, &["new", "Jefe"]);
        let sig = encoding::encode(Encoding::Base64, &hex::decode(RFC4231_TC2_SHA256).unwrap());
        let ok = verify(&s, Some(&sig), b"what do ya want for nothing?").unwrap();
        assert_eq!(ok.key, 1);
        assert_eq!(s.key_ids()[ok.key], "1");
    }

    #[test]
    fn sign_produces_what_verify_accepts() {
        let s = scheme(Some("sha256="), Encoding::Hex, &["k"]);
        let headers = HeaderMap::new();
        let values = Values {
            method: "POST",
            path: "/hook",
            body: b"hello",
            timestamp: None,
            id: None,
            headers: &headers,
        };
        let sig = s.signature_for(0, &values).unwrap();
        assert!(sig.starts_with("sha256="));
        assert!(verify(&s, Some(&sig), b"hello").is_ok());
        assert_eq!(
            verify(&s, Some(&sig), b"hellO").unwrap_err().reason,
            Reason::BadSignature
        );
    }

    #[test]
    fn the_trait_sign_adds_every_header_verify_needs() {
        let spec = HmacSpec {
            header: HeaderName::from_static("x-sig"),
            prefix: Some("v1=".into()),
            algorithm: Algorithm::Sha512,
            encoding: Encoding::Base64,
            message: Template::parse("{id}.{timestamp}.{method}.{path}.{body}").unwrap(),
            timestamp_header: Some(HeaderName::from_static("x-ts")),
            timestamp_unit: TimestampUnit::Millis,
            id_header: Some(HeaderName::from_static("x-id")),
        };
        let s = HmacScheme::new(spec, &[Secret::new("a".into(), b"k".to_vec())]);
        let mut unsigned = Unsigned {
            method: Method::PUT,
            uri: Uri::from_static("/x?y=1"),
            headers: HeaderMap::new(),
            body: Bytes::from_static(b"payload"),
            now: 1_700_000_000,
            id: "msg_1".into(),
        };
        Scheme::sign(&s, 0, &mut unsigned).unwrap();
        assert_eq!(unsigned.headers["x-ts"], "1700000000000");
        assert_eq!(unsigned.headers["x-id"], "msg_1");
        let view = RequestView {
            method: &unsigned.method,
            uri: &unsigned.uri,
            headers: &unsigned.headers,
            body: &unsigned.body,
        };
        let ok = s.verify(&view).unwrap();
        assert_eq!(ok.timestamp, Some(1_700_000_000));
        let message = s.signed_message(&view).unwrap().unwrap();
        assert_eq!(message, b"msg_1.1700000000000.PUT./x?y=1.payload");
        assert!(s.describe().contains("HMAC-SHA512"));
    }
}
