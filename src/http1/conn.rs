//! The sender's side of a connection: reading heads and bodies, writing
//! answers.
//!
//! One buffer is read into and reused across the requests of a connection;
//! a body that arrived with its head is handed on without a copy. Answers
//! are assembled in one output buffer and written with as few syscalls as
//! the kernel allows (one, for a small response).

use std::io;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http::header::HeaderValue;
use http::{Response, Version};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

use super::head::{self, BodyLength, HeadError, RequestHead};
use super::upstream::{self, BodyKind};
use super::{chunked, header_line};
use crate::reject::{Reason, Reject};

/// Output is flushed to the socket once this much is assembled.
const FLUSH_AT: usize = 64 * 1024;

/// Largest read buffer an idle connection keeps.
const KEPT_BUFFER: usize = 64 * 1024;

/// When closing with request bytes still unread, how much more is read
/// and discarded, and for how long, so that the answer is not lost to a
/// reset (closing a socket with unread data sends RST, and the sender's
/// kernel may drop the answer it had not yet delivered).
const LINGER_BYTES: usize = 1024 * 1024;
const LINGER_FOR: Duration = Duration::from_secs(2);

/// What waiting for the next request gave.
// Moved out once per request; boxing the head would cost an allocation
// per request to save a few hundred bytes of stack.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Next {
    /// A request head; its body is still to be read.
    Head(RequestHead),
    /// Bytes that are not an acceptable request head.
    Bad(HeadError),
    /// The sender closed, went idle past `header_timeout`, or hookguard is
    /// shutting down between requests.
    Closed,
}

/// How passing a response on ended.
#[derive(Debug, Clone, Copy)]
pub struct Passed {
    /// The app's connection is ready for another exchange.
    pub app_reusable: bool,
    /// The sender was told the connection closes.
    pub close: bool,
}

/// The sender's connection.
#[derive(Debug)]
pub struct Downstream {
    stream: TcpStream,
    /// Bytes read and not yet used: the rest of a head, a body, or the next
    /// pipelined request.
    buf: BytesMut,
    /// Answers are assembled here before being written.
    out: Vec<u8>,
    /// The current request's body has not been read in full, so the
    /// connection cannot carry another request.
    unread_body: bool,
    /// The current request expects `100 Continue` before its body.
    expects_continue: bool,
    /// The peer's address as text, for `X-Forwarded-For`; formatted once
    /// per connection rather than per request.
    peer_ip: String,
}

impl Downstream {
    /// Wraps an accepted connection.
    pub fn new(stream: TcpStream, peer: std::net::SocketAddr) -> Self {
        Downstream {
            peer_ip: peer.ip().to_string(),
            stream,
            buf: BytesMut::with_capacity(8 * 1024),
            out: Vec::with_capacity(1024),
            unread_body: false,
            expects_continue: false,
        }
    }

    /// The peer's IP address as text.
    pub fn peer_ip(&self) -> &str {
        &self.peer_ip
    }

    /// Whether the connection can carry another request after this answer.
    pub fn reusable(&self) -> bool {
        !self.unread_body
    }

    /// Waits for the next request head, at most `timeout` from now; an
    /// idle connection also ends when `shutdown` turns true.
    pub async fn next_head(
        &mut self,
        max_headers: usize,
        max_head_bytes: usize,
        timeout: Duration,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Next {
        // A large body read earlier left a large buffer behind; an idle
        // connection should not keep it.
        if self.buf.is_empty() && self.buf.capacity() > KEPT_BUFFER {
            self.buf = BytesMut::with_capacity(8 * 1024);
        }
        let deadline = Instant::now() + timeout;
        // Bytes known not to hold the end of the head. A head is parsed
        // when one may be complete, not on every read: a sender trickling
        // a large head byte by byte would otherwise cost a parse per byte.
        let mut scanned = 0;
        loop {
            if !self.buf.is_empty() && (scanned == 0 || self.may_hold_head_end(scanned)) {
                match head::parse(&mut self.buf, max_headers, max_head_bytes) {
                    Ok(Some(head)) => {
                        self.unread_body = head.body != BodyLength::Empty;
                        self.expects_continue = head.expect_continue;
                        return Next::Head(head);
                    }
                    Ok(None) => {}
                    Err(error) => {
                        self.unread_body = true;
                        return Next::Bad(error);
                    }
                }
            }
            if self.buf.len() > max_head_bytes {
                self.unread_body = true;
                return Next::Bad(HeadError::TooLarge(
                    "the request head is larger than allowed",
                ));
            }
            scanned = self.buf.len();
            let idle = scanned == 0;
            if idle && *shutdown.borrow() {
                return Next::Closed;
            }
            reserve(&mut self.buf);
            let read = tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf));
            tokio::select! {
                read = read => match read {
                    Ok(Ok(n)) if n > 0 => {}
                    // Closed, failed, or too slow: hyper and nginx also
                    // close without an answer here.
                    _ => return Next::Closed,
                },
                _ = shutdown.changed(), if idle => return Next::Closed,
            }
        }
    }

    /// Whether the bytes read since `scanned` (and the three before, for a
    /// marker split across reads) hold an empty line, the end of a head.
    fn may_hold_head_end(&self, scanned: usize) -> bool {
        let fresh = &self.buf[scanned.saturating_sub(3)..];
        fresh.windows(2).any(|w| w == b"\n\n") || fresh.windows(3).any(|w| w == b"\n\r\n")
    }

    /// Reads the whole body, at most `limit` bytes, within `timeout`.
    pub async fn read_body(
        &mut self,
        length: BodyLength,
        limit: u64,
        timeout: Duration,
    ) -> Result<Bytes, Reject> {
        let too_large = || {
            Reject::with(
                Reason::BodyTooLarge,
                format!("the body is larger than this route's limit of {limit} bytes"),
            )
        };
        let deadline = Instant::now() + timeout;
        let body = match length {
            BodyLength::Empty => Bytes::new(),
            BodyLength::Length(n) if n > limit => return Err(too_large()),
            BodyLength::Length(n) => {
                // Bounded by `limit`, which the config keeps far below usize.
                let n = usize::try_from(n).map_err(|_| too_large())?;
                if self.buf.len() < n {
                    self.send_continue().await?;
                    self.buf.reserve(n - self.buf.len());
                    while self.buf.len() < n {
                        self.read_body_bytes(deadline, timeout).await?;
                    }
                }
                self.buf.split_to(n).freeze()
            }
            BodyLength::Chunked => {
                let mut decoder = chunked::Decoder::default();
                let mut body = BytesMut::new();
                loop {
                    let used = decoder
                        .decode(&self.buf, |data| body.extend_from_slice(data))
                        .map_err(|error| Reject::new(Reason::MalformedRequest, error.0))?;
                    self.buf.advance(used);
                    if body.len() as u64 > limit {
                        return Err(too_large());
                    }
                    if decoder.is_done() {
                        break;
                    }
                    self.send_continue().await?;
                    self.read_body_bytes(deadline, timeout).await?;
                }
                body.freeze()
            }
        };
        self.unread_body = false;
        Ok(body)
    }

    /// Tells a sender that waits for it to go ahead with the body.
    async fn send_continue(&mut self) -> Result<(), Reject> {
        if std::mem::take(&mut self.expects_continue) {
            self.stream
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .await
                .map_err(|_| incomplete())?;
        }
        Ok(())
    }

    async fn read_body_bytes(
        &mut self,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<(), Reject> {
        reserve(&mut self.buf);
        match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf)).await {
            Err(_) => Err(Reject::with(
                Reason::BodyTimeout,
                format!("the body did not arrive within {} ms", timeout.as_millis()),
            )),
            Ok(Ok(n)) if n > 0 => Ok(()),
            Ok(_) => Err(incomplete()),
        }
    }

    /// Writes one of hookguard's own answers.
    pub async fn write_own(
        &mut self,
        response: &Response<Bytes>,
        request_id: &HeaderValue,
        version: Version,
        close: bool,
    ) -> io::Result<()> {
        self.out.clear();
        status_line(&mut self.out, response.status());
        for (name, value) in response.headers() {
            header_line(&mut self.out, name.as_str(), value.as_bytes());
        }
        header_line(&mut self.out, "x-request-id", request_id.as_bytes());
        date_line(&mut self.out);
        let body = response.body();
        header_line(
            &mut self.out,
            "content-length",
            body.len().to_string().as_bytes(),
        );
        persistence_line(&mut self.out, version, close);
        self.out.extend_from_slice(b"\r\n");
        self.out.extend_from_slice(body);
        self.stream.write_all(&self.out).await
    }

    /// Passes the app's response on: its head, then its body as it arrives,
    /// re-framed for the sender.
    pub async fn write_forwarded(
        &mut self,
        response: &mut upstream::Response,
        request_id: &HeaderValue,
        version: Version,
        close: bool,
        idle: Duration,
    ) -> io::Result<Passed> {
        let head = &response.head;
        // Chunked and close-delimited bodies go to an HTTP/1.1 sender
        // chunked; an HTTP/1.0 sender gets them delimited by the close.
        let streamed = matches!(head.body, BodyKind::Chunked | BodyKind::UntilClose);
        let rechunk = streamed && version == Version::HTTP_11;
        let close = close || (streamed && !rechunk);
        self.out.clear();
        status_line(&mut self.out, head.status);
        self.out.extend_from_slice(&head.lines);
        header_line(&mut self.out, "x-request-id", request_id.as_bytes());
        match head.body {
            BodyKind::Length(n) => {
                header_line(&mut self.out, "content-length", n.to_string().as_bytes())
            }
            _ if rechunk => self
                .out
                .extend_from_slice(b"transfer-encoding: chunked\r\n"),
            _ => {}
        }
        persistence_line(&mut self.out, version, close);
        self.out.extend_from_slice(b"\r\n");
        let conn = &mut response.conn;
        let finished = match head.body {
            BodyKind::Empty => true,
            BodyKind::Length(n) => {
                let mut left = n;
                loop {
                    let take = conn
                        .buf
                        .len()
                        .min(usize::try_from(left).unwrap_or(usize::MAX));
                    self.out.extend_from_slice(&conn.buf[..take]);
                    conn.buf.advance(take);
                    left -= take as u64;
                    if left == 0 {
                        break;
                    }
                    self.flush_if_full().await?;
                    read_app(conn, idle).await?;
                }
                true
            }
            BodyKind::Chunked => {
                let mut decoder = chunked::Decoder::default();
                loop {
                    let out = &mut self.out;
                    let used = decoder
                        .decode(&conn.buf, |data| push_data(out, data, rechunk))
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.0))?;
                    conn.buf.advance(used);
                    if decoder.is_done() {
                        break;
                    }
                    self.flush_if_full().await?;
                    read_app(conn, idle).await?;
                }
                if rechunk {
                    self.out.extend_from_slice(b"0\r\n\r\n");
                }
                true
            }
            BodyKind::UntilClose => {
                loop {
                    push_data(&mut self.out, &conn.buf, rechunk);
                    conn.buf.clear();
                    self.flush_if_full().await?;
                    if conn.read_more_within(idle).await? == 0 {
                        break;
                    }
                }
                if rechunk {
                    self.out.extend_from_slice(b"0\r\n\r\n");
                }
                false
            }
        };
        self.stream.write_all(&self.out).await?;
        self.out.clear();
        Ok(Passed {
            app_reusable: finished && head.keep_alive && conn.buf.is_empty(),
            close,
        })
    }

    /// Ends the connection after its last answer. With request bytes still
    /// unread, the sending side is shut first and the rest read and
    /// discarded for a bounded time, so that the sender reads the answer
    /// before any reset.
    pub async fn close(mut self) {
        if !self.unread_body {
            return;
        }
        if self.stream.shutdown().await.is_err() {
            return;
        }
        let mut discarded = 0;
        let linger = async {
            while discarded < LINGER_BYTES {
                self.buf.clear();
                reserve(&mut self.buf);
                match self.stream.read_buf(&mut self.buf).await {
                    Ok(n) if n > 0 => discarded += n,
                    _ => break,
                }
            }
        };
        let _ = tokio::time::timeout(LINGER_FOR, linger).await;
    }

    async fn flush_if_full(&mut self) -> io::Result<()> {
        if self.out.len() >= FLUSH_AT {
            self.stream.write_all(&self.out).await?;
            self.out.clear();
        }
        Ok(())
    }
}

fn incomplete() -> Reject {
    Reject::new(
        Reason::BodyIncomplete,
        "the connection failed before the whole body arrived",
    )
}

/// Reads more of the app's body; its end here is an error.
async fn read_app(conn: &mut upstream::Conn, idle: Duration) -> io::Result<()> {
    match conn.read_more_within(idle).await? {
        0 => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the app closed the connection mid-body",
        )),
        _ => Ok(()),
    }
}

fn push_data(out: &mut Vec<u8>, data: &[u8], rechunk: bool) {
    if data.is_empty() {
        return;
    }
    if rechunk {
        out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
    } else {
        out.extend_from_slice(data);
    }
}

/// Keeps room to read into without growing on every read.
fn reserve(buf: &mut BytesMut) {
    if buf.capacity() - buf.len() < 1024 {
        buf.reserve(8 * 1024);
    }
}

fn status_line(out: &mut Vec<u8>, status: http::StatusCode) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("Unknown").as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Says whether the connection stays open: HTTP/1.1 keeps it unless told,
/// HTTP/1.0 closes it unless told (RFC 9112 §9.3).
fn persistence_line(out: &mut Vec<u8>, version: Version, close: bool) {
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    } else if version == Version::HTTP_10 {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
}

/// The `Date` of hookguard's own answers, formatted once a second.
fn date_line(out: &mut Vec<u8>) {
    use std::cell::RefCell;
    use std::time::{SystemTime, UNIX_EPOCH};
    thread_local! {
        static CACHED: RefCell<(u64, String)> = const { RefCell::new((0, String::new())) };
    }
    let now = SystemTime::now();
    let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    CACHED.with_borrow_mut(|(at, text)| {
        if *at != second || text.is_empty() {
            *at = second;
            *text = httpdate::fmt_http_date(now);
        }
        header_line(out, "date", text.as_bytes());
    });
}
