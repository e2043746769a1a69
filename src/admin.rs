//! The admin listener, kept off the public port.
//!
//! - `GET /healthz`: 200 while the process is alive (liveness).
//! - `GET /readyz`: 200 once the config is loaded and the listener bound,
//!   503 from the moment shutdown begins (readiness), so that Kubernetes
//!   stops sending traffic before connections drain.
//! - `GET /metrics`: Prometheus text exposition.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

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
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// Marks the proxy ready or not.
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::SeqCst);
    }

    /// True while ready.
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::SeqCst)
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
