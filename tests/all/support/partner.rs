//! A partner for egress tests and benches: a real HTTP/1.1 server on
//! 127.0.0.1:0, plain or TLS (with a CA made on the spot), that records
//! every request and answers from a script. `benches/egress.rs` includes
//! this file by path.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// One request as the partner saw it, and when.
#[derive(Debug, Clone)]
pub struct Seen {
    pub at: Instant,
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// An answer the partner gives, in turn; 200 when the script is spent.
#[derive(Debug, Clone)]
pub struct Scripted {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub delay: Duration,
}

pub fn scripted(status: u16) -> Scripted {
    Scripted {
        status,
        headers: Vec::new(),
        delay: Duration::ZERO,
    }
}

/// A real partner on 127.0.0.1:0 that records every request and answers
/// from its script; TLS when given a server config.
#[derive(Clone)]
pub struct Partner {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    pub script: Arc<Mutex<VecDeque<Scripted>>>,
}

impl Partner {
    pub async fn start(tls: Option<Arc<rustls::ServerConfig>>, script: Vec<Scripted>) -> Partner {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let partner = Partner {
            addr: listener.local_addr().unwrap(),
            seen: Arc::default(),
            script: Arc::new(Mutex::new(script.into())),
        };
        let serving = partner.clone();
        tokio::spawn(async move {
            let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (partner, acceptor) = (serving.clone(), acceptor.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let partner = partner.clone();
                        async move { Ok::<_, Infallible>(partner.answer(request).await) }
                    });
                    let http = hyper::server::conn::http1::Builder::new();
                    match acceptor {
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                let _ = http.serve_connection(TokioIo::new(stream), service).await;
                            }
                        }
                        None => {
                            let _ = http.serve_connection(TokioIo::new(stream), service).await;
                        }
                    }
                });
            }
        });
        partner
    }

    async fn answer(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let at = Instant::now();
        let (parts, body) = request.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        self.seen.lock().unwrap().push(Seen {
            at,
            method: parts.method.to_string(),
            path: parts.uri.to_string(),
            headers: parts.headers,
            body,
        });
        let scripted = self
            .script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_else(|| scripted(200));
        // Not even a zero sleep when there is no delay: tokio's timer
        // rounds it up to its next 1 ms tick.
        if !scripted.delay.is_zero() {
            tokio::time::sleep(scripted.delay).await;
        }
        let mut response = Response::new(Full::new(Bytes::from(format!(
            "{{\"partner\":\"answered {}\"}}",
            scripted.status
        ))));
        *response.status_mut() = StatusCode::from_u16(scripted.status).unwrap();
        response
            .headers_mut()
            .insert("content-type", "application/json".parse().unwrap());
        response
            .headers_mut()
            .insert("x-partner", "yes".parse().unwrap());
        for (name, value) in scripted.headers {
            response.headers_mut().insert(name, value.parse().unwrap());
        }
        response
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// A CA made for the test, what a partner needs from it, and what a
/// client presents to a partner that asks for a certificate.
pub struct TestPki {
    /// The CA, PEM, for a route's `tls.ca_file`.
    pub ca_file: String,
    /// A partner with a certificate for 127.0.0.1 the CA signed.
    pub server: Arc<rustls::ServerConfig>,
    /// The same partner, requiring a client certificate the CA signed.
    pub mutual: Arc<rustls::ServerConfig>,
    /// A client certificate (PEM) the CA signed, for `tls.client_cert`.
    pub client_cert: String,
    /// Its key (PKCS#8 PEM), for `tls.client_key`.
    pub client_key: String,
}

/// Makes a [`TestPki`], writing its PEM files to `dir`.
pub fn test_pki(dir: &Path) -> TestPki {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "hookguard egress test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let client_key = rcgen::KeyPair::generate().unwrap();
    let mut client_params =
        rcgen::CertificateParams::new(vec!["hookguard-client".to_owned()]).unwrap();
    client_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let client = client_params.signed_by(&client_key, &issuer).unwrap();
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let ca_file = write("partner-ca.pem", ca_cert.pem());
    let client_cert = write("client.pem", client.pem());
    let client_key_file = write("client.key", client_key.serialize_pem());
    let key = || rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into());
    let builder = || {
        rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
    };
    let server = builder()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], key())
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca_cert.der().clone()).unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let mutual = builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![leaf.der().clone()], key())
        .unwrap();
    TestPki {
        ca_file,
        server: Arc::new(server),
        mutual: Arc::new(mutual),
        client_cert,
        client_key: client_key_file,
    }
}
