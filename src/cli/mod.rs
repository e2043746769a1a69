//! The command line: `serve`, `check`, `sign`, `verify`, `replay`,
//! `queue` and `demo`.
//!
//! This file holds the flags and sends each subcommand to the file that
//! does its work (mini-redis's `cmd/` shape); `main.rs` only calls
//! [`main`].
//!
//! - [`serve`]: `serve` and `demo`, the commands that bind listeners and
//!   run the proxy, and the logging they set up.
//! - [`check`]: validate a config and summarise it.
//! - [`sign`]: build a correctly signed test request for a route.
//! - [`verify`]: explain what hookguard would do with a captured request.
//! - [`replay`]: ask a running hookguard to forget a delivery's key.
//! - [`queue`]: list, show, redeliver, purge, pause and resume a running
//!   hookguard's durable deliveries.

pub mod check;
pub mod queue;
pub mod replay;
pub mod serve;
pub mod sign;
pub mod verify;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::{Config, ConfigErrors, ProcessEnv};

/// A webhook-verification sidecar: forwards only authentic, fresh,
/// first-time requests to the app behind it.
#[derive(Debug, Parser)]
#[command(name = "hookguard", version, about)]
pub struct Cli {
    /// Log line format [default: json; text for demo].
    #[arg(long, value_enum, global = true)]
    pub log_format: Option<LogFormat>,
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
        /// How many processes will run this config at once (the Helm
        /// chart passes its replica count): an embedded queue is refused
        /// with more than one.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
        replicas: u32,
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
        /// Body file, or - for stdin [default: a small JSON test event; none
        /// for a GET or HEAD route].
        #[arg(long)]
        body: Option<String>,
        /// Request path [default: the route's path].
        #[arg(long)]
        path: Option<String>,
        /// Send it to this base URL (e.g. http://127.0.0.1:8000) and print the
        /// answer: status line, headers (x-hookguard-reject marks
        /// hookguard's own answers) and body.
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
    /// Act on a running hookguard's replay store, through its admin listener.
    Replay {
        /// What to do.
        #[command(subcommand)]
        command: ReplayCommand,
    },
    /// Look at and act on a running hookguard's durable delivery queue,
    /// through its admin listener.
    Queue {
        /// Path to the TOML config (for server.admin_listen).
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
        /// Print the admin listener's JSON answer as it came.
        #[arg(long, global = true)]
        json: bool,
        /// What to do.
        #[command(subcommand)]
        command: QueueCommand,
    },
    /// Run the embedded example config with demo secrets and a demo upstream.
    Demo,
}

/// Which queue items a `queue` subcommand means.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct QueueFilter {
    /// Only this route's.
    #[arg(long)]
    pub route: Option<String>,
    /// Only items in this state: ready, waiting, in_flight, delivered, dead.
    #[arg(long)]
    pub state: Option<String>,
    /// Only items finished (or received, when not finished) longer ago
    /// than this, e.g. 7d.
    #[arg(long)]
    pub older_than: Option<String>,
}

/// The `queue` subcommands.
#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// List items, oldest first.
    Ls {
        /// Which items.
        #[command(flatten)]
        filter: QueueFilter,
        /// At most this many [default: 100].
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Show one item (credential-bearing header values redacted).
    Show {
        /// The delivery id.
        id: String,
        /// Print the body too.
        #[arg(long)]
        body: bool,
    },
    /// Make items ready again now (same id): the ids given, or every item
    /// in --state (of --route).
    Redeliver {
        /// Delivery ids.
        ids: Vec<String>,
        /// Which items, without ids (--state is then required).
        #[command(flatten)]
        filter: QueueFilter,
    },
    /// Delete items: the ids given, or every item in --state older than
    /// --older-than (of --route).
    Purge {
        /// Delivery ids.
        ids: Vec<String>,
        /// Which items, without ids (--state is then required).
        #[command(flatten)]
        filter: QueueFilter,
    },
    /// Stop delivering a route's items (they keep being accepted), until resumed.
    Pause {
        /// The durable route.
        route: String,
    },
    /// Deliver a paused route's items again.
    Resume {
        /// The durable route.
        route: String,
    },
    /// Items by route and state, bytes stored, paused routes.
    Stats,
}

/// The `replay` subcommands.
#[derive(Debug, Subcommand)]
pub enum ReplayCommand {
    /// Forget a delivery's dedupe key, so that its next copy is forwarded
    /// (an event the app acknowledged but failed to process). Forget each
    /// of the route's dedupe sources the copy will carry again.
    Forget {
        /// Path to the TOML config (for server.admin_listen).
        #[arg(long, short)]
        config: PathBuf,
        /// Route name.
        #[arg(long)]
        route: String,
        /// One of the route's dedupe sources, e.g. header:X-Delivery, json:/id, signature.
        #[arg(long)]
        source: String,
        /// The source's value (for signature, its hex digits); repeat it for
        /// json:(/a,/b), one per pointer.
        #[arg(long, required = true)]
        value: Vec<String>,
    },
}

/// Runs the command line; the exit code says whether it went well.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config, replicas } => check::run(&config, replicas),
        // JSON for log pipelines; the demo is for people at a terminal, so
        // text unless asked.
        Command::Serve { config } => serve::run(&config, cli.log_format.unwrap_or(LogFormat::Json)),
        Command::Demo => serve::demo(cli.log_format.unwrap_or(LogFormat::Text)),
        Command::Sign {
            config,
            route,
            body,
            path,
            send,
        } => sign::run(
            &config,
            sign::SignOptions {
                route,
                body,
                path,
                send,
            },
        ),
        Command::Verify {
            config,
            route,
            request,
            at,
        } => verify::run(&config, &route, &request, at),
        Command::Replay {
            command:
                ReplayCommand::Forget {
                    config,
                    route,
                    source,
                    value,
                },
        } => replay::forget(
            &config,
            replay::ForgetOptions {
                route,
                source,
                values: value,
            },
        ),
        Command::Queue {
            config,
            json,
            command,
        } => {
            let Some(config) = config else {
                eprintln!("hookguard queue: --config is required (for server.admin_listen)");
                return ExitCode::from(2);
            };
            queue::run(&config, queue_action(command), json)
        }
    }
}

/// What a `queue` subcommand asks of the admin listener.
fn queue_action(command: QueueCommand) -> queue::Action {
    match command {
        QueueCommand::Ls { filter, limit } => queue::Action::List { filter, limit },
        QueueCommand::Show { id, body } => queue::Action::Show { id, body },
        QueueCommand::Redeliver { ids, filter } => queue::Action::Redeliver { ids, filter },
        QueueCommand::Purge { ids, filter } => queue::Action::Purge { ids, filter },
        QueueCommand::Pause { route } => queue::Action::Pause {
            route,
            paused: true,
        },
        QueueCommand::Resume { route } => queue::Action::Pause {
            route,
            paused: false,
        },
        QueueCommand::Stats => queue::Action::Stats,
    }
}

/// Loads the config at `path` for a subcommand, or prints every error and
/// exits 2.
fn with_config(path: &Path, run: impl FnOnce(Config) -> ExitCode) -> ExitCode {
    match Config::load(path, &ProcessEnv) {
        Ok(config) => run(config),
        Err(errors) => {
            print_errors(&errors);
            ExitCode::from(2)
        }
    }
}

/// Writes a tool's report to stdout. A reader that went away (`hookguard
/// check | head -1`) is not an error worth a panic: what it wanted was
/// read, and the exit code still says how the check went.
fn output(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// 0 when the tool's answer is yes (accepted, would forward), 1 when no.
fn exit_code(yes: bool) -> ExitCode {
    if yes {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Prints every config error, one per line, under a count.
fn print_errors(errors: &ConfigErrors) {
    eprintln!("configuration has {} error(s):", errors.0.len());
    for error in &errors.0 {
        eprintln!("  {error}");
    }
}

/// The most of an answer the tools read: theirs are a status line, a few
/// headers and a short body.
const MAX_ANSWER_BYTES: usize = 1 << 20;

/// Sends `request` on a fresh plain-HTTP client (`sign --send`, `replay
/// forget`); the answer's head and its body, of at most
/// [`MAX_ANSWER_BYTES`].
async fn exchange(
    request: http::Request<http_body_util::Full<bytes::Bytes>>,
) -> Result<(http::response::Parts, bytes::Bytes), String> {
    use http_body_util::BodyExt;
    let target = request.uri().to_string();
    let client: hyper_util::client::legacy::Client<_, http_body_util::Full<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let response = client
        .request(request)
        .await
        .map_err(|e| format!("cannot send to {target}: {e}"))?;
    let (head, body) = response.into_parts();
    let body = http_body_util::Limited::new(body, MAX_ANSWER_BYTES)
        .collect()
        .await
        .map_err(|e| format!("the response body broke off: {e}"))?
        .to_bytes();
    Ok((head, body))
}

/// Runs an async subcommand on a fresh multi-threaded runtime; only the
/// commands that need one pay for starting it.
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
