//! Every scheme hookguard knows, in one table: the only place a `scheme =`
//! value is listed.
//!
//! An [`Entry`] says what a route of that scheme needs besides its keys
//! (`public_url`, `verify_token`, `[routes.hmac]`), whether its keys are
//! shared secrets or public keys, and how its verifier is built from those
//! [`Ingredients`]. Config reads the generic ingredients and builds its
//! error messages from these flags; tests, fuzz targets and benches iterate
//! [`SCHEMES`] instead of keeping their own lists. Adding a preset is one
//! entry here, plus its description in [`super::presets`] when it is an
//! HMAC preset.

use super::asymmetric::{self, AsymmetricScheme, Kind};
use super::challenge::Learn;
use super::contentful::ContentfulScheme;
use super::fetched::TestOrigin;
use super::gitlab::GitlabScheme;
use super::hmac::{Description, HmacScheme, HmacSpec, KeyForm};
use super::hygraph::HygraphScheme;
use super::jwt::{self, JwtScheme};
use super::meta::MetaScheme;
use super::none::NoneScheme;
use super::paypal::PaypalScheme;
use super::plivo::PlivoScheme;
use super::presets;
use super::sns::SnsScheme;
use super::tbank::TbankScheme;
use super::twilio::TwilioScheme;
use super::Scheme;

/// What a scheme verifies with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// Shared secrets, from the route's `secrets`.
    Secrets,
    /// The sender's public keys, from the route's `public_keys`.
    PublicKeys,
    /// No keys: `scheme = "none"`, which rests on `allow_ips`.
    None,
    /// A certificate each request names and hookguard fetches, pinned to
    /// the sender's hosts (PayPal, Amazon SNS); the route lists no keys.
    Certificate,
}

impl KeyKind {
    /// The route key the keys are listed under.
    pub fn config_key(self) -> &'static str {
        match self {
            KeyKind::Secrets => "secrets",
            KeyKind::PublicKeys => "public_keys",
            KeyKind::None | KeyKind::Certificate => "",
        }
    }
}

/// Which kind of scheme an entry is, and so how it is built.
#[derive(Debug, Clone, Copy)]
pub enum Family {
    /// The generic HMAC scheme, described by the route's `[routes.hmac]`.
    Generic,
    /// A preset that is a filled-in HMAC description.
    Hmac(fn() -> Description),
    /// An HMAC preset whose description holds the URL it signs (the route's
    /// `public_url`).
    HmacUrl(fn(String) -> Description),
    /// A preset with rules of its own module, built by this function.
    ///
    /// It is given the entry's name, which aliases differ in.
    Own(Builder),
}

/// Builds a scheme of its own module from the entry's name (aliases differ
/// only in it) and the route's ingredients.
pub type Builder = fn(&'static str, Ingredients) -> Result<Box<dyn Scheme>, BuildError>;

/// One accepted `scheme` value.
#[derive(Debug)]
pub struct Entry {
    /// The config spelling, also the scheme's name in metrics, logs and the
    /// verified header.
    pub name: &'static str,
    /// How it is built; [`Family::Generic`] is the one that reads
    /// `[routes.hmac]`.
    pub family: Family,
    /// Whether it takes `secrets` or `public_keys`.
    pub keys: KeyKind,
    /// True when the sender signs the URL it delivers to, so the route must
    /// say that URL in `public_url` (it is never taken from the request).
    pub signs_url: bool,
    /// True when the route needs a `verify_token` (Meta's handshake).
    pub needs_verify_token: bool,
    /// True when the route names the sender's id for the webhook in
    /// `webhook_id` (PayPal signs it), and verifies with a certificate the
    /// sender names instead of keys of its own (so it takes neither
    /// `secrets` nor `public_keys`).
    pub needs_webhook_id: bool,
    /// True when the route lists the topics it accepts in `topic_arns`
    /// (Amazon SNS: any AWS account can sign a message from a topic of its
    /// own).
    pub needs_topic_arns: bool,
}

/// What a route supplies to build its scheme. Config fills in exactly what
/// the entry's flags ask for and refuses the rest.
pub struct Ingredients {
    /// `(id, bytes)` of each of the route's `secrets` or `public_keys`, in
    /// configuration order.
    pub keys: Vec<(String, Vec<u8>)>,
    /// The route's `public_url`, for entries that sign the URL.
    pub public_url: Option<String>,
    /// The route's `verify_token`, for entries that need one.
    pub verify_token: Option<Vec<u8>>,
    /// The route's `[routes.hmac]`, for the generic scheme.
    pub hmac: Option<HmacSpec>,
    /// The route's `webhook_id`, for entries that need one.
    pub webhook_id: Option<String>,
    /// The route's `topic_arns`, for entries that need them.
    pub topic_arns: Option<Vec<String>>,
    /// The one loopback origin fetched certificates come from instead of
    /// the sender's hosts, when the route sets `unsafe_cert_source` (tests).
    pub test_origin: Option<TestOrigin>,
    /// The route's `learn_secret_file`, for entries whose setup request
    /// carries the secret (Asana, Notion).
    pub learn: Option<Learn>,
}

/// A key that could not be prepared: its index in the route's `secrets` or
/// `public_keys`, and why (never the key itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError {
    /// Position in the list.
    pub index: usize,
    /// What is wrong with it.
    pub message: String,
}

/// Why [`Entry::build`] made no scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildError {
    /// An ingredient the entry needs was not given (the route key's name).
    /// Config reports a missing key where it reads it, so it has nothing
    /// to add when it sees this.
    Missing(&'static str),
    /// Some keys could not be prepared.
    Keys(Vec<KeyError>),
}

/// Every scheme, the generic one first, then the presets in the order the
/// docs list them.
pub static SCHEMES: &[Entry] = &[
    Entry {
        name: "hmac",
        family: Family::Generic,
        ..SHARED_SECRET
    },
    hmac("stripe", presets::stripe),
    hmac("github", presets::github),
    hmac("slack", presets::slack),
    hmac("shopify", presets::shopify),
    hmac("standard-webhooks", presets::standard_webhooks),
    Entry {
        name: "twilio",
        family: Family::Own(twilio),
        signs_url: true,
        ..SHARED_SECRET
    },
    hmac("paddle", presets::paddle),
    hmac_url("square", presets::square),
    hmac_url("hubspot", presets::hubspot),
    hmac("zoom", presets::zoom),
    hmac("calendly", presets::calendly),
    hmac("bitbucket", presets::bitbucket),
    hmac("typeform", presets::typeform),
    hmac("intercom", presets::intercom),
    hmac("linear", presets::linear),
    own("gitlab", gitlab),
    hmac("mailgun", presets::mailgun),
    own("tbank", tbank),
    public_key("discord", discord),
    public_key("sendgrid", sendgrid),
    public_key("telnyx", telnyx),
    public_key("tochka", tochka),
    Entry {
        name: "paypal",
        family: Family::Own(paypal),
        keys: KeyKind::Certificate,
        needs_webhook_id: true,
        ..SHARED_SECRET
    },
    Entry {
        name: "sns",
        family: Family::Own(sns),
        keys: KeyKind::Certificate,
        needs_topic_arns: true,
        ..SHARED_SECRET
    },
    Entry {
        name: "meta",
        family: Family::Own(meta),
        needs_verify_token: true,
        ..SHARED_SECRET
    },
    // Standard Webhooks senders, by their own names (each reads the
    // `webhook-*` and `svix-*` headers alike).
    hmac("svix", presets::standard_webhooks),
    hmac("clerk", presets::standard_webhooks),
    hmac("resend", presets::standard_webhooks),
    hmac("openai", presets::standard_webhooks),
    hmac("replicate", presets::standard_webhooks),
    hmac("render", presets::standard_webhooks),
    hmac("stytch", presets::standard_webhooks),
    hmac("lithic", presets::standard_webhooks),
    hmac("brex", presets::standard_webhooks),
    hmac("polar", presets::polar),
    // Meta's products, by their own names and ngrok's ids.
    meta_alias("whatsapp"),
    meta_alias("instagram"),
    meta_alias("facebook"),
    meta_alias("facebook_messenger"),
    meta_alias("facebook_graph_api"),
    // Payments.
    hmac("razorpay", presets::razorpay),
    hmac("checkout-com", presets::checkout_com),
    hmac("gocardless", presets::gocardless),
    hmac("paystack", presets::paystack),
    hmac("lemon-squeezy", presets::lemon_squeezy),
    hmac("coinbase-commerce", presets::coinbase_commerce),
    hmac("coinbase", presets::coinbase_commerce),
    hmac("modern-treasury", presets::modern_treasury),
    hmac("modern_treasury", presets::modern_treasury),
    hmac("cashfree", presets::cashfree),
    hmac("recurly", presets::recurly),
    hmac("coinify", presets::coinify),
    hmac("chargify", presets::chargify),
    hmac("alchemy", presets::alchemy),
    hmac("bolt", presets::bolt),
    hmac("braintree", presets::braintree),
    hmac("adyen", presets::adyen),
    hmac("adyen-platform", presets::adyen_platform),
    hmac("squarespace", presets::squarespace),
    hmac("patreon", presets::patreon),
    hmac("worldline", presets::worldline),
    hmac("pinwheel", presets::pinwheel),
    // Developer tools.
    hmac("sentry", presets::sentry),
    hmac("vercel", presets::vercel),
    hmac("jira", presets::jira),
    hmac("circleci", presets::circleci),
    hmac("pagerduty", presets::pagerduty),
    hmac("heroku", presets::heroku),
    hmac("workos", presets::workos),
    hmac("webflow", presets::webflow),
    hmac("buildkite", presets::buildkite),
    hmac("launchdarkly", presets::launchdarkly),
    hmac("launch_darkly", presets::launchdarkly),
    hmac("terraform", presets::terraform),
    hmac("autodesk", presets::autodesk),
    hmac("frameio", presets::frameio),
    hmac("mux", presets::mux),
    hmac("signal-sciences", presets::signal_sciences),
    hmac("signal_sciences", presets::signal_sciences),
    hmac("sonatype", presets::sonatype),
    hmac("trendmicro-conformity", presets::trendmicro_conformity),
    hmac("trendmicro_conformity", presets::trendmicro_conformity),
    hmac("mongodb", presets::mongodb),
    hmac("castle", presets::castle),
    hmac("clearbit", presets::clearbit),
    hmac("sanity", presets::sanity),
    own("contentful", contentful),
    own("hygraph", hygraph),
    own("graphcms", hygraph),
    // Communications.
    hmac("microsoft-teams", presets::microsoft_teams),
    hmac("microsoft_teams", presets::microsoft_teams),
    hmac("webex", presets::webex),
    hmac("x", presets::x),
    hmac("twitter", presets::x),
    hmac("tiktok", presets::tiktok),
    hmac("pusher", presets::pusher),
    hmac("airship", presets::airship),
    hmac("customer-io", presets::customer_io),
    hmac("segment", presets::segment),
    hmac("twitch", presets::twitch),
    hmac("elevenlabs", presets::elevenlabs),
    // Business apps and commerce.
    hmac("zendesk", presets::zendesk),
    hmac("asana", presets::asana),
    hmac_url("trello", presets::trello),
    hmac_url("mandrill", presets::mandrill),
    hmac_url("mailchimp", presets::mandrill),
    hmac("notion", presets::notion),
    hmac("airtable", presets::airtable),
    hmac("docusign", presets::docusign),
    hmac("dropbox", presets::dropbox),
    hmac("nylas", presets::nylas),
    hmac("box", presets::box_),
    hmac("xero", presets::xero),
    hmac("persona", presets::persona),
    hmac("woocommerce", presets::woocommerce),
    hmac("go1", presets::go1),
    hmac("pandadoc", presets::pandadoc),
    hmac("aftership", presets::aftership),
    Entry {
        name: "plivo",
        family: Family::Own(plivo),
        signs_url: true,
        ..SHARED_SECRET
    },
    hmac("sumsub", presets::sumsub),
    hmac("orb", presets::orb),
    hmac("hostedhooks", presets::hostedhooks),
    Entry {
        name: "none",
        family: Family::Own(none),
        keys: KeyKind::None,
        ..SHARED_SECRET
    },
];

/// The entry for `name`, if hookguard knows it.
pub fn find(name: &str) -> Option<&'static Entry> {
    SCHEMES.iter().find(|entry| entry.name == name)
}

/// The names of the entries `keep` selects, in table order (for messages
/// such as "public_url is only for twilio, square, hubspot").
pub fn names_where(keep: impl Fn(&Entry) -> bool) -> Vec<&'static str> {
    SCHEMES
        .iter()
        .filter(|entry| keep(entry))
        .map(|entry| entry.name)
        .collect()
}

/// The names of the entries whose setup request carries the secret, which
/// a route may learn (for the message refusing `learn_secret_file`
/// elsewhere).
pub fn names_that_learn() -> Vec<&'static str> {
    names_where(|entry| match entry.family {
        Family::Hmac(describe) => describe().challenge.is_some_and(|c| c.learns()),
        _ => false,
    })
}

/// The names of the entries whose scheme answers an endpoint challenge
/// (for the message refusing `answer_challenges` elsewhere).
pub fn names_with_challenges() -> Vec<&'static str> {
    names_where(|entry| match entry.family {
        Family::Hmac(describe) => describe().challenge.is_some(),
        Family::HmacUrl(describe) => describe(String::new()).challenge.is_some(),
        _ => false,
    })
}

impl Entry {
    /// Whether the egress signer can sign as this scheme: a shared-secret
    /// HMAC whose signature, timestamp and id all travel in headers, over
    /// the request as sent (see [`Description::signs_in_headers`]). The
    /// others sign inside the body, sign a URL, or verify with a public
    /// key hookguard could not sign with.
    pub fn signs_egress(&self) -> bool {
        match self.family {
            Family::Generic => true,
            Family::Hmac(describe) => describe().signs_in_headers(),
            Family::HmacUrl(_) | Family::Own(_) => false,
        }
    }

    /// A secret of the form this entry takes (a `whsec_` key, base64, hex,
    /// or plain text), for tests, fuzz targets and benches that configure
    /// every scheme; `None` for schemes that take public keys or no keys.
    pub fn sample_secret(&self) -> Option<&'static str> {
        if self.keys != KeyKind::Secrets {
            return None;
        }
        Some(match self.family {
            Family::Hmac(describe) => match describe().key_form {
                KeyForm::WhsecBase64 => "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                KeyForm::Base64(_) => "c2FtcGxlLXNlY3JldA==",
                KeyForm::Hex(_) => "73616d706c652d736563726574",
                KeyForm::Raw | KeyForm::RawRefusing { .. } | KeyForm::Sha1Digest => "sample-secret",
            },
            _ => "sample-secret",
        })
    }

    /// Builds this scheme's verifier for one route, preparing every key.
    pub fn build(&self, ingredients: Ingredients) -> Result<Box<dyn Scheme>, BuildError> {
        let learn = ingredients.learn;
        let desc = match self.family {
            Family::Own(build) => {
                return build(
                    self.name,
                    Ingredients {
                        learn,
                        ..ingredients
                    },
                )
            }
            Family::Generic => Description::from(need(ingredients.hmac, "hmac")?),
            Family::Hmac(describe) => describe(),
            Family::HmacUrl(describe) => describe(need(ingredients.public_url, "public_url")?),
        };
        let keys = prepare(ingredients.keys, |secret| desc.key_form.key(secret))?;
        Ok(Box::new(
            HmacScheme::new(self.name, desc, keys).learning(learn),
        ))
    }
}

/// The flags of a scheme that verifies with shared secrets and needs nothing
/// else; entries spell out only how they differ.
const SHARED_SECRET: Entry = Entry {
    name: "",
    family: Family::Generic,
    keys: KeyKind::Secrets,
    signs_url: false,
    needs_verify_token: false,
    needs_webhook_id: false,
    needs_topic_arns: false,
};

const fn hmac(name: &'static str, describe: fn() -> Description) -> Entry {
    Entry {
        name,
        family: Family::Hmac(describe),
        ..SHARED_SECRET
    }
}

const fn hmac_url(name: &'static str, describe: fn(String) -> Description) -> Entry {
    Entry {
        name,
        family: Family::HmacUrl(describe),
        signs_url: true,
        ..SHARED_SECRET
    }
}

const fn own(name: &'static str, build: Builder) -> Entry {
    Entry {
        name,
        family: Family::Own(build),
        ..SHARED_SECRET
    }
}

/// Another name for Meta's scheme (its products, and ngrok's ids for them).
const fn meta_alias(name: &'static str) -> Entry {
    Entry {
        name,
        family: Family::Own(meta),
        needs_verify_token: true,
        ..SHARED_SECRET
    }
}

const fn public_key(name: &'static str, build: Builder) -> Entry {
    Entry {
        keys: KeyKind::PublicKeys,
        ..own(name, build)
    }
}

fn need<T>(ingredient: Option<T>, key: &'static str) -> Result<T, BuildError> {
    ingredient.ok_or(BuildError::Missing(key))
}

/// Turns each key's bytes into the scheme's key type, naming every key that
/// does not convert.
fn prepare<K>(
    keys: Vec<(String, Vec<u8>)>,
    convert: impl Fn(&[u8]) -> Result<K, String>,
) -> Result<Vec<(String, K)>, BuildError> {
    let mut prepared = Vec::with_capacity(keys.len());
    let mut errors = Vec::new();
    for (index, (id, bytes)) in keys.into_iter().enumerate() {
        match convert(&bytes) {
            Ok(key) => prepared.push((id, key)),
            Err(message) => errors.push(KeyError { index, message }),
        }
    }
    if errors.is_empty() {
        Ok(prepared)
    } else {
        Err(BuildError::Keys(errors))
    }
}

fn twilio(_: &'static str, ingredients: Ingredients) -> Result<Box<dyn Scheme>, BuildError> {
    let url = need(ingredients.public_url, "public_url")?;
    Ok(Box::new(TwilioScheme::new(url, ingredients.keys)))
}

fn plivo(_: &'static str, ingredients: Ingredients) -> Result<Box<dyn Scheme>, BuildError> {
    let url = need(ingredients.public_url, "public_url")?;
    Ok(Box::new(PlivoScheme::new(url, ingredients.keys)))
}

fn contentful(_: &'static str, ingredients: Ingredients) -> Result<Box<dyn Scheme>, BuildError> {
    Ok(Box::new(ContentfulScheme::new(ingredients.keys)))
}

fn hygraph(name: &'static str, ingredients: Ingredients) -> Result<Box<dyn Scheme>, BuildError> {
    Ok(Box::new(HygraphScheme::new(name, ingredients.keys)))
}

fn none(_: &'static str, _: Ingredients) -> Result<Box<dyn Scheme>, BuildError> {
    Ok(Box::new(NoneScheme::default()))
}

fn gitlab(_: &'static str, ingredients: Ingredients) -> Result<Box<dyn Scheme>, BuildError> {
    Ok(Box::new(GitlabScheme::new(ingredients.keys)))
}

fn tbank(_: &'static str, ingredients: Ingredients) -> Result<Box<dyn Scheme>, BuildError> {
    let passwords = prepare(ingredients.keys, |secret| {
        std::str::from_utf8(secret)
            .map(str::to_owned)
            .map_err(|_| "a T-Bank terminal password is text (it is hashed as UTF-8)".to_owned())
    })?;
    Ok(Box::new(TbankScheme::new(passwords)))
}

fn discord(_: &'static str, ingredients: Ingredients) -> Result<Box<dyn Scheme>, BuildError> {
    let keys = prepare(ingredients.keys, asymmetric::parse_ed25519)?;
    Ok(Box::new(AsymmetricScheme::new(Kind::Discord, keys)))
}

fn telnyx(_: &'static str, ingredients: Ingredients) -> Result<Box<dyn Scheme>, BuildError> {
    let keys = prepare(ingredients.keys, asymmetric::parse_ed25519_base64)?;
    Ok(Box::new(AsymmetricScheme::new(Kind::Telnyx, keys)))
}

fn sendgrid(_: &'static str, ingredients: Ingredients) -> Result<Box<dyn Scheme>, BuildError> {
    let keys = prepare(ingredients.keys, asymmetric::parse_p256)?;
    Ok(Box::new(AsymmetricScheme::new(Kind::Sendgrid, keys)))
}

fn tochka(_: &'static str, ingredients: Ingredients) -> Result<Box<dyn Scheme>, BuildError> {
    let keys = prepare(ingredients.keys, jwt::parse_rsa)?;
    Ok(Box::new(JwtScheme::new(keys)))
}

fn paypal(_: &'static str, ingredients: Ingredients) -> Result<Box<dyn Scheme>, BuildError> {
    let webhook_id = need(ingredients.webhook_id, "webhook_id")?;
    Ok(Box::new(PaypalScheme::new(
        webhook_id,
        ingredients.test_origin,
    )))
}

fn sns(_: &'static str, ingredients: Ingredients) -> Result<Box<dyn Scheme>, BuildError> {
    let topics = need(ingredients.topic_arns, "topic_arns")?;
    Ok(Box::new(SnsScheme::new(topics, ingredients.test_origin)))
}

fn meta(name: &'static str, ingredients: Ingredients) -> Result<Box<dyn Scheme>, BuildError> {
    let token = need(ingredients.verify_token, "verify_token")?;
    Ok(Box::new(MetaScheme::new(name, ingredients.keys, &token)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Everything any entry may ask for, with keys each kind accepts.
    fn ingredients(entry: &Entry) -> Ingredients {
        let key = match entry.name {
            "discord" => {
                let signing = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
                hex::encode(signing.verifying_key().to_bytes())
            }
            "telnyx" => {
                use base64::Engine;
                let signing = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
                base64::engine::general_purpose::STANDARD
                    .encode(signing.verifying_key().to_bytes())
            }
            // SendGrid's SDK test key (sendgrid-nodejs eventwebhook.spec.js).
            "sendgrid" => "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEDr2LjtURuePQzplybdC+u4CwrqDqBaWjcMMsTbhdbcwHBcepxo7yAQGhHPTnlvFYPAZFceEu/1FwCM/QmGUhA==".to_owned(),
            "tochka" => {
                use rsa::pkcs8::EncodePublicKey;
                let private = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048).unwrap();
                private
                    .to_public_key()
                    .to_public_key_pem(rsa::pkcs8::LineEnding::LF)
                    .unwrap()
            }
            _ => entry.sample_secret().unwrap_or("secret").to_owned(),
        };
        Ingredients {
            keys: vec![("k".to_owned(), key.into_bytes())],
            public_url: entry
                .signs_url
                .then(|| "https://hooks.example.com/h".to_owned()),
            verify_token: entry.needs_verify_token.then(|| b"token".to_vec()),
            hmac: matches!(entry.family, Family::Generic)
                .then(|| HmacSpec::body(http::HeaderName::from_static("x-signature"), None)),
            webhook_id: entry.needs_webhook_id.then(|| "WH-1".to_owned()),
            topic_arns: entry
                .needs_topic_arns
                .then(|| vec!["arn:aws:sns:us-east-1:123456789012:t".to_owned()]),
            test_origin: None,
            learn: None,
        }
    }

    #[test]
    fn every_entry_builds_a_scheme_answering_to_its_name() {
        for entry in SCHEMES {
            let scheme = entry
                .build(ingredients(entry))
                .unwrap_or_else(|e| panic!("{}: {e:?}", entry.name));
            assert_eq!(scheme.name(), entry.name);
            let expected = match entry.keys {
                KeyKind::None => "allow_ips",
                KeyKind::Certificate => &format!("{}-certificate", entry.name),
                _ => "k",
            };
            assert_eq!(scheme.key_ids(), [expected], "{}", entry.name);
        }
    }

    #[test]
    fn names_are_unique_and_found() {
        for (i, entry) in SCHEMES.iter().enumerate() {
            assert!(!entry.name.is_empty());
            assert!(SCHEMES[..i].iter().all(|e| e.name != entry.name));
            assert!(std::ptr::eq(find(entry.name).expect("listed"), entry));
        }
        assert!(find("md5").is_none());
    }

    #[test]
    fn missing_ingredients_and_bad_keys_are_reported_not_panicked_on() {
        let twilio = find("twilio").expect("listed");
        let mut without_url = ingredients(twilio);
        without_url.public_url = None;
        assert_eq!(
            twilio.build(without_url).err(),
            Some(BuildError::Missing("public_url"))
        );
        let webhooks = find("standard-webhooks").expect("listed");
        let mut bad = ingredients(webhooks);
        bad.keys.push(("bad".to_owned(), b"whsec_!!".to_vec()));
        match webhooks.build(bad) {
            Err(BuildError::Keys(errors)) => {
                assert_eq!(errors.len(), 1);
                assert_eq!(errors[0].index, 1);
            }
            other => panic!("expected a key error, got {:?}", other.err()),
        }
    }
}
