//! The differential (issue 19): hostile request heads sent through a real
//! hookguard to real apps that parse HTTP/1.1 their own way, Node's `http`,
//! PHP's built-in server and Python's h11, started by the test on loopback.
//!
//! The corpus is generated here: request-smuggling shapes (CL.TE, TE.CL,
//! the `Transfer-Encoding` obfuscations public smuggling scanners send,
//! written from their descriptions), the heads issue 19 found forwarded and
//! then refused by the apps, and seeded random mutations of a valid signed
//! request, some sent cut into pieces. Each case goes on its own connection
//! to each app's hookguard. Two things must hold:
//!
//! - every request any app records is one the test signed: hookguard's
//!   verified marker on it, and a body the test signed, byte for byte;
//! - no app refuses a request hookguard forwarded: no 400 without
//!   `X-Hookguard-Reject` (the app's own, passed back), and no
//!   `upstream_unavailable` (an app that dropped the connection instead).
//!
//! Bounded: about 1,500 cases per app, the three apps in parallel, well
//! under a minute. Where node, php or python3 with h11 is missing, that
//! app is skipped with a `SKIPPED` line, except in CI (`CI` set), where
//! `.ci/run` installs them and their absence is a failure.

use crate::support::{hmac_hex, Hookguard, TempDir};

use std::collections::HashSet;
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SECRET: &str = "differential-secret";

/// Random mutations per app, besides the hand-written cases.
const MUTATIONS: usize = 1_400;

/// The seed of the mutations: a failure names its case, and the same seed
/// makes the same corpus.
const SEED: u64 = 0x1919_2026_0000_0019;

/// Longest hookguard may take to answer and close one case's connection.
const CASE_TIMEOUT: Duration = Duration::from_secs(5);

/// hookguard's server section; [`config`] adds the routes.
const SERVER: &str = r#"
[server]
upstream = "{upstream}"
upstream_timeout = "5s"
body_timeout = "2s"
header_timeout = "2s"
"#;

/// A signed route, `NAME` on `PATH`, without dedupe: every case's copy is
/// forwarded, so a case reaches the app whatever was sent before it.
const ROUTE: &str = r#"
[[routes]]
name = "NAME"
path = "PATH"
scheme = "hmac"
secrets = [{ value = "differential-secret" }]
max_body = "64KiB"
dedupe = []

[routes.hmac]
header = "X-Signature"
"#;

/// An exact route and a prefix route (where `/p/a%zz` was forwarded).
fn config() -> String {
    let route = |name: &str, path: &str| ROUTE.replace("NAME", name).replace("PATH", path);
    format!(
        "{SERVER}{}{}",
        route("hook", "/hook"),
        route("prefix", "/p/*")
    )
}

// ---------------------------------------------------------------------------
// The apps.

/// Node's `http` server: records each request, answers 200. Node answers
/// 400 itself to a request its parser (llhttp) refuses.
const NODE_APP: &str = r#"
const http = require('http'), fs = require('fs');
const log = process.argv[1];
const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const headers = [];
    for (let i = 0; i < req.rawHeaders.length; i += 2) {
      headers.push([req.rawHeaders[i], req.rawHeaders[i + 1]]);
    }
    fs.appendFileSync(log, JSON.stringify({
      method: req.method, target: req.url, headers,
      body: Buffer.concat(chunks).toString('hex'),
    }) + '\n');
    res.writeHead(200, {'content-type': 'text/plain', 'content-length': '2'});
    res.end('ok');
  });
});
// Longer than the test: an idle-close race is another test's subject.
server.keepAliveTimeout = 120000;
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
"#;

/// PHP's built-in server's router script; `LOG` is replaced by the path.
const PHP_ROUTER: &str = r#"<?php
$headers = [];
foreach (getallheaders() as $name => $value) {
    $headers[] = [$name, $value];
}
$line = json_encode([
    'method' => $_SERVER['REQUEST_METHOD'],
    'target' => $_SERVER['REQUEST_URI'],
    'headers' => $headers,
    'body' => bin2hex(file_get_contents('php://input')),
], JSON_INVALID_UTF8_SUBSTITUTE);
file_put_contents('LOG', $line . "\n", FILE_APPEND | LOCK_EX);
header('Content-Type: text/plain');
echo 'ok';
"#;

/// A threaded server on h11, answering 400 to what h11 refuses, as
/// uvicorn does.
const H11_APP: &str = r#"
import json, socket, sys, threading
import h11

log = sys.argv[1]
lock = threading.Lock()

def serve(sock):
    conn = h11.Connection(h11.SERVER)
    def next_event():
        while True:
            event = conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            conn.receive_data(sock.recv(65536))
    try:
        while True:
            event = next_event()
            if not isinstance(event, h11.Request):
                break
            body = b""
            while True:
                part = next_event()
                if isinstance(part, h11.Data):
                    body += part.data
                elif isinstance(part, h11.EndOfMessage):
                    break
                else:
                    return
            line = json.dumps({
                "method": event.method.decode("latin-1"),
                "target": event.target.decode("latin-1"),
                "headers": [[n.decode("latin-1"), v.decode("latin-1")] for n, v in event.headers],
                "body": body.hex(),
            })
            with lock:
                with open(log, "a") as f:
                    f.write(line + "\n")
            sock.sendall(conn.send(h11.Response(status_code=200, headers=[
                ("content-type", "text/plain"), ("content-length", "2")])))
            sock.sendall(conn.send(h11.Data(data=b"ok")))
            sock.sendall(conn.send(h11.EndOfMessage()))
            if conn.our_state is h11.MUST_CLOSE:
                break
            conn.start_next_cycle()
    except h11.RemoteProtocolError:
        try:
            sock.sendall(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        except OSError:
            pass
    except OSError:
        pass
    finally:
        sock.close()

listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", 0))
listener.listen(128)
print(listener.getsockname()[1], flush=True)
while True:
    sock, _ = listener.accept()
    threading.Thread(target=serve, args=(sock,), daemon=True).start()
"#;

/// One app process, killed on drop, and the file it records requests in.
struct App {
    name: &'static str,
    addr: SocketAddr,
    log: PathBuf,
    child: Child,
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether `program args` runs and succeeds; where it does not, outside
/// CI this says the app is skipped and gives `false`; in CI (where
/// `.ci/run` installs it) it fails the test.
fn available(app: &str, program: &str, args: &[&str]) -> bool {
    let why = match Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(status) if status.success() => return true,
        Ok(status) => format!("`{program} {}` exited with {status}", args.join(" ")),
        Err(e) => format!("{program} is not installed ({e})"),
    };
    if std::env::var_os("CI").is_none() {
        eprintln!("SKIPPED differential against {app}: {why}; install it to run this part");
        return false;
    }
    panic!("the differential needs {app} in CI: {why}");
}

/// Starts `command`, which prints its port on its first line of output.
fn spawn_printing_port(name: &'static str, mut command: Command, log: PathBuf) -> App {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{name} starts: {e}"));
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{name} printed no port: {line:?}"));
    App {
        name,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        log,
        child,
    }
}

fn start_node(dir: &Path) -> Option<App> {
    if !available("Node", "node", &["--version"]) {
        return None;
    }
    let log = dir.join("node.jsonl");
    let mut command = Command::new("node");
    command.arg("-e").arg(NODE_APP).arg(&log);
    Some(spawn_printing_port("node", command, log))
}

fn start_h11(dir: &Path) -> Option<App> {
    if !available("Python h11", "python3", &["-c", "import h11"]) {
        return None;
    }
    let log = dir.join("h11.jsonl");
    let mut command = Command::new("python3");
    command.arg("-c").arg(H11_APP).arg(&log);
    Some(spawn_printing_port("h11", command, log))
}

async fn start_php(dir: &Path) -> Option<App> {
    if !available("PHP", "php", &["--version"]) {
        return None;
    }
    let log = dir.join("php.jsonl");
    let router = dir.join("router.php");
    std::fs::write(&router, PHP_ROUTER.replace("LOG", log.to_str().unwrap())).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("php")
        .arg("-S")
        .arg(format!("127.0.0.1:{port}"))
        .arg(&router)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("php starts");
    let app = App {
        name: "php",
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        log,
        child,
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(app.addr).await.is_err() {
        assert!(Instant::now() < deadline, "php -S did not listen on {port}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Some(app)
}

// ---------------------------------------------------------------------------
// The corpus.

/// One case: the bytes a sender writes, and where to cut them.
#[derive(Debug, Clone)]
struct Case {
    name: String,
    bytes: Vec<u8>,
    /// Offsets to cut the bytes at, each part written after a pause.
    cuts: Vec<usize>,
}

/// A small deterministic PRNG (splitmix64): the corpus is the same on
/// every run, so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// The signed bodies, one per case, so that no case's body is another's.
struct Corpus {
    cases: Vec<Case>,
    signed: HashSet<Vec<u8>>,
}

impl Corpus {
    /// A fresh signed body and its signature header line.
    fn body(&mut self) -> (String, String) {
        let body = format!("{{\"case\":{},\"data\":\"payload\"}}", self.signed.len());
        self.signed.insert(body.clone().into_bytes());
        let line = format!("X-Signature: {}\r\n", hmac_hex(SECRET, body.as_bytes()));
        (body, line)
    }

    fn push(&mut self, name: impl Into<String>, bytes: Vec<u8>) {
        self.cases.push(Case {
            name: name.into(),
            bytes,
            cuts: Vec::new(),
        });
    }

    /// A signed POST with `lines` (header lines, each ending in CRLF)
    /// after the signature, framed by Content-Length unless `lines` frames
    /// it.
    fn post(&mut self, name: &str, target: &str, lines: &str) {
        let (body, sig) = self.body();
        let framing = if lines.to_ascii_lowercase().contains("content-length") {
            String::new()
        } else {
            format!("Content-Length: {}\r\n", body.len())
        };
        let raw = format!(
            "POST {target} HTTP/1.1\r\nHost: hooks.example.com\r\n{sig}{lines}{framing}\r\n{body}"
        );
        self.push(name, raw.into_bytes());
    }

    /// A signed request with the whole head given (`{sig}` and `{len}`
    /// filled in), the body chunked or as it is.
    fn raw(&mut self, name: &str, head: &str, chunked: bool) {
        let (body, sig) = self.body();
        let head = head
            .replace("{sig}", &sig)
            .replace("{len}", &body.len().to_string());
        let mut raw = head.into_bytes();
        if chunked {
            raw.extend_from_slice(format!("{:x}\r\n{body}\r\n0\r\n\r\n", body.len()).as_bytes());
        } else {
            raw.extend_from_slice(body.as_bytes());
        }
        self.push(name, raw);
    }

    /// A signed request whose head starts with `before`, bytes that are
    /// not UTF-8.
    fn raw_bytes(&mut self, name: &str, before: &[u8]) {
        let (body, sig) = self.body();
        let mut raw = before.to_vec();
        raw.extend_from_slice(sig.as_bytes());
        raw.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
        raw.extend_from_slice(body.as_bytes());
        self.push(name, raw);
    }
}

/// `Transfer-Encoding` lines as smuggling scanners vary them (spacing,
/// case, duplication, other codings, folding, control characters).
const TE_VARIANTS: &[&str] = &[
    "Transfer-Encoding: chunked",
    "Transfer-Encoding: xchunked",
    "Transfer-Encoding:  chunked",
    "Transfer-Encoding:\tchunked",
    "Transfer-Encoding: \tchunked",
    "Transfer-Encoding:chunked",
    "Transfer-Encoding: chunked ",
    "Transfer-Encoding: chunked\t",
    "Transfer-Encoding: CHUNKED",
    "Transfer-Encoding: chunk",
    "Transfer-Encoding: \"chunked\"",
    "Transfer-Encoding: chunked, identity",
    "Transfer-Encoding: identity, chunked",
    "Transfer-Encoding: chunked,chunked",
    "Transfer-Encoding: gzip, chunked",
    "Transfer-Encoding: chunked\r\nTransfer-Encoding: x",
    "Transfer-Encoding: x\r\nTransfer-Encoding: chunked",
    "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
    "Transfer-Encoding : chunked",
    "Transfer-Encoding\t: chunked",
    " Transfer-Encoding: chunked",
    "X-Pad: x\r\n Transfer-Encoding: chunked",
    "Transfer-Encoding:\r\n chunked",
    "X-Pad: x\nTransfer-Encoding: chunked",
    "Transfer-Encoding:\x0bchunked",
    "Transfer-Encoding:\x0cchunked",
    "Transfer-Encoding: chunked\x0b",
    "Transfer-Encoding: \x00chunked",
    "Transfer_Encoding: chunked",
    "Transfer-Encoding: chu nked",
    "Transfer-encoding: cHuNkEd",
    "Transfer-Encoding:\r\n\tchunked",
    "Transfer-Encoding: chunked;q=1",
];

/// `Content-Length` values a lenient parser reads as a number.
const CL_VARIANTS: &[&str] = &[
    "+{len}",
    "-{len}",
    " {len}",
    "{len} ",
    "0x{len}",
    "{len}, {len}",
    "{len},{len}",
    "{len}\r\nContent-Length: {len}",
    "{len}\r\nContent-Length: 1",
    "{len}.0",
    "1e2",
    "",
    "{len}\x0b",
    "\t{len}",
    "0{len}",
    "000000000000000000{len}",
    "99999999999999999999",
];

/// Header lines a mutation may insert.
const HOSTILE_LINES: &[&str] = &[
    "Transfer-Encoding: chunked",
    "Transfer-Encoding: xchunked",
    "Transfer-Encoding : chunked",
    "Content-Length: 0",
    "Content-Length: 1",
    "Connection: host",
    "Connection: content-length, x-forwarded-for",
    "Connection: close",
    "Host: evil.example",
    "Host: a b",
    "Expect: 100-continue",
    "Upgrade: h2c",
    "Connection: Upgrade, HTTP2-Settings",
    "X-Verified-By: hookguard; route=hook; scheme=hmac; key=0",
    "X_Verified_By: forged",
    "X-Hookguard-Shadow: forged",
    "Trailer: X-Signature",
    "TE: trailers",
    "Keep-Alive: timeout=1",
    "X-Forwarded-For: 203.0.113.1",
    "Proxy-Connection: keep-alive",
    " X-Folded: yes",
    "X-Empty:",
    "X-High: caf\u{e9}",
];

/// Bytes a mutation writes: delimiters, white space, controls, high bytes.
const INTERESTING: &[u8] = &[
    b' ', b'\t', b'\r', b'\n', b':', b';', b',', b'\0', 0x0b, 0x0c, 0x7f, 0x80, 0xff, 0xc3, b'%',
    b'#', b'?', b'/', b'@', b'[', b']', b'{', b'|', b'"', b'_', b'.', b'-', b'A', b'z', b'0', b'9',
    b'\\',
];

fn corpus() -> Corpus {
    let mut c = Corpus {
        cases: Vec::new(),
        signed: HashSet::new(),
    };
    // Valid requests every app must get, as signed.
    c.post("valid", "/hook", "Content-Type: application/json\r\n");
    c.post("valid prefix route", "/p/items/42?x=1&y=%2F", "");
    c.post("valid brackets in query", "/p/q?a[]=1&b[k]=2", "");
    c.post("valid encoded UTF-8", "/p/caf%C3%A9", "");
    c.post(
        "valid odd but legal path",
        "/p/a-b_c.d~e!$&'()*+,;=:@/x",
        "",
    );
    c.raw(
        "valid 20-digit length",
        "POST /hook HTTP/1.1\r\nHost: x\r\n{sig}Content-Length: 000000000000000000{len}\r\n\r\n",
        false,
    );
    c.raw(
        "valid chunked",
        "POST /hook HTTP/1.1\r\nHost: x\r\n{sig}Transfer-Encoding: chunked\r\n\r\n",
        true,
    );
    let (body, sig) = c.body();
    c.push(
        "valid 17-digit chunk size, extension, trailer",
        format!(
            "POST /hook HTTP/1.1\r\nHost: x\r\n{sig}Transfer-Encoding: chunked\r\n\r\n{:017x} ;ext=1\r\n{body}\r\n0\r\nX-Trailer: t\r\n\r\n",
            body.len()
        )
        .into_bytes(),
    );
    c.raw(
        "valid HTTP/1.0 without Host",
        "POST /hook HTTP/1.0\r\n{sig}Content-Length: {len}\r\n\r\n",
        false,
    );
    c.raw(
        "valid one leading empty line",
        "\r\nPOST /hook HTTP/1.1\r\nHost: x\r\n{sig}Content-Length: {len}\r\n\r\n",
        false,
    );
    for host in [
        "hooks.example.com:8443",
        "127.0.0.1",
        "[::1]:8080",
        "a_b.example",
    ] {
        c.raw(
            &format!("valid Host {host}"),
            &format!(
                "POST /hook HTTP/1.1\r\nHost: {host}\r\n{{sig}}Content-Length: {{len}}\r\n\r\n"
            ),
            false,
        );
    }

    // Smuggling: each Transfer-Encoding variant as a TE.CL probe (chunked
    // body, a request smuggled after it) and as a CL.TE probe (both
    // headers, a length that covers the smuggled request).
    let smuggled = "POST /hook HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nEVIL!";
    for te in TE_VARIANTS {
        let (body, sig) = c.body();
        let chunked = format!("{:x}\r\n{body}\r\n0\r\n\r\n", body.len());
        c.push(
            format!("TE.CL {te:?}"),
            format!(
                "POST /hook HTTP/1.1\r\nHost: x\r\n{sig}{te}\r\nContent-Length: 4\r\n\r\n{chunked}{smuggled}"
            )
            .into_bytes(),
        );
        let (body, sig) = c.body();
        let chunked = format!("{:x}\r\n{body}\r\n0\r\n\r\n", body.len());
        c.push(
            format!("TE only {te:?}"),
            format!("POST /hook HTTP/1.1\r\nHost: x\r\n{sig}{te}\r\n\r\n{chunked}{smuggled}")
                .into_bytes(),
        );
        let (body, sig) = c.body();
        let payload = format!("{body}0\r\n\r\n{smuggled}");
        c.push(
            format!("CL.TE {te:?}"),
            format!(
                "POST /hook HTTP/1.1\r\nHost: x\r\n{sig}Content-Length: {}\r\n{te}\r\n\r\n{payload}",
                payload.len()
            )
            .into_bytes(),
        );
    }
    for cl in CL_VARIANTS {
        let (body, sig) = c.body();
        let value = cl.replace("{len}", &body.len().to_string());
        c.push(
            format!("Content-Length {cl:?}"),
            format!(
                "POST /hook HTTP/1.1\r\nHost: x\r\n{sig}Content-Length: {value}\r\n\r\n{body}{smuggled}"
            )
            .into_bytes(),
        );
    }

    // What issue 19 found forwarded, then refused by the apps, and the
    // leniencies a strict parser refuses.
    c.post("Connection: host", "/hook", "Connection: host\r\n");
    c.post(
        "Connection: content-length",
        "/hook",
        "Connection: content-length, host\r\n",
    );
    c.post("two Hosts", "/hook", "Host: hooks.example.com\r\n");
    c.post("two different Hosts", "/hook", "Host: evil.example\r\n");
    for host in [
        "a b",
        "a/b",
        "a@b",
        "user@hooks.example.com",
        "",
        "[::1",
        "a:b:c",
        "a%zz",
    ] {
        c.raw(
            &format!("Host {host:?}"),
            &format!(
                "POST /hook HTTP/1.1\r\nHost: {host}\r\n{{sig}}Content-Length: {{len}}\r\n\r\n"
            ),
            false,
        );
    }
    c.raw_bytes(
        "Host with a high byte",
        b"POST /hook HTTP/1.1\r\nHost: caf\xc3\xa9.example\r\n",
    );
    c.raw(
        "no Host",
        "POST /hook HTTP/1.1\r\n{sig}Content-Length: {len}\r\n\r\n",
        false,
    );
    c.raw_bytes(
        "raw UTF-8 in the target",
        b"POST /hook?a=caf\xc3\xa9 HTTP/1.1\r\nHost: x\r\n",
    );
    c.raw_bytes(
        "raw UTF-8 in a prefix path",
        b"POST /p/caf\xc3\xa9 HTTP/1.1\r\nHost: x\r\n",
    );
    for target in [
        "/p/a%zz",
        "/p/a%4",
        "/p/a%",
        "/hook#fragment",
        "/p/a|b",
        "/p/{a}",
        "/p/a^b",
        "/p/a`b",
        "/p/a\"b",
        "/p/a<b>",
        "/p/a\\b",
        "http://hooks.example.com/hook",
        "http://user:pass@hooks.example.com/hook",
        "//hooks.example.com/hook",
        "hook",
        "*",
    ] {
        c.post(&format!("target {target:?}"), target, "");
    }
    c.raw(
        "CONNECT",
       "CONNECT hooks.example.com:443 HTTP/1.1\r\nHost: hooks.example.com:443\r\n{sig}Content-Length: {len}\r\n\r\n",
        false,
    );
    c.raw(
        "OPTIONS *",
        "OPTIONS * HTTP/1.1\r\nHost: x\r\n{sig}Content-Length: {len}\r\n\r\n",
        false,
    );
    c.raw(
        "bare LF line ends",
        "POST /hook HTTP/1.1\nHost: x\n{sig}Content-Length: {len}\n\n",
        false,
    );
    c.raw(
        "one bare LF",
        "POST /hook HTTP/1.1\r\nHost: x\n{sig}Content-Length: {len}\r\n\r\n",
        false,
    );
    let fifty = "\r\n".repeat(50);
    c.raw(
        "fifty empty lines first",
        &format!("{fifty}POST /hook HTTP/1.1\r\nHost: x\r\n{{sig}}Content-Length: {{len}}\r\n\r\n"),
        false,
    );
    c.raw(
        "obs-fold",
        "POST /hook HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n folded\r\n{sig}Content-Length: {len}\r\n\r\n",
        false,
    );
    for (name, size_line, trailer) in [
        ("space after chunk size", "{size} ", ""),
        ("junk after chunk size", "{size} junk", ""),
        ("tab after chunk size", "{size}\t", ""),
        ("trailer without colon", "{size}", "no colon\r\n"),
        ("folded trailer", "{size}", "X-T: 1\r\n folded\r\n"),
        (
            "request line as trailer",
            "{size}",
            "GET /admin HTTP/1.1\r\n",
        ),
        ("trailer name with space", "{size}", "X T: 1\r\n"),
        ("chunk extension over 4 KiB", "{size};{ext}", ""),
        ("chunk extension under 4 KiB", "{size};{small}", ""),
    ] {
        let (body, sig) = c.body();
        let size_line = size_line
            .replace("{size}", &format!("{:x}", body.len()))
            .replace("{ext}", &"e".repeat(5000))
            .replace("{small}", &format!("e={}", "v".repeat(3000)));
        c.push(
            name,
            format!(
                "POST /hook HTTP/1.1\r\nHost: x\r\n{sig}Transfer-Encoding: chunked\r\n\r\n{size_line}\r\n{body}\r\n0\r\n{trailer}\r\n"
            )
            .into_bytes(),
        );
    }

    // Seeded random mutations of valid signed requests, some cut.
    let mut rng = Rng(SEED);
    for i in 0..MUTATIONS {
        let (body, sig) = c.body();
        let template = rng.below(4);
        let mut bytes = match template {
            0 => format!(
                "POST /hook HTTP/1.1\r\nHost: hooks.example.com\r\nContent-Type: application/json\r\nUser-Agent: differential/1\r\n{sig}Content-Length: {}\r\n\r\n{body}",
                body.len()
            ),
            1 => format!(
                "POST /p/items/7?x=1 HTTP/1.1\r\nHost: hooks.example.com:8080\r\n{sig}Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
                body.len()
            ),
            2 => format!(
                "POST /hook HTTP/1.0\r\nConnection: keep-alive\r\n{sig}Content-Length: {}\r\n\r\n{body}",
                body.len()
            ),
            _ => format!(
                "POST /hook HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n{sig}Content-Length: {}\r\n\r\n{body}",
                body.len()
            ),
        }
        .into_bytes();
        let head_end = bytes.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        for _ in 0..1 + rng.below(3) {
            mutate(&mut rng, &mut bytes, head_end);
        }
        let cuts = if rng.below(4) == 0 {
            let mut cuts: Vec<usize> = (0..1 + rng.below(2))
                .map(|_| 1 + rng.below(bytes.len() - 1))
                .collect();
            cuts.sort_unstable();
            cuts.dedup();
            cuts
        } else {
            Vec::new()
        };
        c.cases.push(Case {
            name: format!("mutation {i} (template {template})"),
            bytes,
            cuts,
        });
    }
    c
}

/// One random change, nearly always in the head (a changed body only
/// fails its signature).
fn mutate(rng: &mut Rng, bytes: &mut Vec<u8>, head_end: usize) {
    let span = if rng.below(10) == 0 {
        bytes.len()
    } else {
        head_end.min(bytes.len())
    };
    let at = rng.below(span.max(1));
    match rng.below(8) {
        0 | 1 => bytes[at] = *rng.pick(INTERESTING),
        2 => bytes.insert(at, *rng.pick(INTERESTING)),
        3 => {
            bytes.remove(at);
        }
        4 => {
            // A hostile header line after the request line.
            let first = bytes
                .windows(2)
                .position(|w| w == b"\r\n")
                .map_or(0, |p| p + 2);
            let line = format!("{}\r\n", rng.pick(HOSTILE_LINES));
            bytes.splice(first..first, line.into_bytes());
        }
        5 => {
            // A header line written twice.
            let lines = line_starts(&bytes[..span]);
            if lines.len() > 2 {
                let start = lines[1 + rng.below(lines.len() - 2)];
                let end = start
                    + bytes[start..]
                        .windows(2)
                        .position(|w| w == b"\r\n")
                        .unwrap_or(0)
                    + 2;
                let line = bytes[start..end].to_vec();
                bytes.splice(start..start, line);
            }
        }
        6 => bytes[at] = bytes[at].to_ascii_uppercase() ^ 0x20,
        _ => {
            // A line break inside a line: bare LF, or a fold.
            let breaks: [&[u8]; 4] = [b"\n", b"\r\n ", b"\r\n\t", b"\r"];
            let cut = *rng.pick(&breaks);
            bytes.splice(at..at, cut.iter().copied());
        }
    }
}

fn line_starts(head: &[u8]) -> Vec<usize> {
    let mut starts = vec![0];
    starts.extend(
        head.windows(2)
            .enumerate()
            .filter(|(_, w)| w == b"\r\n")
            .map(|(i, _)| i + 2),
    );
    starts
}

// ---------------------------------------------------------------------------
// Sending, and reading what came back.

/// An answer as the sender read it.
#[derive(Debug)]
struct Answer {
    status: u16,
    reject: Option<String>,
}

/// Sends one case on a fresh connection, says it has nothing more, and
/// reads every answer until hookguard closes.
async fn exchange(addr: SocketAddr, case: &Case) -> Result<Vec<Answer>, String> {
    let mut stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let mut from = 0;
    for &cut in case.cuts.iter().chain([&case.bytes.len()]) {
        // hookguard may close before taking everything (a refusal): the
        // rest is then simply not sent.
        if stream.write_all(&case.bytes[from..cut]).await.is_err() {
            break;
        }
        from = cut;
        if cut < case.bytes.len() {
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
    }
    let _ = stream.shutdown().await;
    let mut received = Vec::new();
    let read = tokio::time::timeout(CASE_TIMEOUT, async {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    if read.is_err() {
        return Err(format!(
            "hookguard neither answered nor closed within {CASE_TIMEOUT:?}"
        ));
    }
    answers(&received)
}

/// Splits what a sender received into answers.
fn answers(mut bytes: &[u8]) -> Result<Vec<Answer>, String> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let end = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or_else(|| format!("a cut answer: {:?}", String::from_utf8_lossy(bytes)))?
            + 4;
        let head = String::from_utf8_lossy(&bytes[..end]).into_owned();
        bytes = &bytes[end..];
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.strip_prefix("HTTP/1.1 "))
            .and_then(|l| l.get(..3))
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| format!("not an answer: {head:?}"))?;
        let mut length = None;
        let mut chunked = false;
        let mut reject = None;
        for line in lines.filter(|l| !l.is_empty()) {
            let (name, value) = line.split_once(':').unwrap_or((line, ""));
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse::<usize>().ok(),
                "x-hookguard-reject" => reject = Some(value.trim().to_owned()),
                "transfer-encoding" => chunked = true,
                _ => {}
            }
        }
        // hookguard re-chunks a close-delimited answer (PHP's) for an
        // HTTP/1.1 sender, and passes it on as it is to an HTTP/1.0 one.
        bytes = match (status >= 200, chunked, length) {
            (false, _, _) => bytes,
            (true, true, _) => skip_chunked(bytes)
                .ok_or_else(|| format!("a broken chunked answer after {head:?}"))?,
            (true, false, Some(n)) => bytes.get(n..).ok_or("an answer shorter than its length")?,
            (true, false, None) => &[],
        };
        out.push(Answer { status, reject });
    }
    Ok(out)
}

/// What follows a chunked body that starts `bytes`; `None` when broken.
fn skip_chunked(mut bytes: &[u8]) -> Option<&[u8]> {
    loop {
        let line_end = bytes.windows(2).position(|w| w == b"\r\n")?;
        let size = std::str::from_utf8(&bytes[..line_end]).ok()?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        bytes = &bytes[line_end + 2..];
        if size == 0 {
            // No trailers in what hookguard writes.
            return bytes.strip_prefix(b"\r\n");
        }
        bytes = bytes.get(size..)?.strip_prefix(b"\r\n")?;
    }
}

/// Runs the corpus through one app's hookguard; returns the failures and
/// how many answers came from the app. A case named `valid ...` must be
/// answered by the app: hookguard may not refuse valid input either.
async fn run(app: &App, corpus: &Corpus) -> (Vec<String>, usize) {
    let hg = Hookguard::start(&config(), &format!("http://{}", app.addr)).await;
    let mut failures = Vec::new();
    let mut relayed = 0;
    for case in &corpus.cases {
        let fail = |why: &str| format!("{} / {}: {why}", app.name, case.name);
        let answers = match exchange(hg.addr, case).await {
            Ok(answers) => answers,
            Err(why) => {
                failures.push(fail(&why));
                continue;
            }
        };
        let from_app = |a: &Answer| a.reject.is_none() && a.status >= 200;
        if case.name.starts_with("valid") && !answers.iter().any(|a| from_app(a) && a.status == 200)
        {
            failures.push(fail(&format!(
                "a valid request did not reach the app: {answers:?}"
            )));
        }
        for answer in &answers {
            match answer.reject.as_deref() {
                None if answer.status == 400 => failures.push(fail(
                    "the app answered 400 to a request hookguard forwarded",
                )),
                Some("upstream_unavailable") => {
                    failures.push(fail("the app dropped a request hookguard forwarded"))
                }
                _ => relayed += usize::from(from_app(answer)),
            }
        }
    }
    drop(hg);
    (failures, relayed)
}

/// Checks what an app recorded: each request verified by hookguard and
/// carrying a body the test signed, exactly.
fn check_recorded(app: &App, corpus: &Corpus) -> (Vec<String>, usize) {
    let text = std::fs::read_to_string(&app.log).unwrap_or_default();
    let mut failures = Vec::new();
    let mut count = 0;
    for line in text.lines() {
        count += 1;
        // {"method", "target", "headers": [[name, value]...], "body": hex}
        let record: serde_json::Value = match serde_json::from_str(line) {
            Ok(record) => record,
            Err(e) => {
                failures.push(format!("{}: an unreadable record ({e}): {line}", app.name));
                continue;
            }
        };
        let text = |key: &str| record[key].as_str().unwrap_or_default();
        let body = hex::decode(text("body")).unwrap_or_default();
        let headers = record["headers"].as_array().cloned().unwrap_or_default();
        let verified: Vec<&str> = headers
            .iter()
            .filter(|h| {
                h[0].as_str()
                    .is_some_and(|n| n.eq_ignore_ascii_case("x-verified-by"))
            })
            .filter_map(|h| h[1].as_str())
            .collect();
        let marked = matches!(
            verified[..],
            ["hookguard; route=hook; scheme=hmac; key=0"]
                | ["hookguard; route=prefix; scheme=hmac; key=0"]
        );
        if !marked || text("method") != "POST" || !corpus.signed.contains(&body) {
            failures.push(format!(
                "{}: the app received a request the test did not sign: {} {} {:?} body {:?}",
                app.name,
                text("method"),
                text("target"),
                headers,
                String::from_utf8_lossy(&body)
            ));
        }
    }
    (failures, count)
}

#[tokio::test]
async fn no_hostile_head_reaches_node_php_or_h11_unsigned_and_none_is_forwarded_to_be_refused() {
    let dir = TempDir::new("differential");
    let mut apps = Vec::new();
    apps.extend(start_node(&dir.0));
    apps.extend(start_php(&dir.0).await);
    apps.extend(start_h11(&dir.0));
    if apps.is_empty() {
        eprintln!("SKIPPED differential: none of node, php, python3 h11 is available");
        return;
    }
    let corpus = Arc::new(corpus());
    let apps: Vec<Arc<App>> = apps.into_iter().map(Arc::new).collect();
    let started = Instant::now();
    // The apps in parallel: each run is a sequence of socket waits.
    let runs: Vec<_> = apps
        .iter()
        .map(|app| {
            let (app, corpus) = (app.clone(), corpus.clone());
            tokio::spawn(async move { run(&app, &corpus).await })
        })
        .collect();
    let mut failures = Vec::new();
    for (app, run) in apps.iter().zip(runs) {
        let (mut failed, relayed) = run.await.unwrap();
        let (mut wrong, recorded) = check_recorded(app, &corpus);
        eprintln!(
            "differential: {} cases to {}: {relayed} answered by the app, {recorded} recorded by it",
            corpus.cases.len(),
            app.name
        );
        assert!(
            recorded >= 20,
            "{}: only {recorded} requests reached the app; the valid cases alone are more",
            app.name
        );
        failures.append(&mut failed);
        failures.append(&mut wrong);
    }
    eprintln!("differential: done in {:?}", started.elapsed());
    assert!(
        failures.is_empty(),
        "{} failures (seed {SEED:#x}):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
