//! `[server]`: where hookguard listens, the app it guards, and the limits and
//! timeouts every connection gets, and where refused requests are captured.

use std::path::{Path, PathBuf};
use std::time::Duration;

use http::header::HeaderName;
use http::Uri;

use super::reader::{ConfigErrors, Section};
use super::{Capture, Server, Underscores, Unmatched, Upstream};
use crate::http1::head::MAX_HEADERS;

/// Body limit for routes without their own, and for unmatched forwarding.
pub(super) const DEFAULT_MAX_BODY: u64 = 1 << 20;
const DEFAULT_MAX_HEADER_BYTES: usize = 64 << 10;
/// Most worker threads; more than cores only adds switching.
const MAX_WORKERS: usize = 256;

/// Captures kept at most, by default: enough to see a pattern in a burst
/// of refusals, few enough to read through.
const DEFAULT_CAPTURE_FILES: usize = 100;
/// Bytes all captures may take, by default: 64 bodies of the default
/// `max_body`, and little on an `emptyDir`.
const DEFAULT_CAPTURE_BYTES: u64 = 64 << 20;

/// `capture_dir`, `capture_max_files`, `capture_max_bytes`. The directory
/// must exist and be writable now: a capture that fails at the moment an
/// operator needs it helps no one.
fn parse_capture(s: &mut Section<'_>, errors: &mut ConfigErrors) -> Option<Capture> {
    let max_files = s.bounded(
        "capture_max_files",
        DEFAULT_CAPTURE_FILES,
        1..=1_000_000,
        errors,
    );
    let max_bytes = s
        .size("capture_max_bytes", errors)
        .unwrap_or(DEFAULT_CAPTURE_BYTES);
    if max_bytes == 0 {
        errors.push(s.key("capture_max_bytes"), "must be greater than 0");
    }
    let dir = PathBuf::from(s.string("capture_dir", errors)?);
    s.checked("capture_dir", writable_dir(&dir), errors)?;
    Some(Capture {
        dir,
        max_files,
        max_bytes,
    })
}

/// Whether `dir` is a directory this process can create files in, tried
/// with a probe file that is removed at once.
pub(super) fn writable_dir(dir: &Path) -> Result<(), String> {
    let shown = dir.display();
    let meta = std::fs::metadata(dir)
        .map_err(|e| format!("cannot use {shown}: {e}; create the directory first"))?;
    if !meta.is_dir() {
        return Err(format!("{shown} is not a directory"));
    }
    let probe = dir.join(format!(".hookguard-probe-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(|e| format!("cannot write in {shown}: {e}"))?;
    // A probe left behind is harmless; failing the config for it is not.
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// Validates `[server]`; `None` after recording errors.
pub(super) fn parse(mut s: Section<'_>, errors: &mut ConfigErrors) -> Option<Server> {
    let listen = s.socket_addr("listen", "0.0.0.0:8000", errors);
    let admin_listen = s.socket_addr("admin_listen", "127.0.0.1:9901", errors);
    let upstream = s.required(
        "upstream",
        "set the app's address, e.g. \"http://127.0.0.1:8080\"",
        parse_upstream,
        errors,
    );
    let verified_header = if s.has("verified_header") {
        s.header_name("verified_header", errors)
    } else {
        Some(HeaderName::from_static("x-verified-by"))
    };
    let max_body = s.size("max_body", errors).unwrap_or(DEFAULT_MAX_BODY);
    if max_body == 0 {
        errors.push(s.key("max_body"), "must be greater than 0");
    }
    let header_timeout = s.positive_duration("header_timeout", 10, errors);
    // Far beyond what a reading client needs to take a few KiB, short
    // enough that a sender that stopped reading frees its slot soon.
    let write_timeout = s.positive_duration("write_timeout", 10, errors);
    let body_timeout = s.positive_duration("body_timeout", 30, errors);
    let upstream_timeout = s.positive_duration("upstream_timeout", 30, errors);
    // Past this, a claim whose answer is late is released: long enough for
    // a slow app (a queue worker, a cold start), short enough that a hung
    // one does not hold a delivery's keys for hours.
    let settle_timeout = s.positive_duration("settle_timeout", 300, errors);
    if settle_timeout < upstream_timeout {
        errors.push(
            s.key("settle_timeout"),
            format!(
                "must be at least upstream_timeout ({} s): it is how long a late answer is still waited for",
                upstream_timeout.as_secs()
            ),
        );
    }
    let shutdown_grace = s
        .duration("shutdown_grace", errors)
        .unwrap_or(Duration::from_secs(25));
    let underscores_in_headers = match s.choice(
        "underscores_in_headers",
        &["drop", "pass", "reject"],
        errors,
    ) {
        Some("pass") => Underscores::Pass,
        Some("reject") => Underscores::Reject,
        _ => Underscores::Drop,
    };
    let unmatched = match s.choice("unmatched", &["reject", "forward"], errors) {
        Some("forward") => Unmatched::Forward,
        _ => Unmatched::Reject,
    };
    let reload_interval = s.positive_duration("reload_interval", 10, errors);
    let trusted_proxies = s.cidr_list("trusted_proxies", errors).unwrap_or_default();
    let max_connections = s.bounded("max_connections", 10_000, 1..=1_000_000, errors);
    // One by default: a sidecar shares the pod's CPU with the app it
    // guards, and one worker serves tens of thousands of verified requests
    // a second, with a better tail than two (see `crate::server`).
    let workers = s.bounded("workers", 1, 1..=MAX_WORKERS, errors);
    // The request parser's own ceiling: it has that many header slots.
    let max_headers = s.bounded("max_headers", 100, 1..=MAX_HEADERS, errors);
    // Below 8 KiB, ordinary requests with a few long signature headers
    // would be refused.
    let max_header_bytes = match s.size("max_header_bytes", errors) {
        Some(n) if !(8_192..=1 << 20).contains(&n) => {
            errors.push(
                s.key("max_header_bytes"),
                format!("{n} is out of range: use 8KiB to 1MiB"),
            );
            DEFAULT_MAX_HEADER_BYTES
        }
        Some(n) => n as usize,
        None => DEFAULT_MAX_HEADER_BYTES,
    };
    let capture = parse_capture(&mut s, errors);
    s.finish(errors);
    Some(Server {
        capture,
        reload_interval,
        trusted_proxies,
        max_connections,
        workers,
        max_headers,
        max_header_bytes,
        listen: listen?,
        admin_listen: admin_listen?,
        upstream: upstream?,
        verified_header: verified_header?,
        max_body,
        header_timeout,
        body_timeout,
        upstream_timeout,
        shutdown_grace,
        unmatched,
        underscores_in_headers,
        settle_timeout,
        write_timeout,
    })
}

/// `upstream = "http://HOST:PORT[/base]"`: plain HTTP to the app in the same
/// pod, with an optional path prefix.
fn parse_upstream(text: &str) -> Result<Upstream, String> {
    let uri: Uri = text
        .parse()
        .map_err(|_| format!("{text:?} is not a URL: use e.g. \"http://127.0.0.1:8080\""))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!(
            "{text:?}: only http:// upstreams are supported (the app runs in the same pod)"
        ));
    }
    let authority = uri
        .authority()
        .cloned()
        .ok_or_else(|| format!("{text:?} has no host"))?;
    if authority.port_u16().is_none() {
        return Err(format!(
            "{text:?} has no port: write it as http://HOST:PORT"
        ));
    }
    if uri.query().is_some() {
        return Err(format!(
            "{text:?}: an upstream URL cannot have a query string"
        ));
    }
    let base_path = uri.path().trim_end_matches('/').to_owned();
    Ok(Upstream {
        authority,
        base_path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstreams_keep_a_base_path_without_its_trailing_slash() {
        let upstream = parse_upstream("http://127.0.0.1:8080/app/").unwrap();
        assert_eq!(upstream.authority.as_str(), "127.0.0.1:8080");
        assert_eq!(upstream.base_path, "/app");
        assert_eq!(parse_upstream("http://app:80").unwrap().base_path, "");
    }

    #[test]
    fn upstreams_must_be_plain_http_with_a_port_and_no_query() {
        let error = |text| parse_upstream(text).unwrap_err();
        assert!(error("https://app:443").contains("only http://"));
        assert!(error("http://app").contains("has no port"));
        assert!(error("http://app:80/?x=1").contains("query string"));
        assert!(error("not a url at all").contains("is not a URL"));
    }
}
