//! Idle keep-alive connections to the app, kept per thread.
//!
//! A connection belongs to the runtime of the thread that opened it (each
//! worker thread runs its own, see `hookguard::server`), and a
//! thread-local list needs no lock. Keyed by the app's address, which a
//! reload may change. A connection the app has closed while idle (a Node
//! app closes idle ones after 5 s) is noticed from its readiness before
//! it is handed out.

use std::cell::RefCell;
use std::io;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use http::uri::Authority;
use tokio::net::TcpStream;

use super::app::Conn;

/// Idle connections kept per app; more than the busiest moment needs is
/// waste.
const MAX_IDLE: usize = 256;

/// An idle connection older than this is closed rather than reused.
const IDLE_FOR: Duration = Duration::from_secs(30);

/// Apps remembered per thread; only a reload adds one.
const MAX_APPS: usize = 4;

#[derive(Debug, Default)]
struct Idle {
    by_app: Vec<(Authority, Vec<(Conn, Instant)>)>,
}

thread_local! {
    static IDLE: RefCell<Idle> = RefCell::default();
}

/// Keeps `conn`, whose exchange ended cleanly, for the next request to
/// `authority` on this thread.
pub(super) fn checkin(authority: Authority, conn: Conn) {
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
pub(super) fn checkout(authority: &Authority) -> Option<Conn> {
    IDLE.with_borrow_mut(|idle| {
        let (_, conns) = idle.by_app.iter_mut().find(|(a, _)| a == authority)?;
        while let Some((conn, since)) = conns.pop() {
            if since.elapsed() < IDLE_FOR && !looks_closed(conn.stream()) {
                return Some(conn);
            }
        }
        None
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
