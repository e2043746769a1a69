//! The app's side: one exchange on a kept-alive connection, driven inline
//! by the request's own task.
//!
//! Driving the exchange inline (no connection task, no channel, no
//! checkout future) is most of why hookguard is not slower than a plain
//! proxy; see the module doc of [`crate::http1`]. An exchange on a reused
//! connection is re-sent once on a fresh one only when the request
//! provably never reached the app (see [`exchange`]): a webhook is a POST,
//! and one delivered twice is worse than one answered 502, which the
//! sender retries. The idle connections themselves are kept by
//! [`super::pool`], and the answer's head is read by [`super::response`].

use std::io::{self, IoSlice};
use std::time::Duration;

use bytes::BytesMut;
use http::uri::Authority;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::body::BodyLength;
use super::chunked::Decoder;
use super::pool;
use super::response::{parse_response, ResponseHead};

/// Time allowed to open a connection to the app.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

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
    /// The socket, for the pool's readiness check.
    pub(super) fn stream(&self) -> &TcpStream {
        &self.stream
    }

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

/// Why an exchange with the app failed.
#[derive(Debug)]
pub enum Failure {
    /// No connection could be opened.
    Connect(io::Error),
    /// The connection failed, or the app's answer was not valid HTTP.
    Broken(String),
}

/// The app's answer whose head has arrived; its body is still on `conn`.
#[derive(Debug)]
pub struct AppResponse {
    /// The app the connection leads to, for returning it to the pool.
    pub authority: Authority,
    /// The connection the body arrives on.
    pub conn: Conn,
    /// The parsed head.
    pub head: ResponseHead,
}

impl AppResponse {
    /// Keeps the connection, whose exchange ended cleanly, for the next
    /// request on this thread.
    pub fn checkin(self) {
        let AppResponse {
            authority,
            mut conn,
            ..
        } = self;
        conn.reused = true;
        conn.buf.clear();
        pool::checkin(authority, conn);
    }

    /// The whole (decoded) body, when it is at most `max` bytes, however
    /// it is delimited: read ahead into the connection's buffer, waiting at
    /// most `idle` per read, and copied out; relaying the answer then
    /// passes the same bytes on. `None` for a larger body, or an app that
    /// stalls or breaks off.
    pub async fn small_body(&mut self, max: usize, idle: Duration) -> Option<bytes::Bytes> {
        match self.head.body {
            BodyLength::Empty => Some(bytes::Bytes::new()),
            BodyLength::Length(n) => {
                let n = usize::try_from(n).ok().filter(|n| *n <= max)?;
                while self.conn.buf.len() < n {
                    self.read_ahead(idle).await?;
                }
                Some(bytes::Bytes::copy_from_slice(&self.conn.buf[..n]))
            }
            BodyLength::Chunked => loop {
                // Decoded afresh from the buffer's start each time: the
                // buffer itself is left for the relay to decode again.
                let mut decoder = Decoder::default();
                let mut body = Vec::new();
                decoder
                    .decode(&self.conn.buf, |data| body.extend_from_slice(data))
                    .ok()?;
                if body.len() > max {
                    return None;
                }
                if decoder.is_done() {
                    return Some(body.into());
                }
                // Chunk framing is small next to the data; a body within
                // `max` never needs much more raw than this.
                if self.conn.buf.len() > 2 * max + 1024 {
                    return None;
                }
                self.read_ahead(idle).await?;
            },
            // The app closes after the body (PHP's built-in server, many
            // HTTP/1.0-style apps): read to the close, and the relay then
            // finds the whole body in the buffer and the connection ended.
            BodyLength::UntilClose => loop {
                if self.conn.buf.len() > max {
                    return None;
                }
                match self.conn.read_more_within(idle).await {
                    Ok(0) => return Some(bytes::Bytes::copy_from_slice(&self.conn.buf)),
                    Ok(_) => {}
                    Err(_) => return None,
                }
            },
        }
    }

    /// Reads more of the answer into the buffer; `None` when the app
    /// stalled past `idle` or closed.
    async fn read_ahead(&mut self, idle: Duration) -> Option<()> {
        match self.conn.read_more_within(idle).await {
            Ok(read) if read > 0 => Some(()),
            _ => None,
        }
    }
}

/// Sends `head` and `body` to the app and reads the response head, on a
/// kept-alive connection when there is one. `head_request` says the
/// request is a HEAD, whose answer has no body.
///
/// The request is re-sent, once, on a fresh connection only when it
/// provably never reached the app, whatever its method. That is hyper's
/// rule (it retries a request only when it was never written) and Go's
/// `Transport` rule for a request that is not idempotent (`RoundTrip`
/// retries on a reused connection only a `nothingWrittenError`, unless
/// the method is GET, HEAD, OPTIONS or TRACE), narrowed to what a socket
/// can prove. On a reused connection, before any byte of an answer:
///
/// - the write failed before a byte of the request was accepted: nothing
///   was sent;
/// - the app reset the connection (`ECONNRESET` on the read, `EPIPE` or
///   `ECONNRESET` on the write): a TCP stack resets a connection closed
///   with unread bytes in it, or one that bytes reach after it was closed,
///   so the app never read the request whole, and an HTTP server acts on a
///   request only once it has it. This is the idle-close race: the app
///   closed the pooled connection as the request was on its way.
///
/// Not re-sent: the app ended the connection cleanly (EOF) before
/// answering, since it may have read the request whole and acted on it
/// first (a crash after processing looks the same); and anything on a
/// fresh connection, where the app had no idle connection to close. A
/// POST fully written on a reused connection that then got EOF is
/// answered 502, not delivered twice. (An app that reads a request whole
/// and then aborts with a reset, `SO_LINGER` 0, would be indistinguishable
/// from the race; no server behind hookguard does that after acting on a
/// request.)
pub async fn exchange(
    authority: &Authority,
    head: &[u8],
    body: &[u8],
    head_request: bool,
) -> Result<AppResponse, Failure> {
    let mut fresh = false;
    loop {
        let pooled = if fresh {
            None
        } else {
            pool::checkout(authority)
        };
        let mut conn = match pooled {
            Some(conn) => conn,
            None => connect(authority).await.map_err(Failure::Connect)?,
        };
        match round_trip(&mut conn, head, body, head_request).await {
            Ok(head) => {
                return Ok(AppResponse {
                    authority: authority.clone(),
                    conn,
                    head,
                })
            }
            Err(Attempt::Unread) if conn.reused && !fresh => fresh = true,
            Err(Attempt::Unread | Attempt::Ended) => {
                return Err(Failure::Broken(
                    "the app closed the connection without answering".into(),
                ))
            }
            Err(Attempt::Failed(why)) => return Err(Failure::Broken(why)),
        }
    }
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

/// How an attempt failed, as far as the rule of [`exchange`] cares.
enum Attempt {
    /// Before any byte of an answer, and provably before the app read the
    /// request whole: nothing was written, or the app reset the
    /// connection.
    Unread,
    /// The app closed the connection cleanly (EOF) before any byte of an
    /// answer; it may have read the request.
    Ended,
    /// Anything else.
    Failed(String),
}

/// Whether an I/O error is the peer's reset.
fn is_reset(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
    )
}

async fn round_trip(
    conn: &mut Conn,
    head: &[u8],
    body: &[u8],
    head_request: bool,
) -> Result<ResponseHead, Attempt> {
    let mut written = 0;
    if let Err(error) = write_all_vectored(&mut conn.stream, head, body, &mut written).await {
        return Err(if written == 0 || is_reset(&error) {
            Attempt::Unread
        } else {
            Attempt::Failed(format!("sending the request to the app failed: {error}"))
        });
    }
    loop {
        match parse_response(&mut conn.buf, head_request) {
            Ok(Some(head)) => return Ok(head),
            Ok(None) => {}
            Err(why) => return Err(Attempt::Failed(why.into())),
        }
        let received = conn.buf.len();
        match conn.read_more().await {
            Ok(0) if received == 0 => return Err(Attempt::Ended),
            Err(error) if received == 0 && is_reset(&error) => return Err(Attempt::Unread),
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

/// Writes `head` then `body`, in one syscall when the kernel takes both;
/// `written` counts the bytes the kernel accepted, for telling a request
/// never sent from one partly sent.
async fn write_all_vectored(
    stream: &mut TcpStream,
    head: &[u8],
    body: &[u8],
    written: &mut usize,
) -> io::Result<()> {
    let (mut head, mut body) = (head, body);
    while !head.is_empty() || !body.is_empty() {
        let n = match (head.is_empty(), body.is_empty()) {
            (false, false) => {
                stream
                    .write_vectored(&[IoSlice::new(head), IoSlice::new(body)])
                    .await?
            }
            (false, true) => stream.write(head).await?,
            (true, _) => stream.write(body).await?,
        };
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        *written += n;
        let from_head = n.min(head.len());
        head = &head[from_head..];
        body = &body[n - from_head..];
    }
    Ok(())
}
