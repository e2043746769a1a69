//! The scheme part of a route: `scheme`, the key material it verifies with
//! (`secrets`, or `public_keys` for the asymmetric presets), `public_url`
//! for presets that sign the URL, and `[routes.hmac]` for the generic HMAC
//! scheme.
//!
//! Everything scheme-specific about reading a route lives here, so that a
//! new scheme family adds a branch here and a module under `schemes/`,
//! without touching the rest of route validation.

use super::reader::{as_section, ConfigErrors, Section};
use super::secrets::read_source;
use super::{header_name, is_label_safe, Env, Secret};
use crate::schemes::asymmetric::{self, AsymmetricScheme, Kind};
use crate::schemes::encoding::Encoding;
use crate::schemes::gitlab::GitlabScheme;
use crate::schemes::hmac::{self, Algorithm, HmacScheme, HmacSpec, TimestampUnit};
use crate::schemes::jwt::{self, JwtScheme};
use crate::schemes::meta::MetaScheme;
use crate::schemes::presets;
use crate::schemes::tbank::TbankScheme;
use crate::schemes::template::Template;
use crate::schemes::twilio::TwilioScheme;
use crate::schemes::Scheme;

/// Every accepted `scheme` value: the generic HMAC scheme, then the
/// provider presets.
pub const SCHEMES: &[&str] = &[
    "hmac",
    "stripe",
    "github",
    "slack",
    "shopify",
    "standard-webhooks",
    "twilio",
    "paddle",
    "square",
    "hubspot",
    "zoom",
    "calendly",
    "bitbucket",
    "typeform",
    "intercom",
    "linear",
    "gitlab",
    "mailgun",
    "tbank",
    "discord",
    "sendgrid",
    "tochka",
    "meta",
];

/// Schemes that verify with `public_keys` instead of `secrets`.
pub const PUBLIC_KEY_SCHEMES: &[&str] = &["discord", "sendgrid", "tochka"];

/// Schemes that sign the URL the sender was configured with, and so need
/// `public_url`.
const URL_SCHEMES: &[&str] = &["twilio", "square", "hubspot"];

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
    let asymmetric = name.is_some_and(|n| PUBLIC_KEY_SCHEMES.contains(&n));
    let secrets = match name {
        Some(n) if asymmetric => {
            if s.has("secrets") {
                errors.push(
                    s.key("secrets"),
                    format!(
                        "scheme {n} verifies with public keys: use public_keys = [{{ file = \"...\" }}] instead"
                    ),
                );
            }
            None
        }
        _ => {
            if let Some(n) = name {
                if s.has("public_keys") {
                    errors.push(
                        s.key("public_keys"),
                        format!(
                            "scheme {n} verifies with secrets; public_keys is only for {}",
                            PUBLIC_KEY_SCHEMES.join(", ")
                        ),
                    );
                }
            }
            parse_secrets(s, "secrets", env, errors)
        }
    };
    let public_keys = if asymmetric {
        parse_secrets(s, "public_keys", env, errors)
    } else {
        None
    };
    let public_url = parse_public_url(s, name, errors);
    let verify_token = parse_verify_token(s, name, env, errors);
    let hmac_spec = match s.table("hmac", errors) {
        Some(section) if name == Some("hmac") => parse_hmac(section, errors),
        Some(_) => {
            if let Some(n) = name {
                errors.push(
                    s.key("hmac"),
                    format!("only for scheme = \"hmac\"; the {n} preset already says how it signs"),
                );
            }
            None
        }
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
    let name = name?;
    let secrets_key = s.key("secrets");
    let public_keys_key = s.key("public_keys");
    let scheme: Box<dyn Scheme> = match name {
        "hmac" => Box::new(HmacScheme::new(hmac_spec?, raw_keys(&secrets?))),
        "twilio" => Box::new(TwilioScheme::new(public_url?, raw_keys(&secrets?))),
        "gitlab" => Box::new(GitlabScheme::new(raw_keys(&secrets?))),
        "tbank" => {
            let mut keys = Vec::new();
            for (j, secret) in secrets?.iter().enumerate() {
                match std::str::from_utf8(secret.expose()) {
                    Ok(text) => keys.push((secret.id.clone(), text.to_owned())),
                    Err(_) => errors.push(
                        format!("{secrets_key}[{j}]"),
                        "a T-Bank terminal password is text (it is hashed as UTF-8)",
                    ),
                }
            }
            Box::new(TbankScheme::new(keys))
        }
        "discord" => {
            let keys = decode_keys(
                &public_keys?,
                &public_keys_key,
                asymmetric::parse_ed25519,
                errors,
            )?;
            Box::new(AsymmetricScheme::new(Kind::Discord, keys))
        }
        "sendgrid" => {
            let keys = decode_keys(
                &public_keys?,
                &public_keys_key,
                asymmetric::parse_p256,
                errors,
            )?;
            Box::new(AsymmetricScheme::new(Kind::Sendgrid, keys))
        }
        "tochka" => {
            let keys = decode_keys(&public_keys?, &public_keys_key, jwt::parse_rsa, errors)?;
            Box::new(JwtScheme::new(keys))
        }
        "meta" => {
            let desc = presets::description("meta", None).expect("meta is a preset");
            let deliveries = HmacScheme::with_keys(desc, raw_keys(&secrets?));
            Box::new(MetaScheme::new(deliveries, &verify_token?))
        }
        preset => {
            let desc = presets::description(preset, public_url)
                .unwrap_or_else(|| unreachable!("{preset} is in SCHEMES but has no builder"));
            let mut keys = Vec::new();
            for (j, secret) in secrets?.iter().enumerate() {
                match desc.key_form.key(secret.expose()) {
                    Ok(key) => keys.push((secret.id.clone(), key)),
                    Err(message) => errors.push(format!("{secrets_key}[{j}]"), message),
                }
            }
            Box::new(HmacScheme::with_keys(desc, keys))
        }
    };
    Some(scheme)
}

/// Reads Meta's `verify_token = { env | file | value = ... }`: required by
/// `meta`, refused by every other scheme.
fn parse_verify_token(
    s: &mut Section<'_>,
    name: Option<&str>,
    env: &dyn Env,
    errors: &mut ConfigErrors,
) -> Option<Vec<u8>> {
    let key = s.key("verify_token");
    let Some(mut entry) = s.table("verify_token", errors) else {
        if name == Some("meta") && !s.has("verify_token") {
            errors.push(
                key,
                "missing: the verify token typed into Meta's dashboard, e.g. { env = \"META_VERIFY_TOKEN\" }",
            );
        }
        return None;
    };
    if let Some(n) = name.filter(|n| *n != "meta") {
        errors.push(
            key,
            format!("scheme {n} has no verify token; it is only for meta"),
        );
        return None;
    }
    let source = read_source(&mut entry, errors);
    entry.finish(errors);
    source?
        .resolve(env)
        .map_err(|message| errors.push(key, message))
        .ok()
}

fn raw_keys(secrets: &[Secret]) -> Vec<(String, Vec<u8>)> {
    secrets
        .iter()
        .map(|s| (s.id.clone(), s.expose().to_vec()))
        .collect()
}

/// Decodes each public key, recording an error naming `key[j]` for each
/// that does not decode.
fn decode_keys<K>(
    sources: &[Secret],
    key: &str,
    parse: fn(&[u8]) -> Result<K, String>,
    errors: &mut ConfigErrors,
) -> Option<Vec<(String, K)>> {
    let mut keys = Vec::new();
    let mut ok = true;
    for (j, source) in sources.iter().enumerate() {
        match parse(source.expose()) {
            Ok(k) => keys.push((source.id.clone(), k)),
            Err(message) => {
                errors.push(format!("{key}[{j}]"), message);
                ok = false;
            }
        }
    }
    ok.then_some(keys)
}

/// Reads `public_url`: required by the schemes that sign the URL, refused
/// by the others. Host and `X-Forwarded-*` are never used instead: a sender
/// can set those, and the signed URL must be the one the provider was given.
fn parse_public_url(
    s: &mut Section<'_>,
    name: Option<&str>,
    errors: &mut ConfigErrors,
) -> Option<String> {
    let needs = name.is_some_and(|n| URL_SCHEMES.contains(&n));
    let Some(text) = s.string("public_url", errors) else {
        if needs && !s.has("public_url") {
            errors.push(
                s.key("public_url"),
                format!(
                    "missing: scheme {} signs the URL it delivers to; set public_url to that URL exactly as registered with the provider, e.g. \"https://hooks.example.com/webhooks/{}\"",
                    name.unwrap_or_default(),
                    name.unwrap_or_default()
                ),
            );
        }
        return None;
    };
    if let Some(n) = name {
        if !needs {
            errors.push(
                s.key("public_url"),
                format!(
                    "scheme {n} does not sign the URL; public_url is only for {}",
                    URL_SCHEMES.join(", ")
                ),
            );
            return None;
        }
    }
    let valid = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"))
        .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'));
    if !valid || text.parse::<http::Uri>().is_err() {
        errors.push(
            s.key("public_url"),
            format!("{text:?} is not an absolute http(s) URL, e.g. \"https://hooks.example.com/twilio\""),
        );
        return None;
    }
    if text.contains('?') || text.contains('#') {
        errors.push(
            s.key("public_url"),
            format!(
                "{text:?}: leave the query out; the query each request arrives with is appended"
            ),
        );
        return None;
    }
    Some(text.to_owned())
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
        let source = read_source(&mut entry, errors);
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
        let Some(source) = source else {
            ok = false;
            continue;
        };
        match source.resolve(env) {
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
