//! GitLab (`scheme = "gitlab"`): the `X-Gitlab-Token` header equals the
//! configured secret.
//!
//! There is no signature: the token is a shared password sent with every
//! delivery. It is compared through SHA-256 digests in constant time, so
//! neither its contents nor its length leak through timing. The token is
//! never used as a dedupe value (it is the same for every delivery and is a
//! secret); the default dedupe keys are the `X-Gitlab-Event-UUID` header and
//! `Idempotency-Key`, which GitLab (17.4 and later) keeps the same when it
//! sends a delivery again, where a resent request gets a new event UUID
//! (re-read: docs.gitlab.com/user/project/integrations/webhooks, delivery
//! headers and "resend the request ... with the same `Idempotency-Key`
//! header"; gitlab-org/gitlab merge request 160952).

use http::header::HeaderName;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{RequestView, Scheme, Unsigned, Verified};
use crate::dedupe::DedupeSource;
use crate::reject::{Reason, Reject};

const TOKEN: HeaderName = HeaderName::from_static("x-gitlab-token");
const EVENT_UUID: HeaderName = HeaderName::from_static("x-gitlab-event-uuid");
const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// GitLab's token check for one route.
pub struct GitlabScheme {
    key_ids: Vec<String>,
    /// SHA-256 of each accepted token.
    digests: Vec<[u8; 32]>,
    /// The tokens themselves, kept only for [`Scheme::sign`].
    tokens: Vec<Vec<u8>>,
    /// `X-Gitlab-Event-UUID`, held so that it can be lent out.
    event_uuid: HeaderName,
}

impl std::fmt::Debug for GitlabScheme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitlabScheme")
            .field("key_ids", &self.key_ids)
            .finish_non_exhaustive()
    }
}

impl GitlabScheme {
    /// Prepares the digests of the accepted tokens.
    pub fn new(keys: Vec<(String, Vec<u8>)>) -> Self {
        GitlabScheme {
            digests: keys.iter().map(|(_, k)| Sha256::digest(k).into()).collect(),
            key_ids: keys.iter().map(|(id, _)| id.clone()).collect(),
            tokens: keys.into_iter().map(|(_, k)| k).collect(),
            event_uuid: EVENT_UUID,
        }
    }
}

impl Scheme for GitlabScheme {
    fn name(&self) -> &'static str {
        "gitlab"
    }

    fn key_ids(&self) -> &[String] {
        &self.key_ids
    }

    fn describe(&self) -> String {
        format!("header {TOKEN} must equal the secret (constant-time comparison); no signature, no timestamp")
    }

    fn delivery_header(&self) -> Option<&HeaderName> {
        Some(&self.event_uuid)
    }

    fn default_dedupe(&self) -> Vec<DedupeSource> {
        vec![
            DedupeSource::Header(EVENT_UUID),
            DedupeSource::Header(IDEMPOTENCY_KEY),
        ]
    }

    fn sends_secret(&self) -> bool {
        true
    }

    fn verify(&self, request: &RequestView<'_>) -> Result<Verified, Reject> {
        let value = request.required(&TOKEN, Reason::MissingSignature)?;
        let digest: [u8; 32] = Sha256::digest(value.as_bytes()).into();
        for (key, expected) in self.digests.iter().enumerate() {
            if bool::from(expected.ct_eq(&digest)) {
                // Not the token: a `dedupe = ["signature"]` on this route
                // then means "the same body again".
                return Ok(Verified {
                    key,
                    signature: Sha256::digest(request.body).to_vec(),
                    timestamp: None,
                });
            }
        }
        Err(Reject::with(
            Reason::BadSignature,
            format!(
                "header {TOKEN} matches none of the route's {} token(s)",
                self.digests.len()
            ),
        ))
    }

    fn sign(&self, key: usize, request: &mut Unsigned) -> Result<(), String> {
        let token = http::HeaderValue::from_bytes(&self.tokens[key])
            .map_err(|_| "the token is not a valid header value".to_owned())?;
        request.headers.insert(TOKEN, token);
        let id = http::HeaderValue::from_str(&request.id)
            .map_err(|_| "the delivery id is not a valid header value".to_owned())?;
        request.headers.insert(EVENT_UUID, id.clone());
        request.headers.insert(IDEMPOTENCY_KEY, id);
        Ok(())
    }
}
