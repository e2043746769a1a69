//! hookguard's HTTP/1.1 wire layer: the sender's connections and the app's.
//!
//! Why not hyper's server and pooled client here (hyper still serves the
//! admin listener and the CLI): measured on the bench of issue #8, the
//! general-purpose stack spent about 45 µs of CPU in user space per
//! forwarded request (a connection task and a channel per upstream
//! exchange, the pool's checkout, header maps built and rebuilt, a task per
//! forward), where the whole job, verification included, needs under 10.
//! The plain proxies it is compared with (haproxy, nginx) own their HTTP/1
//! code for the same reason. What is hookguard's own here is small: a
//! connection loop, strict framing, and an exchange driven inline on a
//! pooled connection. Tokenising stays with httparse, which hyper also
//! uses.
//!
//! The wire knows nothing of routes, schemes, config or reasons. A
//! connection is served *through* a [`Handler`] passed in, in the shape of
//! hyper's `serve_connection(io, service)`: statically dispatched, so the
//! seam costs nothing per request. Head and body failures are reported to
//! the handler as [`HeadError`] and [`BodyError`]; what each becomes is
//! the handler's to say.
//!
//! - [`head`]: parsing a request head, refusing ambiguous framing.
//! - [`body`]: how a body is delimited (both directions), the request body
//!   still on the connection, and body errors.
//! - [`chunked`]: the chunked coding, decoded incrementally.
//! - [`hop`]: the hop-by-hop list and the one reader of `Connection`.
//! - [`sender`]: the sender's connection (read heads and bodies, write
//!   answers).
//! - [`app`]: one exchange with the app; [`pool`] keeps its idle
//!   connections, [`response`] reads its answer's head.
//! - [`relay`]: passing the app's answer on to the sender.
//! - [`write`](mod@write): the writers of head lines, for every direction.

pub mod app;
pub mod body;
pub mod chunked;
pub mod head;
pub mod hop;
pub mod pool;
pub mod relay;
pub mod response;
pub mod sender;
pub mod write;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::HeaderValue;
use http::{Method, Version};
use tokio::net::TcpStream;
use tokio::sync::watch;

pub use app::AppResponse;
pub use body::{Body, BodyError, BodyLength};
pub use head::{HeadError, RequestHead};
use sender::{Downstream, Next};

/// The limits the wire applies to the next request of a connection, asked
/// of the handler before each one (a reload may change them).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most header lines in a request head.
    pub max_headers: usize,
    /// Most bytes in a request head.
    pub max_head_bytes: usize,
    /// Time allowed for a whole head to arrive, and for an idle kept-alive
    /// connection to send the next one.
    pub header_timeout: Duration,
    /// Longest wait for more of the app's answer body while relaying it.
    pub app_idle: Duration,
    /// Longest a write of an answer (hookguard's own, the app's relayed,
    /// or `100 Continue`) may wait for the sender to take more bytes; the
    /// connection is closed when it passes. Per stall, not per answer.
    pub write_timeout: Duration,
}

/// The sender's peer, formatted once per connection.
#[derive(Debug, Clone)]
pub struct Peer {
    /// The socket address.
    pub addr: SocketAddr,
    /// The IP address as text: `X-Forwarded-For` is written on every
    /// request, and formatting it once per connection is cheaper.
    pub ip: String,
}

impl Peer {
    /// Describes the peer of an accepted connection.
    pub fn new(addr: SocketAddr) -> Self {
        Peer {
            addr,
            ip: addr.ip().to_string(),
        }
    }
}

/// What the sender is answered.
#[derive(Debug)]
pub enum Answer {
    /// An answer made by the handler itself, written whole.
    Own(http::Response<Bytes>),
    /// The app's answer, relayed as it arrives.
    Relay(AppResponse),
}

/// An answer and the request id it carries back (`X-Request-Id`, which the
/// wire writes on every answer and drops from the app's).
#[derive(Debug)]
pub struct Reply {
    /// The request id, kept or generated.
    pub request_id: HeaderValue,
    /// What to send.
    pub answer: Answer,
}

/// What serves the requests of a connection: hyper's `Service`, narrowed
/// to what hookguard needs (a body read only when asked, a refused head).
/// Implemented by the proxy's state; tests implement a plain one.
pub trait Handler: Send + Sync + 'static {
    /// The limits for the next request.
    fn limits(&self) -> Limits;

    /// Answers one request whose head has arrived. Never fails: every
    /// failure is an answer. A body left unread closes the connection
    /// after the answer.
    fn handle(
        &self,
        head: RequestHead,
        body: Body<'_>,
        peer: &Peer,
    ) -> impl Future<Output = Reply> + Send;

    /// Answers bytes that are not an acceptable request head; the
    /// connection closes after the answer.
    fn refuse(&self, error: HeadError, peer: &Peer) -> Reply;

    /// Told when the wire closes a connection for `cause`, to count it:
    /// these closes are no request's outcome, so nothing else sees them.
    fn closed(&self, cause: CloseCause);
}

/// Why the wire closed a connection that the sender had not closed, other
/// than after an answer that said so: what [`Handler::closed`] is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseCause {
    /// No whole request head arrived within `header_timeout` (a head had
    /// begun, or the connection never sent one): a slow or stalled sender.
    HeaderTimeout,
    /// A kept-alive connection sent no next request within
    /// `header_timeout`: an ordinary end, counted so that it is told apart
    /// from the stalls.
    IdleTimeout,
    /// The sender took nothing of an answer for `write_timeout`.
    WriteTimeout,
    /// Writing an answer failed: the sender reset or closed the
    /// connection before taking it all.
    WriteFailed,
    /// The app's answer broke off while it was passed on (stalled, closed
    /// early, broken chunked coding): the sender got a cut answer.
    RelayFailed,
}

impl CloseCause {
    /// Every cause, for creating metric series at zero.
    pub const ALL: [CloseCause; 5] = [
        CloseCause::HeaderTimeout,
        CloseCause::IdleTimeout,
        CloseCause::WriteTimeout,
        CloseCause::WriteFailed,
        CloseCause::RelayFailed,
    ];

    /// The metric label and log value.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseCause::HeaderTimeout => "header_timeout",
            CloseCause::IdleTimeout => "idle_timeout",
            CloseCause::WriteTimeout => "write_timeout",
            CloseCause::WriteFailed => "write_failed",
            CloseCause::RelayFailed => "relay_failed",
        }
    }

    /// The cause of a failed write to the sender.
    fn of_write(error: &std::io::Error) -> Self {
        if error.kind() == std::io::ErrorKind::TimedOut {
            CloseCause::WriteTimeout
        } else {
            CloseCause::WriteFailed
        }
    }
}

/// Serves the requests of one connection through `handler`, one at a time,
/// until the sender closes, a request asks to close, the connection cannot
/// be reused, an answer cannot be written (the sender stopped taking it
/// for `write_timeout`), or `shutdown` turns true between requests.
pub async fn serve_connection<H: Handler>(
    handler: Arc<H>,
    stream: TcpStream,
    peer: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
) {
    let peer = Peer::new(peer);
    let mut down = Downstream::new(stream);
    loop {
        let limits = handler.limits();
        down.write_timeout = limits.write_timeout;
        let next = down
            .next_head(
                limits.max_headers,
                limits.max_head_bytes,
                limits.header_timeout,
                &mut shutdown,
            )
            .await;
        // A HEAD answer has no body (RFC 9110 §9.3.2); a refused head is
        // answered as a GET would be, and the connection closes after it.
        let (reply, version, keep_alive, head_request) = match next {
            Next::Closed(cause) => {
                if let Some(cause) = cause {
                    handler.closed(cause);
                }
                return;
            }
            Next::Bad(error) => (handler.refuse(error, &peer), Version::HTTP_11, false, false),
            Next::Head(head) => {
                let (version, keep_alive) = (head.version, head.keep_alive);
                let head_request = head.method == Method::HEAD;
                let body = Body {
                    down: &mut down,
                    length: head.body,
                };
                let reply = handler.handle(head, body, &peer).await;
                (reply, version, keep_alive, head_request)
            }
        };
        let keep = keep_alive && down.reusable() && !*shutdown.borrow();
        // Ok(whether the connection carries another request), or why the
        // answer could not be written whole: nothing more can reach the
        // sender then, so the connection is dropped without lingering.
        let passed = match reply.answer {
            Answer::Own(response) => down
                .write_own(&response, &reply.request_id, version, !keep, head_request)
                .await
                .map(|()| keep)
                .map_err(|error| {
                    tracing::debug!(%error, peer = %peer.addr, "writing hookguard's answer failed");
                    CloseCause::of_write(&error)
                }),
            Answer::Relay(mut response) => {
                match relay::relay(
                    &mut down,
                    &mut response,
                    &reply.request_id,
                    version,
                    !keep,
                    limits.app_idle,
                )
                .await
                {
                    Ok(passed) => {
                        if passed.app_reusable {
                            response.checkin();
                        }
                        Ok(!passed.close)
                    }
                    Err(error) => {
                        tracing::debug!(%error, peer = %peer.addr, "passing the app's response on failed");
                        Err(match error {
                            relay::RelayError::Sender(error) => CloseCause::of_write(&error),
                            relay::RelayError::App(_) => CloseCause::RelayFailed,
                        })
                    }
                }
            }
        };
        match passed {
            Ok(true) => {}
            Ok(false) => {
                down.close().await;
                return;
            }
            Err(cause) => {
                handler.closed(cause);
                return;
            }
        }
    }
}
