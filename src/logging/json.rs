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

use std::fmt::{self, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// hookguard's JSON event format (see the module's text).
pub struct JsonLine;

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
        let metadata = event.metadata();
        writer.write_str("{\"timestamp\":\"")?;
        write_timestamp(&mut writer, SystemTime::now())?;
        writer.write_str("\",\"level\":\"")?;
        writer.write_str(metadata.level().as_str())?;
        writer.write_char('"')?;
        let mut fields = Fields {
            writer: &mut writer,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        writer.write_str(",\"target\":")?;
        write_string(&mut writer, metadata.target())?;
        writer.write_str("}\n")
    }
}

/// Writes each field as `,"name":value`; the first error is kept.
struct Fields<'a, 'w> {
    writer: &'a mut Writer<'w>,
    result: fmt::Result,
}

impl Fields<'_, '_> {
    fn field(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_ok() {
            self.result = self
                .writer
                .write_str(",\"")
                // Field names are Rust identifiers (the macros allow
                // nothing else): nothing in them needs escaping.
                .and_then(|()| self.writer.write_str(field.name()))
                .and_then(|()| self.writer.write_str("\":"))
                .and_then(|()| value(self.writer));
        }
    }

    fn number(&mut self, field: &Field, text: &str) {
        self.field(field, |w| w.write_str(text));
    }
}

impl Visit for Fields<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.field(field, |w| write_string(w, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // `%x` fields arrive here too (their Debug is x's Display), the
        // message (format_args!), and 128-bit integers (a string, as
        // tracing-subscriber writes them): formatted through the escaper.
        self.field(field, |w| {
            w.write_char('"')?;
            write!(Escaped(w), "{value:?}")?;
            w.write_char('"')
        });
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.number(field, itoa::Buffer::new().format(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.number(field, itoa::Buffer::new().format(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.number(field, if value { "true" } else { "false" });
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // serde_json writes the shortest representation that reads back
        // exactly, as Display does, with ".0" on whole numbers, and null
        // for what JSON cannot hold.
        self.field(field, |w| {
            if !value.is_finite() {
                w.write_str("null")
            } else if value.fract() == 0.0 && value.abs() < 1e16 {
                write!(w, "{value:.1}")
            } else {
                write!(w, "{value}")
            }
        });
    }
}

/// A JSON string: quoted, escaped.
fn write_string(w: &mut Writer<'_>, text: &str) -> fmt::Result {
    w.write_char('"')?;
    Escaped(w).write_str(text)?;
    w.write_char('"')
}

/// Escapes what JSON requires inside a string (quote, backslash, control
/// characters), in the forms serde_json uses; everything else passes
/// through in runs.
struct Escaped<'a, 'w>(&'a mut Writer<'w>);

impl Write for Escaped<'_, '_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let bytes = text.as_bytes();
        let mut start = 0;
        let mut at = 0;
        while at < bytes.len() {
            let byte = bytes[at];
            // Most bytes need nothing: one comparison each in the common case.
            if byte >= 0x20 && byte != b'"' && byte != b'\\' {
                at += 1;
                continue;
            }
            // Runs split only at ASCII bytes, so they stay valid UTF-8.
            self.0.write_str(&text[start..at])?;
            match byte {
                b'"' => self.0.write_str("\\\"")?,
                b'\\' => self.0.write_str("\\\\")?,
                b'\n' => self.0.write_str("\\n")?,
                b'\r' => self.0.write_str("\\r")?,
                b'\t' => self.0.write_str("\\t")?,
                0x08 => self.0.write_str("\\b")?,
                0x0c => self.0.write_str("\\f")?,
                _ => write!(self.0, "\\u{byte:04x}")?,
            }
            at += 1;
            start = at;
        }
        self.0.write_str(&text[start..])
    }
}

/// `2026-12-01T02:58:13.145310Z`: UTC, microseconds. Digits are placed by
/// hand: through `write!` this was a tenth of a line's cost.
fn write_timestamp(w: &mut Writer<'_>, now: SystemTime) -> fmt::Result {
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
    w.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
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
            write_timestamp(&mut Writer::new(&mut line), time).unwrap();
            assert_eq!(line, text);
        }
    }
}
