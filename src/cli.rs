//! The command line: `serve`, `check` and `demo`.
//!
//! Parsing flags, setting up logging and calling into the library is all
//! that happens here; `main.rs` only calls [`main`].

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use tokio::net::TcpListener;

use crate::config::{Config, ConfigErrors, ProcessEnv};
use crate::{demo, server};

/// A webhook-verification sidecar: forwards only authentic, fresh,
/// first-time requests to the app behind it.
#[derive(Debug, Parser)]
#[command(name = "hookguard", version, about)]
pub struct Cli {
    /// Log line format.
    #[arg(long, value_enum, default_value_t = LogFormat::Json, global = true)]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line, for log pipelines.
    Json,
    /// Human-readable lines.
    Text,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the proxy with a config file.
    Serve {
        /// Path to the TOML config.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a config file (secrets included) without binding anything.
    Check {
        /// Path to the TOML config.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Run the embedded example config with demo secrets and a demo upstream.
    Demo,
}

/// Runs the command line; the exit code says whether it went well.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => check(&config),
        Command::Serve { config } => {
            init_logging(cli.log_format);
            match Config::load(&config, &ProcessEnv) {
                Ok(config) => run_async(serve(config)),
                Err(errors) => {
                    print_errors(&errors);
                    ExitCode::from(2)
                }
            }
        }
        Command::Demo => {
            // The demo is for people at a terminal; JSON only when asked.
            let format = if std::env::args().any(|a| a.starts_with("--log-format")) {
                cli.log_format
            } else {
                LogFormat::Text
            };
            init_logging(format);
            run_async(demo())
        }
    }
}

fn check(path: &std::path::Path) -> ExitCode {
    match Config::load(path, &ProcessEnv) {
        Ok(config) => {
            println!("{}: OK, {} route(s)", path.display(), config.routes.len());
            print!("{}", config.summary());
            ExitCode::SUCCESS
        }
        Err(errors) => {
            print_errors(&errors);
            ExitCode::from(2)
        }
    }
}

fn print_errors(errors: &ConfigErrors) {
    eprintln!("configuration has {} error(s):", errors.0.len());
    for error in &errors.0 {
        eprintln!("  {error}");
    }
}

fn run_async(future: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(future),
        Err(error) => {
            eprintln!("cannot start the runtime: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn bind(what: &str, addr: std::net::SocketAddr) -> Result<TcpListener, ExitCode> {
    TcpListener::bind(addr).await.map_err(|error| {
        eprintln!("cannot bind {what} {addr}: {error}");
        ExitCode::FAILURE
    })
}

async fn serve(config: Config) -> ExitCode {
    let listener = match bind("server.listen", config.server.listen).await {
        Ok(l) => l,
        Err(code) => return code,
    };
    let admin = match bind("server.admin_listen", config.server.admin_listen).await {
        Ok(l) => l,
        Err(code) => return code,
    };
    server::run(config, listener, admin, server::shutdown_signal()).await;
    ExitCode::SUCCESS
}

async fn demo() -> ExitCode {
    let config = match demo::config() {
        Ok(config) => config,
        Err(errors) => {
            print_errors(&ConfigErrors(errors));
            return ExitCode::FAILURE;
        }
    };
    let upstream_addr = match config.server.upstream.authority.as_str().parse() {
        Ok(addr) => addr,
        Err(_) => {
            eprintln!("the example upstream is not an IP:PORT");
            return ExitCode::FAILURE;
        }
    };
    let upstream = match bind("the demo upstream on", upstream_addr).await {
        Ok(l) => l,
        Err(code) => return code,
    };
    let listener = match bind("server.listen", config.server.listen).await {
        Ok(l) => l,
        Err(code) => return code,
    };
    let admin = match bind("server.admin_listen", config.server.admin_listen).await {
        Ok(l) => l,
        Err(code) => return code,
    };
    eprint!(
        "{}",
        demo::banner(
            config.server.listen,
            config.server.admin_listen,
            upstream_addr
        )
    );
    let upstream_task = tokio::spawn(demo::upstream(upstream));
    server::run(config, listener, admin, server::shutdown_signal()).await;
    upstream_task.abort();
    ExitCode::SUCCESS
}

/// JSON lines by default; `RUST_LOG` filters (default `info`).
fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
