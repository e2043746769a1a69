//! The JSON line format, written straight into the line buffer.
//!
//! The same lines tracing-subscriber's JSON formatter writes with
//! `flatten_event(true)` and no spans (hookguard opens none): `timestamp`
//! (RFC 3339, microseconds, UTC), `level`, the event's fields in the order
//! they were recorded (`message` first), `target`. Its formatter goes
//! through serde: a map serializer per line and a `String` per `%` field
//! before escaping it; at one line per request that was about a fifth of a
//! forwarded request's instructions (`bench/instructions.sh`, info against
//! warn). Here each value is escaped as it is written. A test in this
//! module holds the output byte-for-byte equal to tracing-subscriber's
//! for every kind of value hookguard logs.

use std::cell::RefCell;
use std::fmt::{self, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// hookguard's JSON event format (see the module's text).
pub struct JsonLine;

/// Largest line buffer a thread keeps between lines.
const KEPT_LINE_BYTES: usize = 64 * 1024;

thread_local! {
    /// Each thread's line, reused: the line is built here with plain
    /// `String` pushes (inlined), then handed to tracing-subscriber's
    /// writer in one call; through its `&mut dyn Write` each piece was a
    /// dynamic call of its own.
    static LINE: RefCell<Buffers> = RefCell::new(Buffers {
        line: String::with_capacity(512),
        value: String::with_capacity(64),
    });
}

/// The line being built, and a `Debug` value being formatted (see
/// [`Fields::record_debug`]).
#[derive(Default)]
struct Buffers {
    line: String,
    value: String,
}

impl<S, N> FormatEvent<S, N> for JsonLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _context: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        LINE.with(|buffers| match buffers.try_borrow_mut() {
            Ok(mut buffers) => {
                format_line(&mut buffers, event);
                let written = writer.write_str(&buffers.line);
                // One very long line (a large error) does not pin its
                // size in every thread that logged it.
                if buffers.line.capacity() > KEPT_LINE_BYTES {
                    buffers.line = String::with_capacity(512);
                }
                if buffers.value.capacity() > KEPT_LINE_BYTES {
                    buffers.value = String::with_capacity(64);
                }
                written
            }
            // A field whose formatting logs: that line gets its own buffers.
            Err(_) => {
                let mut buffers = Buffers::default();
                format_line(&mut buffers, event);
                writer.write_str(&buffers.line)
            }
        })
    }
}

/// One event as a JSON line, newline included, in `buffers.line`.
fn format_line(buffers: &mut Buffers, event: &Event<'_>) {
    let metadata = event.metadata();
    let Buffers { line, value } = buffers;
    line.clear();
    line.push_str("{\"timestamp\":\"");
    push_timestamp(line, SystemTime::now());
    line.push_str("\",\"level\":\"");
    line.push_str(metadata.level().as_str());
    line.push('"');
    event.record(&mut Fields { line, value });
    line.push_str(",\"target\":");
    push_string(line, metadata.target());
    line.push_str("}\n");
}

/// Writes each field as `,"name":value` into `line`.
struct Fields<'a> {
    line: &'a mut String,
    /// Where a `Debug` value is formatted before it is escaped.
    value: &'a mut String,
}

impl Fields<'_> {
    fn name(&mut self, field: &Field) -> &mut String {
        name(self.line, field)
    }
}

/// Writes `,"name":`, returning the line for the value.
fn name<'l>(line: &'l mut String, field: &Field) -> &'l mut String {
    line.push_str(",\"");
    // Field names are Rust identifiers (the macros allow nothing else):
    // nothing in them needs escaping.
    line.push_str(field.name());
    line.push_str("\":");
    line
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        push_string(self.name(field), value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // `%x` fields arrive here too (their Debug is x's Display), the
        // message (format_args!), and 128-bit integers (a string, as
        // tracing-subscriber writes them). Formatted whole first, then
        // escaped in one pass: formatting writes in small pieces (an
        // address is seven), each of which would be a pass of its own.
        // Writing into a String cannot fail; a Debug impl that reports an
        // error leaves what it wrote.
        self.value.clear();
        let _ = write!(self.value, "{value:?}");
        push_string(name(self.line, field), self.value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.name(field).push_str(itoa::Buffer::new().format(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.name(field).push_str(itoa::Buffer::new().format(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.name(field)
            .push_str(if value { "true" } else { "false" });
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // serde_json writes the shortest representation that reads back
        // exactly, as Display does, with ".0" on whole numbers, and null
        // for what JSON cannot hold.
        let line = self.name(field);
        if !value.is_finite() {
            line.push_str("null");
        } else if value.fract() == 0.0 && value.abs() < 1e16 {
            let _ = write!(line, "{value:.1}");
        } else {
            let _ = write!(line, "{value}");
        }
    }
}

/// A JSON string: quoted, escaped.
fn push_string(line: &mut String, text: &str) {
    line.push('"');
    push_escaped(line, text);
    line.push('"');
}

/// Escapes what JSON requires inside a string (quote, backslash, control
/// characters), in the forms serde_json uses; everything else is copied
/// in runs.
fn push_escaped(line: &mut String, text: &str) {
    let bytes = text.as_bytes();
    let mut start = 0;
    loop {
        let at = next_escape(bytes, start);
        // Runs end only at ASCII bytes or the end, so they are whole
        // characters.
        line.push_str(&text[start..at]);
        let Some(&byte) = bytes.get(at) else {
            return;
        };
        match byte {
            b'"' => line.push_str("\\\""),
            b'\\' => line.push_str("\\\\"),
            b'\n' => line.push_str("\\n"),
            b'\r' => line.push_str("\\r"),
            b'\t' => line.push_str("\\t"),
            0x08 => line.push_str("\\b"),
            0x0c => line.push_str("\\f"),
            _ => {
                let _ = write!(line, "\\u{byte:04x}");
            }
        }
        start = at + 1;
    }
}

/// Whether JSON needs `byte` escaped inside a string.
fn needs_escape(byte: u8) -> bool {
    byte < 0x20 || byte == b'"' || byte == b'\\'
}

/// The index of the first byte from `at` on that [`needs_escape`], or the
/// length. Eight bytes are checked at a time (the bit tricks of Sean
/// Anderson's "Bit Twiddling Hacks": a byte below n, a byte equal to c),
/// since nearly every byte logged needs nothing; byte by byte, escaping
/// was the most expensive part of a request's line.
fn next_escape(bytes: &[u8], mut at: usize) -> usize {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    let zero_byte = |word: u64| word.wrapping_sub(ONES) & !word & HIGHS;
    while let Some(chunk) = bytes.get(at..at + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_ne_bytes(word);
        let control = word.wrapping_sub(ONES * 0x20) & !word & HIGHS;
        let quote = zero_byte(word ^ (ONES * u64::from(b'"')));
        let backslash = zero_byte(word ^ (ONES * u64::from(b'\\')));
        if control | quote | backslash != 0 {
            break;
        }
        at += 8;
    }
    while at < bytes.len() && !needs_escape(bytes[at]) {
        at += 1;
    }
    at
}

/// `2026-12-01T02:58:13.145310Z`: UTC, microseconds. Digits are placed by
/// hand: through `write!` this was a tenth of a line's cost.
fn push_timestamp(line: &mut String, now: SystemTime) {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since.as_secs();
    let (year, month, day) = civil_date(seconds / 86_400);
    let of_day = seconds % 86_400;
    let mut text = *b"0000-00-00T00:00:00.000000Z";
    let mut put = |at: usize, width: usize, mut value: u64| {
        for slot in text[at..at + width].iter_mut().rev() {
            *slot = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(0, 4, year.min(9999));
    put(5, 2, month);
    put(8, 2, day);
    put(11, 2, of_day / 3600);
    put(14, 2, of_day / 60 % 60);
    put(17, 2, of_day % 60);
    put(20, 6, u64::from(since.subsec_micros()));
    // Only ASCII digits and separators were written.
    line.push_str(std::str::from_utf8(&text).unwrap_or_default());
}

/// The proleptic Gregorian date of a count of days since 1970-01-01
/// (Howard Hinnant's `civil_from_days`, in eras of 400 years).
fn civil_date(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Collects what a subscriber writes.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Sink {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Sink {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    /// Every kind of value hookguard logs, and strings that need escaping.
    fn events() {
        let peer: std::net::SocketAddr = "127.0.0.1:4242".parse().unwrap();
        let error = io::Error::other("disk \"full\"\n\tnow");
        tracing::info!(
            request_id = "8a952dd7c99d7c8f",
            route = "vendor",
            outcome = "rejected",
            reason = Some("bad_signature"),
            missing = None::<&str>,
            status = 401_u16,
            skew = -12_i64,
            big = u128::MAX,
            shadow = false,
            duration_ms = 0.045577_f64,
            whole = 2.0_f64,
            nan = f64::NAN,
            detail = %"quote \" backslash \\ control \u{1} \u{1f} bell \u{7} é ☃",
            %error,
            peer = %peer,
            "request answered by hookguard"
        );
        tracing::warn!(path = ?std::path::Path::new("/tmp/a b"), "form \u{8}\u{c} feed");
        tracing::error!("{} and {:?}", "display", "debug");
    }

    /// The same events through both formatters give the same bytes, but
    /// for the time each line was written.
    #[test]
    fn lines_equal_tracing_subscribers_json_format() {
        let ours = Sink::default();
        let theirs = Sink::default();
        let mine = ours.clone();
        tracing::subscriber::with_default(
            tracing_subscriber::fmt()
                .event_format(JsonLine)
                .with_writer(move || mine.clone())
                .finish(),
            events,
        );
        let reference = theirs.clone();
        tracing::subscriber::with_default(
            tracing_subscriber::fmt()
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_writer(move || reference.clone())
                .finish(),
            events,
        );
        let strip = |text: String| -> Vec<String> {
            text.lines()
                .map(|line| {
                    let value: serde_json::Value = serde_json::from_str(line).unwrap();
                    let stamp = value["timestamp"].as_str().unwrap().to_owned();
                    assert_eq!(stamp.len(), "2026-12-01T02:58:13.145310Z".len(), "{stamp}");
                    line.replace(&stamp, "T")
                })
                .collect()
        };
        let (ours, theirs) = (strip(ours.text()), strip(theirs.text()));
        assert_eq!(ours.len(), 3);
        assert_eq!(ours, theirs);
    }

    #[test]
    fn timestamps_are_rfc3339_utc_with_microseconds() {
        let mut line = String::new();
        let at = |seconds: u64, micros: u64| {
            UNIX_EPOCH + std::time::Duration::from_micros(seconds * 1_000_000 + micros)
        };
        for (time, text) in [
            (at(0, 0), "1970-01-01T00:00:00.000000Z"),
            (at(951_782_400, 7), "2000-02-29T00:00:00.000007Z"),
            (at(1_796_085_493, 145_310), "2026-12-01T00:38:13.145310Z"),
            (at(4_107_542_399, 999_999), "2100-02-28T23:59:59.999999Z"),
            (at(4_107_542_400, 0), "2100-03-01T00:00:00.000000Z"),
        ] {
            line.clear();
            push_timestamp(&mut line, time);
            assert_eq!(line, text);
        }
    }

    /// The word-at-a-time scan finds the same byte as a byte-by-byte one,
    /// for every byte value at every position of a 17-byte text, from
    /// every start.
    #[test]
    fn the_escape_scan_matches_a_byte_by_byte_one() {
        for byte in 0..=255u8 {
            for position in 0..17 {
                let mut text = vec![b'a'; 17];
                text[position] = byte;
                for start in 0..=17 {
                    let expected = (start..17).find(|&at| needs_escape(text[at])).unwrap_or(17);
                    assert_eq!(
                        next_escape(&text, start),
                        expected,
                        "byte {byte:#x} at {position}, from {start}"
                    );
                }
            }
        }
    }
}
