//! The wire behaviour of hookguard's own HTTP/1.1 layer (`src/http1`), seen
//! from real sockets on loopback: a raw sender on one side, and on the other
//! a raw-TCP app whose answers are scripted byte for byte, so that framings
//! a well-behaved library would never produce (close-delimited bodies, a
//! HEAD answer with a length, hop-by-hop headers) can be put on the wire.
//!
//! Most tests serve the wire through [`Plain`], a handler that knows no
//! routes or signatures, so that framing is tested alone. Tests that start
//! a [`Hookguard`] run the same wire under the real pipeline, for what the
//! pipeline adds on the wire: its refusals, rebuilt request heads and
//! request ids.

use crate::support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hookguard::http1::{
    self, app, hop, write, Answer, Body, BodyError, CloseCause, Handler, HeadError, Limits, Peer,
    RequestHead,
};
use http::header::HeaderValue;
use http::uri::Authority;
use http::{Method, StatusCode};
use support::{hmac_hex, Hookguard};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

const SECRET: &str = "wire-secret";

/// What the app is told a verified request carries, for route `wire`.
const VERIFIED: &str = "hookguard; route=wire; scheme=hmac; key=0";

/// Longest any single read in these tests may wait.
const READ: Duration = Duration::from_secs(3);

const CONFIG: &str = r#"
[server]
upstream = "{upstream}"
upstream_timeout = "2s"
body_timeout = "2s"
unmatched = "forward"

[[routes]]
name = "wire"
path = "/hook"
scheme = "hmac"
secrets = [{ value = "wire-secret" }]
max_body = "1KiB"

[routes.hmac]
header = "X-Signature"
"#;

// ---------------------------------------------------------------------------
// The scripted app.

/// A request as the raw app read it off the wire.
#[derive(Debug, Clone)]
struct Seen {
    /// Which accepted connection it came on, counting from 0.
    conn: usize,
    /// `METHOD target HTTP/1.1`.
    request_line: String,
    /// Header fields in wire order, names lower-cased.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Seen {
    fn all(&self, name: &str) -> Vec<&str> {
        all(&self.headers, name)
    }

    fn has(&self, name: &str) -> bool {
        !self.all(name).is_empty()
    }
}

/// What the app does after writing its answer.
#[derive(Debug, Clone, Copy)]
enum Then {
    /// Reads the next request on the same connection.
    KeepOpen,
    /// Closes at once (what delimits a close-delimited body).
    Close,
    /// Sits idle, reading nothing, then closes: an app that times out
    /// idle keep-alive connections.
    CloseAfter(Duration),
    /// Waits for the next request's first bytes, then closes without
    /// reading them; the kernel resets the connection, since bytes are
    /// left unread. The idle-close race, made to happen every time.
    CloseUnreadOnNext,
}

/// A scripted answer: written in `parts`, with a short pause between them
/// so that hookguard sees the body arrive in pieces.
struct Script {
    parts: Vec<Vec<u8>>,
    then: Then,
}

impl Script {
    fn new(parts: &[&[u8]], then: Then) -> Script {
        Script {
            parts: parts.iter().map(|p| p.to_vec()).collect(),
            then,
        }
    }
}

type Responder = Arc<dyn Fn(&Seen) -> Script + Send + Sync>;

/// A raw-TCP app on loopback that records every request and answers each
/// with what `respond` scripts.
struct RawApp {
    addr: std::net::SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    accepted: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl RawApp {
    async fn start(respond: impl Fn(&Seen) -> Script + Send + Sync + 'static) -> RawApp {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let accepted = Arc::new(AtomicUsize::new(0));
        let respond: Responder = Arc::new(respond);
        let (s, a) = (seen.clone(), accepted.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let conn = a.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve_app_connection(
                    stream,
                    conn,
                    s.clone(),
                    respond.clone(),
                ));
            }
        });
        RawApp {
            addr,
            seen,
            accepted,
            task,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for RawApp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_app_connection(
    mut stream: TcpStream,
    conn: usize,
    seen: Arc<Mutex<Vec<Seen>>>,
    respond: Responder,
) {
    let mut buf = Vec::new();
    loop {
        let end = loop {
            if let Some(at) = find(&buf, b"\r\n\r\n") {
                break at + 4;
            }
            if !read_some(&mut stream, &mut buf).await {
                return;
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf.drain(..end);
        let mut lines = head.split("\r\n");
        let request_line = lines.next().unwrap_or_default().to_owned();
        let headers = parse_fields(lines);
        // hookguard always frames what it forwards with Content-Length.
        let length: usize = all(&headers, "content-length")
            .first()
            .map_or(0, |v| v.parse().expect("a plain Content-Length"));
        while buf.len() < length {
            if !read_some(&mut stream, &mut buf).await {
                return;
            }
        }
        let request = Seen {
            conn,
            request_line,
            headers,
            body: buf.drain(..length).collect(),
        };
        seen.lock().unwrap().push(request.clone());
        let script = respond(&request);
        for (i, part) in script.parts.iter().enumerate() {
            if i > 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if stream.write_all(part).await.is_err() {
                return;
            }
        }
        match script.then {
            Then::KeepOpen => {}
            Then::Close => return,
            Then::CloseAfter(idle) => {
                tokio::time::sleep(idle).await;
                return;
            }
            Then::CloseUnreadOnNext => {
                let _ = stream.peek(&mut [0u8; 1]).await;
                return;
            }
        }
    }
}

/// Reads what is there into `buf`; false when the peer closed.
async fn read_some(stream: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 4096];
    match stream.read(&mut chunk).await {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
    }
}

/// A complete answer with a Content-Length; `extra` is header lines, each
/// ending in CRLF.
fn sized(body: &[u8], extra: &str) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 200 OK\r\n{extra}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

// ---------------------------------------------------------------------------
// The sender.

/// A sender's connection to hookguard, read one response at a time.
struct Wire {
    stream: TcpStream,
    /// Bytes read and not yet taken by a response.
    buf: Vec<u8>,
}

/// How a response's body was delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No body by the rules (HEAD, 1xx, 204, 304).
    None,
    Length,
    Chunked,
    /// Until hookguard closed the connection.
    Close,
}

/// A response as the sender read it.
#[derive(Debug)]
struct Reply {
    status: u16,
    head: String,
    headers: Vec<(String, String)>,
    /// The body, decoded from the chunked coding where it was chunked.
    body: Vec<u8>,
    framing: Framing,
}

impl Reply {
    fn all(&self, name: &str) -> Vec<&str> {
        all(&self.headers, name)
    }

    fn one(&self, name: &str) -> &str {
        match self.all(name)[..] {
            [value] => value,
            ref values => panic!(
                "{name}: expected one field, got {values:?} in\n{}",
                self.head
            ),
        }
    }

    fn has(&self, name: &str) -> bool {
        !self.all(name).is_empty()
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl Wire {
    async fn open(addr: std::net::SocketAddr) -> Wire {
        Wire {
            stream: TcpStream::connect(addr).await.unwrap(),
            buf: Vec::new(),
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Reads more; false when hookguard closed. Fails the test if nothing
    /// comes within [`READ`].
    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 4096];
        let read = tokio::time::timeout(READ, self.stream.read(&mut chunk))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "nothing from hookguard within {READ:?}; so far: {:?}",
                    String::from_utf8_lossy(&self.buf)
                )
            });
        match read {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    async fn line(&mut self) -> String {
        loop {
            if let Some(at) = find(&self.buf, b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..at]).into_owned();
                self.buf.drain(..at + 2);
                return line;
            }
            assert!(
                self.fill().await,
                "closed mid-line: {:?}",
                String::from_utf8_lossy(&self.buf)
            );
        }
    }

    async fn exactly(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            assert!(
                self.fill().await,
                "closed {} bytes short",
                n - self.buf.len()
            );
        }
        self.buf.drain(..n).collect()
    }

    /// Reads one response, interim ones included; `head_request` says the
    /// request was a HEAD (so the response has no body whatever it says).
    async fn response(&mut self, head_request: bool) -> Reply {
        let end = loop {
            if let Some(at) = find(&self.buf, b"\r\n\r\n") {
                break at + 4;
            }
            assert!(
                self.fill().await,
                "closed before a response head; got {:?}",
                String::from_utf8_lossy(&self.buf)
            );
        };
        let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
        self.buf.drain(..end);
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        assert!(status_line.starts_with("HTTP/1.1 "), "{head}");
        let status: u16 = status_line[9..12].parse().expect("a status code");
        let headers = parse_fields(lines);
        let mut reply = Reply {
            status,
            head,
            headers,
            body: Vec::new(),
            framing: Framing::None,
        };
        if head_request || status < 200 || status == 204 || status == 304 {
            return reply;
        }
        if let Some(coding) = reply.all("transfer-encoding").first() {
            assert!(
                coding.eq_ignore_ascii_case("chunked"),
                "only chunked is expected: {}",
                reply.head
            );
            reply.framing = Framing::Chunked;
            reply.body = self.chunked_body().await;
        } else if let Some(length) = reply.all("content-length").first() {
            let length = length.parse().expect("a number");
            reply.framing = Framing::Length;
            reply.body = self.exactly(length).await;
        } else {
            reply.framing = Framing::Close;
            while self.fill().await {}
            reply.body = std::mem::take(&mut self.buf);
        }
        reply
    }

    /// Decodes a chunked body strictly: hex sizes, CRLF after every chunk,
    /// a last chunk and an empty line.
    async fn chunked_body(&mut self) -> Vec<u8> {
        let mut body = Vec::new();
        loop {
            let line = self.line().await;
            let size = line.split(';').next().unwrap_or_default();
            let size = usize::from_str_radix(size, 16)
                .unwrap_or_else(|_| panic!("not a chunk size: {line:?}"));
            if size == 0 {
                while !self.line().await.is_empty() {}
                return body;
            }
            let data = self.exactly(size + 2).await;
            assert_eq!(&data[size..], b"\r\n", "a chunk must end in CRLF");
            body.extend_from_slice(&data[..size]);
        }
    }

    /// Whether hookguard closes the connection with nothing more sent.
    async fn closes(&mut self) -> bool {
        let closed = !self.fill().await;
        closed && self.buf.is_empty()
    }
}

// ---------------------------------------------------------------------------
// Shared bits.

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn parse_fields<'a>(lines: impl Iterator<Item = &'a str>) -> Vec<(String, String)> {
    lines
        .filter(|line| !line.is_empty())
        .map(|line| {
            let (name, value) = line.split_once(':').expect("a header line");
            (name.to_ascii_lowercase(), value.trim().to_owned())
        })
        .collect()
}

fn all<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// A signed POST to the `wire` route; `extra` is header lines, each ending
/// in CRLF.
fn signed(version: &str, body: &str, extra: &str) -> String {
    format!(
        "POST /hook HTTP/{version}\r\nHost: hooks.example.com\r\nX-Signature: {}\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        hmac_hex(SECRET, body.as_bytes()),
        body.len()
    )
}

async fn start(app: &RawApp) -> Hookguard {
    Hookguard::start(CONFIG, &app.url()).await
}

// ---------------------------------------------------------------------------
// The plain handler: the wire with nothing of hookguard's pipeline.

/// The plainest [`Handler`]: reads the body (at most [`PLAIN_MAX_BODY`]),
/// sends the method, target, the sender's end-to-end headers and the body
/// to the app, and relays its answer. Its own answers carry the error the
/// wire reported, in words, in `x-wire-error`.
struct Plain {
    app: Authority,
    limits: Limits,
    /// What the wire told [`Handler::closed`], in order.
    closes: Mutex<Vec<CloseCause>>,
}

/// The plain handler's body limit, as the `wire` route's `max_body`.
const PLAIN_MAX_BODY: u64 = 1024;

/// The request id every plain answer carries.
const PLAIN_ID: &str = "plain";

impl Plain {
    fn own(status: StatusCode, error: &str) -> http1::Reply {
        let mut response = http::Response::new(Bytes::new());
        *response.status_mut() = status;
        response
            .headers_mut()
            .insert("x-wire-error", HeaderValue::from_str(error).unwrap());
        http1::Reply {
            request_id: HeaderValue::from_static(PLAIN_ID),
            answer: Answer::Own(response),
        }
    }
}

/// The plain handler's limits, unless a test says otherwise.
fn plain_limits() -> Limits {
    Limits {
        max_headers: 100,
        max_head_bytes: 16 * 1024,
        header_timeout: Duration::from_secs(2),
        app_idle: Duration::from_secs(2),
        write_timeout: Duration::from_secs(2),
    }
}

impl Handler for Plain {
    fn limits(&self) -> Limits {
        self.limits
    }

    async fn handle(&self, head: RequestHead, body: Body<'_>, _peer: &Peer) -> http1::Reply {
        let body = match body
            .read_to_end(PLAIN_MAX_BODY, Duration::from_secs(2))
            .await
        {
            Ok(body) => body,
            Err(error @ BodyError::TooLarge { .. }) => {
                return Plain::own(StatusCode::PAYLOAD_TOO_LARGE, &error.to_string())
            }
            Err(error) => return Plain::own(StatusCode::BAD_REQUEST, &error.to_string()),
        };
        let mut out = format!("{} {} HTTP/1.1\r\n", head.method, head.uri).into_bytes();
        for (name, value) in &head.headers {
            let framing = name == http::header::CONTENT_LENGTH || name == http::header::EXPECT;
            if !hop::is_hop_by_hop(name.as_str()) && !framing {
                write::header_line(&mut out, name.as_str(), value.as_bytes());
            }
        }
        write::number_line(&mut out, "content-length", body.len() as u64);
        out.extend_from_slice(b"\r\n");
        match app::exchange(&self.app, &out, &body, head.method == Method::HEAD).await {
            Ok(response) => http1::Reply {
                request_id: HeaderValue::from_static(PLAIN_ID),
                answer: Answer::Relay(response),
            },
            Err(error) => Plain::own(StatusCode::BAD_GATEWAY, &format!("{error:?}")),
        }
    }

    fn refuse(&self, error: HeadError, _peer: &Peer) -> http1::Reply {
        Plain::own(StatusCode::BAD_REQUEST, &format!("{error:?}"))
    }

    fn closed(&self, cause: CloseCause) {
        self.closes.lock().unwrap().push(cause);
    }
}

/// The wire on `127.0.0.1:0`, serving each connection through [`Plain`].
struct WireServer {
    addr: std::net::SocketAddr,
    handler: Arc<Plain>,
    task: JoinHandle<()>,
    /// Dropping it would read as a shutdown to every connection.
    _running: watch::Sender<bool>,
}

impl WireServer {
    /// The causes the wire reported closing connections for, waiting up
    /// to [`READ`] for there to be `n`.
    async fn closes(&self, n: usize) -> Vec<CloseCause> {
        let deadline = tokio::time::Instant::now() + READ;
        loop {
            let closes = self.handler.closes.lock().unwrap().clone();
            if closes.len() >= n || tokio::time::Instant::now() > deadline {
                return closes;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for WireServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn start_plain(app: &RawApp) -> WireServer {
    start_plain_with(app, plain_limits()).await
}

async fn start_plain_with(app: &RawApp, limits: Limits) -> WireServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handler = Arc::new(Plain {
        app: app.addr.to_string().parse().unwrap(),
        limits,
        closes: Mutex::new(Vec::new()),
    });
    let (running, stop) = watch::channel(false);
    let serving = handler.clone();
    let task = tokio::spawn(async move {
        while let Ok((stream, peer)) = listener.accept().await {
            tokio::spawn(http1::serve_connection(
                serving.clone(),
                stream,
                peer,
                stop.clone(),
            ));
        }
    });
    WireServer {
        addr,
        handler,
        task,
        _running: running,
    }
}

/// An unsigned POST (the plain handler checks nothing); `extra` is header
/// lines, each ending in CRLF.
fn plain(version: &str, body: &str, extra: &str) -> String {
    format!(
        "POST /hook HTTP/{version}\r\nHost: hooks.example.com\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

// ---------------------------------------------------------------------------
// The tests.

#[tokio::test]
async fn a_chunked_answer_reaches_an_http11_sender_rechunked_and_the_connection_stays_usable() {
    let app = RawApp::start(|_| {
        Script::new(
            &[
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-App: chunked\r\n\r\n5\r\nhel",
                b"lo\r\n7;ext=1\r\n, world\r\n",
                b"0\r\nX-Trailer: t\r\n\r\n",
            ],
            Then::KeepOpen,
        )
    })
    .await;
    let hg = start_plain(&app).await;
    let mut wire = Wire::open(hg.addr).await;
    for body in ["one", "two"] {
        wire.send(plain("1.1", body, "").as_bytes()).await;
        let reply = wire.response(false).await;
        assert_eq!(reply.status, 200, "{}", reply.head);
        assert_eq!(reply.framing, Framing::Chunked, "{}", reply.head);
        assert!(!reply.has("content-length"), "{}", reply.head);
        assert!(!reply.has("connection"), "{}", reply.head);
        assert_eq!(reply.one("x-app"), "chunked");
        assert_eq!(reply.text(), "hello, world");
    }
    let seen = app.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        app.accepted(),
        1,
        "a chunked answer read to its end leaves the app's connection reusable"
    );
}

#[tokio::test]
async fn a_close_delimited_answer_arrives_complete_and_chunked_to_an_http11_sender() {
    let app = RawApp::start(|_| {
        Script::new(
            &[
                b"HTTP/1.1 200 OK\r\nX-App: eof\r\n\r\n",
                b"first part, ",
                b"second part",
            ],
            Then::Close,
        )
    })
    .await;
    let hg = start_plain(&app).await;
    let mut wire = Wire::open(hg.addr).await;
    for body in ["one", "two"] {
        wire.send(plain("1.1", body, "").as_bytes()).await;
        let reply = wire.response(false).await;
        assert_eq!(reply.status, 200, "{}", reply.head);
        assert_eq!(
            reply.framing,
            Framing::Chunked,
            "re-framed for an HTTP/1.1 sender: {}",
            reply.head
        );
        assert_eq!(reply.one("x-app"), "eof");
        assert_eq!(reply.text(), "first part, second part");
    }
    assert_eq!(app.seen().len(), 2);
    assert_eq!(
        app.accepted(),
        2,
        "a close-delimited answer ends its connection"
    );
}

#[tokio::test]
async fn an_http10_sender_is_answered_then_closed_and_gets_a_chunked_answer_dechunked() {
    let app = RawApp::start(|seen| {
        if seen.body == b"chunked" {
            Script::new(
                &[
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nfrom",
                    b"\r\n5\r\n the \r\n3\r\napp\r\n0\r\n\r\n",
                ],
                Then::KeepOpen,
            )
        } else {
            Script::new(&[&sized(b"ok", "")], Then::KeepOpen)
        }
    })
    .await;
    let hg = start_plain(&app).await;

    let mut wire = Wire::open(hg.addr).await;
    wire.send(plain("1.0", "sized", "").as_bytes()).await;
    let reply = wire.response(false).await;
    assert_eq!(reply.status, 200, "{}", reply.head);
    assert_eq!(reply.framing, Framing::Length);
    assert_eq!(reply.text(), "ok");
    assert_eq!(reply.one("connection"), "close");
    assert!(wire.closes().await, "HTTP/1.0 without keep-alive closes");

    let mut wire = Wire::open(hg.addr).await;
    wire.send(plain("1.0", "chunked", "").as_bytes()).await;
    let reply = wire.response(false).await;
    assert_eq!(reply.status, 200, "{}", reply.head);
    assert!(
        !reply.has("transfer-encoding") && !reply.has("content-length"),
        "HTTP/1.0 has no chunked coding: {}",
        reply.head
    );
    assert_eq!(reply.framing, Framing::Close);
    assert_eq!(reply.text(), "from the app");
    assert_eq!(reply.one("connection"), "close");
    assert_eq!(app.seen().len(), 2);
}

#[tokio::test]
async fn pipelined_requests_in_one_write_get_two_answers_in_order_both_forwarded() {
    // The app echoes the body, so that the order of the answers shows.
    let app = RawApp::start(|seen| Script::new(&[&sized(&seen.body, "")], Then::KeepOpen)).await;
    let hg = start(&app).await;
    let mut wire = Wire::open(hg.addr).await;
    let both = signed("1.1", "first", "") + &signed("1.1", "second", "");
    wire.send(both.as_bytes()).await;
    let first = wire.response(false).await;
    let second = wire.response(false).await;
    assert_eq!((first.status, first.text().as_str()), (200, "first"));
    assert_eq!((second.status, second.text().as_str()), (200, "second"));
    let bodies: Vec<Vec<u8>> = app.seen().into_iter().map(|s| s.body).collect();
    assert_eq!(bodies, [b"first".to_vec(), b"second".to_vec()]);
    for seen in app.seen() {
        assert_eq!(seen.all("x-verified-by"), [VERIFIED]);
    }
}

#[tokio::test]
async fn expect_100_continue_gets_100_before_the_body_and_an_oversize_declared_body_gets_413_without_100(
) {
    let app = RawApp::start(|_| Script::new(&[&sized(b"ok", "")], Then::KeepOpen)).await;
    let hg = start(&app).await;

    let body = "{\"waited\":true}";
    let request = signed("1.1", body, "Expect: 100-continue\r\n");
    let head = &request.as_bytes()[..request.len() - body.len()];
    let mut wire = Wire::open(hg.addr).await;
    wire.send(head).await;
    let interim = wire.response(false).await;
    assert_eq!(interim.status, 100, "{}", interim.head);
    assert!(interim.head.starts_with("HTTP/1.1 100 Continue\r\n"));
    assert_eq!(app.seen().len(), 0, "nothing is forwarded before the body");
    wire.send(body.as_bytes()).await;
    let reply = wire.response(false).await;
    assert_eq!(reply.status, 200, "{}", reply.head);
    let seen = app.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].body, body.as_bytes());
    assert!(
        !seen[0].has("expect"),
        "the expectation was met by hookguard"
    );

    // 5000 bytes over a 1 KiB limit: refused on the declared length, and
    // the sender is never told to go ahead.
    let mut wire = Wire::open(hg.addr).await;
    wire.send(
        b"POST /hook HTTP/1.1\r\nHost: x\r\nX-Signature: 00\r\nExpect: 100-continue\r\nContent-Length: 5000\r\n\r\n",
    )
    .await;
    let reply = wire.response(false).await;
    assert_eq!(reply.status, 413, "no 100 Continue first: {}", reply.head);
    assert_eq!(reply.one("x-hookguard-reject"), "body_too_large");
    assert_eq!(reply.one("connection"), "close");
    assert!(wire.closes().await, "the unread body closes the connection");
    assert_eq!(app.seen().len(), 1);
}

#[tokio::test]
async fn a_pooled_connection_the_app_closed_is_not_reused_and_the_request_is_forwarded_once() {
    // Every app connection answers one request, kept alive, then the app
    // times it out 100 ms later.
    let app = RawApp::start(|_| {
        Script::new(
            &[&sized(b"ok", "")],
            Then::CloseAfter(Duration::from_millis(100)),
        )
    })
    .await;
    let hg = start_plain(&app).await;
    let mut wire = Wire::open(hg.addr).await;
    wire.send(plain("1.1", "one", "").as_bytes()).await;
    assert_eq!(wire.response(false).await.status, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    wire.send(plain("1.1", "two", "").as_bytes()).await;
    let reply = wire.response(false).await;
    assert_eq!(
        (reply.status, reply.text().as_str()),
        (200, "ok"),
        "{}",
        reply.head
    );
    let bodies: Vec<Vec<u8>> = app.seen().into_iter().map(|s| s.body).collect();
    assert_eq!(
        bodies,
        [b"one".to_vec(), b"two".to_vec()],
        "each request reached the app exactly once"
    );
    assert_eq!(app.accepted(), 2);
}

#[tokio::test]
async fn a_head_answer_with_content_length_and_no_body_keeps_the_connection_in_step() {
    let app = RawApp::start(|seen| {
        if seen.request_line.starts_with("HEAD ") {
            Script::new(
                &[b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 1234\r\n\r\n"],
                Then::KeepOpen,
            )
        } else {
            Script::new(&[&sized(b"after", "")], Then::KeepOpen)
        }
    })
    .await;
    let hg = start_plain(&app).await;
    let mut wire = Wire::open(hg.addr).await;
    wire.send(b"HEAD /page HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let reply = wire.response(true).await;
    assert_eq!(reply.status, 200, "{}", reply.head);
    assert_eq!(
        reply.one("content-length"),
        "1234",
        "the length of the body a GET would get"
    );
    wire.send(b"GET /page HTTP/1.1\r\nHost: x\r\n\r\n").await;
    // Any body bytes after the HEAD answer would be read here as the next
    // status line.
    let reply = wire.response(false).await;
    assert_eq!((reply.status, reply.text().as_str()), (200, "after"));
    let seen = app.seen();
    assert_eq!(seen.len(), 2);
    assert!(seen[0].request_line.starts_with("HEAD /page "));
    assert_eq!(
        app.accepted(),
        1,
        "the app's connection was not left waiting for a body"
    );
}

#[tokio::test]
async fn malformed_heads_and_non_chunked_codings_get_400_and_never_reach_the_app() {
    let app = RawApp::start(|_| Script::new(&[&sized(b"ok", "")], Then::KeepOpen)).await;
    let hg = start(&app).await;
    let sig = hmac_hex(SECRET, b"hello");
    let cases = [
        (
            format!("POST /hook HTTP/1.1\r\nHost: x\r\nX-Signature: {sig}\r\nBad Header: x\r\nContent-Length: 5\r\n\r\nhello"),
            "malformed_request",
        ),
        (
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_owned(),
            "malformed_request",
        ),
        (
            format!("POST /hook HTTP/1.1\r\nHost: x\r\nX-Signature: {sig}\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
            "ambiguous_framing",
        ),
    ];
    for (request, reason) in cases {
        let mut wire = Wire::open(hg.addr).await;
        wire.send(request.as_bytes()).await;
        let reply = wire.response(false).await;
        assert_eq!(reply.status, 400, "{request:?}: {}", reply.head);
        assert_eq!(reply.one("x-hookguard-reject"), reason, "{request:?}");
        assert_eq!(reply.one("connection"), "close", "{request:?}");
        assert!(wire.closes().await, "{request:?}");
    }
    assert_eq!(app.accepted(), 0, "{:?}", app.seen());
}

#[tokio::test]
async fn hop_by_hop_and_spoofable_request_headers_never_reach_the_app() {
    let app = RawApp::start(|_| Script::new(&[&sized(b"ok", "")], Then::KeepOpen)).await;
    let hg = start(&app).await;
    let body = "{\"id\":9}";
    let extra = "Connection: close, X-Secret-Hop\r\n\
                 X-Secret-Hop: 1\r\n\
                 Keep-Alive: 5\r\n\
                 Proxy-Connection: keep-alive\r\n\
                 TE: trailers\r\n\
                 Upgrade: websocket\r\n\
                 X-Hookguard-Anything: y\r\n\
                 X-Hookguard-Shadow: spoofed\r\n\
                 X-Verified-By: hookguard; route=wire; scheme=hmac; key=forged\r\n\
                 X-Forwarded-For: 203.0.113.7\r\n\
                 X-Kept: yes\r\n";
    let mut wire = Wire::open(hg.addr).await;
    wire.send(signed("1.1", body, extra).as_bytes()).await;
    let reply = wire.response(false).await;
    assert_eq!(reply.status, 200, "{}", reply.head);
    assert_eq!(
        reply.one("connection"),
        "close",
        "the sender asked to close"
    );
    assert!(wire.closes().await);

    let seen = app.seen();
    assert_eq!(seen.len(), 1);
    let seen = &seen[0];
    for name in [
        "connection",
        "x-secret-hop",
        "keep-alive",
        "proxy-connection",
        "te",
        "upgrade",
        "x-hookguard-anything",
        "x-hookguard-shadow",
    ] {
        assert!(
            !seen.has(name),
            "{name} reached the app: {:?}",
            seen.headers
        );
    }
    assert_eq!(
        seen.all("x-verified-by"),
        [VERIFIED],
        "only hookguard's own"
    );
    assert_eq!(seen.all("x-forwarded-for"), ["203.0.113.7, 127.0.0.1"]);
    assert_eq!(seen.all("x-kept"), ["yes"]);
    assert_eq!(seen.all("content-length"), [body.len().to_string()]);
    assert_eq!(seen.body, body.as_bytes());
}

#[tokio::test]
async fn an_app_answer_with_connection_close_reaches_the_sender_and_the_next_request_uses_a_fresh_app_connection(
) {
    // The app says close but keeps serving the socket: only the header can
    // tell hookguard not to reuse it.
    let app = RawApp::start(|seen| {
        let body = format!("answer {}", seen.conn);
        Script::new(
            &[&sized(body.as_bytes(), "Connection: close\r\n")],
            Then::KeepOpen,
        )
    })
    .await;
    let hg = start_plain(&app).await;
    let mut wire = Wire::open(hg.addr).await;
    wire.send(plain("1.1", "one", "").as_bytes()).await;
    let reply = wire.response(false).await;
    assert_eq!(
        (reply.status, reply.text().as_str()),
        (200, "answer 0"),
        "{}",
        reply.head
    );
    assert!(
        !reply.has("connection"),
        "the app's Connection is about the app's hop: {}",
        reply.head
    );
    wire.send(plain("1.1", "two", "").as_bytes()).await;
    let reply = wire.response(false).await;
    assert_eq!(
        (reply.status, reply.text().as_str()),
        (200, "answer 1"),
        "{}",
        reply.head
    );
    let conns: Vec<usize> = app.seen().iter().map(|s| s.conn).collect();
    assert_eq!(conns, [0, 1], "one app connection per request");
}

#[tokio::test]
async fn the_app_request_id_is_replaced_and_its_hop_by_hop_response_headers_are_dropped() {
    let app = RawApp::start(|_| {
        Script::new(
            &[&sized(
                b"ok",
                "X-Request-Id: app-chosen\r\n\
                 Connection: x-internal\r\n\
                 X-Internal: 1\r\n\
                 Keep-Alive: timeout=5\r\n\
                 X-App: kept\r\n",
            )],
            Then::KeepOpen,
        )
    })
    .await;
    let hg = start(&app).await;
    let mut wire = Wire::open(hg.addr).await;

    wire.send(signed("1.1", "one", "X-Request-Id: sender-id-42\r\n").as_bytes())
        .await;
    let reply = wire.response(false).await;
    assert_eq!(reply.status, 200, "{}", reply.head);
    assert_eq!(reply.one("x-request-id"), "sender-id-42");
    assert_eq!(reply.one("x-app"), "kept");
    for name in ["connection", "x-internal", "keep-alive"] {
        assert!(
            !reply.has(name),
            "{name} reached the sender: {}",
            reply.head
        );
    }
    assert_eq!(app.seen()[0].all("x-request-id"), ["sender-id-42"]);

    // Without one from the sender, hookguard's generated id replaces the
    // app's, and it is the one the app was sent.
    wire.send(signed("1.1", "two", "").as_bytes()).await;
    let reply = wire.response(false).await;
    assert_eq!(reply.status, 200, "{}", reply.head);
    let id = reply.one("x-request-id");
    assert_ne!(id, "app-chosen");
    assert_eq!(app.seen()[1].all("x-request-id"), [id]);
}

#[tokio::test]
async fn an_http10_sender_with_expect_is_never_sent_an_interim_response() {
    // RFC 9110 §10.1.1: a server MUST ignore 100-continue in an HTTP/1.0
    // request; §15.2: it MUST NOT send a 1xx response to an HTTP/1.0
    // client, which cannot parse one.
    let app = RawApp::start(|_| Script::new(&[&sized(b"ok", "")], Then::KeepOpen)).await;
    let hg = start_plain(&app).await;
    let body = "late";
    let request = plain("1.0", body, "Expect: 100-continue\r\n");
    let mut wire = Wire::open(hg.addr).await;
    wire.send(&request.as_bytes()[..request.len() - body.len()])
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    wire.send(body.as_bytes()).await;
    let reply = wire.response(false).await;
    assert_eq!(
        reply.status, 200,
        "the first response must be the final one"
    );
    assert_eq!(reply.text(), "ok");
}

#[tokio::test]
async fn body_failures_reach_the_handler_as_body_errors_and_close_the_connection() {
    let app = RawApp::start(|_| Script::new(&[&sized(b"ok", "")], Then::KeepOpen)).await;
    let wire_server = start_plain(&app).await;
    let over = [
        &b"POST /hook HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n401\r\n"[..],
        &[b'x'; 0x401],
    ]
    .concat();
    let cases: [(&[u8], u16, &str); 3] = [
        (
            b"POST /hook HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n",
            413,
            "the body is larger than 1024 bytes",
        ),
        (
            b"POST /hook HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            400,
            "",
        ),
        (&over, 413, "the body is larger than 1024 bytes"),
    ];
    for (request, status, error) in cases {
        let mut wire = Wire::open(wire_server.addr).await;
        wire.send(request).await;
        let reply = wire.response(false).await;
        assert_eq!(reply.status, status, "{}", reply.head);
        if !error.is_empty() {
            assert_eq!(reply.one("x-wire-error"), error);
        }
        assert_eq!(reply.one("connection"), "close", "{}", reply.head);
        assert!(
            wire.closes().await,
            "a body left unread ends the connection"
        );
    }
    let mut wire = Wire::open(wire_server.addr).await;
    wire.send(b"POST /hook HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhalf")
        .await;
    wire.stream.shutdown().await.unwrap();
    let reply = wire.response(false).await;
    assert_eq!(reply.status, 400, "{}", reply.head);
    assert_eq!(
        reply.one("x-wire-error"),
        "the connection ended before the body did"
    );
    assert!(app.seen().is_empty(), "no broken body reached the app");
}

#[tokio::test]
async fn a_plain_handler_serves_keep_alive_and_pipelined_requests_without_any_signature() {
    let app = RawApp::start(|seen| {
        let body = format!("echo {}", String::from_utf8_lossy(&seen.body));
        Script::new(&[&sized(body.as_bytes(), "")], Then::KeepOpen)
    })
    .await;
    let wire_server = start_plain(&app).await;
    let mut wire = Wire::open(wire_server.addr).await;
    let both = format!("{}{}", plain("1.1", "a", ""), plain("1.1", "bb", ""));
    wire.send(both.as_bytes()).await;
    for expected in ["echo a", "echo bb"] {
        let reply = wire.response(false).await;
        assert_eq!((reply.status, reply.text().as_str()), (200, expected));
        assert_eq!(reply.one("x-request-id"), PLAIN_ID, "the handler's id");
    }
    assert_eq!(app.accepted(), 1, "one kept-alive app connection");
}

#[tokio::test]
async fn connection_cannot_strip_host_framing_or_what_hookguard_writes_from_the_forwarded_head() {
    let app = RawApp::start(|_| Script::new(&[&sized(b"ok", "")], Then::KeepOpen)).await;
    let hg = start(&app).await;
    let body = "{\"id\":10}";
    let extra = "Connection: host, content-length, x-forwarded-host, x-forwarded-proto, \
                 x-request-id, x-verified-by, x-hookguard-shadow, x-secret-hop\r\n\
                 X-Forwarded-Proto: https\r\n\
                 X-Request-Id: nominated-id\r\n\
                 X-Secret-Hop: 1\r\n";
    let mut wire = Wire::open(hg.addr).await;
    wire.send(signed("1.1", body, extra).as_bytes()).await;
    let reply = wire.response(false).await;
    assert_eq!(reply.status, 200, "{}", reply.head);

    let seen = app.seen();
    assert_eq!(seen.len(), 1);
    let seen = &seen[0];
    assert_eq!(
        seen.all("host"),
        ["hooks.example.com"],
        "{:?}",
        seen.headers
    );
    assert_eq!(seen.all("content-length"), [body.len().to_string()]);
    assert_eq!(seen.all("x-forwarded-host"), ["hooks.example.com"]);
    assert_eq!(seen.all("x-forwarded-proto"), ["https"]);
    assert_eq!(seen.all("x-request-id"), ["nominated-id"]);
    assert_eq!(seen.all("x-verified-by"), [VERIFIED]);
    assert!(!seen.has("x-hookguard-shadow"), "{:?}", seen.headers);
    assert!(
        !seen.has("x-secret-hop"),
        "other nominated fields are still dropped"
    );
    assert_eq!(seen.body, body.as_bytes());
}

#[tokio::test]
async fn hookguard_answers_head_without_a_body_so_a_pipelined_get_gets_its_own_answer() {
    // Unmatched paths are refused (404) here, and the route takes GET and
    // HEAD, which fail verification (401) without a signature.
    let config = CONFIG
        .replace("unmatched = \"forward\"", "unmatched = \"reject\"")
        .replace(
            "max_body = \"1KiB\"",
            "max_body = \"1KiB\"\nmethods = [\"POST\", \"GET\", \"HEAD\"]",
        );
    let app = RawApp::start(|_| Script::new(&[&sized(b"ok", "")], Then::KeepOpen)).await;
    let hg = Hookguard::start(&config, &app.url()).await;
    let mut wire = Wire::open(hg.addr).await;
    wire.send(
        b"HEAD /nowhere HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n\
          HEAD /hook HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /hook HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    for (status, reason) in [(404, "no_route"), (401, "missing_signature")] {
        let head = wire.response(true).await;
        let get = wire.response(false).await;
        for reply in [&head, &get] {
            assert_eq!(reply.status, status, "{}", reply.head);
            assert_eq!(reply.one("x-hookguard-reject"), reason, "{}", reply.head);
        }
        assert!(!get.body.is_empty(), "the GET gets the JSON refusal");
        assert_eq!(
            head.one("content-length"),
            get.body.len().to_string(),
            "the HEAD answer has the length of the body a GET gets"
        );
    }
    // Nothing more: a body after a HEAD answer would be left over here.
    wire.stream.shutdown().await.unwrap();
    assert!(
        wire.closes().await,
        "left over: {:?}",
        String::from_utf8_lossy(&wire.buf)
    );
    assert_eq!(app.accepted(), 0);
}

#[tokio::test]
async fn a_post_the_app_reset_unread_on_a_pooled_connection_is_sent_again_on_a_fresh_one_and_delivered_once(
) {
    // The first app connection answers one request, then closes on the
    // next without reading it: that request never reached the app.
    let app = RawApp::start(|seen| {
        if seen.conn == 0 {
            Script::new(&[&sized(b"first", "")], Then::CloseUnreadOnNext)
        } else {
            Script::new(&[&sized(b"fresh", "")], Then::KeepOpen)
        }
    })
    .await;
    let hg = start_plain(&app).await;
    let mut wire = Wire::open(hg.addr).await;
    wire.send(plain("1.1", "one", "").as_bytes()).await;
    let reply = wire.response(false).await;
    assert_eq!((reply.status, reply.text().as_str()), (200, "first"));
    wire.send(plain("1.1", "two", "").as_bytes()).await;
    let reply = wire.response(false).await;
    assert_eq!(
        (reply.status, reply.text().as_str()),
        (200, "fresh"),
        "{}",
        reply.head
    );
    let seen: Vec<(usize, Vec<u8>)> = app.seen().into_iter().map(|s| (s.conn, s.body)).collect();
    assert_eq!(
        seen,
        [(0, b"one".to_vec()), (1, b"two".to_vec())],
        "the second request was delivered once, on a fresh connection"
    );
    assert_eq!(app.accepted(), 2);
}

#[tokio::test]
async fn a_post_the_app_read_whole_on_a_pooled_connection_and_closed_unanswered_is_not_sent_again()
{
    // The app reads the second request whole, then closes without an
    // answer: it may have acted on it, so a second copy could be a second
    // delivery.
    let app = RawApp::start(|seen| {
        if seen.body == b"one" {
            Script::new(&[&sized(b"ok", "")], Then::KeepOpen)
        } else {
            Script::new(&[], Then::Close)
        }
    })
    .await;
    let hg = start_plain(&app).await;
    let mut wire = Wire::open(hg.addr).await;
    wire.send(plain("1.1", "one", "").as_bytes()).await;
    assert_eq!(wire.response(false).await.status, 200);
    wire.send(plain("1.1", "two", "").as_bytes()).await;
    let reply = wire.response(false).await;
    assert_eq!(reply.status, 502, "{}", reply.head);
    let bodies: Vec<Vec<u8>> = app.seen().into_iter().map(|s| s.body).collect();
    assert_eq!(
        bodies,
        [b"one".to_vec(), b"two".to_vec()],
        "the app saw the second request once"
    );
    assert_eq!(app.accepted(), 1, "no second connection was opened for it");
}

#[tokio::test]
async fn a_sender_that_stops_reading_a_large_answer_is_disconnected_after_the_write_timeout() {
    // Far more than the socket buffers on both sides of the sender's
    // connection hold, so that hookguard's writes stall.
    const LARGE: usize = 24 * 1024 * 1024;
    let app =
        RawApp::start(|_| Script::new(&[&sized(&vec![b'x'; LARGE], "")], Then::KeepOpen)).await;
    let limits = Limits {
        write_timeout: Duration::from_millis(300),
        ..plain_limits()
    };
    let hg = start_plain_with(&app, limits).await;
    let mut wire = Wire::open(hg.addr).await;
    wire.send(plain("1.1", "big", "").as_bytes()).await;
    // Reading nothing for well past the write timeout.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut received = 0;
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        match tokio::time::timeout(READ, wire.stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => received += n,
            Err(_) => panic!("the connection is still open after {received} bytes"),
        }
    }
    assert!(
        received > 0 && received < LARGE,
        "the answer was cut off where the sender stopped reading: {received} bytes"
    );
    assert_eq!(hg.closes(1).await, [CloseCause::WriteTimeout]);
}

#[tokio::test]
async fn an_app_answer_that_breaks_off_closes_the_senders_connection_counted_as_relay_failed() {
    let app = RawApp::start(|_| {
        Script::new(
            &[b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b"],
            Then::Close,
        )
    })
    .await;
    let hg = start_plain(&app).await;
    let mut wire = Wire::open(hg.addr).await;
    wire.send(plain("1.1", "one", "").as_bytes()).await;
    // What was assembled of the answer (here all of it: less than one
    // flush) is dropped with the connection, never passed on as if whole.
    assert!(
        wire.closes().await,
        "{:?}",
        String::from_utf8_lossy(&wire.buf)
    );
    assert_eq!(hg.closes(1).await, [CloseCause::RelayFailed]);
}

#[tokio::test]
async fn header_and_idle_timeouts_are_told_apart_and_counted_on_metrics() {
    let config = CONFIG.replace("[server]\n", "[server]\nheader_timeout = \"300ms\"\n");
    let app = RawApp::start(|_| Script::new(&[&sized(b"ok", "")], Then::KeepOpen)).await;
    let hg = Hookguard::start(&config, &app.url()).await;
    let metric = |page: &str, cause: &str| {
        support::metric(
            page,
            &format!("hookguard_connections_closed_total{{cause=\"{cause}\"}}"),
        )
    };
    let (_, page) = support::admin_get(hg.admin, "/metrics").await;
    for cause in CloseCause::ALL {
        assert_eq!(
            metric(&page, cause.as_str()),
            Some(0.0),
            "{cause:?} at start"
        );
    }

    // Half a head, then nothing; and a connection that never sends one.
    let mut slow = Wire::open(hg.addr).await;
    slow.send(b"POST /hook HTTP/1.1\r\nHost: x\r\n").await;
    let mut silent = Wire::open(hg.addr).await;
    // One request answered, then nothing: an idle kept-alive connection.
    let mut idle = Wire::open(hg.addr).await;
    idle.send(signed("1.1", "one", "").as_bytes()).await;
    assert_eq!(idle.response(false).await.status, 200);
    for wire in [&mut slow, &mut silent, &mut idle] {
        assert!(wire.closes().await, "closed after header_timeout");
    }

    let (_, page) = support::admin_get(hg.admin, "/metrics").await;
    assert_eq!(metric(&page, "header_timeout"), Some(2.0), "{page}");
    assert_eq!(metric(&page, "idle_timeout"), Some(1.0));
    for cause in ["write_timeout", "write_failed", "relay_failed"] {
        assert_eq!(metric(&page, cause), Some(0.0), "{cause}");
    }
    support::promtool_check_metrics(&page);
}

/// Sends one signed delivery twice, each on a fresh connection, to a route
/// with `duplicate_answer = "original"` in front of an app that answers
/// with `parts` (then `then`); asserts that the copy gets the app's own
/// status, `Content-Type` and decoded `body`, marked as a duplicate, and
/// that the app saw one request.
async fn assert_original_replayed(
    parts: &'static [&'static [u8]],
    then: Then,
    status: u16,
    body: &str,
) {
    let app = RawApp::start(move |_| Script::new(parts, then)).await;
    let config = CONFIG.replace(
        "max_body = \"1KiB\"",
        "max_body = \"1KiB\"\nduplicate_answer = \"original\"",
    );
    let hg = Hookguard::start(&config, &app.url()).await;
    let mut answers = Vec::new();
    for _ in 0..2 {
        let mut wire = Wire::open(hg.addr).await;
        wire.send(signed("1.1", "same", "").as_bytes()).await;
        answers.push(wire.response(false).await);
    }
    let (first, copy) = (&answers[0], &answers[1]);
    assert_eq!((first.status, first.text().as_str()), (status, body));
    assert_eq!(
        (copy.status, copy.text().as_str()),
        (status, body),
        "{}",
        copy.head
    );
    assert_eq!(copy.one("content-type"), "application/json");
    assert_eq!(copy.one("x-hookguard-reject"), "duplicate");
    assert_eq!(app.seen().len(), 1);
}

#[tokio::test]
async fn an_original_answer_sent_chunked_is_kept_decoded_and_replayed_to_a_duplicate() {
    assert_original_replayed(
        &[
            b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n6\r\n{\"ok\":",
            b"\r\n5\r\ntrue}\r\n0\r\n\r\n",
        ],
        Then::KeepOpen,
        201,
        "{\"ok\":true}",
    )
    .await;
}

#[tokio::test]
async fn an_original_answer_delimited_by_the_close_is_kept_and_replayed_to_a_duplicate() {
    // PHP's built-in server answers like this: no length, then a close.
    assert_original_replayed(
        &[
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"taken\":",
            b"1}",
        ],
        Then::Close,
        200,
        "{\"taken\":1}",
    )
    .await;
}
