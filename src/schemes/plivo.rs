//! Plivo (`scheme = "plivo"`): the V3 signature, HMAC-SHA256 of the public
//! URL, the sorted query and form parameters and a nonce.
//!
//! The rule is the one of Plivo's SDKs (PyPI `plivo` 4.63.0,
//! `plivo/utils/signature_v3.py`): the route's `public_url` (never the
//! `Host` the request names), then `?` and the URL's query parameters as
//! `name=value` sorted by name (repeated names by value) joined by `&`;
//! for a `POST` with form parameters, `?` always, a `.` after a non-empty
//! query, and each form parameter as name then value, sorted the same way;
//! finally `.` and `X-Plivo-Signature-V3-Nonce`. `X-Plivo-Signature-V3` is
//! a comma list of base64 signatures (one per auth token during a
//! rotation); any one matching passes.

use hmac::Hmac;
use http::header::HeaderName;
use sha2::Sha256;

use super::encoding::{self, Encoding};
use super::keys::MacKeys;
use super::{RequestView, Scheme, Unsigned, Verified};
use crate::dedupe::DedupeSource;
use crate::reject::{Reason, Reject};

const SIGNATURE: HeaderName = HeaderName::from_static("x-plivo-signature-v3");
const NONCE: HeaderName = HeaderName::from_static("x-plivo-signature-v3-nonce");

/// Plivo's scheme for one route.
pub struct PlivoScheme {
    keys: MacKeys<Hmac<Sha256>>,
    /// The configured URL without query.
    public_url: String,
}

impl std::fmt::Debug for PlivoScheme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlivoScheme")
            .field("keys", &self.keys)
            .field("public_url", &self.public_url)
            .finish_non_exhaustive()
    }
}

/// `name`/`value` pairs sorted by name, then by value.
fn sorted(pairs: impl Iterator<Item = (String, String)>) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = pairs.collect();
    pairs.sort();
    pairs
}

impl PlivoScheme {
    /// Prepares one keyed state per auth token.
    pub fn new(public_url: String, keys: Vec<(String, Vec<u8>)>) -> Self {
        PlivoScheme {
            keys: MacKeys::new(keys),
            public_url,
        }
    }

    /// The signed text without the nonce.
    fn base(&self, request: &RequestView<'_>) -> String {
        let query = sorted(
            form_urlencoded::parse(request.uri.query().unwrap_or("").as_bytes()).into_owned(),
        );
        let query: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let query = query.join("&");
        let form = if request.method == http::Method::POST {
            sorted(form_urlencoded::parse(request.body).into_owned())
        } else {
            Vec::new()
        };
        let mut base = self.public_url.clone();
        if !query.is_empty() || !form.is_empty() {
            base.push('?');
            base.push_str(&query);
        }
        if !query.is_empty() && !form.is_empty() {
            base.push('.');
        }
        for (name, value) in form {
            base.push_str(&name);
            base.push_str(&value);
        }
        base
    }

    fn message(&self, request: &RequestView<'_>, nonce: &str) -> Vec<u8> {
        format!("{}.{nonce}", self.base(request)).into_bytes()
    }

    fn nonce<'r>(request: &RequestView<'r>) -> Result<&'r str, Reject> {
        request
            .headers
            .get(&NONCE)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                Reject::with(
                    Reason::MissingSignedHeader,
                    format!("header {NONCE} is missing"),
                )
            })
    }
}

impl Scheme for PlivoScheme {
    fn name(&self) -> &'static str {
        "plivo"
    }

    fn key_ids(&self) -> &[String] {
        self.keys.ids()
    }

    fn describe(&self) -> String {
        format!(
            "HMAC-SHA256 of {}[?sorted query][.][sorted form parameters].{{{NONCE}}}, base64-encoded in header {SIGNATURE} (a comma list)",
            self.public_url
        )
    }

    fn default_dedupe(&self) -> Vec<DedupeSource> {
        vec![DedupeSource::Signature, DedupeSource::Header(NONCE)]
    }

    fn verify(&self, request: &RequestView<'_>) -> Result<Verified, Reject> {
        let value = request.required(&SIGNATURE, Reason::MissingSignature)?;
        let candidates: Vec<Vec<u8>> = value
            .to_str()
            .unwrap_or("")
            .split(',')
            .filter_map(|sig| encoding::decode(Encoding::Base64, sig.trim()))
            .collect();
        if candidates.is_empty() {
            return Err(Reject::with(
                Reason::MalformedSignature,
                format!("header {SIGNATURE} holds no base64 signature"),
            ));
        }
        let message = self.message(request, Self::nonce(request)?);
        if let Some((key, signature)) = self.keys.find(&message, &candidates) {
            return Ok(Verified {
                key,
                signature,
                timestamp: None,
            });
        }
        Err(Reject::with(
            Reason::BadSignature,
            format!(
                "the plivo signature matches none of the route's {} auth token(s) for {}",
                self.keys.len(),
                self.public_url
            ),
        ))
    }

    fn signed_message(&self, request: &RequestView<'_>) -> Option<Result<Vec<u8>, Reject>> {
        Some(Self::nonce(request).map(|nonce| self.message(request, nonce)))
    }

    fn sign(&self, key: usize, request: &mut Unsigned) -> Result<(), String> {
        let nonce = http::HeaderValue::from_str(&request.id)
            .map_err(|_| "the delivery id is not a valid header value".to_owned())?;
        request.headers.insert(NONCE, nonce);
        let view = RequestView {
            method: &request.method,
            uri: &request.uri,
            headers: &request.headers,
            body: &request.body,
        };
        let message = self.message(&view, &request.id);
        let signature = encoding::encode(Encoding::Base64, &self.keys.tag(key, &message));
        request.headers.insert(
            SIGNATURE,
            signature.parse().expect("base64 is a valid header value"),
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http::{HeaderMap, Method, Uri};

    fn base(method: Method, uri: &'static str, body: &'static str) -> String {
        let scheme = PlivoScheme::new("https://a.example/cb".into(), vec![]);
        let headers = HeaderMap::new();
        let body = Bytes::from_static(body.as_bytes());
        scheme.base(&RequestView {
            method: &method,
            uri: &Uri::from_static(uri),
            headers: &headers,
            body: &body,
        })
    }

    #[test]
    fn the_base_follows_the_sdks_rules_for_query_and_form() {
        assert_eq!(base(Method::GET, "/h", ""), "https://a.example/cb");
        assert_eq!(
            base(Method::GET, "/h?b=2&a=1&a=0", ""),
            "https://a.example/cb?a=0&a=1&b=2"
        );
        // A POST with parameters always has "?", and "." only after a query.
        assert_eq!(
            base(Method::POST, "/h", "To=%2B1&From=x"),
            "https://a.example/cb?FromxTo+1"
        );
        assert_eq!(
            base(Method::POST, "/h?z=9", "To=1"),
            "https://a.example/cb?z=9.To1"
        );
        assert_eq!(base(Method::POST, "/h?z=9", ""), "https://a.example/cb?z=9");
    }
}
