//! The scheme part of a route: `scheme`, the key material it verifies with,
//! and its own table (`[routes.hmac]` for the generic HMAC scheme).
//!
//! Everything scheme-specific about reading a route lives here, so that a
//! new scheme family adds a branch here and a module under `schemes/`,
//! without touching the rest of route validation.

use super::reader::{self, as_section, ConfigErrors, Section};
use super::{header_name, is_label_safe, Env, Secret, Source};
use crate::schemes::encoding::Encoding;
use crate::schemes::hmac::{self, Algorithm, HmacScheme, HmacSpec, TimestampUnit};
use crate::schemes::template::Template;
use crate::schemes::Scheme;

/// Every accepted `scheme` value.
const SCHEMES: &[&str] = &["hmac"];

/// Reads the route's scheme and builds its verifier; `None` after recording
/// errors.
pub(super) fn parse(
    s: &mut Section<'_>,
    env: &dyn Env,
    errors: &mut ConfigErrors,
) -> Option<Box<dyn Scheme>> {
    let name = s.choice("scheme", SCHEMES, errors);
    if !s.has("scheme") {
        errors.push(
            s.key("scheme"),
            format!("missing: one of {}", SCHEMES.join(", ")),
        );
    }
    let secrets = parse_secrets(s, "secrets", env, errors);
    let hmac_spec = match s.table("hmac", errors) {
        Some(section) => parse_hmac(section, errors),
        None => {
            if name == Some("hmac") && !s.has("hmac") {
                errors.push(
                    s.key("hmac"),
                    "missing: scheme = \"hmac\" needs a [routes.hmac] table",
                );
            }
            None
        }
    };
    match name? {
        "hmac" => Some(Box::new(HmacScheme::new(hmac_spec?, &secrets?))),
        other => unreachable!("{other} is in SCHEMES but has no builder"),
    }
}

/// Reads a list of key sources (`secrets`, and for asymmetric schemes
/// `public_keys`) and resolves each one.
pub(super) fn parse_secrets(
    s: &mut Section<'_>,
    key: &str,
    env: &dyn Env,
    errors: &mut ConfigErrors,
) -> Option<Vec<Secret>> {
    let Some(items) = s.array(key, errors) else {
        if !s.has(key) {
            errors.push(
                s.key(key),
                "missing: list at least one, e.g. [{ env = \"WEBHOOK_SECRET\" }]",
            );
        }
        return None;
    };
    if items.is_empty() {
        errors.push(s.key(key), "must list at least one secret");
        return None;
    }
    let mut secrets = Vec::new();
    let mut ok = true;
    for (index, (path, item)) in items.into_iter().enumerate() {
        let Some(mut entry) = as_section(path.clone(), item, errors) else {
            ok = false;
            continue;
        };
        let mut sources = Vec::new();
        if let Some(name) = entry.string("env", errors) {
            sources.push(Source::Env(name.to_owned()));
        }
        if let Some(file) = entry.string("file", errors) {
            sources.push(Source::File(file.to_owned()));
        }
        // A literal's value is read without `string`, so that a type error
        // message cannot hint at its content.
        if let Some(value) = entry.raw("value") {
            match value {
                toml::Value::String(text) => sources.push(Source::Value(text.clone())),
                other => errors.push(
                    entry.key("value"),
                    format!("expected a string, found {}", reader::describe(other)),
                ),
            }
        }
        let id = match entry.string("id", errors) {
            Some(id) if is_label_safe(id) => id.to_owned(),
            Some(id) => {
                errors.push(
                    entry.key("id"),
                    format!(
                        "{id:?} must be 1 to 64 characters of letters, digits, '-', '_' or '.'"
                    ),
                );
                ok = false;
                String::new()
            }
            None => index.to_string(),
        };
        entry.finish(errors);
        if sources.len() != 1 {
            errors.push(
                path.clone(),
                "give exactly one of env = \"VAR\", file = \"/path\" or value = \"...\"",
            );
            ok = false;
            continue;
        }
        match sources[0].resolve(env) {
            Ok(bytes) => {
                if secrets.iter().any(|s: &Secret| s.id == id) {
                    errors.push(path, format!("id {id:?} is used twice"));
                    ok = false;
                } else {
                    secrets.push(Secret::new(id, bytes));
                }
            }
            Err(message) => {
                errors.push(path, message);
                ok = false;
            }
        }
    }
    ok.then_some(secrets)
}

fn parse_hmac(mut s: Section<'_>, errors: &mut ConfigErrors) -> Option<HmacSpec> {
    let header = match s.string("header", errors) {
        Some(h) => header_name(h)
            .map_err(|m| errors.push(s.key("header"), m))
            .ok(),
        None => {
            if !s.has("header") {
                errors.push(
                    s.key("header"),
                    "missing: the header carrying the signature, e.g. \"X-Signature\"",
                );
            }
            None
        }
    };
    let prefix = s.string("prefix", errors).map(str::to_owned);
    let algorithm = match s.choice("algorithm", &["sha1", "sha256", "sha512"], errors) {
        Some("sha1") => Some(Algorithm::Sha1),
        Some("sha512") => Some(Algorithm::Sha512),
        Some(_) => Some(Algorithm::Sha256),
        None if s.has("algorithm") => None,
        None => Some(Algorithm::Sha256),
    };
    let encoding = match s.choice("encoding", &["hex", "base64"], errors) {
        Some("base64") => Some(Encoding::Base64),
        Some(_) => Some(Encoding::Hex),
        None if s.has("encoding") => None,
        None => Some(Encoding::Hex),
    };
    let message = match s.string("message", errors) {
        Some(text) => Template::parse(text)
            .map_err(|m| errors.push(s.key("message"), m))
            .ok(),
        None if s.has("message") => None,
        None => Some(Template::parse("{body}").expect("the default template parses")),
    };
    let optional_header = |s: &mut Section<'_>, key: &str, errors: &mut ConfigErrors| {
        s.string(key, errors)
            .map(|h| header_name(h).map_err(|m| errors.push(s.key(key), m)))
    };
    let timestamp_header = optional_header(&mut s, "timestamp_header", errors);
    let timestamp_unit = match s.choice("timestamp_unit", &["s", "ms"], errors) {
        Some("ms") => TimestampUnit::Millis,
        _ => TimestampUnit::Seconds,
    };
    let id_header = optional_header(&mut s, "id_header", errors);
    if let Some(template) = &message {
        if hmac::template_needs_timestamp(template) && !s.has("timestamp_header") {
            errors.push(
                s.key("message"),
                "uses {timestamp} but timestamp_header is not set",
            );
        }
        if hmac::template_needs_id(template) && !s.has("id_header") {
            errors.push(s.key("message"), "uses {id} but id_header is not set");
        }
    }
    s.finish(errors);
    Some(HmacSpec {
        header: header?,
        prefix,
        algorithm: algorithm?,
        encoding: encoding?,
        message: message?,
        timestamp_header: timestamp_header.transpose().ok()?,
        timestamp_unit,
        id_header: id_header.transpose().ok()?,
    })
}
