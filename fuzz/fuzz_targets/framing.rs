//! Request framing over any bytes: the head parser never panics, and the
//! chunked decoder reaches the same data and the same end whatever the read
//! sizes.
#![no_main]

use bytes::BytesMut;
use hookguard::http1::chunked::Decoder;
use hookguard::http1::head;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u8, &[u8])| {
    let (step, bytes) = input;
    let _ = head::parse(&mut BytesMut::from(bytes), 100, 64 * 1024);

    let step = usize::from(step.max(1));
    let whole = decode(bytes, bytes.len().max(1));
    let pieces = decode(bytes, step);
    assert_eq!(whole, pieces);
});

/// Decoded data, bytes consumed and whether the body ended; `None` on an
/// error.
fn decode(bytes: &[u8], step: usize) -> Option<(Vec<u8>, usize, bool)> {
    let mut decoder = Decoder::default();
    let mut data = Vec::new();
    let mut used = 0;
    for piece in bytes.chunks(step) {
        let n = decoder
            .decode(piece, |d| data.extend_from_slice(d))
            .ok()?;
        used += n;
        if n < piece.len() {
            break;
        }
    }
    Some((data, used, decoder.is_done()))
}
