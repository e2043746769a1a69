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
//! connection loop, strict framing ([`head`], [`chunked`]), and an exchange
//! driven inline on a pooled connection ([`upstream`]). Tokenising stays
//! with httparse, which hyper also uses.
//!
//! - [`head`]: parsing a request head, refusing ambiguous framing.
//! - [`chunked`]: the chunked coding, decoded incrementally.
//! - [`conn`]: the sender's connection (read heads and bodies, write
//!   answers).
//! - [`upstream`]: the pool of connections to the app and one exchange.

pub mod chunked;
pub mod conn;
pub mod head;
pub mod upstream;

use std::net::SocketAddr;
use std::sync::Arc;

use http::Version;
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::proxy::{self, Answer, State};
use conn::{Downstream, Next};

/// Appends one header field line, `name: value` and CRLF: the one writer
/// of field lines for heads going either way.
pub fn header_line(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Serves the requests of one connection, one at a time, until the sender
/// closes, a request asks to close, the connection cannot be reused, or
/// `shutdown` turns true between requests.
pub async fn serve_connection(
    state: Arc<State>,
    stream: TcpStream,
    peer: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut down = Downstream::new(stream, peer);
    loop {
        let (max_headers, max_head_bytes, header_timeout, idle) = {
            let live = state.live.load();
            let server = &live.config.server;
            (
                server.max_headers,
                server.max_header_bytes,
                server.header_timeout,
                server.upstream_timeout,
            )
        };
        let next = down
            .next_head(max_headers, max_head_bytes, header_timeout, &mut shutdown)
            .await;
        let (reply, version, keep_alive) = match next {
            Next::Closed => return,
            Next::Bad(error) => (
                proxy::refuse_head(&state, peer, &error),
                Version::HTTP_11,
                false,
            ),
            Next::Head(head) => {
                let (version, keep_alive) = (head.version, head.keep_alive);
                let reply = proxy::handle(&state, &mut down, peer, head).await;
                (reply, version, keep_alive)
            }
        };
        let keep = keep_alive && down.reusable() && !*shutdown.borrow();
        let reused = match reply.answer {
            Answer::Own(response) => down
                .write_own(&response, &reply.request_id, version, !keep)
                .await
                .is_ok_and(|()| keep),
            Answer::Forwarded(mut response) => {
                match down
                    .write_forwarded(&mut response, &reply.request_id, version, !keep, idle)
                    .await
                {
                    Ok(passed) => {
                        if passed.app_reusable {
                            upstream::checkin(response);
                        }
                        !passed.close
                    }
                    Err(error) => {
                        tracing::debug!(%error, %peer, "passing the app's response on failed");
                        false
                    }
                }
            }
        };
        if !reused {
            down.close().await;
            return;
        }
    }
}
