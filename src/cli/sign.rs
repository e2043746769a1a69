//! `hookguard sign`: the "send a test event" button providers have and
//! receivers lack. Builds a request signed exactly as the route's sender
//! would sign it, with the route's first secret, a fresh timestamp and id,
//! and a fresh value in every header the route dedupes on or signs, so that
//! each test event is a new delivery to hookguard and to the app.

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use http::{Method, Request, Uri};
use http_body_util::Full;

use super::{exchange, exit_code, output, run_async, with_config};
use crate::config::{Config, PathPattern, Route};
use crate::dedupe::DedupeSource;
use crate::proxy;
use crate::routes;
use crate::schemes::Unsigned;

/// Options of `hookguard sign`.
#[derive(Debug, Clone)]
pub struct SignOptions {
    /// Route name.
    pub route: String,
    /// Body file, `-` for stdin; when absent, a small JSON test event, or
    /// no body for a route whose first method is GET or HEAD.
    pub body: Option<String>,
    /// Path to sign and send; the route's path when absent.
    pub path: Option<String>,
    /// Base URL to send to; print only when absent.
    pub send: Option<String>,
}

/// A signed request ready to print or send.
#[derive(Debug)]
pub struct Signed {
    /// Method to use.
    pub method: Method,
    /// Path and query.
    pub path: String,
    /// Headers including the signature.
    pub headers: HeaderMap,
    /// The body (rewritten by schemes that sign inside it).
    pub body: Bytes,
}

/// Loads the config at `path`, signs a request for the chosen route, and
/// prints it (headers and a curl command) or sends it. Exits 2 when it
/// cannot sign; when sending, 0 for a success status and 1 otherwise.
pub fn run(path: &Path, options: SignOptions) -> ExitCode {
    with_config(path, |config| {
        let prepared = find_route(&config, &options.route).and_then(|route| {
            let body = read_body(options.body.as_deref())?;
            sign(
                route,
                body,
                options.path.as_deref(),
                proxy::unix_now(),
                &fresh_id(),
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
                output(&render(
                    &signed,
                    &format!("http://{listen}"),
                    options.body.as_deref(),
                ));
                ExitCode::SUCCESS
            }
            Some(url) => run_async(async {
                match send(&signed, url).await {
                    Ok((text, success)) => {
                        output(&text);
                        exit_code(success)
                    }
                    Err(message) => {
                        eprintln!("hookguard sign: {message}");
                        ExitCode::FAILURE
                    }
                }
            }),
        }
    })
}

/// Finds a route by name; the error lists the names there are.
pub fn find_route<'c>(config: &'c Config, name: &str) -> Result<&'c Route, String> {
    routes::by_name(&config.routes, name)
}

/// Signs a request for `route` at time `now` with delivery id `id`.
pub fn sign(
    route: &Route,
    body: Option<Bytes>,
    path: Option<&str>,
    now: i64,
    id: &str,
) -> Result<Signed, String> {
    let method = route.methods[0].clone();
    let bodiless = method == Method::GET || method == Method::HEAD;
    let body = body.unwrap_or_else(|| {
        if bodiless {
            return Bytes::new();
        }
        Bytes::from(
            serde_json::json!({
                "id": id,
                "type": "hookguard.test",
                "created": now,
            })
            .to_string(),
        )
    });
    let path = match (path, &route.path) {
        (Some(path), _) => path.to_owned(),
        (None, PathPattern::Exact(p)) => p.clone(),
        (None, PathPattern::Prefix(p)) => format!("{p}test"),
    };
    if !route
        .path
        .matches(path.split('?').next().unwrap_or_default())
    {
        return Err(format!(
            "path {path:?} is not served by route {:?} ({})",
            route.name, route.path
        ));
    }
    let uri: Uri = path
        .parse()
        .map_err(|_| format!("{path:?} is not a valid request path"))?;
    let mut headers = HeaderMap::new();
    if serde_json::from_slice::<serde_json::Value>(&body).is_ok() {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    // The same fresh id in each: a receiver deduping on any of them sees
    // a new delivery, never `undefined`.
    let fresh = HeaderValue::from_str(id).map_err(|_| format!("{id:?} is not a header value"))?;
    let dedupe_headers = route.dedupe.iter().filter_map(|source| match source {
        DedupeSource::Header(name) => Some(name.clone()),
        _ => None,
    });
    for name in dedupe_headers.chain(route.scheme.signed_headers()) {
        if !headers.contains_key(&name) {
            headers.insert(name, fresh.clone());
        }
    }
    let mut unsigned = Unsigned {
        method,
        uri,
        headers,
        body,
        now,
        id: id.to_owned(),
    };
    route.scheme.sign(0, &mut unsigned)?;
    Ok(Signed {
        method: unsigned.method,
        path,
        headers: unsigned.headers,
        body: unsigned.body,
    })
}

/// Reads the body option: a file, `-` for stdin.
pub fn read_body(option: Option<&str>) -> Result<Option<Bytes>, String> {
    match option {
        None => Ok(None),
        Some("-") => {
            let mut buffer = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buffer)
                .map_err(|e| format!("cannot read the body from stdin: {e}"))?;
            Ok(Some(Bytes::from(buffer)))
        }
        Some(file) => std::fs::read(Path::new(file))
            .map(|b| Some(Bytes::from(b)))
            .map_err(|e| format!("cannot read body file {file}: {e}")),
    }
}

/// Quotes text for a POSIX shell.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// `Name: value` lines and a ready `curl` command.
pub fn render(signed: &Signed, base_url: &str, body_file: Option<&str>) -> String {
    let mut out = String::new();
    let mut curl = format!(
        "curl -i -X {} {}",
        signed.method,
        shell_quote(&format!(
            "{}{}",
            base_url.trim_end_matches('/'),
            signed.path
        ))
    );
    for (name, value) in &signed.headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        out.push_str(&format!("{name}: {value}\n"));
        curl.push_str(&format!(
            " \\\n  -H {}",
            shell_quote(&format!("{name}: {value}"))
        ));
    }
    match (body_file, std::str::from_utf8(&signed.body)) {
        (Some(file), _) if file != "-" => {
            curl.push_str(&format!(" \\\n  --data-binary @{}", shell_quote(file)))
        }
        (_, Ok(text)) if !signed.body.is_empty() => {
            curl.push_str(&format!(" \\\n  --data-binary {}", shell_quote(text)))
        }
        _ => {}
    }
    out.push('\n');
    out.push_str(&curl);
    out.push('\n');
    out
}

/// Sends the signed request to `base_url` + path; returns the answer as
/// text (status line, every header, a blank line, the body), so that
/// hookguard's own answer (`x-hookguard-reject`) can be told from the
/// app's, and whether the status was a success.
pub async fn send(signed: &Signed, base_url: &str) -> Result<(String, bool), String> {
    let target = format!("{}{}", base_url.trim_end_matches('/'), signed.path);
    let uri: Uri = target
        .parse()
        .map_err(|_| format!("{target:?} is not a valid URL"))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!("{target:?}: only http:// URLs can be sent to"));
    }
    let mut request = Request::builder()
        .method(signed.method.clone())
        .uri(uri)
        .body(Full::new(signed.body.clone()))
        .map_err(|e| format!("cannot build the request: {e}"))?;
    *request.headers_mut() = signed.headers.clone();
    let (head, body) = exchange(request).await?;
    let status = head.status;
    let mut text = format!("HTTP/1.1 {status}\n");
    for (name, value) in &head.headers {
        text.push_str(&format!(
            "{name}: {}\n",
            String::from_utf8_lossy(value.as_bytes())
        ));
    }
    text.push('\n');
    text.push_str(&String::from_utf8_lossy(&body));
    text.push('\n');
    Ok((text, status.is_success()))
}

/// A fresh delivery id for a test event.
pub fn fresh_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("hg_test_{nanos:x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quoting_survives_single_quotes() {
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
    }
}
