//! Provider presets that are filled-in HMAC descriptions.
//!
//! Most providers sign with an HMAC and differ only in where things are and
//! how they are spelled; each of those is one [`Description`] here, run by
//! [`HmacScheme`]. Providers whose rules really differ have their own
//! module (Twilio, GitLab, T-Bank, the asymmetric ones, Tochka's JWT).
//!
//! The facts come from each provider's documentation and SDKs; the tests in
//! `tests/presets*.rs` check them against published vectors where there are
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

/// Every preset this module describes, in the order the docs list them.
pub const NAMES: &[&str] = &[
    "stripe",
    "github",
    "slack",
    "shopify",
    "standard-webhooks",
    "paddle",
    "square",
    "hubspot",
    "zoom",
    "calendly",
    "bitbucket",
    "typeform",
    "intercom",
    "linear",
    "mailgun",
    "meta",
];

/// Presets of this module that sign the public URL and so need the
/// route's `public_url`.
pub const SIGNS_URL: &[&str] = &["square", "hubspot"];

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

/// A preset's description; `None` for names this module does not describe.
/// `public_url` is given exactly for [`SIGNS_URL`] presets (the config
/// layer enforces that).
pub fn description(name: &str, public_url: Option<String>) -> Option<Description> {
    let seconds = |n: u64| Duration::from_secs(n);
    let body_hmac = |name: &'static str,
                     sig: SignatureSource,
                     algorithm: Algorithm,
                     encoding: Encoding,
                     dedupe: Vec<DedupeSource>| Description {
        name,
        signature: sig,
        algorithm,
        encoding,
        message: parse("{body}"),
        timestamp: None,
        id: None,
        public_url: None,
        key_form: KeyForm::Raw,
        dedupe,
        tolerance: seconds(300),
    };
    // Slack and Zoom: `v0=<hex>` over `v0:{timestamp}:{body}`, the
    // timestamp in its own header.
    let v0_hmac =
        |name: &'static str, signature: &'static str, timestamp: &'static str| Description {
            name,
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
        };
    // Stripe and Calendly: `t=..,v1=..[,v1=..]` over `{t}.{body}`.
    let t_v1_list = |name: &'static str,
                     header: &'static str,
                     dedupe: Vec<DedupeSource>,
                     tolerance: Duration| Description {
        name,
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
    };
    let sig = DedupeSource::Signature;
    let header = |name: &'static str| DedupeSource::Header(h(name));
    let json = |pointer: &str| DedupeSource::Json(pointer.to_owned());
    let url = |hubspot_decoding: bool| {
        public_url.clone().map(|base| PublicUrl {
            base,
            hubspot_decoding,
        })
    };
    Some(match name {
        // Stripe: `Stripe-Signature: t=..,v1=..,v1=..`; the key is the whole
        // `whsec_...` text; `v0` entries are test-mode legacy and ignored.
        "stripe" => t_v1_list(
            "stripe",
            "stripe-signature",
            vec![sig, json("/id")],
            seconds(300),
        ),
        "github" => body_hmac(
            "github",
            header_sig(&["x-hub-signature-256"], Some("sha256=")),
            Algorithm::Sha256,
            Encoding::Hex,
            vec![sig, header("x-github-delivery")],
        ),
        "slack" => v0_hmac("slack", "x-slack-signature", "x-slack-request-timestamp"),
        // Shopify's newer deliveries drop the `X-` prefix.
        "shopify" => body_hmac(
            "shopify",
            header_sig(&["x-shopify-hmac-sha256", "shopify-hmac-sha256"], None),
            Algorithm::Sha256,
            Encoding::Base64,
            vec![
                sig,
                header("x-shopify-webhook-id"),
                header("shopify-webhook-id"),
            ],
        ),
        // Standard Webhooks (and Svix, its origin, with `svix-*` names).
        "standard-webhooks" => Description {
            name: "standard-webhooks",
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
            dedupe: vec![sig, header("webhook-id"), header("svix-id")],
            tolerance: seconds(300),
        },
        "paddle" => Description {
            name: "paddle",
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
            dedupe: vec![sig, json("/event_id")],
            tolerance: seconds(300),
        },
        "square" => Description {
            name: "square",
            signature: header_sig(&["x-square-hmacsha256-signature"], None),
            algorithm: Algorithm::Sha256,
            encoding: Encoding::Base64,
            message: Template::from_parts("{url}{body}", vec![Part::Url, Part::Body]),
            timestamp: None,
            id: None,
            public_url: url(false),
            key_form: KeyForm::Raw,
            dedupe: vec![sig, json("/event_id")],
            tolerance: seconds(300),
        },
        // HubSpot v3; v1 and v2 signatures are not accepted.
        "hubspot" => Description {
            name: "hubspot",
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
            public_url: url(true),
            key_form: KeyForm::Raw,
            dedupe: vec![sig],
            tolerance: seconds(300),
        },
        "zoom" => v0_hmac("zoom", "x-zm-signature", "x-zm-request-timestamp"),
        // Calendly's docs suggest a three-minute window.
        "calendly" => t_v1_list(
            "calendly",
            "calendly-webhook-signature",
            vec![sig],
            seconds(180),
        ),
        // Meta's deliveries; the GET handshake is [`super::meta`]'s.
        "meta" => body_hmac(
            "meta",
            header_sig(&["x-hub-signature-256"], Some("sha256=")),
            Algorithm::Sha256,
            Encoding::Hex,
            vec![sig],
        ),
        "bitbucket" => body_hmac(
            "bitbucket",
            header_sig(&["x-hub-signature"], Some("sha256=")),
            Algorithm::Sha256,
            Encoding::Hex,
            vec![sig, header("x-request-uuid")],
        ),
        "typeform" => body_hmac(
            "typeform",
            header_sig(&["typeform-signature"], Some("sha256=")),
            Algorithm::Sha256,
            Encoding::Base64,
            vec![sig, json("/event_id")],
        ),
        "intercom" => body_hmac(
            "intercom",
            header_sig(&["x-hub-signature"], Some("sha1=")),
            Algorithm::Sha1,
            Encoding::Hex,
            vec![sig],
        ),
        // Linear puts its timestamp (ms) in the body and asks for a
        // one-minute window.
        "linear" => Description {
            name: "linear",
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
            dedupe: vec![sig, header("linear-delivery")],
            tolerance: seconds(60),
        },
        // Mailgun signs `timestamp` + `token` and puts all three in the
        // body's `signature` object; the token is single-use.
        "mailgun" => Description {
            name: "mailgun",
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
        },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_preset_has_a_description_named_like_it() {
        for name in NAMES {
            let url = SIGNS_URL
                .contains(name)
                .then(|| "https://x.example/h".to_owned());
            let desc = description(name, url).unwrap();
            assert_eq!(desc.name, *name);
            assert_eq!(desc.public_url.is_some(), SIGNS_URL.contains(name));
        }
        assert!(description("nope", None).is_none());
    }
}
