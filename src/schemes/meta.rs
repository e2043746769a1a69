//! Meta (`scheme = "meta"`: WhatsApp, Instagram, Messenger webhooks):
//! GitHub's signature for deliveries, plus the subscription handshake.
//!
//! Deliveries are POSTs signed like GitHub's (`X-Hub-Signature-256:
//! sha256=<hex HMAC-SHA256 of the body>` with the app secret). When a URL
//! is registered, Meta first sends an unsigned `GET ?hub.mode=subscribe&
//! hub.challenge=..&hub.verify_token=..`; the verify token is a second
//! shared secret the user typed into Meta's dashboard, so that request is
//! authenticated by comparing it (through SHA-256 digests, in constant
//! time) with the route's `verify_token`, and then forwarded, marked
//! verified, for the app to echo `hub.challenge` (re-read:
//! developers.facebook.com/docs/messenger-platform/webhook-reference and
//! developers.facebook.com/docs/graph-api/webhooks/getting-started; the
//! same for WhatsApp and Instagram, which the `whatsapp`, `instagram`,
//! `facebook`, `facebook_messenger` and `facebook_graph_api` names share).

use http::Method;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::hmac::{Description, HmacScheme};
use super::{presets, RequestView, Scheme, Unsigned, Verified};
use crate::dedupe::DedupeSource;
use crate::reject::{Reason, Reject};

/// Meta's scheme for one route.
#[derive(Debug)]
pub struct MetaScheme {
    deliveries: HmacScheme,
    /// SHA-256 of the configured verify token.
    verify_token: [u8; 32],
}

impl MetaScheme {
    /// Prepares the app secrets `keys` for deliveries, and the digest of
    /// the verify token for the handshake; `name` is the registry's
    /// (`meta`, or an alias such as `whatsapp`).
    pub fn new(name: &'static str, keys: Vec<(String, Vec<u8>)>, verify_token: &[u8]) -> Self {
        // Deliveries are signed exactly as GitHub signs; only GitHub's
        // delivery-id header is absent, so the signature alone dedupes.
        let deliveries = Description {
            dedupe: vec![DedupeSource::Signature],
            ..presets::github()
        };
        MetaScheme {
            deliveries: HmacScheme::new(name, deliveries, keys),
            verify_token: Sha256::digest(verify_token).into(),
        }
    }

    fn handshake(&self, request: &RequestView<'_>) -> Result<Verified, Reject> {
        let query = request.uri.query().unwrap_or("");
        let param = |name: &str| {
            form_urlencoded::parse(query.as_bytes())
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        if param("hub.mode").as_deref() != Some("subscribe") {
            return Err(Reject::new(
                Reason::MissingSignature,
                "a GET must be Meta's subscription handshake (hub.mode=subscribe)",
            ));
        }
        let token = param("hub.verify_token")
            .ok_or_else(|| Reject::new(Reason::MissingSignature, "hub.verify_token is missing"))?;
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if !bool::from(digest.ct_eq(&self.verify_token)) {
            return Err(Reject::new(
                Reason::BadSignature,
                "hub.verify_token does not match the route's verify_token",
            ));
        }
        let challenge = param("hub.challenge").unwrap_or_default();
        Ok(Verified {
            key: 0,
            signature: Sha256::digest(challenge.as_bytes()).to_vec(),
            timestamp: None,
        })
    }
}

impl Scheme for MetaScheme {
    fn name(&self) -> &'static str {
        self.deliveries.name()
    }

    fn key_ids(&self) -> &[String] {
        self.deliveries.key_ids()
    }

    fn describe(&self) -> String {
        format!(
            "{}; GET ?hub.mode=subscribe is authenticated by hub.verify_token",
            self.deliveries.describe()
        )
    }

    fn default_dedupe(&self) -> Vec<DedupeSource> {
        vec![DedupeSource::Signature]
    }

    fn signed_message(&self, request: &RequestView<'_>) -> Option<Result<Vec<u8>, Reject>> {
        if request.method == Method::GET {
            None
        } else {
            self.deliveries.signed_message(request)
        }
    }

    fn sends_secret(&self) -> bool {
        true
    }

    fn verify(&self, request: &RequestView<'_>) -> Result<Verified, Reject> {
        if request.method == Method::GET {
            self.handshake(request)
        } else {
            self.deliveries.verify(request)
        }
    }

    fn sign(&self, key: usize, request: &mut Unsigned) -> Result<(), String> {
        self.deliveries.sign(key, request)
    }
}
