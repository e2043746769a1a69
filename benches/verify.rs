//! Micro-benchmarks of the per-request work, each beside a reference
//! measured in the same run, so that results read as ratios and survive
//! noisy machines: verification per scheme against a bare HMAC-SHA256 of the
//! body, message building against copying the body, the replay store's
//! claim + complete against a plain `HashMap` insert, and reading a request
//! head (httparse, framing, the header map) against httparse alone.
//!
//! `cargo bench --bench verify`

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hmac::{Hmac, Mac};
use http::{HeaderMap, Method, Uri};
use sha2::Sha256;

use hookguard::config::Config;
use hookguard::replay::memory::MemoryStore;
use hookguard::replay::{ClaimResult, ReplayStore};
use hookguard::schemes::registry::{Entry, Family, KeyKind, SCHEMES};
use hookguard::schemes::template::{Template, Values};
use hookguard::schemes::{RequestView, Unsigned};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn body(size: usize) -> Bytes {
    let mut text = String::from("{\"id\":\"evt_1\",\"note\":\"");
    text.push_str(&"x".repeat(size.saturating_sub(text.len() + 2)));
    text.push_str("\"}");
    Bytes::from(text)
}

/// A route of `scheme`, with a request signed by the route's own `sign`;
/// the route gives whatever else the registry says the scheme needs.
fn signed(scheme: &Entry, size: usize) -> (Config, Unsigned) {
    let mut extra = String::new();
    if scheme.signs_url {
        extra.push_str("public_url = \"https://example.com/hook\"\n");
    }
    if scheme.needs_verify_token {
        extra.push_str("verify_token = { value = \"bench-token\" }\n");
    }
    if matches!(scheme.family, Family::Generic) {
        extra.push_str("[routes.hmac]\nheader = \"X-Signature\"\nprefix = \"sha256=\"\ntimestamp_header = \"X-Timestamp\"\nmessage = \"{timestamp}.{body}\"\n");
    }
    let secret = scheme.sample_secret().unwrap_or(SECRET);
    let text = format!(
        "[server]\nupstream = \"http://127.0.0.1:1\"\n[[routes]]\nname = \"b\"\npath = \"/hook\"\nscheme = \"{}\"\nsecrets = [{{ value = \"{secret}\" }}]\n{extra}",
        scheme.name
    );
    let config = Config::from_toml(&text, &|_: &str| None::<String>).expect("bench config");
    let mut request = Unsigned {
        method: Method::POST,
        uri: Uri::from_static("/hook"),
        headers: HeaderMap::new(),
        body: body(size),
        now: 1_700_000_000,
        id: "msg_bench".into(),
    };
    request
        .headers
        .insert("content-type", "application/json".parse().expect("static"));
    config.routes[0]
        .scheme
        .sign(0, &mut request)
        .expect("symmetric schemes sign");
    (config, request)
}

fn verification(c: &mut Criterion) {
    for size in [1024usize, 256 * 1024] {
        let mut group = c.benchmark_group(format!("verify/{size}B"));
        group.throughput(Throughput::Bytes(size as u64));
        let payload = body(size);
        group.bench_function("reference: HMAC-SHA256 of the body", |b| {
            let key = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("any key");
            b.iter(|| {
                let mut mac = key.clone();
                mac.update(black_box(&payload));
                black_box(mac.finalize().into_bytes())
            })
        });
        // Every scheme that can sign its own requests: the public-key ones
        // cannot, and are measured by their tests' vectors instead.
        for scheme in SCHEMES.iter().filter(|s| s.keys == KeyKind::Secrets) {
            let (config, request) = signed(scheme, size);
            let scheme_impl = &config.routes[0].scheme;
            let view = RequestView {
                method: &request.method,
                uri: &request.uri,
                headers: &request.headers,
                body: &request.body,
            };
            assert!(
                scheme_impl.verify(&view).is_ok(),
                "{} signs what it verifies",
                scheme.name
            );
            group.bench_with_input(BenchmarkId::new("scheme", scheme.name), &view, |b, view| {
                b.iter(|| black_box(scheme_impl.verify(black_box(view)).is_ok()))
            });
        }
        group.finish();
    }
}

fn message_building(c: &mut Criterion) {
    let payload = body(1024);
    let headers = HeaderMap::new();
    let template = Template::parse("{id}.{timestamp}.{body}").expect("valid");
    let values = Values {
        method: "POST",
        path: "/hook",
        body: &payload,
        timestamp: Some("1700000000"),
        id: Some("msg_1"),
        headers: &headers,
        url: None,
        json: None,
    };
    let mut group = c.benchmark_group("message/1KiB");
    group.bench_function("reference: copy the body", |b| {
        b.iter(|| black_box(payload.to_vec()))
    });
    group.bench_function("template feed", |b| {
        b.iter(|| {
            let mut length = 0usize;
            template
                .feed(black_box(&values), &mut |bytes| length += bytes.len())
                .expect("no header parts");
            black_box(length)
        })
    });
    group.finish();
}

fn replay_store(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let ttl = Duration::from_secs(3600);
    let mut group = c.benchmark_group("replay/claim+complete");
    group.bench_function("reference: HashMap insert", |b| {
        let mut map: HashMap<u128, (u64, u64)> = HashMap::new();
        let mut n = 0u128;
        b.iter(|| {
            n += 1;
            map.insert(
                black_box(n.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)),
                (1, 2),
            );
            if map.len() > 1_000_000 {
                map.clear();
            }
        })
    });
    group.bench_function("memory store", |b| {
        let store = MemoryStore::new(1_000_000, Arc::new(|_| {}));
        let mut n = 0u128;
        b.iter(|| {
            n += 1;
            let key = n
                .wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)
                .to_le_bytes();
            runtime.block_on(async {
                if let Ok(ClaimResult::Claimed(claim)) = store.claim(vec![key], ttl).await {
                    store.complete(&claim, None).await.expect("memory store");
                }
            })
        })
    });
    group.finish();
}

/// A typical signed webhook head, as the bench's load generator sends it.
const HEAD: &[u8] = b"POST /bench/hook HTTP/1.1\r\nHost: bench.local\r\n\
Content-Type: application/json\r\n\
X-Signature: sha256=5d3f0a3c1b2e4f6a7b8c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c\r\n\
X-Timestamp: 1700000000\r\nContent-Length: 1024\r\nX-Delivery: 1700000000-42-1-7\r\n\r\n";

fn head_parsing(c: &mut Criterion) {
    let mut group = c.benchmark_group("head/7 headers");
    group.bench_function("reference: httparse alone", |b| {
        b.iter(|| {
            // The same copy into a read buffer as below, so that the ratio
            // is the cost of framing and the header map.
            let buf = bytes::BytesMut::from(black_box(HEAD));
            let mut headers = [httparse::EMPTY_HEADER; 100];
            let mut request = httparse::Request::new(&mut headers);
            black_box(request.parse(&buf).expect("valid head"));
        })
    });
    group.bench_function("http1::head::parse", |b| {
        b.iter(|| {
            let mut buf = bytes::BytesMut::from(black_box(HEAD));
            black_box(hookguard::http1::head::parse(&mut buf, 100, 64 * 1024).expect("valid head"))
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    verification,
    message_building,
    replay_store,
    head_parsing
);
criterion_main!(benches);
