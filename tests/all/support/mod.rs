//! Shared helpers for the integration tests: a real recording upstream, a
//! real hookguard on `127.0.0.1:0`, a plain HTTP/1 client, and signing.

#![allow(dead_code)]

pub mod partner;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use sha2::Sha256;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use hookguard::config::Config;

/// A request as the upstream saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// A real HTTP server that records what reaches it and answers with a
/// configurable status after a configurable delay.
#[derive(Clone)]
pub struct Upstream {
    pub addr: SocketAddr,
    pub requests: Arc<Mutex<Vec<Recorded>>>,
    pub status: Arc<AtomicU16>,
    pub delay_ms: Arc<AtomicU64>,
    task: Arc<JoinHandle<()>>,
}

impl Upstream {
    pub async fn start() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener)
    }

    /// Serves on an existing listener (used to bring an upstream back on the
    /// same port).
    pub fn serve(listener: TcpListener) -> Upstream {
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let status = Arc::new(AtomicU16::new(200));
        let delay_ms = Arc::new(AtomicU64::new(0));
        let (r, s, d) = (requests.clone(), status.clone(), delay_ms.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (r, s, d) = (r.clone(), s.clone(), d.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let (r, s, d) = (r.clone(), s.clone(), d.clone());
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body.collect().await.unwrap().to_bytes();
                            // Recorded on arrival: a request the app received
                            // counts even if its answer comes too late.
                            r.lock().unwrap().push(Recorded {
                                method: parts.method.to_string(),
                                path: parts.uri.to_string(),
                                headers: parts.headers,
                                body,
                            });
                            let delay = d.load(Ordering::SeqCst);
                            if delay > 0 {
                                tokio::time::sleep(Duration::from_millis(delay)).await;
                            }
                            let mut resp =
                                Response::new(Full::new(Bytes::from_static(b"app says hi")));
                            *resp.status_mut() =
                                StatusCode::from_u16(s.load(Ordering::SeqCst)).unwrap();
                            resp.headers_mut().insert("x-app", "yes".parse().unwrap());
                            resp.headers_mut()
                                .insert("content-type", "text/plain".parse().unwrap());
                            Ok::<_, Infallible>(resp)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Upstream {
            addr,
            requests,
            status,
            delay_ms,
            task: Arc::new(task),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }

    pub fn last(&self) -> Recorded {
        self.requests
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("upstream received nothing")
    }

    /// Stops accepting (the port is closed).
    pub fn stop(&self) {
        self.task.abort();
    }
}

/// What stops a test server.
type ShutdownSignal = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// A hookguard server running in this process on loopback.
pub struct Hookguard {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    pub task: Option<JoinHandle<()>>,
}

impl Hookguard {
    /// Starts hookguard with `toml`, where `{upstream}` is replaced by the
    /// upstream's URL.
    pub async fn start(toml: &str, upstream: &str) -> Hookguard {
        let text = toml.replace("{upstream}", upstream);
        let config = Config::from_toml(&text, &|_: &str| None::<String>)
            .unwrap_or_else(|e| panic!("test config invalid:\n{e}"));
        Self::start_config(config).await
    }

    pub async fn start_config(config: Config) -> Hookguard {
        Self::launch(|listener, admin, shutdown| {
            hookguard::server::run(config, listener, admin, None, shutdown)
        })
        .await
    }

    /// Binds both listeners on loopback and starts `run` with them and a
    /// shutdown signal that [`Hookguard::shutdown`] fires.
    async fn launch<F, Fut>(run: F) -> Hookguard
    where
        F: FnOnce(TcpListener, TcpListener, ShutdownSignal) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let admin = admin_listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let signal: ShutdownSignal = Box::pin(async {
            let _ = rx.await;
        });
        let task = tokio::spawn(run(listener, admin_listener, signal));
        Hookguard {
            addr,
            admin,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// Begins graceful shutdown; returns the server task to await.
    pub fn shutdown(&mut self) -> JoinHandle<()> {
        let _ = self.shutdown.take().unwrap().send(());
        self.task.take().unwrap()
    }
}

impl Drop for Hookguard {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// A port that refuses connections until the test listens on it: bound
/// but not listening, so that no other test can take it meanwhile (a port
/// freed and bound again later could be handed to another test's server,
/// which would then get this test's deliveries).
pub struct ClosedPort(tokio::net::TcpSocket);

impl ClosedPort {
    /// The app coming up on the port.
    pub fn listen(self) -> TcpListener {
        self.0.listen(1024).unwrap()
    }
}

pub async fn closed_port() -> (ClosedPort, String) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    (ClosedPort(socket), format!("http://{addr}"))
}

/// A response as a test sees it.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn reject(&self) -> Option<&str> {
        self.headers
            .get("x-hookguard-reject")
            .map(|v| v.to_str().unwrap())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

/// Sends one request on a fresh connection.
pub async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: impl Into<Bytes>,
) -> Answer {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "hooks.example.com");
    for (name, value) in headers {
        builder = builder.header(*name, value.as_str());
    }
    let request = builder.body(Full::new(body.into())).unwrap();
    let response = sender.send_request(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Answer {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    }
}

/// GET on the admin listener; returns status and body text.
pub async fn admin_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let answer = send(addr, "GET", path, &[], Bytes::new()).await;
    (
        answer.status,
        String::from_utf8(answer.body.to_vec()).unwrap(),
    )
}

/// `POST /replay/forget` on the admin listener for one dedupe source's
/// value of `route`.
pub async fn forget(
    admin: SocketAddr,
    route: &str,
    source: &str,
    value: serde_json::Value,
) -> Answer {
    let body = serde_json::json!({ "route": route, "source": source, "value": value });
    send(admin, "POST", "/replay/forget", &[], body.to_string()).await
}

/// Unix seconds now.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Lower-case hex HMAC-SHA256.
pub fn hmac_hex(secret: &str, message: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(message);
    hex::encode(mac.finalize().into_bytes())
}

/// Reads a counter's value from a Prometheus text page.
pub fn metric(page: &str, series: &str) -> Option<f64> {
    page.lines()
        .find(|line| line.starts_with(series) && line[series.len()..].starts_with(' '))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Runs `promtool check metrics` on a scraped page. Where promtool is not
/// installed the check is skipped with a note, except in CI (`CI` set),
/// where `.ci/run` installs it and its absence is a failure.
pub fn promtool_check_metrics(page: &str) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!("SKIPPED promtool check: promtool not available ({e})");
            return;
        }
        Err(e) => panic!("promtool is required in CI: {e}"),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(page.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && report.trim().is_empty(),
        "promtool check metrics:\n{report}"
    );
}

impl Hookguard {
    /// Starts hookguard from a config file, reloading it as `serve` does.
    pub async fn start_reloading(path: &std::path::Path) -> Hookguard {
        let env: Arc<dyn hookguard::config::Env> = Arc::new(|_: &str| None::<String>);
        let config = Config::load(path, env.as_ref())
            .unwrap_or_else(|e| panic!("test config invalid:\n{e}"));
        let loaded = hookguard::reload::fingerprint(path, config.watched_files());
        let source = hookguard::reload::ReloadSource {
            path: path.to_owned(),
            env,
            loaded: Some(loaded),
        };
        Self::launch(|listener, admin, shutdown| {
            hookguard::server::run_with_reload(config, source, listener, admin, None, shutdown)
        })
        .await
    }
}

/// A fresh temporary directory, removed on drop.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "hookguard-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A kept-alive client connection, for tests about connections.
pub struct Connection {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

impl Connection {
    pub async fn open(addr: SocketAddr) -> Connection {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        Connection { sender }
    }

    /// POSTs on this connection; returns the status.
    pub async fn post(
        &mut self,
        path: &str,
        headers: &[(&str, String)],
        body: &'static str,
    ) -> u16 {
        let mut builder = Request::builder()
            .method("POST")
            .uri(path)
            .header("host", "x");
        for (name, value) in headers {
            builder = builder.header(*name, value.as_str());
        }
        let response = self
            .sender
            .send_request(
                builder
                    .body(Full::new(Bytes::from_static(body.as_bytes())))
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = response.status().as_u16();
        response.into_body().collect().await.unwrap();
        status
    }
}

/// A real `redis-server` on a free loopback port, without persistence,
/// killed on drop.
pub struct RedisServer {
    pub port: u16,
    child: Option<std::process::Child>,
    /// Extra arguments, repeated when the server is started again.
    args: Vec<String>,
}

impl RedisServer {
    /// Starts a redis-server with `args` added to the defaults. Where the
    /// binary is not installed, outside CI (`CI` unset) this says the test
    /// is skipped and returns `None`; in CI (where `.ci/run` installs it)
    /// its absence is a failure.
    pub async fn start(args: &[&str]) -> Option<RedisServer> {
        let probe = std::process::Command::new("redis-server")
            .arg("--version")
            .output();
        if let Err(e) = probe {
            if std::env::var_os("CI").is_none() {
                eprintln!(
                    "SKIPPED: redis-server is not installed ({e}); install it to run this test"
                );
                return None;
            }
            panic!("redis-server is required in CI: {e}");
        }
        let port = {
            let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            holder.local_addr().unwrap().port()
        };
        let mut server = RedisServer {
            port,
            child: None,
            args: args.iter().map(|a| (*a).to_owned()).collect(),
        };
        server.restart().await;
        Some(server)
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Kills the server (SIGKILL: no goodbye to its clients) and waits for
    /// it to be gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGKILL ends a frozen process too.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes (`true`, SIGSTOP) or thaws (`false`, SIGCONT) the server: its
    /// port still accepts connections, but nothing is answered, like a hung
    /// host or a partition.
    pub fn freeze(&self, frozen: bool) {
        let pid = self.child.as_ref().expect("redis-server is running").id();
        let signal = if frozen { "-STOP" } else { "-CONT" };
        let status = std::process::Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {signal} {pid} failed");
    }

    /// Starts the server again on the same port (empty: no persistence) and
    /// waits until it answers PING.
    pub async fn restart(&mut self) {
        self.kill();
        let child = std::process::Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(std::env::temp_dir())
            .args(&self.args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !self.answers_ping().await {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server on port {} did not answer PING within 10 s",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// True when a PING on a fresh connection gets an answer (`+PONG`, or
    /// `-NOAUTH` from a server that wants a password: up all the same).
    async fn answers_ping(&self) -> bool {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)).await else {
            return false;
        };
        if stream.write_all(b"PING\r\n").await.is_err() {
            return false;
        }
        let mut answer = [0u8; 64];
        match tokio::time::timeout(Duration::from_secs(1), stream.read(&mut answer)).await {
            Ok(Ok(n)) => answer[..n].starts_with(b"+PONG") || answer[..n].starts_with(b"-NOAUTH"),
            _ => false,
        }
    }

    /// A plain connection for the test's own look at the keys.
    pub async fn client(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `/readyz` until it answers `status`, for at most `limit`; returns
/// how long that took, or `None` when it never did.
pub async fn wait_ready_status(
    admin: SocketAddr,
    status: u16,
    limit: Duration,
) -> Option<Duration> {
    let started = std::time::Instant::now();
    while started.elapsed() < limit {
        if admin_get(admin, "/readyz").await.0 == status {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    None
}
