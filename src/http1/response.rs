//! Reading the app's response head: status, framing and persistence, and
//! the header lines to pass on to the sender.
//!
//! The response half of framing, beside [`super::head`] for requests (as
//! hyper's `role.rs` pairs its server and client sides). The app is
//! trusted, but an answer whose end is misread desynchronises a pooled
//! connection, so framing follows RFC 9112 §6.3 and a confused answer
//! never leaves its connection reusable.

use bytes::{Buf, BytesMut};

use super::body::BodyLength;
use super::hop::{self, ConnectionOptions};
use super::write::{header_line, number_line};

/// Largest response head accepted from the app.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// Header slots tried first, and the most an app's response may have.
const FEW_HEADERS: usize = 32;
const MANY_HEADERS: usize = 256;

/// The app's response head, ready to pass on.
#[derive(Debug)]
pub struct ResponseHead {
    /// The status code.
    pub status: http::StatusCode,
    /// Header lines (`name: value\r\n`) to pass to the sender: the app's
    /// own minus hop-by-hop fields, framing and the request id, which
    /// hookguard writes itself.
    pub lines: Vec<u8>,
    /// How the body is delimited.
    pub body: BodyLength,
    /// Whether the app keeps the connection open afterwards.
    pub keep_alive: bool,
    /// The answer's `Content-Type`, if it has one (a handler may keep the
    /// answer to replay it).
    pub content_type: Option<http::HeaderValue>,
}

/// Parses a response head at the start of `buf`, skipping interim (1xx)
/// responses; `Ok(None)` when more bytes are needed. `head_request` says
/// the request was a HEAD, whose answer has no body whatever it declares.
pub fn parse_response(
    buf: &mut BytesMut,
    head_request: bool,
) -> Result<Option<ResponseHead>, &'static str> {
    loop {
        // Most answers have a handful of headers: a small scratch first
        // (initialising it is part of the cost), a large one if needed.
        let mut few = [httparse::EMPTY_HEADER; FEW_HEADERS];
        let parsed = match parse_into(buf, &mut few, head_request) {
            Err(httparse::Error::TooManyHeaders) => {
                let mut many = vec![httparse::EMPTY_HEADER; MANY_HEADERS];
                parse_into(buf, &mut many, head_request)
            }
            other => other,
        };
        match parsed {
            Ok(Parsed::Partial) if buf.len() > MAX_RESPONSE_HEAD => {
                return Err("the app's response head is too large")
            }
            Ok(Parsed::Partial) => return Ok(None),
            Ok(Parsed::Interim(len)) => buf.advance(len),
            Ok(Parsed::Final(len, head)) => {
                buf.advance(len);
                return head.map(Some);
            }
            Err(_) => return Err("the app's response is not valid HTTP/1.1"),
        }
    }
}

enum Parsed {
    Partial,
    /// A 1xx answer of this many bytes, to skip.
    Interim(usize),
    /// The final answer's head length and what it says.
    Final(usize, Result<ResponseHead, &'static str>),
}

fn parse_into<'b>(
    buf: &'b [u8],
    scratch: &mut [httparse::Header<'b>],
    head_request: bool,
) -> Result<Parsed, httparse::Error> {
    let mut response = httparse::Response::new(scratch);
    let len = match response.parse(buf)? {
        httparse::Status::Complete(len) => len,
        httparse::Status::Partial => return Ok(Parsed::Partial),
    };
    let status = match http::StatusCode::from_u16(response.code.unwrap_or_default()) {
        Ok(status) => status,
        Err(_) => return Ok(Parsed::Final(len, Err("the app sent an invalid status"))),
    };
    Ok(if status == http::StatusCode::SWITCHING_PROTOCOLS {
        Parsed::Final(
            len,
            Err("the app switched protocols, which hookguard does not forward"),
        )
    } else if status.is_informational() {
        Parsed::Interim(len)
    } else {
        Parsed::Final(len, describe(&response, status, head_request))
    })
}

/// Whether a field of the app's answer is left out of what the sender
/// gets: hop-by-hop fields, and the framing and request id that hookguard
/// writes itself.
fn dropped(name: &str, options: &ConnectionOptions<'_>) -> bool {
    hop::is_hop_by_hop(name)
        || name.eq_ignore_ascii_case("content-length")
        || name.eq_ignore_ascii_case("x-request-id")
        || options.names(name)
}

fn describe(
    response: &httparse::Response<'_, '_>,
    status: http::StatusCode,
    head_request: bool,
) -> Result<ResponseHead, &'static str> {
    let options = ConnectionOptions::parse(
        response
            .headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("connection"))
            .map(|h| h.value),
    );
    let mut keep_alive =
        response.version.is_some() && options.persists(response.version == Some(0));
    let mut chunked = None;
    let mut length = None;
    let mut content_type = None;
    for header in response.headers.iter() {
        let value = header.value;
        if header.name.eq_ignore_ascii_case("content-type") {
            content_type = http::HeaderValue::from_bytes(value).ok();
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            let last = value.rsplit(|&b| b == b',').next().unwrap_or_default();
            chunked = Some(last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if header.name.eq_ignore_ascii_case("content-length") {
            let parsed = std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or("the app sent an invalid Content-Length")?;
            if length.is_some_and(|l| l != parsed) {
                return Err("the app sent conflicting Content-Lengths");
            }
            length = Some(parsed);
        }
    }
    let no_body = head_request
        || status == http::StatusCode::NO_CONTENT
        || status == http::StatusCode::NOT_MODIFIED;
    let body = match (chunked, length) {
        _ if no_body => BodyLength::Empty,
        (Some(true), _) => BodyLength::Chunked,
        (Some(false), _) => BodyLength::UntilClose,
        (None, Some(n)) => BodyLength::Length(n),
        (None, None) => BodyLength::UntilClose,
    };
    // Both framings at once (RFC 9112 §6.3: chunked wins) is a sign of a
    // confused app; its connection is not trusted with another exchange.
    if body == BodyLength::UntilClose || (chunked.is_some() && length.is_some()) {
        keep_alive = false;
    }
    let mut lines = Vec::with_capacity(256);
    for header in response.headers.iter() {
        if !dropped(header.name, &options) {
            header_line(&mut lines, header.name, header.value);
        }
    }
    // A HEAD answer or a 304 may carry the length of the body it stands
    // for; it is passed on, since hookguard writes no framing for them.
    if let (BodyLength::Empty, Some(n)) = (body, length) {
        if n > 0 {
            number_line(&mut lines, "content-length", n);
        }
    }
    Ok(ResponseHead {
        status,
        lines,
        body,
        keep_alive,
        content_type,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str, head_request: bool) -> Result<Option<ResponseHead>, &'static str> {
        parse_response(&mut BytesMut::from(raw), head_request)
    }

    #[test]
    fn interim_answers_are_skipped_and_the_final_one_framed() {
        let head = parse(
            "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-App: 1\r\n\r\nabc",
            false,
        )
        .unwrap()
        .unwrap();
        assert_eq!(head.status, 200);
        assert_eq!(head.body, BodyLength::Length(3));
        assert_eq!(head.lines, b"X-App: 1\r\n");
        assert!(head.keep_alive);
    }

    #[test]
    fn answers_with_many_headers_are_read_up_to_the_limit() {
        let lines = |n: usize| (0..n).map(|i| format!("X-{i}: v\r\n")).collect::<String>();
        let ok = format!("HTTP/1.1 204 No Content\r\n{}\r\n", lines(FEW_HEADERS + 8));
        assert_eq!(parse(&ok, false).unwrap().unwrap().body, BodyLength::Empty);
        let too_many = format!("HTTP/1.1 204 No Content\r\n{}\r\n", lines(MANY_HEADERS + 1));
        assert!(parse(&too_many, false).is_err());
    }

    #[test]
    fn framing_follows_rfc_9112_for_answers() {
        let kind = |raw: &str, head| parse(raw, head).unwrap().unwrap();
        assert_eq!(
            kind(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                false
            )
            .body,
            BodyLength::Chunked
        );
        let until_close = kind("HTTP/1.1 200 OK\r\n\r\n", false);
        assert_eq!(until_close.body, BodyLength::UntilClose);
        assert!(!until_close.keep_alive);
        let head = kind("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", true);
        assert_eq!(head.body, BodyLength::Empty);
        assert_eq!(head.lines, b"content-length: 9\r\n");
        assert!(parse(
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            false
        )
        .is_err());
        assert!(parse("HTTP/1.1 101 Switching Protocols\r\n\r\n", false).is_err());
        assert!(!kind("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false).keep_alive);
    }
}
