//! Limits applied before any work is spent on a request.
//!
//! The body is refused on its declared `Content-Length` before a byte is
//! read, and counted while streaming (chunked bodies declare nothing), under
//! a deadline, so a slow or huge sender cannot hold memory or a task.

use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;

use crate::reject::{Reason, Reject};

/// Reads the whole body, at most `limit` bytes, within `deadline`.
pub async fn read_body(
    body: Incoming,
    headers: &HeaderMap,
    limit: u64,
    deadline: Duration,
) -> Result<Bytes, Reject> {
    let too_large = || {
        Reject::with(
            Reason::BodyTooLarge,
            format!("the body is larger than this route's limit of {limit} bytes"),
        )
    };
    if declared_length(headers).is_some_and(|declared| declared > limit) {
        return Err(too_large());
    }
    let limit_usize = usize::try_from(limit).unwrap_or(usize::MAX);
    match tokio::time::timeout(deadline, Limited::new(body, limit_usize).collect()).await {
        Err(_) => Err(Reject::with(
            Reason::BodyTimeout,
            format!("the body did not arrive within {} ms", deadline.as_millis()),
        )),
        Ok(Err(error)) if error.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Ok(Err(_)) => Err(Reject::new(
            Reason::BodyIncomplete,
            "the connection failed before the whole body arrived",
        )),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}

/// The declared `Content-Length`, when there is exactly one valid value
/// (hyper has already refused conflicting ones).
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}
