//! The one place a request's result becomes what the sender sees, one log
//! line and one metric.
//!
//! Answers hookguard makes itself are JSON with `X-Hookguard-Reject`, so a
//! sender (or an operator reading its delivery log) can always tell
//! hookguard's refusals from the app's own answers. The app's answers are
//! relayed by the wire ([`crate::http1::relay`]) with their status and end
//! to end headers, re-framed for the sender, with hookguard's
//! `X-Request-Id`.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::Response;

use super::capture::Captures;
use crate::config::{Capture, Route, UNMATCHED_ROUTE};
use crate::http1::{Answer, AppResponse, Reply, RequestHead};
use crate::metrics::{Metrics, RouteSeries};
use crate::queue::Id;
use crate::reject::{Outcome, Reason, Reject};
use crate::schemes::challenge;

/// Header naming the reason on every answer hookguard makes itself.
pub const REJECT_HEADER: &str = "x-hookguard-reject";

/// Where a request that passed went.
#[derive(Debug)]
pub enum Handed {
    /// The app answered (sync delivery): its response, body still to be
    /// passed on.
    App(AppResponse),
    /// A durable route stored it under this id; the queue delivers it.
    Queued(Id),
}

/// A request the pipeline passed on: to the app, or to the queue.
#[derive(Debug)]
pub struct Forwarded {
    /// The app's response, or the queued delivery's id.
    pub response: Handed,
    /// Index of the key that verified the request; `None` when unverified
    /// (unmatched pass-through, or a shadow-mode failure).
    pub key: Option<usize>,
    /// In shadow mode, the check that failed (forwarded anyway).
    pub shadow: Option<Reason>,
}

/// How a request that was not refused ended.
#[derive(Debug)]
pub enum Done {
    /// The app answered it.
    Forwarded(Forwarded),
    /// It was an endpoint challenge, and hookguard answered it.
    Challenge(challenge::Reply),
}

impl From<Forwarded> for Done {
    fn from(forwarded: Forwarded) -> Self {
        Done::Forwarded(forwarded)
    }
}

/// Header on hookguard's own answer to an endpoint challenge, so that an
/// operator reading the sender's log can tell it from the app's.
pub const CHALLENGE_HEADER: &str = "x-hookguard-answered";

/// What is known about a request besides its result, for the log line.
#[derive(Debug)]
pub struct RequestContext<'a> {
    /// The matched route, if any.
    pub route: Option<&'a Route>,
    /// Its metric series (the unmatched route's when none matched).
    pub series: &'a RouteSeries,
    /// The socket peer.
    pub peer: SocketAddr,
    /// The request id, kept or generated; returned on the response.
    pub request_id: HeaderValue,
    /// The sender's delivery id: the route's delivery header, or its first
    /// JSON dedupe source when it has no header source.
    pub delivery: Option<HeaderValue>,
    /// When the request head arrived.
    pub started: Instant,
    /// What a refusal on a route with `capture_rejected` is written from.
    pub capture: Option<CaptureSource<'a>>,
}

/// A refused request's capture, written by [`finish`] only when the
/// request is refused.
#[derive(Debug)]
pub struct CaptureSource<'a> {
    /// The captures written so far (for the bounds).
    pub captures: &'a Captures,
    /// `capture_dir` and the bounds.
    pub settings: &'a Capture,
    /// Where dropped captures are counted.
    pub metrics: &'a Metrics,
    /// The request head as received.
    pub head: &'a RequestHead,
    /// The body as read; `None` when refused before it was read.
    pub body: Option<&'a [u8]>,
}

impl CaptureSource<'_> {
    /// Writes the capture; its path for the log line, or `None` (the
    /// failure logged: a capture must never fail the answer).
    fn write(&self, request_id: &str) -> Option<String> {
        match self.captures.write(
            self.settings,
            self.metrics,
            request_id,
            self.head,
            self.body,
        ) {
            Ok(path) => Some(path.display().to_string()),
            Err(error) => {
                tracing::warn!(request_id, %error, "could not capture a refused request");
                None
            }
        }
    }
}

/// Longest delivery id logged; ids are for finding a delivery, not storage.
const MAX_LOGGED_ID: usize = 128;

/// A delivery id made safe for a log field: printable ASCII, bounded.
/// One that is already (nearly every one) is borrowed, not copied.
pub fn loggable(value: &[u8]) -> Cow<'_, str> {
    if value.len() <= MAX_LOGGED_ID && value.iter().all(u8::is_ascii_graphic) {
        if let Ok(text) = std::str::from_utf8(value) {
            return Cow::Borrowed(text);
        }
    }
    Cow::Owned(
        value
            .iter()
            .take(MAX_LOGGED_ID)
            .map(|&b| if b.is_ascii_graphic() { b as char } else { '?' })
            .collect(),
    )
}

/// A client's address as its log field shows it (`127.0.0.1:45100`, as
/// `SocketAddr`'s own `Display`). An IPv4 address is written with
/// integer formatting into one buffer: through `Display` it was seven
/// formatted pieces, more than a tenth of the request's log line.
struct Peer(SocketAddr);

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let SocketAddr::V4(v4) = self.0 else {
            return self.0.fmt(f);
        };
        let mut text = [0u8; 21]; // 255.255.255.255:65535
        let mut len = 0;
        let mut put = |part: &[u8]| {
            text[len..len + part.len()].copy_from_slice(part);
            len += part.len();
        };
        let mut digits = itoa::Buffer::new();
        for (n, octet) in v4.ip().octets().into_iter().enumerate() {
            if n > 0 {
                put(b".");
            }
            put(digits.format(octet).as_bytes());
        }
        put(b":");
        put(digits.format(v4.port()).as_bytes());
        // Only ASCII digits, dots and a colon were written.
        f.write_str(std::str::from_utf8(&text[..len]).map_err(|_| std::fmt::Error)?)
    }
}

/// Turns a pipeline result into the answer, and logs and counts it.
pub fn finish(context: &RequestContext<'_>, result: Result<Done, Reject>) -> Reply {
    let route = context.route;
    let route_name = route.map_or(UNMATCHED_ROUTE, |r| r.name.as_str());
    let took = context.started.elapsed();
    let duration_ms = took.as_secs_f64() * 1000.0;
    let request_id = context.request_id.to_str().unwrap_or_default();
    let answer = match result {
        Ok(Done::Challenge(reply)) => {
            context.series.request(Outcome::Challenge, None, took);
            tracing::info!(
                request_id,
                route = route_name,
                outcome = Outcome::Challenge.as_str(),
                status = 200,
                duration_ms,
                peer = %Peer(context.peer),
                "endpoint challenge answered by hookguard"
            );
            Answer::Own(challenge_answer(reply))
        }
        Ok(Done::Forwarded(Forwarded {
            response: Handed::App(response),
            key,
            shadow,
        })) => {
            let status = response.head.status.as_u16();
            let key = key.zip(route).map(|(k, r)| r.scheme.key_ids()[k].as_str());
            let outcome = if shadow.is_some() {
                Outcome::Shadow
            } else {
                Outcome::Forwarded
            };
            // Shadow failures count under their reason too, so that the
            // rejection dashboards show what enforcing would refuse.
            context.series.request(outcome, shadow, took);
            tracing::info!(
                request_id,
                route = route_name,
                outcome = outcome.as_str(),
                reason = shadow.map(Reason::as_str),
                status,
                upstream_status = status,
                key,
                // Built only when the line is logged.
                delivery = context.delivery.as_ref().map(|d| loggable(d.as_bytes())).as_deref(),
                duration_ms,
                peer = %Peer(context.peer),
                "request forwarded"
            );
            Answer::Relay(response)
        }
        Ok(Done::Forwarded(Forwarded {
            response: Handed::Queued(id),
            key,
            shadow,
        })) => {
            let key = key.zip(route).map(|(k, r)| r.scheme.key_ids()[k].as_str());
            context.series.request(Outcome::Queued, shadow, took);
            tracing::info!(
                request_id,
                route = route_name,
                outcome = Outcome::Queued.as_str(),
                reason = shadow.map(Reason::as_str),
                status = QUEUED.as_u16(),
                queue_id = %id,
                key,
                delivery = context.delivery.as_ref().map(|d| loggable(d.as_bytes())).as_deref(),
                duration_ms,
                peer = %Peer(context.peer),
                "request queued"
            );
            Answer::Own(queued(id))
        }
        Err(reject) => {
            let outcome = reject.reason.outcome();
            context.series.request(outcome, Some(reject.reason), took);
            let capture = context
                .capture
                .as_ref()
                .filter(|_| reject.reason.capturable())
                .and_then(|source| source.write(request_id));
            tracing::info!(
                request_id,
                route = route_name,
                outcome = outcome.as_str(),
                reason = reject.reason.as_str(),
                status = reject.status().as_u16(),
                detail = %reject.detail,
                // Built only when the line is logged.
                delivery = context.delivery.as_ref().map(|d| loggable(d.as_bytes())).as_deref(),
                capture,
                duration_ms,
                peer = %Peer(context.peer),
                "request answered by hookguard"
            );
            Answer::Own(rejection(&reject, route))
        }
    };
    Reply {
        request_id: context.request_id.clone(),
        answer,
    }
}

/// hookguard's 200 answer to an endpoint challenge: never sniffed as
/// markup, marked as hookguard's.
fn challenge_answer(reply: challenge::Reply) -> Response<Bytes> {
    let mut response = Response::new(reply.body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(reply.content_type),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(CHALLENGE_HEADER, HeaderValue::from_static("challenge"));
    for (name, value) in reply.headers {
        headers.insert(name, value);
    }
    response
}

/// Builds hookguard's own answer for `reject`. Whether the connection
/// stays open is the connection's to say: a body left unread closes it.
pub fn rejection(reject: &Reject, route: Option<&Route>) -> Response<Bytes> {
    if let Some(original) = &reject.replayed {
        // The app's own first answer, replayed to a duplicate, still
        // marked as hookguard's so the sender's log can tell.
        let mut response = Response::new(original.body.clone());
        *response.status_mut() = original.status;
        let headers = response.headers_mut();
        if let Some(content_type) = &original.content_type {
            headers.insert(header::CONTENT_TYPE, content_type.clone());
        }
        headers.insert(
            REJECT_HEADER,
            HeaderValue::from_static(reject.reason.as_str()),
        );
        return response;
    }
    let mut response = answer_for(reject, route.map(|r| r.name.as_str()));
    if let (Reason::MethodNotAllowed, Some(route)) = (reject.reason, route) {
        response
            .headers_mut()
            .insert(header::ALLOW, route.allow.clone());
    }
    response
}

/// Hookguard's own JSON answer for `reject` on the route named
/// `route_name`: the status, `X-Hookguard-Reject` and `Retry-After`. The
/// egress listener answers with it too, so both listeners' refusals look
/// alike.
pub fn answer_for(reject: &Reject, route_name: Option<&str>) -> Response<Bytes> {
    let body = reject.body(route_name);
    let mut response = Response::new(Bytes::from(body));
    *response.status_mut() = reject.status();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(
        REJECT_HEADER,
        HeaderValue::from_static(reject.reason.as_str()),
    );
    if let Some(seconds) = reject.retry_after {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// The status a durable route answers once a request is stored.
const QUEUED: http::StatusCode = http::StatusCode::ACCEPTED;

/// `202 {"status":"queued","id":"..."}`, with the id in
/// `X-Hookguard-Delivery-Id` too (the header the app will see).
fn queued(id: Id) -> Response<Bytes> {
    let body = serde_json::json!({ "status": "queued", "id": id.to_string() }).to_string();
    let mut response = Response::new(Bytes::from(body));
    *response.status_mut() = QUEUED;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(value) = HeaderValue::from_str(&id.to_string()) {
        headers.insert(DELIVERY_ID_HEADER, value);
    }
    response
}

/// The header naming a queued delivery, on the 202 and on every attempt
/// to deliver it.
pub const DELIVERY_ID_HEADER: &str = "x-hookguard-delivery-id";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_shows_as_its_socket_address_does() {
        for text in [
            "127.0.0.1:45100",
            "0.0.0.0:0",
            "255.255.255.255:65535",
            "10.2.30.4:8080",
            "[::1]:443",
            "[fe80::1%2]:1",
        ] {
            let addr: SocketAddr = text.parse().unwrap();
            assert_eq!(Peer(addr).to_string(), addr.to_string());
        }
    }

    #[test]
    fn a_printable_delivery_id_is_borrowed_and_anything_else_made_printable() {
        assert!(matches!(
            loggable(b"evt_123-abc"),
            Cow::Borrowed("evt_123-abc")
        ));
        assert_eq!(loggable(b"a b\n\xff"), "a?b??");
        let long = vec![b'x'; MAX_LOGGED_ID + 5];
        assert_eq!(loggable(&long).len(), MAX_LOGGED_ID);
    }
}
