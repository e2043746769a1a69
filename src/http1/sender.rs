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
use std::pin::Pin;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use tokio::time::{Instant, Sleep};

use super::body::{BodyError, BodyLength};
use super::chunked;
use super::head::{self, HeadError, RequestHead};
use super::write::{date_line, header_line, number_line, persistence_line, status_line};
use super::CloseCause;

/// Output is flushed to the socket once this much is assembled.
pub(super) const FLUSH_AT: usize = 64 * 1024;

/// Largest read buffer an idle connection keeps.
const KEPT_BUFFER: usize = 64 * 1024;

/// When closing with request bytes still unread, how much more is read
/// and discarded, and for how long, so that the answer is not lost to a
/// reset (closing a socket with unread data sends RST, and the sender's
/// kernel may drop the answer it had not yet delivered).
const LINGER_BYTES: usize = 1024 * 1024;
const LINGER_FOR: Duration = Duration::from_secs(2);

/// The header carrying the request id back on every answer.
const REQUEST_ID: &str = "x-request-id";

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
    /// The connection ends: with a cause when `header_timeout` ended it,
    /// without one when the sender closed it or hookguard is shutting
    /// down between requests.
    Closed(Option<CloseCause>),
}

/// The sender's connection.
#[derive(Debug)]
pub struct Downstream {
    pub(super) stream: TcpStream,
    /// Bytes read and not yet used: the rest of a head, a body, or the next
    /// pipelined request.
    buf: BytesMut,
    /// Answers are assembled here before being written.
    pub(super) out: Vec<u8>,
    /// The current request's body has not been read in full, so the
    /// connection cannot carry another request.
    unread_body: bool,
    /// The current request expects `100 Continue` before its body.
    expects_continue: bool,
    /// Longest a write may wait for the sender to take more bytes; set
    /// from the limits before each request.
    pub(super) write_timeout: Duration,
    /// A request head has arrived on this connection: a later wait with
    /// nothing read is a kept-alive connection's idle time.
    served: bool,
    /// The deadline of the current wait for the sender (head or body),
    /// one timer for the connection's life. A fresh timeout per read
    /// registered a timer in the runtime's wheel and removed it again
    /// for every request; moving this one's deadline later is a store
    /// (tokio's `Sleep::reset` only extends a registered timer), and it
    /// is re-registered only when it fires.
    deadline: Pin<Box<Sleep>>,
}

impl Downstream {
    /// Wraps an accepted connection.
    pub fn new(stream: TcpStream) -> Self {
        Downstream {
            stream,
            buf: BytesMut::with_capacity(8 * 1024),
            out: Vec::with_capacity(1024),
            unread_body: false,
            expects_continue: false,
            // Set from the limits before any request is read.
            write_timeout: Duration::ZERO,
            served: false,
            // Set before each wait.
            deadline: Box::pin(tokio::time::sleep_until(Instant::now())),
        }
    }

    /// Reads what the sender sent next into `buf` by `deadline`: `None`
    /// once the deadline passed. A read that is ready wins over the
    /// deadline, as with `tokio::time::timeout_at`.
    async fn read_by(&mut self, deadline: Instant) -> Option<io::Result<usize>> {
        self.deadline.as_mut().reset(deadline);
        tokio::select! {
            biased;
            read = self.stream.read_buf(&mut self.buf) => Some(read),
            () = self.deadline.as_mut() => None,
        }
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
                        self.served = true;
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
                return Next::Closed(None);
            }
            reserve(&mut self.buf);
            let served = self.served;
            tokio::select! {
                read = self.read_by(deadline) => match read {
                    Some(Ok(n)) if n > 0 => {}
                    // Too slow: hyper and nginx also close without an
                    // answer here. A connection that never sent a whole
                    // head is told from one idle between requests.
                    None if idle && served => return Next::Closed(Some(CloseCause::IdleTimeout)),
                    None => return Next::Closed(Some(CloseCause::HeaderTimeout)),
                    // Closed or failed: the sender's doing.
                    Some(_) => return Next::Closed(None),
                },
                _ = shutdown.changed(), if idle => return Next::Closed(None),
            }
        }
    }

    /// Whether the bytes read since `scanned` (and the three before, for a
    /// marker split across reads) hold an empty line, the end of a head.
    fn may_hold_head_end(&self, scanned: usize) -> bool {
        let fresh = &self.buf[scanned.saturating_sub(3)..];
        fresh.windows(2).any(|w| w == b"\n\n") || fresh.windows(3).any(|w| w == b"\n\r\n")
    }

    /// Reads the whole body, at most `limit` bytes, within `timeout`; see
    /// [`super::Body::read_to_end`].
    pub(super) async fn read_body(
        &mut self,
        length: BodyLength,
        limit: u64,
        timeout: Duration,
    ) -> Result<Bytes, BodyError> {
        let too_large = BodyError::TooLarge { limit };
        let deadline = Instant::now() + timeout;
        let body = match length {
            // A request has no close-delimited body (RFC 9112 §6.3).
            BodyLength::Empty | BodyLength::UntilClose => Bytes::new(),
            BodyLength::Length(n) if n > limit => return Err(too_large),
            BodyLength::Length(n) => {
                // Bounded by `limit`, which the config keeps far below usize.
                let n = usize::try_from(n).map_err(|_| too_large)?;
                if self.buf.len() < n {
                    self.send_continue().await?;
                    // Room for the next request's head besides this body:
                    // once this body is dropped the buffer reclaims the
                    // allocation, the next read fills it with head and
                    // body, and without the room the body would not fit
                    // behind the head and be copied to a new allocation.
                    self.buf.reserve(n - self.buf.len() + BODY_HEAD_ROOM);
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
                        .map_err(|error| BodyError::Malformed(error.0))?;
                    self.buf.advance(used);
                    if body.len() as u64 > limit {
                        return Err(too_large);
                    }
                    if decoder.is_done() {
                        break;
                    }
                    self.send_continue().await?;
                    reserve(&mut self.buf);
                    self.read_body_bytes(deadline, timeout).await?;
                }
                body.freeze()
            }
        };
        self.unread_body = false;
        Ok(body)
    }

    /// Tells a sender that waits for it to go ahead with the body.
    async fn send_continue(&mut self) -> Result<(), BodyError> {
        if std::mem::take(&mut self.expects_continue) {
            write_all_within(
                &self.stream,
                b"HTTP/1.1 100 Continue\r\n\r\n",
                self.write_timeout,
            )
            .await
            .map_err(|_| BodyError::Incomplete)?;
        }
        Ok(())
    }

    async fn read_body_bytes(
        &mut self,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<(), BodyError> {
        // The caller made room: a declared length reserves the whole body
        // once, and growing that buffer near its end would copy it all.
        match self.read_by(deadline).await {
            None => Err(BodyError::Timeout(timeout)),
            Some(Ok(n)) if n > 0 => Ok(()),
            Some(_) => Err(BodyError::Incomplete),
        }
    }

    /// Writes one of hookguard's own answers. An answer to a HEAD request
    /// (`head_request`) has the headers a GET would get, `Content-Length`
    /// included, and no body (RFC 9110 §9.3.2, §8.6): a pipelining client
    /// would read a body as its next answer.
    pub async fn write_own(
        &mut self,
        response: &Response<Bytes>,
        request_id: &HeaderValue,
        version: Version,
        close: bool,
        head_request: bool,
    ) -> io::Result<()> {
        self.out.clear();
        status_line(&mut self.out, response.status());
        for (name, value) in response.headers() {
            header_line(&mut self.out, name.as_str(), value.as_bytes());
        }
        header_line(&mut self.out, REQUEST_ID, request_id.as_bytes());
        date_line(&mut self.out);
        let body = response.body();
        number_line(&mut self.out, "content-length", body.len() as u64);
        persistence_line(&mut self.out, version, close);
        self.out.extend_from_slice(b"\r\n");
        if !head_request {
            self.out.extend_from_slice(body);
        }
        write_all_within(&self.stream, &self.out, self.write_timeout).await
    }

    /// Starts an answer relayed from the app: the status line, its header
    /// lines, the request id, then `framing` (which the caller writes).
    pub(super) fn start_relay(
        &mut self,
        status: http::StatusCode,
        lines: &[u8],
        request_id: &HeaderValue,
    ) {
        self.out.clear();
        status_line(&mut self.out, status);
        self.out.extend_from_slice(lines);
        header_line(&mut self.out, REQUEST_ID, request_id.as_bytes());
    }

    /// Writes what is assembled once it is worth a syscall.
    pub(super) async fn flush_if_full(&mut self) -> io::Result<()> {
        if self.out.len() >= FLUSH_AT {
            self.flush().await?;
        }
        Ok(())
    }

    /// Writes everything assembled.
    pub(super) async fn flush(&mut self) -> io::Result<()> {
        write_all_within(&self.stream, &self.out, self.write_timeout).await?;
        self.out.clear();
        Ok(())
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
}

/// Writes all of `bytes` to the sender, failing with
/// [`io::ErrorKind::TimedOut`] when the sender takes nothing for `stall`:
/// a sender that stops reading must not hold its connection (and the
/// app's answer) forever. The bound is per stall, not per answer, so a
/// slow but reading sender still gets a large answer. A write that the
/// kernel takes at once, as nearly all do, sets no timer.
async fn write_all_within(stream: &TcpStream, mut bytes: &[u8], stall: Duration) -> io::Result<()> {
    while !bytes.is_empty() {
        match stream.try_write(bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                tokio::time::timeout(stall, stream.writable())
                    .await
                    .map_err(|_| {
                        io::Error::new(
                            io::ErrorKind::TimedOut,
                            "the sender took nothing of its answer within the write timeout",
                        )
                    })??;
            }
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// Keeps room to read into without growing on every read.
/// See `read_body`: a typical head, and then some.
const BODY_HEAD_ROOM: usize = 16 * 1024;

fn reserve(buf: &mut BytesMut) {
    if buf.capacity() - buf.len() < 1024 {
        buf.reserve(8 * 1024);
    }
}
