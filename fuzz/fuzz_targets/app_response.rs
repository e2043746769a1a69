//! The app's answer heads over any bytes: the parser never panics, and a
//! head read from a prefix of the bytes (as it arrives in pieces) is the
//! head read from all of them. The app is trusted, but an answer whose end
//! is misread desynchronises a pooled connection.
#![no_main]

use bytes::BytesMut;
use hookguard::http1::response::parse_response;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (bool, u16, &[u8])| {
    let (head_request, split, bytes) = input;
    let whole = parse_response(&mut BytesMut::from(bytes), head_request);
    let split = usize::from(split).min(bytes.len());
    if let Ok(Some(early)) = parse_response(&mut BytesMut::from(&bytes[..split]), head_request) {
        let Ok(Some(late)) = &whole else {
            panic!("a head complete in a prefix must be complete in the whole: {whole:?}");
        };
        assert_eq!(early.status, late.status);
        assert_eq!(early.lines, late.lines);
        assert_eq!(early.body, late.body);
        assert_eq!(early.keep_alive, late.keep_alive);
    }
});
