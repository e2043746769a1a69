//! The request pipeline: match, limit, read, verify, claim, forward.
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

use http::{Request, Response};
use hyper::body::Incoming;

use crate::config::{Config, Route, Unmatched};
use crate::limits;
use crate::metrics::Metrics;
use crate::reject::{Reason, Reject};
use crate::replay::{self, ClaimResult, ReplayStore};
use crate::routes::Router;
use crate::schemes::RequestView;
use forward::UpstreamClient;
use respond::{Forwarded, RequestContext, ResponseBody};

/// Everything a request needs, shared by all connections.
#[derive(Debug)]
pub struct State {
    /// The validated configuration.
    pub config: Config,
    /// Path to route lookup, built from `config`.
    pub router: Router,
    /// Replay protection.
    pub store: Arc<dyn ReplayStore>,
    /// Pooled connections to the app.
    pub client: UpstreamClient,
    /// Counters served on `/metrics`.
    pub metrics: Metrics,
}

/// Serves one request; never fails (every failure is an answer).
pub async fn handle(
    state: Arc<State>,
    peer: SocketAddr,
    mut request: Request<Incoming>,
) -> Result<Response<ResponseBody>, Infallible> {
    let started = Instant::now();
    let request_id = request_id::take(request.headers_mut());
    let route = state.router.find(request.uri().path()).cloned();
    let delivery = route
        .as_ref()
        .and_then(|r| r.delivery_header.as_ref())
        .and_then(|h| request.headers().get(h))
        .cloned();
    let result = match &route {
        Some(route) => verify_and_forward(&state, route, peer, request).await,
        None => match state.config.server.unmatched {
            Unmatched::Reject => Err(Reject::new(
                Reason::NoRoute,
                "no route is configured for this path",
            )),
            Unmatched::Forward => pass_through(&state, peer, request).await,
        },
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

/// The pipeline for a matched route.
async fn verify_and_forward(
    state: &State,
    route: &Route,
    peer: SocketAddr,
    request: Request<Incoming>,
) -> Result<Forwarded, Reject> {
    if !route.methods.contains(request.method()) {
        return Err(Reject::with(
            Reason::MethodNotAllowed,
            format!("this route accepts {}", route.allow.to_str().unwrap_or("")),
        ));
    }
    let server = &state.config.server;
    let (parts, body) = request.into_parts();
    let body = limits::read_body(body, &parts.headers, route.max_body, server.body_timeout).await?;
    let view = RequestView {
        method: &parts.method,
        uri: &parts.uri,
        headers: &parts.headers,
        body: &body,
    };
    let verified = route.scheme.verify(&view)?;
    let skew = verified.timestamp.map(|t| t.saturating_sub(unix_now()));
    state
        .metrics
        .verified(&route.name, &route.scheme.key_ids()[verified.key], skew);
    if let Some(skew) = skew {
        check_window(skew, route)?;
    }
    let claim = if route.dedupe.is_empty() {
        None
    } else {
        let keys = replay::keys_for(route, &verified, &view);
        match state.store.claim(keys, route.dedupe_ttl).await {
            Ok(ClaimResult::Claimed(claim)) => Some(claim),
            Ok(ClaimResult::Duplicate) => {
                return Err(Reject::new(
                    Reason::Duplicate,
                    "this delivery was already accepted by the app",
                ))
            }
            Ok(ClaimResult::InFlight) => {
                return Err(Reject::new(
                    Reason::InFlight,
                    "a copy of this delivery is being forwarded right now; retry later",
                ))
            }
            Err(error) => {
                return Err(Reject::with(
                    Reason::StoreUnavailable,
                    format!("the replay store is unavailable: {}", error.0),
                ))
            }
        }
    };
    let key = verified.key;
    let upstream = forward::build(server, parts, body, peer, Some(&route.verified_values[key]))?;
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
        key: Some(key),
    })
}

/// `unmatched = "forward"`: buffered under the server limit, passed on
/// unverified (the verified header is stripped, never set).
async fn pass_through(
    state: &State,
    peer: SocketAddr,
    request: Request<Incoming>,
) -> Result<Forwarded, Reject> {
    let server = &state.config.server;
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
    })
}

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
