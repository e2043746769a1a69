//! The request pipeline: match, admit, read, verify, claim, forward.
//!
//! [`handle`] is the whole life of one request and reads top to bottom. Each
//! step returns `Result<_, Reject>`; [`respond::finish`] is the one place
//! where the result becomes a response, a log line and a metric.
//!
//! - [`forward`]: rebuilding the request for the app and sending it.
//! - [`request_id`]: keeping or making the `X-Request-Id`.
//! - [`respond`]: turning an outcome into the answer the sender sees.

pub mod forward;
pub mod request_id;
pub mod respond;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use http::{Request, Response};
use hyper::body::Incoming;

use crate::config::{Config, OnStoreError, Route, Unmatched};
use crate::limits;
use crate::metrics::Metrics;
use crate::reject::{Reason, Reject};
use crate::replay::{self, ClaimResult, ReplayStore};
use crate::routes::Router;
use crate::schemes::{RequestView, Verified};
use forward::UpstreamClient;
use respond::{Forwarded, RequestContext, ResponseBody};

/// The part of the state a config reload replaces, swapped as a whole.
#[derive(Debug)]
pub struct Live {
    /// The validated configuration.
    pub config: Config,
    /// Path to route lookup, built from `config`.
    pub router: Router,
}

impl Live {
    /// Prepares the routing for `config`.
    pub fn new(config: Config) -> Self {
        Live {
            router: Router::new(&config.routes),
            config,
        }
    }
}

/// Everything a request needs, shared by all connections. The replay store,
/// the client and the metrics outlive reloads: a reload must not reopen the
/// replay window.
#[derive(Debug)]
pub struct State {
    /// Config and routes; a request holds the version it started with.
    pub live: ArcSwap<Live>,
    /// Replay protection.
    pub store: Arc<dyn ReplayStore>,
    /// What a request does when the store cannot answer; bound at start
    /// with the store (readiness follows the same policy).
    pub on_store_error: OnStoreError,
    /// Pooled connections to the app.
    pub client: UpstreamClient,
    /// Counters served on `/metrics`.
    pub metrics: Metrics,
}

/// What is known about the connection a request arrived on.
#[derive(Debug, Clone, Copy)]
pub struct Connection {
    /// The socket peer.
    pub peer: SocketAddr,
    /// The framing guard saw an ambiguous request head on this connection
    /// (see [`crate::framing`]).
    pub ambiguous_framing: bool,
}

/// Serves one request; never fails (every failure is an answer).
pub async fn handle(
    state: Arc<State>,
    connection: Connection,
    mut request: Request<Incoming>,
) -> Result<Response<ResponseBody>, Infallible> {
    let peer = connection.peer;
    let started = Instant::now();
    let live = state.live.load_full();
    let request_id = request_id::take(request.headers_mut());
    let route = live.router.find(request.uri().path()).cloned();
    let delivery = route
        .as_ref()
        .and_then(|r| r.delivery_header.as_ref())
        .and_then(|h| request.headers().get(h))
        .cloned();
    // hyper resolves an ambiguous length by the RFC and drops the
    // conflicting header, so only the byte-level guard underneath it can
    // tell (see `crate::framing`).
    let result = if connection.ambiguous_framing {
        Err(Reject::new(
            Reason::AmbiguousFraming,
            "the request's length is ambiguous (Content-Length with Transfer-Encoding, or Content-Length twice)",
        ))
    } else {
        match &route {
            Some(route) => verify_and_forward(&state, &live.config, route, peer, request).await,
            None => match live.config.server.unmatched {
                Unmatched::Reject => Err(Reject::new(
                    Reason::NoRoute,
                    "no route is configured for this path",
                )),
                Unmatched::Forward => pass_through(&state, &live.config, peer, request).await,
            },
        }
    };
    let context = RequestContext {
        route: route.as_deref(),
        peer,
        request_id,
        delivery,
        started,
    };
    Ok(respond::finish(&state, &context, result))
}

/// Shadow mode's bookkeeping: with `enforce = false`, the first failing
/// check is remembered instead of ending the request.
struct Shadow {
    enforce: bool,
    failed: Option<Reject>,
}

impl Shadow {
    /// Passes a check's value through; a failure ends the request when
    /// enforcing, and is recorded (giving `None`) in shadow mode.
    fn check<T>(&mut self, result: Result<T, Reject>) -> Result<Option<T>, Reject> {
        match result {
            Ok(value) => Ok(Some(value)),
            Err(reject) if !self.enforce && reject.reason.shadowable() => {
                self.failed.get_or_insert(reject);
                Ok(None)
            }
            Err(reject) => Err(reject),
        }
    }
}

/// The pipeline for a matched route: admission (method, client address,
/// rate, content type), body, signature, timestamp window, replay claim,
/// forward.
async fn verify_and_forward(
    state: &State,
    config: &Config,
    route: &Route,
    peer: SocketAddr,
    request: Request<Incoming>,
) -> Result<Forwarded, Reject> {
    let server = &config.server;
    let mut shadow = Shadow {
        enforce: route.enforce,
        failed: None,
    };
    shadow.check(limits::check_method(route, request.method()))?;
    shadow.check(limits::check_client(route, server, peer, request.headers()))?;
    shadow.check(limits::check_rate(route))?;
    shadow.check(limits::check_content_type(route, request.headers()))?;
    let (parts, body) = request.into_parts();
    let body = limits::read_body(body, &parts.headers, route.max_body, server.body_timeout).await?;
    let view = RequestView {
        method: &parts.method,
        uri: &parts.uri,
        headers: &parts.headers,
        body: &body,
    };
    let verified = shadow.check(verify(state, route, &view))?;
    let claim = match &verified {
        Some(verified) if !route.dedupe.is_empty() => {
            let keys = replay::keys_for(route, verified, &view);
            shadow.check(claim(state, route, keys).await)?.flatten()
        }
        _ => None,
    };
    // Marked verified only when every check passed.
    let key = verified
        .as_ref()
        .filter(|_| shadow.failed.is_none())
        .map(|v| v.key);
    let marker = key.map(|k| &route.verified_values[k]);
    let mut upstream = forward::build(server, parts, body, peer, marker)?;
    if let Some(failed) = &shadow.failed {
        forward::mark_shadow(&mut upstream, failed.reason);
    }
    let sent = Instant::now();
    let response = forward::send(
        &state.client,
        &state.store,
        server.upstream_timeout,
        upstream,
        claim,
    )
    .await?;
    state
        .metrics
        .upstream(&route.name, response.status().as_u16(), sent.elapsed());
    Ok(Forwarded {
        response,
        key,
        shadow: shadow.failed.map(|r| r.reason),
    })
}

/// Checks the signature and the timestamp window; counts which key matched
/// and the sender's clock skew.
fn verify(state: &State, route: &Route, view: &RequestView<'_>) -> Result<Verified, Reject> {
    let verified = route.scheme.verify(view)?;
    let skew = verified.timestamp.map(|t| t.saturating_sub(unix_now()));
    state
        .metrics
        .verified(&route.name, &route.scheme.key_ids()[verified.key], skew);
    if let Some(skew) = skew {
        check_window(skew, route)?;
    }
    Ok(verified)
}

/// Claims the request's dedupe keys; `None` when it has none, and when the
/// store failed under `on_store_error = "allow"` (counted and logged).
async fn claim(
    state: &State,
    route: &Route,
    keys: Vec<replay::Key>,
) -> Result<Option<replay::Claim>, Reject> {
    if keys.is_empty() {
        return Ok(None);
    }
    match state.store.claim(keys, route.dedupe_ttl).await {
        Ok(ClaimResult::Claimed(claim)) => Ok(Some(claim)),
        Ok(ClaimResult::Duplicate) => Err(Reject::new(
            Reason::Duplicate,
            "this delivery was already accepted by the app",
        )),
        Ok(ClaimResult::InFlight) => Err(Reject::new(
            Reason::InFlight,
            "a copy of this delivery is being forwarded right now; retry later",
        )
        .retry_after(IN_FLIGHT_RETRY_AFTER)),
        Err(error) if state.on_store_error == OnStoreError::Allow => {
            state.metrics.store_bypass(&route.name);
            tracing::warn!(
                route = %route.name,
                error = %error.0,
                "replay store unavailable; forwarding without replay protection (on_store_error = allow)"
            );
            Ok(None)
        }
        Err(error) => Err(Reject::with(
            Reason::StoreUnavailable,
            format!("the replay store is unavailable: {}", error.0),
        )),
    }
}

/// `unmatched = "forward"`: buffered under the server limit, passed on
/// unverified (the verified header is stripped, never set).
async fn pass_through(
    state: &State,
    config: &Config,
    peer: SocketAddr,
    request: Request<Incoming>,
) -> Result<Forwarded, Reject> {
    let server = &config.server;
    let (parts, body) = request.into_parts();
    let body =
        limits::read_body(body, &parts.headers, server.max_body, server.body_timeout).await?;
    let upstream = forward::build(server, parts, body, peer, None)?;
    let sent = Instant::now();
    let response = forward::send(
        &state.client,
        &state.store,
        server.upstream_timeout,
        upstream,
        None,
    )
    .await?;
    state.metrics.upstream(
        crate::config::UNMATCHED_ROUTE,
        response.status().as_u16(),
        sent.elapsed(),
    );
    Ok(Forwarded {
        response,
        key: None,
        shadow: None,
    })
}

/// Seconds a sender is asked to wait before retrying an in-flight delivery:
/// long enough for a typical app to answer the first copy.
const IN_FLIGHT_RETRY_AFTER: u64 = 5;

/// Unix seconds now.
fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Refuses timestamps outside the route's tolerance, in either direction;
/// `skew` is the sender's timestamp minus our clock.
fn check_window(skew: i64, route: &Route) -> Result<(), Reject> {
    let tolerance = route.tolerance.as_secs() as i64;
    if skew < -tolerance {
        Err(Reject::with(
            Reason::StaleTimestamp,
            format!(
                "the timestamp is {} s old; this route accepts {tolerance} s",
                skew.unsigned_abs()
            ),
        ))
    } else if skew > tolerance {
        Err(Reject::with(
            Reason::FutureTimestamp,
            format!("the timestamp is {skew} s in the future; this route accepts {tolerance} s"),
        ))
    } else {
        Ok(())
    }
}
