//! The splice: passing the app's answer on to the sender as it arrives,
//! re-framed for the sender's version.
//!
//! Neither side's code: it reads the app's connection ([`super::app`]) and
//! writes the sender's ([`super::sender`]), as pingora keeps its relay
//! above both sessions. Chunked and close-delimited bodies go to an
//! HTTP/1.1 sender chunked; an HTTP/1.0 sender gets them delimited by the
//! close.

use std::io;
use std::time::Duration;

use bytes::Buf;
use http::header::HeaderValue;
use http::Version;

use super::app::{AppResponse, Conn};
use super::body::BodyLength;
use super::chunked;
use super::sender::Downstream;
use super::write::{self, number_line, persistence_line};

/// Why passing an answer on failed: which side broke.
#[derive(Debug)]
pub enum RelayError {
    /// Writing to the sender failed, or stalled past the write timeout.
    Sender(io::Error),
    /// The app's answer broke off: it stalled past the idle bound, closed
    /// the connection early, or its chunked coding was broken.
    App(io::Error),
}

impl std::fmt::Display for RelayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RelayError::Sender(error) => write!(f, "writing to the sender: {error}"),
            RelayError::App(error) => write!(f, "reading the app's answer: {error}"),
        }
    }
}

/// How passing an answer on ended.
#[derive(Debug, Clone, Copy)]
pub struct Passed {
    /// The app's connection is ready for another exchange.
    pub app_reusable: bool,
    /// The sender was told the connection closes.
    pub close: bool,
}

/// Passes the app's answer on: its head, then its body as it arrives.
/// `close` says the sender is to be told the connection closes; `idle`
/// bounds each wait for more of the app's body.
pub async fn relay(
    down: &mut Downstream,
    response: &mut AppResponse,
    request_id: &HeaderValue,
    version: Version,
    close: bool,
    idle: Duration,
) -> Result<Passed, RelayError> {
    let head = &response.head;
    let streamed = matches!(head.body, BodyLength::Chunked | BodyLength::UntilClose);
    let rechunk = streamed && version == Version::HTTP_11;
    let close = close || (streamed && !rechunk);
    down.start_relay(head.status, &head.lines, request_id);
    match head.body {
        BodyLength::Length(n) => number_line(&mut down.out, "content-length", n),
        _ if rechunk => down
            .out
            .extend_from_slice(b"transfer-encoding: chunked\r\n"),
        _ => {}
    }
    persistence_line(&mut down.out, version, close);
    down.out.extend_from_slice(b"\r\n");
    let conn = &mut response.conn;
    let finished = match head.body {
        BodyLength::Empty => true,
        BodyLength::Length(n) => {
            let mut left = n;
            loop {
                let take = conn
                    .buf
                    .len()
                    .min(usize::try_from(left).unwrap_or(usize::MAX));
                down.out.extend_from_slice(&conn.buf[..take]);
                conn.buf.advance(take);
                left -= take as u64;
                if left == 0 {
                    break;
                }
                down.flush_if_full().await.map_err(RelayError::Sender)?;
                read_app(conn, idle).await.map_err(RelayError::App)?;
            }
            true
        }
        BodyLength::Chunked => {
            let mut decoder = chunked::Decoder::default();
            loop {
                let out = &mut down.out;
                let used = decoder
                    .decode(&conn.buf, |data| push_data(out, data, rechunk))
                    .map_err(|e| {
                        RelayError::App(io::Error::new(io::ErrorKind::InvalidData, e.0))
                    })?;
                conn.buf.advance(used);
                if decoder.is_done() {
                    break;
                }
                down.flush_if_full().await.map_err(RelayError::Sender)?;
                read_app(conn, idle).await.map_err(RelayError::App)?;
            }
            if rechunk {
                down.out.extend_from_slice(write::LAST_CHUNK);
            }
            true
        }
        BodyLength::UntilClose => {
            loop {
                push_data(&mut down.out, &conn.buf, rechunk);
                conn.buf.clear();
                down.flush_if_full().await.map_err(RelayError::Sender)?;
                if conn.read_more_within(idle).await.map_err(RelayError::App)? == 0 {
                    break;
                }
            }
            if rechunk {
                down.out.extend_from_slice(write::LAST_CHUNK);
            }
            false
        }
    };
    down.flush().await.map_err(RelayError::Sender)?;
    Ok(Passed {
        app_reusable: finished && head.keep_alive && conn.buf.is_empty(),
        close,
    })
}

/// Reads more of the app's body; its end here is an error.
async fn read_app(conn: &mut Conn, idle: Duration) -> io::Result<()> {
    match conn.read_more_within(idle).await? {
        0 => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the app closed the connection mid-body",
        )),
        _ => Ok(()),
    }
}

fn push_data(out: &mut Vec<u8>, data: &[u8], rechunk: bool) {
    if rechunk {
        write::chunk(out, data);
    } else {
        out.extend_from_slice(data);
    }
}
