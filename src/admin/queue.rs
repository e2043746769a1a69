//! The queue's operator endpoints on the admin listener, all JSON:
//!
//! - `GET /queue?route=&state=&older_than=&limit=`: items, oldest first
//!   (`older_than` is a duration: finished, or received when not
//!   finished, longer ago than that; `limit` defaults to 100, at most
//!   10 000). Bodies are not listed.
//! - `GET /queue/stats`: items by route and state, bytes, paused routes,
//!   items recovered at start.
//! - `GET /queue/{id}` (`?body=1` adds the body): one item. Header values
//!   are shown only for headers that carry no credential (see
//!   [`SHOWN_HEADERS`]); the rest are `<redacted>`, so that no signature
//!   is ever printed.
//! - `POST /queue/{id}/redeliver`, `POST /queue/redeliver` with
//!   `{"ids": [...]}` or `{"route": R, "state": "dead"}`: items made ready
//!   now (same id, counters kept).
//! - `DELETE /queue/{id}`, `POST /queue/purge` with `{"ids": [...]}` or
//!   `{"state": S, "older_than": "7d", "route": R}`: items deleted.
//! - `POST /queue/pause/{route}`, `POST /queue/resume/{route}`: an
//!   operator's pause, kept across restarts.
//!
//! A bulk action touches at most [`MAX_BULK`] items per request (the
//! answer's count says how many; repeat for more). Every action is logged
//! with what it touched.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::{json, Map, Value};

use super::{json_answer, refused};
use crate::config::units::parse_duration;
use crate::proxy::State;
use crate::queue::{self, Filter, Id, Item, ItemState, QueueStore};

/// The path prefix of every queue endpoint.
pub const QUEUE_PATH: &str = "/queue";

/// Most items one listing or bulk action touches.
pub const MAX_BULK: usize = 10_000;

/// Items listed unless `limit` says otherwise.
const DEFAULT_LIMIT: usize = 100;

/// Largest request body read (a list of ids).
const MAX_BODY: usize = 1 << 20;

/// Headers whose values `GET /queue/{id}` shows; every other value is
/// redacted (signatures, tokens, and any header a scheme reads).
pub const SHOWN_HEADERS: &[&str] = &[
    "host",
    "content-type",
    "content-length",
    "user-agent",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-request-id",
];

/// Answers a request under [`QUEUE_PATH`].
pub async fn serve(request: Request<Incoming>, state: &State) -> Response<Full<Bytes>> {
    let Some(store) = state.queue.get().cloned() else {
        return json_answer(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({ "error": "no delivery queue is open: the config has no [queue], or it is still opening" }),
        );
    };
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or_default().to_owned();
    let rest: Vec<&str> = path
        .trim_start_matches(QUEUE_PATH)
        .split('/')
        .filter(|part| !part.is_empty())
        .collect();
    let body = if method == Method::POST {
        match Limited::new(request.into_body(), MAX_BODY).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(_) => {
                return refused(
                    StatusCode::BAD_REQUEST,
                    "body",
                    "the body is too large or broke off",
                )
            }
        }
    } else {
        Bytes::new()
    };
    route(state, &*store, &method, &rest, &query, &body)
        .await
        .unwrap_or_else(|refusal| *refusal)
}

/// Dispatches on the method and the path after [`QUEUE_PATH`].
async fn route(
    state: &State,
    store: &dyn QueueStore,
    method: &Method,
    rest: &[&str],
    query: &str,
    body: &[u8],
) -> Answer {
    match (method, rest) {
        (&Method::GET, []) => list(store, query).await,
        (&Method::GET, ["stats"]) => Ok(stats(store)),
        (&Method::GET, [id]) => show(state, store, id, query).await,
        (&Method::POST, [id, "redeliver"]) => redeliver(store, &[parse_id(id)?]).await,
        (&Method::POST, ["redeliver"]) => {
            let ids = selected(store, body, false).await?;
            redeliver(store, &ids).await
        }
        (&Method::DELETE, [id]) => purge(store, &[parse_id(id)?]).await,
        (&Method::POST, ["purge"]) => {
            let ids = selected(store, body, true).await?;
            purge(store, &ids).await
        }
        (&Method::POST, [action @ ("pause" | "resume"), route]) => {
            pause(state, store, route, *action == "pause").await
        }
        _ => Err(no(
            StatusCode::NOT_FOUND,
            "path",
            "not a queue endpoint: GET /queue, /queue/stats, /queue/{id}; POST /queue/{id}/redeliver, /queue/redeliver, /queue/purge, /queue/pause/{route}, /queue/resume/{route}; DELETE /queue/{id}",
        )),
    }
}

type Answer = Result<Response<Full<Bytes>>, Refusal>;

/// An answer that ends a request early (boxed: a response is large).
type Refusal = Box<Response<Full<Bytes>>>;

/// A 4xx naming the field at fault, as a [`Refusal`].
fn no(status: StatusCode, field: &'static str, message: impl Into<String>) -> Refusal {
    Box::new(refused(status, field, message))
}

fn parse_id(text: &str) -> Result<Id, Refusal> {
    text.parse()
        .map_err(|message: String| no(StatusCode::BAD_REQUEST, "id", message))
}

fn unavailable(error: &queue::QueueError) -> Refusal {
    Box::new(json_answer(
        StatusCode::SERVICE_UNAVAILABLE,
        &json!({ "error": error.to_string() }),
    ))
}

/// The query's `key=value` pairs (values are not percent-decoded: route
/// names, states and durations need no escaping).
fn params(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .filter(|(key, _)| !key.is_empty())
}

/// A filter from `route`, `state`, `older_than` and `limit`, given as
/// query parameters or JSON fields.
fn filter(fields: &Map<String, Value>) -> Result<Filter, Refusal> {
    let text = |name: &'static str| -> Result<Option<&str>, Refusal> {
        match fields.get(name) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.as_str())),
            Some(_) => Err(no(
                StatusCode::BAD_REQUEST,
                name,
                format!("{name} must be a string"),
            )),
        }
    };
    let state = match text("state")? {
        Some(name) => Some(ItemState::parse(name).ok_or_else(|| {
            no(
                StatusCode::BAD_REQUEST,
                "state",
                format!("{name:?} is not one of ready, waiting, in_flight, delivered, dead"),
            )
        })?),
        None => None,
    };
    let before_ms = match text("older_than")? {
        Some(age) => {
            let age: Duration = parse_duration(age)
                .map_err(|message| no(StatusCode::BAD_REQUEST, "older_than", message))?;
            Some(queue::now_ms().saturating_sub(age.as_millis() as u64))
        }
        None => None,
    };
    let limit = match fields.get("limit") {
        None => DEFAULT_LIMIT,
        Some(value) => value
            .as_u64()
            .or_else(|| value.as_str().and_then(|t| t.parse().ok()))
            .filter(|n| (1..=MAX_BULK as u64).contains(n))
            .ok_or_else(|| {
                no(
                    StatusCode::BAD_REQUEST,
                    "limit",
                    format!("limit must be a number from 1 to {MAX_BULK}"),
                )
            })? as usize,
    };
    Ok(Filter {
        route: text("route")?.map(str::to_owned),
        state,
        before_ms,
        limit,
    })
}

async fn list(store: &dyn QueueStore, query: &str) -> Answer {
    let fields: Map<String, Value> = params(query)
        .map(|(k, v)| (k.to_owned(), Value::String(v.to_owned())))
        .collect();
    let filter = filter(&fields)?;
    let items = store.list(&filter).await.map_err(|e| unavailable(&e))?;
    let items: Vec<Value> = items.iter().map(summary).collect();
    Ok(json_answer(StatusCode::OK, &json!({ "items": items })))
}

/// An item without its head and body.
fn summary(item: &Item) -> Value {
    json!({
        "id": item.id.to_string(),
        "route": item.route,
        "state": item.state.as_str(),
        "received_ms": item.received_ms,
        "next_ms": item.next_ms,
        "finished_ms": item.finished_ms,
        "tries": item.tries,
        "attempts": item.attempts,
        "last": item.last,
        "body_bytes": item.body.len(),
    })
}

fn stats(store: &dyn QueueStore) -> Response<Full<Bytes>> {
    let mut routes = Map::new();
    for ((route, state), n) in store.counts() {
        let entry = routes
            .entry(route.clone())
            .or_insert_with(|| json!({ "paused": store.paused(&route) }));
        entry[state.as_str()] = json!(n);
    }
    json_answer(
        StatusCode::OK,
        &json!({ "bytes": store.bytes(), "recovered": store.recovered(), "routes": routes }),
    )
}

async fn show(state: &State, store: &dyn QueueStore, id: &str, query: &str) -> Answer {
    let id = parse_id(id)?;
    let Some(item) = store.get(id).await.map_err(|e| unavailable(&e))? else {
        return Err(no(StatusCode::NOT_FOUND, "id", format!("no item {id}")));
    };
    let verified = state.live.load().config.server.verified_header.clone();
    let mut shown = summary(&item);
    let text = String::from_utf8_lossy(&item.head);
    let mut lines = text.split("\r\n").filter(|l| !l.is_empty());
    shown["request"] = json!(lines.next().unwrap_or_default());
    let headers: Vec<Value> = lines
        .filter_map(|line| line.split_once(": "))
        .map(|(name, value)| {
            let clear = SHOWN_HEADERS.contains(&name) || name == verified.as_str();
            json!([name, if clear { value } else { "<redacted>" }])
        })
        .collect();
    shown["headers"] = json!(headers);
    if params(query).any(|(k, v)| k == "body" && v != "0") {
        shown["body"] = match std::str::from_utf8(&item.body) {
            Ok(text) => json!(text),
            Err(_) => {
                json!({ "base64": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &item.body) })
            }
        };
        tracing::info!(id = %id, route = %item.route, "queue operator action: body shown");
    }
    Ok(json_answer(StatusCode::OK, &shown))
}

/// The ids a bulk action names: `{"ids": [...]}`, or a filter (`route`,
/// `state`, `older_than`), which must name a state when `purging`.
async fn selected(store: &dyn QueueStore, body: &[u8], purging: bool) -> Result<Vec<Id>, Refusal> {
    let document: Value = serde_json::from_slice(body).map_err(|e| {
        no(
            StatusCode::BAD_REQUEST,
            "body",
            format!("the body is not JSON: {e}"),
        )
    })?;
    let Some(fields) = document.as_object() else {
        return Err(no(
            StatusCode::BAD_REQUEST,
            "body",
            "the body is not a JSON object",
        ));
    };
    if let Some(ids) = fields.get("ids") {
        let ids = ids
            .as_array()
            .ok_or_else(|| no(StatusCode::BAD_REQUEST, "ids", "ids must be a list of ids"))?;
        return ids
            .iter()
            .take(MAX_BULK)
            .map(|id| parse_id(id.as_str().unwrap_or_default()))
            .collect();
    }
    let mut filter = filter(fields)?;
    if filter.state.is_none() {
        return Err(no(
            StatusCode::BAD_REQUEST,
            "state",
            if purging {
                "give ids, or a state (and older_than) to purge: purging every state at once is refused"
            } else {
                "give ids, or a state (and route) to redeliver"
            },
        ));
    }
    filter.limit = MAX_BULK;
    let items = store.list(&filter).await.map_err(|e| unavailable(&e))?;
    Ok(items.iter().map(|item| item.id).collect())
}

async fn redeliver(store: &dyn QueueStore, ids: &[Id]) -> Answer {
    let mut done = 0;
    for id in ids {
        if store
            .redeliver(*id, queue::now_ms())
            .await
            .map_err(|e| unavailable(&e))?
        {
            done += 1;
        }
    }
    tracing::info!(asked = ids.len(), redelivered = done, first = ?ids.first().map(ToString::to_string), "queue operator action: redeliver");
    Ok(json_answer(StatusCode::OK, &json!({ "redelivered": done })))
}

async fn purge(store: &dyn QueueStore, ids: &[Id]) -> Answer {
    let purged = store.purge(ids).await.map_err(|e| unavailable(&e))?;
    tracing::info!(asked = ids.len(), purged, first = ?ids.first().map(ToString::to_string), "queue operator action: purge");
    Ok(json_answer(StatusCode::OK, &json!({ "purged": purged })))
}

async fn pause(state: &State, store: &dyn QueueStore, route: &str, paused: bool) -> Answer {
    let live = state.live.load();
    let known = live
        .config
        .routes
        .iter()
        .any(|r| r.name == route && r.delivery.is_some());
    if !known {
        return Err(no(
            StatusCode::BAD_REQUEST,
            "route",
            format!("no durable route named {route:?}"),
        ));
    }
    store
        .set_paused(route, paused)
        .await
        .map_err(|e| unavailable(&e))?;
    state.wakers.wake(route);
    tracing::info!(
        route,
        paused,
        "queue operator action: {}",
        if paused { "pause" } else { "resume" }
    );
    Ok(json_answer(
        StatusCode::OK,
        &json!({ "route": route, "paused": paused }),
    ))
}
