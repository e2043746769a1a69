//! The request pipeline: match, admit, read, verify, claim, forward.
//!
//! [`handle`] is the whole life of one request and reads top to bottom. Each
//! step returns `Result<_, Reject>`; [`respond::finish`] is the one place
//! where the result becomes a response, a log line and a metric. The wire
//! (reading heads and bodies, writing answers) is [`crate::http1`]'s.
//!
//! - [`forward`]: rebuilding the request for the app and sending it.
//! - [`request_id`]: keeping or making the `X-Request-Id`.
//! - [`respond`]: turning an outcome into the answer the sender sees.

pub mod forward;
pub mod request_id;
pub mod respond;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;

use crate::config::{Config, OnStoreError, Route, Unmatched, UNMATCHED_ROUTE};
use crate::http1::conn::Downstream;
use crate::http1::head::{HeadError, RequestHead};
use crate::limits;
use crate::metrics::{Metrics, RouteSeries};
use crate::reject::{Reason, Reject};
use crate::replay::{self, ClaimResult, ReplayStore};
use crate::routes::Router;
use crate::schemes::{RequestView, Verified};
pub use respond::{Answer, Reply};
use respond::{Forwarded, RequestContext};

/// The part of the state a config reload replaces, swapped as a whole.
#[derive(Debug)]
pub struct Live {
    /// The validated configuration.
    pub config: Config,
    /// Path to route lookup, built from `config`.
    pub router: Router,
    /// Each route's metric series, in `config.routes` order.
    pub series: Vec<RouteSeries>,
    /// The series of requests no route matched.
    pub unmatched: RouteSeries,
}

impl Live {
    /// Prepares the routing and the metric series for `config`.
    pub fn new(config: Config, metrics: &Metrics) -> Self {
        Live {
            router: Router::new(&config.routes),
            series: config
                .routes
                .iter()
                .map(|r| metrics.route(&r.name, r.scheme.key_ids()))
                .collect(),
            unmatched: metrics.route(UNMATCHED_ROUTE, &[]),
            config,
        }
    }
}

/// Everything a request needs, shared by all connections. The replay store
/// and the metrics outlive reloads: a reload must not reopen the
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
    /// Counters served on `/metrics`.
    pub metrics: Metrics,
}

/// Serves one request whose head has arrived; never fails (every failure
/// is an answer). The body is read from `down` only once the request has
/// been admitted.
pub async fn handle(
    state: &State,
    down: &mut Downstream,
    peer: SocketAddr,
    mut head: RequestHead,
) -> Reply {
    let started = Instant::now();
    let live = state.live.load_full();
    let request_id = request_id::take(&mut head.headers);
    let matched = live.router.find(head.uri.path());
    let route = matched.map(|i| &*live.config.routes[i]);
    let series = matched.map_or(&live.unmatched, |i| &live.series[i]);
    let delivery = route
        .and_then(|r| r.delivery_header.as_ref())
        .and_then(|h| head.headers.get(h))
        .cloned();
    let result = match route {
        Some(route) => {
            verify_and_forward(state, &live.config, route, series, peer, head, down).await
        }
        None => match live.config.server.unmatched {
            Unmatched::Reject => Err(Reject::new(
                Reason::NoRoute,
                "no route is configured for this path",
            )),
            Unmatched::Forward => pass_through(state, &live.config, series, head, down).await,
        },
    };
    let context = RequestContext {
        route,
        series,
        peer,
        request_id,
        delivery,
        started,
    };
    respond::finish(&context, result)
}

/// Answers bytes that are not an acceptable request head. Ambiguous
/// framing is refused here, before any route is looked at: it is how
/// requests are smuggled past a verifier (see [`crate::http1::head`]).
pub fn refuse_head(state: &State, peer: SocketAddr, error: &HeadError) -> Reply {
    let live = state.live.load();
    let reject = match *error {
        HeadError::Malformed(detail) => Reject::new(Reason::MalformedRequest, detail),
        HeadError::TooLarge(detail) => Reject::new(Reason::HeadTooLarge, detail),
        HeadError::Ambiguous(detail) => Reject::new(Reason::AmbiguousFraming, detail),
    };
    let context = RequestContext {
        route: None,
        series: &live.unmatched,
        peer,
        request_id: request_id::generate(),
        delivery: None,
        started: Instant::now(),
    };
    respond::finish(&context, Err(reject))
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
    series: &RouteSeries,
    peer: SocketAddr,
    head: RequestHead,
    down: &mut Downstream,
) -> Result<Forwarded, Reject> {
    let server = &config.server;
    let mut shadow = Shadow {
        enforce: route.enforce,
        failed: None,
    };
    shadow.check(limits::check_method(route, &head.method))?;
    shadow.check(limits::check_client(route, server, peer, &head.headers))?;
    shadow.check(limits::check_rate(route))?;
    shadow.check(limits::check_content_type(route, &head.headers))?;
    let body = down
        .read_body(head.body, route.max_body, server.body_timeout)
        .await?;
    let view = RequestView {
        method: &head.method,
        uri: &head.uri,
        headers: &head.headers,
        body: &body,
    };
    let verified = shadow.check(verify(route, series, &view))?;
    let claim = match &verified {
        Some(verified) if !route.dedupe.is_empty() => {
            let keys = replay::keys_for(route, verified, &view);
            shadow
                .check(claim(state, route, series, keys).await)?
                .flatten()
        }
        _ => None,
    };
    // Marked verified only when every check passed.
    let key = verified
        .as_ref()
        .filter(|_| shadow.failed.is_none())
        .map(|v| v.key);
    let marker = key.map(|k| &route.verified_values[k]);
    let shadow = shadow.failed.map(|r| r.reason);
    let upstream = forward::build(server, &head, body.len(), down.peer_ip(), marker, shadow);
    let sent = Instant::now();
    let response = forward::send(&state.store, server, &head, upstream, &body, claim).await?;
    series.upstream(response.head.status.as_u16(), sent.elapsed());
    Ok(Forwarded {
        response,
        key,
        shadow,
    })
}

/// Checks the signature and the timestamp window; counts which key matched
/// and the sender's clock skew.
fn verify(route: &Route, series: &RouteSeries, view: &RequestView<'_>) -> Result<Verified, Reject> {
    let verified = route.scheme.verify(view)?;
    let skew = verified.timestamp.map(|t| t.saturating_sub(unix_now()));
    series.verified(verified.key, skew);
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
    series: &RouteSeries,
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
            series.store_bypass();
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
    series: &RouteSeries,
    head: RequestHead,
    down: &mut Downstream,
) -> Result<Forwarded, Reject> {
    let server = &config.server;
    let body = down
        .read_body(head.body, server.max_body, server.body_timeout)
        .await?;
    let upstream = forward::build(server, &head, body.len(), down.peer_ip(), None, None);
    let sent = Instant::now();
    let response = forward::send(&state.store, server, &head, upstream, &body, None).await?;
    series.upstream(response.head.status.as_u16(), sent.elapsed());
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
