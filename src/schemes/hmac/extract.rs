//! Reading what a request claims before anything is MACed: the signature
//! candidates, the timestamp and the delivery id, from headers, a key-value
//! list header or the JSON body, as a [`Description`] says.
//!
//! Every error names where the value was looked for; that text is formatted
//! only when a request fails, never on the success path.

use std::borrow::Cow;
use std::fmt;

use http::header::HeaderName;

use super::description::{
    template_needs_id, Description, IdSource, SignatureSource, TimestampSource, TimestampUnit,
};
use crate::reject::{Reason, Reject};
use crate::schemes::encoding;
use crate::schemes::RequestView;

/// What was read from one request before MACing.
pub(super) struct Extracted<'r> {
    /// Every decoded signature the request carries; any one may match.
    pub(super) candidates: Vec<Vec<u8>>,
    /// The timestamp text as sent (it is what was signed) and in seconds.
    pub(super) timestamp: Option<(Cow<'r, str>, i64)>,
    /// The delivery id, when the message signs one.
    pub(super) id: Option<Cow<'r, str>>,
}

/// Where a timestamp was read, for error text. Holding references and
/// formatting only on demand keeps `format!` off the success path.
#[derive(Clone, Copy)]
enum Place<'a> {
    /// A header, by name.
    Header(&'a HeaderName),
    /// One `key=` entry of a key-value list header.
    ListEntry(&'a str, &'a HeaderName),
    /// The first element of a positional list header.
    ListHead(&'a HeaderName),
    /// A value in the JSON body, by pointer.
    Json(&'a str),
}

impl fmt::Display for Place<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::Header(name) => write!(f, "{name}"),
            Place::ListEntry(key, header) => write!(f, "the {key}= entry of {header}"),
            Place::ListHead(header) => write!(f, "the first element of {header}"),
            Place::Json(pointer) => write!(f, "the JSON body's {pointer}"),
        }
    }
}

/// Reads the signature candidates, the timestamp and the id. `json` is the
/// parsed body when the description reads from it.
pub(super) fn extract<'r>(
    desc: &Description,
    request: &RequestView<'r>,
    json: Option<&'r serde_json::Value>,
) -> Result<Extracted<'r>, Reject> {
    let (candidates, list_timestamp) = signatures(desc, request, json)?;
    let timestamp = match &desc.timestamp {
        None => None,
        Some(TimestampSource::Header(names, unit)) => {
            let (name, text) = first_header(request, names).ok_or_else(|| {
                Reject::with(
                    Reason::MissingTimestamp,
                    format!("header {} is missing", names[0]),
                )
            })?;
            let place = Place::Header(name);
            let text = text.ok_or_else(|| malformed_timestamp(place, *unit))?;
            Some(parse_timestamp(Cow::Borrowed(text), *unit, place)?)
        }
        Some(TimestampSource::List(unit)) => {
            let (name, key) = match &desc.signature {
                SignatureSource::KvList {
                    name,
                    timestamp_key,
                    ..
                } => (name, timestamp_key.as_ref()),
                SignatureSource::Positional { name, .. } => (name, ""),
                _ => unreachable!("a list timestamp goes with a list signature header"),
            };
            let place = if key.is_empty() {
                Place::ListHead(name)
            } else {
                Place::ListEntry(key, name)
            };
            let text = list_timestamp.ok_or_else(|| {
                Reject::with(Reason::MissingTimestamp, format!("{place} is missing"))
            })?;
            Some(parse_timestamp(Cow::Borrowed(text), *unit, place)?)
        }
        Some(TimestampSource::Json(pointer, unit)) => {
            let place = Place::Json(pointer);
            let text = match json.and_then(|doc| doc.pointer(pointer)) {
                None => {
                    return Err(Reject::with(
                        Reason::MissingTimestamp,
                        format!("{place} is missing"),
                    ))
                }
                Some(serde_json::Value::String(s)) => Cow::Borrowed(s.as_str()),
                Some(n @ serde_json::Value::Number(_)) => Cow::Owned(n.to_string()),
                Some(_) => return Err(malformed_timestamp(place, *unit)),
            };
            Some(parse_timestamp(text, *unit, place)?)
        }
    };
    let id = match &desc.id {
        None => None,
        Some(IdSource::Header(names)) => {
            let missing = || {
                Reject::with(
                    Reason::MissingSignedHeader,
                    format!("header {} ({}) is missing", names[0], id_role(desc)),
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
                    format!(
                        "the JSON body has no string at {pointer} ({})",
                        id_role(desc)
                    ),
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
/// timestamp entry. Entries that do not decode, have another key or another
/// version are skipped; only a source where no entry decodes is malformed.
fn signatures<'r>(
    desc: &Description,
    request: &RequestView<'r>,
    json: Option<&'r serde_json::Value>,
) -> Result<(Vec<Vec<u8>>, Option<&'r str>), Reject> {
    let encoding = desc.encoding;
    let missing = |what: &dyn fmt::Display| {
        Reject::with(Reason::MissingSignature, format!("{what} is missing"))
    };
    let none_decodes = |what: String| {
        Reject::with(
            Reason::MalformedSignature,
            format!("{what} holds no {} signature", encoding.as_str()),
        )
    };
    match &desc.signature {
        SignatureSource::Header { names, prefix } => {
            let header = names
                .iter()
                .find(|n| request.headers.contains_key(*n))
                .ok_or_else(|| missing(&format!("header {}", names[0])))?;
            let candidates =
                header_candidates(request, std::slice::from_ref(header), prefix, encoding);
            if candidates.is_empty() {
                return Err(none_decodes(format!(
                    "header {header}{}",
                    prefix_note(prefix)
                )));
            }
            Ok((candidates, None))
        }
        SignatureSource::Headers { names, prefix } => {
            if !names.iter().any(|n| request.headers.contains_key(n)) {
                return Err(missing(&format!("header {}", names[0])));
            }
            let candidates = header_candidates(request, names, prefix, encoding);
            if candidates.is_empty() {
                return Err(none_decodes(format!(
                    "every present header of {} .. {}{}",
                    names[0],
                    names[names.len() - 1],
                    prefix_note(prefix)
                )));
            }
            Ok((candidates, None))
        }
        SignatureSource::KvList {
            name,
            separator,
            timestamp_key,
            signature_key,
            groups,
        } => {
            let text = header_text(request, name, &missing, &none_decodes)?;
            let list: Vec<(&str, &str)> = if *groups {
                text.split_ascii_whitespace()
                    .flat_map(|group| parse_kv_list(group, *separator))
                    .collect()
            } else {
                parse_kv_list(text, *separator)
            };
            let timestamp = list
                .iter()
                .find(|(k, _)| !timestamp_key.is_empty() && k == timestamp_key)
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
        SignatureSource::Positional { name, separator } => {
            let text = header_text(request, name, &missing, &none_decodes)?;
            let mut elements = text.split(*separator).map(str::trim);
            let timestamp = elements.next().filter(|t| !t.is_empty());
            let candidates: Vec<Vec<u8>> = elements
                .filter_map(|sig| encoding::decode(encoding, sig))
                .collect();
            if candidates.is_empty() {
                return Err(none_decodes(format!(
                    "header {name} (a timestamp, then signatures, separated by {separator:?})"
                )));
            }
            Ok((candidates, timestamp))
        }
        SignatureSource::FormPairs(field) => {
            let value = form_urlencoded::parse(request.body)
                .find(|(k, _)| k == *field)
                .map(|(_, v)| v)
                .ok_or_else(|| missing(&format!("form field {field}")))?;
            let candidates: Vec<Vec<u8>> = value
                .split('&')
                .filter_map(|pair| pair.split_once('|'))
                .filter_map(|(_, sig)| encoding::decode(encoding, sig.trim()))
                .collect();
            if candidates.is_empty() {
                return Err(none_decodes(format!(
                    "form field {field} (public_key|signature pairs)"
                )));
            }
            Ok((candidates, None))
        }
        SignatureSource::Query(param) => {
            let query = request.uri.query().unwrap_or("");
            let value = form_urlencoded::parse(query.as_bytes())
                .find(|(k, _)| k == param.as_ref())
                .map(|(_, v)| v)
                .ok_or_else(|| missing(&format!("query parameter {param}")))?;
            let candidate = encoding::decode(encoding, value.trim())
                .ok_or_else(|| none_decodes(format!("query parameter {param}")))?;
            Ok((vec![candidate], None))
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
                None => return Err(missing(&Place::Json(pointer))),
                Some(serde_json::Value::String(s)) => s.as_str(),
                Some(_) => return Err(none_decodes(Place::Json(pointer).to_string())),
            };
            let candidate = encoding::decode(encoding, text)
                .ok_or_else(|| none_decodes(Place::Json(pointer).to_string()))?;
            Ok((vec![candidate], None))
        }
    }
}

/// The text of header `name`, or why there is none.
fn header_text<'r>(
    request: &RequestView<'r>,
    name: &HeaderName,
    missing: &dyn Fn(&dyn fmt::Display) -> Reject,
    none_decodes: &dyn Fn(String) -> Reject,
) -> Result<&'r str, Reject> {
    request
        .headers
        .get(name)
        .ok_or_else(|| missing(&format!("header {name}")))?
        .to_str()
        .map_err(|_| none_decodes(format!("header {name}")))
}

/// Every decoded signature in the values of `headers` (each value may hold
/// several, separated by commas or spaces, each optionally prefixed).
fn header_candidates(
    request: &RequestView<'_>,
    headers: &[HeaderName],
    prefix: &Option<Cow<'static, str>>,
    encoding: encoding::Encoding,
) -> Vec<Vec<u8>> {
    headers
        .iter()
        .flat_map(|header| request.headers.get_all(header))
        .filter_map(|value| value.to_str().ok())
        .flat_map(tokens)
        .filter_map(|token| {
            let token = match prefix {
                Some(prefix) => strip_prefix_ignore_case(token, prefix),
                None => token,
            };
            encoding::decode(encoding, token)
        })
        .collect()
}

/// The comma- or space-separated tokens of a header value, empty ones
/// skipped. Split as bytes, not characters (decoding each character cost
/// more than the rest of the split): the separators are ASCII, so every
/// token is still whole UTF-8.
fn tokens(text: &str) -> impl Iterator<Item = &str> {
    text.as_bytes()
        .split(|&b| b == b',' || b.is_ascii_whitespace())
        .filter(|token| !token.is_empty())
        .filter_map(|token| std::str::from_utf8(token).ok())
}

/// `" (optionally prefixed with "sha256=")"` when there is a prefix.
fn prefix_note(prefix: &Option<Cow<'static, str>>) -> String {
    match prefix {
        Some(p) => format!(" (optionally prefixed with {p:?})"),
        None => String::new(),
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

/// What the id is to a route, for the message when it is missing: an id
/// the signature covers, or only one the route requires (an `id_header`
/// the message does not use).
fn id_role(desc: &Description) -> &'static str {
    if template_needs_id(&desc.message) {
        "the signed id"
    } else {
        "the delivery id this route requires"
    }
}

fn malformed_timestamp(place: Place<'_>, unit: TimestampUnit) -> Reject {
    let detail = match unit {
        TimestampUnit::Rfc3339 => format!("{place} must be an RFC 3339 date-time"),
        _ => format!(
            "{place} must be an integer number of Unix {}",
            unit.as_str()
        ),
    };
    Reject::with(Reason::MalformedTimestamp, detail)
}

fn parse_timestamp<'t>(
    text: Cow<'t, str>,
    unit: TimestampUnit,
    place: Place<'_>,
) -> Result<(Cow<'t, str>, i64), Reject> {
    let seconds = unit
        .parse(&text)
        .ok_or_else(|| malformed_timestamp(place, unit))?;
    Ok((text, seconds))
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

/// `sha256=abc` and `SHA256=abc` both lose the prefix; text without it is
/// returned unchanged (the prefix is optional on the wire).
fn strip_prefix_ignore_case<'t>(text: &'t str, prefix: &str) -> &'t str {
    match text.get(..prefix.len()) {
        Some(head) if head.eq_ignore_ascii_case(prefix) => &text[prefix.len()..],
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn places_read_as_before_in_error_text() {
        let header = HeaderName::from_static("stripe-signature");
        assert_eq!(
            Place::ListEntry("t", &header).to_string(),
            "the t= entry of stripe-signature"
        );
        assert_eq!(Place::Json("/ts").to_string(), "the JSON body's /ts");
        assert_eq!(Place::Header(&header).to_string(), "stripe-signature");
    }
}
