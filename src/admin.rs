//! The admin listener, kept off the public port.
//!
//! - `GET /healthz`: 200 while the process is alive (liveness).
//! - `GET /readyz`: 200 once the config is loaded and the listener bound,
//!   503 from the moment shutdown begins (readiness), so that Kubernetes
//!   stops sending traffic before connections drain. With a shared replay
//!   store under `on_store_error = "reject"`, also 503 while the store's
//!   health check fails: every request would be refused anyway.
//! - `GET /metrics`: Prometheus text exposition.
//! - `POST /replay/forget`: forgets a delivery's dedupe key on purpose, so
//!   that an event the app acknowledged but failed to process is accepted
//!   again. The body is `{"route": "...", "source": "header:X-Delivery",
//!   "value": "..."}` (the value's form per source is
//!   [`replay::key_for`]'s); the answer is `{"removed": n}`, the number of
//!   completed keys removed (0 when the key was not remembered, or is in
//!   flight: see [`ReplayStore::forget`]). A request that cannot be
//!   understood gets 400 with `{"error": "...", "field": "..."}` naming
//!   the field at fault (`body`, `route`, `source` or `value`); a store
//!   that cannot answer, 503 with `{"error": "..."}`. Routes are those of
//!   the live config.
//! - `/queue...`: the durable queue's operator endpoints (list, show,
//!   redeliver, purge, pause, resume, stats), in [`queue`].

pub mod queue;

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::config::Route;
use crate::dedupe::DedupeSource;
use crate::proxy::State;
use crate::queue::QueueStore;
use crate::replay::{self, ReplayStore};
use crate::routes;

/// The path of the forget endpoint (the CLI calls it too).
pub const FORGET_PATH: &str = "/replay/forget";

/// Largest forget request read: a route name, a source and a value fit in
/// far less; more is refused unread.
const MAX_FORGET_BODY: usize = 16 * 1024;

/// Whether the proxy should receive traffic. Cloned into the admin server;
/// flipped by the server as it starts and stops.
#[derive(Debug, Clone, Default)]
pub struct Readiness {
    /// Set while the listener serves; cleared when shutdown begins.
    serving: Arc<AtomicBool>,
    /// A store whose outage makes the proxy unready; `None` when the store
    /// cannot fail or its failures do not stop requests.
    store: Option<Arc<dyn ReplayStore>>,
    /// The durable queue, which must be open (and recovered) before the
    /// proxy is ready; `None` without `[queue]`.
    queue: Option<Arc<OnceLock<Arc<dyn QueueStore>>>>,
}

impl Readiness {
    /// Readiness that also requires `store` to be healthy.
    pub fn gated_by(store: Arc<dyn ReplayStore>) -> Self {
        Readiness {
            serving: Arc::default(),
            store: Some(store),
            queue: None,
        }
    }

    /// The same readiness, also waiting for the queue to be open.
    pub fn with_queue(self, queue: Arc<OnceLock<Arc<dyn QueueStore>>>) -> Self {
        Readiness {
            queue: Some(queue),
            ..self
        }
    }

    /// True while a queue is configured and not open yet.
    fn queue_closed(&self) -> bool {
        self.queue.as_ref().is_some_and(|q| q.get().is_none())
    }

    /// True while the open queue's store does not answer (a shared store's
    /// server went away).
    fn queue_down(&self) -> bool {
        self.queue
            .as_ref()
            .and_then(|q| q.get())
            .is_some_and(|store| !store.healthy())
    }

    /// Marks the proxy ready or not.
    pub fn set(&self, ready: bool) {
        self.serving.store(ready, Ordering::SeqCst);
    }

    /// True while ready.
    pub fn is_ready(&self) -> bool {
        self.serving.load(Ordering::SeqCst)
            && !self.store_down()
            && !self.queue_closed()
            && !self.queue_down()
    }

    /// True while the gating store fails its health check.
    fn store_down(&self) -> bool {
        self.store.as_ref().is_some_and(|store| !store.healthy())
    }
}

/// Serves admin requests until the task is dropped. `state` is the
/// proxy's: its metrics, its replay store, and the live config whose routes
/// `POST /replay/forget` names.
pub async fn serve(listener: TcpListener, readiness: Readiness, state: Arc<State>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Usually EMFILE, which persists until a descriptor is freed:
            // retrying at once would spin a core, so back off as the main
            // accept loop in `server` does.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let readiness = readiness.clone();
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let (readiness, state) = (readiness.clone(), state.clone());
                async move { Ok::<_, Infallible>(route(request, &readiness, &state).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn route(
    request: Request<Incoming>,
    readiness: &Readiness,
    state: &State,
) -> Response<Full<Bytes>> {
    let path = request.uri().path();
    if path == queue::QUEUE_PATH || path.starts_with("/queue/") {
        return queue::serve(request, state).await;
    }
    if path == FORGET_PATH {
        return if request.method() == Method::POST {
            forget(request, state).await
        } else {
            text(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed: use POST\n",
            )
        };
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    }
    match path {
        "/healthz" => healthz(),
        "/readyz" => readyz(readiness),
        "/metrics" => metrics_page(state).await,
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: try /healthz, /readyz, /metrics, /queue or POST /replay/forget\n",
        ),
    }
}

fn healthz() -> Response<Full<Bytes>> {
    text(StatusCode::OK, "ok\n")
}

fn readyz(readiness: &Readiness) -> Response<Full<Bytes>> {
    if readiness.is_ready() {
        text(StatusCode::OK, "ready\n")
    } else if readiness.serving.load(Ordering::SeqCst) && readiness.queue_closed() {
        text(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the delivery queue is not open yet\n",
        )
    } else if readiness.serving.load(Ordering::SeqCst) && readiness.queue_down() {
        text(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the delivery queue's store is unreachable\n",
        )
    } else if readiness.serving.load(Ordering::SeqCst) {
        text(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the replay store is unreachable\n",
        )
    } else {
        text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

async fn metrics_page(state: &State) -> Response<Full<Bytes>> {
    if let Some(queue) = state.queue.get() {
        let live = state.live.load();
        let routes: Vec<String> = live
            .config
            .routes
            .iter()
            .filter(|r| r.delivery.is_some())
            .map(|r| r.name.clone())
            .collect();
        let now = crate::queue::now_ms();
        let mut oldest = Vec::with_capacity(routes.len());
        for route in &routes {
            let received = queue.oldest_due(route, now).await.ok().flatten();
            let age = received.map_or(0, |at| now.saturating_sub(at) / 1000);
            oldest.push((route.clone(), age));
        }
        state
            .metrics
            .queue()
            .sample(&queue.counts(), &routes, queue.bytes(), &oldest);
        // On the Redis queue this grows as leases run out and are reclaimed.
        state.metrics.queue().recovered(queue.recovered());
    }
    let page = state.metrics.render(state.store.entries());
    let mut response = Response::new(Full::new(Bytes::from(page)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// `POST /replay/forget` (see the module doc). Logs the route, the source
/// and the count, never the value: it is a sender's delivery id.
async fn forget(request: Request<Incoming>, state: &State) -> Response<Full<Bytes>> {
    let body = match Limited::new(request.into_body(), MAX_FORGET_BODY)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => {
            return refused(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body",
                format!("the body is larger than {MAX_FORGET_BODY} bytes"),
            )
        }
        Err(_) => return refused(StatusCode::BAD_REQUEST, "body", "the body broke off"),
    };
    let live = state.live.load();
    let (route, source, key) = match forget_request(&body, &live.config.routes) {
        Ok(found) => found,
        Err((field, message)) => return refused(StatusCode::BAD_REQUEST, field, message),
    };
    match state.store.forget(&[key]).await {
        Ok(removed) => {
            tracing::info!(route = %route.name, %source, removed, "replay key forgotten on request");
            json_answer(StatusCode::OK, &json!({ "removed": removed }))
        }
        Err(error) => json_answer(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({ "error": format!("the replay store is unavailable: {}", error.0) }),
        ),
    }
}

/// Reads a forget request against `routes`: the route, its dedupe source
/// and the key to forget, or the field at fault and what was wrong.
fn forget_request<'r>(
    body: &[u8],
    routes: &'r [Arc<Route>],
) -> Result<(&'r Route, &'r DedupeSource, replay::Key), (&'static str, String)> {
    let document: Value = serde_json::from_slice(body)
        .map_err(|error| ("body", format!("the body is not JSON: {error}")))?;
    let Some(fields) = document.as_object() else {
        return Err((
            "body",
            "the body is not a JSON object with route, source and value".to_owned(),
        ));
    };
    let text = |field: &'static str, what: &str| match fields.get(field) {
        Some(Value::String(text)) => Ok(text.as_str()),
        Some(_) => Err((field, format!("{field} must be a string: {what}"))),
        None => Err((field, format!("{field} is missing: {what}"))),
    };
    let route = text("route", "the route's name")?;
    let route = routes::by_name(routes, route).map_err(|message| ("route", message))?;
    let source = text(
        "source",
        "one of the route's dedupe sources, e.g. \"header:X-Delivery\"",
    )?;
    let source = find_source(route, source).ok_or_else(|| {
        let listed: Vec<String> = route.dedupe.iter().map(ToString::to_string).collect();
        (
            "source",
            format!(
                "{source:?} is not in route {:?}'s dedupe list [{}]",
                route.name,
                listed.join(", ")
            ),
        )
    })?;
    let value = fields
        .get("value")
        .ok_or_else(|| ("value", format!("value is missing: the value of {source}")))?;
    match replay::key_for(route, source, value) {
        Ok(Some(key)) => Ok((route, source, key)),
        // find_source took it from the route's own list.
        Ok(None) => Err((
            "source",
            format!("{source} is not in the route's dedupe list"),
        )),
        Err(expected) => Err(("value", format!("for {source}, value must be {expected}"))),
    }
}

/// The route's dedupe source written `text` as in the config: header names
/// in any case, spaces after the commas of `json:(/a, /b)` allowed.
fn find_source<'r>(route: &'r Route, text: &str) -> Option<&'r DedupeSource> {
    let text = text.trim();
    let wanted = if let Some(name) = text.strip_prefix("header:") {
        format!("header:{}", name.trim().to_ascii_lowercase())
    } else if let Some(list) = text
        .strip_prefix("json:(")
        .and_then(|rest| rest.strip_suffix(')'))
    {
        let pointers: Vec<&str> = list.split(',').map(str::trim).collect();
        format!("json:({})", pointers.join(","))
    } else {
        text.to_owned()
    };
    route
        .dedupe
        .iter()
        .find(|source| source.to_string() == wanted)
}

/// A 4xx answer naming the field at fault.
fn refused(
    status: StatusCode,
    field: &'static str,
    message: impl Into<String>,
) -> Response<Full<Bytes>> {
    json_answer(status, &json!({ "error": message.into(), "field": field }))
}

fn json_answer(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
