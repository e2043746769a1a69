//! Connections to the app: keep-alive connections kept per thread, one
//! exchange at a time on each, driven inline by the request's own task.
//!
//! Driving the exchange inline (no connection task, no channel, no
//! checkout future) is most of why hookguard is not slower than a plain
//! proxy; see the module doc of [`crate::http1`]. A pooled connection the
//! app has closed (a Node app closes idle ones after 5 s) is noticed from
//! its readiness before use, and an exchange that fails on a reused
//! connection before any answer arrived is retried once on a fresh one,
//! which is what every keep-alive client has to do.

use std::cell::RefCell;
use std::io::{self, IoSlice};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use http::uri::Authority;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::header_line;

/// Idle connections kept; more than the busiest moment needs is waste.
const MAX_IDLE: usize = 256;

/// An idle connection older than this is closed rather than reused.
const IDLE_FOR: Duration = Duration::from_secs(30);

/// Time allowed to open a connection to the app.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest response head accepted from the app.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// A connection to the app with its read buffer.
#[derive(Debug)]
pub struct Conn {
    stream: TcpStream,
    /// Bytes read from the app and not yet used.
    pub buf: BytesMut,
    /// Whether an earlier exchange used this connection.
    reused: bool,
}

impl Conn {
    /// Reads more from the app into `buf`; 0 means the app closed.
    pub async fn read_more(&mut self) -> io::Result<usize> {
        if self.buf.capacity() - self.buf.len() < 4096 {
            self.buf.reserve(16 * 1024);
        }
        self.stream.read_buf(&mut self.buf).await
    }

    /// Like [`Conn::read_more`], failing if nothing arrives within `idle`.
    pub async fn read_more_within(&mut self, idle: Duration) -> io::Result<usize> {
        tokio::time::timeout(idle, self.read_more())
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "the app stalled mid-body"))?
    }
}

/// Idle keep-alive connections to the app, kept per thread: a connection
/// belongs to the runtime of the thread that opened it (each worker thread
/// runs its own, see [`crate::server`]), and a thread-local list needs no
/// lock. Keyed by the app's address, which a reload may change.
#[derive(Debug, Default)]
struct Idle {
    by_app: Vec<(Authority, Vec<(Conn, Instant)>)>,
}

/// Apps remembered per thread; only a reload adds one.
const MAX_APPS: usize = 4;

thread_local! {
    static IDLE: RefCell<Idle> = RefCell::default();
}

/// Why an exchange with the app failed.
#[derive(Debug)]
pub enum Failure {
    /// No connection could be opened.
    Connect(io::Error),
    /// The connection failed, or the app's answer was not valid HTTP.
    Broken(String),
}

/// How the app's response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// No body (HEAD, 204, 304).
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked coding.
    Chunked,
    /// Until the app closes the connection.
    UntilClose,
}

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
    pub body: BodyKind,
    /// Whether the app keeps the connection open afterwards.
    pub keep_alive: bool,
}

/// A response whose head has arrived; its body is still on `conn`.
#[derive(Debug)]
pub struct Response {
    /// The app the connection leads to, for returning it to the pool.
    pub authority: Authority,
    /// The connection the body arrives on.
    pub conn: Conn,
    /// The parsed head.
    pub head: ResponseHead,
}

/// Sends `head` and `body` to the app and reads the response head, on a
/// kept-alive connection when there is one.
pub async fn exchange(
    authority: &Authority,
    head: &[u8],
    body: &[u8],
    head_request: bool,
) -> Result<Response, Failure> {
    let mut fresh = false;
    loop {
        let pooled = if fresh { None } else { checkout(authority) };
        let mut conn = match pooled {
            Some(conn) => conn,
            None => connect(authority).await.map_err(Failure::Connect)?,
        };
        match round_trip(&mut conn, head, body, head_request).await {
            Ok(head) => {
                return Ok(Response {
                    authority: authority.clone(),
                    conn,
                    head,
                })
            }
            // The app closed a kept-alive connection as it was reused;
            // nothing was answered, so sending again is safe.
            Err(Attempt::Stale) if conn.reused && !fresh => fresh = true,
            Err(Attempt::Stale) => {
                return Err(Failure::Broken(
                    "the app closed the connection without answering".into(),
                ))
            }
            Err(Attempt::Failed(why)) => return Err(Failure::Broken(why)),
        }
    }
}

/// Keeps a connection whose exchange ended cleanly for the next request on
/// this thread.
pub fn checkin(response: Response) {
    let Response {
        authority,
        mut conn,
        ..
    } = response;
    conn.reused = true;
    conn.buf.clear();
    IDLE.with_borrow_mut(|idle| {
        let at = match idle.by_app.iter().position(|(a, _)| *a == authority) {
            Some(at) => at,
            None => {
                if idle.by_app.len() == MAX_APPS {
                    idle.by_app.remove(0);
                }
                idle.by_app.push((authority, Vec::new()));
                idle.by_app.len() - 1
            }
        };
        let conns = &mut idle.by_app[at].1;
        if conns.len() < MAX_IDLE {
            conns.push((conn, Instant::now()));
        }
    });
}

/// A kept connection to `authority` the app has not closed, if any.
fn checkout(authority: &Authority) -> Option<Conn> {
    IDLE.with_borrow_mut(|idle| {
        let (_, conns) = idle.by_app.iter_mut().find(|(a, _)| a == authority)?;
        while let Some((conn, since)) = conns.pop() {
            if since.elapsed() < IDLE_FOR && !looks_closed(&conn.stream) {
                return Some(conn);
            }
        }
        None
    })
}

async fn connect(authority: &Authority) -> io::Result<Conn> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(authority.as_str()))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
    stream.set_nodelay(true)?;
    Ok(Conn {
        stream,
        buf: BytesMut::with_capacity(8 * 1024),
        reused: false,
    })
}

/// Whether an idle connection became readable: the app closed it, reset
/// it, or sent bytes no request asked for. Either way it is not reusable.
/// Reads the readiness tokio already has; a syscall only when readable.
fn looks_closed(stream: &TcpStream) -> bool {
    let mut cx = Context::from_waker(Waker::noop());
    match stream.poll_read_ready(&mut cx) {
        Poll::Pending => false,
        Poll::Ready(Err(_)) => true,
        Poll::Ready(Ok(())) => {
            let mut probe = [0u8; 1];
            !matches!(stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
        }
    }
}

enum Attempt {
    /// The connection failed before any byte of an answer arrived.
    Stale,
    /// Anything else.
    Failed(String),
}

async fn round_trip(
    conn: &mut Conn,
    head: &[u8],
    body: &[u8],
    head_request: bool,
) -> Result<ResponseHead, Attempt> {
    let stale = |_| Attempt::Stale;
    write_all_vectored(&mut conn.stream, head, body)
        .await
        .map_err(stale)?;
    loop {
        match parse_response(&mut conn.buf, head_request) {
            Ok(Some(head)) => return Ok(head),
            Ok(None) => {}
            Err(why) => return Err(Attempt::Failed(why.into())),
        }
        let received = conn.buf.len();
        match conn.read_more().await {
            Ok(0) | Err(_) if received == 0 => return Err(Attempt::Stale),
            Ok(0) => {
                return Err(Attempt::Failed(
                    "the app closed the connection mid-answer".into(),
                ))
            }
            Ok(_) => {}
            Err(error) => {
                return Err(Attempt::Failed(format!(
                    "reading the app's answer failed: {error}"
                )))
            }
        }
    }
}

/// Writes `head` then `body`, in one syscall when the kernel takes both.
async fn write_all_vectored(stream: &mut TcpStream, head: &[u8], body: &[u8]) -> io::Result<()> {
    if body.is_empty() {
        return stream.write_all(head).await;
    }
    let (mut head, mut body) = (head, body);
    while !head.is_empty() {
        let n = stream
            .write_vectored(&[IoSlice::new(head), IoSlice::new(body)])
            .await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        let from_head = n.min(head.len());
        head = &head[from_head..];
        body = &body[n - from_head..];
    }
    stream.write_all(body).await
}

/// Parses a response head at the start of `buf`, skipping interim (1xx)
/// responses; `Ok(None)` when more bytes are needed.
fn parse_response(
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

/// Header slots tried first, and the most an app's response may have.
const FEW_HEADERS: usize = 32;
const MANY_HEADERS: usize = 256;

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

/// Header fields that describe the connection, or that hookguard writes
/// itself on the way out.
fn dropped(name: &str) -> bool {
    const NAMES: [&str; 10] = [
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "x-request-id",
    ];
    NAMES.iter().any(|n| n.eq_ignore_ascii_case(name))
}

fn describe(
    response: &httparse::Response<'_, '_>,
    status: http::StatusCode,
    head_request: bool,
) -> Result<ResponseHead, &'static str> {
    let mut chunked = None;
    let mut length = None;
    let mut keep_alive = response.version == Some(1);
    let mut named: Vec<&str> = Vec::new();
    for header in response.headers.iter() {
        let value = header.value;
        if header.name.eq_ignore_ascii_case("transfer-encoding") {
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
        } else if header.name.eq_ignore_ascii_case("connection") {
            for option in std::str::from_utf8(value).unwrap_or_default().split(',') {
                let option = option.trim();
                if option.eq_ignore_ascii_case("close") {
                    keep_alive = false;
                } else if option.eq_ignore_ascii_case("keep-alive") && response.version == Some(0) {
                    keep_alive = true;
                } else if !option.is_empty() {
                    named.push(option);
                }
            }
        }
    }
    let no_body = head_request
        || status == http::StatusCode::NO_CONTENT
        || status == http::StatusCode::NOT_MODIFIED;
    let body = match (chunked, length) {
        _ if no_body => BodyKind::Empty,
        (Some(true), _) => BodyKind::Chunked,
        (Some(false), _) => BodyKind::UntilClose,
        (None, Some(n)) => BodyKind::Length(n),
        (None, None) => BodyKind::UntilClose,
    };
    // Both framings at once (RFC 9112 §6.3: chunked wins) is a sign of a
    // confused app; its connection is not trusted with another exchange.
    if body == BodyKind::UntilClose || (chunked.is_some() && length.is_some()) {
        keep_alive = false;
    }
    let mut lines = Vec::with_capacity(256);
    for header in response.headers.iter() {
        if dropped(header.name) || named.iter().any(|n| n.eq_ignore_ascii_case(header.name)) {
            continue;
        }
        header_line(&mut lines, header.name, header.value);
    }
    // A HEAD answer or a 304 may carry the length of the body it stands
    // for; it is passed on, since hookguard writes no framing for them.
    if let (BodyKind::Empty, Some(n)) = (body, length) {
        if n > 0 {
            header_line(&mut lines, "content-length", n.to_string().as_bytes());
        }
    }
    Ok(ResponseHead {
        status,
        lines,
        body,
        keep_alive,
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
        assert_eq!(head.body, BodyKind::Length(3));
        assert_eq!(head.lines, b"X-App: 1\r\n");
        assert!(head.keep_alive);
    }

    #[test]
    fn answers_with_many_headers_are_read_up_to_the_limit() {
        let lines = |n: usize| (0..n).map(|i| format!("X-{i}: v\r\n")).collect::<String>();
        let ok = format!("HTTP/1.1 204 No Content\r\n{}\r\n", lines(FEW_HEADERS + 8));
        assert_eq!(parse(&ok, false).unwrap().unwrap().body, BodyKind::Empty);
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
            BodyKind::Chunked
        );
        let until_close = kind("HTTP/1.1 200 OK\r\n\r\n", false);
        assert_eq!(until_close.body, BodyKind::UntilClose);
        assert!(!until_close.keep_alive);
        let head = kind("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", true);
        assert_eq!(head.body, BodyKind::Empty);
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
