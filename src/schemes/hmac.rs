//! The HMAC family: the generic scheme (`scheme = "hmac"`, described by
//! `[routes.hmac]`) and every provider preset that is a filled-in instance
//! of it (see [`super::presets`]).
//!
//! A [`Description`] says where the signature, timestamp and id are read
//! from, what was signed and how it is encoded; [`HmacScheme`] runs any
//! description. Each secret's keyed MAC state is prepared once at config
//! load; a request clones it (a copy of the inner/outer hash state) instead
//! of re-deriving the key schedule. Decoded wire signatures are compared
//! with each candidate in constant time; any secret matching passes, which
//! is how rotation works, and any one of several signatures in a header
//! matching passes, which is how senders rotate.

use std::borrow::Cow;
use std::time::Duration;

use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use http::header::HeaderName;
use sha1::Sha1;
use sha2::{Sha256, Sha512};
use subtle::ConstantTimeEq;

use super::encoding::{self, Encoding};
use super::template::{Part, Template, Values};
use super::{RequestView, Scheme, Unsigned, Verified};
use crate::dedupe::DedupeSource;
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

/// Whether a timestamp counts seconds or milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampUnit {
    /// Unix seconds.
    Seconds,
    /// Unix milliseconds.
    Millis,
}

impl TimestampUnit {
    fn as_str(self) -> &'static str {
        match self {
            TimestampUnit::Seconds => "seconds",
            TimestampUnit::Millis => "milliseconds",
        }
    }

    fn to_seconds(self, value: i64) -> i64 {
        match self {
            TimestampUnit::Seconds => value,
            TimestampUnit::Millis => value.div_euclid(1000),
        }
    }

    fn of_seconds(self, now: i64) -> i64 {
        match self {
            TimestampUnit::Seconds => now,
            TimestampUnit::Millis => now * 1000,
        }
    }
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

/// Where the wire signature(s) are read from.
#[derive(Debug, Clone)]
pub enum SignatureSource {
    /// The first present of these headers; each value may hold several
    /// signatures separated by commas or spaces, each optionally prefixed.
    Header {
        /// Accepted header names, in order of preference (Shopify sends two
        /// spellings).
        names: Vec<HeaderName>,
        /// Optional prefix such as `sha256=`.
        prefix: Option<Cow<'static, str>>,
    },
    /// A key-value list in one header, like Stripe's `t=..,v1=..,v1=..` or
    /// Paddle's `ts=..;h1=..`. Entries with other keys (Stripe's `v0`) are
    /// ignored; the timestamp comes from the same list.
    KvList {
        /// The header.
        name: HeaderName,
        /// Between entries (`,` or `;`).
        separator: char,
        /// The key of the timestamp entry (`t`, `ts`).
        timestamp_key: &'static str,
        /// The key of signature entries (`v1`, `h1`).
        signature_key: &'static str,
    },
    /// Standard Webhooks: space-separated `version,signature` entries in the
    /// first present of these headers; only `version` entries count.
    Versioned {
        /// Accepted header names (`webhook-signature`, `svix-signature`).
        names: Vec<HeaderName>,
        /// The version that is checked (`v1`).
        version: &'static str,
    },
    /// A string in the JSON body (Mailgun), by JSON pointer.
    Json(&'static str),
}

/// Where the sender's timestamp is read from.
#[derive(Debug, Clone)]
pub enum TimestampSource {
    /// The first present of these headers.
    Header(Vec<HeaderName>, TimestampUnit),
    /// The timestamp entry of a [`SignatureSource::KvList`] header.
    List,
    /// A string or number in the JSON body.
    Json(&'static str, TimestampUnit),
}

/// Where the sender's delivery id (`{id}`) is read from.
#[derive(Debug, Clone)]
pub enum IdSource {
    /// The first present of these headers.
    Header(Vec<HeaderName>),
    /// A string in the JSON body.
    Json(&'static str),
}

/// How a configured secret becomes the HMAC key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyForm {
    /// The secret's bytes as given (Stripe uses the whole `whsec_...` text).
    Raw,
    /// Standard Webhooks: base64 of what follows an optional `whsec_`.
    WhsecBase64,
}

impl KeyForm {
    /// The HMAC key for `secret`; the error says what is wrong, never the
    /// secret.
    pub fn key(self, secret: &[u8]) -> Result<Vec<u8>, String> {
        match self {
            KeyForm::Raw => Ok(secret.to_vec()),
            KeyForm::WhsecBase64 => {
                let text = secret.strip_prefix(b"whsec_").unwrap_or(secret);
                let text = std::str::from_utf8(text)
                    .map_err(|_| "a Standard Webhooks secret is whsec_ followed by base64")?;
                encoding::decode(Encoding::Base64, text.trim())
                    .filter(|key| !key.is_empty())
                    .ok_or_else(|| {
                        "a Standard Webhooks secret is whsec_ followed by base64; \
                         this one does not decode"
                            .to_owned()
                    })
            }
        }
    }
}

/// The public URL a sender signs, from the route's `public_url`.
#[derive(Debug, Clone)]
pub struct PublicUrl {
    /// `scheme://host[:port]/path` as configured, without a query.
    pub base: String,
    /// HubSpot decodes a fixed set of percent-escapes before signing.
    pub hubspot_decoding: bool,
}

impl PublicUrl {
    /// The URL of a received request: the configured base with the received
    /// query string. Host and `X-Forwarded-*` are never consulted: they are
    /// the sender's to choose, the configured URL is not.
    pub fn for_request(&self, uri: &http::Uri) -> Cow<'_, str> {
        let url: Cow<'_, str> = match uri.query() {
            Some(query) => Cow::Owned(format!("{}?{query}", self.base)),
            None => Cow::Borrowed(self.base.as_str()),
        };
        if self.hubspot_decoding {
            Cow::Owned(hubspot_decode(&url))
        } else {
            url
        }
    }
}

/// HubSpot's v3 rule: these escapes are decoded before signing, others are
/// left as sent.
fn hubspot_decode(url: &str) -> String {
    const DECODED: &[(&str, char)] = &[
        ("%3A", ':'),
        ("%2F", '/'),
        ("%3F", '?'),
        ("%40", '@'),
        ("%21", '!'),
        ("%24", '$'),
        ("%27", '\''),
        ("%28", '('),
        ("%29", ')'),
        ("%2A", '*'),
        ("%2C", ','),
        ("%3B", ';'),
    ];
    let mut out = String::with_capacity(url.len());
    let mut rest = url;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let escape = rest.get(at..at + 3);
        match escape.and_then(|e| {
            DECODED
                .iter()
                .find(|(code, _)| code.eq_ignore_ascii_case(e))
                .map(|(_, c)| *c)
        }) {
            Some(c) => {
                out.push(c);
                rest = &rest[at + 3..];
            }
            None => {
                out.push('%');
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Everything a member of the HMAC family needs: the generic scheme's
/// table, or a preset's filled-in values.
#[derive(Debug, Clone)]
pub struct Description {
    /// Where the signature is.
    pub signature: SignatureSource,
    /// The hash function.
    pub algorithm: Algorithm,
    /// How the signature is written.
    pub encoding: Encoding,
    /// What was signed.
    pub message: Template,
    /// Where the timestamp is, when the scheme has one.
    pub timestamp: Option<TimestampSource>,
    /// Where `{id}` comes from, when the template uses it.
    pub id: Option<IdSource>,
    /// The URL `{url}` stands for, when the scheme signs it.
    pub public_url: Option<PublicUrl>,
    /// How a secret becomes the key.
    pub key_form: KeyForm,
    /// The route's dedupe keys when it sets none.
    pub dedupe: Vec<DedupeSource>,
    /// The route's window when it sets none.
    pub tolerance: Duration,
}

impl From<HmacSpec> for Description {
    fn from(spec: HmacSpec) -> Description {
        Description {
            signature: SignatureSource::Header {
                names: vec![spec.header],
                prefix: spec.prefix.map(Cow::Owned),
            },
            algorithm: spec.algorithm,
            encoding: spec.encoding,
            message: spec.message,
            timestamp: spec
                .timestamp_header
                .map(|h| TimestampSource::Header(vec![h], spec.timestamp_unit)),
            id: spec.id_header.map(|h| IdSource::Header(vec![h])),
            public_url: None,
            key_form: KeyForm::Raw,
            dedupe: vec![DedupeSource::Signature],
            tolerance: Duration::from_secs(300),
        }
    }
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

/// A member of the HMAC family, prepared for one route.
#[derive(Debug)]
pub struct HmacScheme {
    /// The config spelling (`"hmac"`, `"stripe"`), from the registry.
    name: &'static str,
    desc: Description,
    key_ids: Vec<String>,
    keys: Vec<PreparedKey>,
    /// True when some part of the scheme reads the JSON body, so that it is
    /// parsed once per request, and only then.
    needs_json: bool,
}

/// What was read from one request before MACing.
struct Extracted<'r> {
    candidates: Vec<Vec<u8>>,
    /// The timestamp text as sent (it is what was signed) and in seconds.
    timestamp: Option<(Cow<'r, str>, i64)>,
    id: Option<Cow<'r, str>>,
}

impl HmacScheme {
    /// Runs `desc` under the name `name`, with one keyed state prepared per
    /// `(id, key)`; keys are already in their final form (see
    /// [`KeyForm::key`]).
    pub fn new(name: &'static str, desc: Description, keys: Vec<(String, Vec<u8>)>) -> Self {
        let needs_json = desc.message.uses_json()
            || matches!(desc.signature, SignatureSource::Json(_))
            || matches!(desc.timestamp, Some(TimestampSource::Json(..)))
            || matches!(desc.id, Some(IdSource::Json(_)));
        HmacScheme {
            keys: keys
                .iter()
                .map(|(_, key)| PreparedKey::new(desc.algorithm, key))
                .collect(),
            key_ids: keys.into_iter().map(|(id, _)| id).collect(),
            needs_json,
            name,
            desc,
        }
    }

    /// The description this scheme runs.
    pub fn description(&self) -> &Description {
        &self.desc
    }

    /// Signs as a sender would, with secret `key`: the encoded MAC of the
    /// message `values` describe, with the header prefix when the scheme has
    /// one (list syntax is added by [`Scheme::sign`]). For the `sign`
    /// tooling and tests; never called on the request path.
    pub fn signature_for(&self, key: usize, values: &Values<'_>) -> Result<String, Reject> {
        let tag = self.keys[key].tag(&self.desc.message, values)?;
        let encoded = encoding::encode(self.desc.encoding, &tag);
        Ok(match &self.desc.signature {
            SignatureSource::Header {
                prefix: Some(prefix),
                ..
            } => format!("{prefix}{encoded}"),
            _ => encoded,
        })
    }

    fn parse_json(&self, request: &RequestView<'_>) -> Result<Option<serde_json::Value>, Reject> {
        if !self.needs_json {
            return Ok(None);
        }
        serde_json::from_slice(request.body).map(Some).map_err(|_| {
            Reject::with(
                Reason::MissingSignature,
                format!(
                    "scheme {} reads its signature or timestamp from a JSON body, and the body is not JSON",
                    self.name
                ),
            )
        })
    }

    /// Reads the signature candidates, the timestamp and the id.
    fn extract<'r>(
        &self,
        request: &RequestView<'r>,
        json: Option<&'r serde_json::Value>,
    ) -> Result<Extracted<'r>, Reject> {
        let (candidates, list_timestamp) = self.signatures(request, json)?;
        let timestamp = match &self.desc.timestamp {
            None => None,
            Some(TimestampSource::Header(names, unit)) => {
                let (name, text) = first_header(request, names).ok_or_else(|| {
                    Reject::with(
                        Reason::MissingTimestamp,
                        format!("header {} is missing", names[0]),
                    )
                })?;
                let text = text.ok_or_else(|| malformed_timestamp(name.as_str(), *unit))?;
                Some(parse_timestamp(Cow::Borrowed(text), *unit, name.as_str())?)
            }
            Some(TimestampSource::List) => {
                let SignatureSource::KvList {
                    name,
                    timestamp_key,
                    ..
                } = &self.desc.signature
                else {
                    unreachable!("a list timestamp goes with a list signature header")
                };
                let text = list_timestamp.ok_or_else(|| {
                    Reject::with(
                        Reason::MissingTimestamp,
                        format!("header {name} has no {timestamp_key}= entry"),
                    )
                })?;
                Some(parse_timestamp(
                    Cow::Borrowed(text),
                    TimestampUnit::Seconds,
                    &format!("the {timestamp_key}= entry of {name}"),
                )?)
            }
            Some(TimestampSource::Json(pointer, unit)) => {
                let where_ = format!("the JSON body's {pointer}");
                let text = match json.and_then(|doc| doc.pointer(pointer)) {
                    None => {
                        return Err(Reject::with(
                            Reason::MissingTimestamp,
                            format!("{where_} is missing"),
                        ))
                    }
                    Some(serde_json::Value::String(s)) => Cow::Borrowed(s.as_str()),
                    Some(n @ serde_json::Value::Number(_)) => Cow::Owned(n.to_string()),
                    Some(_) => return Err(malformed_timestamp(&where_, *unit)),
                };
                Some(parse_timestamp(text, *unit, &where_)?)
            }
        };
        let id = match &self.desc.id {
            None => None,
            Some(IdSource::Header(names)) => {
                let missing = || {
                    Reject::with(
                        Reason::MissingSignedHeader,
                        format!("header {} (the signed id) is missing", names[0]),
                    )
                };
                let (_, text) = first_header(request, names).ok_or_else(missing)?;
                Some(Cow::Borrowed(text.ok_or_else(missing)?))
            }
            Some(IdSource::Json(pointer)) => match json.and_then(|doc| doc.pointer(pointer)) {
                Some(serde_json::Value::String(s)) => Some(Cow::Borrowed(s.as_str())),
                _ => {
                    return Err(Reject::with(
                        Reason::MissingSignedHeader,
                        format!("the JSON body has no string at {pointer} (the signed id)"),
                    ))
                }
            },
        };
        Ok(Extracted {
            candidates,
            timestamp,
            id,
        })
    }

    /// Reads and decodes the signature candidates, and for list headers the
    /// timestamp entry. Entries that do not decode, have another key or
    /// another version are skipped; only a source where no entry decodes is
    /// malformed.
    fn signatures<'r>(
        &self,
        request: &RequestView<'r>,
        json: Option<&'r serde_json::Value>,
    ) -> Result<(Vec<Vec<u8>>, Option<&'r str>), Reject> {
        let encoding = self.desc.encoding;
        let missing = |what: &dyn std::fmt::Display| {
            Reject::with(Reason::MissingSignature, format!("{what} is missing"))
        };
        let none_decodes = |what: String| {
            Reject::with(
                Reason::MalformedSignature,
                format!("{what} holds no {} signature", encoding.as_str()),
            )
        };
        match &self.desc.signature {
            SignatureSource::Header { names, prefix } => {
                let header = names
                    .iter()
                    .find(|n| request.headers.contains_key(*n))
                    .ok_or_else(|| missing(&format!("header {}", names[0])))?;
                let candidates: Vec<Vec<u8>> = request
                    .headers
                    .get_all(header)
                    .iter()
                    .filter_map(|value| value.to_str().ok())
                    .flat_map(|text| text.split(|c: char| c == ',' || c.is_ascii_whitespace()))
                    .filter(|token| !token.is_empty())
                    .filter_map(|token| {
                        let token = match prefix {
                            Some(prefix) => strip_prefix_ignore_case(token, prefix),
                            None => token,
                        };
                        encoding::decode(encoding, token)
                    })
                    .collect();
                if candidates.is_empty() {
                    return Err(none_decodes(format!(
                        "header {header}{}",
                        match prefix {
                            Some(p) => format!(" (optionally prefixed with {p:?})"),
                            None => String::new(),
                        }
                    )));
                }
                Ok((candidates, None))
            }
            SignatureSource::KvList {
                name,
                separator,
                timestamp_key,
                signature_key,
            } => {
                let value = request
                    .headers
                    .get(name)
                    .ok_or_else(|| missing(&format!("header {name}")))?;
                let text = value
                    .to_str()
                    .map_err(|_| none_decodes(format!("header {name}")))?;
                let list = parse_kv_list(text, *separator);
                let timestamp = list
                    .iter()
                    .find(|(k, _)| k == timestamp_key)
                    .map(|(_, v)| *v);
                let candidates: Vec<Vec<u8>> = list
                    .iter()
                    .filter(|(k, _)| k == signature_key)
                    .filter_map(|(_, v)| encoding::decode(encoding, v))
                    .collect();
                if candidates.is_empty() {
                    return Err(none_decodes(format!(
                        "header {name} (only {signature_key}= entries count)"
                    )));
                }
                Ok((candidates, timestamp))
            }
            SignatureSource::Versioned { names, version } => {
                let (header, text) = first_header(request, names)
                    .ok_or_else(|| missing(&format!("header {}", names[0])))?;
                let candidates: Vec<Vec<u8>> = text
                    .map(|t| parse_versioned(t, version))
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|sig| encoding::decode(encoding, sig))
                    .collect();
                if candidates.is_empty() {
                    return Err(none_decodes(format!(
                        "header {header} (only {version},<signature> entries count)"
                    )));
                }
                Ok((candidates, None))
            }
            SignatureSource::Json(pointer) => {
                let text = match json.and_then(|doc| doc.pointer(pointer)) {
                    None => return Err(missing(&format!("the JSON body's {pointer}"))),
                    Some(serde_json::Value::String(s)) => s.as_str(),
                    Some(_) => return Err(none_decodes(format!("the JSON body's {pointer}"))),
                };
                let candidate = encoding::decode(encoding, text)
                    .ok_or_else(|| none_decodes(format!("the JSON body's {pointer}")))?;
                Ok((vec![candidate], None))
            }
        }
    }

    fn values<'v>(
        &self,
        request: &RequestView<'v>,
        extracted: &'v Extracted<'_>,
        url: Option<&'v str>,
        json: Option<&'v serde_json::Value>,
    ) -> Values<'v> {
        Values {
            method: request.method.as_str(),
            path: request.uri.path_and_query().map_or("/", |pq| pq.as_str()),
            body: request.body,
            timestamp: extracted.timestamp.as_ref().map(|(t, _)| t.as_ref()),
            id: extracted.id.as_deref(),
            headers: request.headers,
            url,
            json,
        }
    }
}

/// The first of `names` present: its name, and its text when it is valid.
fn first_header<'r, 'n>(
    request: &RequestView<'r>,
    names: &'n [HeaderName],
) -> Option<(&'n HeaderName, Option<&'r str>)> {
    names.iter().find_map(|name| {
        request
            .headers
            .get(name)
            .map(|v| (name, v.to_str().ok().map(str::trim)))
    })
}

fn malformed_timestamp(what: &str, unit: TimestampUnit) -> Reject {
    Reject::with(
        Reason::MalformedTimestamp,
        format!("{what} must be an integer number of Unix {}", unit.as_str()),
    )
}

fn parse_timestamp<'t>(
    text: Cow<'t, str>,
    unit: TimestampUnit,
    what: &str,
) -> Result<(Cow<'t, str>, i64), Reject> {
    let value: i64 = text
        .trim()
        .parse()
        .map_err(|_| malformed_timestamp(what, unit))?;
    Ok((text, unit.to_seconds(value)))
}

/// Splits `t=1,v1=ab,v0=cd` (or `ts=1;h1=ab`) into trimmed key-value pairs;
/// entries without `=` are dropped.
pub fn parse_kv_list(text: &str, separator: char) -> Vec<(&str, &str)> {
    text.split(separator)
        .filter_map(|entry| entry.split_once('='))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect()
}

/// The signatures of `version` in a Standard Webhooks list
/// (`v1,abc v1,def v1a,xyz`).
pub fn parse_versioned<'t>(text: &'t str, version: &str) -> Vec<&'t str> {
    text.split_ascii_whitespace()
        .filter_map(|entry| entry.split_once(','))
        .filter(|(v, _)| *v == version)
        .map(|(_, sig)| sig)
        .collect()
}

impl Scheme for HmacScheme {
    fn name(&self) -> &'static str {
        self.name
    }

    fn describe(&self) -> String {
        let desc = &self.desc;
        let where_ = match &desc.signature {
            SignatureSource::Header { names, prefix } => {
                let names: Vec<String> = names.iter().map(ToString::to_string).collect();
                let mut text = format!("header {}", names.join(" or "));
                if let Some(prefix) = prefix {
                    text.push_str(&format!(" (prefix {prefix:?} optional)"));
                }
                text
            }
            SignatureSource::KvList {
                name,
                separator,
                timestamp_key,
                signature_key,
            } => format!(
                "header {name} as \"{timestamp_key}=..{separator}{signature_key}=..\" (any {signature_key} entry may match)"
            ),
            SignatureSource::Versioned { names, version } => {
                let names: Vec<String> = names.iter().map(ToString::to_string).collect();
                format!(
                    "header {} as space-separated \"{version},<sig>\" entries",
                    names.join(" or ")
                )
            }
            SignatureSource::Json(pointer) => format!("the JSON body at {pointer}"),
        };
        let mut text = format!(
            "HMAC-{} of \"{}\", {}-encoded in {where_}",
            desc.algorithm.as_str().to_uppercase(),
            desc.message,
            desc.encoding.as_str(),
        );
        match &desc.timestamp {
            Some(TimestampSource::Header(names, unit)) => {
                let unit = match unit {
                    TimestampUnit::Seconds => "s",
                    TimestampUnit::Millis => "ms",
                };
                text.push_str(&format!("; timestamp in {} ({unit})", names[0]));
            }
            Some(TimestampSource::Json(pointer, unit)) => {
                text.push_str(&format!(
                    "; timestamp at {pointer} in the JSON body ({})",
                    unit.as_str()
                ));
            }
            Some(TimestampSource::List) | None => {}
        }
        match &desc.id {
            Some(IdSource::Header(names)) => text.push_str(&format!("; id in {}", names[0])),
            Some(IdSource::Json(pointer)) => text.push_str(&format!("; id at {pointer}")),
            None => {}
        }
        if let Some(url) = &desc.public_url {
            text.push_str(&format!("; {{url}} is {}", url.base));
        }
        text
    }

    fn delivery_header(&self) -> Option<&HeaderName> {
        match &self.desc.id {
            Some(IdSource::Header(names)) => names.first(),
            _ => None,
        }
    }

    fn default_dedupe(&self) -> Vec<DedupeSource> {
        self.desc.dedupe.clone()
    }

    fn default_tolerance(&self) -> Duration {
        self.desc.tolerance
    }

    fn signed_message(&self, request: &RequestView<'_>) -> Option<Result<Vec<u8>, Reject>> {
        let build = || {
            let json = self.parse_json(request)?;
            let extracted = self.extract(request, json.as_ref())?;
            let url = self
                .desc
                .public_url
                .as_ref()
                .map(|u| u.for_request(request.uri));
            let values = self.values(request, &extracted, url.as_deref(), json.as_ref());
            let mut message = Vec::new();
            self.desc
                .message
                .feed(&values, &mut |bytes| message.extend_from_slice(bytes))?;
            Ok(message)
        };
        Some(build())
    }

    fn sign(&self, key: usize, request: &mut Unsigned) -> Result<(), String> {
        let desc = &self.desc;
        let mut json: Option<serde_json::Value> = if self.needs_json {
            let doc: serde_json::Value = serde_json::from_slice(&request.body)
                .map_err(|_| format!("scheme {} signs a JSON object body", self.name))?;
            if !doc.is_object() {
                return Err(format!("scheme {} signs a JSON object body", self.name));
            }
            Some(doc)
        } else {
            None
        };
        let mut timestamp_text = None;
        match &desc.timestamp {
            Some(TimestampSource::Header(names, unit)) => {
                let value = unit.of_seconds(request.now).to_string();
                request.headers.insert(
                    names[0].clone(),
                    value.parse().expect("digits are a header"),
                );
                timestamp_text = Some(value);
            }
            Some(TimestampSource::List) => timestamp_text = Some(request.now.to_string()),
            Some(TimestampSource::Json(pointer, unit)) => {
                let doc = json.as_mut().expect("JSON sources parse the body");
                let value = unit.of_seconds(request.now);
                // Mailgun writes its timestamp (seconds) as a string, Linear
                // its (milliseconds) as a number; keep whichever the body
                // already uses, else follow the provider.
                let new = match (doc.pointer(pointer), unit) {
                    (Some(serde_json::Value::Number(_)), _) | (None, TimestampUnit::Millis) => {
                        serde_json::Value::from(value)
                    }
                    _ => serde_json::Value::from(value.to_string()),
                };
                json_set(doc, pointer, new)?;
                timestamp_text = Some(value.to_string());
            }
            None => {}
        }
        match &desc.id {
            Some(IdSource::Header(names)) => {
                let value = http::HeaderValue::from_str(&request.id)
                    .map_err(|_| "the delivery id is not a valid header value".to_owned())?;
                request.headers.insert(names[0].clone(), value);
            }
            Some(IdSource::Json(pointer)) => {
                let doc = json.as_mut().expect("JSON sources parse the body");
                json_set(doc, pointer, serde_json::Value::from(request.id.clone()))?;
            }
            None => {}
        }
        if let Some(doc) = &json {
            request.body = serde_json::to_vec(doc)
                .map_err(|e| format!("cannot write the JSON body: {e}"))?
                .into();
        }
        let url = desc
            .public_url
            .as_ref()
            .map(|u| u.for_request(&request.uri));
        let path = request.uri.path_and_query().map_or("/", |pq| pq.as_str());
        let values = Values {
            method: request.method.as_str(),
            path,
            body: &request.body,
            timestamp: timestamp_text.as_deref(),
            id: match desc.id {
                Some(IdSource::Header(_)) => Some(request.id.as_str()),
                _ => json
                    .as_ref()
                    .zip(match &desc.id {
                        Some(IdSource::Json(p)) => Some(*p),
                        _ => None,
                    })
                    .and_then(|(doc, p)| doc.pointer(p))
                    .and_then(|v| v.as_str()),
            },
            headers: &request.headers,
            url: url.as_deref(),
            json: json.as_ref(),
        };
        let signature = self
            .signature_for(key, &values)
            .map_err(|r| r.detail.into_owned())?;
        let wire = match &desc.signature {
            SignatureSource::Header { names, .. } => (names[0].clone(), signature),
            SignatureSource::KvList {
                name,
                separator,
                timestamp_key,
                signature_key,
            } => (
                name.clone(),
                format!(
                    "{timestamp_key}={}{separator}{signature_key}={signature}",
                    request.now
                ),
            ),
            SignatureSource::Versioned { names, version } => {
                (names[0].clone(), format!("{version},{signature}"))
            }
            SignatureSource::Json(pointer) => {
                let mut doc = json.expect("JSON sources parse the body");
                json_set(&mut doc, pointer, serde_json::Value::from(signature))?;
                request.body = serde_json::to_vec(&doc)
                    .map_err(|e| format!("cannot write the JSON body: {e}"))?
                    .into();
                return Ok(());
            }
        };
        let value = http::HeaderValue::from_str(&wire.1)
            .map_err(|_| "the signature prefix is not a valid header value".to_owned())?;
        request.headers.insert(wire.0, value);
        Ok(())
    }

    fn key_ids(&self) -> &[String] {
        &self.key_ids
    }

    fn verify(&self, request: &RequestView<'_>) -> Result<Verified, Reject> {
        let json = self.parse_json(request)?;
        let extracted = self.extract(request, json.as_ref())?;
        let url = self
            .desc
            .public_url
            .as_ref()
            .map(|u| u.for_request(request.uri));
        let values = self.values(request, &extracted, url.as_deref(), json.as_ref());
        for (index, key) in self.keys.iter().enumerate() {
            let expected = key.tag(&self.desc.message, &values)?;
            // Length is public (it is the algorithm's output size); the
            // contents are compared without early exit. A candidate of the
            // wrong length is simply not a match.
            let matched = extracted.candidates.iter().position(|candidate| {
                candidate.len() == expected.len() && bool::from(expected.ct_eq(candidate))
            });
            if let Some(found) = matched {
                let timestamp = extracted.timestamp.as_ref().map(|(_, seconds)| *seconds);
                return Ok(Verified {
                    key: index,
                    signature: extracted
                        .candidates
                        .into_iter()
                        .nth(found)
                        .expect("position is in range"),
                    timestamp,
                });
            }
        }
        Err(Reject::with(
            Reason::BadSignature,
            format!(
                "the {} signature matches none of the route's {} secret(s)",
                self.name,
                self.keys.len()
            ),
        ))
    }
}

/// Sets `pointer` in `doc`, creating objects along the way (for signing
/// body-embedded schemes).
pub(crate) fn json_set(
    doc: &mut serde_json::Value,
    pointer: &str,
    value: serde_json::Value,
) -> Result<(), String> {
    let mut node = doc;
    let mut parts = pointer.split('/').skip(1).peekable();
    while let Some(part) = parts.next() {
        let map = node
            .as_object_mut()
            .ok_or_else(|| format!("{pointer}: the body has a non-object on the way"))?;
        if parts.peek().is_none() {
            map.insert(part.to_owned(), value);
            return Ok(());
        }
        node = map
            .entry(part.to_owned())
            .or_insert_with(|| serde_json::Value::Object(Default::default()));
    }
    Err(format!("{pointer} is not a JSON pointer to a field"))
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
        let keys = secrets
            .iter()
            .enumerate()
            .map(|(i, s)| (i.to_string(), s.as_bytes().to_vec()))
            .collect();
        HmacScheme::new("hmac", spec.into(), keys)
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
            url: None,
            json: None,
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
        let s = HmacScheme::new("hmac", spec.into(), vec![("a".into(), b"k".to_vec())]);
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

    #[test]
    fn kv_lists_split_on_their_separator_and_keep_every_entry() {
        assert_eq!(
            parse_kv_list("t=1, v1=ab,v0=cd,v1 = ef,junk", ','),
            [("t", "1"), ("v1", "ab"), ("v0", "cd"), ("v1", "ef")]
        );
        assert_eq!(
            parse_kv_list("ts=2;h1=ff", ';'),
            [("ts", "2"), ("h1", "ff")]
        );
        assert!(parse_kv_list("", ',').is_empty());
    }

    #[test]
    fn versioned_lists_keep_only_the_asked_version() {
        assert_eq!(
            parse_versioned("v1,abc v1a,zzz  v2,def v1,ghi novalue", "v1"),
            ["abc", "ghi"]
        );
        assert!(parse_versioned("v2,abc", "v1").is_empty());
    }

    #[test]
    fn hubspot_decodes_only_its_listed_escapes() {
        assert_eq!(
            hubspot_decode("https://a.example/x?u=%3A%2f%40%20%ZZ%"),
            "https://a.example/x?u=:/@%20%ZZ%"
        );
    }

    #[test]
    fn public_urls_take_the_received_query_and_nothing_else() {
        let url = PublicUrl {
            base: "https://hooks.example.com/sq".into(),
            hubspot_decoding: false,
        };
        assert_eq!(
            url.for_request(&Uri::from_static("/internal/path?a=1")),
            "https://hooks.example.com/sq?a=1"
        );
        assert_eq!(
            url.for_request(&Uri::from_static("/internal/path")),
            "https://hooks.example.com/sq"
        );
    }

    #[test]
    fn whsec_keys_decode_and_raw_keys_do_not() {
        assert_eq!(KeyForm::WhsecBase64.key(b"whsec_AAEC").unwrap(), [0, 1, 2]);
        assert_eq!(KeyForm::WhsecBase64.key(b"AAEC").unwrap(), [0, 1, 2]);
        assert!(KeyForm::WhsecBase64.key(b"whsec_!!").is_err());
        assert_eq!(KeyForm::Raw.key(b"whsec_AAEC").unwrap(), b"whsec_AAEC");
    }

    #[test]
    fn json_set_creates_objects_along_the_pointer() {
        let mut doc = serde_json::json!({"a": 1});
        json_set(&mut doc, "/signature/token", "t".into()).unwrap();
        assert_eq!(
            doc,
            serde_json::json!({"a": 1, "signature": {"token": "t"}})
        );
        assert!(json_set(&mut doc, "/a/b", 1.into()).is_err());
    }
}
