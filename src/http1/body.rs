//! Message bodies: how one is delimited (the same four ways for requests
//! and answers), the request body still on the connection, and why
//! reading one failed.
//!
//! The wire reports body failures as [`BodyError`]s, not as HTTP answers:
//! what status and reason each becomes is the pipeline's to say.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;

use super::sender::Downstream;

/// How a message's body is delimited (RFC 9112 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyLength {
    /// No body: a request without framing headers, a HEAD answer, a 204 or
    /// a 304.
    Empty,
    /// Exactly this many bytes follow the head.
    Length(u64),
    /// The chunked coding.
    Chunked,
    /// Until the connection closes (answers only: a request without
    /// framing headers has no body).
    UntilClose,
}

/// Why a request body could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// The body is (or declares to be) larger than the limit it was read
    /// with.
    TooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// The body did not arrive in full within the time it was read with.
    Timeout(Duration),
    /// The connection ended before the body did.
    Incomplete,
    /// The chunked coding was broken.
    Malformed(&'static str),
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyError::TooLarge { limit } => write!(f, "the body is larger than {limit} bytes"),
            BodyError::Timeout(within) => write!(
                f,
                "the body did not arrive within {} ms",
                within.as_millis()
            ),
            BodyError::Incomplete => f.write_str("the connection ended before the body did"),
            BodyError::Malformed(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for BodyError {}

/// A request's body, still on the sender's connection: read only when the
/// handler asks, so that a request refused on its head costs no body.
/// Dropped unread, the connection is closed after the answer (it cannot
/// carry another request with a body still in the way).
#[derive(Debug)]
pub struct Body<'c> {
    pub(super) down: &'c mut Downstream,
    pub(super) length: BodyLength,
}

impl Body<'_> {
    /// How the sender delimited the body.
    pub fn length(&self) -> BodyLength {
        self.length
    }

    /// Reads the whole (decoded) body: at most `limit` bytes, all within
    /// `within`. A declared length over the limit is refused before a byte
    /// is read; a chunked body as soon as it passes the limit.
    pub async fn read_to_end(self, limit: u64, within: Duration) -> Result<Bytes, BodyError> {
        self.down.read_body(self.length, limit, within).await
    }
}
