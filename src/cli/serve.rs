//! `hookguard serve` and `hookguard demo`: the two commands that bind
//! listeners and run the proxy until SIGTERM or SIGINT, and the logging
//! they set up first.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use tokio::net::TcpListener;

use super::{print_errors, run_async, with_config, LogFormat};
use crate::config::{Config, ConfigErrors, ProcessEnv, QueueStoreKind};
use crate::queue::redis::OpenError;
use crate::reload::{self, ReloadSource};
use crate::server;

/// Runs the proxy with the config at `path` until SIGTERM or SIGINT,
/// re-reading that file on reloads.
pub fn run(path: &Path, format: LogFormat) -> ExitCode {
    let _log = init_logging(format);
    with_config(path, |config| {
        // Right after the load: a file changed from here on is reloaded.
        let loaded = reload::fingerprint(path, config.watched_files());
        run_async(async { finished(serve(config, path, loaded).await) })
    })
}

/// Runs the embedded example config with demo secrets and the demo
/// upstream until SIGTERM or SIGINT.
pub fn demo(format: LogFormat) -> ExitCode {
    let _log = init_logging(format);
    run_async(async { finished(demo_with_upstream().await) })
}

/// A run that stopped on a signal exits 0; one that could not start has
/// already said why and exits with its code.
fn finished(outcome: Result<(), ExitCode>) -> ExitCode {
    outcome.err().unwrap_or(ExitCode::SUCCESS)
}

/// Binds `addr`; on failure says which one (`what`) and why.
async fn bind(what: &str, addr: SocketAddr) -> Result<TcpListener, ExitCode> {
    TcpListener::bind(addr).await.map_err(|error| {
        eprintln!("cannot bind {what} {addr}: {error}");
        ExitCode::FAILURE
    })
}

async fn serve(config: Config, path: &Path, loaded: [u8; 32]) -> Result<(), ExitCode> {
    check_queue_store(&config).await?;
    let listener = bind("server.listen", config.server.listen).await?;
    let admin = bind("server.admin_listen", config.server.admin_listen).await?;
    let egress = bind_egress(&config).await?;
    let source = ReloadSource {
        path: path.to_owned(),
        env: Arc::new(ProcessEnv),
        loaded: Some(loaded),
    };
    server::run_with_reload(
        config,
        source,
        listener,
        admin,
        egress,
        server::shutdown_signal(),
    )
    .await;
    Ok(())
}

/// Refuses to start on a Redis queue that may lose what it acknowledges
/// (unless `accept_redis_risk`). A Redis that does not answer is no reason
/// not to start: the server keeps trying, unready, and checks once it
/// answers.
async fn check_queue_store(config: &Config) -> Result<(), ExitCode> {
    let Some(QueueStoreKind::Redis(redis)) = config.queue.as_ref().map(|q| &q.store) else {
        return Ok(());
    };
    match crate::queue::redis::check(redis).await {
        Err(OpenError::Unsafe(why)) => {
            tracing::error!(error = %why, "hookguard cannot start");
            eprintln!("cannot start: {why}");
            Err(ExitCode::FAILURE)
        }
        Err(OpenError::Unreachable(_)) | Ok(_) => Ok(()),
    }
}

/// Binds `egress.listen` when the config has `[egress]`.
async fn bind_egress(config: &Config) -> Result<Option<TcpListener>, ExitCode> {
    match &config.egress {
        Some(egress) => bind("egress.listen", egress.listen).await.map(Some),
        None => Ok(None),
    }
}

async fn demo_with_upstream() -> Result<(), ExitCode> {
    let config = crate::demo::config().map_err(|errors| {
        print_errors(&ConfigErrors(errors));
        ExitCode::FAILURE
    })?;
    let upstream_addr: SocketAddr =
        config
            .server
            .upstream
            .authority
            .as_str()
            .parse()
            .map_err(|_| {
                eprintln!("the example upstream is not an IP:PORT");
                ExitCode::FAILURE
            })?;
    let upstream = bind("the demo upstream on", upstream_addr).await?;
    let listener = bind("server.listen", config.server.listen).await?;
    let admin = bind("server.admin_listen", config.server.admin_listen).await?;
    let egress = bind_egress(&config).await?;
    eprint!(
        "{}",
        crate::demo::banner(
            config.server.listen,
            config.server.admin_listen,
            upstream_addr
        )
    );
    let upstream_task = tokio::spawn(crate::demo::upstream(upstream));
    server::run(config, listener, admin, egress, server::shutdown_signal()).await;
    upstream_task.abort();
    Ok(())
}

/// Logs to stderr in `format` (see [`crate::logging`]); the guard writes
/// out queued lines when the command returns.
fn init_logging(format: LogFormat) -> crate::logging::Guard {
    crate::logging::init(match format {
        LogFormat::Json => crate::logging::Format::Json,
        LogFormat::Text => crate::logging::Format::Text,
    })
}
