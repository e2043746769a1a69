//! Twilio (`scheme = "twilio"`): HMAC-SHA1 of the public URL and the form
//! parameters.
//!
//! Twilio signs the URL it was configured with (the route's `public_url`
//! plus the received query string), followed, for form posts, by every
//! body parameter as name then value, sorted by name (and repeated names by
//! value). JSON posts carry `bodySHA256` in the query instead: the URL alone
//! is signed and the body's SHA-256 must equal that parameter. Twilio's own
//! validators accept the URL with and without the scheme's default port,
//! because its signing has varied; so does this one.

use base64::Engine;
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use http::header::{HeaderName, CONTENT_TYPE};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::encoding::{self, Encoding};
use super::{RequestView, Scheme, Unsigned, Verified};
use crate::reject::{Reason, Reject};

const HEADER: HeaderName = HeaderName::from_static("x-twilio-signature");

/// Twilio's scheme for one route.
pub struct TwilioScheme {
    key_ids: Vec<String>,
    keys: Vec<Hmac<Sha1>>,
    /// The configured URL without query.
    public_url: String,
}

impl std::fmt::Debug for TwilioScheme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwilioScheme")
            .field("key_ids", &self.key_ids)
            .field("public_url", &self.public_url)
            .finish_non_exhaustive()
    }
}

impl TwilioScheme {
    /// Prepares one keyed state per auth token.
    pub fn new(public_url: String, keys: Vec<(String, Vec<u8>)>) -> Self {
        TwilioScheme {
            keys: keys
                .iter()
                .map(|(_, k)| {
                    <Hmac<Sha1> as KeyInit>::new_from_slice(k).expect("HMAC takes any key length")
                })
                .collect(),
            key_ids: keys.into_iter().map(|(id, _)| id).collect(),
            public_url,
        }
    }

    fn url(&self, uri: &http::Uri) -> String {
        match uri.query() {
            Some(q) => format!("{}?{q}", self.public_url),
            None => self.public_url.clone(),
        }
    }

    /// The signed message for `url`: the URL, then the sorted form
    /// parameters unless the URL carries `bodySHA256`.
    fn message(url: &str, request: &RequestView<'_>) -> Vec<u8> {
        let mut message = url.as_bytes().to_vec();
        if !has_body_hash(url) && is_form(request.headers) {
            message.extend_from_slice(canonical_params(request.body).as_bytes());
        }
        message
    }

    fn tag(&self, key: usize, message: &[u8]) -> Vec<u8> {
        let mut mac = self.keys[key].clone();
        mac.update(message);
        mac.finalize().into_bytes().to_vec()
    }
}

fn is_form(headers: &http::HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.split(';').next().is_some_and(|m| {
                m.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        })
}

fn has_body_hash(url: &str) -> bool {
    body_hash_param(url).is_some()
}

fn body_hash_param(url: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "bodySHA256")
        .map(|(_, v)| v.into_owned())
}

/// The form parameters as Twilio concatenates them: decoded, sorted by name
/// and then by value, each as name followed by value; a pair repeated
/// exactly counts once (Twilio's SDKs drop duplicate values of a name).
pub fn canonical_params(body: &[u8]) -> String {
    let mut params: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
    params.sort();
    params.dedup();
    params.into_iter().fold(String::new(), |mut out, (k, v)| {
        out.push_str(&k);
        out.push_str(&v);
        out
    })
}

/// The URL as written plus its variant with the default port added (when
/// it has none) or removed (when it has the default one).
pub fn url_variants(url: &str) -> Vec<String> {
    let mut out = vec![url.to_owned()];
    let (scheme, default) = if let Some(rest) = url.strip_prefix("https://") {
        (("https://", rest), ":443")
    } else if let Some(rest) = url.strip_prefix("http://") {
        (("http://", rest), ":80")
    } else {
        return out;
    };
    let rest = scheme.1;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let host_has_port = authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.chars().all(|c| c.is_ascii_digit()) && !authority.ends_with(']'));
    if let Some(host) = authority.strip_suffix(default) {
        out.push(format!("{}{host}{tail}", scheme.0));
    } else if !host_has_port {
        out.push(format!("{}{authority}{default}{tail}", scheme.0));
    }
    out
}

impl Scheme for TwilioScheme {
    fn name(&self) -> &'static str {
        "twilio"
    }

    fn key_ids(&self) -> &[String] {
        &self.key_ids
    }

    fn describe(&self) -> String {
        format!(
            "HMAC-SHA1 of {}[?query] followed by the sorted form parameters (or, with bodySHA256 in the query, the URL alone and the body's SHA-256), base64-encoded in header {HEADER}",
            self.public_url
        )
    }

    fn verify(&self, request: &RequestView<'_>) -> Result<Verified, Reject> {
        let value = request.required(&HEADER, Reason::MissingSignature)?;
        let candidate = value
            .to_str()
            .ok()
            .and_then(|t| encoding::decode(Encoding::Base64, t.trim()))
            .ok_or_else(|| {
                Reject::with(
                    Reason::MalformedSignature,
                    format!("header {HEADER} holds no base64 signature"),
                )
            })?;
        let url = self.url(request.uri);
        if let Some(expected) = body_hash_param(&url) {
            let actual = hex::encode(Sha256::digest(request.body));
            if !bool::from(
                actual
                    .as_bytes()
                    .ct_eq(expected.to_ascii_lowercase().as_bytes()),
            ) {
                return Err(Reject::new(
                    Reason::BadSignature,
                    "the body's SHA-256 does not match the signed bodySHA256 parameter",
                ));
            }
        }
        for variant in url_variants(&url) {
            let message = Self::message(&variant, request);
            for key in 0..self.keys.len() {
                let expected = self.tag(key, &message);
                if candidate.len() == expected.len() && bool::from(expected.ct_eq(&candidate)) {
                    return Ok(Verified {
                        key,
                        signature: candidate,
                        timestamp: None,
                    });
                }
            }
        }
        Err(Reject::with(
            Reason::BadSignature,
            format!(
                "the twilio signature matches none of the route's {} auth token(s) for {}",
                self.keys.len(),
                self.public_url
            ),
        ))
    }

    fn signed_message(&self, request: &RequestView<'_>) -> Option<Result<Vec<u8>, Reject>> {
        Some(Ok(Self::message(&self.url(request.uri), request)))
    }

    fn sign(&self, key: usize, request: &mut Unsigned) -> Result<(), String> {
        let view_headers = request.headers.clone();
        if !request.body.is_empty() && !is_form(&view_headers) {
            // A JSON (or other) body: Twilio signs its hash via the query.
            let hash = hex::encode(Sha256::digest(&request.body));
            let pq = request.uri.path_and_query().map_or("/", |pq| pq.as_str());
            let joined = if pq.contains('?') {
                format!("{pq}&bodySHA256={hash}")
            } else {
                format!("{pq}?bodySHA256={hash}")
            };
            request.uri = joined
                .parse()
                .map_err(|_| "cannot add bodySHA256 to the request target".to_owned())?;
        }
        let view = RequestView {
            method: &request.method,
            uri: &request.uri,
            headers: &request.headers,
            body: &request.body,
        };
        let message = Self::message(&self.url(&request.uri), &view);
        let signature = base64::engine::general_purpose::STANDARD.encode(self.tag(key, &message));
        request.headers.insert(
            HEADER,
            signature.parse().expect("base64 is a valid header value"),
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_are_decoded_sorted_by_name_then_value_and_concatenated() {
        // twilio-php tests/Twilio/Unit/Security/RequestValidatorTest.php
        // testValidateWithArrayAndDuplicates uses these parameters.
        let body = b"SidAccount=AC123&Digits=5678&Sid=CA123&Digits=1234&Digits=1234";
        assert_eq!(
            canonical_params(body),
            "Digits1234Digits5678SidCA123SidAccountAC123"
        );
        assert_eq!(canonical_params(b"To=%2B1800&A=b+c"), "Ab cTo+1800");
        assert_eq!(canonical_params(b""), "");
    }

    #[test]
    fn url_variants_add_or_drop_the_default_port_only() {
        assert_eq!(
            url_variants("https://a.example/x?y=1"),
            ["https://a.example/x?y=1", "https://a.example:443/x?y=1"]
        );
        assert_eq!(
            url_variants("http://a.example:80/x"),
            ["http://a.example:80/x", "http://a.example/x"]
        );
        assert_eq!(
            url_variants("https://a.example:8443/x"),
            ["https://a.example:8443/x"]
        );
    }

    #[test]
    fn body_hash_is_read_from_the_query() {
        assert_eq!(
            body_hash_param("https://a/x?foo=1&bodySHA256=abc").as_deref(),
            Some("abc")
        );
        assert!(!has_body_hash("https://a/x?foo=1"));
    }
}
