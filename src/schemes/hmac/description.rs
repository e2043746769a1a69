//! What a member of the HMAC family is: where its signature, timestamp and
//! id are, what was signed, how it is encoded and keyed. The generic
//! scheme's `[routes.hmac]` table ([`HmacSpec`]) and every preset in
//! [`super::super::presets`] become one [`Description`].

use std::borrow::Cow;
use std::time::Duration;

use http::header::HeaderName;

use crate::dedupe::DedupeSource;
use crate::schemes::challenge::Kind as ChallengeKind;
use crate::schemes::encoding::{self, Encoding};
use crate::schemes::template::{Part, Template};

/// The hash under the HMAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// HMAC-SHA1, still used by telephony and older providers.
    Sha1,
    /// HMAC-SHA256, the common case.
    Sha256,
    /// HMAC-SHA512.
    Sha512,
    /// HMAC-MD5: weak (MD5 collisions are practical; HMAC-MD5 is not yet
    /// forgeable, but has no margin left). Kept only for the senders that
    /// still use it (Patreon); never choose it for a new integration.
    Md5,
}

impl Algorithm {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "sha1",
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
            Algorithm::Md5 => "md5",
        }
    }
}

/// How a timestamp is written: a count of seconds or milliseconds, or an
/// RFC 3339 date-time (Zendesk, Twitch, Box, Orb).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampUnit {
    /// Unix seconds.
    Seconds,
    /// Unix milliseconds.
    Millis,
    /// An RFC 3339 date-time such as `2024-05-01T12:00:00.123456789Z`; one
    /// without an offset is UTC (Orb). The text as sent is what was signed;
    /// only the window check parses it.
    Rfc3339,
}

impl TimestampUnit {
    /// The unit in words, for messages (`"milliseconds"`).
    pub fn as_str(self) -> &'static str {
        match self {
            TimestampUnit::Seconds => "seconds",
            TimestampUnit::Millis => "milliseconds",
            TimestampUnit::Rfc3339 => "an RFC 3339 date-time",
        }
    }

    /// The config spelling (`timestamp_unit`).
    pub fn config_str(self) -> &'static str {
        match self {
            TimestampUnit::Seconds => "s",
            TimestampUnit::Millis => "ms",
            TimestampUnit::Rfc3339 => "rfc3339",
        }
    }

    /// The timestamp `text` in Unix seconds; `None` when it is not written
    /// in this unit.
    pub(crate) fn parse(self, text: &str) -> Option<i64> {
        match self {
            TimestampUnit::Seconds => text.trim().parse().ok(),
            TimestampUnit::Millis => text.trim().parse::<i64>().ok().map(|v| v.div_euclid(1000)),
            TimestampUnit::Rfc3339 => {
                let text = text.trim();
                let rfc3339 = &time::format_description::well_known::Rfc3339;
                // Orb writes no offset and means UTC; a text that already
                // has an offset is never given a second one.
                let has_offset = text.ends_with(['z', 'Z'])
                    || text.get(10..).is_some_and(|time| time.contains(['+', '-']));
                time::OffsetDateTime::parse(text, rfc3339)
                    .or_else(|e| match has_offset {
                        true => Err(e),
                        false => time::OffsetDateTime::parse(&format!("{text}Z"), rfc3339),
                    })
                    .ok()
                    .map(|t| t.unix_timestamp())
            }
        }
    }

    /// `now` (Unix seconds) written as a sender of this unit writes it.
    pub(super) fn format(self, now: i64) -> String {
        match self {
            TimestampUnit::Seconds => now.to_string(),
            TimestampUnit::Millis => (now * 1000).to_string(),
            TimestampUnit::Rfc3339 => time::OffsetDateTime::from_unix_timestamp(now)
                .ok()
                .and_then(|t| {
                    t.format(&time::format_description::well_known::Rfc3339)
                        .ok()
                })
                .unwrap_or_default(),
        }
    }
}

/// A validated `[routes.hmac]` table: the parts of a [`Description`] a
/// route describes itself (dedupe and window come from the route's own
/// keys).
#[derive(Debug, Clone)]
pub struct HmacSpec {
    /// Where the signature is: `header` (with `prefix`), `headers`,
    /// `query`, or a `list` in `header`.
    pub signature: SignatureSource,
    /// The hash function.
    pub algorithm: Algorithm,
    /// When set, the request names its hash in this header, from this
    /// allow-list (`algorithm_header`, `algorithms`).
    pub algorithm_from: Option<AlgorithmHeader>,
    /// How the signature is written.
    pub encoding: Encoding,
    /// What was signed.
    pub message: Template,
    /// When set, the timestamp is required (and checked against the window
    /// unless `window` is false).
    pub timestamp: Option<TimestampSource>,
    /// Fills `{id}` in the template.
    pub id_header: Option<HeaderName>,
    /// How each secret becomes the key (`key_encoding`).
    pub key_form: KeyForm,
    /// False when the timestamp is signed but not checked (`window = false`).
    pub window: bool,
}

/// A hash the request chooses from an allow-list, by a header (Sumsub's
/// `X-Payload-Digest-Alg: HMAC_SHA256_HEX`). Only the listed values are
/// accepted, so a sender cannot pick a weaker hash than the route allows.
#[derive(Debug, Clone)]
pub struct AlgorithmHeader {
    /// The header naming the hash.
    pub header: HeaderName,
    /// Each accepted header value and the hash it names.
    pub values: Vec<(Cow<'static, str>, Algorithm)>,
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
    /// Every present one of these headers: a sender that signs with each
    /// active key puts each signature in its own header (DocuSign's
    /// numbered `X-DocuSign-Signature-1..N`, Box's primary and secondary).
    /// Any signature matching any secret passes.
    Headers {
        /// The headers, all read.
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
        /// The key of the timestamp entry (`t`, `ts`); empty when the list
        /// carries none.
        timestamp_key: Cow<'static, str>,
        /// The key of signature entries (`v1`, `h1`).
        signature_key: Cow<'static, str>,
        /// True when whole lists may be repeated, separated by spaces, while
        /// the sender rotates secrets (Persona:
        /// `t=1,v1=aa t=1,v1=bb`); the first group's timestamp is used.
        groups: bool,
    },
    /// A positional list in one header: the timestamp, then one or more
    /// signatures (Recurly's `1700000000000,ab..,cd..`).
    Positional {
        /// The header.
        name: HeaderName,
        /// Between elements.
        separator: char,
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
    /// A parameter of the request's query string (PandaDoc's
    /// `?signature=`), form-decoded.
    Query(Cow<'static, str>),
    /// A field of a form body holding `public_key|signature` pairs joined
    /// by `&` (Braintree's `bt_signature`); every pair's signature is a
    /// candidate (the public key only says which of the merchant's keys
    /// signed; the MAC is what is checked).
    FormPairs(&'static str),
}

/// Where the sender's timestamp is read from.
#[derive(Debug, Clone)]
pub enum TimestampSource {
    /// The first present of these headers.
    Header(Vec<HeaderName>, TimestampUnit),
    /// The timestamp entry of a [`SignatureSource::KvList`] header, or the
    /// first element of a [`SignatureSource::Positional`] one.
    List(TimestampUnit),
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

/// How a configured secret becomes the HMAC key. The `&'static str` in
/// the decoding forms says what the provider's dashboard shows, for the
/// error when a secret is not in that form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyForm {
    /// The secret's bytes as given (Stripe uses the whole `whsec_...` text).
    Raw,
    /// The secret's bytes as given, but a secret starting with this prefix
    /// belongs to another provider and is refused (Polar's key is the raw
    /// `polar_whs_...` text; a `whsec_` secret pasted there is a mistake).
    RawRefusing {
        /// The prefix that is refused.
        prefix: &'static str,
        /// What the provider's dashboard shows instead.
        shows: &'static str,
    },
    /// Standard Webhooks: base64 of what follows an optional `whsec_`.
    WhsecBase64,
    /// The SHA-1 digest of the secret's bytes (Braintree keys its HMAC
    /// with SHA-1 of the private key).
    Sha1Digest,
    /// The secret is base64 text, decoded to the key (Airtable's
    /// `macSecretBase64`, Microsoft Teams' security token).
    Base64(&'static str),
    /// The secret is hex text, decoded to the key (Adyen, Squarespace,
    /// Authorize.Net, Onfleet).
    Hex(&'static str),
}

impl KeyForm {
    /// The HMAC key for `secret`; the error says what is wrong, never the
    /// secret.
    pub fn key(self, secret: &[u8]) -> Result<Vec<u8>, String> {
        let text = || std::str::from_utf8(secret).map(str::trim).unwrap_or("");
        match self {
            KeyForm::Raw => Ok(secret.to_vec()),
            KeyForm::RawRefusing { prefix, shows } => {
                if secret.starts_with(prefix.as_bytes()) {
                    Err(format!(
                        "this secret starts with {prefix}, which is another provider's form; use {shows}"
                    ))
                } else {
                    Ok(secret.to_vec())
                }
            }
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
            KeyForm::Sha1Digest => {
                use sha1::Digest;
                Ok(sha1::Sha1::digest(secret).to_vec())
            }
            KeyForm::Base64(shows) => encoding::decode(Encoding::Base64, text())
                .ok_or_else(|| format!("expected base64 text ({shows}); this does not decode")),
            KeyForm::Hex(shows) => encoding::decode(Encoding::Hex, text())
                .ok_or_else(|| format!("expected hex text ({shows}); this does not decode")),
        }
    }
}

/// The public URL a sender signs, from the route's `public_url`.
#[derive(Debug, Clone)]
pub struct PublicUrl {
    /// `scheme://host[:port]/path` as configured, without a query.
    pub base: String,
    /// The sender's own rewriting of the URL before it signs, if any
    /// (HubSpot decodes some percent-escapes; see [`super::super::presets`]).
    pub rewrite: Option<fn(&str) -> String>,
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
        match self.rewrite {
            Some(rewrite) => Cow::Owned(rewrite(&url)),
            None => url,
        }
    }
}

/// Everything a member of the HMAC family needs: the generic scheme's
/// table, or a preset's filled-in values.
#[derive(Debug, Clone)]
pub struct Description {
    /// Where the signature is.
    pub signature: SignatureSource,
    /// The hash function.
    pub algorithm: Algorithm,
    /// When set, the request chooses its hash by a header, from an
    /// allow-list (then `algorithm` is the one `hookguard sign` uses).
    pub algorithm_from: Option<AlgorithmHeader>,
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
    /// False when the sender signs a timestamp but asks for no window
    /// (Sanity's own library checks none): the timestamp is then part of
    /// the message only, and replays are left to the dedupe keys.
    pub window: bool,
    /// The endpoint challenge hookguard answers for this sender, if any.
    pub challenge: Option<ChallengeKind>,
}

impl From<HmacSpec> for Description {
    fn from(spec: HmacSpec) -> Description {
        Description {
            signature: spec.signature,
            algorithm: spec.algorithm,
            algorithm_from: spec.algorithm_from,
            encoding: spec.encoding,
            message: spec.message,
            timestamp: spec.timestamp,
            id: spec.id_header.map(|h| IdSource::Header(vec![h])),
            public_url: None,
            key_form: spec.key_form,
            dedupe: vec![DedupeSource::Signature],
            tolerance: Duration::from_secs(300),
            window: spec.window,
            challenge: None,
        }
    }
}

impl HmacSpec {
    /// The plainest table: `header` over `{body}`, SHA-256, hex (tests and
    /// tools start from it).
    pub fn body(header: HeaderName, prefix: Option<&str>) -> HmacSpec {
        HmacSpec {
            signature: SignatureSource::Header {
                names: vec![header],
                prefix: prefix.map(|p| Cow::Owned(p.to_owned())),
            },
            algorithm: Algorithm::Sha256,
            algorithm_from: None,
            encoding: Encoding::Hex,
            message: Template::parse("{body}").expect("a valid template"),
            timestamp: None,
            id_header: None,
            key_form: KeyForm::Raw,
            window: true,
        }
    }
}

impl Description {
    /// True when everything the sender adds is a header and the signed
    /// message is made of the request as sent (no JSON field, no public
    /// URL): a request signed this way keeps its body bytes, which the
    /// egress signer needs (every attempt sends the same bytes).
    pub fn signs_in_headers(&self) -> bool {
        // A signature in the body (JSON, form pairs) or the query would
        // change what the app sent. Exhaustive, so that a new place for a
        // signature has to say whether egress can sign into it.
        let signature_in_headers = match self.signature {
            SignatureSource::Header { .. }
            | SignatureSource::Headers { .. }
            | SignatureSource::KvList { .. }
            | SignatureSource::Positional { .. }
            | SignatureSource::Versioned { .. } => true,
            SignatureSource::Json(_)
            | SignatureSource::FormPairs(_)
            | SignatureSource::Query(_) => false,
        };
        let timestamp_in_headers = match self.timestamp {
            None | Some(TimestampSource::Header(..) | TimestampSource::List(_)) => true,
            Some(TimestampSource::Json(..)) => false,
        };
        let id_in_headers = match self.id {
            None | Some(IdSource::Header(_)) => true,
            Some(IdSource::Json(_)) => false,
        };
        signature_in_headers
            && timestamp_in_headers
            && id_in_headers
            && self.public_url.is_none()
            && !self.message.uses_json()
            && !self.message.uses(&Part::Url)
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
    use http::Uri;

    #[test]
    fn public_urls_take_the_received_query_and_nothing_else() {
        let url = PublicUrl {
            base: "https://hooks.example.com/sq".into(),
            rewrite: None,
        };
        assert_eq!(
            url.for_request(&Uri::from_static("/internal/path?a=1")),
            "https://hooks.example.com/sq?a=1"
        );
        assert_eq!(
            url.for_request(&Uri::from_static("/internal/path")),
            "https://hooks.example.com/sq"
        );
        let shouting = PublicUrl {
            rewrite: Some(|url: &str| url.to_uppercase()),
            ..url
        };
        assert_eq!(
            shouting.for_request(&Uri::from_static("/x?a=1")),
            "HTTPS://HOOKS.EXAMPLE.COM/SQ?A=1"
        );
    }

    #[test]
    fn rfc3339_timestamps_parse_with_fractions_offsets_or_none() {
        let unit = TimestampUnit::Rfc3339;
        assert_eq!(unit.parse("2024-05-01T12:00:00Z"), Some(1_714_564_800));
        assert_eq!(
            unit.parse("2024-05-01T12:00:00.123456789Z"),
            Some(1_714_564_800)
        );
        assert_eq!(unit.parse("2024-05-01T04:00:00-08:00"), Some(1_714_564_800));
        // Orb's: no offset, UTC.
        assert_eq!(
            unit.parse("2024-05-01T12:00:00.123456"),
            Some(1_714_564_800)
        );
        for bad in [
            "1714564800",
            "2024-05-01",
            "2024-05-01T12:00:00+0",
            "ééééééééééé",
            "",
        ] {
            assert_eq!(unit.parse(bad), None, "{bad:?}");
        }
        assert_eq!(unit.format(1_714_564_800), "2024-05-01T12:00:00Z");
    }

    #[test]
    fn whsec_keys_decode_and_raw_keys_do_not() {
        assert_eq!(KeyForm::WhsecBase64.key(b"whsec_AAEC").unwrap(), [0, 1, 2]);
        assert_eq!(KeyForm::WhsecBase64.key(b"AAEC").unwrap(), [0, 1, 2]);
        assert!(KeyForm::WhsecBase64.key(b"whsec_!!").is_err());
        assert_eq!(KeyForm::Raw.key(b"whsec_AAEC").unwrap(), b"whsec_AAEC");
    }
}
