//! A guard against request smuggling, underneath hyper.
//!
//! A request carrying both `Content-Length` and `Transfer-Encoding`, or two
//! `Content-Length` lines, can be framed differently by two HTTP parsers; that
//! disagreement is what request smuggling exploits. hyper resolves such a
//! request by the RFC (chunked wins, the connection closes) and drops the
//! conflicting header before hookguard can see it, so the service could not
//! refuse it. [`FramingIo`] watches the bytes as they are read, follows the
//! HTTP/1.1 framing (heads, `Content-Length` bodies, chunked bodies) and
//! raises a per-connection flag when a head is ambiguous; the pipeline
//! answers such a request 400 `ambiguous_framing` before doing anything else.
//!
//! The scanner costs a search for the end of each head and a little
//! arithmetic per body read; body bytes are skipped, not inspected. When the
//! stream stops looking like HTTP/1.1 it stops tracking and leaves the error
//! to hyper.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Longest head tracked; hyper refuses longer ones itself.
const MAX_HEAD: usize = 1 << 20;

/// Longest chunk-size or trailer line tracked.
const MAX_LINE: usize = 8192;

/// Where the scanner is in the byte stream.
#[derive(Debug)]
enum State {
    /// Collecting a request head up to its blank line.
    Head(Head),
    /// Skipping this many bytes of a `Content-Length` body.
    Body(u64),
    /// Collecting a chunk-size line.
    ChunkSize(Vec<u8>),
    /// Skipping this many bytes of chunk data, then its CRLF.
    ChunkData(u64),
    /// Collecting trailer lines after the last chunk, until an empty one.
    Trailers(Vec<u8>),
    /// Lost track (not HTTP/1.1 as expected); hyper will refuse it.
    Untracked,
}

/// A request head being collected. Lines are examined once each as they
/// complete, so a head trickling in byte by byte costs linear time.
#[derive(Debug, Default)]
struct Head {
    buf: Vec<u8>,
    /// Start of the line not yet complete.
    line_start: usize,
    /// A non-empty line (the request line) has been seen; empty lines
    /// before it are tolerated (RFC 9112 §2.2), one after it ends the head.
    seen_request_line: bool,
}

impl Head {
    /// Appends `data`; returns how many of its bytes belong to the head
    /// once the head is complete.
    fn push(&mut self, data: &[u8]) -> Option<usize> {
        // Only head bytes are copied: the body that usually follows in the
        // same read is left where it is.
        let mut used = 0;
        while let Some(offset) = data[used..].iter().position(|&b| b == b'\n') {
            let end = used + offset + 1;
            self.buf.extend_from_slice(&data[used..end]);
            used = end;
            let line = &self.buf[self.line_start..];
            let empty = line == b"\r\n" || line == b"\n";
            if empty && self.seen_request_line {
                return Some(used);
            }
            self.seen_request_line |= !empty;
            self.line_start = self.buf.len();
        }
        self.buf.extend_from_slice(&data[used..]);
        None
    }
}

/// Follows HTTP/1.1 framing over a byte stream and notes ambiguous heads.
#[derive(Debug)]
pub struct Scanner {
    state: State,
    ambiguous: bool,
}

impl Default for Scanner {
    fn default() -> Self {
        Scanner {
            state: State::Head(Head::default()),
            ambiguous: false,
        }
    }
}

/// The position just after the first `\n` in `bytes`.
fn line_end(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == b'\n').map(|i| i + 1)
}

impl Scanner {
    /// True once any head on this connection was ambiguous.
    pub fn ambiguous(&self) -> bool {
        self.ambiguous
    }

    /// Feeds the next bytes read from the client.
    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            match &mut self.state {
                State::Untracked => return,
                State::Body(remaining) => {
                    let take = (*remaining).min(data.len() as u64);
                    *remaining -= take;
                    data = &data[take as usize..];
                    if *remaining == 0 {
                        self.state = State::Head(Head::default());
                    }
                }
                State::ChunkData(remaining) => {
                    let take = (*remaining).min(data.len() as u64);
                    *remaining -= take;
                    data = &data[take as usize..];
                    if *remaining == 0 {
                        // The CRLF after the data is read as an empty size
                        // line, which the size-line state skips.
                        self.state = State::ChunkSize(Vec::new());
                    }
                }
                State::Head(head) => match head.push(data) {
                    Some(used) => {
                        let head = std::mem::take(&mut head.buf);
                        data = &data[used..];
                        // The same limit whether the head came in one read
                        // or many.
                        self.state = if head.len() > MAX_HEAD {
                            State::Untracked
                        } else {
                            self.after_head(&head)
                        };
                    }
                    None => {
                        if head.buf.len() > MAX_HEAD {
                            self.state = State::Untracked;
                        }
                        return;
                    }
                },
                State::ChunkSize(_) => {
                    let Some(used) = self.collect_line(data) else {
                        return;
                    };
                    data = &data[used..];
                    let State::ChunkSize(buf) = &self.state else {
                        return;
                    };
                    let line = String::from_utf8_lossy(buf).into_owned();
                    let size_text = line.trim().split(';').next().unwrap_or_default().trim();
                    if size_text.is_empty() {
                        // The CRLF closing the previous chunk's data.
                        self.state = State::ChunkSize(Vec::new());
                        continue;
                    }
                    self.state = match u64::from_str_radix(size_text, 16) {
                        Ok(0) => State::Trailers(Vec::new()),
                        Ok(size) => State::ChunkData(size),
                        Err(_) => State::Untracked,
                    };
                }
                State::Trailers(_) => {
                    let Some(used) = self.collect_line(data) else {
                        return;
                    };
                    data = &data[used..];
                    let State::Trailers(buf) = &self.state else {
                        return;
                    };
                    let empty = buf[..] == *b"\r\n" || buf[..] == *b"\n";
                    self.state = if empty {
                        State::Head(Head::default())
                    } else {
                        State::Trailers(Vec::new())
                    };
                }
            }
        }
    }

    /// Collects one chunk-size or trailer line into the current state's
    /// buffer, copying only the line's own bytes. Returns how many bytes of
    /// `data` it used once the line is complete; `None` while it is not (all
    /// of `data` used) or when the line is too long (the scanner then stops
    /// tracking).
    fn collect_line(&mut self, data: &[u8]) -> Option<usize> {
        let (State::ChunkSize(buf) | State::Trailers(buf)) = &mut self.state else {
            return None;
        };
        let end = line_end(data);
        buf.extend_from_slice(&data[..end.unwrap_or(data.len())]);
        if buf.len() > MAX_LINE {
            self.state = State::Untracked;
            return None;
        }
        end
    }

    /// Judges a complete head and returns how its body is framed.
    fn after_head(&mut self, head: &[u8]) -> State {
        let mut slots = [httparse::EMPTY_HEADER; 1024];
        let mut request = httparse::Request::new(&mut slots);
        if !matches!(request.parse(head), Ok(httparse::Status::Complete(_))) {
            return State::Untracked;
        }
        let mut lengths = Vec::new();
        let mut chunked = false;
        let mut transfer_encoding = false;
        for header in request.headers.iter() {
            if header.name.eq_ignore_ascii_case("content-length") {
                lengths.push(String::from_utf8_lossy(header.value).trim().to_owned());
            } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
                transfer_encoding = true;
                chunked = String::from_utf8_lossy(header.value)
                    .to_ascii_lowercase()
                    .contains("chunked");
            }
        }
        if lengths.len() > 1 || (transfer_encoding && !lengths.is_empty()) {
            self.ambiguous = true;
        }
        if chunked {
            State::ChunkSize(Vec::new())
        } else if transfer_encoding {
            State::Untracked
        } else {
            match lengths.first().map(|l| l.parse::<u64>()) {
                None => State::Head(Head::default()),
                Some(Ok(0)) => State::Head(Head::default()),
                Some(Ok(n)) => State::Body(n),
                Some(Err(_)) => State::Untracked,
            }
        }
    }
}

/// The client connection, read through a [`Scanner`].
#[derive(Debug)]
pub struct FramingIo<T> {
    inner: T,
    scanner: Scanner,
    flag: Arc<AtomicBool>,
}

impl<T> FramingIo<T> {
    /// Wraps `inner`; `flag` turns true once an ambiguous head is read.
    pub fn new(inner: T, flag: Arc<AtomicBool>) -> Self {
        FramingIo {
            inner,
            scanner: Scanner::default(),
            flag,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for FramingIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &polled {
            this.scanner.feed(&buf.filled()[before..]);
            if this.scanner.ambiguous() {
                this.flag.store(true, Ordering::Release);
            }
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for FramingIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, data)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `bytes` in pieces of every size from 1 to 7, to exercise the
    /// states across read boundaries.
    fn ambiguous(bytes: &[u8]) -> bool {
        let whole = {
            let mut s = Scanner::default();
            s.feed(bytes);
            s.ambiguous()
        };
        for step in 1..8 {
            let mut s = Scanner::default();
            for piece in bytes.chunks(step) {
                s.feed(piece);
            }
            assert_eq!(s.ambiguous(), whole, "split every {step} bytes");
        }
        whole
    }

    #[test]
    fn plain_requests_are_not_ambiguous() {
        assert!(!ambiguous(
            b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\n\r\n"
        ));
        assert!(!ambiguous(
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nX-T: 1\r\n\r\nGET / HTTP/1.1\r\n\r\n"
        ));
    }

    #[test]
    fn both_lengths_or_two_content_lengths_are_ambiguous() {
        assert!(ambiguous(
            b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        ));
        assert!(ambiguous(
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n"
        ));
        assert!(ambiguous(
            b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello"
        ));
    }

    #[test]
    fn leading_empty_lines_do_not_hide_a_head() {
        assert!(ambiguous(
            b"\r\n\r\nPOST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        ));
    }

    #[test]
    fn a_smuggled_second_request_is_seen_after_a_body() {
        // The first request is clean; the second, after a chunked body, is not.
        let stream = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nPOST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
        assert!(ambiguous(stream));
        // Header-like text inside a body is body, not a head.
        let body = b"Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
        let mut stream =
            format!("POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
        stream.extend_from_slice(body);
        assert!(!ambiguous(&stream));
    }
}
