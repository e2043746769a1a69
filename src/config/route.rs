//! `[[routes]]`: which path a route serves and with which methods, its
//! scheme (read by [`super::scheme`]), and its limits: body size, window,
//! rate, client networks, content types, and the dedupe keys and how long
//! they are remembered. Names and paths must be unique across routes.

use std::collections::HashSet;
use std::num::NonZeroU32;
use std::time::Duration;

use http::header::HeaderValue;
use http::{Method, StatusCode};

use super::reader::{ConfigErrors, Section};
use super::secrets::SourceReader;
use super::{
    scheme, ClientRateLimit, DuplicateAnswer, PathPattern, Rate, RateLimit, Route, StatusSet,
    UNMATCHED_ROUTE,
};
use crate::dedupe::DedupeSource;

/// Validates one `[[routes]]` entry; `None` after recording errors.
/// `default_max_body` is the server's, for routes without their own.
/// `capture_dir` says whether `server.capture_dir` is set, which
/// `capture_rejected` needs.
pub(super) fn parse(
    mut s: Section<'_>,
    default_max_body: u64,
    capture_dir: bool,
    sources: &mut SourceReader<'_>,
    errors: &mut ConfigErrors,
) -> Option<Route> {
    let name = s
        .required(
            "name",
            "every route needs a unique name",
            check_route_name,
            errors,
        )
        .map(str::to_owned);
    // From here on every error under this route names it; a route whose
    // name is missing or invalid keeps its bare index.
    if let Some(name) = &name {
        s.label(name);
    }
    let path = s.required("path", "e.g. \"/webhooks/stripe\"", parse_path, errors);
    let methods = parse_methods(&mut s, errors);
    let mut skipped_secrets = Vec::new();
    let scheme = scheme::parse(&mut s, sources, &mut skipped_secrets, errors);
    let tolerance = s.duration("tolerance", errors);
    if tolerance.is_some_and(|t| t < MIN_TOLERANCE) {
        errors.push(
            s.key("tolerance"),
            "must be at least 1s: timestamps are compared in whole seconds, so a shorter window would refuse every timestamped request as stale or future",
        );
    }
    let tolerance = tolerance.unwrap_or_else(|| {
        scheme.as_ref().map_or(Duration::from_secs(300), |scheme| {
            scheme.default_tolerance()
        })
    });
    // Only a route's own zero is its error; a zero server default is
    // reported once, under server.max_body.
    let max_body = s.size("max_body", errors);
    if max_body == Some(0) {
        errors.push(s.key("max_body"), "must be greater than 0");
    }
    let max_body = max_body.unwrap_or(default_max_body);
    let dedupe = parse_dedupe(&mut s, errors).unwrap_or_else(|| {
        scheme.as_ref().map_or_else(
            || vec![DedupeSource::Signature],
            |scheme| scheme.default_dedupe(),
        )
    });
    let ttl_given = s.has("dedupe_ttl");
    let mut dedupe_ttl = s.positive_duration("dedupe_ttl", 24 * 3600, errors);
    let delivery = s.table("delivery", errors).and_then(|section| {
        super::queue::parse_delivery(section, ttl_given.then_some(dedupe_ttl), errors)
    });
    // A durable route's keys are kept at least as long as its items live
    // unless the file says otherwise, so a sender's late retry of a
    // delivery still queued is a duplicate.
    if let (Some(durable), false) = (&delivery, ttl_given) {
        dedupe_ttl = dedupe_ttl.max(durable.max_age);
    }
    let enforce = s.boolean("enforce", errors).unwrap_or(true);
    let answer_challenges = s.boolean("answer_challenges", errors);
    if answer_challenges.is_some() {
        if let Some(scheme) = scheme.as_ref().filter(|s| s.challenge_kind().is_none()) {
            errors.push(
                s.key("answer_challenges"),
                format!(
                    "scheme {} has no endpoint challenge hookguard answers; answer_challenges is only for {}",
                    scheme.name(),
                    crate::schemes::registry::names_with_challenges().join(", ")
                ),
            );
        }
    }
    let answer_challenges = answer_challenges.unwrap_or(true);
    let rate_limit = parse_rate(&mut s, "rate_limit", errors).map(|rate| RateLimit {
        limiter: governor::RateLimiter::direct(rate.quota()),
        rate,
    });
    let client_rate_limit =
        parse_rate(&mut s, "client_rate_limit", errors).map(|rate| ClientRateLimit {
            limiter: governor::RateLimiter::keyed(rate.quota()),
            rate,
        });
    let allow_ips = s.cidr_list("allow_ips", errors).unwrap_or_default();
    let content_types = parse_content_types(&mut s, errors);
    let complete_on = parse_complete_on(&mut s, errors);
    let in_flight_status = parse_in_flight_status(&mut s, errors);
    let require_dedupe = s.boolean("require_dedupe", errors).unwrap_or(false);
    let duplicate_answer = match s.choice("duplicate_answer", &["status", "original"], errors) {
        Some("original") => DuplicateAnswer::Original,
        _ => DuplicateAnswer::Status,
    };
    let capture_rejected = s.boolean("capture_rejected", errors).unwrap_or(false);
    let capture_key = s.key("capture_rejected");
    if capture_rejected && !capture_dir {
        errors.push(
            capture_key.clone(),
            "needs server.capture_dir, the directory refused requests are written to",
        );
    }
    let (allow_ips_key, dedupe_key) = (s.key("allow_ips"), s.key("dedupe"));
    let require_dedupe_key = s.key("require_dedupe");
    s.finish(errors);

    let (name, path, methods, scheme) = (name?, path?, methods?, scheme?);
    if require_dedupe && dedupe.is_empty() {
        errors.push(
            require_dedupe_key,
            "needs a dedupe list to require: this route dedupes on nothing",
        );
        return None;
    }
    if !scheme.authenticates() {
        // Without a signature the network is the only proof of origin.
        if allow_ips.is_empty() {
            errors.push(
                allow_ips_key,
                "missing: scheme = \"none\" accepts requests by allow_ips alone, so it needs at least one network, e.g. [\"203.0.113.0/24\"]",
            );
            return None;
        }
        if let Some(at) = dedupe.iter().position(|d| *d == DedupeSource::Signature) {
            errors.push(
                format!("{dedupe_key}[{at}]"),
                "scheme = \"none\" has no signature to dedupe on; use header:NAME or json:/pointer",
            );
            return None;
        }
    }
    if capture_rejected && scheme.sends_secret() {
        errors.push(
            capture_key,
            format!(
                "scheme {} sends the shared secret itself in the request, so a capture would hold it; captures are not available for it",
                scheme.name()
            ),
        );
        return None;
    }
    let verified_values = scheme
        .key_ids()
        .iter()
        .map(|key| {
            HeaderValue::from_str(&format!(
                "hookguard; route={name}; scheme={}; key={key}",
                scheme.name(),
            ))
            .expect("route names and secret ids are validated as header-safe")
        })
        .collect();
    let delivery_header = dedupe
        .iter()
        .find_map(|source| match source {
            DedupeSource::Header(name) => Some(name.clone()),
            _ => None,
        })
        .or_else(|| scheme.delivery_header().cloned());
    // No header names the delivery: the first non-signature source does,
    // which can then only be a JSON one.
    let delivery_json = match delivery_header {
        Some(_) => None,
        None => dedupe
            .iter()
            .position(|source| matches!(source, DedupeSource::Json(_) | DedupeSource::JsonAll(_))),
    };
    let allow_text: Vec<&str> = methods.iter().map(Method::as_str).collect();
    let allow =
        HeaderValue::from_str(&allow_text.join(", ")).expect("method names are header-safe");
    Some(Route {
        name,
        path,
        methods,
        allow,
        scheme,
        tolerance,
        max_body,
        dedupe,
        dedupe_ttl,
        verified_values,
        delivery_header,
        delivery_json,
        enforce,
        rate_limit,
        client_rate_limit,
        allow_ips,
        content_types,
        complete_on,
        in_flight_status,
        skipped_secrets,
        duplicate_answer,
        require_dedupe,
        capture_rejected,
        answer_challenges,
        delivery,
    })
}

/// The narrowest timestamp window: the window is judged in whole seconds
/// (timestamps are seconds, or milliseconds truncated to seconds), so a
/// tolerance under one second is zero, and zero refuses every request that
/// carries a timestamp.
const MIN_TOLERANCE: Duration = Duration::from_secs(1);

/// `complete_on = ["2xx", "409"]`: the app's answers that complete a
/// claim. Defaults to every 2xx: an app that answers 401 (a secret it has
/// not rotated yet), 404 or 429 did not take the delivery, and the
/// sender's retry must reach it.
fn parse_complete_on(s: &mut Section<'_>, errors: &mut ConfigErrors) -> StatusSet {
    let mut set = StatusSet::empty();
    let Some(list) = s.strings("complete_on", errors) else {
        set.add("2xx").expect("a valid class");
        return set;
    };
    if list.is_empty() {
        errors.push(
            s.key("complete_on"),
            "must not be empty: with no answer completing a claim, every copy of a delivery would reach the app",
        );
    }
    for (i, text) in list.iter().enumerate() {
        if let Err(message) = set.add(text) {
            errors.push(format!("{}[{i}]", s.key("complete_on")), message);
        }
    }
    set
}

/// Statuses a copy of a delivery in flight may be answered with: each is
/// one that senders retry (409 only by some; 425 and 429 and 503 by the
/// HTTP rules).
const IN_FLIGHT_STATUSES: [u16; 4] = [409, 425, 429, 503];

/// `in_flight_status = 503` (the default: every sender retries a 503).
fn parse_in_flight_status(s: &mut Section<'_>, errors: &mut ConfigErrors) -> StatusCode {
    let default = StatusCode::SERVICE_UNAVAILABLE;
    let Some(code) = s.unsigned("in_flight_status", errors) else {
        return default;
    };
    match u16::try_from(code) {
        Ok(code) if IN_FLIGHT_STATUSES.contains(&code) => {
            StatusCode::from_u16(code).unwrap_or(default)
        }
        _ => {
            errors.push(
                s.key("in_flight_status"),
                format!("{code} is not one of 409, 425, 429, 503"),
            );
            default
        }
    }
}

/// Most requests per second a rate may name: past this a limit protects
/// nothing, and governor's period would round to zero.
const MAX_RATE: f64 = 1_000_000.0;

/// A rate table (`rate_limit`, `client_rate_limit`):
/// `{ requests_per_second = 0.5, burst = 5 }` or
/// `{ requests_per_minute = 60 }`. The burst defaults to one second's worth
/// (at least 1).
fn parse_rate(s: &mut Section<'_>, key: &str, errors: &mut ConfigErrors) -> Option<Rate> {
    let mut t = s.table(key, errors)?;
    let per_second = t.number("requests_per_second", errors);
    let per_minute = t.number("requests_per_minute", errors);
    let burst = t.unsigned("burst", errors);
    let had_burst = t.has("burst");
    let (rate, text) = match (per_second, per_minute) {
        (Some(n), None) => (n, format!("{n} requests per second")),
        (None, Some(n)) => (n / 60.0, format!("{n} requests per minute")),
        (Some(_), Some(_)) => {
            errors.push(
                t.key("requests_per_minute"),
                "give requests_per_second or requests_per_minute, not both",
            );
            t.finish(errors);
            return None;
        }
        (None, None) => {
            if !t.has("requests_per_second") && !t.has("requests_per_minute") {
                errors.push(
                    t.key("requests_per_second"),
                    "missing: e.g. requests_per_second = 50, or requests_per_minute = 60",
                );
            }
            t.finish(errors);
            return None;
        }
    };
    let rate_key = if per_second.is_some() {
        "requests_per_second"
    } else {
        "requests_per_minute"
    };
    if !(rate > 0.0 && rate <= MAX_RATE && rate.is_finite()) {
        errors.push(
            t.key(rate_key),
            format!("must be greater than 0 and at most {MAX_RATE} per second"),
        );
        t.finish(errors);
        return None;
    }
    let burst = match burst.map(|b| u32::try_from(b).ok().and_then(NonZeroU32::new)) {
        Some(Some(burst)) => burst,
        Some(None) => {
            errors.push(
                t.key("burst"),
                format!("out of range: use 1 to {}", u32::MAX),
            );
            t.finish(errors);
            return None;
        }
        None if had_burst => {
            t.finish(errors);
            return None;
        }
        // One second's worth: a sender that sends at the rate in whole
        // seconds is never refused.
        None => NonZeroU32::new(rate.ceil() as u32).unwrap_or(NonZeroU32::MIN),
    };
    t.finish(errors);
    Some(Rate {
        per_second: rate,
        burst,
        text,
    })
}

/// `content_types = ["application/json"]`: media types without parameters.
fn parse_content_types(s: &mut Section<'_>, errors: &mut ConfigErrors) -> Vec<String> {
    let Some(list) = s.strings("content_types", errors) else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(list.len());
    for (i, text) in list.iter().enumerate() {
        let media = text.trim().to_ascii_lowercase();
        let valid = media.split_once('/').is_some_and(|(kind, sub)| {
            !kind.is_empty()
                && !sub.is_empty()
                && media
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"/.+-_".contains(&b))
        });
        if valid {
            out.push(media);
        } else {
            errors.push(
                format!("{}[{i}]", s.key("content_types")),
                format!(
                    "{text:?} is not a media type such as \"application/json\" (no parameters)"
                ),
            );
        }
    }
    if list.is_empty() {
        errors.push(
            s.key("content_types"),
            "is empty: leave it out to accept any type",
        );
    }
    out
}

/// Route names and key ids end up in metric labels and in a header the app
/// parses, so they are kept to a conservative alphabet.
pub(super) fn is_label_safe(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 64
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// A route name: label-safe, and not the name unmatched requests count
/// under.
fn check_route_name(name: &str) -> Result<&str, String> {
    if name == UNMATCHED_ROUTE {
        return Err(format!(
            "{name:?} is reserved for requests no route matches"
        ));
    }
    if !is_label_safe(name) {
        return Err(format!(
            "{name:?} must be 1 to 64 characters of letters, digits, '-', '_' or '.'"
        ));
    }
    Ok(name)
}

/// `"/exact"` or `"/prefix/*"`; no other wildcard, no query or fragment.
fn parse_path(text: &str) -> Result<PathPattern, String> {
    if !text.starts_with('/') {
        return Err(format!("{text:?} must start with \"/\""));
    }
    if let Some(prefix) = text.strip_suffix("/*") {
        if prefix.contains('*') {
            return Err(format!("{text:?}: '*' is only allowed as a final \"/*\""));
        }
        return Ok(PathPattern::Prefix(format!("{prefix}/")));
    }
    if text.contains('*') {
        return Err(format!(
            "{text:?}: '*' is only allowed as a final \"/*\" (prefix match)"
        ));
    }
    if text.contains('?') || text.contains('#') {
        return Err(format!(
            "{text:?}: a route path cannot contain a query or fragment"
        ));
    }
    Ok(PathPattern::Exact(text.to_owned()))
}

/// `methods = ["POST", ...]`, upper-cased, each once; `["POST"]` when
/// absent.
fn parse_methods(s: &mut Section<'_>, errors: &mut ConfigErrors) -> Option<Vec<Method>> {
    let Some(list) = s.strings("methods", errors) else {
        return if s.has("methods") {
            None
        } else {
            Some(vec![Method::POST])
        };
    };
    if list.is_empty() {
        errors.push(
            s.key("methods"),
            "must list at least one method, e.g. [\"POST\"]",
        );
        return None;
    }
    let mut methods = Vec::new();
    let mut ok = true;
    for (i, text) in list.iter().enumerate() {
        let upper = text.to_ascii_uppercase();
        match Method::from_bytes(upper.as_bytes()) {
            Ok(m) if !methods.contains(&m) => methods.push(m),
            Ok(_) => {
                errors.push(
                    format!("{}[{i}]", s.key("methods")),
                    format!("{text:?} is listed twice"),
                );
                ok = false;
            }
            Err(_) => {
                errors.push(
                    format!("{}[{i}]", s.key("methods")),
                    format!("{text:?} is not an HTTP method"),
                );
                ok = false;
            }
        }
    }
    ok.then_some(methods)
}

/// The route's own `dedupe` list; `None` when it has none (the scheme's
/// default applies).
fn parse_dedupe(s: &mut Section<'_>, errors: &mut ConfigErrors) -> Option<Vec<DedupeSource>> {
    let list = s.strings("dedupe", errors)?;
    let mut out = Vec::new();
    for (i, text) in list.iter().enumerate() {
        let key = format!("{}[{i}]", s.key("dedupe"));
        match DedupeSource::parse(text) {
            Ok(source) if out.contains(&source) => {
                errors.push(key, format!("{text:?} is listed twice"))
            }
            Ok(source) => out.push(source),
            Err(m) => errors.push(key, m),
        }
    }
    Some(out)
}

/// `routes` pairs each valid route with its index in the file.
pub(super) fn check_unique(routes: &[(usize, Route)], errors: &mut ConfigErrors) {
    let mut names = HashSet::new();
    let mut paths = HashSet::new();
    for (i, route) in routes {
        let at = format!("routes[{i}] ({:?})", route.name);
        if !names.insert(route.name.as_str()) {
            errors.push(
                format!("{at}.name"),
                format!("{:?} is used by an earlier route", route.name),
            );
        }
        if !paths.insert(route.path.to_string()) {
            errors.push(
                format!("{at}.path"),
                format!("{:?} is used by an earlier route", route.path.to_string()),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_exact_or_a_final_prefix_wildcard() {
        assert_eq!(parse_path("/a/b"), Ok(PathPattern::Exact("/a/b".into())));
        assert_eq!(parse_path("/a/*"), Ok(PathPattern::Prefix("/a/".into())));
        assert!(parse_path("a").unwrap_err().contains("must start with"));
        assert!(parse_path("/a*/b").is_err());
        assert!(parse_path("/*/b/*").is_err());
        assert!(parse_path("/a?x=1").unwrap_err().contains("query"));
    }

    #[test]
    fn route_names_are_label_safe_and_not_the_unmatched_name() {
        assert_eq!(check_route_name("stripe-live.1"), Ok("stripe-live.1"));
        assert!(check_route_name(UNMATCHED_ROUTE)
            .unwrap_err()
            .contains("reserved"));
        assert!(check_route_name("has space").is_err());
        assert!(check_route_name(&"x".repeat(65)).is_err());
        assert!(!is_label_safe(""));
    }
}
