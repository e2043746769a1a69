//! Amazon SNS: an RSA signature (PKCS#1 v1.5) carried in the JSON body,
//! over a canonical string of the message's fields, with the key of the
//! certificate that the body's `SigningCertURL` names.
//!
//! Facts from AWS's documentation, "Verifying the signatures of Amazon SNS
//! messages" (docs.aws.amazon.com/sns/latest/dg/sns-verify-signature-of-message.html
//! and its page "...-verify-message-signature.html"), and the HTTP/S
//! message formats (docs.aws.amazon.com/sns/latest/dg/http-header.html):
//! `SignatureVersion` `1` signs with SHA1withRSA, `2` with SHA256withRSA;
//! `Signature` is base64; the string to sign is `Name\nvalue\n` for each
//! signed field present, in this order: for a `Notification` `Message`,
//! `MessageId`, `Subject` (when present), `Timestamp`, `TopicArn`, `Type`;
//! for a `SubscriptionConfirmation` or `UnsubscribeConfirmation`
//! `Message`, `MessageId`, `SubscribeURL`, `Timestamp`, `Token`,
//! `TopicArn`, `Type`. hookguard takes every one of the eight names that
//! is present whatever the type, as AWS's Ruby SDK does
//! (`Aws::SNS::MessageVerifier`, `SIGNABLE_KEYS`): the same string for
//! every message SNS sends, and a signable field added to a message (a
//! `SubscribeURL` in a notification) breaks its signature instead of
//! riding along unsigned. AWS says to reject messages of
//! an unexpected `TopicArn`: anyone can publish a validly signed message
//! from a topic of their own, so the route lists its topics
//! (`topic_arns`) and any other is refused before anything is fetched.
//!
//! The certificate URL is pinned to `https://sns.<region>.amazonaws.com/…
//! .pem` ([`Pin::Sns`]) and fetched off the request path by
//! [`super::fetched`]. The file holds the leaf alone, so it is trusted as
//! AWS's own validators trust it (aws-sdk-ruby `Aws::SNS::MessageVerifier`,
//! aws-php-sns-message-validator): the pinned host, over TLS checked
//! against the system's roots, served it.
//!
//! Confirmations (`SubscriptionConfirmation`, `UnsubscribeConfirmation`)
//! are verified like notifications and forwarded: the app confirms by
//! visiting the verified `SubscribeURL` (hookguard makes no outbound call
//! a request asks for).

use std::sync::Arc;

use base64::Engine;
use http::header::HeaderName;
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::signature::Verifier;
use rsa::RsaPublicKey;
use rustls_pki_types::{CertificateDer, UnixTime};
use serde_json::{Map, Value};

use super::fetched::{leaf_rsa_key, CertSource, Certs, Pin, Rules, TestOrigin};
use super::hmac::TimestampUnit;
use super::{RequestView, Scheme, Verified};
use crate::dedupe::DedupeSource;
use crate::reject::{Reason, Reject};

/// The header SNS sends the message id in (logged with each request; the
/// dedupe key is the signed `MessageId` field instead).
static DELIVERY: HeaderName = HeaderName::from_static("x-amz-sns-message-id");

/// The fields that are signed when present, in order.
const SIGNABLE: &[&str] = &[
    "Message",
    "MessageId",
    "Subject",
    "SubscribeURL",
    "Timestamp",
    "Token",
    "TopicArn",
    "Type",
];

/// SNS's retries of one message (an HTTP/S delivery policy) last at most
/// an hour; with five minutes of clock skew, the default window.
const TOLERANCE: std::time::Duration = std::time::Duration::from_secs(3600 + 300);

/// How SNS's fetched certificates are trusted.
static RULES: Rules<RsaPublicKey> = Rules {
    scheme: "sns",
    sender: "Amazon SNS",
    field: "field SigningCertURL",
    prepare,
};

/// Takes the leaf's RSA key (2048 bits or more); the file's trust is the
/// pinned host's TLS certificate (see the module doc), so there is no
/// chain to check here.
fn prepare(
    _: &CertSource,
    chain: &[CertificateDer<'static>],
    _: UnixTime,
) -> Result<RsaPublicKey, String> {
    leaf_rsa_key(chain)
}

/// The `sns` scheme prepared for one route.
#[derive(Debug)]
pub struct SnsScheme {
    topics: Vec<String>,
    key_ids: Vec<String>,
    certs: Arc<Certs<RsaPublicKey>>,
}

/// A parsed message: its fields, and what verifying needs.
struct Message {
    fields: Map<String, Value>,
    version: u8,
    signature: Vec<u8>,
}

impl SnsScheme {
    /// `topics` are the ARNs the route accepts; certificates come from
    /// SNS's hosts, or from the `test` origin alone.
    pub fn new(topics: Vec<String>, test: Option<TestOrigin>) -> Self {
        SnsScheme {
            topics,
            key_ids: vec!["sns-certificate".to_owned()],
            certs: Certs::new(&RULES, CertSource::new(Pin::Sns, test)),
        }
    }

    /// Reads the JSON body, its type, signature version and signature.
    fn parse(body: &[u8]) -> Result<Message, Reject> {
        let malformed = |why: &str| Reject::with(Reason::MalformedSignature, why.to_owned());
        let Ok(Value::Object(fields)) = serde_json::from_slice(body) else {
            return Err(malformed("the body is not an SNS message (a JSON object)"));
        };
        let text = |name: &str| fields.get(name).and_then(Value::as_str);
        let version = match text("SignatureVersion") {
            Some("1") => 1,
            Some("2") => 2,
            Some(_) => return Err(malformed("SignatureVersion must be \"1\" or \"2\"")),
            None => return Err(malformed("field SignatureVersion is missing")),
        };
        let signature = text("Signature").ok_or_else(|| {
            Reject::with(
                Reason::MissingSignature,
                "field Signature is missing".to_owned(),
            )
        })?;
        let signature = base64::engine::general_purpose::STANDARD
            .decode(signature)
            .map_err(|_| malformed("field Signature is not base64"))?;
        Ok(Message {
            fields,
            version,
            signature,
        })
    }

    /// The string to sign: `Name\nvalue\n` for each signable field
    /// present (a `null` is absent, as AWS's JavaScript validator treats a
    /// `Subject` of `null`), in order.
    fn canonical(fields: &Map<String, Value>) -> Result<Vec<u8>, Reject> {
        let known = matches!(
            fields.get("Type").and_then(Value::as_str),
            Some("Notification" | "SubscriptionConfirmation" | "UnsubscribeConfirmation")
        );
        if !known {
            return Err(Reject::with(
                Reason::MalformedSignature,
                "field Type is not Notification, SubscriptionConfirmation or UnsubscribeConfirmation".to_owned(),
            ));
        }
        let mut out = Vec::with_capacity(512);
        for name in SIGNABLE {
            match fields.get(*name) {
                None | Some(Value::Null) => {}
                Some(Value::String(value)) => {
                    for part in [name.as_bytes(), b"\n", value.as_bytes(), b"\n"] {
                        out.extend_from_slice(part);
                    }
                }
                Some(_) => {
                    return Err(Reject::with(
                        Reason::MalformedSignature,
                        format!("field {name} is not a string"),
                    ))
                }
            }
        }
        Ok(out)
    }
}

impl Scheme for SnsScheme {
    fn name(&self) -> &'static str {
        "sns"
    }

    fn key_ids(&self) -> &[String] {
        &self.key_ids
    }

    fn describe(&self) -> String {
        "RSA signature (base64) in the JSON body's Signature, SignatureVersion 1 (SHA1withRSA) or 2 (SHA256withRSA), over \"Name\\nvalue\\n\" of the message's signed fields; key from the certificate at SigningCertURL (https://sns.<region>.amazonaws.com/….pem only, fetched and cached off the request path); TopicArn must be one of the route's topic_arns; timestamp in Timestamp (RFC 3339)".to_owned()
    }

    fn delivery_header(&self) -> Option<&HeaderName> {
        Some(&DELIVERY)
    }

    fn default_dedupe(&self) -> Vec<DedupeSource> {
        vec![DedupeSource::Json("/MessageId".to_owned())]
    }

    fn default_tolerance(&self) -> std::time::Duration {
        TOLERANCE
    }

    fn timestamp_unit(&self) -> Option<TimestampUnit> {
        Some(TimestampUnit::Rfc3339)
    }

    fn signed_message(&self, request: &RequestView<'_>) -> Option<Result<Vec<u8>, Reject>> {
        Some(Self::parse(request.body).and_then(|m| Self::canonical(&m.fields)))
    }

    fn verify(&self, request: &RequestView<'_>) -> Result<Verified, Reject> {
        let message = Self::parse(request.body)?;
        let text = |name: &str| message.fields.get(name).and_then(Value::as_str);
        let topic = text("TopicArn").ok_or_else(|| {
            Reject::with(
                Reason::MissingSignedHeader,
                "field TopicArn is missing".to_owned(),
            )
        })?;
        if !self.topics.iter().any(|t| t == topic) {
            return Err(Reject::with(
                Reason::BadSignature,
                "the message's TopicArn is not one of the route's topic_arns".to_owned(),
            ));
        }
        let time = text("Timestamp").ok_or_else(|| {
            Reject::with(
                Reason::MissingTimestamp,
                "field Timestamp is missing".to_owned(),
            )
        })?;
        let seconds = TimestampUnit::Rfc3339.parse(time).ok_or_else(|| {
            Reject::with(
                Reason::MalformedTimestamp,
                "field Timestamp must be an RFC 3339 date-time".to_owned(),
            )
        })?;
        let canonical = Self::canonical(&message.fields)?;
        let signature = Signature::try_from(message.signature.as_slice()).map_err(|_| {
            Reject::with(
                Reason::MalformedSignature,
                "field Signature is not an RSA signature".to_owned(),
            )
        })?;
        let url = text("SigningCertURL").ok_or_else(|| {
            Reject::with(
                Reason::MissingSignedHeader,
                "field SigningCertURL is missing".to_owned(),
            )
        })?;
        let cached = self.certs.key(url)?;
        let key = cached.key.clone();
        let good = match message.version {
            1 => VerifyingKey::<sha1::Sha1>::new(key).verify(&canonical, &signature),
            _ => VerifyingKey::<sha2::Sha256>::new(key).verify(&canonical, &signature),
        };
        good.map_err(|_| {
            Reject::with(
                Reason::BadSignature,
                "the SNS signature does not match the certificate's key".to_owned(),
            )
        })?;
        Ok(Verified {
            key: 0,
            signature: message.signature,
            timestamp: Some(seconds),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_canonical_string_takes_the_signable_fields_present_in_order() {
        let notification = serde_json::json!({
            "Type": "Notification", "MessageId": "m-1", "TopicArn": "arn:aws:sns:us-east-1:1:t",
            "Message": "hello\nworld", "Timestamp": "2026-12-01T05:00:00.000Z",
            "Subject": null, "SignatureVersion": "2", "UnsubscribeURL": "not signed",
        });
        let Value::Object(fields) = notification else {
            unreachable!()
        };
        assert_eq!(
            SnsScheme::canonical(&fields).unwrap(),
            b"Message\nhello\nworld\nMessageId\nm-1\nTimestamp\n2026-12-01T05:00:00.000Z\nTopicArn\narn:aws:sns:us-east-1:1:t\nType\nNotification\n"
        );
        let confirmation = serde_json::json!({
            "Type": "UnsubscribeConfirmation", "MessageId": "m-2", "Token": "tok",
            "TopicArn": "arn", "Message": "confirm", "SubscribeURL": "https://sns/confirm",
            "Timestamp": "t",
        });
        let Value::Object(fields) = confirmation else {
            unreachable!()
        };
        assert_eq!(
            SnsScheme::canonical(&fields).unwrap(),
            b"Message\nconfirm\nMessageId\nm-2\nSubscribeURL\nhttps://sns/confirm\nTimestamp\nt\nToken\ntok\nTopicArn\narn\nType\nUnsubscribeConfirmation\n"
        );
    }
}
