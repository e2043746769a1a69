//! Forwarding a buffered request to the upstream app.
//!
//! The request is rebuilt from the parts received: the exact body bytes,
//! headers minus hop-by-hop ones and minus anything a sender could use to
//! impersonate hookguard, plus `X-Forwarded-*` and, for verified requests
//! only, the verified header. It is sent on a pooled keep-alive client.
//!
//! Sending runs in its own task together with completing or releasing the
//! replay claim: if the sender hangs up mid-way, the upstream exchange still
//! finishes and the claim still ends in the right state.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, Version};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::config::Server;
use crate::reject::{Reason, Reject};
use crate::replay::{Claim, ReplayStore};

/// The pooled client to the upstream.
pub type UpstreamClient = Client<HttpConnector, Full<Bytes>>;

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1),
/// plus `Expect`, which hookguard has already answered by buffering.
static HOP_BY_HOP: [HeaderName; 10] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::EXPECT,
];

/// Headers starting with this are hookguard's to set; incoming ones are
/// dropped so that a sender cannot pose as hookguard to the app.
const OWN_PREFIX: &str = "x-hookguard-";

/// Builds the client once; connections are reused across requests.
pub fn client() -> UpstreamClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(5)));
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .build(connector)
}

/// Rebuilds the request for the upstream.
pub fn build(
    server: &Server,
    mut parts: http::request::Parts,
    body: Bytes,
    peer: SocketAddr,
    verified: Option<&HeaderValue>,
) -> Result<Request<Full<Bytes>>, Reject> {
    let path = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let uri = server.upstream.uri_for(path).map_err(|_| {
        Reject::new(
            Reason::UpstreamUnavailable,
            "the request path cannot be forwarded",
        )
    })?;
    let headers = &mut parts.headers;
    strip_hop_by_hop(headers);
    headers.remove(&server.verified_header);
    let own: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with(OWN_PREFIX))
        .cloned()
        .collect();
    for name in own {
        headers.remove(name);
    }
    append_forwarded_for(headers, peer);
    if !headers.contains_key("x-forwarded-proto") {
        headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
    }
    if !headers.contains_key("x-forwarded-host") {
        if let Some(host) = headers.get(header::HOST).cloned() {
            headers.insert("x-forwarded-host", host);
        }
    }
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    if let Some(value) = verified {
        headers.insert(server.verified_header.clone(), value.clone());
    }
    parts.uri = uri;
    parts.version = Version::HTTP_11;
    Ok(Request::from_parts(parts, Full::new(body)))
}

/// Header telling the app, in shadow mode, which check a forwarded request
/// failed.
pub const SHADOW_HEADER: &str = "x-hookguard-shadow";

/// Marks a request forwarded in shadow mode despite failing `reason`.
pub fn mark_shadow(request: &mut Request<Full<Bytes>>, reason: Reason) {
    request
        .headers_mut()
        .insert(SHADOW_HEADER, HeaderValue::from_static(reason.as_str()));
}

/// Removes hop-by-hop headers, including any named in `Connection`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
}

fn append_forwarded_for(headers: &mut HeaderMap, peer: SocketAddr) {
    let ip = peer.ip().to_string();
    let value = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(existing) => format!("{existing}, {ip}"),
        None => ip,
    };
    if let Ok(value) = HeaderValue::from_str(&value) {
        headers.insert("x-forwarded-for", value);
    }
}

/// Sends the request and settles the claim: completed when the upstream
/// answered below 500, released otherwise (so that a retry is delivered).
pub async fn send(
    client: &UpstreamClient,
    store: &Arc<dyn ReplayStore>,
    timeout: Duration,
    request: Request<Full<Bytes>>,
    claim: Option<Claim>,
) -> Result<Response<Incoming>, Reject> {
    let client = client.clone();
    let store = store.clone();
    let exchange = tokio::spawn(async move {
        let result = tokio::time::timeout(timeout, client.request(request)).await;
        if let Some(claim) = claim {
            let delivered =
                matches!(&result, Ok(Ok(response)) if !response.status().is_server_error());
            let settled = if delivered {
                store.complete(&claim).await
            } else {
                store.release(&claim).await
            };
            if let Err(error) = settled {
                tracing::warn!(error = %error.0, "replay store could not settle a claim");
            }
        }
        result
    });
    match exchange.await {
        Ok(Ok(Ok(response))) => Ok(response),
        Ok(Ok(Err(error))) => Err(Reject::with(
            Reason::UpstreamUnavailable,
            if error.is_connect() {
                "the app behind hookguard refused the connection".to_owned()
            } else {
                "the connection to the app failed before it answered".to_owned()
            },
        )),
        Ok(Err(_elapsed)) => Err(Reject::with(
            Reason::UpstreamTimeout,
            format!("the app did not answer within {} ms", timeout.as_millis()),
        )),
        Err(_join) => Err(Reject::new(
            Reason::UpstreamUnavailable,
            "forwarding was interrupted",
        )),
    }
}
