//! Where log lines go: formatted on the thread that logs, written to
//! stderr by one background thread, never by a request's thread.
//!
//! A request used to write its JSON line to stderr itself, one `write(2)`
//! per request on a serving thread; when the reader of stderr (a file on a
//! slow disk, a container runtime's pipe, a log shipper that stalls) was
//! slower than the traffic, requests waited for it. Now lines go through a
//! bounded queue (tracing-appender's non-blocking writer) to a writer
//! thread that drains whatever is queued into one buffer and writes it in
//! one go. When the queue is full the line is dropped, not waited for: a
//! webhook answered late is retried by its sender, a lost log line is not
//! worth that. Dropped lines are counted ([`dropped_lines`], exported as
//! `hookguard_log_lines_dropped_total`).
//!
//! JSON lines are written by hookguard's own formatter (`json.rs`): tracing-subscriber's
//! own lines, byte for byte, at a fraction of the cost.

use std::io::{BufWriter, IsTerminal, Write};
use std::sync::OnceLock;
use std::time::Duration;

use tracing_appender::non_blocking::{ErrorCounter, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

mod json;

/// Lines queued for the writer thread before new ones are dropped, unless
/// `HOOKGUARD_LOG_BUFFER_LINES` says otherwise (logging is set up from the
/// environment, as `RUST_LOG` filters it, before the config is read: the
/// config's own warnings are logged). At about 400 bytes a line this is
/// at most ~6.5 MiB, and half a second of a stalled destination at
/// 30,000 requests/s.
pub const DEFAULT_BUFFER_LINES: usize = 16_384;

/// Bytes the writer thread gathers before a `write(2)`; a batch is also
/// written whenever the queue runs empty, so a quiet server's lines are
/// not held back.
const WRITE_BUFFER_BYTES: usize = 64 * 1024;

/// How long the writer thread rests after each batch it wrote. Without a
/// rest it woke for nearly every line under load: a futex wake on the
/// request's thread, spins and `sched_yield`s on its own, and a `write(2)`
/// per line, together a tenth of hookguard's CPU at 1 KiB requests. While
/// it rests, lines only queue (no wake-up is owed to a thread that is not
/// waiting), and the next batch goes out in a few writes. A line waits at
/// most about this long; the queue holds far more than a rest's worth.
const WRITER_REST: Duration = Duration::from_millis(5);

/// How log lines are formatted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line (for collectors).
    Json,
    /// Human-readable lines, in colour only on a terminal.
    Text,
}

static DROPPED: OnceLock<ErrorCounter> = OnceLock::new();

/// Keeps the writer thread; dropping it writes out what is queued. Hold
/// it until the process is about to exit.
#[must_use = "dropping the guard stops the log writer"]
pub struct Guard {
    _writer: Option<WorkerGuard>,
}

/// Installs the process's logger: `RUST_LOG` filters (default `info`),
/// lines go to stderr through a queue of [`buffer_lines`] lines. A second
/// call changes nothing.
pub fn init(format: Format) -> Guard {
    let buffer_lines = buffer_lines();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let on_terminal = std::io::stderr().is_terminal();
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(buffer_lines)
        .thread_name("hookguard-log")
        .finish(Rested(BufWriter::with_capacity(
            WRITE_BUFFER_BYTES,
            std::io::stderr(),
        )));
    let counter = writer.error_counter();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let installed = match format {
        Format::Json => builder.event_format(json::JsonLine).try_init(),
        // Colour codes help a person at a terminal and are noise in a file
        // or a pipe (issue 14). Only ever switch colour off: the default
        // already honours NO_COLOR, which `with_ansi(true)` would override.
        Format::Text if on_terminal => builder.try_init(),
        Format::Text => builder.with_ansi(false).try_init(),
    };
    if installed.is_err() {
        return Guard { _writer: None };
    }
    let _ = DROPPED.set(counter);
    Guard {
        _writer: Some(guard),
    }
}

/// The writer thread's destination: its `flush`, which the thread calls
/// once per batch, writes the batch out and then rests ([`WRITER_REST`]).
struct Rested<W>(W);

impl<W: Write> Write for Rested<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.0.write_all(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let flushed = self.0.flush();
        std::thread::sleep(WRITER_REST);
        flushed
    }
}

/// Log lines dropped since start because the queue to the writer thread
/// was full (the destination was slower than the traffic).
pub fn dropped_lines() -> u64 {
    DROPPED
        .get()
        .map_or(0, |counter| counter.dropped_lines() as u64)
}

/// The queue's length: `HOOKGUARD_LOG_BUFFER_LINES` if it is a number of
/// at least 1 (anything else is said on stderr and ignored), else
/// [`DEFAULT_BUFFER_LINES`].
pub fn buffer_lines() -> usize {
    match std::env::var("HOOKGUARD_LOG_BUFFER_LINES") {
        Err(_) => DEFAULT_BUFFER_LINES,
        Ok(text) => match text.trim().parse::<usize>() {
            Ok(n) if n >= 1 => n,
            _ => {
                eprintln!(
                    "HOOKGUARD_LOG_BUFFER_LINES={text:?} is not a number of lines >= 1; using {DEFAULT_BUFFER_LINES}"
                );
                DEFAULT_BUFFER_LINES
            }
        },
    }
}
