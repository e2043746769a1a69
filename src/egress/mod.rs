//! The egress listener: the app's own calls to its partners, signed,
//! credentialed and retried by hookguard, so that the partner's secrets
//! live here and not in the app.
//!
//! The app calls `http://127.0.0.1:8001/<prefix>/...` without credentials;
//! for each call hookguard takes the steps in a straight line: refuse what
//! is not a call to a configured partner (absolute-form targets, `CONNECT`,
//! unknown prefixes), take the app's credential headers away (or refuse),
//! buffer the body (413 past `max_body`), settle the idempotency key once,
//! then for each attempt take a fresh timestamp, sign the exact bytes with
//! the scheme's own signer (the one `hookguard sign` uses), inject the
//! credential, send, and decide by [`retry`] whether to try again. The app
//! gets the partner's final answer (streamed) with
//! `X-Hookguard-Egress-Attempts` and `X-Hookguard-Idempotency-Key`, or
//! hookguard's own JSON refusal, built by the same
//! [`crate::proxy::respond::answer_for`] as the webhook side's.
//!
//! Both sides of this listener are hyper's, not [`crate::http1`]: egress is
//! not the hot path that the webhook listener's own wire was written for,
//! and hyper-util's pooled client with rustls (hyper-rustls) is the
//! maintained way to keep TLS connections to a partner alive. The wire's
//! one list of hop-by-hop fields ([`crate::http1::hop`]) is still the one
//! used here.

pub mod retry;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::{AppCredentials, Egress, EgressRoute, Idempotency, KeySource, UNMATCHED_ROUTE};
use crate::http1::hop::{is_hop_by_hop, ConnectionOptions};
use crate::metrics::{Attempt, EgressOutcome, EgressSeries, Metrics};
use crate::proxy::{self, respond};
use crate::reject::{Reason, Reject};
use crate::schemes::Unsigned;

/// Header on every egress answer: how many attempts were sent (0 when
/// hookguard refused the call before sending).
pub const ATTEMPTS_HEADER: &str = "x-hookguard-egress-attempts";
/// Header on every egress answer of a call that had an idempotency key.
pub const KEY_HEADER: &str = "x-hookguard-idempotency-key";

/// How long an idle pooled connection to a partner is kept.
const POOL_IDLE: Duration = Duration::from_secs(90);
/// Longest a connection to a partner may take to set up, within an
/// attempt's own timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The body of an egress answer: the partner's, streamed, or hookguard's
/// own.
pub type EgressBody = BoxBody<Bytes, hyper::Error>;

/// The egress routes the listener serves, following the live config: on
/// each call the `[egress]` in force is read from `source`, and when a
/// reload has swapped in another, its routes, clients and series are
/// prepared and used from then on (calls in flight finish with theirs).
pub struct Partners {
    /// The live `[egress]`; `None` (a reload dropped the table) keeps the
    /// routes in force, since the listener stays bound until a restart.
    source: Box<dyn Fn() -> Option<Arc<Egress>> + Send + Sync>,
    metrics: Metrics,
    current: ArcSwap<Routes>,
}

/// One `[egress]`, prepared: what a call is served by.
struct Routes {
    /// `[egress]` itself (`max_body`, `on_app_credentials`).
    settings: Arc<Egress>,
    /// One per route, in configuration order.
    routes: Vec<Partner>,
    /// The series of calls no route serves.
    unmatched: EgressSeries,
}

/// One route, ready to send.
struct Partner {
    route: Arc<EgressRoute>,
    /// Pooled keep-alive connections to this partner, with the route's TLS
    /// settings.
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    series: EgressSeries,
}

impl Partners {
    /// Serves `settings`, for good (tests, benches).
    pub fn new(settings: Arc<Egress>, metrics: &Metrics) -> Self {
        let fixed = settings.clone();
        Partners::following(settings, metrics, move || Some(fixed.clone()))
    }

    /// Serves `initial` until `source` gives another `[egress]` (the
    /// server passes the live config's, so that reloads reach egress).
    pub fn following(
        initial: Arc<Egress>,
        metrics: &Metrics,
        source: impl Fn() -> Option<Arc<Egress>> + Send + Sync + 'static,
    ) -> Self {
        Partners {
            current: ArcSwap::from_pointee(Routes::new(initial, metrics)),
            source: Box::new(source),
            metrics: metrics.clone(),
        }
    }

    /// The routes in force now, prepared anew after a reload.
    fn now(&self) -> Arc<Routes> {
        let current = self.current.load_full();
        match (self.source)() {
            Some(live) if !Arc::ptr_eq(&live, &current.settings) => {
                let fresh = Arc::new(Routes::new(live, &self.metrics));
                self.current.store(fresh.clone());
                tracing::info!(routes = fresh.routes.len(), "egress routes reloaded");
                fresh
            }
            _ => current,
        }
    }
}

impl Routes {
    /// Builds each route's client and series.
    fn new(settings: Arc<Egress>, metrics: &Metrics) -> Self {
        let routes = settings
            .routes
            .iter()
            .map(|route| {
                let mut http = HttpConnector::new();
                http.enforce_http(false);
                http.set_nodelay(true);
                http.set_connect_timeout(Some(CONNECT_TIMEOUT));
                let connector = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config((*route.tls).clone())
                    .https_or_http()
                    .enable_http1()
                    .wrap_connector(http);
                let client = Client::builder(TokioExecutor::new())
                    .pool_idle_timeout(POOL_IDLE)
                    .pool_timer(TokioTimer::new())
                    .build(connector);
                Partner {
                    route: route.clone(),
                    client,
                    series: metrics.egress_route(&route.name),
                }
            })
            .collect();
        Routes {
            settings,
            routes,
            unmatched: metrics.egress_route(UNMATCHED_ROUTE),
        }
    }
}

/// Serves the egress listener until `stop` turns true; then stops
/// accepting, lets every call in flight finish (each connection closes
/// after its current call, as the ingress side drains), and returns once
/// all connections have ended. The caller bounds the wait with the
/// shutdown grace: an app's call cut off mid-flight may have reached the
/// partner, and its retry then depends on the idempotency key.
pub async fn serve(
    listener: TcpListener,
    partners: Arc<Partners>,
    mut stop: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|stopping| *stopping) => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let Ok((stream, _)) = accepted else {
            // Usually EMFILE: back off instead of spinning, as the other
            // accept loops do.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (partners, mut stop) = (partners.clone(), stop.clone());
        connections.spawn(async move {
            let service = service_fn(move |request| {
                let partners = partners.clone();
                async move { Ok::<_, Infallible>(call(request, &partners).await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => return,
                _ = stop.wait_for(|stopping| *stopping) => connection.as_mut().graceful_shutdown(),
            }
            let _ = connection.await;
        });
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// What one app call came to, for the answer, the log line and the metric.
struct Settled {
    /// The partner's final answer, or hookguard's refusal.
    answer: Result<Response<EgressBody>, Reject>,
    /// Attempts sent (0 when refused before sending).
    attempts: u32,
}

impl Settled {
    /// The `outcome` it is counted under.
    fn outcome(&self) -> EgressOutcome {
        match &self.answer {
            Ok(response) if response.status().as_u16() < 400 => EgressOutcome::Ok,
            Ok(_) => EgressOutcome::PartnerError,
            Err(reject) => match reject.reason {
                Reason::EgressTimeout => EgressOutcome::Timeout,
                Reason::UpstreamUnavailable => EgressOutcome::Unavailable,
                _ => EgressOutcome::Refused,
            },
        }
    }
}

/// One app call, start to answer: the only place an egress call is logged
/// and counted.
async fn call(request: Request<Incoming>, partners: &Partners) -> Response<EgressBody> {
    let started = Instant::now();
    let partners = partners.now();
    let partners = partners.as_ref();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let mut key = None;
    let (partner, settled) = match find(partners, &request) {
        Ok(partner) => match prepare(request, partner, &partners.settings).await {
            Ok(prepared) => {
                key = prepared.key.clone();
                (Some(partner), send(partner, prepared, started).await)
            }
            Err(reject) => (Some(partner), refused(reject, 0)),
        },
        Err(reject) => (None, refused(reject, 0)),
    };
    let route = partner.map_or(UNMATCHED_ROUTE, |p| p.route.name.as_str());
    let series = partner.map_or(&partners.unmatched, |p| &p.series);
    let took = started.elapsed();
    let outcome = settled.outcome();
    series.request(outcome, took);
    let (mut response, refusal) = match settled.answer {
        Ok(response) => (response, None),
        Err(reject) => {
            let own = respond::answer_for(&reject, partner.map(|p| p.route.name.as_str()));
            let own = own.map(|body| Full::new(body).map_err(|never| match never {}).boxed());
            (own, Some(reject))
        }
    };
    let headers = response.headers_mut();
    headers.insert(ATTEMPTS_HEADER, HeaderValue::from(settled.attempts));
    if let Some(value) = key.as_ref().and_then(|k| HeaderValue::from_str(k).ok()) {
        headers.insert(KEY_HEADER, value);
    }
    // Never the body, a credential or a signature: the route, the call,
    // what became of it, and the key (the partner's handle on it, which the
    // app is told too).
    tracing::info!(
        route,
        method = %method,
        path = %respond::loggable(path.as_bytes()),
        outcome = outcome.as_str(),
        status = response.status().as_u16(),
        reason = refusal.as_ref().map(|r| r.reason.as_str()),
        detail = refusal.as_ref().map(|r| r.detail.as_ref()),
        attempts = settled.attempts,
        idempotency_key = key.as_deref().map(|k| respond::loggable(k.as_bytes())).as_deref(),
        duration_ms = took.as_secs_f64() * 1000.0,
        "egress call"
    );
    response
}

/// A refusal by hookguard after `attempts` attempts.
fn refused(reject: Reject, attempts: u32) -> Settled {
    Settled {
        answer: Err(reject),
        attempts,
    }
}

/// The route serving this call: origin-form targets only, under a
/// configured prefix at a segment boundary.
fn find<'p, B>(partners: &'p Routes, request: &Request<B>) -> Result<&'p Partner, Reject> {
    if request.method() == Method::CONNECT {
        return Err(Reject::new(
            Reason::NotAProxy,
            "CONNECT is refused: the egress listener is not a forward proxy; call a configured prefix, e.g. POST /partner/v1/...",
        ));
    }
    let uri = request.uri();
    if uri.scheme().is_some() || uri.authority().is_some() {
        return Err(Reject::new(
            Reason::NotAProxy,
            "absolute-form targets are refused: the egress listener is not a forward proxy; send the path only, under a configured prefix",
        ));
    }
    let path = uri.path();
    // A dot segment would climb out of the route's base path at the
    // partner (`/crm/../admin` to `{upstream}/../admin`); browsers and
    // clients resolve them before sending, so one here is deliberate.
    let dot_segment = path.split('/').any(|segment| {
        let decoded = segment.to_ascii_lowercase().replace("%2e", ".");
        decoded == "." || decoded == ".."
    });
    if dot_segment {
        return Err(Reject::new(
            Reason::NotAProxy,
            "the path has a \".\" or \"..\" segment, which would leave the route's base path at the partner",
        ));
    }
    partners
        .routes
        .iter()
        .find(|p| {
            path.strip_prefix(p.route.prefix.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
        .ok_or_else(|| {
            let prefixes: Vec<&str> = partners
                .routes
                .iter()
                .map(|p| p.route.prefix.as_str())
                .collect();
            Reject::with(
                Reason::NoRoute,
                format!(
                    "no egress route serves this path; the configured prefixes are {}",
                    prefixes.join(", ")
                ),
            )
        })
}

/// A call ready for its attempts.
struct Prepared {
    method: Method,
    /// Path and query after the route's prefix.
    rest: String,
    /// The app's headers less hop-by-hop ones, `Host` and the ones
    /// hookguard owns.
    headers: HeaderMap,
    body: Bytes,
    /// The idempotency key, the same on every attempt.
    key: Option<String>,
    /// The id the signer sends (the key when there is one).
    id: String,
}

/// Takes the app's credentials away, reads the body and settles the key.
async fn prepare(
    request: Request<Incoming>,
    partner: &Partner,
    settings: &Egress,
) -> Result<Prepared, Reject> {
    let route = &partner.route;
    let (parts, body) = request.into_parts();
    let present: Vec<&HeaderName> = route
        .owned_headers
        .iter()
        .filter(|name| parts.headers.contains_key(*name))
        .collect();
    if !present.is_empty() && settings.on_app_credentials == AppCredentials::Reject {
        let names: Vec<&str> = present.iter().map(|n| n.as_str()).collect();
        return Err(Reject::with(
            Reason::AppCredentials,
            format!(
                "the call carries {}, which hookguard sets for this partner (on_app_credentials = \"reject\"); remove them from the app",
                names.join(", ")
            ),
        ));
    }
    let headers = forwardable(&parts.headers, &route.owned_headers);
    let limit = usize::try_from(settings.max_body).unwrap_or(usize::MAX);
    let body = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => {
            return Err(Reject::with(
                Reason::BodyTooLarge,
                format!(
                    "the body is larger than egress.max_body ({} bytes); it is buffered to be signed",
                    settings.max_body
                ),
            ))
        }
        Err(_) => {
            return Err(Reject::new(
                Reason::BodyIncomplete,
                "the app broke off while sending the body",
            ))
        }
    };
    let key = match &route.idempotency {
        Some(idempotency) if idempotency.methods.contains(&parts.method) => {
            Some(idempotency_key(idempotency, &parts.headers, &body)?)
        }
        _ => None,
    };
    let id = key
        .clone()
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let prefix = route.prefix.len();
    let rest = parts
        .uri
        .path_and_query()
        .map_or("", |pq| pq.as_str())
        .get(prefix..)
        .unwrap_or_default()
        .to_owned();
    Ok(Prepared {
        method: parts.method,
        rest,
        headers,
        body,
        key,
        id,
    })
}

/// The app's headers that go on to the partner: not hop-by-hop (by the
/// wire's list, or named in `Connection`), not `Host` (the client sets
/// the partner's), not `Content-Length` (set from the buffered body), not
/// `Expect` (the body is already here; curl asks for 100-continue on
/// bodies over 1 KiB), and not one hookguard owns for this route.
fn forwardable(app: &HeaderMap, owned: &[HeaderName]) -> HeaderMap {
    let connection = ConnectionOptions::parse(
        app.get_all(header::CONNECTION)
            .iter()
            .map(HeaderValue::as_bytes),
    );
    let mut headers = HeaderMap::with_capacity(app.len());
    for (name, value) in app {
        let dropped = is_hop_by_hop(name.as_str())
            || name == header::HOST
            || name == header::CONTENT_LENGTH
            || name == header::EXPECT
            || owned.contains(name)
            || connection
                .named
                .iter()
                .any(|n| n.eq_ignore_ascii_case(name.as_str().as_bytes()));
        if !dropped {
            headers.append(name.clone(), value.clone());
        }
    }
    headers
}

/// The call's idempotency key from `source`, settled once per call.
fn idempotency_key(
    idempotency: &Idempotency,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<String, Reject> {
    let from_header = |name: &HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .map(|v| match idempotency.quoted {
                true => unquote(v),
                false => v.to_owned(),
            })
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                Reject::with(
                    Reason::MissingIdempotencyKey,
                    format!("the route takes its idempotency key from the app's {name} header, and the call has none"),
                )
            })
    };
    match &idempotency.source {
        KeySource::Generate => Ok(uuid::Uuid::now_v7().to_string()),
        KeySource::Passthrough => from_header(&idempotency.header),
        KeySource::Header(name) => from_header(name),
        KeySource::Json(pointer) => {
            let missing = || {
                Reject::with(
                    Reason::MissingIdempotencyKey,
                    format!("the route takes its idempotency key from the JSON body at {pointer}, and the body has no string or number there"),
                )
            };
            let doc: serde_json::Value = serde_json::from_slice(body).map_err(|_| missing())?;
            match doc.pointer(pointer) {
                Some(serde_json::Value::String(text)) if !text.is_empty() => Ok(text.clone()),
                Some(serde_json::Value::Number(n)) => Ok(n.to_string()),
                _ => Err(missing()),
            }
        }
    }
}

/// A Structured Field string's content (RFC 8941 §3.3.3: `"..."` with
/// `\"` and `\\` escapes); text that is not one is returned as it is.
fn unquote(text: &str) -> String {
    let Some(inner) = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) else {
        return text.to_owned();
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    out
}

/// Sends the attempts and settles on the final answer.
async fn send(partner: &Partner, call: Prepared, started: Instant) -> Settled {
    let route = &partner.route;
    let retry = &route.retry;
    let deadline = started + retry.max_elapsed;
    let mut attempts = 0u32;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return refused(budget_spent(route), attempts);
        }
        let request = match attempt_request(route, &call) {
            Ok(request) => request,
            // The trial at load signed this route's requests; a request
            // that still cannot be signed (a header value it cannot carry)
            // is the app's to fix.
            Err(reject) => return refused(reject, attempts),
        };
        attempts += 1;
        let sent = Instant::now();
        let result =
            tokio::time::timeout(route.timeout.min(left), partner.client.request(request)).await;
        let (attempt, response, failure) = match result {
            Err(_) => (Attempt::Timeout, None, None),
            Ok(Err(error)) if error.is_connect() => {
                (Attempt::ConnectError, None, Some(root_cause(&error)))
            }
            // Sent, and the connection broke before an answer: the partner
            // may have acted, so for retrying this counts as no answer in
            // time.
            Ok(Err(error)) => (Attempt::Timeout, None, Some(root_cause(&error))),
            Ok(Ok(response)) => (
                Attempt::Status(response.status().as_u16()),
                Some(response),
                None,
            ),
        };
        partner.series.attempt(attempt, sent.elapsed());
        let again =
            attempts < retry.max_attempts && retry::retryable(retry, attempt, call.key.is_some());
        let wait = again.then(|| {
            let backoff = retry::backoff(retry, attempts + 1, retry::jitter());
            let asked = response
                .as_ref()
                .and_then(|r| retry::retry_after(r.headers(), SystemTime::now()));
            (backoff.max(asked.unwrap_or_default()), asked)
        });
        // A wait that would end past the budget is not waited: the app
        // gets the partner's answer now (with its Retry-After), rather
        // than a 504 later.
        let wait = wait.filter(|(wait, _)| Instant::now() + *wait < deadline);
        match (wait, response) {
            (Some((wait, asked)), response) => {
                if let Some(asked) = asked {
                    partner.series.retry_after(asked.min(wait));
                }
                // Dropping an unread answer closes its connection rather
                // than reading an error page nobody needs.
                drop(response);
                tokio::time::sleep(wait).await;
            }
            (None, Some(response)) => return answered(response, attempts),
            (None, None) => {
                let reject = match failure {
                    None => budget_spent(route),
                    Some(cause) => Reject::with(
                        Reason::UpstreamUnavailable,
                        format!(
                            "{} the partner {} after {attempts} attempt(s): {cause}",
                            if attempt == Attempt::ConnectError {
                                "no connection to"
                            } else {
                                "the connection broke before an answer from"
                            },
                            route.upstream.authority
                        ),
                    ),
                };
                return refused(reject, attempts);
            }
        }
    }
}

/// The innermost error under `error`: what actually failed (a refused
/// connection, a certificate the route does not trust, a TLS alert), for
/// the detail an operator reads. Transport errors hold no request data.
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    cause.to_string()
}

/// 504 `egress_timeout`: the budget ran out without an answer.
fn budget_spent(route: &EgressRoute) -> Reject {
    Reject::with(
        Reason::EgressTimeout,
        format!(
            "no answer from the partner within the route's budget (timeout {} ms per attempt, max_elapsed {} ms)",
            route.timeout.as_millis(),
            route.retry.max_elapsed.as_millis()
        ),
    )
}

/// One attempt's request: a fresh timestamp and signature over the same
/// bytes, the key, the credential.
fn attempt_request(route: &EgressRoute, call: &Prepared) -> Result<Request<Full<Bytes>>, Reject> {
    let bad = |what: String| Reject::with(Reason::MalformedRequest, what);
    let uri = route
        .upstream
        .uri(&call.rest)
        .map_err(|_| bad("the path cannot be joined to the partner's URL".to_owned()))?;
    let mut unsigned = Unsigned {
        method: call.method.clone(),
        uri: uri.path_and_query().map_or_else(
            || http::Uri::from_static("/"),
            |pq| pq.as_str().parse().unwrap_or_default(),
        ),
        headers: call.headers.clone(),
        body: call.body.clone(),
        now: proxy::unix_now(),
        id: call.id.clone(),
    };
    if let (Some(idempotency), Some(key)) = (&route.idempotency, &call.key) {
        let value = match idempotency.quoted {
            true => format!("\"{}\"", key.replace('\\', "\\\\").replace('"', "\\\"")),
            false => key.clone(),
        };
        let value = HeaderValue::from_str(&value)
            .map_err(|_| bad("the idempotency key is not a valid header value".to_owned()))?;
        unsigned.headers.insert(idempotency.header.clone(), value);
    }
    if let Some(signer) = &route.sign {
        signer
            .sign_with_every_key(&mut unsigned)
            .map_err(|e| bad(format!("the call cannot be signed: {e}")))?;
    }
    if let Some((name, value)) = &route.auth {
        unsigned.headers.insert(name.clone(), value.clone());
    }
    let mut request = Request::new(Full::new(unsigned.body));
    *request.method_mut() = unsigned.method;
    *request.uri_mut() = uri;
    *request.headers_mut() = unsigned.headers;
    Ok(request)
}

/// The partner's final answer for the app: its status, end-to-end headers
/// and streamed body.
fn answered(response: Response<Incoming>, attempts: u32) -> Settled {
    let (mut parts, body) = response.into_parts();
    let connection = ConnectionOptions::parse(
        parts
            .headers
            .get_all(header::CONNECTION)
            .iter()
            .map(HeaderValue::as_bytes),
    );
    let named: Vec<HeaderName> = connection
        .named
        .iter()
        .filter_map(|n| HeaderName::from_bytes(n).ok())
        .collect();
    for name in named {
        parts.headers.remove(name);
    }
    let hop: Vec<HeaderName> = parts
        .headers
        .keys()
        .filter(|n| is_hop_by_hop(n.as_str()))
        .cloned()
        .collect();
    for name in hop {
        parts.headers.remove(name);
    }
    // The version is this hop's, not the partner's: an HTTP/1.0 partner
    // must not make hookguard answer the app in HTTP/1.0 (and close).
    parts.version = http::Version::HTTP_11;
    Settled {
        answer: Ok(Response::from_parts(parts, body.boxed())),
        attempts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structured_field_strings_are_unquoted_and_other_text_kept() {
        assert_eq!(unquote(r#""abc""#), "abc");
        assert_eq!(unquote(r#""a\"b\\c""#), r#"a"b\c"#);
        assert_eq!(unquote("abc"), "abc");
        assert_eq!(unquote(r#""abc"#), r#""abc"#);
    }
}
