//! Why hookguard answered a request itself instead of forwarding it.
//!
//! Every step of the pipeline fails with a [`Reject`]; this module is the one
//! table that maps each [`Reason`] to its HTTP status and wire name, and
//! builds the JSON body the sender sees. The wire name is the contract: it is
//! the `X-Hookguard-Reject` header, the `error` field of the body, and the
//! `reason` label of `hookguard_rejections_total`.

use std::borrow::Cow;

use http::StatusCode;

/// The closed set of reasons hookguard answers a request itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The request head is not HTTP/1.x as RFC 9112 spells it (or a
    /// chunked body is malformed).
    MalformedRequest,
    /// The request head has more lines than `max_headers` or more bytes
    /// than `max_header_bytes`.
    HeadTooLarge,
    /// No route matches the path and `unmatched = "reject"`.
    NoRoute,
    /// The route does not accept this method.
    MethodNotAllowed,
    /// The request has both `Content-Length` and `Transfer-Encoding`,
    /// several `Content-Length`s, or a coding other than a single chunked:
    /// a request-smuggling shape.
    AmbiguousFraming,
    /// The client address is not in the route's `allow_ips`.
    IpDenied,
    /// The route's `rate_limit` is exhausted.
    RateLimited,
    /// The `Content-Type` is not in the route's `content_types`.
    UnsupportedMediaType,
    /// The body is larger than the route's `max_body`.
    BodyTooLarge,
    /// The body did not arrive within `body_timeout`.
    BodyTimeout,
    /// The client broke off while sending the body.
    BodyIncomplete,
    /// The signature header is absent.
    MissingSignature,
    /// The signature header is present but cannot be decoded.
    MalformedSignature,
    /// The signature decodes but matches no configured secret.
    BadSignature,
    /// A header that is part of the signed message is absent.
    MissingSignedHeader,
    /// The timestamp header is absent.
    MissingTimestamp,
    /// The timestamp header is not an integer.
    MalformedTimestamp,
    /// The timestamp is older than the route's tolerance.
    StaleTimestamp,
    /// The timestamp is further in the future than the route's tolerance.
    FutureTimestamp,
    /// A source in the route's `dedupe` is absent from the request and the
    /// route has `require_dedupe = true`.
    MissingDedupeSource,
    /// A copy of this delivery was already forwarded and accepted.
    Duplicate,
    /// A copy of this delivery is being forwarded right now.
    InFlight,
    /// The upstream could not be reached (connect error, reset).
    UpstreamUnavailable,
    /// The upstream did not answer within `upstream_timeout`.
    UpstreamTimeout,
    /// The replay store could not be asked (shared stores only).
    StoreUnavailable,
    /// Egress: the request is not for a configured partner route in origin
    /// form (an absolute-form target, or `CONNECT`): hookguard is not a
    /// forward proxy.
    NotAProxy,
    /// Egress: the app sent credentials or signature headers of its own
    /// and `egress.on_app_credentials = "reject"`.
    AppCredentials,
    /// Egress: the route takes its idempotency key from the request
    /// (`passthrough`, `header:`, `json:`) and the request has none.
    MissingIdempotencyKey,
    /// Egress: the retry budget (`max_elapsed`) ran out with no answer
    /// from the partner.
    EgressTimeout,
    /// A durable route's queue is at `queue.max_bytes`: nothing was
    /// stored, and the sender is asked to retry later.
    QueueFull,
    /// A durable route's queue could not store the request (an I/O error,
    /// a full disk): nothing was stored.
    QueueUnavailable,
    /// The key to verify with is fetched from the sender (PayPal's
    /// certificate) and is not cached yet, or could not be fetched: retry
    /// later (503 with `Retry-After`), the request path never waits on it.
    KeyUnavailable,
}

impl Reason {
    /// Every reason, for initialising metrics at zero.
    pub const ALL: &'static [Reason] = &[
        Reason::MalformedRequest,
        Reason::HeadTooLarge,
        Reason::NoRoute,
        Reason::MethodNotAllowed,
        Reason::AmbiguousFraming,
        Reason::IpDenied,
        Reason::RateLimited,
        Reason::UnsupportedMediaType,
        Reason::BodyTooLarge,
        Reason::BodyTimeout,
        Reason::BodyIncomplete,
        Reason::MissingSignature,
        Reason::MalformedSignature,
        Reason::BadSignature,
        Reason::MissingSignedHeader,
        Reason::MissingTimestamp,
        Reason::MalformedTimestamp,
        Reason::StaleTimestamp,
        Reason::FutureTimestamp,
        Reason::MissingDedupeSource,
        Reason::Duplicate,
        Reason::InFlight,
        Reason::UpstreamUnavailable,
        Reason::UpstreamTimeout,
        Reason::StoreUnavailable,
        Reason::NotAProxy,
        Reason::AppCredentials,
        Reason::MissingIdempotencyKey,
        Reason::EgressTimeout,
        Reason::QueueFull,
        Reason::QueueUnavailable,
        Reason::KeyUnavailable,
    ];

    /// The reasons the egress listener answers with: the ones it shares
    /// with the webhook side (`no_route`, `body_too_large`,
    /// `upstream_unavailable`) and its own; its metrics are created for
    /// these only.
    pub const EGRESS: &'static [Reason] = &[
        Reason::NoRoute,
        Reason::BodyTooLarge,
        Reason::BodyIncomplete,
        Reason::UpstreamUnavailable,
        Reason::NotAProxy,
        Reason::AppCredentials,
        Reason::MissingIdempotencyKey,
        Reason::EgressTimeout,
    ];

    /// The wire name: header value, JSON `error` and metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::MalformedRequest => "malformed_request",
            Reason::HeadTooLarge => "head_too_large",
            Reason::NoRoute => "no_route",
            Reason::MethodNotAllowed => "method_not_allowed",
            Reason::AmbiguousFraming => "ambiguous_framing",
            Reason::IpDenied => "ip_denied",
            Reason::RateLimited => "rate_limited",
            Reason::UnsupportedMediaType => "unsupported_media_type",
            Reason::BodyTooLarge => "body_too_large",
            Reason::BodyTimeout => "body_timeout",
            Reason::BodyIncomplete => "body_incomplete",
            Reason::MissingSignature => "missing_signature",
            Reason::MalformedSignature => "malformed_signature",
            Reason::BadSignature => "bad_signature",
            Reason::MissingSignedHeader => "missing_signed_header",
            Reason::MissingTimestamp => "missing_timestamp",
            Reason::MalformedTimestamp => "malformed_timestamp",
            Reason::StaleTimestamp => "stale_timestamp",
            Reason::FutureTimestamp => "future_timestamp",
            Reason::MissingDedupeSource => "missing_dedupe_source",
            Reason::Duplicate => "duplicate",
            Reason::InFlight => "in_flight",
            Reason::UpstreamUnavailable => "upstream_unavailable",
            Reason::UpstreamTimeout => "upstream_timeout",
            Reason::StoreUnavailable => "store_unavailable",
            Reason::NotAProxy => "not_a_proxy",
            Reason::AppCredentials => "app_credentials",
            Reason::MissingIdempotencyKey => "missing_idempotency_key",
            Reason::EgressTimeout => "egress_timeout",
            Reason::QueueFull => "queue_full",
            Reason::QueueUnavailable => "queue_unavailable",
            Reason::KeyUnavailable => "key_unavailable",
        }
    }

    /// Whether this reason says the request may not be the sender's: its
    /// signature or timestamp did not check out. These are answered 401, and
    /// shadow mode forwards them; one list serves both.
    pub fn is_authenticity(self) -> bool {
        matches!(
            self,
            Reason::MissingSignature
                | Reason::MalformedSignature
                | Reason::BadSignature
                | Reason::MissingSignedHeader
                | Reason::MissingTimestamp
                | Reason::MalformedTimestamp
                | Reason::StaleTimestamp
                | Reason::FutureTimestamp
        )
    }

    /// The status hookguard answers with.
    pub fn status(self) -> StatusCode {
        match self {
            _ if self.is_authenticity() => StatusCode::UNAUTHORIZED,
            Reason::MalformedRequest => StatusCode::BAD_REQUEST,
            Reason::HeadTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Reason::NoRoute => StatusCode::NOT_FOUND,
            Reason::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Reason::AmbiguousFraming => StatusCode::BAD_REQUEST,
            Reason::IpDenied => StatusCode::FORBIDDEN,
            Reason::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Reason::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Reason::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Reason::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Reason::BodyIncomplete => StatusCode::BAD_REQUEST,
            Reason::MissingDedupeSource => StatusCode::BAD_REQUEST,
            // A duplicate of a completed delivery is answered with success so
            // that the sender stops retrying: the app already has it.
            Reason::Duplicate => StatusCode::OK,
            // The route may choose another (`in_flight_status`); every
            // sender retries a 503.
            Reason::InFlight => StatusCode::SERVICE_UNAVAILABLE,
            Reason::UpstreamUnavailable => StatusCode::BAD_GATEWAY,
            Reason::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            Reason::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Reason::NotAProxy => StatusCode::BAD_REQUEST,
            Reason::AppCredentials => StatusCode::BAD_REQUEST,
            Reason::MissingIdempotencyKey => StatusCode::BAD_REQUEST,
            Reason::EgressTimeout => StatusCode::GATEWAY_TIMEOUT,
            Reason::QueueFull | Reason::QueueUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Reason::KeyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            // The authenticity reasons, taken by the first arm.
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    /// The `outcome` label this reason counts under.
    pub fn outcome(self) -> Outcome {
        match self {
            Reason::Duplicate | Reason::InFlight => Outcome::Duplicate,
            _ => Outcome::Rejected,
        }
    }

    /// Whether a refusal for this reason is about the request itself, so
    /// that a capture of it (`capture_rejected`) shows what went wrong;
    /// not a duplicate, nor a failing app or replay store.
    pub fn capturable(self) -> bool {
        self.outcome() == Outcome::Rejected
            && !matches!(
                self,
                Reason::UpstreamUnavailable
                    | Reason::UpstreamTimeout
                    | Reason::StoreUnavailable
                    | Reason::EgressTimeout
                    | Reason::QueueFull
                    | Reason::QueueUnavailable
                    | Reason::KeyUnavailable
            )
    }

    /// Whether shadow mode (`enforce = false`) forwards a request failing
    /// for this reason. Only reasons about the request's authenticity and
    /// admission are; a body that never arrived, a malformed request or a
    /// failing app cannot be forwarded anyway.
    pub fn shadowable(self) -> bool {
        self.is_authenticity()
            || matches!(
                self,
                Reason::MethodNotAllowed
                    | Reason::IpDenied
                    | Reason::RateLimited
                    | Reason::UnsupportedMediaType
                    | Reason::MissingDedupeSource
                    | Reason::Duplicate
                    | Reason::InFlight
                    // A certificate still being fetched says nothing about
                    // the request; shadow mode never holds a delivery back.
                    | Reason::KeyUnavailable
            )
    }
}

/// What became of a request, as counted in `hookguard_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Verified (or unmatched with `unmatched = "forward"`) and sent upstream.
    Forwarded,
    /// Answered by hookguard with an error.
    Rejected,
    /// A replay of a delivery already forwarded or in flight.
    Duplicate,
    /// Failed a check on a route in shadow mode, forwarded anyway.
    Shadow,
    /// An endpoint challenge hookguard answered itself.
    Challenge,
    /// Stored by a durable route, to be delivered by its queue (in shadow
    /// mode, perhaps having failed a check: then counted under its reason
    /// too, as `shadow` requests are).
    Queued,
}

impl Outcome {
    /// Every outcome, for initialising metrics at zero.
    pub const ALL: &'static [Outcome] = &[
        Outcome::Forwarded,
        Outcome::Rejected,
        Outcome::Duplicate,
        Outcome::Shadow,
        Outcome::Challenge,
        Outcome::Queued,
    ];

    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Forwarded => "forwarded",
            Outcome::Rejected => "rejected",
            Outcome::Duplicate => "duplicate",
            Outcome::Shadow => "shadow",
            Outcome::Challenge => "challenge",
            Outcome::Queued => "queued",
        }
    }
}

/// A refusal with a human-readable detail.
///
/// The detail explains the reason in terms of the configuration (which header
/// was expected, what the limit is). It must never contain a secret, an
/// expected signature, or request body content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    /// The machine-readable reason.
    pub reason: Reason,
    /// A sentence for the human reading the sender's delivery log.
    pub detail: Cow<'static, str>,
    /// Seconds for a `Retry-After` header, when retrying later will work.
    pub retry_after: Option<u64>,
    /// A status the route chose instead of the reason's own (the
    /// `in_flight` answer's, `in_flight_status`).
    status: Option<StatusCode>,
    /// An answer sent instead of the JSON body: the app's own first answer
    /// to a delivery, replayed to its duplicates (`duplicate_answer =
    /// "original"`).
    pub replayed: Option<Box<Replayed>>,
}

/// The app's first answer to a delivery, as replayed to later copies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replayed {
    /// Its status.
    pub status: StatusCode,
    /// Its `Content-Type`, if it had one.
    pub content_type: Option<http::HeaderValue>,
    /// Its body.
    pub body: bytes::Bytes,
}

impl Reject {
    /// A rejection with a fixed detail.
    pub fn new(reason: Reason, detail: &'static str) -> Self {
        Reject {
            reason,
            detail: Cow::Borrowed(detail),
            retry_after: None,
            status: None,
            replayed: None,
        }
    }

    /// A rejection whose detail is built from configuration values.
    pub fn with(reason: Reason, detail: String) -> Self {
        Reject {
            reason,
            detail: Cow::Owned(detail),
            retry_after: None,
            status: None,
            replayed: None,
        }
    }

    /// Answers with `status` instead of the reason's own.
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = Some(status);
        self
    }

    /// Answers with the app's own first answer instead of the JSON body.
    pub fn replaying(mut self, answer: Replayed) -> Self {
        self.replayed = Some(Box::new(answer));
        self
    }

    /// The status of the answer: a replayed answer's, else the route's
    /// choice, else the reason's.
    pub fn status(&self) -> StatusCode {
        match &self.replayed {
            Some(answer) => answer.status,
            None => self.status.unwrap_or_else(|| self.reason.status()),
        }
    }

    /// Asks the sender to retry after `seconds`.
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// The JSON body sent to the client: `error` first, as people read it
    /// (serde_json's `preserve_order` keeps the order written here).
    pub fn body(&self, route: Option<&str>) -> String {
        let mut body = serde_json::Map::with_capacity(4);
        if self.reason == Reason::Duplicate {
            body.insert("status".into(), "duplicate".into());
        }
        body.insert("error".into(), self.reason.as_str().into());
        body.insert("route".into(), route.into());
        body.insert("detail".into(), self.detail.as_ref().into());
        serde_json::Value::Object(body).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_reason_has_its_documented_status() {
        let expected = [
            ("malformed_request", 400),
            ("head_too_large", 431),
            ("no_route", 404),
            ("method_not_allowed", 405),
            ("ambiguous_framing", 400),
            ("ip_denied", 403),
            ("rate_limited", 429),
            ("unsupported_media_type", 415),
            ("body_too_large", 413),
            ("body_timeout", 408),
            ("body_incomplete", 400),
            ("missing_signature", 401),
            ("malformed_signature", 401),
            ("bad_signature", 401),
            ("missing_signed_header", 401),
            ("missing_timestamp", 401),
            ("malformed_timestamp", 401),
            ("stale_timestamp", 401),
            ("future_timestamp", 401),
            ("missing_dedupe_source", 400),
            ("duplicate", 200),
            ("in_flight", 503),
            ("upstream_unavailable", 502),
            ("upstream_timeout", 504),
            ("store_unavailable", 503),
            ("not_a_proxy", 400),
            ("app_credentials", 400),
            ("missing_idempotency_key", 400),
            ("egress_timeout", 504),
            ("queue_full", 503),
            ("queue_unavailable", 503),
            ("key_unavailable", 503),
        ];
        assert_eq!(expected.len(), Reason::ALL.len());
        for (reason, (name, status)) in Reason::ALL.iter().zip(expected) {
            assert_eq!(reason.as_str(), name);
            assert_eq!(reason.status().as_u16(), status, "{name}");
        }
    }

    #[test]
    fn authenticity_reasons_are_the_401s_and_shadow_mode_passes_each() {
        for reason in Reason::ALL {
            assert_eq!(
                reason.is_authenticity(),
                reason.status() == StatusCode::UNAUTHORIZED,
                "{reason:?}"
            );
            if reason.is_authenticity() {
                assert!(reason.shadowable(), "{reason:?}");
            }
        }
    }

    #[test]
    fn the_all_lists_follow_declaration_order() {
        // Metric handles are indexed by `as usize` (see metrics::RouteSeries).
        for (i, reason) in Reason::ALL.iter().enumerate() {
            assert_eq!(*reason as usize, i);
        }
        for (i, outcome) in Outcome::ALL.iter().enumerate() {
            assert_eq!(*outcome as usize, i);
        }
    }

    #[test]
    fn duplicate_body_says_status_duplicate() {
        let body = Reject::new(Reason::Duplicate, "seen").body(Some("r"));
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["status"], "duplicate");
        assert_eq!(v["route"], "r");
        let body = Reject::new(Reason::NoRoute, "x").body(None);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["error"], "no_route");
        assert!(v["route"].is_null());
        assert!(v.get("status").is_none());
    }
}
