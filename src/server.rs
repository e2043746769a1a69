//! Running hookguard: the accept loop, the admin listener and shutdown.
//!
//! [`run`] takes its listeners and its shutdown signal as arguments, so tests
//! start a real server on `127.0.0.1:0` and stop it when they like, and
//! `main` passes the bound sockets and the SIGTERM/SIGINT future.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::admin::{self, Readiness};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::proxy::{self, forward, State};
use crate::replay::memory::MemoryStore;
use crate::routes::Router;

/// Serves until `shutdown` resolves, then drains in-flight requests for at
/// most `shutdown_grace` and returns.
pub async fn run(
    config: Config,
    listener: TcpListener,
    admin_listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) {
    let metrics = Metrics::new(&config);
    let evictions = metrics.clone();
    let store = Arc::new(MemoryStore::new(
        config.replay.max_entries,
        Arc::new(move |cause| evictions.eviction(cause)),
    ));
    let state = Arc::new(State {
        router: Router::new(&config.routes),
        config,
        store,
        client: forward::client(),
        metrics: metrics.clone(),
    });
    let server = &state.config.server;
    let readiness = Readiness::default();
    let admin_addr = admin_listener.local_addr();
    let admin = tokio::spawn(admin::serve(
        admin_listener,
        readiness.clone(),
        metrics,
        state.store.clone(),
    ));

    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(server.header_timeout)
        .keep_alive(true);
    let graceful = GracefulShutdown::new();
    readiness.set(true);
    tracing::info!(
        listen = %listener.local_addr().map_or_else(|_| "?".into(), |a| a.to_string()),
        admin = %admin_addr.map_or_else(|_| "?".into(), |a| a.to_string()),
        routes = state.config.routes.len(),
        "hookguard is ready"
    );

    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(error) => {
                        // Usually EMFILE: back off instead of spinning.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let state = state.clone();
                let service = service_fn(move |request| proxy::handle(state.clone(), peer, request));
                let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
                tokio::spawn(async move {
                    if let Err(error) = connection.await {
                        tracing::debug!(%error, %peer, "connection ended with an error");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }

    readiness.set(false);
    drop(listener);
    let grace = state.config.server.shutdown_grace;
    tracing::info!(
        grace_ms = grace.as_millis() as u64,
        "shutting down: draining in-flight requests"
    );
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("shutdown grace elapsed with requests still in flight");
    }
    admin.abort();
    tracing::info!("hookguard stopped");
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
