//! `[egress]` and `[[egress.routes]]`: the second listener, where the app
//! sends its own calls to partners, and what hookguard does to each call
//! before it leaves (credentials, signature, idempotency key, retries).
//!
//! A route's `[egress.routes.sign]` is read with the same readers as a
//! verifying route's scheme (`[routes.hmac]`'s keys, or a preset name, and
//! `secrets`), built by the same registry, and then tried once at load:
//! a request it signs must pass its own verifier, or the route is refused.
//! Verify and sign cannot drift apart for a route that loads.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, AUTHORIZATION};
use http::{HeaderMap, Method, Uri};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::reader::{as_section, ConfigErrors, Section};
use super::route::is_label_safe;
use super::scheme::{parse_hmac, parse_secrets};
use super::secrets::{read_source, SourceReader};
use super::StatusSet;
use crate::schemes::registry::{self, Ingredients};
use crate::schemes::{RequestView, Scheme, Unsigned};

/// Bodies buffered for signing, at most, unless `egress.max_body` says.
const DEFAULT_MAX_BODY: u64 = 1 << 20;
/// The per-attempt timeout unless a route says.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The whole budget of a request, retries included, unless a route says.
const DEFAULT_MAX_ELAPSED: Duration = Duration::from_secs(30);
/// Most attempts a route may ask for: past this a partner is being
/// hammered, not retried.
const MAX_ATTEMPTS: u64 = 20;

/// `[egress]`, validated.
#[derive(Debug)]
pub struct Egress {
    /// Where the app sends its calls: loopback unless
    /// `allow_non_loopback`, since anything that can reach it can call the
    /// partner with hookguard's credentials.
    pub listen: SocketAddr,
    /// Largest request body buffered (to sign it); larger ones get 413.
    pub max_body: u64,
    /// What becomes of credential and signature headers the app sends.
    pub on_app_credentials: AppCredentials,
    /// The partner routes, by prefix; no two prefixes overlap.
    pub routes: Vec<Arc<EgressRoute>>,
}

/// `on_app_credentials`: there is exactly one source of credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppCredentials {
    /// Removed before the request leaves (the default).
    Strip,
    /// The request is refused with 400 `app_credentials`.
    Reject,
}

/// One `[[egress.routes]]` entry.
#[derive(Debug)]
pub struct EgressRoute {
    /// Unique name; in metrics and logs.
    pub name: String,
    /// The path prefix the app calls, without a trailing slash
    /// (`/cartelcrm`); matched at a segment boundary.
    pub prefix: String,
    /// Where calls go.
    pub upstream: PartnerUrl,
    /// Per attempt: from sending to the partner's response head.
    pub timeout: Duration,
    /// The TLS client settings: system roots plus `tls.ca_file`, and the
    /// client certificate when set.
    pub tls: Arc<rustls::ClientConfig>,
    /// The credential header injected into every attempt.
    pub auth: Option<(HeaderName, HeaderValue)>,
    /// The signer; `None` for a route that only injects credentials.
    pub sign: Option<Box<dyn Scheme>>,
    /// Every header the app may not set itself: `Authorization`, the
    /// credential header, and each header the signer writes.
    pub owned_headers: Vec<HeaderName>,
    /// Where the idempotency key comes from; `None`: no key, so retries
    /// only when the partner provably never saw the request.
    pub idempotency: Option<Idempotency>,
    /// Which failures are retried and for how long.
    pub retry: Retry,
}

/// A partner's base URL, taken apart once.
#[derive(Debug, Clone)]
pub struct PartnerUrl {
    /// `https`, or `http` with `allow_http`.
    pub scheme: http::uri::Scheme,
    /// `host[:port]`.
    pub authority: http::uri::Authority,
    /// Prepended to the rest of the app's path, without a trailing slash
    /// (empty for none).
    pub base_path: String,
}

impl PartnerUrl {
    /// The partner's URI for `rest` (path and query after the route's
    /// prefix, starting with `/` or `?`, or empty).
    pub fn uri(&self, rest: &str) -> Result<Uri, http::Error> {
        let path = match rest {
            "" => format!("{}/", self.base_path),
            rest if rest.starts_with('?') => format!("{}/{rest}", self.base_path),
            rest => format!("{}{rest}", self.base_path),
        };
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path)
            .build()
    }
}

/// `[egress.routes.idempotency]`.
#[derive(Debug, Clone)]
pub struct Idempotency {
    /// The header the key is sent in.
    pub header: HeaderName,
    /// Where the key comes from.
    pub source: KeySource,
    /// The methods that get a key; other requests go without one.
    pub methods: Vec<Method>,
    /// Send the key as a Structured Field string (`"..."`), as the IETF
    /// Idempotency-Key draft writes it; most deployed APIs (Stripe, Svix)
    /// take it bare, the default. A quoted key read from the app is
    /// unquoted first.
    pub quoted: bool,
}

/// Where an idempotency key comes from, once per app request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A fresh UUIDv7: covers hookguard's own retries only.
    Generate,
    /// The app's own value of the key header.
    Passthrough,
    /// The app's value of another header.
    Header(HeaderName),
    /// A string or number in the app's JSON body, by JSON pointer.
    Json(String),
}

/// `[egress.routes.retry]`.
#[derive(Debug, Clone)]
pub struct Retry {
    /// Retry when the connection could not be made.
    pub on_connect: bool,
    /// Retry when an attempt got no answer within `timeout` (or the
    /// connection broke after sending).
    pub on_timeout: bool,
    /// Partner statuses that are retried.
    pub statuses: StatusSet,
    /// Waits between attempts, the last repeated; each is jittered.
    pub backoff: Vec<Duration>,
    /// Most attempts, the first included.
    pub max_attempts: u32,
    /// The whole budget of one app request, waits included.
    pub max_elapsed: Duration,
}

/// Validates `[egress]`; `None` after recording errors.
pub(super) fn parse(
    mut s: Section<'_>,
    sources: &mut SourceReader<'_>,
    errors: &mut ConfigErrors,
) -> Option<Egress> {
    let listen = s.socket_addr("listen", "127.0.0.1:8001", errors);
    let forced = s.boolean("allow_non_loopback", errors).unwrap_or(false);
    if let Some(addr) = listen {
        if !addr.ip().is_loopback() && !forced {
            errors.push(
                s.key("listen"),
                format!(
                    "{addr} is not a loopback address: whatever reaches the egress listener calls partners with hookguard's credentials; use 127.0.0.1, or set allow_non_loopback = true if a network policy guards it"
                ),
            );
        }
    }
    let max_body = s.size("max_body", errors).unwrap_or(DEFAULT_MAX_BODY);
    if max_body == 0 {
        errors.push(s.key("max_body"), "must be greater than 0");
    }
    let on_app_credentials = match s.choice("on_app_credentials", &["strip", "reject"], errors) {
        Some("reject") => AppCredentials::Reject,
        _ => AppCredentials::Strip,
    };
    let mut routes = Vec::new();
    let mut named = Vec::new();
    match s.array("routes", errors) {
        Some(items) if !items.is_empty() => {
            for (index, (path, item)) in items.into_iter().enumerate() {
                // Overlaps are judged on every route whose name and prefix
                // read, valid or not, so that one error does not hide
                // another.
                let text = |key: &str| item.get(key).and_then(toml::Value::as_str);
                if let (Some(name), Some(Ok(prefix))) =
                    (text("name"), text("prefix").map(parse_prefix))
                {
                    named.push((index, name.to_owned(), prefix));
                }
                if let Some(section) = as_section(path, item, errors) {
                    if let Some(route) = parse_route(section, sources, errors) {
                        routes.push(route);
                    }
                }
            }
        }
        _ => errors.push(
            s.key("routes"),
            "at least one [[egress.routes]] entry is required",
        ),
    }
    check_unique(&named, &s.key("routes"), errors);
    s.finish(errors);
    Some(Egress {
        listen: listen?,
        max_body,
        on_app_credentials,
        routes: routes.into_iter().map(Arc::new).collect(),
    })
}

impl Egress {
    /// Lines for `hookguard check`: the listener and each partner route.
    /// Names the credential's header and the secrets' ids, never a secret.
    pub fn summary(&self) -> String {
        let mut out = format!(
            "egress listen {}  max_body={}  on_app_credentials={}\n",
            self.listen,
            self.max_body,
            match self.on_app_credentials {
                AppCredentials::Strip => "strip",
                AppCredentials::Reject => "reject",
            }
        );
        for route in &self.routes {
            let retry = &route.retry;
            let mut on = Vec::new();
            if retry.on_connect {
                on.push("connect".to_owned());
            }
            if retry.on_timeout {
                on.push("timeout".to_owned());
            }
            let statuses = retry.statuses.to_string();
            if !statuses.is_empty() {
                on.push(statuses);
            }
            out.push_str(&format!(
                "egress route {:?}: {}/* -> {}://{}{}/*  timeout={}ms  auth={}  sign={}  idempotency={}  retry on [{}] max_attempts={} max_elapsed={}ms\n",
                route.name,
                route.prefix,
                route.upstream.scheme,
                route.upstream.authority,
                route.upstream.base_path,
                route.timeout.as_millis(),
                route.auth.as_ref().map_or("none".to_owned(), |(name, _)| name.to_string()),
                route.sign.as_ref().map_or("none".to_owned(), |s| format!(
                    "{} keys=[{}]",
                    s.name(),
                    s.key_ids().join(", ")
                )),
                route.idempotency.as_ref().map_or("none".to_owned(), |i| format!(
                    "{} from {}",
                    i.header,
                    match &i.source {
                        KeySource::Generate => "generate".to_owned(),
                        KeySource::Passthrough => "passthrough".to_owned(),
                        KeySource::Header(name) => format!("header:{name}"),
                        KeySource::Json(pointer) => format!("json:{pointer}"),
                    }
                )),
                on.join(", "),
                retry.max_attempts,
                retry.max_elapsed.as_millis(),
            ));
        }
        out
    }
}

/// `(index, name, prefix)` of each route: names are unique, and no prefix
/// is another's at a segment boundary
/// (`/crm` and `/crm/v2`): which route serves a path must not depend on
/// their order.
fn check_unique(routes: &[(usize, String, String)], key: &str, errors: &mut ConfigErrors) {
    for (at, (index, name, prefix)) in routes.iter().enumerate() {
        for (other_index, other_name, other_prefix) in &routes[..at] {
            if other_name == name {
                errors.push(
                    format!("{key}[{index}] ({name:?}).name"),
                    format!("{name:?} is already the name of {key}[{other_index}]"),
                );
            }
            if covers(other_prefix, prefix) || covers(prefix, other_prefix) {
                errors.push(
                    format!("{key}[{index}] ({name:?}).prefix"),
                    format!(
                        "{prefix:?} overlaps {key}[{other_index}] ({other_name:?})'s prefix {other_prefix:?}: every path must belong to one route"
                    ),
                );
            }
        }
    }
}

/// Whether prefix `outer` serves paths under `inner`.
fn covers(outer: &str, inner: &str) -> bool {
    outer.is_empty() || inner == outer || inner.starts_with(&format!("{outer}/"))
}

fn parse_route(
    mut s: Section<'_>,
    sources: &mut SourceReader<'_>,
    errors: &mut ConfigErrors,
) -> Option<EgressRoute> {
    let name = s.required(
        "name",
        "every egress route needs a unique name",
        |name| {
            if is_label_safe(name) {
                Ok(name.to_owned())
            } else {
                Err(format!(
                    "{name:?} must be 1 to 64 characters of letters, digits, '-', '_' or '.'"
                ))
            }
        },
        errors,
    );
    if let Some(name) = &name {
        s.label(name);
    }
    let prefix = s.required(
        "prefix",
        "the path the app calls, e.g. \"/cartelcrm\"",
        parse_prefix,
        errors,
    );
    let allow_http = s.boolean("allow_http", errors).unwrap_or(false);
    let upstream = s.required(
        "upstream",
        "the partner's base URL, e.g. \"https://api.partner.example/v1\"",
        |text| parse_upstream(text, allow_http),
        errors,
    );
    let timeout = s.duration("timeout", errors);
    if timeout.is_some_and(|t| t.is_zero()) {
        errors.push(s.key("timeout"), "must be greater than 0");
    }
    let timeout = timeout.unwrap_or(DEFAULT_TIMEOUT);
    let tls = parse_tls(&mut s, sources, errors);
    let auth = parse_auth(&mut s, sources, errors);
    let sign = match s.table("sign", errors) {
        Some(section) => parse_sign(section, sources, errors).map(Some),
        None => Some(None),
    };
    let idempotency = match s.table("idempotency", errors) {
        Some(section) => parse_idempotency(section, errors).map(Some),
        None => Some(None),
    };
    let retry = parse_retry(&mut s, timeout, errors);
    s.finish(errors);
    let (sign, signer_headers) = match sign? {
        Some((scheme, headers)) => (Some(scheme), headers),
        None => (None, Vec::new()),
    };
    let auth = auth?;
    let mut owned_headers = vec![AUTHORIZATION];
    if let Some((name, _)) = &auth {
        if !owned_headers.contains(name) {
            owned_headers.push(name.clone());
        }
    }
    let idempotency = idempotency?;
    for name in signer_headers {
        // The key header is the app's own under passthrough; the signer
        // writes it only when it is the scheme's id header too, with the
        // same value.
        let passthrough_key = idempotency
            .as_ref()
            .is_some_and(|i| i.source == KeySource::Passthrough && i.header == name);
        if !owned_headers.contains(&name) && !passthrough_key {
            owned_headers.push(name);
        }
    }
    Some(EgressRoute {
        name: name?,
        prefix: prefix?,
        upstream: upstream?,
        timeout,
        tls: tls?,
        auth,
        sign,
        owned_headers,
        idempotency,
        retry: retry?,
    })
}

/// `"/cartelcrm"`: starts with `/`, a plain path (no query, no wildcard);
/// a trailing slash is dropped.
fn parse_prefix(text: &str) -> Result<String, String> {
    if !text.starts_with('/') {
        return Err(format!("{text:?} must start with \"/\""));
    }
    if text.contains(['?', '#', '*']) || text.contains("//") {
        return Err(format!(
            "{text:?}: a prefix is a plain path such as \"/cartelcrm\" (no query, wildcard or empty segment)"
        ));
    }
    if text.parse::<http::uri::PathAndQuery>().is_err() {
        return Err(format!("{text:?} is not a valid path"));
    }
    Ok(text.trim_end_matches('/').to_owned())
}

/// An absolute `https://` URL (or `http://` with `allow_http`), without a
/// query.
fn parse_upstream(text: &str, allow_http: bool) -> Result<PartnerUrl, String> {
    let uri: Uri = text
        .parse()
        .map_err(|_| format!("{text:?} is not a URL such as \"https://api.partner.example\""))?;
    let scheme = match uri.scheme_str() {
        Some("https") => http::uri::Scheme::HTTPS,
        Some("http") if allow_http => http::uri::Scheme::HTTP,
        Some("http") => {
            return Err(format!(
                "{text:?} is plain http://: the partner would receive the credentials and signatures unencrypted; use https://, or set allow_http = true for a test or a partner inside the cluster"
            ))
        }
        _ => {
            return Err(format!(
                "{text:?} must be an absolute https:// URL, e.g. \"https://api.partner.example\""
            ))
        }
    };
    let authority = uri
        .authority()
        .filter(|a| !a.host().is_empty())
        .cloned()
        .ok_or_else(|| format!("{text:?} has no host"))?;
    if uri.query().is_some() || text.contains('#') {
        return Err(format!(
            "{text:?}: leave the query out; the app's query is sent"
        ));
    }
    if authority.as_str().contains('@') {
        return Err(format!(
            "{text:?}: credentials in the URL are not allowed; use auth"
        ));
    }
    Ok(PartnerUrl {
        scheme,
        authority,
        base_path: uri.path().trim_end_matches('/').to_owned(),
    })
}

/// `tls = { ca_file, client_cert, client_key }` over the system's roots.
fn parse_tls(
    s: &mut Section<'_>,
    sources: &mut SourceReader<'_>,
    errors: &mut ConfigErrors,
) -> Option<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    // Unreadable system certificates are skipped, as curl does; a route
    // with its own ca_file does not need them.
    let system = rustls_native_certs::load_native_certs();
    let _ = roots.add_parsable_certificates(system.certs);
    let mut client = None;
    if let Some(mut t) = s.table("tls", errors) {
        if let Some(file) = t.string("ca_file", errors) {
            match CertificateDer::pem_file_iter(file)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            {
                Ok(certs) if !certs.is_empty() => {
                    let (added, _) = roots.add_parsable_certificates(certs);
                    if added == 0 {
                        errors.push(
                            t.key("ca_file"),
                            format!("{file}: no usable CA certificate"),
                        );
                    }
                }
                Ok(_) => errors.push(t.key("ca_file"), format!("{file} holds no PEM certificate")),
                Err(e) => errors.push(t.key("ca_file"), format!("cannot read {file}: {e}")),
            }
        }
        let cert = t.string("client_cert", errors);
        let key_key = t.key("client_key");
        let as_table = matches!(t.raw("client_key"), Some(toml::Value::Table(_)));
        let key = match as_table.then(|| t.table("client_key", errors)).flatten() {
            Some(mut entry) => {
                let source = read_source(&mut entry, errors);
                entry.finish(errors);
                source.and_then(|source| {
                    sources
                        .resolve(&source)
                        .map_err(|m| errors.push(key_key.clone(), m))
                        .ok()
                })
            }
            None => t.string("client_key", errors).and_then(|file| {
                sources
                    .resolve(&super::Source::File(file.to_owned()))
                    .map_err(|m| errors.push(key_key.clone(), m))
                    .ok()
            }),
        };
        match (cert, key) {
            (Some(file), Some(key)) => {
                let certs = CertificateDer::pem_file_iter(file)
                    .and_then(|certs| certs.collect::<Result<Vec<_>, _>>());
                let key = PrivateKeyDer::from_pem_slice(&key);
                match (certs, key) {
                    (Ok(certs), Ok(key)) if !certs.is_empty() => client = Some((certs, key)),
                    (Ok(_), Ok(_)) => errors.push(
                        t.key("client_cert"),
                        format!("{file} holds no PEM certificate"),
                    ),
                    (Err(e), _) => {
                        errors.push(t.key("client_cert"), format!("cannot read {file}: {e}"))
                    }
                    (_, Err(_)) => errors.push(
                        key_key,
                        "is not a PEM private key (PKCS#8, PKCS#1 or SEC1)",
                    ),
                }
            }
            (None, None) => {}
            (Some(_), None) if !t.has("client_key") => errors.push(
                key_key,
                "missing: client_cert needs its key, e.g. client_key = \"/etc/hookguard/client.key\"",
            ),
            (None, Some(_)) if !t.has("client_cert") => errors.push(
                t.key("client_cert"),
                "missing: client_key needs its certificate, e.g. client_cert = \"/etc/hookguard/client.pem\"",
            ),
            _ => {}
        }
        t.finish(errors);
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("ring supports the default protocol versions")
    .with_root_certificates(roots);
    let config = match client {
        Some((certs, key)) => match builder.with_client_auth_cert(certs, key) {
            Ok(config) => config,
            Err(e) => {
                errors.push(
                    s.key("tls.client_key"),
                    format!("the client key does not fit the certificate: {e}"),
                );
                return None;
            }
        },
        None => builder.with_no_client_auth(),
    };
    Some(Arc::new(config))
}

/// `auth = { bearer = {..} }`, `{ basic = { username, password = {..} } }`
/// or `{ header = { name, value = {..} } }`: the header injected into every
/// attempt, marked sensitive. `Ok(None)` when absent; `None` after errors.
fn parse_auth(
    s: &mut Section<'_>,
    sources: &mut SourceReader<'_>,
    errors: &mut ConfigErrors,
) -> Option<Option<(HeaderName, HeaderValue)>> {
    let Some(mut t) = s.table("auth", errors) else {
        return Some(None);
    };
    let kinds: Vec<&str> = ["bearer", "basic", "header"]
        .into_iter()
        .filter(|k| t.has(k))
        .collect();
    if kinds.len() != 1 {
        errors.push(
            t.path().to_owned(),
            "give exactly one of bearer = { env = \"...\" }, basic = { username = \"...\", password = { env = \"...\" } } or header = { name = \"X-Api-Key\", value = { env = \"...\" } }",
        );
        t.finish(errors);
        return None;
    }
    let mut entry = t.table(kinds[0], errors)?;
    let key = entry.path().to_owned();
    let header = match kinds[0] {
        "bearer" => {
            let source = read_source(&mut entry, errors);
            let token = resolve(source, sources, &key, errors);
            token.map(|token| {
                let mut value = b"Bearer ".to_vec();
                value.extend_from_slice(&token);
                (AUTHORIZATION, value)
            })
        }
        "basic" => {
            let username = entry.required_string("username", "the user name", errors);
            let password = required_source(
                &mut entry,
                "password",
                "e.g. password = { env = \"PARTNER_PASSWORD\" }",
                sources,
                errors,
            );
            username.zip(password).map(|(user, password)| {
                use base64::Engine;
                let mut plain = format!("{user}:").into_bytes();
                plain.extend_from_slice(&password);
                let encoded = base64::engine::general_purpose::STANDARD.encode(plain);
                (AUTHORIZATION, format!("Basic {encoded}").into_bytes())
            })
        }
        _ => {
            let name = entry.required(
                "name",
                "the header, e.g. \"X-Api-Key\"",
                super::reader::header_name,
                errors,
            );
            let value = required_source(
                &mut entry,
                "value",
                "e.g. value = { env = \"PARTNER_API_KEY\" }",
                sources,
                errors,
            );
            name.zip(value)
        }
    };
    entry.finish(errors);
    t.finish(errors);
    let (name, bytes) = header?;
    match HeaderValue::from_bytes(&bytes) {
        Ok(mut value) => {
            value.set_sensitive(true);
            Some(Some((name, value)))
        }
        Err(_) => {
            errors.push(
                key,
                "the credential holds a byte a header cannot carry (a newline?)",
            );
            None
        }
    }
}

/// The secret in the source table under `key` (`{ env | file | value }`),
/// which must be there; its errors are recorded under `key`, and its
/// absence as `missing: {hint}`.
fn required_source(
    entry: &mut Section<'_>,
    key: &str,
    hint: &str,
    sources: &mut SourceReader<'_>,
    errors: &mut ConfigErrors,
) -> Option<Vec<u8>> {
    let path = entry.key(key);
    if !entry.has(key) {
        errors.push(path, format!("missing: {hint}"));
        return None;
    }
    let mut table = entry.table(key, errors)?;
    let source = read_source(&mut table, errors);
    table.finish(errors);
    resolve(source, sources, &path, errors)
}

/// Resolves a read source, recording its error under `key`.
fn resolve(
    source: Option<super::Source>,
    sources: &mut SourceReader<'_>,
    key: &str,
    errors: &mut ConfigErrors,
) -> Option<Vec<u8>> {
    sources
        .resolve(&source?)
        .map_err(|m| errors.push(key.to_owned(), m))
        .ok()
}

/// `[egress.routes.sign]`: `scheme` (a preset, or `"hmac"`, the default,
/// with `[routes.hmac]`'s keys in this table) and `secrets`. Returns the
/// scheme and the headers it writes, found by signing a trial request
/// that its own verifier must accept.
fn parse_sign(
    mut s: Section<'_>,
    sources: &mut SourceReader<'_>,
    errors: &mut ConfigErrors,
) -> Option<(Box<dyn Scheme>, Vec<HeaderName>)> {
    let names = registry::names_where(registry::Entry::signs_egress);
    let entry = match s.string("scheme", errors) {
        None => registry::find("hmac"),
        Some(name) => match registry::find(name) {
            Some(entry) if entry.signs_egress() => Some(entry),
            Some(_) => {
                errors.push(
                    s.key("scheme"),
                    format!(
                        "hookguard cannot sign as {name} for a partner (it signs inside the body, signs a URL, or verifies with a public key); use \"hmac\" with a description, or a preset that signs in headers, such as {}",
                        names.iter().filter(|n| **n != "hmac").take(6).copied().collect::<Vec<_>>().join(", ")
                    ),
                );
                None
            }
            None => {
                errors.push(
                    s.key("scheme"),
                    format!(
                        "{name:?} is not one of {}{}",
                        names.join(", "),
                        super::reader::did_you_mean(name, names.iter().copied(), '"')
                    ),
                );
                None
            }
        },
    };
    let mut skipped = Vec::new();
    let secrets = parse_secrets(&mut s, "secrets", sources, &mut skipped, errors);
    let path = s.path().to_owned();
    let generic = entry.is_some_and(|e| e.name == "hmac");
    let hmac = if generic {
        parse_hmac(s, errors)
    } else {
        s.finish(errors);
        None
    };
    let entry = entry?;
    let ingredients = Ingredients {
        keys: secrets?
            .iter()
            .map(|secret| (secret.id.clone(), secret.expose().to_vec()))
            .collect(),
        public_url: None,
        verify_token: None,
        hmac,
        webhook_id: None,
        topic_arns: None,
        test_origin: None,
        learn: None,
    };
    if generic && ingredients.hmac.is_none() {
        return None;
    }
    let scheme = match entry.build(ingredients) {
        Ok(scheme) => scheme,
        Err(registry::BuildError::Keys(failed)) => {
            for error in failed {
                errors.push(format!("{path}.secrets[{}]", error.index), error.message);
            }
            return None;
        }
        Err(registry::BuildError::Missing(_)) => return None,
    };
    match trial(scheme.as_ref()) {
        Ok(headers) => Some((scheme, headers)),
        Err(message) => {
            errors.push(path, message);
            None
        }
    }
}

/// Signs a trial request with every key, as the egress signer will, and
/// verifies it with the scheme's own verifier; the headers the signer
/// wrote, or why the description cannot be checked by verifying.
fn trial(scheme: &dyn Scheme) -> Result<Vec<HeaderName>, String> {
    let body = Bytes::from_static(b"{\"hookguard\":\"trial\"}");
    let mut request = Unsigned {
        method: Method::POST,
        uri: Uri::from_static("/trial?x=1"),
        headers: HeaderMap::new(),
        body: body.clone(),
        now: 1_700_000_000,
        id: "hookguard-trial".to_owned(),
    };
    for name in scheme.signed_headers() {
        request
            .headers
            .insert(name, HeaderValue::from_static("trial"));
    }
    let before: Vec<HeaderName> = request.headers.keys().cloned().collect();
    scheme
        .sign_with_every_key(&mut request)
        .map_err(|e| format!("cannot sign with this description: {e}"))?;
    if request.body != body {
        return Err(
            "this scheme rewrites the body to sign it; egress sends the app's bytes unchanged"
                .to_owned(),
        );
    }
    let view = RequestView {
        method: &request.method,
        uri: &request.uri,
        headers: &request.headers,
        body: &request.body,
    };
    scheme.verify(&view).map_err(|reject| {
        format!(
            "a request signed with this description does not verify with it ({}: {}); check header, prefix and message",
            reject.reason.as_str(),
            reject.detail
        )
    })?;
    Ok(request
        .headers
        .keys()
        .filter(|name| !before.contains(name))
        .cloned()
        .collect())
}

/// `[egress.routes.idempotency]`: `header`, `source`, `methods`.
fn parse_idempotency(mut s: Section<'_>, errors: &mut ConfigErrors) -> Option<Idempotency> {
    let header = s.required(
        "header",
        "the header the partner reads the key from, e.g. \"Idempotency-Key\"",
        super::reader::header_name,
        errors,
    );
    let source = match s.string("source", errors) {
        None if s.has("source") => None,
        None | Some("generate") => Some(KeySource::Generate),
        Some("passthrough") => Some(KeySource::Passthrough),
        Some(text) => {
            let parsed = if let Some(name) = text.strip_prefix("header:") {
                super::reader::header_name(name).map(KeySource::Header)
            } else if let Some(pointer) = text.strip_prefix("json:") {
                if pointer.starts_with('/') {
                    Ok(KeySource::Json(pointer.to_owned()))
                } else {
                    Err(format!(
                        "{text:?}: a JSON pointer starts with '/', e.g. \"json:/order_id\""
                    ))
                }
            } else {
                Err(format!(
                    "{text:?} is not one of \"generate\", \"passthrough\", \"header:Name\", \"json:/pointer\""
                ))
            };
            s.checked("source", parsed, errors)
        }
    };
    let methods = match s.strings("methods", errors) {
        Some(list) => {
            let mut methods = Vec::new();
            for (i, text) in list.iter().enumerate() {
                match Method::from_bytes(text.to_ascii_uppercase().as_bytes()) {
                    Ok(method) => methods.push(method),
                    Err(_) => errors.push(
                        format!("{}[{i}]", s.key("methods")),
                        format!("{text:?} is not an HTTP method"),
                    ),
                }
            }
            methods
        }
        None => vec![Method::POST, Method::PATCH],
    };
    let quoted = s.boolean("quoted", errors).unwrap_or(false);
    s.finish(errors);
    Some(Idempotency {
        header: header?,
        source: source?,
        methods,
        quoted,
    })
}

/// `[egress.routes.retry]`: `on`, `backoff`, `max_attempts`, `max_elapsed`;
/// defaults when absent. `timeout` is the route's per-attempt one, which
/// the budget must cover.
fn parse_retry(s: &mut Section<'_>, timeout: Duration, errors: &mut ConfigErrors) -> Option<Retry> {
    let mut retry = Retry {
        on_connect: true,
        on_timeout: false,
        statuses: StatusSet::empty(),
        backoff: vec![
            Duration::from_millis(200),
            Duration::from_secs(1),
            Duration::from_secs(3),
        ],
        max_attempts: 3,
        max_elapsed: DEFAULT_MAX_ELAPSED.max(timeout),
    };
    let Some(mut t) = s.table("retry", errors) else {
        for code in ["429", "502", "503", "504"] {
            retry.statuses.add(code).expect("valid codes");
        }
        return Some(retry);
    };
    let mut ok = true;
    match t.strings("on", errors) {
        Some(list) => {
            retry.on_connect = false;
            for (i, text) in list.iter().enumerate() {
                let key = format!("{}[{i}]", t.key("on"));
                match *text {
                    "connect" => retry.on_connect = true,
                    "timeout" => retry.on_timeout = true,
                    "5xx" | "429" | "409" => retry.statuses.add(text).expect("valid"),
                    code if code.len() == 3
                        && code.starts_with('5')
                        && code.bytes().all(|b| b.is_ascii_digit()) =>
                    {
                        retry.statuses.add(code).expect("a 5xx code")
                    }
                    other => {
                        ok = false;
                        errors.push(
                            key,
                            format!(
                                "{other:?} is not retried: use \"connect\", \"timeout\", \"429\", \"409\", \"5xx\" or a 5xx code such as \"503\"; other 4xx answers are final (the partner refused this request, sending it again changes nothing)"
                            ),
                        );
                    }
                }
            }
        }
        None => {
            for code in ["429", "502", "503", "504"] {
                retry.statuses.add(code).expect("valid codes");
            }
        }
    }
    if let Some(list) = t.strings("backoff", errors) {
        let mut waits = Vec::new();
        for (i, text) in list.iter().enumerate() {
            match super::units::parse_duration(text) {
                Ok(wait) => waits.push(wait),
                Err(message) => {
                    ok = false;
                    errors.push(format!("{}[{i}]", t.key("backoff")), message);
                }
            }
        }
        if list.is_empty() {
            ok = false;
            errors.push(
                t.key("backoff"),
                "must list at least one wait, e.g. [\"200ms\", \"1s\", \"3s\"]",
            );
        }
        retry.backoff = waits;
    }
    retry.max_attempts = t.bounded("max_attempts", 3, 1..=MAX_ATTEMPTS as usize, errors) as u32;
    if let Some(max_elapsed) = t.duration("max_elapsed", errors) {
        if max_elapsed < timeout {
            ok = false;
            errors.push(
                t.key("max_elapsed"),
                format!(
                    "{} is shorter than the route's timeout ({}): the first attempt alone may take longer",
                    humanize(max_elapsed),
                    humanize(timeout)
                ),
            );
        }
        retry.max_elapsed = max_elapsed;
    }
    t.finish(errors);
    ok.then_some(retry)
}

/// A duration as a person writes it, for messages.
fn humanize(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_cover_at_segment_boundaries_only() {
        assert!(covers("/crm", "/crm"));
        assert!(covers("/crm", "/crm/v2"));
        assert!(!covers("/crm", "/crm2"));
        assert!(covers("", "/anything"));
    }

    #[test]
    fn partner_urls_join_the_base_path_and_the_rest() {
        let url = parse_upstream("https://p.example/api/", false).unwrap();
        assert_eq!(
            url.uri("/v1/x?y=1").unwrap(),
            "https://p.example/api/v1/x?y=1"
        );
        assert_eq!(url.uri("").unwrap(), "https://p.example/api/");
        assert_eq!(url.uri("?a=b").unwrap(), "https://p.example/api/?a=b");
        assert!(parse_upstream("http://p.example", false)
            .unwrap_err()
            .contains("allow_http"));
        assert!(parse_upstream("http://p.example", true).is_ok());
        assert!(parse_upstream("https://u:p@p.example", false).is_err());
        assert!(parse_upstream("/relative", false).is_err());
    }
}
