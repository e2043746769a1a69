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
use crate::schemes::challenge::Learn;
use crate::schemes::encoding::Encoding;
use crate::schemes::fetched::TestOrigin;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use std::borrow::Cow;
use std::path::PathBuf;

use crate::schemes::hmac::{
    self, Algorithm, AlgorithmHeader, HmacSpec, KeyForm, SignatureSource, TimestampSource,
    TimestampUnit,
};
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
    let learn = parse_learn(s, entry, sources, errors);
    let keys = match entry {
        Some(entry) if matches!(entry.keys, KeyKind::None | KeyKind::Certificate) => {
            for key in ["secrets", "public_keys"] {
                if s.has(key) {
                    let why = match entry.keys {
                        KeyKind::None => "verifies nothing, so it takes no keys",
                        _ => "verifies with the certificate each request names (fetched from the sender's own hosts only), so it takes no keys",
                    };
                    errors.push(
                        s.key(key),
                        format!("scheme {} {why}; remove {key}", entry.name),
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
            // A route that learns its secret may start with none.
            if learn.is_some() && !s.has("secrets") {
                Some(Vec::new())
            } else {
                parse_secrets(s, "secrets", sources, skipped, errors)
            }
        }
    };
    let keys = keys.map(|mut keys| {
        if let Some((_, Some(secret))) = &learn {
            keys.push(Secret::new(LEARNED_ID.to_owned(), secret.clone()));
        }
        keys
    });
    let public_url = parse_public_url(s, entry, errors);
    let verify_token = parse_verify_token(s, entry, sources, errors);
    let hmac = parse_hmac_table(s, entry, errors);
    let webhook_id = parse_webhook_id(s, entry, errors);
    let topic_arns = parse_topic_arns(s, entry, errors);
    let test_origin = parse_test_origin(s, entry, errors);
    let entry = entry?;
    let ingredients = Ingredients {
        keys: keys?
            .iter()
            .map(|secret| (secret.id.clone(), secret.expose().to_vec()))
            .collect(),
        public_url,
        verify_token,
        hmac,
        webhook_id,
        topic_arns,
        test_origin,
        learn: learn.map(|(path, _)| Learn::new(path)),
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

/// ngrok `verify-webhook` ids with no signature to verify, so no preset
/// (the research catalogue's group C): a user coming from ngrok's list gets
/// the reason instead of a list of near names.
const NOT_VERIFIABLE: &[(&str, &str)] = &[
    (
        "vmware",
        "VMware Workspace ONE signs nothing; it sends HTTP basic auth (ngrok's secret for it is \"username::password\"), which hookguard does not check",
    ),
    (
        "orbit",
        "Orbit (orbit.love) closed in 2024 and sends no webhooks",
    ),
];

/// The message for a `scheme` hookguard does not know: the closest known
/// names, or where the full list is when none is close (it is too long to
/// repeat: more than a hundred names).
fn unknown_scheme(name: &str) -> String {
    if let Some((_, why)) = NOT_VERIFIABLE.iter().find(|(id, _)| *id == name) {
        return format!("{name:?} cannot be verified by a signature: {why}");
    }
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

/// Reads `webhook_id`: PayPal's id for the webhook, which it signs (the
/// dashboard's "Webhook ID"); required by `paypal`, refused by the others.
/// Not a secret: it names the webhook, it proves nothing by itself.
fn parse_webhook_id(
    s: &mut Section<'_>,
    scheme: Option<&Entry>,
    errors: &mut ConfigErrors,
) -> Option<String> {
    let Some(text) = s.string("webhook_id", errors) else {
        if scheme.is_some_and(|e| e.needs_webhook_id) && !s.has("webhook_id") {
            errors.push(
                s.key("webhook_id"),
                "missing: PayPal's id for this webhook, as its developer dashboard shows it under the webhook's URL (e.g. \"8PT597110X687430LKGECATA\"); PayPal signs it",
            );
        }
        return None;
    };
    if let Some(scheme) = scheme.filter(|e| !e.needs_webhook_id) {
        errors.push(
            s.key("webhook_id"),
            format!(
                "scheme {} does not sign a webhook id; webhook_id is only for {}",
                scheme.name,
                registry::names_where(|e| e.needs_webhook_id).join(", ")
            ),
        );
        return None;
    }
    let valid = !text.is_empty()
        && text.len() <= 64
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid {
        errors.push(
            s.key("webhook_id"),
            format!("{text:?} is not a PayPal webhook id (letters and digits, up to 64)"),
        );
        return None;
    }
    Some(text.to_owned())
}

/// The id of a secret read from `learn_secret_file`.
const LEARNED_ID: &str = "learned";

/// Reads `learn_secret_file`: where a route whose sender makes the secret
/// and sends it in its setup request (Asana's handshake, Notion's
/// verification) writes it once, and from which it then reads it as the
/// secret `learned`. Refused for the other schemes.
fn parse_learn(
    s: &mut Section<'_>,
    scheme: Option<&Entry>,
    sources: &mut SourceReader<'_>,
    errors: &mut ConfigErrors,
) -> Option<(PathBuf, Option<Vec<u8>>)> {
    const KEY: &str = "learn_secret_file";
    let path = s.string(KEY, errors)?;
    let learners = registry::names_that_learn();
    if let Some(scheme) = scheme.filter(|e| !learners.contains(&e.name)) {
        errors.push(
            s.key(KEY),
            format!(
                "scheme {} sends no secret in its setup request; {KEY} is only for {}",
                scheme.name,
                learners.join(", ")
            ),
        );
        return None;
    }
    if path.is_empty() {
        errors.push(
            s.key(KEY),
            "is empty: give the file to learn the secret into",
        );
        return None;
    }
    if matches!(
        s.raw("answer_challenges"),
        Some(toml::Value::Boolean(false))
    ) {
        errors.push(
            s.key(KEY),
            "learns from the setup request, which answer_challenges = false leaves unanswered: remove one of them",
        );
        return None;
    }
    match sources.learned(path) {
        Ok(secret) => Some((PathBuf::from(path), secret)),
        Err(message) => {
            errors.push(s.key(KEY), message);
            None
        }
    }
}

/// Reads `topic_arns`: the SNS topics a route accepts (AWS: "reject any
/// message with an unexpected TopicArn"); required by `sns`, refused by
/// the others.
fn parse_topic_arns(
    s: &mut Section<'_>,
    scheme: Option<&Entry>,
    errors: &mut ConfigErrors,
) -> Option<Vec<String>> {
    const KEY: &str = "topic_arns";
    let Some(list) = s.strings(KEY, errors) else {
        if scheme.is_some_and(|e| e.needs_topic_arns) && !s.has(KEY) {
            errors.push(
                s.key(KEY),
                "missing: the ARNs of the SNS topics this route accepts, as the SNS console shows them (e.g. [\"arn:aws:sns:us-east-1:123456789012:orders\"]); any AWS account can sign messages from a topic of its own",
            );
        }
        return None;
    };
    if let Some(scheme) = scheme.filter(|e| !e.needs_topic_arns) {
        errors.push(
            s.key(KEY),
            format!(
                "scheme {} has no topics; {KEY} is only for {}",
                scheme.name,
                registry::names_where(|e| e.needs_topic_arns).join(", ")
            ),
        );
        return None;
    }
    if list.is_empty() {
        errors.push(s.key(KEY), "is empty: list at least one topic ARN");
        return None;
    }
    let mut ok = true;
    for (i, arn) in list.iter().enumerate() {
        // arn:partition:sns:region:account:name (docs.aws.amazon.com/IAM/
        // latest/UserGuide/reference-arns.html).
        let parts: Vec<&str> = arn.split(':').collect();
        let valid = parts.len() == 6
            && parts[0] == "arn"
            && parts[2] == "sns"
            && parts.iter().all(|p| !p.is_empty())
            && parts[4].len() == 12
            && parts[4].bytes().all(|b| b.is_ascii_digit());
        if !valid {
            ok = false;
            errors.push(
                format!("{}[{i}]", s.key(KEY)),
                format!("{arn:?} is not an SNS topic ARN (arn:aws:sns:<region>:<12-digit account>:<topic>)"),
            );
        }
    }
    ok.then(|| list.into_iter().map(str::to_owned).collect())
}

/// Reads `unsafe_cert_source = { origin, ca_file }`: for tests only, it
/// lets certificates come from one loopback origin and chain to a local
/// CA. Any origin that is not `https://` on a loopback address is refused,
/// so it can never widen the pin to another host.
fn parse_test_origin(
    s: &mut Section<'_>,
    scheme: Option<&Entry>,
    errors: &mut ConfigErrors,
) -> Option<TestOrigin> {
    const KEY: &str = "unsafe_cert_source";
    let mut t = s.table(KEY, errors)?;
    if let Some(scheme) = scheme.filter(|e| e.keys != KeyKind::Certificate) {
        errors.push(
            s.key(KEY),
            format!(
                "scheme {} fetches no certificates; {KEY} is only for {}",
                scheme.name,
                registry::names_where(|e| e.keys == KeyKind::Certificate).join(", ")
            ),
        );
        return None;
    }
    let origin = t.string("origin", errors).and_then(|origin| {
        let authority = origin
            .strip_prefix("https://")
            .filter(|rest| !rest.contains(['/', '@']))
            .and_then(|rest| rest.parse::<http::uri::Authority>().ok())
            .filter(|a| {
                let host = a.host().trim_start_matches('[').trim_end_matches(']');
                a.port_u16().is_some()
                    && host
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback())
            });
        if authority.is_none() {
            errors.push(
                t.key("origin"),
                format!("{origin:?} is not https:// on a loopback address with a port (e.g. \"https://127.0.0.1:8443\"); this test-only override never names another host"),
            );
        }
        authority.map(|a| a.as_str().to_owned())
    });
    let roots = t.string("ca_file", errors).and_then(|file| {
        match CertificateDer::pem_file_iter(file).and_then(|c| c.collect::<Result<Vec<_>, _>>()) {
            Ok(certs) if !certs.is_empty() => Some(certs),
            Ok(_) => {
                errors.push(t.key("ca_file"), format!("{file} holds no PEM certificate"));
                None
            }
            Err(e) => {
                errors.push(t.key("ca_file"), format!("cannot read {file}: {e}"));
                None
            }
        }
    });
    t.finish(errors);
    Some(TestOrigin {
        authority: origin?,
        roots: roots?,
    })
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

/// The hashes `algorithm` and `algorithms` accept. MD5 is for the senders
/// that still use it, and documented as weak.
const ALGORITHMS: &[&str] = &["sha1", "sha256", "sha512", "md5"];

fn algorithm(name: &str) -> Algorithm {
    match name {
        "sha1" => Algorithm::Sha1,
        "sha512" => Algorithm::Sha512,
        "md5" => Algorithm::Md5,
        _ => Algorithm::Sha256,
    }
}

/// Reads a `[routes.hmac]` table (and the same keys in an egress route's
/// `[egress.routes.sign]`), finishing it.
pub(super) fn parse_hmac(mut s: Section<'_>, errors: &mut ConfigErrors) -> Option<HmacSpec> {
    let mut ok = true;
    let signature = parse_signature_source(&mut s, errors);
    let (algorithm, algorithm_from) = parse_algorithm(&mut s, errors);
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
    let timestamp_unit = match s.choice("timestamp_unit", &["s", "ms", "rfc3339"], errors) {
        Some("ms") => TimestampUnit::Millis,
        Some("rfc3339") => TimestampUnit::Rfc3339,
        _ => TimestampUnit::Seconds,
    };
    let id_header = optional_header(&mut s, "id_header", errors);
    let key_form = match s.choice("key_encoding", &["raw", "hex", "base64"], errors) {
        Some("hex") => KeyForm::Hex("hex text, as key_encoding = \"hex\" says"),
        Some("base64") => KeyForm::Base64("base64 text, as key_encoding = \"base64\" says"),
        _ => KeyForm::Raw,
    };
    let window = s.boolean("window", errors).unwrap_or(true);
    // The timestamp: its own header, or the list's.
    let list_timestamp = match &signature {
        Some(SignatureSource::KvList { timestamp_key, .. }) => !timestamp_key.is_empty(),
        Some(SignatureSource::Positional { .. }) => true,
        _ => false,
    };
    let timestamp = match (&timestamp_header, list_timestamp) {
        (Ok(Some(_)), true) => {
            errors.push(
                s.key("timestamp_header"),
                "the list already carries the timestamp; remove timestamp_header",
            );
            ok = false;
            None
        }
        (Ok(Some(header)), false) => Some(TimestampSource::Header(
            vec![header.clone()],
            timestamp_unit,
        )),
        (_, true) => Some(TimestampSource::List(timestamp_unit)),
        _ => None,
    };
    if timestamp.is_none() {
        for key in ["timestamp_unit", "window"] {
            if s.has(key) {
                errors.push(
                    s.key(key),
                    "only with a timestamp (timestamp_header, or a list's timestamp_key)",
                );
                ok = false;
            }
        }
    }
    if let Some(template) = &message {
        if hmac::template_needs_timestamp(template)
            && timestamp.is_none()
            && timestamp_header.is_ok()
        {
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
    if !ok {
        return None;
    }
    Some(HmacSpec {
        signature: signature?,
        algorithm: algorithm?,
        algorithm_from: algorithm_from.ok()?,
        encoding: encoding?,
        message: message?,
        timestamp,
        id_header: id_header.ok()?,
        key_form,
        window,
    })
}

/// Reads where the signature is: `header` (with `prefix`, or a `list`),
/// `headers` (every one read) or `query`; exactly one of the three.
fn parse_signature_source(
    s: &mut Section<'_>,
    errors: &mut ConfigErrors,
) -> Option<SignatureSource> {
    let given: Vec<&str> = ["header", "headers", "query"]
        .into_iter()
        .filter(|key| s.has(key))
        .collect();
    match given.as_slice() {
        [] => {
            errors.push(
                s.key("header"),
                "missing: the header carrying the signature, e.g. \"X-Signature\" (or headers = [..] when each key's signature has its own header, or query = \"signature\")",
            );
            return None;
        }
        [_] => {}
        [first, rest @ ..] => {
            for key in rest {
                errors.push(
                    s.key(key),
                    format!("the signature is already read from {first}; set one of header, headers, query"),
                );
            }
            return None;
        }
    }
    let prefix = s.string("prefix", errors).map(|p| Cow::Owned(p.to_owned()));
    let list = s.choice("list", &["kv", "positional"], errors);
    let separator = match s.string("separator", errors) {
        Some(text) => {
            let mut chars = text.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) if !c.is_ascii_alphanumeric() && c != '=' => Some(c),
                _ => {
                    errors.push(
                        s.key("separator"),
                        format!("{text:?} must be one punctuation character, e.g. \",\" or \";\""),
                    );
                    return None;
                }
            }
        }
        None => None,
    };
    let signature_key = s.string("signature_key", errors).map(str::to_owned);
    let timestamp_key = s.string("timestamp_key", errors).map(str::to_owned);
    let groups = s.boolean("groups", errors);
    let kv_only = [
        ("signature_key", signature_key.is_some()),
        ("timestamp_key", timestamp_key.is_some()),
        ("groups", groups.is_some()),
    ];
    for (key, set) in kv_only {
        if set && list != Some("kv") {
            errors.push(s.key(key), "only with list = \"kv\"");
            return None;
        }
    }
    if separator.is_some() && list.is_none() {
        errors.push(
            s.key("separator"),
            "only with list = \"kv\" or \"positional\"",
        );
        return None;
    }
    let key = given[0];
    if key != "header" {
        for (other, set) in [
            ("list", s.has("list")),
            ("prefix", key == "query" && prefix.is_some()),
        ] {
            if set {
                errors.push(
                    s.key(other),
                    format!("not with {key}; a list is read from header"),
                );
                return None;
            }
        }
    }
    if list.is_some() && prefix.is_some() {
        errors.push(
            s.key("prefix"),
            "not with list; the list's keys say what each entry is",
        );
        return None;
    }
    match key {
        "query" => s
            .string("query", errors)
            .map(|q| SignatureSource::Query(Cow::Owned(q.to_owned()))),
        "headers" => {
            let names = s.strings("headers", errors)?;
            if names.is_empty() {
                errors.push(s.key("headers"), "must list at least one header");
                return None;
            }
            let mut parsed = Vec::new();
            for name in names {
                match header_name(name) {
                    Ok(h) => parsed.push(h),
                    Err(message) => {
                        errors.push(s.key("headers"), message);
                        return None;
                    }
                }
            }
            Some(SignatureSource::Headers {
                names: parsed,
                prefix,
            })
        }
        _ => {
            let header = s.header_name("header", errors)?;
            match list {
                Some("kv") => {
                    let Some(signature_key) = signature_key else {
                        errors.push(
                            s.key("signature_key"),
                            "missing: the key of the signature entries, e.g. \"v1\" for t=..,v1=..",
                        );
                        return None;
                    };
                    Some(SignatureSource::KvList {
                        name: header,
                        separator: separator.unwrap_or(','),
                        timestamp_key: Cow::Owned(timestamp_key.unwrap_or_default()),
                        signature_key: Cow::Owned(signature_key),
                        groups: groups.unwrap_or(false),
                    })
                }
                Some(_) => Some(SignatureSource::Positional {
                    name: header,
                    separator: separator.unwrap_or(','),
                }),
                None if s.has("list") => None,
                None => Some(SignatureSource::Header {
                    names: vec![header],
                    prefix,
                }),
            }
        }
    }
}

/// Reads `algorithm`, or `algorithm_header` with its `algorithms`
/// allow-list (header value = hash). `Err` when given but invalid.
fn parse_algorithm(
    s: &mut Section<'_>,
    errors: &mut ConfigErrors,
) -> (Option<Algorithm>, Result<Option<AlgorithmHeader>, ()>) {
    let chosen = s.choice("algorithm", ALGORITHMS, errors).map(algorithm);
    let fixed = match chosen {
        Some(a) => Some(a),
        None if s.has("algorithm") => None,
        None => Some(Algorithm::Sha256),
    };
    let header = s.header_name("algorithm_header", errors);
    let Some(mut table) = s.table("algorithms", errors) else {
        if header.is_some() {
            errors.push(
                s.key("algorithms"),
                "missing: each value of algorithm_header and its hash, e.g. { HMAC_SHA256_HEX = \"sha256\" }",
            );
            return (fixed, Err(()));
        }
        return (
            fixed,
            if s.has("algorithm_header") {
                Err(())
            } else {
                Ok(None)
            },
        );
    };
    let Some(header) = header else {
        errors.push(s.key("algorithms"), "only with algorithm_header");
        return (fixed, Err(()));
    };
    let names = table.keys();
    let listed = names.len();
    let mut values = Vec::new();
    for name in names {
        if let Some(hash) = table.choice(name, ALGORITHMS, errors) {
            values.push((Cow::Owned(name.to_owned()), algorithm(hash)));
        }
    }
    table.finish(errors);
    if values.len() < listed {
        return (fixed, Err(()));
    }
    if values.is_empty() {
        errors.push(s.key("algorithms"), "must list at least one value");
        return (fixed, Err(()));
    }
    // hookguard sign uses `algorithm` when listed, else the first listed.
    let fixed = match chosen {
        Some(a) if values.iter().any(|(_, v)| *v == a) => Some(a),
        Some(a) => {
            errors.push(
                s.key("algorithm"),
                format!("{} is not among algorithms", a.as_str()),
            );
            None
        }
        None => Some(values[0].1),
    };
    (fixed, Ok(Some(AlgorithmHeader { header, values })))
}
