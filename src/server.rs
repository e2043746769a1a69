//! Running hookguard: the accept loop, the admin listener, reloads and
//! shutdown.
//!
//! [`run`] takes its listeners and its shutdown signal as arguments, so tests
//! start a real server on `127.0.0.1:0` and stop it when they like, and
//! `main` passes the bound sockets and the SIGTERM/SIGINT future.
//!
//! Connections are served by `server.workers` threads, each running its
//! own single-threaded runtime; the accept loop hands each new connection
//! to the next one in turn, and the connection stays on that thread for
//! its life. Measured on the issue-8 bench (2 cores), this served 1.05x
//! haproxy's rate at haproxy's p99, where tokio's work-stealing runtime
//! served 0.85x at 1.7x the p99: a request is a chain of wake-ups (sender,
//! app, sender), and on a shared machine the work-stealing scheduler moved
//! them between threads and queued them behind descheduled workers. The
//! admin listener, reloads and the Redis client stay on the main runtime.
//!
//! The price: connections run on runtimes the test's own runtime does not
//! drive, so `tokio::time::pause()` cannot speed up timeout tests; they use
//! short real durations instead (a few hundred milliseconds).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};

use crate::admin::{self, Readiness};
use crate::config::{Config, OnStoreError, Queue as QueueSettings, QueueStoreKind, StoreKind};
use crate::egress;
use crate::http1;
use crate::metrics::Metrics;
use crate::proxy::{deliver, Live, State};
use crate::queue::embedded::EmbeddedStore;
use crate::queue::redis::{self as queue_redis, RedisQueue};
use crate::queue::QueueStore;
use crate::reload::{self, ReloadSource};
use crate::replay::memory::{snapshot, MemoryStore};
use crate::replay::redis::{self, RedisStore};
use crate::replay::ReplayStore;

/// Serves `config` until `shutdown` resolves, then drains in-flight
/// requests for at most `shutdown_grace` and returns. `egress` is the
/// bound `egress.listen`, when the config has `[egress]`.
pub async fn run(
    config: Config,
    listener: TcpListener,
    admin_listener: TcpListener,
    egress: Option<TcpListener>,
    shutdown: impl Future<Output = ()>,
) {
    serve(config, None, listener, admin_listener, egress, shutdown).await;
}

/// Like [`run`], and reloads the config from `source` on SIGHUP and when the
/// file or its secret files change.
/// Reloads reach the egress routes too; the egress listener stays bound.
pub async fn run_with_reload(
    config: Config,
    source: ReloadSource,
    listener: TcpListener,
    admin_listener: TcpListener,
    egress: Option<TcpListener>,
    shutdown: impl Future<Output = ()>,
) {
    serve(
        config,
        Some(source),
        listener,
        admin_listener,
        egress,
        shutdown,
    )
    .await;
}

async fn serve(
    config: Config,
    source: Option<ReloadSource>,
    listener: TcpListener,
    admin_listener: TcpListener,
    egress_listener: Option<TcpListener>,
    shutdown: impl Future<Output = ()>,
) {
    let metrics = Metrics::new();
    let (store, on_store_error, health) = build_store(&config, &metrics).await;
    let snapshots = store.snapshots.clone();
    let store = store.shared;
    // Bound at start, like the listeners: a reload cannot resize it.
    let max_connections = config.server.max_connections;
    let connections = Arc::new(Semaphore::new(max_connections));
    let queue_settings = config.queue.clone();
    let state = Arc::new(State {
        live: ArcSwap::from_pointee(Live::new(config, &metrics)),
        store,
        on_store_error,
        metrics,
        captures: Default::default(),
        queue: Arc::default(),
        wakers: Default::default(),
    });
    // Under "reject" a store outage refuses every request: say so to the
    // load balancer. Under "allow" requests still go through.
    let mut readiness = match (&health, on_store_error) {
        (Some(_), OnStoreError::Reject) => Readiness::gated_by(state.store.clone()),
        _ => Readiness::default(),
    };
    // Durable routes: ready only once the queue is open and recovered.
    let (stopping, stop_signal) = watch::channel(false);
    let egress = start_egress(&state, egress_listener, stop_signal.clone());
    let deliveries = queue_settings.map(|settings| {
        readiness = readiness.clone().with_queue(state.queue.clone());
        tokio::spawn(open_queue(state.clone(), settings, stop_signal.clone()))
    });
    let admin_addr = admin_listener.local_addr();
    let admin = tokio::spawn(admin::serve(
        admin_listener,
        readiness.clone(),
        state.clone(),
    ));
    let watcher = source.map(|source| tokio::spawn(reload::watch(state.clone(), source)));

    // `stopping` turns true on shutdown: idle connections close at once,
    // busy ones after their current request.
    let workers = state.live.load().config.server.workers;
    let mut workers = match Workers::start(workers, &state, &stop_signal) {
        Ok(workers) => workers,
        Err(error) => {
            tracing::error!(%error, "cannot start the worker threads");
            return;
        }
    };
    readiness.set(true);
    tracing::info!(
        listen = %listener.local_addr().map_or_else(|_| "?".into(), |a| a.to_string()),
        admin = %admin_addr.map_or_else(|_| "?".into(), |a| a.to_string()),
        routes = state.live.load().config.routes.len(),
        "hookguard is ready"
    );

    tokio::pin!(shutdown);
    loop {
        // Past max_connections, new connections wait in the kernel's accept
        // backlog; the ones being served are not disturbed.
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    // Usually EMFILE: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        workers.hand_over(stream, peer, permit);
    }

    readiness.set(false);
    drop(listener);
    if let Some(watcher) = watcher {
        watcher.abort();
    }
    let grace = state.live.load().config.server.shutdown_grace;
    tracing::info!(
        grace_ms = grace.as_millis() as u64,
        "shutting down: draining in-flight requests"
    );
    let _ = stopping.send(true);
    let deadline = tokio::time::Instant::now() + grace;
    // Every connection holds a permit until it ends: all of them back means
    // nothing is in flight.
    let drained = connections.acquire_many(u32::try_from(max_connections).unwrap_or(u32::MAX));
    if tokio::time::timeout_at(deadline, drained).await.is_err() {
        tracing::warn!("shutdown grace elapsed with requests still in flight");
    }
    // The app's calls through egress drained meanwhile, within the same
    // grace.
    if let Some(egress) = egress {
        let abort = egress.abort_handle();
        if tokio::time::timeout_at(deadline, egress).await.is_err() {
            tracing::warn!("shutdown grace elapsed with egress calls still in flight");
            abort.abort();
        }
    }
    // The workers' runtimes end once their queues close; anything still
    // running past the grace is dropped with them.
    drop(workers);
    if let Some(deliveries) = deliveries {
        // Attempts in flight get what is left of the grace; shortly before
        // it ends the workers hand back the items still being attempted
        // (see `deliver::run`), which are then sent again.
        let abort = deliveries.abort_handle();
        if tokio::time::timeout_at(deadline, deliveries).await.is_err() {
            abort.abort();
        }
    }
    admin.abort();
    if let Some(health) = health {
        health.abort();
    }
    if let Some(snapshots) = snapshots {
        snapshots.finish(&state.metrics).await;
    }
    tracing::info!("hookguard stopped");
}

/// Serves the egress listener, when the config has `[egress]` and the
/// listener was bound, following the live config (reloads reach it).
fn start_egress(
    state: &Arc<State>,
    listener: Option<TcpListener>,
    stop: watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    let settings = state.live.load().config.egress.clone();
    match (settings, listener) {
        (Some(settings), Some(listener)) => {
            tracing::info!(
                listen = %listener.local_addr().map_or_else(|_| "?".into(), |a| a.to_string()),
                routes = settings.routes.len(),
                "egress listener ready"
            );
            let live = state.clone();
            let partners = egress::Partners::following(settings, &state.metrics, move || {
                live.live.load().config.egress.clone()
            });
            Some(tokio::spawn(egress::serve(
                listener,
                Arc::new(partners),
                stop,
            )))
        }
        (Some(_), None) => {
            tracing::warn!(
                "[egress] is configured but no egress listener was given; egress is off"
            );
            None
        }
        (None, _) => None,
    }
}

/// Opens the queue (retrying each second while it cannot: another
/// process may still hold the file during a restart, Redis may be down or
/// not yet set up to keep what it acknowledges), makes it the state's,
/// then runs the durable routes' workers until `stop`.
async fn open_queue(state: Arc<State>, settings: QueueSettings, stop: watch::Receiver<bool>) {
    let mut failures = 0u32;
    let store: Arc<dyn QueueStore> = loop {
        let started = std::time::Instant::now();
        let opened = open_store(&settings).await;
        match opened {
            Ok(store) => {
                tracing::info!(
                    store = ?store,
                    recovered = store.recovered(),
                    items = store.counts().values().sum::<u64>(),
                    took_ms = started.elapsed().as_millis() as u64,
                    "the delivery queue is open"
                );
                break store;
            }
            Err(error) => {
                // Logged at once, then every half minute while it lasts.
                if failures.is_multiple_of(30) {
                    tracing::error!(%error, "the delivery queue cannot be opened; durable routes answer 503 and /readyz is not ready until it can");
                }
                failures += 1;
                if *stop.borrow() {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    state.metrics.queue().recovered(store.recovered());
    let _ = state.queue.set(store);
    deliver::run(state, stop).await;
}

/// Opens the configured store once.
async fn open_store(settings: &QueueSettings) -> Result<Arc<dyn QueueStore>, String> {
    match &settings.store {
        QueueStoreKind::Embedded(path) => {
            let (file, max_bytes) = (path.clone(), settings.max_bytes);
            let store = tokio::task::spawn_blocking(move || EmbeddedStore::open(&file, max_bytes))
                .await
                .unwrap_or_else(|e| Err(e.to_string()))?;
            Ok(Arc::new(store))
        }
        QueueStoreKind::Redis(redis) => {
            let store = Arc::new(
                RedisQueue::open(redis, settings.max_bytes)
                    .await
                    .map_err(|e| e.to_string())?,
            );
            queue_redis::spawn_refresh(&store);
            Ok(store)
        }
    }
}

/// A connection on its way to a worker, with its `max_connections` permit.
type Handover = (std::net::TcpStream, SocketAddr, OwnedSemaphorePermit);

/// The threads serving connections (see the module doc).
struct Workers {
    queues: Vec<mpsc::UnboundedSender<Handover>>,
    next: usize,
}

impl Workers {
    /// Starts `count` threads, each with a single-threaded runtime serving
    /// the connections handed to it.
    fn start(
        count: usize,
        state: &Arc<State>,
        stop: &watch::Receiver<bool>,
    ) -> std::io::Result<Self> {
        let mut queues = Vec::with_capacity(count);
        for index in 0..count {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let (queue, mut handed) = mpsc::unbounded_channel::<Handover>();
            let (state, stop) = (state.clone(), stop.clone());
            std::thread::Builder::new()
                .name(format!("hookguard-worker-{index}"))
                .spawn(move || {
                    runtime.block_on(async move {
                        while let Some((stream, peer, permit)) = handed.recv().await {
                            // Registers the socket with this thread's runtime.
                            let Ok(stream) = TcpStream::from_std(stream) else {
                                continue;
                            };
                            let connection =
                                http1::serve_connection(state.clone(), stream, peer, stop.clone());
                            tokio::spawn(async move {
                                connection.await;
                                drop(permit);
                            });
                        }
                    });
                })?;
            queues.push(queue);
        }
        Ok(Workers { queues, next: 0 })
    }

    /// Gives a new connection to the next worker in turn.
    fn hand_over(&mut self, stream: TcpStream, peer: SocketAddr, permit: OwnedSemaphorePermit) {
        // Moving the socket between runtimes goes through its std form.
        let Ok(stream) = stream.into_std() else {
            return;
        };
        let queue = &self.queues[self.next % self.queues.len()];
        self.next = self.next.wrapping_add(1);
        if queue.send((stream, peer, permit)).is_err() {
            tracing::error!("a worker thread has stopped; the connection is dropped");
        }
    }
}

/// The replay store a process runs with.
struct Store {
    /// The store, as the pipeline and admin use it.
    shared: Arc<dyn ReplayStore>,
    /// The memory store and where its snapshots go, when the config asks
    /// for snapshots.
    snapshots: Option<Snapshots>,
}

/// A memory store's snapshots: loaded at start, written every interval and
/// once more after the drain at shutdown.
#[derive(Clone)]
struct Snapshots {
    store: Arc<MemoryStore>,
    path: std::path::PathBuf,
    /// The periodic writer, aborted before the final write.
    writer: Arc<tokio::task::JoinHandle<()>>,
}

impl Snapshots {
    /// Loads the last snapshot, then writes one every `interval`. A missing
    /// file is a first start; a bad one is logged and counted, never fatal:
    /// the store starts empty, as it would without snapshots.
    async fn start(
        store: Arc<MemoryStore>,
        path: std::path::PathBuf,
        interval: Duration,
        metrics: &Metrics,
    ) -> Self {
        let loading = (store.clone(), path.clone());
        let loaded = tokio::task::spawn_blocking(move || loading.0.load_snapshot(&loading.1)).await;
        match loaded {
            Ok(Ok(report)) => {
                metrics.snapshot("load", "ok");
                tracing::info!(
                    path = %path.display(),
                    found = report.found,
                    loaded = report.loaded,
                    expired = report.expired,
                    over_capacity = report.over_capacity,
                    answers = report.answers,
                    "replay snapshot loaded"
                );
            }
            Ok(Err(error)) => {
                metrics.snapshot("load", error.reason());
                tracing::error!(%error, "replay snapshot not loaded; starting with an empty replay store");
            }
            Err(stopped) => {
                metrics.snapshot("load", "io");
                tracing::error!(%stopped, "replay snapshot not loaded; starting with an empty replay store");
            }
        }
        let counted = metrics.clone();
        let writer =
            snapshot::spawn_writer(
                &store,
                path.clone(),
                interval,
                move |outcome| match outcome {
                    Ok(_) => counted.snapshot("write", "ok"),
                    Err(error) => {
                        counted.snapshot("write", error.reason());
                        tracing::error!(%error, "replay snapshot not written");
                    }
                },
            );
        Snapshots {
            store,
            path,
            writer: Arc::new(writer),
        }
    }

    /// The final write, after the drain: the keys of every delivery that
    /// completed up to the end survive the restart.
    async fn finish(self, metrics: &Metrics) {
        self.writer.abort();
        let Snapshots { store, path, .. } = self;
        let shown = path.clone();
        match tokio::task::spawn_blocking(move || store.write_snapshot(&path)).await {
            Ok(Ok(written)) => {
                metrics.snapshot("write", "ok");
                tracing::info!(path = %shown.display(), keys = written.keys, answers = written.answers, "replay snapshot written");
            }
            Ok(Err(error)) => {
                metrics.snapshot("write", error.reason());
                tracing::error!(%error, "replay snapshot not written at shutdown");
            }
            Err(stopped) => {
                metrics.snapshot("write", "io");
                tracing::error!(%stopped, "replay snapshot not written at shutdown");
            }
        }
    }
}

/// The replay store the config asks for, the policy for its failures, and
/// the health check of a shared store. Bound at start: a reload cannot
/// switch stores.
async fn build_store(
    config: &Config,
    metrics: &Metrics,
) -> (Store, OnStoreError, Option<tokio::task::JoinHandle<()>>) {
    let counted = metrics.clone();
    match &config.replay.store {
        StoreKind::Memory => {
            let store = Arc::new(MemoryStore::new(
                config.replay.max_entries,
                Arc::new(move |cause| counted.eviction(cause)),
            ));
            let snapshots = match &config.replay.snapshot {
                Some(settings) => Some(
                    Snapshots::start(
                        store.clone(),
                        settings.path.clone(),
                        settings.interval,
                        metrics,
                    )
                    .await,
                ),
                None => None,
            };
            let store = Store {
                shared: store,
                snapshots,
            };
            (store, OnStoreError::Reject, None)
        }
        StoreKind::Redis(settings) => {
            let store = Arc::new(RedisStore::new(
                settings,
                config.server.settle_timeout,
                Arc::new(move |op, took, ok| counted.store_op(op, took, ok)),
            ));
            let health = redis::spawn_health_check(&store);
            let store = Store {
                shared: store,
                snapshots: None,
            };
            (store, settings.on_store_error, Some(health))
        }
    }
}

/// Resolves on SIGTERM or SIGINT. The handlers are installed when this is
/// called, not when the future is first polled: a SIGTERM that arrives
/// right after "hookguard is ready" is logged must already mean a graceful
/// stop, not the default action of killing the process.
pub fn shutdown_signal() -> impl Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let term = signal(SignalKind::terminate());
        let interrupt = signal(SignalKind::interrupt());
        async move {
            let wait = |installed: std::io::Result<tokio::signal::unix::Signal>| async move {
                match installed {
                    Ok(mut signal) => {
                        signal.recv().await;
                    }
                    Err(_) => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = wait(term) => {}
                () = wait(interrupt) => {}
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
