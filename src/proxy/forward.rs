//! Forwarding a buffered request to the upstream app.
//!
//! The request head is written afresh from the parts received: headers
//! minus hop-by-hop ones and minus anything a sender could use to
//! impersonate hookguard, plus `X-Forwarded-*` and, for verified requests
//! only, the verified header. The body goes out as the exact bytes that
//! were verified, on a pooled keep-alive connection.
//!
//! Sending runs in the connection's own task, and nothing cancels that
//! task when the sender hangs up: the exchange with the app still
//! finishes, so the pipeline's next step (settling the replay claim)
//! always runs.

use std::future::Future;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::Method;

use crate::config::{Server, Underscores};
use crate::http1::app::{self, AppResponse, Failure};
use crate::http1::hop::{self, ConnectionOptions};
use crate::http1::write::{header_line, number_line};
use crate::http1::RequestHead;
use crate::reject::{Reason, Reject};

/// Headers starting with this are hookguard's to set; incoming ones are
/// dropped so that a sender cannot pose as hookguard to the app.
const OWN_PREFIX: &str = "x-hookguard-";

/// Headers hookguard writes on the way to the app besides the verified
/// header and the `X-Hookguard-` family. A sender's own of these are
/// merged or kept as hookguard decides below; but one spelled with `_` or
/// `.` would reach a CGI-style app as a second copy, which it may read
/// instead of hookguard's.
///
/// Nor can a sender's `Connection` remove them. RFC 9110 §7.6.1 has an
/// intermediary remove *or replace* the fields a `Connection` nominates;
/// these hookguard keeps or rewrites instead: without `Host` the app gets
/// an HTTP/1.1 request it must refuse (`Connection: host` did that), and
/// the rest are hookguard's to write. Decided here rather than refused in
/// the wire, which cannot know every field hookguard writes (the verified
/// header's name is configuration; that and the `X-Hookguard-` family are
/// dropped whatever `Connection` says); an odd nomination costs nothing
/// once ignored.
const WRITTEN: [&str; 6] = [
    "host",
    "content-length",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-request-id",
];

/// A rebuilt request head, and what was left out of it.
#[derive(Debug)]
pub struct Built {
    /// The head for the app.
    pub head: Vec<u8>,
    /// Headers that could have posed as hookguard's.
    pub spoofed: u32,
    /// Headers dropped for the underscore in their name.
    pub underscored: u32,
}

/// Whether a header name, read the way CGI-style apps read names (PHP's
/// `$_SERVER['HTTP_X_VERIFIED_BY']`, Rack, Symfony: case-insensitively,
/// with `_` and `.` taken for `-`), names a header only hookguard may set.
fn poses_as_hookguard(name: &str, server: &Server) -> bool {
    let verified = server.verified_header.as_str();
    if !name.bytes().any(|b| b == b'_' || b == b'.') {
        return name == verified || name.starts_with(OWN_PREFIX);
    }
    // Names are lower case already; no allocation on this path.
    let dashed = |b: u8| if b == b'_' || b == b'.' { b'-' } else { b };
    let same = |own: &str| {
        own.len() == name.len() && name.bytes().zip(own.bytes()).all(|(a, b)| dashed(a) == b)
    };
    let own_prefix = name.len() > OWN_PREFIX.len()
        && name
            .bytes()
            .zip(OWN_PREFIX.bytes())
            .all(|(a, b)| dashed(a) == b);
    same(verified) || own_prefix || WRITTEN.iter().any(|w| same(w))
}

/// Writes the request head for the upstream; `verified` is the value of
/// the verified header (only for requests that passed every check),
/// `shadow` the check a shadow-mode request failed.
pub fn build(
    server: &Server,
    request: &RequestHead,
    body_len: usize,
    peer_ip: &str,
    verified: Option<&HeaderValue>,
    shadow: Option<Reason>,
) -> Built {
    let (mut spoofed, mut underscored) = (0, 0);
    let headers = &request.headers;
    let path = request.uri.path_and_query().map_or("/", |pq| pq.as_str());
    // Room for a small body too, which `send` appends.
    let mut out = Vec::with_capacity(512 + body_len.min(INLINE_BODY));
    out.extend_from_slice(request.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(server.upstream.base_path.as_bytes());
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let options = ConnectionOptions::parse(
        headers
            .get_all(header::CONNECTION)
            .iter()
            .map(HeaderValue::as_bytes),
    );
    for (name, value) in headers {
        let name = name.as_str();
        if poses_as_hookguard(name, server) {
            spoofed += 1;
            continue;
        }
        if name.contains('_') && server.underscores_in_headers == Underscores::Drop {
            underscored += 1;
            continue;
        }
        // Besides the hop-by-hop fields: `Expect` (answered here, by
        // buffering), and the framing and `X-Forwarded-For` (written
        // below). A `Connection` option removes any other field, never one
        // of [`WRITTEN`] (see there).
        let skip = hop::is_hop_by_hop(name)
            || (options.names(name) && !WRITTEN.contains(&name))
            || name == header::EXPECT
            || name == header::CONTENT_LENGTH
            || name == "x-forwarded-for";
        if !skip {
            header_line(&mut out, name, value.as_bytes());
        }
    }
    if !headers.contains_key(header::HOST) {
        header_line(
            &mut out,
            "host",
            server.upstream.authority.as_str().as_bytes(),
        );
    }
    forwarded_for(&mut out, headers, peer_ip);
    if !headers.contains_key("x-forwarded-proto") {
        header_line(&mut out, "x-forwarded-proto", b"http");
    }
    if !headers.contains_key("x-forwarded-host") {
        if let Some(host) = headers.get(header::HOST) {
            header_line(&mut out, "x-forwarded-host", host.as_bytes());
        }
    }
    // A GET or HEAD without a body says nothing about one (RFC 9110 §8.6).
    if body_len > 0 || !matches!(request.method, Method::GET | Method::HEAD) {
        number_line(&mut out, "content-length", body_len as u64);
    }
    if let Some(value) = verified {
        header_line(&mut out, server.verified_header.as_str(), value.as_bytes());
    }
    if let Some(reason) = shadow {
        header_line(&mut out, SHADOW_HEADER, reason.as_str().as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    Built {
        head: out,
        spoofed,
        underscored,
    }
}

/// Header telling the app, in shadow mode, which check a forwarded request
/// failed.
pub const SHADOW_HEADER: &str = "x-hookguard-shadow";

/// Appends the peer to `X-Forwarded-For`, joining any earlier fields.
fn forwarded_for(out: &mut Vec<u8>, headers: &HeaderMap, peer_ip: &str) {
    out.extend_from_slice(b"x-forwarded-for: ");
    for value in headers.get_all("x-forwarded-for") {
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b", ");
    }
    out.extend_from_slice(peer_ip.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Bodies up to this size are copied behind the head and sent with it.
const INLINE_BODY: usize = 16 * 1024;

/// The exchange with the app for a rebuilt request: sends `head` (and the
/// body) and reads the answer's head. It owns what it sends, so that the
/// pipeline can leave it running after the sender was answered 504 (the
/// app's late answer still settles the claim); `upstream_timeout` is the
/// caller's to apply.
pub fn exchange(
    server: &Server,
    request: &RequestHead,
    mut head: Vec<u8>,
    body: Bytes,
) -> impl Future<Output = Result<AppResponse, Reject>> + Send + 'static {
    let body = inline_body(&mut head, body);
    let authority = server.upstream.authority.clone();
    let head_request = request.method == Method::HEAD;
    async move {
        match app::exchange(&authority, &head, &body, head_request).await {
            Ok(response) => Ok(response),
            Err(Failure::Connect(_)) => Err(Reject::new(
                Reason::UpstreamUnavailable,
                "the app behind hookguard refused the connection",
            )),
            Err(Failure::Broken(why)) => {
                tracing::debug!(%why, "the exchange with the app failed");
                Err(Reject::new(
                    Reason::UpstreamUnavailable,
                    "the connection to the app failed before it answered",
                ))
            }
        }
    }
}

/// Moves a small body into the head's buffer: one plain send instead of
/// a vectored one, for the price of copying a few KiB. Returns what is
/// left to send after the head (nothing, or the large body).
pub fn inline_body(head: &mut Vec<u8>, body: Bytes) -> Bytes {
    if body.len() <= INLINE_BODY {
        head.extend_from_slice(&body);
        Bytes::new()
    } else {
        body
    }
}

/// What the sender is told when the app has not answered within
/// `upstream_timeout`.
pub fn too_slow(server: &Server) -> Reject {
    Reject::with(
        Reason::UpstreamTimeout,
        format!(
            "the app did not answer within {} ms",
            server.upstream_timeout.as_millis()
        ),
    )
}
