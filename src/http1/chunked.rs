//! The chunked transfer coding (RFC 9112 §7.1), decoded incrementally.
//!
//! Used for request bodies (the signature covers the decoded bytes) and for
//! the app's chunked responses, which are re-chunked on the way out. Strict
//! where laxness lets two parsers disagree about where a message ends: the
//! size is hex digits only (any number of leading zeros, a value that fits
//! in 64 bits), followed by nothing but CRLF or an extension (`;`, after
//! optional white space, RFC 9112 §7.1.1 BWS); lines end in CRLF, never a
//! bare LF; each trailer line is `name: value` with a token for a name and
//! no folding (§7.1.2, §5). Extensions and trailer fields are skipped
//! within fixed bounds.

use super::head::is_token;

/// Most bytes of chunk extensions on one size line. hookguard uses no
/// extension; the bound keeps a sender from streaming one forever.
const MAX_EXTENSION: usize = 4 * 1024;

/// Most bytes of trailer fields in one message.
const MAX_TRAILERS: usize = 16 * 1024;

/// Why a chunked body could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkError(pub &'static str);

#[derive(Debug, Clone, Copy)]
enum State {
    /// Hex digits of a size; `digits` says whether any came yet.
    Size {
        value: u64,
        digits: bool,
    },
    /// White space after a size, which only a `;` may follow.
    SizeSpace {
        value: u64,
    },
    Extension {
        value: u64,
    },
    SizeLf {
        value: u64,
    },
    Data {
        left: u64,
    },
    DataCr,
    DataLf,
    /// The start of a trailer line, or of the empty line that ends the body.
    LineStart,
    TrailerName,
    TrailerValue,
    TrailerLf,
    EndLf,
    Done,
}

/// An incremental decoder: feed it whatever arrived, get the data out.
#[derive(Debug, Clone)]
pub struct Decoder {
    state: State,
    /// Extension or trailer bytes seen, against their bounds.
    skipped: usize,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder {
            state: State::Size {
                value: 0,
                digits: false,
            },
            skipped: 0,
        }
    }
}

impl Decoder {
    /// Whether the last chunk and the trailers have been read.
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Decodes from `input`, passing each run of data to `data`; returns how
    /// many bytes of `input` were consumed (less than all only when the
    /// message ended, leaving the next message's bytes).
    pub fn decode(
        &mut self,
        input: &[u8],
        mut data: impl FnMut(&[u8]),
    ) -> Result<usize, ChunkError> {
        let mut at = 0;
        while at < input.len() {
            if let State::Data { left } = self.state {
                let take = (input.len() - at).min(usize::try_from(left).unwrap_or(usize::MAX));
                data(&input[at..at + take]);
                at += take;
                let left = left - take as u64;
                self.state = if left == 0 {
                    State::DataCr
                } else {
                    State::Data { left }
                };
                continue;
            }
            if let State::Done = self.state {
                break;
            }
            self.state = self.step(input[at])?;
            at += 1;
        }
        Ok(at)
    }

    /// One framing byte (anything but chunk data).
    fn step(&mut self, byte: u8) -> Result<State, ChunkError> {
        Ok(match self.state {
            State::Size { value, digits } => match (hex(byte), byte) {
                // Leading zeros add nothing: only the value is bounded.
                (Some(_), _) if value > u64::MAX >> 4 => {
                    return Err(ChunkError("a chunk size is too large for a 64-bit number"))
                }
                (Some(digit), _) => State::Size {
                    value: value << 4 | u64::from(digit),
                    digits: true,
                },
                _ if !digits => return Err(ChunkError("a chunk size is not a hex number")),
                (None, b'\r') => State::SizeLf { value },
                (None, b';') => {
                    self.skipped = 0;
                    State::Extension { value }
                }
                (None, b' ' | b'\t') => State::SizeSpace { value },
                (None, b'\n') => return Err(ChunkError("a chunk size line ends in a bare LF")),
                _ => return Err(ChunkError("a chunk size is not a hex number")),
            },
            State::SizeSpace { value } => match byte {
                b' ' | b'\t' => State::SizeSpace { value },
                b';' => {
                    self.skipped = 0;
                    State::Extension { value }
                }
                _ => {
                    return Err(ChunkError(
                        "a chunk size is followed by white space and then no extension; RFC 9112 §7.1 allows only CRLF or ';' after a size",
                    ))
                }
            },
            State::Extension { value } => match byte {
                b'\r' => State::SizeLf { value },
                b'\n' => return Err(ChunkError("a chunk size line ends in a bare LF")),
                _ if byte < 0x20 && byte != b'\t' || byte == 0x7f => {
                    return Err(ChunkError("a chunk extension has control characters"))
                }
                _ => {
                    self.skipped += 1;
                    if self.skipped > MAX_EXTENSION {
                        return Err(ChunkError(
                            "a chunk extension is longer than 4 KiB, the most hookguard reads",
                        ));
                    }
                    State::Extension { value }
                }
            },
            State::SizeLf { value } => match byte {
                b'\n' if value == 0 => {
                    self.skipped = 0;
                    State::LineStart
                }
                b'\n' => State::Data { left: value },
                _ => return Err(ChunkError("a chunk size line does not end in CRLF")),
            },
            State::DataCr => match byte {
                b'\r' => State::DataLf,
                _ => return Err(ChunkError("a chunk is longer than its size")),
            },
            State::DataLf => match byte {
                b'\n' => State::Size {
                    value: 0,
                    digits: false,
                },
                _ => return Err(ChunkError("a chunk does not end in CRLF")),
            },
            State::LineStart => match byte {
                b'\r' => State::EndLf,
                b'\n' => return Err(ChunkError("a trailer line ends in a bare LF")),
                b' ' | b'\t' => {
                    return Err(ChunkError(
                        "a trailer line starts with white space (obs-fold), which RFC 9112 §5.2 has a recipient refuse",
                    ))
                }
                b':' => return Err(ChunkError("a trailer line has an empty field name")),
                _ if is_token(byte) => self.trailer_byte(State::TrailerName)?,
                _ => {
                    return Err(ChunkError(
                        "a trailer field name has a character a token cannot have",
                    ))
                }
            },
            State::TrailerName => match byte {
                b':' => self.trailer_byte(State::TrailerValue)?,
                _ if is_token(byte) => self.trailer_byte(State::TrailerName)?,
                b'\r' | b'\n' => return Err(ChunkError("a trailer line has no colon")),
                b' ' | b'\t' => {
                    return Err(ChunkError(
                        "a trailer field name is followed by white space before its colon",
                    ))
                }
                _ => {
                    return Err(ChunkError(
                        "a trailer field name has a character a token cannot have",
                    ))
                }
            },
            State::TrailerValue => match byte {
                b'\r' => State::TrailerLf,
                b'\n' => return Err(ChunkError("a trailer line ends in a bare LF")),
                _ if byte < 0x20 && byte != b'\t' || byte == 0x7f => {
                    return Err(ChunkError("a trailer field value has a control character"))
                }
                _ => self.trailer_byte(State::TrailerValue)?,
            },
            State::TrailerLf => match byte {
                b'\n' => State::LineStart,
                _ => return Err(ChunkError("a trailer line does not end in CRLF")),
            },
            State::EndLf => match byte {
                b'\n' => State::Done,
                _ => return Err(ChunkError("the chunked body does not end in CRLF")),
            },
            State::Data { .. } | State::Done => self.state,
        })
    }

    /// Counts one byte of a trailer field against [`MAX_TRAILERS`].
    fn trailer_byte(&mut self, next: State) -> Result<State, ChunkError> {
        self.skipped += 1;
        if self.skipped > MAX_TRAILERS {
            return Err(ChunkError("the trailer fields are too large"));
        }
        Ok(next)
    }
}

fn hex(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8], split: usize) -> Result<(Vec<u8>, usize, bool), ChunkError> {
        let mut decoder = Decoder::default();
        let mut out = Vec::new();
        let mut used = 0;
        for piece in input.chunks(split.max(1)) {
            let n = decoder.decode(piece, |d| out.extend_from_slice(d))?;
            used += n;
            if n < piece.len() {
                break;
            }
        }
        Ok((out, used, decoder.is_done()))
    }

    #[test]
    fn decodes_in_any_split_and_stops_at_the_end() {
        let input =
            b"5;name=v\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        for split in 1..input.len() {
            let (out, used, done) = decode_all(input, split).unwrap();
            assert_eq!(out, b"helloabcdefghijklmnopqrstuvwxyz", "split {split}");
            assert!(done);
            assert_eq!(&input[used..], b"NEXT", "split {split}");
        }
    }

    #[test]
    fn framing_a_second_parser_could_read_differently_is_refused() {
        for bad in [
            &b"5\nhello\r\n0\r\n\r\n"[..],
            b"5\r\nhelloX\r\n0\r\n\r\n",
            b"0x5\r\nhello\r\n0\r\n\r\n",
            b"-5\r\nhello\r\n0\r\n\r\n",
            b"\r\n",
            b"10000000000000000\r\n",
            b"0\r\nX: y\n\r\n",
            b"0\r\n\n",
            b"5;a\x00b\r\nhello\r\n",
            // White space after a size, not leading to an extension.
            b"5 \r\nhello\r\n0\r\n\r\n",
            b"5\t\r\nhello\r\n0\r\n\r\n",
            b"5 junk\r\nhello\r\n0\r\n\r\n",
            // Trailer lines that are not fields.
            b"0\r\nno colon\r\n\r\n",
            b"0\r\nX: 1\r\n folded\r\n\r\n",
            b"0\r\n\tX: 1\r\n\r\n",
            b"0\r\nGET / HTTP/1.1\r\n\r\n",
            b"0\r\nX (a): 1\r\n\r\n",
            b"0\r\nX : 1\r\n\r\n",
            b"0\r\n: 1\r\n\r\n",
            b"0\r\nX: a\x0bb\r\n\r\n",
            b"0\r\nX: a\rb\r\n\r\n",
        ] {
            assert!(
                decode_all(bad, 64).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn long_sizes_with_leading_zeros_extensions_after_white_space_and_trailers_are_read() {
        let input = b"00000000000000000005 ;a=1\r\nhello\r\n0000000000000000000000000\r\nX-T: 1\r\nY:\r\n\r\n";
        let (out, used, done) = decode_all(input, 64).unwrap();
        assert_eq!(
            (out.as_slice(), used, done),
            (&b"hello"[..], input.len(), true)
        );
        assert!(decode_all(b"ffffffffffffffff\r\n", 64).is_ok());
        assert!(decode_all(b"010000000000000000\r\n", 64).is_err());
    }

    #[test]
    fn extensions_and_trailers_are_bounded() {
        let long_ext = format!("1;{}\r\na\r\n0\r\n\r\n", "e".repeat(MAX_EXTENSION + 1));
        assert!(decode_all(long_ext.as_bytes(), 64).is_err());
        let long_trailer = format!("0\r\nX: {}\r\n\r\n", "t".repeat(MAX_TRAILERS));
        assert!(decode_all(long_trailer.as_bytes(), 64).is_err());
    }

    #[test]
    fn an_unfinished_body_is_not_done() {
        let (out, _, done) = decode_all(b"5\r\nhel", 64).unwrap();
        assert_eq!(out, b"hel");
        assert!(!done);
    }
}
