//! Captures of refused requests, for routes with `capture_rejected = true`.
//!
//! hookguard never logs bodies, so an operator chasing a refusal would have
//! nothing to run `hookguard verify` on. A capture is that evidence: the
//! request as it arrived (request line and headers as received, the body
//! as read, de-chunked), in the raw HTTP form `verify --request` reads,
//! named by the request id that the log line and the answer carry. A
//! request refused before its body was read is captured head only.
//!
//! Files are written atomically (a hidden temporary file renamed into
//! place), and kept within `capture_max_files` and `capture_max_bytes`,
//! the oldest deleted first; each one dropped is counted in
//! `hookguard_captures_dropped_total`. Writes happen on the refusal path
//! only, under one lock, so the bounds hold with several workers.

use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};

use crate::config::Capture;
use crate::http1::RequestHead;
use crate::metrics::Metrics;

/// The extension of capture files; only these count toward the bounds.
const EXTENSION: &str = "http";

/// The captures written so far, shared by every connection; outlives
/// reloads (a reload that changes `capture_dir` starts a new index).
#[derive(Debug, Default)]
pub struct Captures {
    index: Mutex<Option<Index>>,
}

/// The capture files of one directory, oldest first, with their sizes.
#[derive(Debug)]
struct Index {
    dir: PathBuf,
    files: VecDeque<(PathBuf, u64)>,
    bytes: u64,
}

impl Index {
    /// Reads what an earlier run left in `dir`, so that the bounds count
    /// it too; oldest first by modification time.
    fn scan(dir: &Path) -> Index {
        let mut found: Vec<(std::time::SystemTime, PathBuf, u64)> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|entry| entry.path().extension().is_some_and(|e| e == EXTENSION))
            .filter_map(|entry| {
                let meta = entry.metadata().ok()?;
                Some((meta.modified().ok()?, entry.path(), meta.len()))
            })
            .collect();
        found.sort();
        Index {
            dir: dir.to_owned(),
            bytes: found.iter().map(|(_, _, len)| len).sum(),
            files: found
                .into_iter()
                .map(|(_, path, len)| (path, len))
                .collect(),
        }
    }
}

impl Captures {
    /// Writes the capture of a refused request as `<request id>.http` in
    /// `settings.dir`, first deleting the oldest captures as the bounds
    /// require (counted in `metrics`). Returns the file's path.
    pub fn write(
        &self,
        settings: &Capture,
        metrics: &Metrics,
        request_id: &str,
        head: &RequestHead,
        body: Option<&[u8]>,
    ) -> io::Result<PathBuf> {
        let bytes = render(head, body);
        let len = bytes.len() as u64;
        let name = format!("{}.{EXTENSION}", file_stem(request_id));
        let path = settings.dir.join(&name);
        let mut guard = self.index.lock().unwrap_or_else(PoisonError::into_inner);
        let index = match guard.take() {
            Some(index) if index.dir == settings.dir => guard.insert(index),
            _ => guard.insert(Index::scan(&settings.dir)),
        };
        // A request id seen again (a sender's own X-Request-Id) replaces
        // its earlier capture.
        if let Some(at) = index.files.iter().position(|(p, _)| *p == path) {
            if let Some((_, old)) = index.files.remove(at) {
                index.bytes -= old;
            }
        }
        if len > settings.max_bytes {
            metrics.captures_dropped(1);
            return Err(io::Error::other(format!(
                "the capture ({len} bytes) is larger than capture_max_bytes"
            )));
        }
        let mut dropped = 0;
        while index.files.len() >= settings.max_files || index.bytes + len > settings.max_bytes {
            let Some((old, size)) = index.files.pop_front() else {
                break;
            };
            // Gone already (an operator tidied up) is as good as deleted.
            let _ = std::fs::remove_file(&old);
            index.bytes -= size;
            dropped += 1;
        }
        if dropped > 0 {
            metrics.captures_dropped(dropped);
        }
        let temporary = settings.dir.join(format!(".{name}.tmp"));
        std::fs::write(&temporary, &bytes)?;
        std::fs::rename(&temporary, &path)?;
        index.files.push_back((path.clone(), len));
        index.bytes += len;
        Ok(path)
    }
}

/// A request id made a file name: request ids may hold `/` and `:`.
fn file_stem(request_id: &str) -> String {
    request_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect::<String>()
        .trim_start_matches('.')
        .to_owned()
}

/// The request as raw HTTP/1.1: request line, headers as received, a blank
/// line, the body. With a body, its framing headers are replaced by its
/// decoded length, so that a chunked request reads back whole.
fn render(head: &RequestHead, body: Option<&[u8]>) -> Vec<u8> {
    let mut out = format!("{} {} HTTP/1.1\r\n", head.method, head.uri).into_bytes();
    for (name, value) in &head.headers {
        if body.is_some() && (name == TRANSFER_ENCODING || name == CONTENT_LENGTH) {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if let Some(body) = body {
        out.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
        out.extend_from_slice(body);
    } else {
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_become_plain_file_names() {
        assert_eq!(file_stem("abc-1_2.x"), "abc-1_2.x");
        assert_eq!(file_stem("../a/b:c"), "_a_b_c");
    }
}
