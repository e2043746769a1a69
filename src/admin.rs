//! The admin listener, kept off the public port.
//!
//! - `GET /healthz`: 200 while the process is alive (liveness).
//! - `GET /readyz`: 200 once the config is loaded and the listener bound,
//!   503 from the moment shutdown begins (readiness), so that Kubernetes
//!   stops sending traffic before connections drain. With a shared replay
//!   store under `on_store_error = "reject"`, also 503 while the store's
//!   health check fails: every request would be refused anyway.
//! - `GET /metrics`: Prometheus text exposition.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::metrics::Metrics;
use crate::replay::ReplayStore;

/// Whether the proxy should receive traffic. Cloned into the admin server;
/// flipped by the server as it starts and stops.
#[derive(Debug, Clone, Default)]
pub struct Readiness {
    /// Set while the listener serves; cleared when shutdown begins.
    serving: Arc<AtomicBool>,
    /// A store whose outage makes the proxy unready; `None` when the store
    /// cannot fail or its failures do not stop requests.
    store: Option<Arc<dyn ReplayStore>>,
}

impl Readiness {
    /// Readiness that also requires `store` to be healthy.
    pub fn gated_by(store: Arc<dyn ReplayStore>) -> Self {
        Readiness {
            serving: Arc::default(),
            store: Some(store),
        }
    }

    /// Marks the proxy ready or not.
    pub fn set(&self, ready: bool) {
        self.serving.store(ready, Ordering::SeqCst);
    }

    /// True while ready.
    pub fn is_ready(&self) -> bool {
        self.serving.load(Ordering::SeqCst) && !self.store_down()
    }

    /// True while the gating store fails its health check.
    fn store_down(&self) -> bool {
        self.store.as_ref().is_some_and(|store| !store.healthy())
    }
}

/// Serves admin requests until the task is dropped.
pub async fn serve(
    listener: TcpListener,
    readiness: Readiness,
    metrics: Metrics,
    store: Arc<dyn ReplayStore>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Usually EMFILE, which persists until a descriptor is freed:
            // retrying at once would spin a core, so back off as the main
            // accept loop in `server` does.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let readiness = readiness.clone();
        let metrics = metrics.clone();
        let store = store.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let response = route(&request, &readiness, &metrics, store.as_ref());
                async move { Ok::<_, Infallible>(response) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn route(
    request: &Request<Incoming>,
    readiness: &Readiness,
    metrics: &Metrics,
    store: &dyn ReplayStore,
) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    }
    match request.uri().path() {
        "/healthz" => healthz(),
        "/readyz" => readyz(readiness),
        "/metrics" => metrics_page(metrics, store),
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: try /healthz, /readyz or /metrics\n",
        ),
    }
}

fn healthz() -> Response<Full<Bytes>> {
    text(StatusCode::OK, "ok\n")
}

fn readyz(readiness: &Readiness) -> Response<Full<Bytes>> {
    if readiness.is_ready() {
        text(StatusCode::OK, "ready\n")
    } else if readiness.serving.load(Ordering::SeqCst) {
        text(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the replay store is unreachable\n",
        )
    } else {
        text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

fn metrics_page(metrics: &Metrics, store: &dyn ReplayStore) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(metrics.render(store.entries()))));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
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
