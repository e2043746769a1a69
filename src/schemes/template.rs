//! The signed-message template of the generic HMAC scheme.
//!
//! `message = "{body}.{timestamp}"` describes what the sender fed into its
//! MAC. The template is parsed once at config load into [`Part`]s, and at
//! request time each part is fed straight into the MAC: the body is never
//! copied into a concatenated message.

use http::header::HeaderName;

use crate::reject::{Reason, Reject};

/// One piece of the signed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Text written literally in the template.
    Literal(Box<str>),
    /// The raw request body.
    Body,
    /// The timestamp header's value, exactly as sent.
    Timestamp,
    /// The id header's value.
    Id,
    /// The request method (`POST`).
    Method,
    /// The request path with its query string, as received.
    Path,
    /// Any request header's value.
    Header(HeaderName),
    /// The route's `public_url` with the received query string: what senders
    /// that sign the URL (Square, HubSpot) were configured with. Presets only.
    Url,
    /// A value in the JSON body, by JSON pointer: a string's contents or a
    /// number's text (Mailgun signs `signature.timestamp` and `.token`).
    /// Presets only.
    Json(Box<str>),
    /// As [`Part::Json`], but an absent value (or `null`) is the empty
    /// string: Adyen signs eight fields of a notification item and writes
    /// a missing `originalReference` as nothing. Presets only.
    JsonOrEmpty(Box<str>),
    /// One field of a form body, decoded (Braintree signs `bt_payload`).
    /// Presets only.
    FormField(Box<str>),
    /// The form body's parameters as Twilio and Mandrill concatenate them:
    /// decoded, sorted, each name followed by its value
    /// ([`super::twilio::canonical_params`]). Presets only.
    Form,
}

/// A parsed message template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
    /// The template as written, for messages.
    source: Box<str>,
}

impl std::fmt::Display for Template {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.source)
    }
}

/// The request values a template may refer to.
#[derive(Debug, Clone, Copy)]
pub struct Values<'a> {
    /// The request method.
    pub method: &'a str,
    /// Path and query as received.
    pub path: &'a str,
    /// The body bytes.
    pub body: &'a [u8],
    /// The timestamp text, when the scheme has a timestamp header.
    pub timestamp: Option<&'a str>,
    /// The id text, when the scheme has an id header.
    pub id: Option<&'a str>,
    /// All request headers, for `{header:Name}`.
    pub headers: &'a http::HeaderMap,
    /// The public URL the sender signed, for schemes that sign it.
    pub url: Option<&'a str>,
    /// The parsed JSON body, for schemes that sign values inside it.
    pub json: Option<&'a serde_json::Value>,
}

const PLACEHOLDERS: &str = "{body}, {timestamp}, {id}, {method}, {path}, {header:Name}";

impl Template {
    /// Parses a template; the error says which placeholder is wrong.
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Literal(rest[..open].into()));
            }
            let after = &rest[open + 1..];
            let close = after
                .find('}')
                .ok_or_else(|| format!("{text:?} has a \"{{\" that is never closed"))?;
            let name = &after[..close];
            parts.push(match name {
                "body" => Part::Body,
                "timestamp" => Part::Timestamp,
                "id" => Part::Id,
                "method" => Part::Method,
                "path" => Part::Path,
                _ => match name.strip_prefix("header:") {
                    Some(header) => {
                        Part::Header(HeaderName::from_bytes(header.as_bytes()).map_err(|_| {
                            format!("{text:?}: {header:?} is not a valid header name")
                        })?)
                    }
                    None => {
                        return Err(format!(
                            "{text:?}: unknown placeholder {{{name}}}; use {PLACEHOLDERS}"
                        ))
                    }
                },
            });
            rest = &after[close + 1..];
        }
        if rest.contains('}') {
            return Err(format!("{text:?} has a \"}}\" without a matching \"{{\""));
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.into()));
        }
        if parts.is_empty() {
            return Err("the message template is empty; use at least {body}".to_owned());
        }
        Ok(Template {
            parts,
            source: text.into(),
        })
    }

    /// Builds a template from parts, for presets (which may use parts the
    /// config syntax does not offer); `source` is how it is described.
    pub fn from_parts(source: &str, parts: Vec<Part>) -> Template {
        Template {
            parts,
            source: source.into(),
        }
    }

    /// True when any part reads the JSON body.
    pub fn uses_json(&self) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, Part::Json(_) | Part::JsonOrEmpty(_)))
    }

    /// True when the template contains `part`.
    pub fn uses(&self, part: &Part) -> bool {
        self.parts.contains(part)
    }

    /// The parsed parts, in order.
    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// Feeds the message, piece by piece, to `sink`.
    ///
    /// Fails only when a `{header:Name}` header is absent; `{timestamp}` and
    /// `{id}` are checked by the scheme before, since their absence has its
    /// own reasons.
    pub fn feed(&self, values: &Values<'_>, sink: &mut dyn FnMut(&[u8])) -> Result<(), Reject> {
        for part in &self.parts {
            match part {
                Part::Literal(text) => sink(text.as_bytes()),
                Part::Body => sink(values.body),
                Part::Timestamp => sink(values.timestamp.unwrap_or_default().as_bytes()),
                Part::Id => sink(values.id.unwrap_or_default().as_bytes()),
                Part::Method => sink(values.method.as_bytes()),
                Part::Path => sink(values.path.as_bytes()),
                Part::Header(name) => match values.headers.get(name) {
                    Some(value) => sink(value.as_bytes()),
                    None => {
                        return Err(Reject::with(
                            Reason::MissingSignedHeader,
                            format!("header {name} is part of the signed message but is missing"),
                        ))
                    }
                },
                Part::Url => sink(values.url.unwrap_or_default().as_bytes()),
                Part::Form => sink(super::twilio::canonical_params(values.body).as_bytes()),
                Part::FormField(field) => {
                    match form_urlencoded::parse(values.body).find(|(k, _)| k == field.as_ref()) {
                        Some((_, value)) => sink(value.as_bytes()),
                        None => {
                            return Err(Reject::with(
                                Reason::MissingSignedHeader,
                                format!(
                                "the form body has no field {field}, which is the signed message"
                            ),
                            ))
                        }
                    }
                }
                Part::Json(pointer) | Part::JsonOrEmpty(pointer) => {
                    match values.json.and_then(|doc| doc.pointer(pointer)) {
                        Some(serde_json::Value::String(text)) => sink(text.as_bytes()),
                        Some(value @ serde_json::Value::Number(_)) => {
                            sink(value.to_string().as_bytes())
                        }
                        None | Some(serde_json::Value::Null)
                            if matches!(part, Part::JsonOrEmpty(_)) => {}
                        _ => {
                            return Err(Reject::with(
                                Reason::MissingSignedHeader,
                                format!(
                                    "the JSON body has no string or number at {pointer}, which is part of the signed message"
                                ),
                            ))
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(template: &str, headers: &http::HeaderMap) -> Result<Vec<u8>, Reject> {
        let t = Template::parse(template).unwrap();
        let mut out = Vec::new();
        let values = Values {
            method: "POST",
            path: "/hook?x=1",
            body: b"{\"a\":1}",
            timestamp: Some("1700000000"),
            id: Some("msg_1"),
            headers,
            url: None,
            json: None,
        };
        t.feed(&values, &mut |b| out.extend_from_slice(b))?;
        Ok(out)
    }

    #[test]
    fn renders_every_placeholder_in_order() {
        let mut headers = http::HeaderMap::new();
        headers.insert("x-tenant", "acme".parse().unwrap());
        let out = render(
            "{id}.{timestamp}.{body}|{method} {path}|{header:X-Tenant}",
            &headers,
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "msg_1.1700000000.{\"a\":1}|POST /hook?x=1|acme"
        );
    }

    #[test]
    fn body_alone_is_just_the_body() {
        let out = render("{body}", &http::HeaderMap::new()).unwrap();
        assert_eq!(out, b"{\"a\":1}");
    }

    #[test]
    fn a_missing_signed_header_is_its_own_reason() {
        let err = render("{header:X-Tenant}{body}", &http::HeaderMap::new()).unwrap_err();
        assert_eq!(err.reason, Reason::MissingSignedHeader);
        assert!(err.detail.contains("x-tenant"));
    }

    #[test]
    fn parse_errors_name_the_problem() {
        assert!(Template::parse("{bdy}")
            .unwrap_err()
            .contains("unknown placeholder {bdy}"));
        assert!(Template::parse("{body")
            .unwrap_err()
            .contains("never closed"));
        assert!(Template::parse("body}")
            .unwrap_err()
            .contains("without a matching"));
        assert!(Template::parse("").unwrap_err().contains("empty"));
        assert!(Template::parse("{header:bad name}")
            .unwrap_err()
            .contains("not a valid header name"));
    }

    #[test]
    fn uses_reports_placeholders() {
        let t = Template::parse("{body}.{timestamp}").unwrap();
        assert!(t.uses(&Part::Timestamp));
        assert!(!t.uses(&Part::Id));
    }
}
