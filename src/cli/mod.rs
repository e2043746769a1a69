//! The command line: `serve`, `check`, `sign`, `verify` and `demo`.
//!
//! Parsing flags, setting up logging and calling into the library is all
//! that happens here; `main.rs` only calls [`main`].
//!
//! - [`sign`]: build a correctly signed test request for a route.
//! - [`verify`]: explain what hookguard would do with a captured request.

pub mod sign;
pub mod verify;

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
    /// Build a correctly signed request for a route (a test event), print it
    /// as headers and a curl command, or send it.
    Sign {
        /// Path to the TOML config.
        #[arg(long, short)]
        config: PathBuf,
        /// Route name.
        #[arg(long)]
        route: String,
        /// Body file, or - for stdin [default: a small JSON test event].
        #[arg(long)]
        body: Option<String>,
        /// Request path [default: the route's path].
        #[arg(long)]
        path: Option<String>,
        /// Send it to this base URL (e.g. http://127.0.0.1:8000) and print the answer.
        #[arg(long)]
        send: Option<String>,
    },
    /// Explain step by step what hookguard would do with a captured raw HTTP request.
    Verify {
        /// Path to the TOML config.
        #[arg(long, short)]
        config: PathBuf,
        /// Route name.
        #[arg(long)]
        route: String,
        /// File holding the raw request (request line, headers, blank line, body).
        #[arg(long)]
        request: PathBuf,
        /// Judge timestamps as of this Unix time [default: now].
        #[arg(long)]
        at: Option<i64>,
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
                Ok(loaded) => run_async(serve(loaded, config)),
                Err(errors) => {
                    print_errors(&errors);
                    ExitCode::from(2)
                }
            }
        }
        Command::Sign {
            config,
            route,
            body,
            path,
            send,
        } => with_config(&config, |config| {
            run_sign(
                config,
                sign::SignOptions {
                    route,
                    body,
                    path,
                    send,
                },
            )
        }),
        Command::Verify {
            config,
            route,
            request,
            at,
        } => with_config(&config, |config| run_verify(config, &route, &request, at)),
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

/// Loads the config for a tool command, or reports why it cannot.
fn with_config(path: &std::path::Path, run: impl FnOnce(&Config) -> ExitCode) -> ExitCode {
    match Config::load(path, &ProcessEnv) {
        Ok(config) => run(&config),
        Err(errors) => {
            print_errors(&errors);
            ExitCode::from(2)
        }
    }
}

fn run_sign(config: &Config, options: sign::SignOptions) -> ExitCode {
    let prepared = sign::find_route(config, &options.route).and_then(|route| {
        let body = sign::read_body(options.body.as_deref())?;
        sign::sign(
            route,
            body,
            options.path.as_deref(),
            sign::unix_now(),
            &sign::fresh_id(),
        )
    });
    let signed = match prepared {
        Ok(signed) => signed,
        Err(message) => {
            eprintln!("hookguard sign: {message}");
            return ExitCode::from(2);
        }
    };
    match &options.send {
        None => {
            let mut listen = config.server.listen;
            if listen.ip().is_unspecified() {
                listen.set_ip([127, 0, 0, 1].into());
            }
            print!(
                "{}",
                sign::render(
                    &signed,
                    &format!("http://{listen}"),
                    options.body.as_deref()
                )
            );
            ExitCode::SUCCESS
        }
        Some(url) => run_async(async {
            match sign::send(&signed, url).await {
                Ok((text, success)) => {
                    print!("{text}");
                    exit_code(success)
                }
                Err(message) => {
                    eprintln!("hookguard sign: {message}");
                    ExitCode::FAILURE
                }
            }
        }),
    }
}

fn run_verify(
    config: &Config,
    route: &str,
    request: &std::path::Path,
    at: Option<i64>,
) -> ExitCode {
    let prepared = sign::find_route(config, route).and_then(|route| {
        let raw = std::fs::read(request)
            .map_err(|e| format!("cannot read {}: {e}", request.display()))?;
        let captured = verify::parse(&raw).map_err(|e| format!("{}: {e}", request.display()))?;
        Ok(verify::explain(
            route,
            &captured,
            at.unwrap_or_else(sign::unix_now),
        ))
    });
    match prepared {
        Ok((report, forwarded)) => {
            print!("{report}");
            exit_code(forwarded)
        }
        Err(message) => {
            eprintln!("hookguard verify: {message}");
            ExitCode::from(2)
        }
    }
}

/// 0 when the tool's answer is yes (accepted, would forward), 1 when no.
fn exit_code(yes: bool) -> ExitCode {
    if yes {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
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

async fn serve(config: Config, path: PathBuf) -> ExitCode {
    let listener = match bind("server.listen", config.server.listen).await {
        Ok(l) => l,
        Err(code) => return code,
    };
    let admin = match bind("server.admin_listen", config.server.admin_listen).await {
        Ok(l) => l,
        Err(code) => return code,
    };
    let source = crate::reload::ReloadSource {
        path,
        env: std::sync::Arc::new(ProcessEnv),
    };
    server::run_with_reload(config, source, listener, admin, server::shutdown_signal()).await;
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
