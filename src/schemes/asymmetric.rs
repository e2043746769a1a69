//! Public-key presets: Discord and Telnyx (Ed25519), SendGrid (ECDSA P-256).
//!
//! All sign the timestamp header's text followed by the body (Telnyx with a
//! `|` between them), and all are
//! configured with `public_keys` instead of `secrets`: hookguard holds
//! nothing that could forge a request, and so cannot sign one either. Keys
//! are decoded and checked at config load ([`parse_ed25519`],
//! [`parse_p256`]), so a bad key is a config error, not a stream of 401s.

use std::time::Duration;

use base64::Engine;
use http::header::HeaderName;
use p256::ecdsa::signature::DigestVerifier;
use p256::pkcs8::DecodePublicKey;
use sha2::{Digest, Sha256};

use super::encoding::{self, Encoding};
use super::{RequestView, Scheme, Verified};
use crate::reject::{Reason, Reject};

/// A prepared public key.
#[derive(Debug, Clone)]
pub enum PublicKey {
    /// Discord's application public key.
    Ed25519(ed25519_dalek::VerifyingKey),
    /// SendGrid's verification key.
    P256(p256::ecdsa::VerifyingKey),
}

/// Decodes a Discord public key: 64 hex characters (as the developer portal
/// shows it).
pub fn parse_ed25519(text: &[u8]) -> Result<PublicKey, String> {
    let text = std::str::from_utf8(text).map_err(|_| "not text")?.trim();
    let bytes: [u8; 32] = hex::decode(text)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or("an Ed25519 public key is 64 hex characters (32 bytes)")?;
    ed25519_dalek::VerifyingKey::from_bytes(&bytes)
        .map(PublicKey::Ed25519)
        .map_err(|_| "not a valid Ed25519 public key (not a curve point)".to_owned())
}

/// Decodes a Telnyx public key: base64 of the 32 key bytes (as Telnyx's
/// portal shows it; telnyx-python `lib/webhook_verification.py`).
pub fn parse_ed25519_base64(text: &[u8]) -> Result<PublicKey, String> {
    let text = std::str::from_utf8(text).map_err(|_| "not text")?.trim();
    let bytes: [u8; 32] = encoding::decode(Encoding::Base64, text)
        .and_then(|b| b.try_into().ok())
        .ok_or("a Telnyx public key is base64 of 32 bytes (44 characters)")?;
    ed25519_dalek::VerifyingKey::from_bytes(&bytes)
        .map(PublicKey::Ed25519)
        .map_err(|_| "not a valid Ed25519 public key (not a curve point)".to_owned())
}

/// Decodes a SendGrid verification key: base64 DER SubjectPublicKeyInfo
/// (as SendGrid's settings page shows it), or the same as PEM.
pub fn parse_p256(text: &[u8]) -> Result<PublicKey, String> {
    let text = std::str::from_utf8(text).map_err(|_| "not text")?.trim();
    let key = if text.starts_with("-----BEGIN") {
        p256::ecdsa::VerifyingKey::from_public_key_pem(text).map_err(|e| e.to_string())
    } else {
        let der = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|_| "expected base64 DER (SubjectPublicKeyInfo) or PEM".to_owned())?;
        p256::ecdsa::VerifyingKey::from_public_key_der(&der).map_err(|e| e.to_string())
    };
    key.map(PublicKey::P256)
        .map_err(|e| format!("not an ECDSA P-256 public key in SubjectPublicKeyInfo form ({e})"))
}

/// Which provider's rules apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `X-Signature-Ed25519` (hex) over `{timestamp}{body}`.
    Discord,
    /// `telnyx-signature-ed25519` (base64) over `{timestamp}|{body}`
    /// (telnyx-python 4.189.0 `lib/webhook_verification.py`).
    Telnyx,
    /// `X-Twilio-Email-Event-Webhook-Signature` (base64 DER) over
    /// `{timestamp}{body}`.
    Sendgrid,
}

impl Kind {
    /// What goes between the timestamp and the body in the signed message.
    fn separator(self) -> &'static [u8] {
        match self {
            Kind::Telnyx => b"|",
            Kind::Discord | Kind::Sendgrid => b"",
        }
    }

    fn headers(self) -> (HeaderName, HeaderName) {
        match self {
            Kind::Discord => (
                HeaderName::from_static("x-signature-ed25519"),
                HeaderName::from_static("x-signature-timestamp"),
            ),
            Kind::Telnyx => (
                HeaderName::from_static("telnyx-signature-ed25519"),
                HeaderName::from_static("telnyx-timestamp"),
            ),
            Kind::Sendgrid => (
                HeaderName::from_static("x-twilio-email-event-webhook-signature"),
                HeaderName::from_static("x-twilio-email-event-webhook-timestamp"),
            ),
        }
    }
}

/// A public-key scheme prepared for one route.
#[derive(Debug)]
pub struct AsymmetricScheme {
    kind: Kind,
    key_ids: Vec<String>,
    keys: Vec<PublicKey>,
}

impl AsymmetricScheme {
    /// Keys must match `kind` (the config layer parses them with the
    /// matching function).
    pub fn new(kind: Kind, keys: Vec<(String, PublicKey)>) -> Self {
        AsymmetricScheme {
            kind,
            key_ids: keys.iter().map(|(id, _)| id.clone()).collect(),
            keys: keys.into_iter().map(|(_, k)| k).collect(),
        }
    }
}

impl Scheme for AsymmetricScheme {
    fn name(&self) -> &'static str {
        match self.kind {
            Kind::Discord => "discord",
            Kind::Telnyx => "telnyx",
            Kind::Sendgrid => "sendgrid",
        }
    }

    fn key_ids(&self) -> &[String] {
        &self.key_ids
    }

    fn describe(&self) -> String {
        let (sig, ts) = self.kind.headers();
        match self.kind {
            Kind::Discord => format!(
                "Ed25519 signature (hex) in header {sig} over \"{{timestamp}}{{body}}\"; timestamp in {ts} (s)"
            ),
            Kind::Telnyx => format!(
                "Ed25519 signature (base64) in header {sig} over \"{{timestamp}}|{{body}}\"; timestamp in {ts} (s)"
            ),
            Kind::Sendgrid => format!(
                "ECDSA P-256/SHA-256 signature (base64 DER) in header {sig} over \"{{timestamp}}{{body}}\"; timestamp in {ts} (s)"
            ),
        }
    }

    fn default_tolerance(&self) -> Duration {
        Duration::from_secs(300)
    }

    fn signed_message(&self, request: &RequestView<'_>) -> Option<Result<Vec<u8>, Reject>> {
        let (_, ts_header) = self.kind.headers();
        Some(timestamp(request, &ts_header).map(|(text, _)| {
            let mut message = text.as_bytes().to_vec();
            message.extend_from_slice(self.kind.separator());
            message.extend_from_slice(request.body);
            message
        }))
    }

    fn verify(&self, request: &RequestView<'_>) -> Result<Verified, Reject> {
        let (sig_header, ts_header) = self.kind.headers();
        let raw = request
            .required(&sig_header, Reason::MissingSignature)?
            .to_str()
            .unwrap_or("")
            .trim();
        let (text, seconds) = timestamp(request, &ts_header)?;
        let malformed = |what: &str| {
            Reject::with(
                Reason::MalformedSignature,
                format!("header {sig_header} is not {what}"),
            )
        };
        let matched = match self.kind {
            Kind::Discord | Kind::Telnyx => {
                let (decoded, what) = match self.kind {
                    Kind::Telnyx => (
                        encoding::decode(Encoding::Base64, raw),
                        "a base64 Ed25519 signature (64 bytes)",
                    ),
                    _ => (
                        hex::decode(raw).ok(),
                        "a hex Ed25519 signature (128 characters)",
                    ),
                };
                let bytes: [u8; 64] = decoded
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| malformed(what))?;
                let signature = ed25519_dalek::Signature::from_bytes(&bytes);
                // Ed25519 hashes R, A and the message in one pass, so the
                // message is assembled; these bodies are small.
                let separator = self.kind.separator();
                let mut message =
                    Vec::with_capacity(text.len() + separator.len() + request.body.len());
                message.extend_from_slice(text.as_bytes());
                message.extend_from_slice(separator);
                message.extend_from_slice(request.body);
                self.keys
                    .iter()
                    .position(|key| match key {
                        // verify_strict also refuses small-order keys and
                        // non-canonical encodings (malleability).
                        PublicKey::Ed25519(k) => k.verify_strict(&message, &signature).is_ok(),
                        PublicKey::P256(_) => false,
                    })
                    .map(|i| (i, bytes.to_vec()))
            }
            Kind::Sendgrid => {
                let der = encoding::decode(Encoding::Base64, raw)
                    .ok_or_else(|| malformed("a base64 DER ECDSA signature"))?;
                let signature = p256::ecdsa::Signature::from_der(&der)
                    .map_err(|_| malformed("a base64 DER ECDSA signature"))?;
                // The digest is streamed: the body is not copied.
                let digest = Sha256::new()
                    .chain_update(text.as_bytes())
                    .chain_update(request.body);
                self.keys
                    .iter()
                    .position(|key| match key {
                        PublicKey::P256(k) => k.verify_digest(digest.clone(), &signature).is_ok(),
                        PublicKey::Ed25519(_) => false,
                    })
                    .map(|i| (i, der))
            }
        };
        match matched {
            Some((key, signature)) => Ok(Verified {
                key,
                signature,
                timestamp: Some(seconds),
            }),
            None => Err(Reject::with(
                Reason::BadSignature,
                format!(
                    "the {} signature matches none of the route's {} public key(s)",
                    self.name(),
                    self.keys.len()
                ),
            )),
        }
    }
}

fn timestamp<'r>(request: &RequestView<'r>, header: &HeaderName) -> Result<(&'r str, i64), Reject> {
    let raw = request.required(header, Reason::MissingTimestamp)?;
    let malformed = || {
        Reject::with(
            Reason::MalformedTimestamp,
            format!("header {header} must be an integer number of Unix seconds"),
        )
    };
    let text = raw.to_str().map_err(|_| malformed())?;
    let seconds = text.trim().parse().map_err(|_| malformed())?;
    Ok((text, seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked_at_load() {
        assert!(parse_ed25519(b"zz").unwrap_err().contains("64 hex"));
        assert!(parse_p256(b"not base64!")
            .unwrap_err()
            .contains("base64 DER"));
        // sendgrid-nodejs packages/eventwebhook/src/eventwebhook.spec.js
        let sendgrid =
            b"MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEDr2LjtURuePQzplybdC+u4CwrqDqBaWjcMMsTbhdbcwHBcepxo7yAQGhHPTnlvFYPAZFceEu/1FwCM/QmGUhA==";
        assert!(matches!(parse_p256(sendgrid), Ok(PublicKey::P256(_))));
    }
}
