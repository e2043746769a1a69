//! Request ids: kept from the sender's `X-Request-Id` when it is sane,
//! generated otherwise; forwarded to the app, returned on every response and
//! logged, so that one delivery can be followed through sender, hookguard and
//! app logs.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use http::header::{HeaderMap, HeaderName, HeaderValue};

/// The header carrying the id.
pub static HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Longest incoming id kept; longer ones are replaced, not truncated (a
/// truncated id would no longer match the sender's logs).
const MAX_LEN: usize = 128;

/// Takes the request's id, or makes one, and leaves exactly that one in
/// `headers` (so it is forwarded as is).
pub fn take(headers: &mut HeaderMap) -> HeaderValue {
    let kept = headers
        .get(&HEADER)
        .filter(|value| is_sane(value.as_bytes()))
        .cloned();
    let id = kept.unwrap_or_else(generate);
    headers.insert(HEADER.clone(), id.clone());
    id
}

/// Letters, digits and `-_.:/+=` only (UUIDs, ULIDs, trace ids), at most
/// [`MAX_LEN`] bytes: nothing that could forge a log line or a header.
fn is_sane(bytes: &[u8]) -> bool {
    !bytes.is_empty()
        && bytes.len() <= MAX_LEN
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=".contains(b))
}

/// A process-unique id: a random 64-bit prefix chosen at start, then a
/// counter. Ids need to be unique, not unpredictable.
pub fn generate() -> HeaderValue {
    static PREFIX: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = *PREFIX.get_or_init(|| {
        // std's RandomState is seeded from the OS; hashing nothing with it
        // yields a random value without another dependency.
        std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish()
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    // 32 hex digits written directly: this runs for most requests, and
    // format! costs several times as much.
    let mut id = [0u8; 32];
    for (i, byte) in prefix
        .to_be_bytes()
        .iter()
        .chain(&n.to_be_bytes())
        .enumerate()
    {
        id[2 * i] = HEX[usize::from(byte >> 4)];
        id[2 * i + 1] = HEX[usize::from(byte & 0xf)];
    }
    HeaderValue::from_bytes(&id).expect("hex digits are a valid header value")
}

const HEX: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sane_incoming_id_is_kept() {
        let mut headers = HeaderMap::new();
        headers.insert("x-request-id", "req-42_a.b:c".parse().unwrap());
        assert_eq!(take(&mut headers), "req-42_a.b:c");
        assert_eq!(headers["x-request-id"], "req-42_a.b:c");
    }

    #[test]
    fn odd_or_long_ids_are_replaced_and_generated_ids_are_unique() {
        for bad in ["has space", "quote\"", &"x".repeat(129), ""] {
            let mut headers = HeaderMap::new();
            headers.insert("x-request-id", bad.parse().unwrap());
            let id = take(&mut headers);
            assert_ne!(id, bad);
            assert_eq!(id.len(), 32);
            assert_eq!(headers.get_all("x-request-id").iter().count(), 1);
        }
        let mut a = HeaderMap::new();
        let mut b = HeaderMap::new();
        assert_ne!(take(&mut a), take(&mut b));
    }
}
