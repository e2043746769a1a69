//! `hookguard replay forget`: asks a running hookguard, through its admin
//! listener (`server.admin_listen` of the config), to forget one dedupe
//! key (`POST /replay/forget`), so that an event the app acknowledged but
//! failed to process is accepted again. The server resolves the route and
//! the source against its live config and says what was wrong; this tool
//! only carries the request and the answer.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;

use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use http_body_util::Full;
use serde_json::{json, Value};

use super::{exchange, exit_code, output, run_async, with_config};
use crate::admin::FORGET_PATH;

/// What to forget.
#[derive(Debug, Clone)]
pub struct ForgetOptions {
    /// Route name.
    pub route: String,
    /// One of the route's dedupe sources, as written in the config.
    pub source: String,
    /// The source's value; several for a `json:(/a,/b)` source, one per
    /// pointer.
    pub values: Vec<String>,
}

/// Loads the config at `path` for its admin address and sends the forget
/// request. Prints `removed N`; exits 0 when a key was removed, 1 when none
/// was (not remembered, or in flight) or the admin listener could not
/// answer, 2 when the config or the request was refused.
pub fn forget(path: &Path, options: ForgetOptions) -> ExitCode {
    with_config(path, |config| {
        let mut admin = config.server.admin_listen;
        if admin.ip().is_unspecified() {
            admin.set_ip([127, 0, 0, 1].into());
        }
        let value = match options.values.as_slice() {
            [one] => json!(one),
            many => json!(many),
        };
        let body = json!({ "route": options.route, "source": options.source, "value": value });
        run_async(async move {
            match post(admin, body).await {
                Ok((StatusCode::OK, answer)) => match answer["removed"].as_u64() {
                    Some(removed) => {
                        output(&format!("removed {removed}\n"));
                        exit_code(removed > 0)
                    }
                    None => {
                        eprintln!("hookguard replay forget: the admin listener answered {answer}");
                        ExitCode::FAILURE
                    }
                },
                Ok((status, answer)) if status.is_client_error() => {
                    let field = answer["field"].as_str().unwrap_or("request");
                    let error = answer["error"].as_str().unwrap_or("refused");
                    eprintln!("hookguard replay forget: {field}: {error}");
                    ExitCode::from(2)
                }
                Ok((status, answer)) => {
                    let error = answer["error"].as_str().unwrap_or("no reason given");
                    eprintln!(
                        "hookguard replay forget: the admin listener answered {status}: {error}"
                    );
                    ExitCode::FAILURE
                }
                Err(message) => {
                    eprintln!("hookguard replay forget: {message}");
                    ExitCode::FAILURE
                }
            }
        })
    })
}

/// POSTs `body` to the forget endpoint at `admin`; the status and the
/// answer as JSON (`null` when it is not JSON).
async fn post(admin: SocketAddr, body: Value) -> Result<(StatusCode, Value), String> {
    let request = Request::builder()
        .method(Method::POST)
        .uri(format!("http://{admin}{FORGET_PATH}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .map_err(|e| format!("cannot build the request: {e}"))?;
    let (head, answer) = exchange(request).await?;
    Ok((
        head.status,
        serde_json::from_slice(&answer).unwrap_or(Value::Null),
    ))
}
