//! `hookguard queue ...`: the durable queue's operator tools. Each talks to
//! a running hookguard's admin listener (`server.admin_listen` of the
//! config), whose `/queue` endpoints do the work and log it
//! ([`crate::admin::queue`]); this tool only carries the request and shows
//! the answer.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;

use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use http_body_util::Full;
use serde_json::{json, Value};

use super::{exchange, output, run_async, with_config, QueueFilter};
use crate::admin::queue::QUEUE_PATH;

/// One `queue` subcommand, as the command line gave it.
#[derive(Debug, Clone)]
pub enum Action {
    /// `ls`: list items.
    List {
        filter: QueueFilter,
        limit: Option<usize>,
    },
    /// `show ID`: one item, its body with `body`.
    Show { id: String, body: bool },
    /// `redeliver ID... | --route R --state S`.
    Redeliver {
        ids: Vec<String>,
        filter: QueueFilter,
    },
    /// `purge ID... | --state S --older-than D [--route R]`.
    Purge {
        ids: Vec<String>,
        filter: QueueFilter,
    },
    /// `pause R` / `resume R`.
    Pause { route: String, paused: bool },
    /// `stats`.
    Stats,
}

/// Runs `action` against the admin listener of the config at `path`;
/// `json` prints the answer as it came. Exits 0 when the listener
/// answered 200, 2 when it refused the request, 1 otherwise.
pub fn run(path: &Path, action: Action, json: bool) -> ExitCode {
    with_config(path, |config| {
        let mut admin = config.server.admin_listen;
        if admin.ip().is_unspecified() {
            admin.set_ip([127, 0, 0, 1].into());
        }
        run_async(async move {
            let (method, target, body) = request(&action);
            match call(admin, method, &target, body).await {
                Ok((StatusCode::OK, answer)) => {
                    output(&if json {
                        format!("{answer}\n")
                    } else {
                        human(&action, &answer)
                    });
                    ExitCode::SUCCESS
                }
                Ok((status, answer)) => {
                    let field = answer["field"].as_str().unwrap_or("request");
                    let error = answer["error"].as_str().unwrap_or("no reason given");
                    eprintln!("hookguard queue: {field}: {error} ({status})");
                    if status.is_client_error() {
                        ExitCode::from(2)
                    } else {
                        ExitCode::FAILURE
                    }
                }
                Err(message) => {
                    eprintln!("hookguard queue: {message}");
                    ExitCode::FAILURE
                }
            }
        })
    })
}

/// The admin request an action is.
fn request(action: &Action) -> (Method, String, Option<Value>) {
    let query = |pairs: &[(&'static str, Option<String>)]| {
        let set: Vec<String> = pairs
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
            .collect();
        if set.is_empty() {
            String::new()
        } else {
            format!("?{}", set.join("&"))
        }
    };
    // The ids given, else the filter's fields.
    let chosen = |ids: &[String], filter: &QueueFilter| {
        if !ids.is_empty() {
            return json!({ "ids": ids });
        }
        let mut fields = serde_json::Map::new();
        for (key, value) in fields_of(filter) {
            if let Some(value) = value {
                fields.insert(key.into(), json!(value));
            }
        }
        Value::Object(fields)
    };
    match action {
        Action::List { filter, limit } => {
            let mut pairs = fields_of(filter).to_vec();
            pairs.push(("limit", limit.map(|n| n.to_string())));
            (Method::GET, format!("{QUEUE_PATH}{}", query(&pairs)), None)
        }
        Action::Show { id, body } => (
            Method::GET,
            format!("{QUEUE_PATH}/{id}{}", if *body { "?body=1" } else { "" }),
            None,
        ),
        Action::Redeliver { ids, filter } => (
            Method::POST,
            format!("{QUEUE_PATH}/redeliver"),
            Some(chosen(ids, filter)),
        ),
        Action::Purge { ids, filter } => (
            Method::POST,
            format!("{QUEUE_PATH}/purge"),
            Some(chosen(ids, filter)),
        ),
        Action::Pause { route, paused } => (
            Method::POST,
            format!(
                "{QUEUE_PATH}/{}/{route}",
                if *paused { "pause" } else { "resume" }
            ),
            None,
        ),
        Action::Stats => (Method::GET, format!("{QUEUE_PATH}/stats"), None),
    }
}

/// A filter's fields by the names the admin listener reads.
fn fields_of(filter: &QueueFilter) -> [(&'static str, Option<String>); 3] {
    [
        ("route", filter.route.clone()),
        ("state", filter.state.clone()),
        ("older_than", filter.older_than.clone()),
    ]
}

/// Sends one admin request; the status and the answer as JSON (`null`
/// when it is not JSON).
async fn call(
    admin: SocketAddr,
    method: Method,
    target: &str,
    body: Option<Value>,
) -> Result<(StatusCode, Value), String> {
    let body = body.map_or_else(Bytes::new, |b| Bytes::from(b.to_string()));
    let request = Request::builder()
        .method(method)
        .uri(format!("http://{admin}{target}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(body))
        .map_err(|e| format!("cannot build the request: {e}"))?;
    let (head, answer) = exchange(request).await?;
    Ok((
        head.status,
        serde_json::from_slice(&answer).unwrap_or(Value::Null),
    ))
}

/// The answer as lines for a person.
fn human(action: &Action, answer: &Value) -> String {
    let now = crate::queue::now_ms();
    let age = |ms: &Value| {
        let ms = ms.as_u64().unwrap_or(now);
        format!("{}s", now.saturating_sub(ms) / 1000)
    };
    match action {
        Action::List { .. } => {
            let mut out = String::from("ID                               ROUTE            STATE      TRIES ATTEMPTS AGE      LAST\n");
            for item in answer["items"].as_array().into_iter().flatten() {
                out.push_str(&format!(
                    "{} {:<16} {:<10} {:>5} {:>8} {:<8} {}\n",
                    item["id"].as_str().unwrap_or_default(),
                    item["route"].as_str().unwrap_or_default(),
                    item["state"].as_str().unwrap_or_default(),
                    // As text: a JSON value's Display ignores the width.
                    item["tries"].to_string(),
                    item["attempts"].to_string(),
                    age(&item["received_ms"]),
                    item["last"].as_str().unwrap_or_default(),
                ));
            }
            out
        }
        Action::Show { .. } => {
            let mut out = String::new();
            for key in [
                "id", "route", "state", "tries", "attempts", "last", "request",
            ] {
                out.push_str(&format!("{key}: {}\n", plain(&answer[key])));
            }
            out.push_str(&format!("age: {}\n", age(&answer["received_ms"])));
            for pair in answer["headers"].as_array().into_iter().flatten() {
                out.push_str(&format!("  {}: {}\n", plain(&pair[0]), plain(&pair[1])));
            }
            if let Some(body) = answer.get("body") {
                out.push_str(&format!("\n{}\n", plain(body)));
            }
            out
        }
        Action::Redeliver { .. } => format!("redelivered {}\n", answer["redelivered"]),
        Action::Purge { .. } => format!("purged {}\n", answer["purged"]),
        Action::Pause { route, paused } => {
            format!("{route} {}\n", if *paused { "paused" } else { "resumed" })
        }
        Action::Stats => {
            let mut out = format!(
                "bytes {}\nrecovered at start {}\n",
                answer["bytes"], answer["recovered"]
            );
            if let Some(routes) = answer["routes"].as_object() {
                for (route, counts) in routes {
                    out.push_str(&format!("{route}: {counts}\n"));
                }
            }
            out
        }
    }
}

/// A JSON value shown without quotes when it is a string.
fn plain(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}
