//! The request pipeline: match, admit, read, verify, claim, forward,
//! settle, answer. A durable route enqueues where others forward: the
//! enqueue's commit takes its claim, so there is nothing left to settle.
//!
//! [`handle`] is the whole life of one request and reads top to bottom:
//! it matches the route, and `verify_and_forward` runs the other steps in
//! that order, each returning `Result<_, Reject>`. [`respond::finish`] is
//! the one place where the result becomes a response, a log line and a
//! metric. The wire (reading heads and bodies, writing answers) is
//! [`crate::http1`]'s; [`State`] serves it as its [`Handler`], and the
//! wire's head and body errors become reasons here, in [`refuse_head`] and
//! the `From<BodyError>` conversion, nowhere else.
//!
//! - [`capture`]: writing refused requests to `capture_dir`.
//! - [`deliver`]: durable routes' workers, delivering queued requests.
//! - [`forward`]: rebuilding the request for the app and sending it.
//! - [`request_id`]: keeping or making the `X-Request-Id`.
//! - [`respond`]: turning an outcome into the answer the sender sees.

pub mod capture;
pub mod deliver;
pub mod forward;
pub mod request_id;
pub mod respond;

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::HeaderValue;

use crate::config::{
    Config, DuplicateAnswer, OnStoreError, Route, Server, StatusSet, Unmatched, UNMATCHED_ROUTE,
};
use crate::http1::{
    AppResponse, Body, BodyError, CloseCause, Handler, HeadError, Limits, Peer, Reply, RequestHead,
};
use crate::limits;
use crate::metrics::{HeaderDrop, LateAnswer, Metrics, RouteSeries};
use crate::queue::{self, Enqueued, NewItem, QueueError, QueueStore};
use crate::reject::{Reason, Reject, Replayed};
use crate::replay::{self, Claim, ClaimResult, ReplayStore, StoredAnswer};
use crate::routes::Router;
use crate::schemes::{RequestView, Verified};
use respond::{Done, Forwarded, Handed, RequestContext};

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
    /// The captures of refused requests written so far, kept within
    /// `server.capture_max_*` across reloads.
    pub captures: capture::Captures,
    /// Durable routes' store: set once opened and recovered at start
    /// (never without `[queue]`); readiness waits for it.
    pub queue: Arc<std::sync::OnceLock<Arc<dyn QueueStore>>>,
    /// Wakes a durable route's worker when an item is queued.
    pub wakers: deliver::Wakers,
}

impl Handler for State {
    fn limits(&self) -> Limits {
        let live = self.live.load();
        let server = &live.config.server;
        Limits {
            max_headers: server.max_headers,
            max_head_bytes: server.max_header_bytes,
            header_timeout: server.header_timeout,
            app_idle: server.upstream_timeout,
            write_timeout: server.write_timeout,
        }
    }

    fn handle(
        &self,
        head: RequestHead,
        body: Body<'_>,
        peer: &Peer,
    ) -> impl Future<Output = Reply> + Send {
        handle(self, head, body, peer)
    }

    fn refuse(&self, error: HeadError, peer: &Peer) -> Reply {
        refuse_head(self, peer, error)
    }

    fn closed(&self, cause: CloseCause) {
        self.metrics.connection_closed(cause);
        // A broken answer is the app's failure and worth an operator's
        // look; the rest are senders' doing (the wire logs each with its
        // peer at debug), and a flood of them must not flood the log.
        if cause == CloseCause::RelayFailed {
            tracing::info!(
                cause = cause.as_str(),
                "connection closed: the app's answer broke off while it was passed on"
            );
        } else {
            tracing::debug!(cause = cause.as_str(), "connection closed by hookguard");
        }
    }
}

/// What every step of one request shares.
struct Exchange<'a> {
    /// The state shared by all connections (the replay store).
    state: &'a State,
    /// The server settings of the config the request started with.
    server: &'a Server,
    /// The matched route's metric series (the unmatched one's otherwise).
    series: &'a RouteSeries,
    /// Who sent the request.
    peer: &'a Peer,
    /// `replay.max_answer_bytes`, for routes that replay the app's answer.
    max_answer_bytes: usize,
}

/// Serves one request whose head has arrived; never fails (every failure
/// is an answer). The body is read only once the request has been
/// admitted.
pub async fn handle(state: &State, mut head: RequestHead, body: Body<'_>, peer: &Peer) -> Reply {
    let started = Instant::now();
    let live = state.live.load_full();
    let request_id = request_id::take(&mut head.headers);
    // Match.
    let matched = live.router.find(head.uri.path());
    let route = matched.map(|i| &*live.config.routes[i]);
    let series = matched.map_or(&live.unmatched, |i| &live.series[i]);
    let exchange = Exchange {
        state,
        server: &live.config.server,
        series,
        peer,
        max_answer_bytes: live.config.replay.max_answer_bytes,
    };
    let mut seen = Seen::default();
    let result = match route {
        Some(route) => verify_and_forward(&exchange, route, &head, body, &mut seen).await,
        None => match live.config.server.unmatched {
            Unmatched::Reject => Err(Reject::new(
                Reason::NoRoute,
                "no route is configured for this path",
            )),
            Unmatched::Forward => pass_through(&exchange, &head, body).await.map(Done::from),
        },
    };
    let delivery = route.and_then(|route| delivery(route, &head, &seen));
    // Answer.
    let context = RequestContext {
        route,
        series,
        peer: peer.addr,
        request_id,
        delivery,
        started,
        capture: route.filter(|r| r.capture_rejected).and_then(|_| {
            Some(respond::CaptureSource {
                captures: &state.captures,
                settings: live.config.server.capture.as_ref()?,
                metrics: &state.metrics,
                head: &head,
                body: seen.body.as_deref(),
            })
        }),
    };
    respond::finish(&context, result)
}

/// What the pipeline learned of a request on the way that its log line
/// uses, whatever the result.
#[derive(Debug, Default)]
struct Seen {
    /// The body, once read (a cheap clone of the buffer).
    body: Option<Bytes>,
    /// The delivery id from a JSON dedupe source, when the claim step
    /// derived the keys and found it.
    delivery: Option<String>,
    /// Whether the claim step derived the keys (and so looked for it).
    keyed: bool,
}

/// The delivery id logged for a request on `route`: the value of its
/// delivery header, else of its first JSON dedupe source (taken from the
/// claim step, or read from the body of a request refused before it).
/// Never a signature: `delivery_json` is never the signature source.
fn delivery(route: &Route, head: &RequestHead, seen: &Seen) -> Option<HeaderValue> {
    if let Some(header) = &route.delivery_header {
        return head.headers.get(header).cloned();
    }
    route.delivery_json?;
    let text = match (seen.keyed, &seen.body) {
        (true, _) => seen.delivery.clone(),
        (false, Some(body)) => replay::delivery_id(route, body),
        (false, None) => None,
    }?;
    HeaderValue::from_str(&respond::loggable(text.as_bytes())).ok()
}

/// Answers bytes that are not an acceptable request head. Ambiguous
/// framing is refused here, before any route is looked at: it is how
/// requests are smuggled past a verifier (see [`crate::http1::head`]).
pub fn refuse_head(state: &State, peer: &Peer, error: HeadError) -> Reply {
    let live = state.live.load();
    let reject = match error {
        // The wire names the header or character at fault, so its text may
        // be built; it never holds a header's value.
        HeadError::Malformed(Cow::Borrowed(detail)) => {
            Reject::new(Reason::MalformedRequest, detail)
        }
        HeadError::Malformed(Cow::Owned(detail)) => Reject::with(Reason::MalformedRequest, detail),
        HeadError::TooLarge(detail) => Reject::new(Reason::HeadTooLarge, detail),
        HeadError::Ambiguous(detail) => Reject::new(Reason::AmbiguousFraming, detail),
    };
    let context = RequestContext {
        route: None,
        series: &live.unmatched,
        peer: peer.addr,
        request_id: request_id::generate(),
        delivery: None,
        started: Instant::now(),
        capture: None,
    };
    respond::finish(&context, Err(reject))
}

/// What a body the wire could not read becomes.
impl From<BodyError> for Reject {
    fn from(error: BodyError) -> Self {
        match error {
            BodyError::TooLarge { limit } => Reject::with(
                Reason::BodyTooLarge,
                format!("the body is larger than this route's limit of {limit} bytes"),
            ),
            BodyError::Timeout(within) => Reject::with(
                Reason::BodyTimeout,
                format!("the body did not arrive within {} ms", within.as_millis()),
            ),
            BodyError::Incomplete => Reject::new(
                Reason::BodyIncomplete,
                "the connection failed before the whole body arrived",
            ),
            BodyError::Malformed(detail) => Reject::new(Reason::MalformedRequest, detail),
        }
    }
}

/// Shadow mode's bookkeeping: with `enforce = false`, the first failing
/// check is remembered instead of ending the request.
struct Shadow {
    enforce: bool,
    failed: Option<Reject>,
}

impl Shadow {
    fn new(enforce: bool) -> Self {
        Shadow {
            enforce,
            failed: None,
        }
    }

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

    /// The check a shadow-mode request failed, if any.
    fn failed(&self) -> Option<Reason> {
        self.failed.as_ref().map(|r| r.reason)
    }
}

/// The pipeline for a matched route, after the match: admit, read,
/// verify, claim, forward, settle.
async fn verify_and_forward(
    x: &Exchange<'_>,
    route: &Route,
    head: &RequestHead,
    body: Body<'_>,
    seen: &mut Seen,
) -> Result<Done, Reject> {
    let mut shadow = Shadow::new(route.enforce);
    // Admit, on the head alone, before a byte of the body is read.
    limits::check_header_names(x.server, &head.headers)?;
    shadow.check(limits::check_method(route, &head.method))?;
    // The client's address (a walk of X-Forwarded-For behind trusted
    // proxies) only where a check reads it.
    if !route.allow_ips.is_empty() || route.client_rate_limit.is_some() {
        let client = limits::client_ip(x.server, x.peer.addr, &head.headers);
        shadow.check(limits::check_client(route, client))?;
        shadow.check(limits::check_client_rate(route, client))?;
    }
    shadow.check(limits::check_content_type(route, &head.headers))?;
    // Read.
    let body = body
        .read_to_end(route.max_body, x.server.body_timeout)
        .await?;
    seen.body = Some(body.clone());
    let view = RequestView {
        method: &head.method,
        uri: &head.uri,
        headers: &head.headers,
        body: &body,
    };
    // An unsigned endpoint challenge the scheme answers (X's CRC, Dropbox's
    // echo) is answered here; anything else goes on to verification.
    if route.answer_challenges {
        if let Some(reply) = route.scheme.challenge(&view, None) {
            return reply.map(Done::Challenge);
        }
    }
    // Verify; only a verified request spends the route's rate.
    let verified = shadow.check(verify(route, x.series, &view))?;
    // A signed challenge (Zoom's validation, Twitch's verification) is
    // answered only now, once it has verified, and never in shadow mode
    // when a check failed.
    if let Some(verified) = verified.as_ref().filter(|_| route.answer_challenges) {
        if shadow.failed().is_none() {
            if let Some(reply) = route.scheme.challenge(&view, Some(verified)) {
                return reply.map(Done::Challenge);
            }
        }
    }
    if verified.is_some() {
        shadow.check(limits::check_rate(route))?;
    }
    // Claim; a shadow-mode request that failed its claim is forwarded
    // without one. A durable route's keys are claimed by its enqueue.
    let held = match &verified {
        Some(verified) => shadow
            .check(claim(x, route, verified, &view, seen).await)?
            .unwrap_or_default(),
        None => Held::Nothing,
    };
    // Forward (and settle), or enqueue; marked verified only when every
    // check passed.
    let key = verified
        .filter(|_| shadow.failed().is_none())
        .map(|v| v.key);
    let out = Outgoing {
        head,
        body: &body,
        marker: key.map(|k| &route.verified_values[k]),
        shadow: shadow.failed(),
    };
    let response = match held {
        Held::Keys(keys) => Handed::Queued(enqueue(x, route, &out, keys).await?),
        Held::Claim(claim) => Handed::App(forward_and_settle(x, route, &out, Some(claim)).await?),
        Held::Nothing if route.delivery.is_some() => {
            Handed::Queued(enqueue(x, route, &out, Vec::new()).await?)
        }
        Held::Nothing => Handed::App(forward_and_settle(x, route, &out, None).await?),
    };
    Ok(Done::Forwarded(Forwarded {
        response,
        key,
        shadow: shadow.failed(),
    }))
}

/// A request on its way out: what the forward (or enqueue) step sends.
struct Outgoing<'r> {
    /// The head as received.
    head: &'r RequestHead,
    /// The exact body that was verified.
    body: &'r Bytes,
    /// The verified header's value, for a request that passed every check.
    marker: Option<&'r HeaderValue>,
    /// In shadow mode, the check it failed.
    shadow: Option<Reason>,
}

impl Outgoing<'_> {
    /// The head for the app ([`forward::build`]), its dropped headers
    /// counted.
    fn build(&self, x: &Exchange<'_>) -> Vec<u8> {
        let built = forward::build(
            x.server,
            self.head,
            self.body.len(),
            &x.peer.ip,
            self.marker,
            self.shadow,
        );
        count_dropped(x.series, built.spoofed, built.underscored);
        built.head
    }
}

/// What the claim step holds for the steps after it.
#[derive(Debug, Default)]
enum Held {
    /// No keys (none configured, none found, or the store bypassed).
    #[default]
    Nothing,
    /// A sync route's claim in the replay store, settled by the app's
    /// answer.
    Claim(Claim),
    /// A durable route's keys, claimed in the queue store by the same
    /// commit that stores the request.
    Keys(Vec<replay::Key>),
}

/// Sends the request to the app and settles the claim by its answer; an
/// answer still to come settles the claim when it arrives, while the
/// sender is told 504.
async fn forward_and_settle(
    x: &Exchange<'_>,
    route: &Route,
    out: &Outgoing<'_>,
    claim: Option<Claim>,
) -> Result<crate::http1::AppResponse, Reject> {
    let mut exchange = forward(x, out);
    let sent = Instant::now();
    let answered = tokio::time::timeout(x.server.upstream_timeout, &mut exchange).await;
    match answered {
        Ok(answered) => {
            count_upstream(x.series, &answered, sent);
            let mut answered = answered;
            if let Some(claim) = claim {
                let rules = Settling::of(x, route);
                settle(&*x.state.store, &rules, claim, &mut answered).await;
            }
            answered
        }
        Err(_elapsed) => {
            if let Some(claim) = claim {
                settle_late(x, route, claim, exchange);
            }
            Err(forward::too_slow(x.server))
        }
    }
}

/// Stores the request as sync mode would send it (the same head
/// [`forward::build`] writes, the exact body) with its dedupe keys, in one
/// durable commit; the id once it is on stable storage. A copy of a queued
/// delivery is a duplicate; a full or failing store is 503 with
/// `Retry-After`, nothing stored and no key taken.
async fn enqueue(
    x: &Exchange<'_>,
    route: &Route,
    out: &Outgoing<'_>,
    keys: Vec<replay::Key>,
) -> Result<queue::Id, Reject> {
    let Some(store) = x.state.queue.get() else {
        return Err(Reject::new(
            Reason::QueueUnavailable,
            "this route delivers durably but its queue is not open (still opening, or [queue] was added after start: restart hookguard)",
        )
        .retry_after(QUEUE_UNAVAILABLE_RETRY_AFTER));
    };
    let mut request = out.build(x);
    // The blank line ends the head; delivery writes its own headers first.
    request.truncate(request.len().saturating_sub(2));
    let now = queue::now_ms();
    let item = NewItem {
        route: route.name.clone(),
        head: request,
        body: out.body.clone(),
        keys,
        dedupe_ttl: route.dedupe_ttl,
        received_ms: now,
    };
    let started = Instant::now();
    let stored = store.enqueue(item, now).await;
    x.state.metrics.queue().enqueued(started.elapsed());
    match stored {
        Ok(Enqueued::Queued(id)) => {
            x.state.wakers.wake(&route.name);
            Ok(id)
        }
        Ok(Enqueued::Duplicate(id)) => Err(Reject::with(
            Reason::Duplicate,
            format!("a copy of this delivery is queued already (delivery id {id})"),
        )),
        Err(error) => {
            x.state.metrics.queue().store_error(error.kind());
            Err(match error {
                QueueError::Full => Reject::new(
                    Reason::QueueFull,
                    "the delivery queue is full (queue.max_bytes); nothing was stored: retry later",
                )
                .retry_after(QUEUE_FULL_RETRY_AFTER),
                QueueError::Io(detail) => {
                    tracing::warn!(route = %route.name, error = %detail, "the queue could not store a request");
                    Reject::new(
                        Reason::QueueUnavailable,
                        "the delivery queue could not store the request; nothing was stored: retry later",
                    )
                    .retry_after(QUEUE_UNAVAILABLE_RETRY_AFTER)
                }
            })
        }
    }
}

/// Seconds a sender is asked to wait when the queue is full: deliveries
/// and retention free room at the app's pace.
const QUEUE_FULL_RETRY_AFTER: u64 = 30;

/// Seconds a sender is asked to wait when the queue's store failed.
const QUEUE_UNAVAILABLE_RETRY_AFTER: u64 = 5;

/// `unmatched = "forward"`: read under the server limit, forwarded
/// unverified (the verified header is stripped, never set).
async fn pass_through(
    x: &Exchange<'_>,
    head: &RequestHead,
    body: Body<'_>,
) -> Result<Forwarded, Reject> {
    limits::check_header_names(x.server, &head.headers)?;
    let body = body
        .read_to_end(x.server.max_body, x.server.body_timeout)
        .await?;
    let sent = Instant::now();
    let answered = tokio::time::timeout(
        x.server.upstream_timeout,
        forward(
            x,
            &Outgoing {
                head,
                body: &body,
                marker: None,
                shadow: None,
            },
        ),
    )
    .await
    .unwrap_or_else(|_elapsed| Err(forward::too_slow(x.server)));
    count_upstream(x.series, &answered, sent);
    Ok(Forwarded {
        response: Handed::App(answered?),
        key: None,
        shadow: None,
    })
}

/// What the pipeline decides about a buffered request, short of what a
/// capture cannot show (the client's address), what must not be spent (a
/// rate-limit token) and the replay claim: the checks `verify_and_forward`
/// runs, with the same functions, in its order. `hookguard verify` answers
/// with this, so the tool cannot tell an operator "would forward" for a
/// request the proxy refuses; a test holds the two to the same verdicts.
pub fn judge(
    server: &Server,
    route: &Route,
    view: &RequestView<'_>,
    now: i64,
) -> Result<Verified, Reject> {
    limits::check_header_names(server, view.headers)?;
    limits::check_method(route, view.method)?;
    limits::check_content_type(route, view.headers)?;
    check_body_length(route.max_body, view.body.len())?;
    let verified = route.scheme.verify(view)?;
    if let Some(timestamp) = verified.timestamp {
        check_window(timestamp, now, route)?;
    }
    Ok(verified)
}

/// Refuses a body longer than `limit` as reading it would.
pub fn check_body_length(limit: u64, len: usize) -> Result<(), Reject> {
    if len as u64 > limit {
        return Err(BodyError::TooLarge { limit }.into());
    }
    Ok(())
}

/// Checks the signature and the timestamp window; counts which key matched
/// and the sender's clock skew.
fn verify(route: &Route, series: &RouteSeries, view: &RequestView<'_>) -> Result<Verified, Reject> {
    let verified = route.scheme.verify(view)?;
    let now = unix_now();
    series.verified(
        verified.key,
        verified.timestamp.map(|t| t.saturating_sub(now)),
    );
    if let Some(timestamp) = verified.timestamp {
        check_window(timestamp, now, route)?;
    }
    Ok(verified)
}

/// Claims the request's dedupe keys; nothing when it has none, and when
/// the store failed under `on_store_error = "allow"` (counted and logged).
/// A durable route's keys are returned unclaimed: its enqueue claims them
/// in the queue store, in the commit that stores the request.
async fn claim(
    x: &Exchange<'_>,
    route: &Route,
    verified: &Verified,
    view: &RequestView<'_>,
    seen: &mut Seen,
) -> Result<Held, Reject> {
    let replay::Keys {
        keys,
        missing,
        delivery,
    } = replay::keys_for(route, verified, view);
    (seen.keyed, seen.delivery) = (true, delivery);
    if let (true, Some(source)) = (route.require_dedupe, missing) {
        return Err(Reject::with(
            Reason::MissingDedupeSource,
            format!(
                "this route dedupes on {source}, which the request lacks (require_dedupe = true)"
            ),
        ));
    }
    if route.delivery.is_some() {
        return Ok(Held::Keys(keys));
    }
    if keys.is_empty() {
        return Ok(Held::Nothing);
    }
    match x.state.store.claim(keys, route.dedupe_ttl).await {
        Ok(ClaimResult::Claimed(claim)) => Ok(Held::Claim(claim)),
        Ok(ClaimResult::Duplicate(original)) => {
            // A claim completes only on the route's `complete_on` answers,
            // so that is what the app said to an earlier copy.
            let reject = Reject::with(
                Reason::Duplicate,
                match &original {
                    Some(original) => format!(
                        "the app already took this delivery (it answered {})",
                        original.status().as_u16()
                    ),
                    None => format!(
                        "the app already took this delivery (it answered an earlier copy with {}: complete_on)",
                        route.complete_on
                    ),
                },
            );
            Err(match original {
                Some(original) if route.duplicate_answer == DuplicateAnswer::Original => reject
                    .replaying(Replayed {
                        status: original.status(),
                        content_type: original.content_type().cloned(),
                        body: original.body().clone(),
                    }),
                _ => reject,
            })
        }
        Ok(ClaimResult::InFlight) => Err(Reject::new(
            Reason::InFlight,
            "a copy of this delivery is being forwarded right now; retry later",
        )
        .with_status(route.in_flight_status)
        .retry_after(IN_FLIGHT_RETRY_AFTER)),
        Err(error) if x.state.on_store_error == OnStoreError::Allow => {
            x.series.store_bypass();
            tracing::warn!(
                route = %route.name,
                error = %error.0,
                "replay store unavailable; forwarding without replay protection (on_store_error = allow)"
            );
            Ok(Held::Nothing)
        }
        Err(error) => Err(Reject::with(
            Reason::StoreUnavailable,
            format!("the replay store is unavailable: {}", error.0),
        )),
    }
}

/// Rebuilds the request for the app and starts the exchange, which the
/// caller waits for within `upstream_timeout`.
fn forward(
    x: &Exchange<'_>,
    out: &Outgoing<'_>,
) -> Pin<Box<dyn Future<Output = Result<AppResponse, Reject>> + Send>> {
    let head = out.build(x);
    // Boxed so that a late exchange can be handed to its own task.
    Box::pin(forward::exchange(
        x.server,
        out.head,
        head,
        out.body.clone(),
    ))
}

/// Counts the app's answer and the time it took.
fn count_upstream(series: &RouteSeries, answered: &Result<AppResponse, Reject>, sent: Instant) {
    if let Ok(response) = answered {
        series.upstream(response.head.status.as_u16(), sent.elapsed());
    }
}

/// Counts the headers left out of a forwarded request, and tells the
/// operator why the first time a route drops any.
fn count_dropped(series: &RouteSeries, spoofed: u32, underscored: u32) {
    for (cause, count) in [
        (HeaderDrop::Spoofed, spoofed),
        (HeaderDrop::Underscore, underscored),
    ] {
        if count > 0 && series.headers_dropped(cause, count) {
            tracing::warn!(
                cause = ?cause,
                "request headers dropped before forwarding: names that CGI-style apps would read as a header hookguard sets, or (underscores_in_headers = \"drop\") any name with an underscore; counted in hookguard_headers_dropped_total, logged once per route"
            );
        }
    }
}

/// How a route's claims are settled: which answers complete them, and
/// whether the app's answer is kept to replay to duplicates.
#[derive(Debug, Clone)]
struct Settling {
    /// The route's `complete_on`.
    complete_on: StatusSet,
    /// With `duplicate_answer = "original"`: the largest answer body kept
    /// (`replay.max_answer_bytes`), and how long to wait for it per read.
    keep_answer: Option<(usize, Duration)>,
}

impl Settling {
    fn of(x: &Exchange<'_>, route: &Route) -> Self {
        Settling {
            complete_on: route.complete_on.clone(),
            keep_answer: (route.duplicate_answer == DuplicateAnswer::Original)
                .then_some((x.max_answer_bytes, x.server.upstream_timeout)),
        }
    }
}

/// Settles the claim by what the app answered: completed when the route's
/// `complete_on` holds the status (later copies are duplicates), released
/// otherwise (refused, broken, or any other answer), so that the sender's
/// retry is delivered. A 2xx answer small enough is kept with the keys when
/// the route replays originals. Returns whether it completed.
async fn settle(
    store: &dyn ReplayStore,
    rules: &Settling,
    claim: Claim,
    answered: &mut Result<AppResponse, Reject>,
) -> bool {
    let completed = matches!(answered, Ok(response) if rules.complete_on.contains(response.head.status.as_u16()));
    let settled = if completed {
        let kept = match (rules.keep_answer, answered) {
            (Some((max, idle)), Ok(response)) if response.head.status.is_success() => {
                let status = response.head.status;
                let content_type = response.head.content_type.clone();
                response
                    .small_body(max, idle)
                    .await
                    .and_then(|body| StoredAnswer::new(status, content_type, body))
            }
            _ => None,
        };
        store.complete(&claim, kept).await
    } else {
        store.release(&claim).await
    };
    if let Err(error) = settled {
        tracing::warn!(error = %error.0, "replay store could not settle a claim");
    }
    completed
}

/// The app has not answered within `upstream_timeout`, and the sender is
/// told 504. The exchange goes on in its own task for up to
/// `settle_timeout` in all, holding the claim in flight (copies meanwhile
/// get the in-flight answer): the app's late answer settles the claim as
/// any answer would, so a delivery the app did take is not delivered again
/// by the sender's retry. Past `settle_timeout` the claim is released and
/// the connection to the app closed.
fn settle_late(
    x: &Exchange<'_>,
    route: &Route,
    claim: Claim,
    exchange: Pin<Box<dyn Future<Output = Result<AppResponse, Reject>> + Send>>,
) {
    let store = x.state.store.clone();
    let rules = Settling::of(x, route);
    let series = x.series.clone();
    let name = route.name.clone();
    let rest = x
        .server
        .settle_timeout
        .saturating_sub(x.server.upstream_timeout);
    tokio::spawn(async move {
        let outcome = match tokio::time::timeout(rest, exchange).await {
            Ok(mut answered) => {
                let status = answered.as_ref().ok().map(|r| r.head.status.as_u16());
                if settle(&*store, &rules, claim, &mut answered).await {
                    (LateAnswer::Completed, status)
                } else {
                    (LateAnswer::Released, status)
                }
            }
            Err(_elapsed) => {
                if let Err(error) = store.release(&claim).await {
                    tracing::warn!(error = %error.0, "replay store could not release a claim");
                }
                (LateAnswer::Expired, None)
            }
        };
        series.late_answer(outcome.0);
        tracing::info!(
            route = %name,
            result = outcome.0.as_str(),
            upstream_status = outcome.1,
            "the app answered after the sender was told 504; the claim is settled by that answer"
        );
    });
}

/// Seconds a sender is asked to wait before retrying an in-flight delivery:
/// long enough for a typical app to answer the first copy.
const IN_FLIGHT_RETRY_AFTER: u64 = 5;

/// Unix seconds now: the one clock of the pipeline and the tools (`sign`
/// stamps with it, `verify` judges by it).
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Refuses timestamps outside the route's tolerance, in either direction;
/// `timestamp` is the sender's, in seconds, `now` our clock.
pub fn check_window(timestamp: i64, now: i64, route: &Route) -> Result<(), Reject> {
    let tolerance = route.tolerance.as_secs() as i64;
    let skew = timestamp.saturating_sub(now);
    if skew < -tolerance {
        Err(Reject::with(
            Reason::StaleTimestamp,
            format!(
                "the timestamp is {} s old; this route accepts {tolerance} s{}",
                skew.unsigned_abs(),
                unit_hint(timestamp, now, route)
            ),
        ))
    } else if skew > tolerance {
        Err(Reject::with(
            Reason::FutureTimestamp,
            format!(
                "the timestamp is {skew} s in the future; this route accepts {tolerance} s{}",
                unit_hint(timestamp, now, route)
            ),
        ))
    } else {
        Ok(())
    }
}

/// A refused timestamp that is about a thousand times too large or too
/// small is not a clock problem but a unit one: `"; it looks like
/// milliseconds; this route reads seconds (timestamp_unit)"`. Within a day
/// once scaled counts as "about", which no real skew comes near.
fn unit_hint(timestamp: i64, now: i64, route: &Route) -> String {
    use crate::schemes::hmac::TimestampUnit::{Millis, Seconds};
    const DAY: i64 = 86_400;
    let (read, looks) = match route.scheme.timestamp_unit() {
        Some(Seconds) if (timestamp / 1000 - now).abs() <= DAY => (Seconds, Millis),
        Some(Millis) if (timestamp.saturating_mul(1000) - now).abs() <= DAY => (Millis, Seconds),
        _ => return String::new(),
    };
    format!(
        "; it looks like {}; this route reads {} (timestamp_unit)",
        looks.as_str(),
        read.as_str()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn route(extra: &str) -> Route {
        let text = format!(
            "[server]\nupstream = \"http://127.0.0.1:1\"\n[[routes]]\nname = \"r\"\npath = \"/r\"\nscheme = \"hmac\"\nsecrets = [{{ value = \"s\" }}]\n{extra}\n[routes.hmac]\nheader = \"X-Sig\"\ntimestamp_header = \"X-Ts\"\nmessage = \"{{timestamp}}.{{body}}\"\n"
        );
        let no_env = |_: &str| None;
        let mut config = Config::from_toml(&text, &no_env).expect("valid test config");
        Arc::into_inner(config.routes.remove(0)).expect("one owner")
    }

    #[test]
    fn the_window_includes_its_edges_and_refuses_one_second_past_them() {
        let route = route("tolerance = \"300s\"");
        let now = 1_794_283_475;
        assert!(check_window(now + 300, now, &route).is_ok());
        assert!(check_window(now - 300, now, &route).is_ok());
        let future = check_window(now + 301, now, &route).unwrap_err();
        assert_eq!(future.reason, Reason::FutureTimestamp);
        assert!(!future.detail.contains("looks like"), "{}", future.detail);
        assert_eq!(
            check_window(now - 301, now, &route).unwrap_err().reason,
            Reason::StaleTimestamp
        );
    }

    #[test]
    fn a_timestamp_a_thousand_times_off_is_said_to_be_in_the_wrong_unit() {
        let now = 1_794_283_475;
        let seconds = route("");
        let refused = check_window(now * 1000 + 951, now, &seconds).unwrap_err();
        assert_eq!(refused.reason, Reason::FutureTimestamp);
        assert!(
            refused.detail.ends_with(
                "; it looks like milliseconds; this route reads seconds (timestamp_unit)"
            ),
            "{}",
            refused.detail
        );
    }

    #[test]
    fn a_body_over_the_limit_is_refused_as_reading_it_would_be() {
        assert!(check_body_length(10, 10).is_ok());
        let refused = check_body_length(10, 11).unwrap_err();
        assert_eq!(refused.reason, Reason::BodyTooLarge);
        assert_eq!(
            refused.detail,
            Reject::from(BodyError::TooLarge { limit: 10 }).detail
        );
    }
}
