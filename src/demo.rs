//! `hookguard demo`: the example config, demo secrets and a demo upstream,
//! so that a new user can see real answers with nothing else installed.
//!
//! The demo upstream is clearly not an app: it answers every request with a
//! JSON echo of what reached it (method, path, the verified header, body
//! size), which is exactly what a user wants to see while trying hookguard.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{header, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::config::{Config, ConfigError};

/// The example configuration, embedded so the demo needs no files.
pub const EXAMPLE_CONFIG: &str = include_str!("../config.example.toml");

/// The secret the demo uses for an environment variable that is not set:
/// `CARTELCRM_CALLBACK_SECRET` becomes `demo-cartelcrm-callback-secret`.
pub fn demo_secret(variable: &str) -> String {
    format!("demo-{}", variable.to_ascii_lowercase().replace('_', "-"))
}

/// Loads the embedded example with demo secrets for unset variables, and
/// the public listener moved to loopback (a demo is not for the network).
pub fn config() -> Result<Config, Vec<ConfigError>> {
    let env = |name: &str| Some(std::env::var(name).unwrap_or_else(|_| demo_secret(name)));
    let mut config = Config::from_toml(EXAMPLE_CONFIG, &env).map_err(|e| e.0)?;
    config.server.listen.set_ip([127, 0, 0, 1].into());
    Ok(config)
}

/// Serves the demo upstream on `listener` until the task is dropped.
pub async fn upstream(listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service_fn(echo))
                .await;
        });
    }
}

async fn echo(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let bytes = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let verified_by = parts
        .headers
        .get("x-verified-by")
        .and_then(|v| v.to_str().ok());
    let answer = serde_json::json!({
        "demo_upstream": "this answer comes from hookguard's built-in demo app, not a real one",
        "method": parts.method.as_str(),
        "path": parts.uri.to_string(),
        "x_verified_by": verified_by,
        "body_bytes": bytes.len(),
    });
    eprintln!("demo upstream received: {answer}");
    let mut response = Response::new(Full::new(Bytes::from(answer.to_string())));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

/// Prints how to talk to the demo.
pub fn banner(listen: SocketAddr, admin: SocketAddr, upstream: SocketAddr) -> String {
    format!(
        "hookguard demo\n\
         - hookguard listens on http://{listen} with the routes of config.example.toml\n\
         - admin (healthz, readyz, metrics) on http://{admin}\n\
         - DEMO UPSTREAM (not a real app, it echoes what reached it) on http://{upstream}\n\
         - secrets: environment variables that are not set use demo values, e.g.\n  \
           CARTELCRM_CALLBACK_SECRET={}\n\
         Try the curl examples in README.md (\"Quick start\"). Ctrl-C stops.\n",
        demo_secret("CARTELCRM_CALLBACK_SECRET")
    )
}
