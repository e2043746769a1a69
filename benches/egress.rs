//! Egress overhead against a local TLS partner, beside the reference of
//! calling the partner directly: the same 1 KiB JSON POST, over a
//! keep-alive TLS connection with the same rustls settings (the route's own
//! `ClientConfig`), from a pooled hyper client. `through_egress` is the app
//! calling hookguard's egress listener over plain loopback HTTP, which
//! signs (HMAC-SHA256 over `{timestamp}.{body}`), adds the bearer key and
//! an idempotency key, and sends on its pooled TLS connection. The
//! difference of the two latencies is what egress adds, printed first as
//! percentiles (p50, p90, p99 of 10,000 sequential calls per path, in
//! alternating rounds), then as criterion's means; the throughput group is
//! 32 concurrent callers, each waiting for its answer before sending the
//! next, through egress.
//!
//! `cargo bench --bench egress`

#[path = "../tests/all/support/partner.rs"]
mod partner;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::{Connect, HttpConnector};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpListener;

use hookguard::config::Config;
use hookguard::egress::{self, Partners};
use hookguard::metrics::Metrics;

/// Concurrent callers in the throughput group.
const CALLERS: u64 = 32;
/// Rounds of sequential calls per path for the percentiles, alternating.
const LATENCY_ROUNDS: usize = 4;
/// Calls per round.
const LATENCY_CALLS: usize = 2500;

fn body() -> Bytes {
    let mut text = String::from("{\"id\":\"lead_1\",\"note\":\"");
    text.push_str(&"x".repeat(1024 - text.len() - 2));
    text.push_str("\"}");
    Bytes::from(text)
}

struct Setup {
    runtime: tokio::runtime::Runtime,
    partner: partner::Partner,
    egress: std::net::SocketAddr,
    config: Config,
    _dir: std::path::PathBuf,
}

fn setup() -> Setup {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = std::env::temp_dir().join(format!("hookguard-egress-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let pki = partner::test_pki(&dir);
    let ca_file = pki.ca_file.clone();
    let partner = runtime.block_on(partner::Partner::start(Some(pki.server), Vec::new()));
    let text = format!(
        r#"[server]
upstream = "http://127.0.0.1:9"
[[routes]]
name = "in"
path = "/in"
scheme = "github"
secrets = [{{ value = "s" }}]

[egress]
[[egress.routes]]
name = "partner"
prefix = "/partner"
upstream = "https://{addr}"
tls = {{ ca_file = "{ca_file}" }}
auth = {{ bearer = {{ value = "bench-api-key" }} }}
[egress.routes.sign]
header = "X-Signature"
prefix = "sha256="
message = "{{timestamp}}.{{body}}"
timestamp_header = "X-Timestamp"
secrets = [{{ value = "bench-hmac-secret" }}]
[egress.routes.idempotency]
header = "Idempotency-Key"
"#,
        addr = partner.addr
    );
    let config = Config::from_toml(&text, &|_: &str| None::<String>).expect("bench config");
    let egress = runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let partners = Arc::new(Partners::new(
            config.egress.clone().expect("[egress]"),
            &Metrics::new(),
        ));
        // Never stopped: the bench ends with its runtime.
        let (stop, stopped) = tokio::sync::watch::channel(false);
        std::mem::forget(stop);
        tokio::spawn(egress::serve(listener, partners, stopped));
        addr
    });
    Setup {
        runtime,
        partner,
        egress,
        config,
        _dir: dir,
    }
}

/// One POST of `body` to `url`, answered 200, its body read.
async fn post<C>(client: &Client<C, Full<Bytes>>, url: &str, body: &Bytes)
where
    C: Connect + Clone + Send + Sync + 'static,
{
    let request = Request::post(url)
        .header("content-type", "application/json")
        .body(Full::new(body.clone()))
        .expect("request");
    let response = client.request(request).await.expect("answer");
    assert_eq!(response.status(), 200);
    response.into_body().collect().await.expect("body");
}

/// `iters` POSTs one after the other; the partner forgets them after.
fn sequential<C>(
    setup: &Setup,
    client: &Client<C, Full<Bytes>>,
    url: &str,
    body: &Bytes,
    iters: u64,
) -> Duration
where
    C: Connect + Clone + Send + Sync + 'static,
{
    setup.runtime.block_on(async {
        let start = Instant::now();
        for _ in 0..iters {
            post(client, url, body).await;
        }
        let took = start.elapsed();
        setup.partner.seen.lock().expect("lock").clear();
        took
    })
}

/// Latency of `n` sequential POSTs, one by one.
fn latencies<C>(
    setup: &Setup,
    client: &Client<C, Full<Bytes>>,
    url: &str,
    body: &Bytes,
    n: usize,
) -> Vec<Duration>
where
    C: Connect + Clone + Send + Sync + 'static,
{
    setup.runtime.block_on(async {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let start = Instant::now();
            post(client, url, body).await;
            out.push(start.elapsed());
        }
        setup.partner.seen.lock().expect("lock").clear();
        out
    })
}

/// The `q` quantile of sorted `values`.
fn quantile(values: &[Duration], q: f64) -> Duration {
    values[((values.len() - 1) as f64 * q).round() as usize]
}

fn egress_bench(c: &mut Criterion) {
    let setup = setup();
    let body = body();
    let route = &setup.config.egress.as_ref().expect("[egress]").routes[0];
    let tls = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config((*route.tls).clone())
        .https_only()
        .enable_http1()
        .build();
    let direct: Client<_, Full<Bytes>> = setup
        .runtime
        .block_on(async { Client::builder(TokioExecutor::new()).build(tls) });
    let plain: Client<HttpConnector, Full<Bytes>> = setup
        .runtime
        .block_on(async { Client::builder(TokioExecutor::new()).build_http() });
    let direct_url = format!("https://{}/v1/leads", setup.partner.addr);
    let egress_url = format!("http://{}/partner/v1/leads", setup.egress);

    // Percentiles, which criterion does not report: rounds of calls
    // alternate between the two paths, so that both see the same machine.
    let (mut direct_all, mut egress_all) = (Vec::new(), Vec::new());
    for _ in 0..LATENCY_ROUNDS {
        direct_all.extend(latencies(
            &setup,
            &direct,
            &direct_url,
            &body,
            LATENCY_CALLS,
        ));
        egress_all.extend(latencies(&setup, &plain, &egress_url, &body, LATENCY_CALLS));
    }
    direct_all.sort();
    egress_all.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let line = |q: f64| {
        let (d, e) = (quantile(&direct_all, q), quantile(&egress_all, q));
        format!(
            "p{:<4} direct {:.3} ms, through egress {:.3} ms, added {:.3} ms",
            q * 100.0,
            ms(d),
            ms(e),
            ms(e) - ms(d)
        )
    };
    println!(
        "egress latency, {} sequential calls per path in {LATENCY_ROUNDS} alternating rounds:\n  {}\n  {}\n  {}",
        direct_all.len(),
        line(0.5),
        line(0.9),
        line(0.99)
    );

    let mut group = c.benchmark_group("egress_1KiB_tls_partner");
    group.measurement_time(Duration::from_secs(8));
    group.sample_size(30);
    group.bench_function("direct_tls (reference)", |b| {
        b.iter_custom(|iters| sequential(&setup, &direct, &direct_url, &body, iters))
    });
    group.bench_function("through_egress", |b| {
        b.iter_custom(|iters| sequential(&setup, &plain, &egress_url, &body, iters))
    });
    group.throughput(Throughput::Elements(CALLERS));
    group.bench_function("through_egress_32_callers", |b| {
        b.iter_custom(|iters| {
            setup.runtime.block_on(async {
                let start = Instant::now();
                let mut callers = tokio::task::JoinSet::new();
                for _ in 0..CALLERS {
                    let (client, url, body) = (plain.clone(), egress_url.clone(), body.clone());
                    callers.spawn(async move {
                        for _ in 0..iters {
                            post(&client, &url, &body).await;
                        }
                    });
                }
                while let Some(done) = callers.join_next().await {
                    done.expect("caller");
                }
                let took = start.elapsed();
                setup.partner.seen.lock().expect("lock").clear();
                took
            })
        })
    });
    group.finish();
    let _ = std::fs::remove_dir_all(&setup._dir);
}

criterion_group!(benches, egress_bench);
criterion_main!(benches);
