//! Reading a request head off the wire, strictly.
//!
//! httparse tokenises the request line and the header lines; this module
//! decides what they mean, by RFC 9112. A body is delimited by exactly one
//! of `Transfer-Encoding: chunked` (as the only coding) or one
//! `Content-Length`, never both (§6). Anything a front proxy or the app
//! could read differently from hookguard is refused here, before any route
//! is looked at: ambiguous framing is how requests are smuggled past a
//! verifier, and a head the app must refuse (a missing or doubled `Host`, a
//! target with raw UTF-8) would be forwarded, refused by the app, and its
//! claim completed all the same. So a head is refused when:
//!
//! - a line ends in a bare LF (§2.2 lets a recipient accept one; the next
//!   parser may not), or more than [`MAX_LEADING_EMPTY_LINES`] empty lines
//!   come before the request line;
//! - a header line is folded (obs-fold, §5.2), has white space before its
//!   colon (§5.1), or a name that is not a token;
//! - the target is not in origin-form (§3.2.1: absolute-form, authority-form
//!   and `CONNECT`, asterisk-form), or has a character RFC 3986 does not
//!   allow, a fragment, or a `%` not followed by two hex digits;
//! - an HTTP/1.1 request has no `Host`, or any request has two, or one
//!   whose value is not an RFC 3986 authority without userinfo (§3.2).
//!
//! Each refusal is a [`HeadError::Malformed`] whose text says what was wrong
//! and where (which header, which character), never a header's value.
//! Validating the target and `Host` is one pass over their bytes through a
//! lookup table, with no allocation but on the refusal path.

use std::borrow::Cow;
use std::mem::MaybeUninit;
use std::net::Ipv6Addr;

use bytes::{Bytes, BytesMut};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, Uri, Version};

use super::body::BodyLength;
use super::hop::ConnectionOptions;

/// The most header lines any config may allow (`max_headers` is validated
/// to at most this), sizing the parser's stack scratch space.
pub const MAX_HEADERS: usize = 1_000;

/// Empty lines (CRLF) tolerated before a request line. RFC 9112 §2.2 asks a
/// server to ignore at least one, for the CRLF some clients send after a
/// POST body; more than that is no client's habit, and an unbounded run
/// costs parsing for nothing.
pub const MAX_LEADING_EMPTY_LINES: usize = 1;

/// A parsed request head.
#[derive(Debug)]
pub struct RequestHead {
    /// The request method.
    pub method: Method,
    /// The request target as sent: always origin-form (a path and an
    /// optional query), with RFC 3986 characters only.
    pub uri: Uri,
    /// HTTP/1.0 or HTTP/1.1.
    pub version: Version,
    /// Header fields; values share the head's buffer (no copies).
    pub headers: HeaderMap,
    /// How the body is delimited.
    pub body: BodyLength,
    /// Whether the sender asked to keep the connection open afterwards.
    pub keep_alive: bool,
    /// `Expect: 100-continue`: the sender waits for a go-ahead before the
    /// body.
    pub expect_continue: bool,
}

/// Why a head was refused; what each becomes is the handler's to say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadError {
    /// Not HTTP/1.x as RFC 9112 spells it, or a head a conforming server
    /// must refuse; the text says what was wrong and where.
    Malformed(Cow<'static, str>),
    /// More header lines than `max_headers`, or more bytes than
    /// `max_header_bytes`.
    TooLarge(&'static str),
    /// Framing that two parsers could read differently.
    Ambiguous(&'static str),
}

/// A malformed head with a fixed description.
fn malformed(detail: &'static str) -> HeadError {
    HeadError::Malformed(Cow::Borrowed(detail))
}

/// Parses the head at the start of `buf`. `Ok(None)` means more bytes are
/// needed; on success the head's bytes are taken out of `buf`, leaving the
/// body (or the next request) in it.
pub fn parse(
    buf: &mut BytesMut,
    max_headers: usize,
    max_head_bytes: usize,
) -> Result<Option<RequestHead>, HeadError> {
    if !leading_empty_lines(buf)? {
        return Ok(None);
    }
    let mut scratch = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let scratch = &mut scratch[..max_headers.min(MAX_HEADERS)];
    let mut request = httparse::Request::new(&mut []);
    let head_len = match request.parse_with_uninit_headers(buf, scratch) {
        Ok(httparse::Status::Complete(len)) if len > max_head_bytes => {
            return Err(HeadError::TooLarge(
                "the request head is larger than allowed",
            ))
        }
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() > max_head_bytes => {
            return Err(HeadError::TooLarge(
                "the request head is larger than allowed",
            ))
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(HeadError::TooLarge(
                "the request has more header lines than allowed",
            ))
        }
        Err(httparse::Error::Version) => {
            return Err(malformed("only HTTP/1.0 and HTTP/1.1 are served"))
        }
        Err(error) => return Err(diagnose(buf, error)),
    };
    if !buf[..head_len].ends_with(b"\r\n\r\n") {
        return Err(bare_lf());
    }
    // Offsets into the buffer survive freezing it, so that header values
    // and the target can share one allocation instead of being copied.
    let base = buf.as_ptr() as usize;
    let offset = |slice: &[u8]| slice.as_ptr() as usize - base;
    let method = Method::from_bytes(request.method.unwrap_or_default().as_bytes())
        .map_err(|_| malformed("the request method is not a valid token"))?;
    let target = request.path.unwrap_or_default().as_bytes();
    origin_form(&method, target)?;
    let target = (offset(target), target.len());
    let version = match request.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let mut names = Vec::with_capacity(request.headers.len());
    let mut has_host = false;
    for header in request.headers.iter() {
        // The line before each header line (the request line, or the
        // previous header line) ends just before its name, in an LF that
        // must follow a CR; the last one ends in the head's final CRLF
        // CRLF, checked above.
        let at = offset(header.name.as_bytes());
        if at < 2 || buf[at - 2] != b'\r' {
            return Err(bare_lf());
        }
        let name = HeaderName::from_bytes(header.name.as_bytes())
            .map_err(|_| malformed("a header name is not a valid token"))?;
        if name == http::header::HOST {
            if has_host {
                return Err(malformed(
                    "the request has Host twice; RFC 9112 §3.2 allows exactly one",
                ));
            }
            has_host = true;
            host(header.value)?;
        }
        names.push((name, offset(header.value), header.value.len()));
    }
    let head = buf.split_to(head_len).freeze();
    let uri = Uri::from_maybe_shared(head.slice(target.0..target.0 + target.1))
        .map_err(|_| malformed("the request target is not a valid URI"))?;
    // Room for one more: the request id hookguard sets when the sender
    // sent none. A map sized exactly is full (at six headers, a typical
    // webhook's) and that one insert doubled it, rehashing every header.
    let mut headers = HeaderMap::with_capacity(names.len() + 1);
    for (name, at, len) in names {
        let value = value(&head, &name, at, len)?;
        headers.append(name, value);
    }
    let head = framing(method, uri, version, headers)?;
    // Checked after framing, so that a smuggling shape is reported as one
    // whether or not it also lacks a Host.
    if version == Version::HTTP_11 && !has_host {
        return Err(malformed(
            "the request has no Host header; HTTP/1.1 requires exactly one (RFC 9112 §3.2)",
        ));
    }
    Ok(Some(head))
}

fn value(head: &Bytes, name: &HeaderName, at: usize, len: usize) -> Result<HeaderValue, HeadError> {
    HeaderValue::from_maybe_shared(head.slice(at..at + len)).map_err(|_| {
        HeadError::Malformed(Cow::Owned(format!(
            "the value of the {name} header has a control character, which HTTP does not allow"
        )))
    })
}

/// Whether the buffer holds more than the empty lines tolerated before a
/// request line (`false`: only those so far, wait for more); refuses more
/// of them, and a bare LF among them.
fn leading_empty_lines(buf: &[u8]) -> Result<bool, HeadError> {
    let mut lines = 0;
    let mut at = 0;
    loop {
        match (buf.get(at), buf.get(at + 1)) {
            (Some(b'\r'), Some(b'\n')) => {
                lines += 1;
                if lines > MAX_LEADING_EMPTY_LINES {
                    return Err(malformed(
                        "more than one empty line comes before the request line (RFC 9112 §2.2 asks a server to ignore one)",
                    ));
                }
                at += 2;
            }
            (Some(b'\n'), _) => return Err(bare_lf()),
            (None, _) | (Some(b'\r'), None) => return Ok(false),
            _ => return Ok(true),
        }
    }
}

/// A line ending in a bare LF, which httparse accepts (RFC 9112 §2.2 lets
/// a recipient do so; the next parser may not). Every line of a head ends
/// where the next begins, so the check costs a look at two bytes per
/// line, not a pass over the head.
fn bare_lf() -> HeadError {
    malformed("a line of the request head ends in a bare LF; RFC 9112 §2.2 lines end in CRLF")
}

/// Says what httparse refused, finding the line at fault: this runs only
/// on a refusal, so it may look twice.
fn diagnose(buf: &[u8], error: httparse::Error) -> HeadError {
    if let httparse::Error::Token = error {
        return malformed("the request method is not a token");
    }
    let mut lines = buf.split(|&b| b == b'\n');
    let request_line = lines.next().unwrap_or_default();
    if matches!(error, httparse::Error::NewLine) && !request_line.ends_with(b"\r") {
        return malformed("the request line has a stray character, or does not end in CRLF");
    }
    for line in lines {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if let Some(detail) = header_line_fault(line) {
            return HeadError::Malformed(Cow::Owned(detail));
        }
    }
    match error {
        httparse::Error::Token | httparse::Error::NewLine => malformed(
            "the request line is not `method SP target SP HTTP-version` ending in CRLF (RFC 9112 §3)",
        ),
        _ => malformed("the request head is not valid HTTP/1.1"),
    }
}

/// What is wrong with one header line, if anything (RFC 9112 §5).
fn header_line_fault(line: &[u8]) -> Option<String> {
    if line.starts_with(b" ") || line.starts_with(b"\t") {
        return Some(
            "a header line starts with white space (obs-fold), which RFC 9112 §5.2 has a server refuse"
                .to_owned(),
        );
    }
    let Some(colon) = line.iter().position(|&b| b == b':') else {
        return Some("a header line has no colon".to_owned());
    };
    let name = &line[..colon];
    if name.is_empty() {
        return Some("a header line has an empty name".to_owned());
    }
    if let Some(&b) = name.iter().find(|&&b| !is_token(b)) {
        return Some(if b == b' ' || b == b'\t' {
            "a header name is followed by white space before its colon, which RFC 9112 §5.1 has a server refuse".to_owned()
        } else {
            format!(
                "a header name has {}, which a token cannot have (RFC 9110 §5.1)",
                show(b)
            )
        });
    }
    let value = &line[colon + 1..];
    value
        .iter()
        .find(|&&b| (b < 0x20 && b != b'\t') || b == 0x7f)
        .map(|&b| {
            format!(
                "the value of the {} header has {}, a control character HTTP does not allow",
                String::from_utf8_lossy(name).to_ascii_lowercase(),
                show(b)
            )
        })
}

/// A byte as a refusal names it: the character when printable, its hex
/// value otherwise.
fn show(byte: u8) -> String {
    if byte.is_ascii_graphic() {
        format!("the character '{}'", byte as char)
    } else {
        format!("the byte 0x{byte:02x}")
    }
}

/// Whether `byte` may be in a token (RFC 9110 §5.6.2).
pub(super) fn is_token(byte: u8) -> bool {
    CLASSES[usize::from(byte)] & TOKEN != 0
}

// Character classes, one bit each, in one table indexed by byte.
/// RFC 3986 `unreserved` and `sub-delims`: a host name's characters
/// besides `%` (§3.2.2).
const HOST: u8 = 1;
/// What an origin-form target may hold besides `%`: `pchar`, `/` and `?`
/// (§3.3, §3.4), and `[` `]`, which are RFC 3986 characters (gen-delims)
/// that its grammar leaves out of paths and queries but that every server
/// behind hookguard accepts there (PHP-style `a[]=1` queries).
const TARGET: u8 = 2;
/// `tchar` (RFC 9110 §5.6.2).
const TOKEN: u8 = 4;

const CLASSES: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        let unreserved = c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~');
        let sub_delim = matches!(
            c,
            b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
        );
        if unreserved || sub_delim {
            table[b] |= HOST | TARGET;
        }
        if matches!(c, b':' | b'@' | b'/' | b'?' | b'[' | b']') {
            table[b] |= TARGET;
        }
        if c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            )
        {
            table[b] |= TOKEN;
        }
        b += 1;
    }
    table
};

/// The first fault in `bytes` against `class`, with `%` allowed only as
/// the start of a percent-encoded octet: the offending byte, or `None`
/// for a `%` not followed by two hex digits.
fn scan(bytes: &[u8], class: u8) -> Result<(), Option<u8>> {
    let mut at = 0;
    while at < bytes.len() {
        let b = bytes[at];
        if b == b'%' {
            match bytes.get(at + 1..at + 3) {
                Some([h, l]) if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() => at += 3,
                _ => return Err(None),
            }
        } else if CLASSES[usize::from(b)] & class != 0 {
            at += 1;
        } else {
            return Err(Some(b));
        }
    }
    Ok(())
}

/// Refuses a target that is not origin-form with RFC 3986 characters
/// (RFC 9112 §3.2.1, RFC 3986 §2, §3.3, §3.4).
fn origin_form(method: &Method, target: &[u8]) -> Result<(), HeadError> {
    if method == Method::CONNECT {
        return Err(malformed(
            "the CONNECT method is not served: hookguard forwards requests, it opens no tunnels (RFC 9110 §9.3.6)",
        ));
    }
    if target == b"*" {
        return Err(malformed(
            "the request target is '*' (asterisk-form); only origin-form targets, a path starting with '/', are served",
        ));
    }
    if !target.starts_with(b"/") {
        return Err(malformed(if target.windows(3).any(|w| w == b"://") {
            "the request target is in absolute-form (scheme://host/...); only origin-form targets, a path starting with '/', are served (RFC 9112 §3.2.1)"
        } else {
            "the request target does not start with '/'; only origin-form targets are served (RFC 9112 §3.2.1)"
        }));
    }
    scan(target, TARGET).map_err(|fault| match fault {
        None => malformed(
            "the request target has a '%' not followed by two hex digits (RFC 3986 §2.1 percent-encoding)",
        ),
        Some(b'#') => malformed(
            "the request target has a fragment ('#'), which is never sent in a request (RFC 9112 §3.2)",
        ),
        Some(b) => HeadError::Malformed(Cow::Owned(format!(
            "the request target has {}, which RFC 3986 does not allow in a target; percent-encode it",
            show(b)
        ))),
    })
}

/// Refuses a `Host` value that is not `uri-host [ ":" port ]` (RFC 9112
/// §3.2, RFC 3986 §3.2.2-3.2.3): a reg-name or IPv4 address, or an IPv6
/// address in brackets, and digits for a port. No userinfo, path or white
/// space, and not empty: hookguard forwards HTTP/1.1, where the app needs
/// a host.
fn host(value: &[u8]) -> Result<(), HeadError> {
    if value.is_empty() {
        return Err(malformed(
            "the Host header is empty; HTTP/1.1 needs a host name (RFC 9112 §3.2)",
        ));
    }
    let port = if let Some(literal) = value.strip_prefix(b"[") {
        let close = literal.iter().position(|&b| b == b']').ok_or_else(|| {
            malformed("the Host header opens an IP literal with '[' and does not close it")
        })?;
        let ipv6 = std::str::from_utf8(&literal[..close])
            .ok()
            .and_then(|text| text.parse::<Ipv6Addr>().ok());
        if ipv6.is_none() {
            return Err(malformed(
                "the Host header's IP literal in brackets is not an IPv6 address",
            ));
        }
        match &literal[close + 1..] {
            [] => None,
            [b':', port @ ..] => Some(port),
            _ => {
                return Err(malformed(
                    "the Host header has characters after its IP literal that are not a port",
                ))
            }
        }
    } else {
        let (name, port) = match value.iter().position(|&b| b == b':') {
            Some(colon) => (&value[..colon], Some(&value[colon + 1..])),
            None => (value, None),
        };
        if name.is_empty() {
            return Err(malformed("the Host header has a port but no host name"));
        }
        scan(name, HOST).map_err(|fault| match fault {
            None => malformed(
                "the Host header has a '%' not followed by two hex digits (RFC 3986 §2.1 percent-encoding)",
            ),
            Some(b) => HeadError::Malformed(Cow::Owned(format!(
                "the Host header has {}, which a host name cannot have (RFC 3986 §3.2.2)",
                show(b)
            ))),
        })?;
        port
    };
    match port {
        Some(port) if port.len() > 5 || !port.iter().all(u8::is_ascii_digit) => Err(malformed(
            "the Host header's port is not a number of at most five digits (RFC 3986 §3.2.3)",
        )),
        _ => Ok(()),
    }
}

/// Decides the body's delimiting and the connection's persistence.
fn framing(
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
) -> Result<RequestHead, HeadError> {
    let chunked = match transfer_coding(&headers)? {
        Some(()) if version == Version::HTTP_10 => {
            return Err(HeadError::Ambiguous(
                "HTTP/1.0 has no Transfer-Encoding; the body's end is ambiguous",
            ))
        }
        Some(()) => true,
        None => false,
    };
    let length = content_length(&headers)?;
    let body = match (chunked, length) {
        (true, Some(_)) => {
            return Err(HeadError::Ambiguous(
                "the request has both Content-Length and Transfer-Encoding",
            ))
        }
        (true, None) => BodyLength::Chunked,
        (false, Some(0)) | (false, None) => BodyLength::Empty,
        (false, Some(n)) => BodyLength::Length(n),
    };
    let keep_alive = persistence(&headers, version);
    let expect_continue = match headers.get(http::header::EXPECT) {
        None => false,
        // An HTTP/1.0 sender never gets an interim response (RFC 9110
        // §10.1.1, §15.2).
        Some(v) if v.as_bytes().eq_ignore_ascii_case(b"100-continue") => {
            version == Version::HTTP_11
        }
        Some(_) => return Err(malformed("the only expectation served is 100-continue")),
    };
    Ok(RequestHead {
        method,
        uri,
        version,
        headers,
        body,
        keep_alive,
        expect_continue,
    })
}

/// `Some(())` for a body in chunked coding; refuses every other coding,
/// since hookguard must see the exact bytes the signature covers.
fn transfer_coding(headers: &HeaderMap) -> Result<Option<()>, HeadError> {
    let mut codings = headers
        .get_all(http::header::TRANSFER_ENCODING)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(|c| c.trim_ascii())
        .filter(|c| !c.is_empty())
        .peekable();
    if codings.peek().is_none() {
        return if headers.contains_key(http::header::TRANSFER_ENCODING) {
            Err(HeadError::Ambiguous(
                "the request has an empty Transfer-Encoding",
            ))
        } else {
            Ok(None)
        };
    }
    let all: Vec<&[u8]> = codings.collect();
    if all.len() == 1 && all[0].eq_ignore_ascii_case(b"chunked") {
        Ok(Some(()))
    } else {
        Err(HeadError::Ambiguous(
            "the only Transfer-Encoding served is a single chunked",
        ))
    }
}

/// The one `Content-Length`, if present: digits only, a single field.
/// Leading zeros are digits like any other (RFC 9110 §8.6 has no bound on
/// how many), so only the value is bounded: it must fit in 64 bits.
fn content_length(headers: &HeaderMap) -> Result<Option<u64>, HeadError> {
    let mut values = headers.get_all(http::header::CONTENT_LENGTH).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(HeadError::Ambiguous("the request has Content-Length twice"));
    }
    let digits = first.as_bytes();
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(HeadError::Ambiguous(
            "the Content-Length is not a plain number",
        ));
    }
    digits
        .iter()
        .try_fold(0u64, |n, d| {
            n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        })
        .map(Some)
        .ok_or(HeadError::Ambiguous(
            "the Content-Length is too large for a 64-bit number",
        ))
}

/// Whether the sender keeps the connection open after this request.
fn persistence(headers: &HeaderMap, version: Version) -> bool {
    ConnectionOptions::parse(
        headers
            .get_all(http::header::CONNECTION)
            .iter()
            .map(HeaderValue::as_bytes),
    )
    .persists(version == Version::HTTP_10)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(raw: &str) -> Result<Option<RequestHead>, HeadError> {
        parse(&mut BytesMut::from(raw), 100, 64 * 1024)
    }

    #[test]
    fn a_complete_head_is_taken_out_of_the_buffer_leaving_the_body() {
        let mut buf = BytesMut::from(
            "POST /a?b=c HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nX-Sig: abc\r\n\r\nhello",
        );
        let head = parse(&mut buf, 100, 1024).unwrap().unwrap();
        assert_eq!(head.method, Method::POST);
        assert_eq!(head.uri.path_and_query().unwrap().as_str(), "/a?b=c");
        assert_eq!(head.body, BodyLength::Length(5));
        assert_eq!(head.headers["x-sig"], "abc");
        assert!(head.keep_alive);
        assert_eq!(&buf[..], b"hello");
    }

    #[test]
    fn a_partial_head_asks_for_more() {
        assert!(parse_str("POST / HTTP/1.1\r\nHost: x\r\n")
            .unwrap()
            .is_none());
    }

    #[test]
    fn framing_that_two_parsers_could_read_differently_is_refused() {
        for raw in [
            "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding:\r\n\r\n",
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            assert!(
                matches!(parse_str(raw), Err(HeadError::Ambiguous(_))),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn chunked_is_recognised_in_any_case() {
        let head = parse_str("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(head.body, BodyLength::Chunked);
    }

    #[test]
    fn limits_on_the_head_are_enforced() {
        let many: String = (0..5).map(|i| format!("X-{i}: v\r\n")).collect();
        let raw = format!("GET / HTTP/1.1\r\n{many}\r\n");
        assert!(matches!(
            parse(&mut BytesMut::from(raw.as_str()), 4, 1024),
            Err(HeadError::TooLarge(_))
        ));
        let raw = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(2000));
        assert!(matches!(
            parse(&mut BytesMut::from(raw.as_str()), 100, 1024),
            Err(HeadError::TooLarge(_))
        ));
    }

    #[test]
    fn persistence_follows_the_version_and_connection_header() {
        let get = |raw: &str| parse_str(raw).unwrap().unwrap().keep_alive;
        assert!(get("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert!(!get(
            "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        ));
        assert!(!get("GET / HTTP/1.0\r\n\r\n"));
        assert!(get("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
    }

    #[test]
    fn garbage_and_other_protocols_are_malformed() {
        for raw in [
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            "GET / HTTP/1.1\r\nBad Header: x\r\n\r\n",
            "\x16\x03\x01\x02\x00\x01\x00\x01\x03\x03",
            "POST / HTTP/1.1\r\nExpect: something-else\r\n\r\n",
        ] {
            assert!(
                matches!(parse_str(raw), Err(HeadError::Malformed(_))),
                "{raw:?}"
            );
        }
    }

    /// The refusal's text for `raw`, which must be malformed.
    fn refusal(raw: &[u8]) -> String {
        match parse(&mut BytesMut::from(raw), 100, 64 * 1024) {
            Err(HeadError::Malformed(detail)) => detail.into_owned(),
            other => panic!(
                "{:?}: expected Malformed, got {other:?}",
                String::from_utf8_lossy(raw)
            ),
        }
    }

    /// A GET with `target` and the header lines `lines` (each ending in
    /// CRLF).
    fn get(target: &str, lines: &str) -> Vec<u8> {
        format!("GET {target} HTTP/1.1\r\n{lines}\r\n").into_bytes()
    }

    #[test]
    fn host_must_be_one_valid_authority_for_http11() {
        for (lines, says) in [
            ("", "no Host header"),
            ("Host: a\r\nHost: a\r\n", "Host twice"),
            ("Host:\r\n", "Host header is empty"),
            ("Host: a b\r\n", "Host header has the byte 0x20"),
            ("Host: a/b\r\n", "Host header has the character '/'"),
            ("Host: user@a\r\n", "Host header has the character '@'"),
            ("Host: a:80x\r\n", "port"),
            ("Host: a:123456\r\n", "port"),
            ("Host: :80\r\n", "no host name"),
            ("Host: a%zz\r\n", "'%' not followed by two hex digits"),
            ("Host: [::1\r\n", "does not close"),
            ("Host: [zz]\r\n", "not an IPv6 address"),
            ("Host: [::1]x\r\n", "after its IP literal"),
        ] {
            let detail = refusal(&get("/", lines));
            assert!(detail.contains(says), "{lines:?}: {detail}");
        }
        let high = refusal(b"GET / HTTP/1.1\r\nHost: caf\xc3\xa9\r\n\r\n");
        assert!(high.contains("the byte 0xc3"), "{high}");
        for ok in [
            "Host: x\r\n",
            "Host: hooks.example.com:8443\r\n",
            "Host: 127.0.0.1\r\n",
            "Host: [::1]:80\r\n",
            "Host: a-b_c~d.e%41!$&'()*+,;=\r\n",
            "Host: x:\r\n",
        ] {
            assert!(
                parse(&mut BytesMut::from(&get("/", ok)[..]), 100, 4096).is_ok_and(|h| h.is_some()),
                "{ok:?}"
            );
        }
        // HTTP/1.0 has no Host requirement (the forwarded request gets the
        // app's), but one that is there must still be valid.
        assert!(parse_str("GET / HTTP/1.0\r\n\r\n").unwrap().is_some());
        assert!(parse_str("GET / HTTP/1.0\r\nHost: a b\r\n\r\n").is_err());
    }

    #[test]
    fn targets_are_origin_form_with_rfc_3986_characters_only() {
        for (target, says) in [
            ("/p/a%zz", "'%' not followed by two hex digits"),
            ("/p/a%4", "'%' not followed by two hex digits"),
            ("/a#frag", "fragment"),
            ("/a|b", "the character '|'"),
            ("/a{b}", "the character '{'"),
            ("/a^b", "the character '^'"),
            ("/a`b", "the character '`'"),
            ("/a\"b", "the character '\"'"),
            ("/a<b", "the character '<'"),
            ("/a\\b", "the character '\\'"),
            ("http://user@x/hook", "absolute-form"),
            ("http://x/hook", "absolute-form"),
            ("*", "asterisk-form"),
            ("hook", "does not start with '/'"),
        ] {
            let detail = refusal(&get(target, "Host: x\r\n"));
            assert!(detail.contains(says), "{target:?}: {detail}");
        }
        let utf8 = refusal(b"POST /hook?a=caf\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(utf8.contains("the byte 0xc3"), "{utf8}");
        let connect = refusal(b"CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n");
        assert!(connect.contains("CONNECT"), "{connect}");
        for ok in [
            "/",
            "/hook?a=1&b=%2F%c3%A9",
            "/p/a-b_c.d~e!$&'()*+,;=:@/x?y=/?z",
            "/q?a[]=1&b[x]=2",
            "//double/slash",
        ] {
            let head = parse(&mut BytesMut::from(&get(ok, "Host: x\r\n")[..]), 100, 4096)
                .unwrap_or_else(|e| panic!("{ok:?}: {e:?}"))
                .unwrap();
            assert_eq!(head.uri.path_and_query().unwrap().as_str(), ok);
        }
    }

    #[test]
    fn lines_end_in_crlf_and_header_lines_are_never_folded_or_spaced() {
        for (raw, says) in [
            (&b"GET / HTTP/1.1\nHost: x\r\n\r\n"[..], "bare LF"),
            (b"GET / HTTP/1.1\r\nHost: x\n\r\n", "bare LF"),
            (b"GET / HTTP/1.1\r\nHost: x\r\n\n", "bare LF"),
            (b"\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", "bare LF"),
            (
                b"\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
                "more than one empty line",
            ),
            (
                b"GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n folded\r\n\r\n",
                "obs-fold",
            ),
            (
                b"GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\tfolded\r\n\r\n",
                "obs-fold",
            ),
            (
                b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n",
                "white space before its colon",
            ),
            (
                b"GET / HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n",
                "no colon",
            ),
            (
                b"GET / HTTP/1.1\r\nHost: x\r\nX(a): 1\r\n\r\n",
                "the character '('",
            ),
            (
                b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x0bb\r\n\r\n",
                "the byte 0x0b",
            ),
            (
                b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x7fb\r\n\r\n",
                "x-a header",
            ),
        ] {
            let detail = refusal(raw);
            assert!(
                detail.contains(says),
                "{:?}: {detail}",
                String::from_utf8_lossy(raw)
            );
        }
        // One empty line before the request line is ignored (RFC 9112 §2.2).
        let mut buf = BytesMut::from(&b"\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"[..]);
        assert!(parse(&mut buf, 100, 4096).unwrap().is_some());
        assert!(buf.is_empty());
        for partial in [&b"\r"[..], b"\r\n", b"\r\nGET / HT"] {
            assert!(parse(&mut BytesMut::from(partial), 100, 4096)
                .unwrap()
                .is_none());
        }
    }

    #[test]
    fn a_long_content_length_with_leading_zeros_is_its_value() {
        let head =
            parse_str("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 00000000000000000005\r\n\r\n")
                .unwrap()
                .unwrap();
        assert_eq!(head.body, BodyLength::Length(5));
        let max = format!(
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0{}\r\n\r\n",
            u64::MAX
        );
        assert_eq!(
            parse_str(&max).unwrap().unwrap().body,
            BodyLength::Length(u64::MAX)
        );
        assert!(matches!(
            parse_str("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 18446744073709551616\r\n\r\n"),
            Err(HeadError::Ambiguous(_))
        ));
    }
}
