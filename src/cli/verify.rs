//! `hookguard verify`: explains, step by step, what hookguard would do with a
//! captured raw HTTP request, and why.
//!
//! When no secret matches, it tries the changes that commonly happen to a
//! body between a sender and a receiver (a newline added or lost, line
//! endings rewritten, JSON re-serialised). A variant that verifies means the
//! secret is right and the body was changed; none verifying points at the
//! secret. It never prints a secret or an expected signature: only lengths
//! and SHA-256 digests of what was signed.

use std::path::Path;
use std::process::ExitCode;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use sha2::{Digest, Sha256};

use super::sign::find_route;
use super::{exit_code, output, with_config};
use crate::config::{Route, Server};
use crate::proxy;
use crate::reject::Reason;
use crate::schemes::RequestView;

/// Loads the config at `path`, reads the capture in `request` and prints
/// the explanation for `route`, judged as of `at` (default now). Exits 0
/// when hookguard would forward the request, 1 when not, 2 when it cannot
/// tell.
pub fn run(path: &Path, route: &str, request: &Path, at: Option<i64>) -> ExitCode {
    with_config(path, |config| {
        let prepared = find_route(&config, route).and_then(|route| {
            let raw = std::fs::read(request)
                .map_err(|e| format!("cannot read {}: {e}", request.display()))?;
            let captured = parse(&raw).map_err(|e| format!("{}: {e}", request.display()))?;
            Ok(explain(
                &config.server,
                route,
                &captured,
                at.unwrap_or_else(proxy::unix_now),
            ))
        });
        match prepared {
            Ok((report, forwarded)) => {
                output(&report);
                exit_code(forwarded)
            }
            Err(message) => {
                eprintln!("hookguard verify: {message}");
                ExitCode::from(2)
            }
        }
    })
}

/// A captured request.
#[derive(Debug, Clone)]
pub struct Captured {
    /// Request method.
    pub method: Method,
    /// Request target.
    pub uri: Uri,
    /// Headers as captured.
    pub headers: HeaderMap,
    /// Body bytes (de-chunked when the capture was chunked).
    pub body: Bytes,
}

/// Parses a raw HTTP/1.x request: request line, headers, blank line, body.
/// Bare `\n` line endings (as editors save captures) are accepted.
//
// Not the wire's `http1::head::parse` and `http1::chunked::Decoder`: they
// are strict on purpose (a bare LF in chunk framing, or Content-Length
// beside Transfer-Encoding, is refused, because laxness is how requests
// are smuggled past a verifier), while a capture is evidence to explain,
// often saved by a tool that rewrote CRLF to LF. Turning LFs back into
// CRLFs first cannot be done blindly: the body's bytes are what was
// signed, and in a chunked body the framing lines sit between data, so
// telling them apart already takes the lenient `dechunk` below. Nor does
// a short capture wait for the rest of its Content-Length: `explain`
// reports the shortfall instead.
pub fn parse(raw: &[u8]) -> Result<Captured, String> {
    let mut slots = [httparse::EMPTY_HEADER; 128];
    let mut request = httparse::Request::new(&mut slots);
    let head_len = match request.parse(raw) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return Err("the capture ends before the blank line after the headers".into())
        }
        Err(e) => return Err(format!("not an HTTP request: {e}")),
    };
    let method = Method::from_bytes(request.method.unwrap_or("").as_bytes())
        .map_err(|_| "the request line has no valid method".to_owned())?;
    let uri: Uri = request
        .path
        .unwrap_or("/")
        .parse()
        .map_err(|_| "the request line has no valid target".to_owned())?;
    let mut headers = HeaderMap::new();
    for header in request.headers.iter() {
        let name = HeaderName::from_bytes(header.name.as_bytes())
            .map_err(|_| format!("invalid header name {:?}", header.name))?;
        let value = HeaderValue::from_bytes(header.value)
            .map_err(|_| format!("invalid value for header {}", header.name))?;
        headers.append(name, value);
    }
    let rest = &raw[head_len..];
    let chunked = headers
        .get(http::header::TRANSFER_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let body = if chunked {
        dechunk(rest)?
    } else {
        rest.to_vec()
    };
    Ok(Captured {
        method,
        uri,
        headers,
        body: Bytes::from(body),
    })
}

/// Decodes a chunked body, leniently: size lines may end in a bare LF, and
/// a missing line ending after a chunk's data is let pass.
fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = data
            .iter()
            .position(|&b| b == b'\n')
            .ok_or("a chunk size line is not terminated")?;
        let line = std::str::from_utf8(&data[..line_end])
            .map_err(|_| "a chunk size line is not text")?
            .trim();
        let size_text = line.split(';').next().unwrap_or_default();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("{size_text:?} is not a chunk size"))?;
        data = &data[line_end + 1..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size {
            return Err("the capture ends inside a chunk".into());
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size..];
        data = data
            .strip_prefix(b"\r\n")
            .or_else(|| data.strip_prefix(b"\n"))
            .unwrap_or(data);
    }
}

fn digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The usual ways a body changes in transit, as (description, variant).
fn body_variants(body: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let mut variants = Vec::new();
    if let Some(stripped) = body.strip_suffix(b"\r\n") {
        variants.push(("a trailing CRLF was added to the body", stripped.to_vec()));
    } else if let Some(stripped) = body.strip_suffix(b"\n") {
        variants.push((
            "a trailing newline was added to the body",
            stripped.to_vec(),
        ));
    }
    let mut with_newline = body.to_vec();
    with_newline.push(b'\n');
    variants.push(("the body lost its trailing newline", with_newline));
    if body.windows(2).any(|w| w == b"\r\n") {
        let lf: Vec<u8> = String::from_utf8_lossy(body)
            .replace("\r\n", "\n")
            .into_bytes();
        variants.push(("the body's line endings were changed from LF to CRLF", lf));
    } else if body.contains(&b'\n') {
        let crlf = String::from_utf8_lossy(body)
            .replace('\n', "\r\n")
            .into_bytes();
        variants.push(("the body's line endings were changed from CRLF to LF", crlf));
    }
    if let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) {
        // PHP's json_encode writes "/" as "\/" unless told not to; the
        // signed body had plain slashes when un-escaping them verifies.
        let escaped = body.windows(2).any(|w| w == b"\\/");
        if escaped {
            let plain = String::from_utf8_lossy(body).replace("\\/", "/");
            variants.push((
                "the JSON's slashes were escaped as \\/ (as PHP's json_encode does without JSON_UNESCAPED_SLASHES)",
                plain.into_bytes(),
            ));
        } else if body.contains(&b'/') {
            let escaped = String::from_utf8_lossy(body).replace('/', "\\/");
            variants.push((
                "the JSON lost its \\/ escaping of slashes (the sender signed it as PHP's json_encode writes it)",
                escaped.into_bytes(),
            ));
        }
        if let Ok(compact) = serde_json::to_vec(&json) {
            // serde writes "/" plainly, so with escaped slashes in the body
            // the compact form undoes both changes.
            variants.push((
                if escaped {
                    "the JSON was re-formatted (pretty-printed, and its slashes escaped as \\/)"
                } else {
                    "the JSON was re-formatted (pretty-printed)"
                },
                compact,
            ));
        }
        if let Ok(pretty) = serde_json::to_vec_pretty(&json) {
            variants.push(("the JSON was re-formatted (compacted)", pretty));
        }
    }
    variants.retain(|(_, v)| v != body);
    variants
}

/// Explains what hookguard would do with `captured` on `route` at time
/// `now`; returns the report and whether it would be forwarded.
///
/// The verdict is the pipeline's own ([`proxy::judge`]: the same checks,
/// in the same order, as the running proxy); the lines before it show
/// what the scheme read and, for a bad signature, what probably went
/// wrong.
pub fn explain(server: &Server, route: &Route, captured: &Captured, now: i64) -> (String, bool) {
    let mut out = String::new();
    let mut line = |text: String| {
        out.push_str(&text);
        out.push('\n');
    };
    line(format!(
        "request: {} {}, {} header(s), body {} bytes (sha256 {})",
        captured.method,
        captured.uri,
        captured.headers.len(),
        captured.body.len(),
        digest(&captured.body)
    ));
    if let Some(declared) = captured
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<usize>().ok())
    {
        if declared != captured.body.len() {
            line(format!(
                "warning: Content-Length says {declared} bytes but the captured body has {}: the capture is truncated or the body was altered",
                captured.body.len()
            ));
        }
    }
    let path = captured.uri.path();
    let path_matches = route.path.matches(path);
    if path_matches {
        line(format!(
            "route {:?}: path matches {}",
            route.name, route.path
        ));
    } else {
        line(format!(
            "route {:?}: path {path} does NOT match {} (hookguard would pick another route or answer 404 no_route)",
            route.name, route.path
        ));
    }
    line(format!(
        "scheme {}: {}",
        route.scheme.name(),
        route.scheme.describe()
    ));
    let view = RequestView {
        method: &captured.method,
        uri: &captured.uri,
        headers: &captured.headers,
        body: &captured.body,
    };
    if let Some(message) = route.scheme.signed_message(&view) {
        match message {
            Ok(message) => line(format!(
                "signed message: {} bytes, sha256 {}",
                message.len(),
                digest(&message)
            )),
            Err(reject) => line(format!(
                "signed message: cannot be built: {}",
                reject.detail
            )),
        }
    }
    let keys = route.scheme.key_ids();
    line(format!(
        "secrets tried: {} ({})",
        keys.len(),
        keys.join(", ")
    ));
    match route.scheme.verify(&view) {
        Ok(verified) => {
            line(format!(
                "signature: OK, matched secret {:?}",
                keys[verified.key]
            ));
            if let Some(timestamp) = verified.timestamp {
                let skew = timestamp.saturating_sub(now);
                let relation = if skew <= 0 {
                    format!("{} s old", skew.unsigned_abs())
                } else {
                    format!("{skew} s in the future")
                };
                let verdict = match proxy::check_window(timestamp, now, route) {
                    Ok(()) => "inside the window".to_owned(),
                    Err(reject) => format!(
                        "outside the window: {} {} ({}){}",
                        reject.status().as_u16(),
                        reject.reason.as_str(),
                        reject.detail,
                        if reject.reason == Reason::StaleTimestamp {
                            " (a capture replayed later is stale by design)"
                        } else {
                            ""
                        }
                    ),
                };
                line(format!(
                    "timestamp: {timestamp}, {relation}; tolerance {} s: {verdict}",
                    route.tolerance.as_secs()
                ));
            }
        }
        Err(reject) => {
            line(format!(
                "signature: FAILED, {} {}: {}",
                reject.status().as_u16(),
                reject.reason.as_str(),
                reject.detail
            ));
            if reject.reason == Reason::BadSignature {
                diagnose(route, captured, &mut line);
            }
        }
    }
    let sources: Vec<String> = route.dedupe.iter().map(ToString::to_string).collect();
    line(format!(
        "replay check: keys [{}] would be claimed in the running store (not consulted here)",
        sources.join(", ")
    ));
    if !route.allow_ips.is_empty()
        || route.rate_limit.is_some()
        || route.client_rate_limit.is_some()
    {
        line(
            "not judged from a capture: the client's address (allow_ips) and the rate limits"
                .to_owned(),
        );
    }
    let forwarded = match proxy::judge(server, route, &view, now) {
        Ok(verified) if path_matches => {
            line(format!(
                "result: hookguard would forward this request with {}",
                route.verified_values[verified.key]
                    .to_str()
                    .unwrap_or_default()
            ));
            true
        }
        Ok(_) => {
            line(
                "result: hookguard would NOT forward this request on this route (see above)"
                    .to_owned(),
            );
            false
        }
        Err(reject) => {
            line(format!(
                "result: hookguard would answer {} {}: {}",
                reject.status().as_u16(),
                reject.reason.as_str(),
                reject.detail
            ));
            false
        }
    };
    (out, forwarded)
}

/// Tells "body changed" from "wrong secret" as far as the capture allows.
fn diagnose(route: &Route, captured: &Captured, line: &mut impl FnMut(String)) {
    for (change, body) in body_variants(&captured.body) {
        let body = Bytes::from(body);
        let view = RequestView {
            method: &captured.method,
            uri: &captured.uri,
            headers: &captured.headers,
            body: &body,
        };
        if let Ok(verified) = route.scheme.verify(&view) {
            line(format!(
                "diagnosis: the BODY CHANGED in transit: {change}; with that undone the signature matches secret {:?}. The secret is right; something between the sender and hookguard rewrote the body.",
                route.scheme.key_ids()[verified.key]
            ));
            return;
        }
    }
    line(
        "diagnosis: no common change to the body makes the signature match, so the SECRET IS MOST LIKELY WRONG (compare the sender's signing secret with the route's secrets; with several, check which one the sender uses). If the secret is certainly right, the body was altered beyond the usual newline/JSON changes."
            .to_owned(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The label of the variant equal to `signed`, among those of `received`.
    fn label_for(received: &str, signed: &str) -> Option<&'static str> {
        body_variants(received.as_bytes())
            .into_iter()
            .find(|(_, v)| v == signed.as_bytes())
            .map(|(label, _)| label)
    }

    #[test]
    fn each_body_change_is_named_for_what_it_is() {
        let php = r#"{"url":"https:\/\/a.example\/x"}"#;
        let plain = r#"{"url":"https://a.example/x"}"#;
        assert!(label_for(php, plain).is_some_and(|l| l.contains("escaped as \\/")));
        assert!(label_for(plain, php).is_some_and(|l| l.contains("lost its \\/ escaping")));
        let pretty = "{\n  \"a\": 1\n}";
        assert_eq!(
            label_for(pretty, r#"{"a":1}"#),
            Some("the JSON was re-formatted (pretty-printed)")
        );
        assert_eq!(
            label_for(r#"{"a":1}"#, pretty),
            Some("the JSON was re-formatted (compacted)")
        );
        assert_eq!(
            label_for("a\n", "a"),
            Some("a trailing newline was added to the body")
        );
        assert_eq!(
            label_for("a", "a\n"),
            Some("the body lost its trailing newline")
        );
        assert_eq!(
            label_for("a\r\nb", "a\nb"),
            Some("the body's line endings were changed from LF to CRLF")
        );
        assert_eq!(
            label_for("a\nb", "a\r\nb"),
            Some("the body's line endings were changed from CRLF to LF")
        );
    }

    #[test]
    fn parses_crlf_and_bare_lf_captures() {
        let raw = b"POST /a?b=1 HTTP/1.1\r\nHost: x\r\nX-Sig: abc\r\n\r\nbody";
        let c = parse(raw).unwrap();
        assert_eq!(c.method, Method::POST);
        assert_eq!(c.uri, "/a?b=1");
        assert_eq!(c.headers["x-sig"], "abc");
        assert_eq!(&c.body[..], b"body");
        let c = parse(b"POST /a HTTP/1.1\nHost: x\n\n{}\n").unwrap();
        assert_eq!(&c.body[..], b"{}\n");
    }

    #[test]
    fn dechunks_chunked_captures() {
        let raw = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n";
        assert_eq!(&parse(raw).unwrap().body[..], b"abcde");
    }

    #[test]
    fn refuses_what_is_not_a_request() {
        assert!(parse(b"hello").unwrap_err().contains("ends before"));
        assert!(parse(b"\x00\x01 / HTTP/1.1\r\n\r\n").is_err());
    }
}
