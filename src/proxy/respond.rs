//! The one place a request's result becomes what the sender sees, one log
//! line and one metric.
//!
//! Answers hookguard makes itself are JSON with `X-Hookguard-Reject`, so a
//! sender (or an operator reading its delivery log) can always tell
//! hookguard's refusals from the app's own answers. The app's responses are
//! streamed back unchanged apart from hop-by-hop headers.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::Response;
use http_body_util::{Either, Full};
use hyper::body::Incoming;

use super::forward;
use super::State;
use crate::config::{Route, UNMATCHED_ROUTE};
use crate::reject::{Outcome, Reason, Reject};

/// Body of every response hookguard sends: its own JSON, or the app's
/// streamed body.
pub type ResponseBody = Either<Full<Bytes>, Incoming>;

/// Header naming the reason on every answer hookguard makes itself.
pub const REJECT_HEADER: &str = "x-hookguard-reject";

/// Seconds a sender is asked to wait before retrying an in-flight delivery.
const IN_FLIGHT_RETRY_AFTER: u64 = 5;

/// A request the app answered.
#[derive(Debug)]
pub struct Forwarded {
    /// The app's response, body still streaming.
    pub response: Response<Incoming>,
    /// Index of the key that verified the request; `None` when unverified
    /// (unmatched pass-through).
    pub key: Option<usize>,
}

/// Turns a pipeline result into the response, and logs and counts it.
pub fn finish(
    state: &State,
    route: Option<&Route>,
    peer: SocketAddr,
    result: Result<Forwarded, Reject>,
    started: Instant,
) -> Response<ResponseBody> {
    let route_name = route.map_or(UNMATCHED_ROUTE, |r| r.name.as_str());
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    match result {
        Ok(forwarded) => {
            let status = forwarded.response.status();
            let key = forwarded
                .key
                .zip(route)
                .map(|(k, r)| r.scheme.key_ids()[k].as_str());
            state.metrics.request(route_name, Outcome::Forwarded, None);
            tracing::info!(
                route = route_name,
                outcome = Outcome::Forwarded.as_str(),
                status = status.as_u16(),
                upstream_status = status.as_u16(),
                key,
                duration_ms = elapsed_ms,
                peer = %peer,
                "request forwarded"
            );
            let (mut parts, body) = forwarded.response.into_parts();
            forward::strip_hop_by_hop(&mut parts.headers);
            Response::from_parts(parts, Either::Right(body))
        }
        Err(reject) => {
            let outcome = reject.reason.outcome();
            state
                .metrics
                .request(route_name, outcome, Some(reject.reason));
            tracing::info!(
                route = route_name,
                outcome = outcome.as_str(),
                reason = reject.reason.as_str(),
                status = reject.reason.status().as_u16(),
                detail = %reject.detail,
                duration_ms = elapsed_ms,
                peer = %peer,
                "request answered by hookguard"
            );
            rejection(&reject, route)
        }
    }
}

/// Builds hookguard's own answer for `reject`.
pub fn rejection(reject: &Reject, route: Option<&Route>) -> Response<ResponseBody> {
    let body = reject.body(route.map(|r| r.name.as_str()));
    let mut response = Response::new(Either::Left(Full::new(Bytes::from(body))));
    *response.status_mut() = reject.reason.status();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(
        REJECT_HEADER,
        HeaderValue::from_static(reject.reason.as_str()),
    );
    match reject.reason {
        Reason::MethodNotAllowed => {
            if let Some(route) = route {
                headers.insert(header::ALLOW, route.allow.clone());
            }
        }
        Reason::InFlight => {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from(IN_FLIGHT_RETRY_AFTER),
            );
        }
        // The rest of the body may still be on the wire; the connection
        // cannot be reused safely, so it is closed after this answer.
        Reason::BodyTooLarge | Reason::BodyTimeout | Reason::BodyIncomplete => {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        _ => {}
    }
    response
}
