//! Hygraph, formerly GraphCMS (`scheme = "graphcms"`, ngrok's id, and
//! `"hygraph"`): an HMAC-SHA256 over a JSON document that wraps the body.
//!
//! The rule is the one of Hygraph's own library (npm `@hygraph/utils`
//! 1.2.1, `index.js`, `generateWebhookSignature` and
//! `verifyWebhookSignature`; hygraph.com/docs/api-reference/basics/webhooks):
//! the header `gcms-signature` is `sign=<base64>, env=<environment>,
//! t=<milliseconds>`, and the signed message is
//! `JSON.stringify({Body: rawBody, EnvironmentName: env, TimeStamp: t})`:
//! the raw body as a JSON string (quotes, backslashes and control
//! characters escaped, nothing else), the environment likewise, and the
//! timestamp as a JSON number. The library checks no window; five minutes
//! is hookguard's.

use hmac::Hmac;
use http::header::HeaderName;
use sha2::Sha256;

use super::encoding::{self, Encoding};
use super::hmac::TimestampUnit;
use super::keys::MacKeys;
use super::{RequestView, Scheme, Unsigned, Verified};
use crate::reject::{Reason, Reject};

const SIGNATURE: HeaderName = HeaderName::from_static("gcms-signature");

/// Hygraph's scheme for one route.
#[derive(Debug)]
pub struct HygraphScheme {
    name: &'static str,
    keys: MacKeys<Hmac<Sha256>>,
}

/// The parts of a `gcms-signature` header.
struct Header<'r> {
    sign: &'r str,
    env: &'r str,
    millis: i64,
}

impl HygraphScheme {
    /// `name` is the entry's (`graphcms` or `hygraph`); `keys` the
    /// webhook's secret keys.
    pub fn new(name: &'static str, keys: Vec<(String, Vec<u8>)>) -> Self {
        HygraphScheme {
            name,
            keys: MacKeys::new(keys),
        }
    }

    /// Reads `sign=.., env=.., t=..`; the library splits on `", "` and
    /// strips each prefix, so the parts must come in that order.
    fn header<'r>(request: &RequestView<'r>) -> Result<Header<'r>, Reject> {
        let value = request
            .required(&SIGNATURE, Reason::MissingSignature)?
            .to_str()
            .ok();
        let malformed = || {
            Reject::with(
                Reason::MalformedSignature,
                format!("header {SIGNATURE} is not \"sign=<base64>, env=<environment>, t=<ms>\""),
            )
        };
        let mut parts = value.ok_or_else(malformed)?.split(", ");
        let (Some(sign), Some(env), Some(t), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed());
        };
        let sign = sign.strip_prefix("sign=").ok_or_else(malformed)?;
        let env = env.strip_prefix("env=").ok_or_else(malformed)?;
        let t = t.strip_prefix("t=").ok_or_else(malformed)?;
        let millis = t
            .parse::<i64>()
            .ok()
            .filter(|_| !t.starts_with('+'))
            .ok_or_else(|| {
                Reject::with(
                    Reason::MalformedTimestamp,
                    format!("t in header {SIGNATURE} is not a count of milliseconds"),
                )
            })?;
        Ok(Header { sign, env, millis })
    }

    /// `{"Body":<body>,"EnvironmentName":<env>,"TimeStamp":<t>}`, the
    /// strings escaped as `JSON.stringify` escapes them (serde_json and
    /// ECMAScript escape the same characters: `"`, `\` and U+0000..U+001F,
    /// the short forms where there is one, `\u00xx` lower-case otherwise).
    fn message(body: &[u8], env: &str, millis: i64) -> Result<Vec<u8>, Reject> {
        let body = std::str::from_utf8(body).map_err(|_| {
            Reject::with(
                Reason::MalformedRequest,
                "the body is not UTF-8 text, which Hygraph signs".to_owned(),
            )
        })?;
        let quoted = |text: &str| serde_json::to_string(text).expect("a str serialises");
        Ok(format!(
            "{{\"Body\":{},\"EnvironmentName\":{},\"TimeStamp\":{millis}}}",
            quoted(body),
            quoted(env)
        )
        .into_bytes())
    }
}

impl Scheme for HygraphScheme {
    fn name(&self) -> &'static str {
        self.name
    }

    fn key_ids(&self) -> &[String] {
        self.keys.ids()
    }

    fn describe(&self) -> String {
        format!(
            "HMAC-SHA256, base64 in header {SIGNATURE} (\"sign=.., env=.., t=..\"), over {{\"Body\":<body as a JSON string>,\"EnvironmentName\":<env>,\"TimeStamp\":<t>}}; timestamp t (ms)"
        )
    }

    fn timestamp_unit(&self) -> Option<TimestampUnit> {
        Some(TimestampUnit::Millis)
    }

    fn signed_message(&self, request: &RequestView<'_>) -> Option<Result<Vec<u8>, Reject>> {
        Some(Self::header(request).and_then(|h| Self::message(request.body, h.env, h.millis)))
    }

    fn verify(&self, request: &RequestView<'_>) -> Result<Verified, Reject> {
        let header = Self::header(request)?;
        let candidate = encoding::decode(Encoding::Base64, header.sign).ok_or_else(|| {
            Reject::with(
                Reason::MalformedSignature,
                format!("sign in header {SIGNATURE} is not base64"),
            )
        })?;
        let message = Self::message(request.body, header.env, header.millis)?;
        match self.keys.find(&message, &[candidate]) {
            Some((key, signature)) => Ok(Verified {
                key,
                signature,
                timestamp: Some(header.millis.div_euclid(1000)),
            }),
            None => Err(Reject::with(
                Reason::BadSignature,
                format!(
                    "the Hygraph signature matches none of the route's {} secret(s)",
                    self.keys.len()
                ),
            )),
        }
    }

    /// Signs for environment `master`, the library's default.
    fn sign(&self, key: usize, request: &mut Unsigned) -> Result<(), String> {
        let millis = request.now * 1000;
        let message =
            Self::message(&request.body, "master", millis).map_err(|r| r.detail.into_owned())?;
        let sign = encoding::encode(Encoding::Base64, &self.keys.tag(key, &message));
        let value = format!("sign={sign}, env=master, t={millis}");
        request
            .headers
            .insert(SIGNATURE, value.parse().expect("base64 and digits"));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_escapes_as_json_stringify_does() {
        // Computed with node: JSON.stringify({Body: "a\"b\\c\n\u0001é\u007f",
        // EnvironmentName: "master", TimeStamp: 1700000000000}).
        let message = HygraphScheme::message(
            "a\"b\\c\n\u{1}é\u{7f}".as_bytes(),
            "master",
            1_700_000_000_000,
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(message).unwrap(),
            "{\"Body\":\"a\\\"b\\\\c\\n\\u0001é\u{7f}\",\"EnvironmentName\":\"master\",\"TimeStamp\":1700000000000}"
        );
    }
}
