//! PayPal: RSA (`SHA256withRSA`, PKCS#1 v1.5) over
//! `{transmission_id}|{transmission_time}|{webhook_id}|{crc32(body)}`, with
//! the key of the X.509 certificate that `PAYPAL-CERT-URL` names, verified
//! offline (no call to PayPal's verify-webhook-signature API).
//!
//! Facts from PayPal's own SDK, paypalrestsdk (PyPI, github.com/paypal/
//! PayPal-Python-SDK) `paypalrestsdk/notifications.py`, `WebhookEvent`:
//! the signed string is the transmission id, time, the webhook's id and the
//! unsigned CRC-32 of the body in decimal, joined by `|`; the signature
//! header is base64; a certificate is used only when it chains to a trusted
//! root, has not expired and names a host ending in `.paypal.com`. PayPal's
//! Java SDK (PayPal-Java-SDK `rest-api-sdk/.../base/SSLUtil.java`,
//! `validateCertificateChain`) narrows the name to one starting with
//! `messageverificationcerts` (live and sandbox), which hookguard follows.
//! Headers: developer.paypal.com/api/rest/webhooks/rest/. No official SDK
//! pins the certificate URL's host (the Node SDK calls PayPal's online
//! API instead); the pin here is hookguard's.
//!
//! The webhook id comes from the route, never the request. The certificate
//! URL comes from the request, so it is pinned: `https`, port 443, a host
//! ending in `.paypal.com`; anything else is refused without a fetch (the
//! SDK fetches whatever the header says). Fetching, caching and refreshing
//! are [`super::fetched`]'s, shared with SNS: a request whose certificate
//! is not cached yet is answered 503 `key_unavailable` with `Retry-After`,
//! and PayPal retries it; a cached certificate is fetched again in the
//! background a week before it expires.

use std::sync::Arc;

use base64::Engine;
use http::header::HeaderName;
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::signature::Verifier;
use rustls_pki_types::{CertificateDer, UnixTime};
use sha2::Sha256;

use super::fetched::{leaf_rsa_key, CertSource, Certs, Pin, Rules, TestOrigin};
use super::hmac::TimestampUnit;
use super::{RequestView, Scheme, Verified};
use crate::dedupe::DedupeSource;
use crate::reject::{Reason, Reject};

const SIG: HeaderName = HeaderName::from_static("paypal-transmission-sig");
const ID: HeaderName = HeaderName::from_static("paypal-transmission-id");
const TIME: HeaderName = HeaderName::from_static("paypal-transmission-time");
const CERT_URL: HeaderName = HeaderName::from_static("paypal-cert-url");
const AUTH_ALGO: HeaderName = HeaderName::from_static("paypal-auth-algo");
/// [`ID`] with an address, for [`Scheme::delivery_header`].
static DELIVERY: HeaderName = ID;

/// The one algorithm accepted: the request names it, but never chooses it.
pub const AUTH_ALGO_VALUE: &str = "SHA256withRSA";

/// Hosts of PayPal's certificates end with this (the SDKs' subject rule,
/// applied to the URL too by [`Pin::Paypal`]).
const PAYPAL_SUFFIX: &str = ".paypal.com";
/// The certificate's name starts with this (the Java SDK's rule):
/// `messageverificationcerts.paypal.com`, and `.sandbox.paypal.com`.
const SUBJECT_PREFIX: &str = "messageverificationcerts.";

/// How PayPal's fetched certificates are trusted.
static RULES: Rules<VerifyingKey<Sha256>> = Rules {
    scheme: "paypal",
    sender: "PayPal",
    field: "header paypal-cert-url",
    prepare,
};

/// Checks the chain at `at` and takes the leaf's RSA key (2048 bits or
/// more).
fn prepare(
    source: &CertSource,
    chain: &[CertificateDer<'static>],
    at: UnixTime,
) -> Result<VerifyingKey<Sha256>, String> {
    check_chain(source, chain, at)?;
    leaf_rsa_key(chain).map(VerifyingKey::new)
}

/// Checks that the leaf chains to a trusted root through the file's other
/// certificates, is within its validity period at `at`, may serve TLS
/// (PayPal's certificates are DigiCert server certificates), and is named
/// `messageverificationcerts.*.paypal.com` (the SDKs check the subject's CN;
/// webpki reads names from the subjectAltName, as RFC 6125 asks, and a
/// public CA puts the CN there too).
fn check_chain(
    source: &CertSource,
    chain: &[CertificateDer<'static>],
    at: UnixTime,
) -> Result<(), String> {
    let leaf = chain.first().ok_or("no certificate in the file")?;
    let leaf = webpki::EndEntityCert::try_from(leaf).map_err(|e| e.to_string())?;
    let anchors = source.anchors();
    leaf.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &anchors,
        &chain[1..],
        at,
        webpki::KeyUsage::server_auth(),
        None,
        None,
    )
    .map_err(|e| format!("{e:?}"))?;
    let paypal = leaf.valid_dns_names().any(|name| {
        let name = name.to_ascii_lowercase();
        name.starts_with(SUBJECT_PREFIX) && name.ends_with(PAYPAL_SUFFIX)
    });
    paypal.then_some(()).ok_or_else(|| {
        format!("it is not named {SUBJECT_PREFIX}…{PAYPAL_SUFFIX} (PayPal's signing certificate)")
    })
}

/// The `paypal` scheme prepared for one route.
#[derive(Debug)]
pub struct PaypalScheme {
    webhook_id: String,
    key_ids: Vec<String>,
    certs: Arc<Certs<VerifyingKey<Sha256>>>,
}

impl PaypalScheme {
    /// `webhook_id` is PayPal's id for the webhook (the dashboard's
    /// "Webhook ID"); certificates come from PayPal's hosts, or from the
    /// `test` origin alone.
    pub fn new(webhook_id: String, test: Option<TestOrigin>) -> Self {
        PaypalScheme {
            webhook_id,
            key_ids: vec!["paypal-certificate".to_owned()],
            certs: Certs::new(&RULES, CertSource::new(Pin::Paypal, test)),
        }
    }

    /// The signed message: `{id}|{time}|{webhook_id}|{crc32 decimal}`.
    fn message(&self, request: &RequestView<'_>) -> Result<Vec<u8>, Reject> {
        let id = header(request, &ID, Reason::MissingSignedHeader)?;
        let time = header(request, &TIME, Reason::MissingTimestamp)?;
        let crc = crc32fast::hash(request.body);
        let mut digits = itoa::Buffer::new();
        Ok([
            id.as_bytes(),
            time.as_bytes(),
            self.webhook_id.as_bytes(),
            digits.format(crc).as_bytes(),
        ]
        .join(&b'|'))
    }
}

fn header<'r>(
    request: &RequestView<'r>,
    name: &HeaderName,
    missing: Reason,
) -> Result<&'r str, Reject> {
    request.required(name, missing)?.to_str().map_err(|_| {
        Reject::with(
            Reason::MalformedSignature,
            format!("header {name} is not text"),
        )
    })
}

impl Scheme for PaypalScheme {
    fn name(&self) -> &'static str {
        "paypal"
    }

    fn key_ids(&self) -> &[String] {
        &self.key_ids
    }

    fn describe(&self) -> String {
        format!(
            "RSA {AUTH_ALGO_VALUE} signature (base64) in header {SIG} over \"{{{ID}}}|{{{TIME}}}|{{webhook_id}}|{{crc32(body), decimal}}\"; key from the certificate at {CERT_URL} (https, *{PAYPAL_SUFFIX} only, fetched and cached off the request path); {AUTH_ALGO} must be {AUTH_ALGO_VALUE}; timestamp in {TIME} (RFC 3339)"
        )
    }

    fn delivery_header(&self) -> Option<&HeaderName> {
        Some(&DELIVERY)
    }

    fn default_dedupe(&self) -> Vec<DedupeSource> {
        vec![DedupeSource::Header(ID)]
    }

    fn timestamp_unit(&self) -> Option<TimestampUnit> {
        Some(TimestampUnit::Rfc3339)
    }

    fn signed_message(&self, request: &RequestView<'_>) -> Option<Result<Vec<u8>, Reject>> {
        Some(self.message(request))
    }

    fn verify(&self, request: &RequestView<'_>) -> Result<Verified, Reject> {
        let signature = header(request, &SIG, Reason::MissingSignature)?;
        let algo = header(request, &AUTH_ALGO, Reason::MissingSignedHeader)?;
        if algo != AUTH_ALGO_VALUE {
            return Err(Reject::with(
                Reason::MalformedSignature,
                format!("header {AUTH_ALGO} must be {AUTH_ALGO_VALUE}"),
            ));
        }
        let time = header(request, &TIME, Reason::MissingTimestamp)?;
        let seconds = TimestampUnit::Rfc3339.parse(time).ok_or_else(|| {
            Reject::with(
                Reason::MalformedTimestamp,
                format!("header {TIME} must be an RFC 3339 date-time"),
            )
        })?;
        let message = self.message(request)?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(signature.trim())
            .ok()
            .and_then(|bytes| {
                Signature::try_from(bytes.as_slice())
                    .ok()
                    .map(|s| (s, bytes))
            })
            .ok_or_else(|| {
                Reject::with(
                    Reason::MalformedSignature,
                    format!("header {SIG} is not a base64 RSA signature"),
                )
            })?;
        let url = header(request, &CERT_URL, Reason::MissingSignedHeader)?;
        let cached = self.certs.key(url)?;
        cached.key.verify(&message, &decoded.0).map_err(|_| {
            Reject::with(
                Reason::BadSignature,
                "the PayPal signature does not match the certificate's key".to_owned(),
            )
        })?;
        Ok(Verified {
            key: 0,
            signature: decoded.1,
            timestamp: Some(seconds),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_is_id_time_webhook_id_and_the_unsigned_decimal_crc() {
        let scheme = PaypalScheme::new("WH-1".to_owned(), None);
        let mut headers = http::HeaderMap::new();
        headers.insert(ID, "id-1".parse().unwrap());
        headers.insert(TIME, "2026-12-01T03:00:00Z".parse().unwrap());
        let body = bytes::Bytes::from_static(b"123456789");
        let request = RequestView {
            method: &http::Method::POST,
            uri: &http::Uri::from_static("/paypal"),
            headers: &headers,
            body: &body,
        };
        // 0xCBF43926, CRC-32's check value, is above i32::MAX: unsigned.
        assert_eq!(
            scheme.message(&request).unwrap(),
            b"id-1|2026-12-01T03:00:00Z|WH-1|3421780262"
        );
    }
}
