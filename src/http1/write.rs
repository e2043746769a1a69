//! Writers of head lines, shared by both directions: hookguard's own
//! answers, the app's answers passed on, and requests rebuilt for the app.
//!
//! Each appends to an output buffer that the caller sends in as few
//! writes as possible; nothing here allocates but that buffer.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

use http::{StatusCode, Version};

/// Appends one header field line, `name: value` and CRLF.
pub fn header_line(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Appends `name: n` for a decimal number (a length), without formatting
/// through `fmt`.
pub fn number_line(out: &mut Vec<u8>, name: &str, n: u64) {
    let mut digits = itoa::Buffer::new();
    header_line(out, name, digits.format(n).as_bytes());
}

/// Appends an HTTP/1.1 status line with the status's canonical reason.
pub fn status_line(out: &mut Vec<u8>, status: StatusCode) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("Unknown").as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Says whether the connection stays open: HTTP/1.1 keeps it unless told,
/// HTTP/1.0 closes it unless told (RFC 9112 §9.3).
pub fn persistence_line(out: &mut Vec<u8>, version: Version, close: bool) {
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    } else if version == Version::HTTP_10 {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
}

/// Appends the `Date` line of an answer; the text is formatted at most
/// once a second per thread.
pub fn date_line(out: &mut Vec<u8>) {
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

/// Appends `data` as one chunk of the chunked coding (nothing for empty
/// data: an empty chunk would end the body).
pub fn chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let len = data.len();
    let digits = (usize::BITS - len.leading_zeros()).div_ceil(4).max(1);
    for shift in (0..digits).rev() {
        out.push(HEX[(len >> (shift * 4)) & 0xf]);
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// The chunk that ends a chunked body, with no trailers.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_sizes_are_lowercase_hex_without_leading_zeros() {
        for (len, size) in [(1usize, "1"), (15, "f"), (16, "10"), (4096, "1000")] {
            let mut out = Vec::new();
            chunk(&mut out, &vec![b'x'; len]);
            assert!(out.starts_with(format!("{size}\r\n").as_bytes()), "{len}");
            assert!(out.ends_with(b"\r\n"));
            assert_eq!(out.len(), size.len() + 2 + len + 2);
        }
        let mut out = Vec::new();
        chunk(&mut out, b"");
        assert!(out.is_empty(), "an empty chunk would end the body");
    }

    #[test]
    fn persistence_is_said_only_where_the_version_does_not_imply_it() {
        let line = |version, close| {
            let mut out = Vec::new();
            persistence_line(&mut out, version, close);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(line(Version::HTTP_11, false), "");
        assert_eq!(line(Version::HTTP_11, true), "connection: close\r\n");
        assert_eq!(line(Version::HTTP_10, false), "connection: keep-alive\r\n");
        assert_eq!(line(Version::HTTP_10, true), "connection: close\r\n");
    }
}
