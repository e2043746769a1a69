//! The scheme part of a route: `scheme`, the key material it verifies with
//! (`secrets`, or `public_keys` for the asymmetric presets), `public_url`
//! for presets that sign the URL, `verify_token` for Meta's handshake, and
//! `[routes.hmac]` for the generic HMAC scheme.
//!
//! Which scheme needs which of these is the registry's to say
//! ([`registry::SCHEMES`]); this module reads the generic ingredients, says
//! what is missing or out of place from the entry's flags, and hands the
//! rest to [`Entry::build`].

use super::reader::{as_section, closest_few, header_name, ConfigErrors, Section};
use super::route::is_label_safe;
use super::secrets::{read_source, SourceReader};
use super::Secret;
use crate::schemes::encoding::Encoding;
use crate::schemes::hmac::{self, Algorithm, HmacSpec, TimestampUnit};
use crate::schemes::registry::{self, BuildError, Entry, Family, Ingredients, KeyKind};
use crate::schemes::template::Template;
use crate::schemes::Scheme;

/// Reads the route's scheme and builds its verifier; `None` after recording
/// errors.
/// The ids of optional secrets that were not set are added to `skipped`.
pub(super) fn parse(
    s: &mut Section<'_>,
    sources: &mut SourceReader<'_>,
    skipped: &mut Vec<String>,
    errors: &mut ConfigErrors,
) -> Option<Box<dyn Scheme>> {
    let entry = match s.string("scheme", errors) {
        Some(name) => {
            let entry = registry::find(name);
            if entry.is_none() {
                errors.push(s.key("scheme"), unknown_scheme(name));
            }
            entry
        }
        None => {
            if !s.has("scheme") {
                errors.push(
                    s.key("scheme"),
                    "missing: \"hmac\" (described by [routes.hmac]), a provider preset such as \"stripe\" (the README's \"Provider presets\" lists them all), or \"none\"",
                );
            }
            None
        }
    };
    let keys = match entry {
        Some(entry) if entry.keys == KeyKind::None => {
            for key in ["secrets", "public_keys"] {
                if s.has(key) {
                    errors.push(
                        s.key(key),
                        format!(
                            "scheme {} verifies nothing, so it takes no keys; remove {key}",
                            entry.name
                        ),
                    );
                }
            }
            Some(Vec::new())
        }
        Some(entry) if entry.keys == KeyKind::PublicKeys => {
            if s.has("secrets") {
                errors.push(
                    s.key("secrets"),
                    format!(
                        "scheme {} verifies with public keys: use public_keys = [{{ file = \"...\" }}] instead",
                        entry.name
                    ),
                );
            }
            parse_secrets(s, "public_keys", sources, skipped, errors)
        }
        _ => {
            if let Some(entry) = entry {
                if s.has("public_keys") {
                    errors.push(
                        s.key("public_keys"),
                        format!(
                            "scheme {} verifies with secrets; public_keys is only for {}",
                            entry.name,
                            registry::names_where(|e| e.keys == KeyKind::PublicKeys).join(", ")
                        ),
                    );
                }
            }
            parse_secrets(s, "secrets", sources, skipped, errors)
        }
    };
    let public_url = parse_public_url(s, entry, errors);
    let verify_token = parse_verify_token(s, entry, sources, errors);
    let hmac = parse_hmac_table(s, entry, errors);
    let entry = entry?;
    let ingredients = Ingredients {
        keys: keys?
            .iter()
            .map(|secret| (secret.id.clone(), secret.expose().to_vec()))
            .collect(),
        public_url,
        verify_token,
        hmac,
    };
    match entry.build(ingredients) {
        Ok(scheme) => Some(scheme),
        // Each missing ingredient was reported where its key was read.
        Err(BuildError::Missing(_)) => None,
        Err(BuildError::Keys(failed)) => {
            let list = s.key(entry.keys.config_key());
            for error in failed {
                errors.push(format!("{list}[{}]", error.index), error.message);
            }
            None
        }
    }
}

/// The message for a `scheme` hookguard does not know: the closest known
/// names, or where the full list is when none is close (it is too long to
/// repeat: more than a hundred names).
fn unknown_scheme(name: &str) -> String {
    let names = registry::names_where(|_| true);
    let near = closest_few(name, names.iter().copied(), 3);
    let quoted: Vec<String> = near.iter().map(|n| format!("\"{n}\"")).collect();
    let hint = match quoted.as_slice() {
        [] => "none is close; the README's \"Provider presets\" lists them all, or use \"hmac\" with a [routes.hmac] table to describe the sender".to_owned(),
        [one] => format!("did you mean {one}?"),
        [rest @ .., last] => format!("did you mean {} or {last}?", rest.join(", ")),
    };
    format!(
        "{name:?} is not one of the {} schemes hookguard knows; {hint}",
        names.len()
    )
}

/// Reads `[routes.hmac]`: required by the generic scheme, refused by the
/// presets, which already say how they sign.
fn parse_hmac_table(
    s: &mut Section<'_>,
    scheme: Option<&Entry>,
    errors: &mut ConfigErrors,
) -> Option<HmacSpec> {
    let generic = |e: &Entry| matches!(e.family, Family::Generic);
    let Some(section) = s.table("hmac", errors) else {
        if let Some(scheme) = scheme.filter(|e| generic(e)) {
            if !s.has("hmac") {
                errors.push(
                    s.key("hmac"),
                    format!(
                        "missing: scheme = \"{}\" needs a [routes.hmac] table",
                        scheme.name
                    ),
                );
            }
        }
        return None;
    };
    match scheme {
        Some(scheme) if generic(scheme) => parse_hmac(section, errors),
        Some(scheme) => {
            errors.push(
                s.key("hmac"),
                format!(
                    "only for scheme = \"{}\"; the {} preset already says how it signs",
                    registry::names_where(generic).join("\" or \""),
                    scheme.name
                ),
            );
            None
        }
        // An unknown scheme is reported once, under `scheme`.
        None => None,
    }
}

/// Reads Meta's `verify_token = { env | file | value = ... }`: required by
/// `meta`, refused by every other scheme.
fn parse_verify_token(
    s: &mut Section<'_>,
    scheme: Option<&Entry>,
    sources: &mut SourceReader<'_>,
    errors: &mut ConfigErrors,
) -> Option<Vec<u8>> {
    let key = s.key("verify_token");
    let Some(mut entry) = s.table("verify_token", errors) else {
        if scheme.is_some_and(|e| e.needs_verify_token) && !s.has("verify_token") {
            errors.push(
                key,
                "missing: the verify token typed into Meta's dashboard, e.g. { env = \"META_VERIFY_TOKEN\" }",
            );
        }
        return None;
    };
    if let Some(scheme) = scheme.filter(|e| !e.needs_verify_token) {
        errors.push(
            key,
            format!(
                "scheme {} has no verify token; it is only for {}",
                scheme.name,
                registry::names_where(|e| e.needs_verify_token).join(", ")
            ),
        );
        return None;
    }
    let source = read_source(&mut entry, errors);
    entry.finish(errors);
    sources
        .resolve(&source?)
        .map_err(|message| errors.push(key, message))
        .ok()
}

/// Reads `public_url`: required by the schemes that sign the URL, refused
/// by the others. Host and `X-Forwarded-*` are never used instead: a sender
/// can set those, and the signed URL must be the one the provider was given.
fn parse_public_url(
    s: &mut Section<'_>,
    scheme: Option<&Entry>,
    errors: &mut ConfigErrors,
) -> Option<String> {
    let Some(text) = s.string("public_url", errors) else {
        if let Some(scheme) = scheme.filter(|e| e.signs_url) {
            if !s.has("public_url") {
                errors.push(
                    s.key("public_url"),
                    format!(
                        "missing: scheme {0} signs the URL it delivers to; set public_url to that URL exactly as registered with the provider, e.g. \"https://hooks.example.com/webhooks/{0}\"",
                        scheme.name
                    ),
                );
            }
        }
        return None;
    };
    if let Some(scheme) = scheme.filter(|e| !e.signs_url) {
        errors.push(
            s.key("public_url"),
            format!(
                "scheme {} does not sign the URL; public_url is only for {}",
                scheme.name,
                registry::names_where(|e| e.signs_url).join(", ")
            ),
        );
        return None;
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
    sources: &mut SourceReader<'_>,
    skipped: &mut Vec<String>,
    errors: &mut ConfigErrors,
) -> Option<Vec<Secret>> {
    let Some(items) = s.array(key, errors) else {
        if !s.has(key) {
            errors.push(
                s.key(key),
                if key == "public_keys" {
                    "missing: list the sender's public key as the provider publishes it, e.g. [{ env = \"DISCORD_PUBLIC_KEY\" }] or [{ file = \"/run/keys/sender.pem\" }]"
                } else {
                    "missing: list at least one, e.g. [{ env = \"WEBHOOK_SECRET\" }]"
                },
            );
        }
        return None;
    };
    if items.is_empty() {
        errors.push(
            s.key(key),
            if key == "public_keys" {
                "must list at least one public key"
            } else {
                "must list at least one secret"
            },
        );
        return None;
    }
    let mut secrets = Vec::new();
    let skipped_before = skipped.len();
    let mut ok = true;
    for (index, (path, item)) in items.into_iter().enumerate() {
        let Some(mut entry) = as_section(path.clone(), item, errors) else {
            ok = false;
            continue;
        };
        let source = read_source(&mut entry, errors);
        let optional = entry.boolean("optional", errors).unwrap_or(false);
        if optional && key != "secrets" {
            errors.push(
                entry.key("optional"),
                format!(
                    "only secrets can be optional; a missing entry of {key} is always an error"
                ),
            );
            ok = false;
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
        let Some(source) = source else {
            ok = false;
            continue;
        };
        let resolved = if optional {
            sources.resolve_optional(&source)
        } else {
            sources.resolve(&source).map(Some)
        };
        match resolved {
            Ok(None) => {
                // Retired or not yet rotated in: skipped, and said so.
                tracing::warn!(
                    secret = %path,
                    id = %id,
                    "optional secret is not set; skipped"
                );
                skipped.push(id);
            }
            Ok(Some(bytes)) => {
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
    if ok && secrets.is_empty() && skipped.len() > skipped_before {
        errors.push(
            s.key(key),
            format!(
                "every secret is optional and none is set ({}): a route needs at least one",
                skipped[skipped_before..].join(", ")
            ),
        );
        return None;
    }
    ok.then_some(secrets)
}

fn parse_hmac(mut s: Section<'_>, errors: &mut ConfigErrors) -> Option<HmacSpec> {
    let header = s.required(
        "header",
        "the header carrying the signature, e.g. \"X-Signature\"",
        header_name,
        errors,
    );
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
        Some(text) => s.checked("message", Template::parse(text), errors),
        None if s.has("message") => None,
        None => Some(Template::parse("{body}").expect("the default template parses")),
    };
    // `Err` when given but not a header name, so that the spec fails.
    let optional_header = |s: &mut Section<'_>, key: &str, errors: &mut ConfigErrors| {
        let name = s.header_name(key, errors);
        if name.is_none() && s.has(key) {
            Err(())
        } else {
            Ok(name)
        }
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
        timestamp_header: timestamp_header.ok()?,
        timestamp_unit,
        id_header: id_header.ok()?,
    })
}
