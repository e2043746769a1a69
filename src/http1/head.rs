//! Reading a request head off the wire, strictly.
//!
//! httparse tokenises the request line and the header lines; this module
//! decides what they mean for framing, by RFC 9112 §6: a body is delimited
//! by exactly one of `Transfer-Encoding: chunked` (as the only coding) or
//! one `Content-Length`, never both. Anything a front proxy could read
//! differently from the app is refused here, before any route is looked
//! at, because a request whose end is ambiguous is how requests are
//! smuggled past a verifier.

use std::mem::MaybeUninit;

use bytes::{Bytes, BytesMut};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, Uri, Version};

use super::body::BodyLength;
use super::hop::ConnectionOptions;

/// The most header lines any config may allow (`max_headers` is validated
/// to at most this), sizing the parser's stack scratch space.
pub const MAX_HEADERS: usize = 1_000;

/// A parsed request head.
#[derive(Debug)]
pub struct RequestHead {
    /// The request method.
    pub method: Method,
    /// The request target as sent.
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
    /// Not HTTP/1.x as RFC 9112 spells it.
    Malformed(&'static str),
    /// More header lines than `max_headers`, or more bytes than
    /// `max_header_bytes`.
    TooLarge(&'static str),
    /// Framing that two parsers could read differently.
    Ambiguous(&'static str),
}

/// Parses the head at the start of `buf`. `Ok(None)` means more bytes are
/// needed; on success the head's bytes are taken out of `buf`, leaving the
/// body (or the next request) in it.
pub fn parse(
    buf: &mut BytesMut,
    max_headers: usize,
    max_head_bytes: usize,
) -> Result<Option<RequestHead>, HeadError> {
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
            return Err(HeadError::Malformed(
                "only HTTP/1.0 and HTTP/1.1 are served",
            ))
        }
        Err(_) => {
            return Err(HeadError::Malformed(
                "the request head is not valid HTTP/1.1",
            ))
        }
    };
    // Offsets into the buffer survive freezing it, so that header values
    // and the target can share one allocation instead of being copied.
    let base = buf.as_ptr() as usize;
    let offset = |slice: &[u8]| slice.as_ptr() as usize - base;
    let method = Method::from_bytes(request.method.unwrap_or_default().as_bytes())
        .map_err(|_| HeadError::Malformed("the request method is not a valid token"))?;
    let target = request.path.unwrap_or_default().as_bytes();
    let target = (offset(target), target.len());
    let version = match request.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let mut names = Vec::with_capacity(request.headers.len());
    for header in request.headers.iter() {
        let name = HeaderName::from_bytes(header.name.as_bytes())
            .map_err(|_| HeadError::Malformed("a header name is not a valid token"))?;
        names.push((name, offset(header.value), header.value.len()));
    }
    let head = buf.split_to(head_len).freeze();
    let uri = Uri::from_maybe_shared(head.slice(target.0..target.0 + target.1))
        .map_err(|_| HeadError::Malformed("the request target is not a valid URI"))?;
    let mut headers = HeaderMap::with_capacity(names.len());
    for (name, at, len) in names {
        headers.append(name, value(&head, at, len)?);
    }
    framing(method, uri, version, headers)
}

fn value(head: &Bytes, at: usize, len: usize) -> Result<HeaderValue, HeadError> {
    HeaderValue::from_maybe_shared(head.slice(at..at + len))
        .map_err(|_| HeadError::Malformed("a header value has characters HTTP does not allow"))
}

/// Decides the body's delimiting and the connection's persistence.
fn framing(
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
) -> Result<Option<RequestHead>, HeadError> {
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
        Some(_) => {
            return Err(HeadError::Malformed(
                "the only expectation served is 100-continue",
            ))
        }
    };
    Ok(Some(RequestHead {
        method,
        uri,
        version,
        headers,
        body,
        keep_alive,
        expect_continue,
    }))
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
fn content_length(headers: &HeaderMap) -> Result<Option<u64>, HeadError> {
    let mut values = headers.get_all(http::header::CONTENT_LENGTH).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(HeadError::Ambiguous("the request has Content-Length twice"));
    }
    let digits = first.as_bytes();
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(HeadError::Ambiguous(
            "the Content-Length is not a plain number",
        ));
    }
    // At most 19 digits: fits in u64.
    Ok(Some(
        digits
            .iter()
            .fold(0u64, |n, d| n * 10 + u64::from(d - b'0')),
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
        let head = parse_str("POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n")
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
        assert!(get("GET / HTTP/1.1\r\n\r\n"));
        assert!(!get("GET / HTTP/1.1\r\nConnection: close\r\n\r\n"));
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
}
