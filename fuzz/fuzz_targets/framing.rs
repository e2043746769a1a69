//! The request-smuggling scanner over any byte stream, in any read sizes.
#![no_main]

use hookguard::framing::Scanner;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u8, &[u8])| {
    let (step, bytes) = input;
    let step = usize::from(step.max(1));
    let mut scanner = Scanner::default();
    for piece in bytes.chunks(step) {
        scanner.feed(piece);
    }
    // The same bytes in one read reach the same verdict.
    let mut whole = Scanner::default();
    whole.feed(bytes);
    assert_eq!(whole.ambiguous(), scanner.ambiguous());
});
