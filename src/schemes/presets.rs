//! Provider presets that are filled-in HMAC descriptions.
//!
//! Most providers sign with an HMAC and differ only in where things are and
//! how they are spelled; each of those is one function here returning its
//! [`Description`], run by [`super::hmac::HmacScheme`]. The registry
//! ([`super::registry::SCHEMES`]) gives each its name. Providers whose rules
//! really differ have their own module (Twilio, GitLab, T-Bank, Meta, the
//! asymmetric ones, Tochka's JWT).
//!
//! The facts come from each provider's documentation and SDKs; the tests in
//! `tests/all/presets*.rs` check them against published vectors where there are
//! any, and against an independent signer everywhere.

use std::borrow::Cow;
use std::time::Duration;

use http::header::HeaderName;

use super::encoding::Encoding;
use super::hmac::{
    Algorithm, Description, IdSource, KeyForm, PublicUrl, SignatureSource, TimestampSource,
    TimestampUnit,
};
use super::template::{Part, Template};
use crate::dedupe::DedupeSource;

fn h(name: &'static str) -> HeaderName {
    HeaderName::from_static(name)
}

fn header_sig(names: &[&'static str], prefix: Option<&'static str>) -> SignatureSource {
    SignatureSource::Header {
        names: names.iter().map(|n| h(n)).collect(),
        prefix: prefix.map(Cow::Borrowed),
    }
}

fn parse(template: &str) -> Template {
    Template::parse(template).expect("preset templates are valid")
}

fn seconds(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn header(name: &'static str) -> DedupeSource {
    DedupeSource::Header(h(name))
}

fn json(pointer: &str) -> DedupeSource {
    DedupeSource::Json(pointer.to_owned())
}

/// The plainest shape: a signature header over the body, no timestamp.
fn body_hmac(
    signature: SignatureSource,
    algorithm: Algorithm,
    encoding: Encoding,
    dedupe: Vec<DedupeSource>,
) -> Description {
    Description {
        signature,
        algorithm,
        encoding,
        message: parse("{body}"),
        timestamp: None,
        id: None,
        public_url: None,
        key_form: KeyForm::Raw,
        dedupe,
        tolerance: seconds(300),
    }
}

/// Slack and Zoom: `v0=<hex>` over `v0:{timestamp}:{body}`, the timestamp
/// in its own header.
fn v0_hmac(signature: &'static str, timestamp: &'static str) -> Description {
    Description {
        signature: header_sig(&[signature], Some("v0=")),
        algorithm: Algorithm::Sha256,
        encoding: Encoding::Hex,
        message: parse("v0:{timestamp}:{body}"),
        timestamp: Some(TimestampSource::Header(
            vec![h(timestamp)],
            TimestampUnit::Seconds,
        )),
        id: None,
        public_url: None,
        key_form: KeyForm::Raw,
        dedupe: vec![DedupeSource::Signature],
        tolerance: seconds(300),
    }
}

/// Stripe and Calendly: `t=..,v1=..[,v1=..]` over `{t}.{body}`.
fn t_v1_list(header: &'static str, dedupe: Vec<DedupeSource>, tolerance: Duration) -> Description {
    Description {
        signature: SignatureSource::KvList {
            name: h(header),
            separator: ',',
            timestamp_key: "t",
            signature_key: "v1",
        },
        algorithm: Algorithm::Sha256,
        encoding: Encoding::Hex,
        message: parse("{timestamp}.{body}"),
        timestamp: Some(TimestampSource::List),
        id: None,
        public_url: None,
        key_form: KeyForm::Raw,
        dedupe,
        tolerance,
    }
}

/// Stripe: `Stripe-Signature: t=..,v1=..,v1=..`; the key is the whole
/// `whsec_...` text; `v0` entries are test-mode legacy and ignored.
pub fn stripe() -> Description {
    t_v1_list(
        "stripe-signature",
        vec![DedupeSource::Signature, json("/id")],
        seconds(300),
    )
}

/// GitHub: `X-Hub-Signature-256: sha256=<hex>` over the body.
pub fn github() -> Description {
    body_hmac(
        header_sig(&["x-hub-signature-256"], Some("sha256=")),
        Algorithm::Sha256,
        Encoding::Hex,
        vec![DedupeSource::Signature, header("x-github-delivery")],
    )
}

/// Slack: `X-Slack-Signature: v0=..` with `X-Slack-Request-Timestamp`.
pub fn slack() -> Description {
    v0_hmac("x-slack-signature", "x-slack-request-timestamp")
}

/// Shopify: base64 over the body; newer deliveries drop the `X-` prefix.
pub fn shopify() -> Description {
    body_hmac(
        header_sig(&["x-shopify-hmac-sha256", "shopify-hmac-sha256"], None),
        Algorithm::Sha256,
        Encoding::Base64,
        vec![
            DedupeSource::Signature,
            header("x-shopify-webhook-id"),
            header("shopify-webhook-id"),
        ],
    )
}

/// Standard Webhooks (and Svix, its origin, with `svix-*` names).
pub fn standard_webhooks() -> Description {
    Description {
        signature: SignatureSource::Versioned {
            names: vec![h("webhook-signature"), h("svix-signature")],
            version: "v1",
        },
        algorithm: Algorithm::Sha256,
        encoding: Encoding::Base64,
        message: parse("{id}.{timestamp}.{body}"),
        timestamp: Some(TimestampSource::Header(
            vec![h("webhook-timestamp"), h("svix-timestamp")],
            TimestampUnit::Seconds,
        )),
        id: Some(IdSource::Header(vec![h("webhook-id"), h("svix-id")])),
        public_url: None,
        key_form: KeyForm::WhsecBase64,
        dedupe: vec![
            DedupeSource::Signature,
            header("webhook-id"),
            header("svix-id"),
        ],
        tolerance: seconds(300),
    }
}

/// Paddle: `Paddle-Signature: ts=..;h1=..` over `{ts}:{body}`.
pub fn paddle() -> Description {
    Description {
        signature: SignatureSource::KvList {
            name: h("paddle-signature"),
            separator: ';',
            timestamp_key: "ts",
            signature_key: "h1",
        },
        algorithm: Algorithm::Sha256,
        encoding: Encoding::Hex,
        message: parse("{timestamp}:{body}"),
        timestamp: Some(TimestampSource::List),
        id: None,
        public_url: None,
        key_form: KeyForm::Raw,
        dedupe: vec![DedupeSource::Signature, json("/event_id")],
        tolerance: seconds(300),
    }
}

/// Square: base64 over the public URL (with the received query) and the
/// body.
pub fn square(public_url: String) -> Description {
    Description {
        signature: header_sig(&["x-square-hmacsha256-signature"], None),
        algorithm: Algorithm::Sha256,
        encoding: Encoding::Base64,
        message: Template::from_parts("{url}{body}", vec![Part::Url, Part::Body]),
        timestamp: None,
        id: None,
        public_url: Some(PublicUrl {
            base: public_url,
            rewrite: None,
        }),
        key_form: KeyForm::Raw,
        dedupe: vec![DedupeSource::Signature, json("/event_id")],
        tolerance: seconds(300),
    }
}

/// HubSpot v3 (v1 and v2 signatures are not accepted): base64 over the
/// method, the public URL, the body and the timestamp (ms).
pub fn hubspot(public_url: String) -> Description {
    Description {
        signature: header_sig(&["x-hubspot-signature-v3"], None),
        algorithm: Algorithm::Sha256,
        encoding: Encoding::Base64,
        message: Template::from_parts(
            "{method}{url}{body}{timestamp}",
            vec![Part::Method, Part::Url, Part::Body, Part::Timestamp],
        ),
        timestamp: Some(TimestampSource::Header(
            vec![h("x-hubspot-request-timestamp")],
            TimestampUnit::Millis,
        )),
        id: None,
        public_url: Some(PublicUrl {
            base: public_url,
            rewrite: Some(hubspot_decode),
        }),
        key_form: KeyForm::Raw,
        dedupe: vec![DedupeSource::Signature],
        tolerance: seconds(300),
    }
}

/// HubSpot's v3 rule: these escapes are decoded before signing, others are
/// left as sent.
fn hubspot_decode(url: &str) -> String {
    const DECODED: &[(&str, char)] = &[
        ("%3A", ':'),
        ("%2F", '/'),
        ("%3F", '?'),
        ("%40", '@'),
        ("%21", '!'),
        ("%24", '$'),
        ("%27", '\''),
        ("%28", '('),
        ("%29", ')'),
        ("%2A", '*'),
        ("%2C", ','),
        ("%3B", ';'),
    ];
    let mut out = String::with_capacity(url.len());
    let mut rest = url;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let escape = rest.get(at..at + 3);
        match escape.and_then(|e| {
            DECODED
                .iter()
                .find(|(code, _)| code.eq_ignore_ascii_case(e))
                .map(|(_, c)| *c)
        }) {
            Some(c) => {
                out.push(c);
                rest = &rest[at + 3..];
            }
            None => {
                out.push('%');
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Zoom: Slack's shape with `x-zm-*` headers.
pub fn zoom() -> Description {
    v0_hmac("x-zm-signature", "x-zm-request-timestamp")
}

/// Calendly: Stripe's shape; its docs suggest a three-minute window.
pub fn calendly() -> Description {
    t_v1_list(
        "calendly-webhook-signature",
        vec![DedupeSource::Signature],
        seconds(180),
    )
}

/// Bitbucket: `X-Hub-Signature: sha256=<hex>` over the body.
pub fn bitbucket() -> Description {
    body_hmac(
        header_sig(&["x-hub-signature"], Some("sha256=")),
        Algorithm::Sha256,
        Encoding::Hex,
        vec![DedupeSource::Signature, header("x-request-uuid")],
    )
}

/// Typeform: `Typeform-Signature: sha256=<base64>` over the body.
pub fn typeform() -> Description {
    body_hmac(
        header_sig(&["typeform-signature"], Some("sha256=")),
        Algorithm::Sha256,
        Encoding::Base64,
        vec![DedupeSource::Signature, json("/event_id")],
    )
}

/// Intercom: `X-Hub-Signature: sha1=<hex>` over the body.
pub fn intercom() -> Description {
    body_hmac(
        header_sig(&["x-hub-signature"], Some("sha1=")),
        Algorithm::Sha1,
        Encoding::Hex,
        vec![DedupeSource::Signature],
    )
}

/// Linear puts its timestamp (ms) in the body and asks for a one-minute
/// window.
pub fn linear() -> Description {
    Description {
        signature: header_sig(&["linear-signature"], None),
        algorithm: Algorithm::Sha256,
        encoding: Encoding::Hex,
        message: parse("{body}"),
        timestamp: Some(TimestampSource::Json(
            "/webhookTimestamp",
            TimestampUnit::Millis,
        )),
        id: None,
        public_url: None,
        key_form: KeyForm::Raw,
        dedupe: vec![DedupeSource::Signature, header("linear-delivery")],
        tolerance: seconds(60),
    }
}

/// Mailgun signs `timestamp` + `token` and puts all three in the body's
/// `signature` object; the token is single-use.
pub fn mailgun() -> Description {
    Description {
        signature: SignatureSource::Json("/signature/signature"),
        algorithm: Algorithm::Sha256,
        encoding: Encoding::Hex,
        message: Template::from_parts(
            "{json:/signature/timestamp}{json:/signature/token}",
            vec![
                Part::Json("/signature/timestamp".into()),
                Part::Json("/signature/token".into()),
            ],
        ),
        timestamp: Some(TimestampSource::Json(
            "/signature/timestamp",
            TimestampUnit::Seconds,
        )),
        id: Some(IdSource::Json("/signature/token")),
        public_url: None,
        key_form: KeyForm::Raw,
        dedupe: vec![json("/signature/token")],
        tolerance: seconds(300),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_presets_sign_the_configured_url() {
        let url = "https://x.example/h".to_owned();
        for desc in [square(url.clone()), hubspot(url.clone())] {
            assert_eq!(desc.public_url.map(|u| u.base), Some(url.clone()));
        }
        assert!(stripe().public_url.is_none());
    }

    #[test]
    fn hubspot_decodes_only_its_listed_escapes() {
        assert_eq!(
            hubspot_decode("https://a.example/x?u=%3A%2f%40%20%ZZ%"),
            "https://a.example/x?u=:/@%20%ZZ%"
        );
    }
}
