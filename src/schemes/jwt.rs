//! Tochka (`scheme = "tochka"`): the body is a compact JWS signed with
//! RS256.
//!
//! The token is checked by hand rather than with a JWT library so that the
//! token can never choose how it is checked: the header's `alg` must be
//! exactly `RS256` (`none`, `HS256` with the public key as an HMAC secret,
//! and every other algorithm are refused before any cryptography), `crit`
//! extensions are refused, and the signature is RSASSA-PKCS1-v1_5 with
//! SHA-256 over the first two segments as received. `iat`, when present, is
//! the timestamp the route's window applies to; `exp`, when present, must
//! not have passed.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs8::DecodePublicKey;
use rsa::signature::Verifier;
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, RsaPublicKey};
use sha2::Sha256;

use super::{RequestView, Scheme, Verified};
use crate::reject::{Reason, Reject};

/// Keys shorter than this are refused at load.
const MIN_BITS: usize = 2048;
/// Clock skew allowed past `exp`.
const EXP_LEEWAY: i64 = 60;

/// Decodes an RSA public key given as PEM (`BEGIN PUBLIC KEY` or `BEGIN RSA
/// PUBLIC KEY`) or as a JWK (`{"kty":"RSA","n":..,"e":..}`, as Tochka
/// publishes it).
pub fn parse_rsa(text: &[u8]) -> Result<RsaPublicKey, String> {
    let text = std::str::from_utf8(text).map_err(|_| "not text")?.trim();
    let key = if text.starts_with("-----BEGIN PUBLIC KEY") {
        RsaPublicKey::from_public_key_pem(text)
            .map_err(|e| format!("not an RSA public key ({e})"))?
    } else if text.starts_with("-----BEGIN RSA PUBLIC KEY") {
        RsaPublicKey::from_pkcs1_pem(text).map_err(|e| format!("not an RSA public key ({e})"))?
    } else if text.starts_with('{') {
        jwk(text)?
    } else {
        return Err(
            "expected a PEM public key or a JWK object ({\"kty\":\"RSA\",\"n\":...,\"e\":...})"
                .to_owned(),
        );
    };
    if key.size() * 8 < MIN_BITS {
        return Err(format!(
            "the RSA key has {} bits; at least {MIN_BITS} are required",
            key.size() * 8
        ));
    }
    Ok(key)
}

fn jwk(text: &str) -> Result<RsaPublicKey, String> {
    let doc: serde_json::Value =
        serde_json::from_str(text).map_err(|_| "the JWK is not valid JSON".to_owned())?;
    let field = |name: &str| doc.get(name).and_then(|v| v.as_str());
    if field("kty") != Some("RSA") {
        return Err("the JWK's kty must be \"RSA\"".to_owned());
    }
    if let Some(alg) = field("alg") {
        if alg != "RS256" {
            return Err(format!("the JWK's alg is {alg:?}; only RS256 is accepted"));
        }
    }
    let number = |name: &str| {
        field(name)
            .and_then(|v| URL_SAFE_NO_PAD.decode(v.trim_end_matches('=')).ok())
            .map(|b| BigUint::from_bytes_be(&b))
            .ok_or_else(|| format!("the JWK's {name} is missing or not base64url"))
    };
    RsaPublicKey::new(number("n")?, number("e")?).map_err(|e| format!("not an RSA key ({e})"))
}

/// A compact JWS split into its parts.
#[derive(Debug)]
pub struct Jws<'t> {
    /// `header.payload`, the signed input, as received.
    pub signing_input: &'t str,
    /// The decoded header.
    pub header: serde_json::Value,
    /// The decoded payload.
    pub payload: serde_json::Value,
    /// The decoded signature.
    pub signature: Vec<u8>,
}

/// Splits and decodes a compact JWS; refuses anything but `alg = RS256`.
pub fn parse(token: &str) -> Result<Jws<'_>, Reject> {
    let malformed = |what: &str| {
        Reject::with(
            Reason::MalformedSignature,
            format!("the body is not a compact JWS: {what}"),
        )
    };
    let token = token.trim();
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed("expected three dot-separated segments"));
    };
    let decode = |segment: &str, what: &str| {
        URL_SAFE_NO_PAD
            .decode(segment)
            .map_err(|_| malformed(&format!("the {what} is not base64url")))
    };
    let header: serde_json::Value = serde_json::from_slice(&decode(h, "header")?)
        .map_err(|_| malformed("the header is not JSON"))?;
    match header.get("alg").and_then(|a| a.as_str()) {
        Some("RS256") => {}
        Some(other) => {
            return Err(Reject::with(
                Reason::BadSignature,
                format!("the token's alg is {other:?}; only RS256 is accepted"),
            ))
        }
        None => return Err(malformed("the header has no alg")),
    }
    if header.get("crit").is_some() {
        return Err(Reject::new(
            Reason::BadSignature,
            "the token has critical header extensions, which are not supported",
        ));
    }
    let payload: serde_json::Value = serde_json::from_slice(&decode(p, "payload")?)
        .map_err(|_| malformed("the payload is not JSON"))?;
    let signature = decode(s, "signature")?;
    if signature.is_empty() {
        return Err(malformed("the signature is empty"));
    }
    Ok(Jws {
        signing_input: &token[..h.len() + 1 + p.len()],
        header,
        payload,
        signature,
    })
}

/// Tochka's scheme for one route.
#[derive(Debug)]
pub struct JwtScheme {
    key_ids: Vec<String>,
    keys: Vec<rsa::pkcs1v15::VerifyingKey<Sha256>>,
}

impl JwtScheme {
    /// Prepares the verifying keys.
    pub fn new(keys: Vec<(String, RsaPublicKey)>) -> Self {
        JwtScheme {
            key_ids: keys.iter().map(|(id, _)| id.clone()).collect(),
            keys: keys
                .into_iter()
                .map(|(_, k)| rsa::pkcs1v15::VerifyingKey::new(k))
                .collect(),
        }
    }

    /// Verifies `body` as of `now` (Unix seconds).
    pub fn verify_at(&self, body: &[u8], now: i64) -> Result<Verified, Reject> {
        if body.is_empty() {
            return Err(Reject::new(
                Reason::MissingSignature,
                "the body is empty; tochka sends a JWS as the body",
            ));
        }
        let text = std::str::from_utf8(body).map_err(|_| {
            Reject::new(Reason::MalformedSignature, "the body is not a compact JWS")
        })?;
        let jws = parse(text)?;
        let signature =
            rsa::pkcs1v15::Signature::try_from(jws.signature.as_slice()).map_err(|_| {
                Reject::new(Reason::MalformedSignature, "the JWS signature is malformed")
            })?;
        let key = self
            .keys
            .iter()
            .position(|k| k.verify(jws.signing_input.as_bytes(), &signature).is_ok())
            .ok_or_else(|| {
                Reject::with(
                    Reason::BadSignature,
                    format!(
                        "the JWS signature matches none of the route's {} public key(s)",
                        self.keys.len()
                    ),
                )
            })?;
        let claim = |name: &str| -> Result<Option<i64>, Reject> {
            match jws.payload.get(name) {
                None => Ok(None),
                Some(v) => v.as_i64().map(Some).ok_or_else(|| {
                    Reject::with(
                        Reason::MalformedTimestamp,
                        format!("the token's {name} is not an integer number of seconds"),
                    )
                }),
            }
        };
        if let Some(exp) = claim("exp")? {
            if now > exp.saturating_add(EXP_LEEWAY) {
                return Err(Reject::with(
                    Reason::StaleTimestamp,
                    format!("the token expired {} s ago", now - exp),
                ));
            }
        }
        Ok(Verified {
            key,
            signature: jws.signature,
            timestamp: claim("iat")?,
        })
    }
}

impl Scheme for JwtScheme {
    fn name(&self) -> &'static str {
        "tochka"
    }

    fn key_ids(&self) -> &[String] {
        &self.key_ids
    }

    fn describe(&self) -> String {
        "the body is a compact JWS; alg must be RS256 (none and others refused), verified with the route's RSA public key(s); iat is the timestamp, exp must not have passed".to_owned()
    }

    fn default_tolerance(&self) -> Duration {
        Duration::from_secs(300)
    }

    fn signed_message(&self, request: &RequestView<'_>) -> Option<Result<Vec<u8>, Reject>> {
        let text = std::str::from_utf8(request.body).unwrap_or("");
        Some(parse(text).map(|jws| jws.signing_input.as_bytes().to_vec()))
    }

    fn verify(&self, request: &RequestView<'_>) -> Result<Verified, Reject> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        self.verify_at(request.body, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(text: &str) -> String {
        URL_SAFE_NO_PAD.encode(text)
    }

    #[test]
    fn parse_splits_three_segments_and_keeps_the_signing_input_as_received() {
        let token = format!("{}.{}.AQID", b64(r#"{"alg":"RS256"}"#), b64(r#"{"iat":5}"#));
        let jws = parse(&token).unwrap();
        assert_eq!(jws.signing_input, &token[..token.rfind('.').unwrap()]);
        assert_eq!(jws.payload["iat"], 5);
        assert_eq!(jws.signature, [1, 2, 3]);
    }

    #[test]
    fn parse_refuses_every_algorithm_but_rs256_before_any_cryptography() {
        for alg in ["none", "None", "HS256", "RS512", "PS256", "ES256", "rs256"] {
            let token = format!(
                "{}.{}.AQID",
                b64(&format!(r#"{{"alg":"{alg}"}}"#)),
                b64("{}")
            );
            let err = parse(&token).unwrap_err();
            assert_eq!(err.reason, Reason::BadSignature, "{alg}");
        }
        let no_alg = format!("{}.{}.AQID", b64("{}"), b64("{}"));
        assert_eq!(
            parse(&no_alg).unwrap_err().reason,
            Reason::MalformedSignature
        );
        let unsigned = format!("{}.{}.", b64(r#"{"alg":"RS256"}"#), b64("{}"));
        assert_eq!(
            parse(&unsigned).unwrap_err().reason,
            Reason::MalformedSignature
        );
    }

    #[test]
    fn keys_are_validated_at_load() {
        assert!(parse_rsa(b"ssh-rsa AAAA").unwrap_err().contains("PEM"));
        assert!(
            parse_rsa(br#"{"kty":"RSA","alg":"RS512","n":"AQAB","e":"AQAB"}"#)
                .unwrap_err()
                .contains("only RS256")
        );
        assert!(parse_rsa(br#"{"kty":"RSA","n":"AQAB","e":"AQAB"}"#).is_err());
    }
}
