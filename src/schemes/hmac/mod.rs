//! The HMAC family: the generic scheme (`scheme = "hmac"`, described by
//! `[routes.hmac]`) and every provider preset that is a filled-in instance
//! of it (see [`super::presets`]).
//!
//! A [`Description`] says where the signature, timestamp and id are read
//! from, what was signed and how it is encoded; [`HmacScheme`] runs any
//! description. Each secret's keyed MAC state is prepared once at config
//! load; a request clones it (a copy of the inner/outer hash state) instead
//! of re-deriving the key schedule. Decoded wire signatures are compared
//! with each candidate in constant time; any secret matching passes, which
//! is how rotation works, and any one of several signatures in a header
//! matching passes, which is how senders rotate.
//!
//! - [`description`]: what a member of the family is ([`Description`]) and
//!   the generic scheme's table ([`HmacSpec`]).
//! - [`extract`]: reading the signatures, timestamp and id a request carries.
//! - this file: [`HmacScheme`], its prepared keys and verification.
//! - `sign`: signing as a sender would, for `hookguard sign` and tests only.

pub mod description;
pub mod extract;
mod sign;

use std::time::Duration;

use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use http::header::HeaderName;
use md5::Md5;
use sha1::Sha1;
use sha2::{Sha256, Sha512};
use subtle::ConstantTimeEq;

pub use description::{
    template_needs_id, template_needs_timestamp, Algorithm, AlgorithmHeader, Description, HmacSpec,
    IdSource, KeyForm, PublicUrl, SignatureSource, TimestampSource, TimestampUnit,
};
pub use extract::{parse_kv_list, parse_versioned};

use super::challenge::{self, Kind as ChallengeKind};
use super::encoding::{self, Encoding};
use super::template::{Part, Template, Values};
use super::{RequestView, Scheme, Unsigned, Verified};
use crate::dedupe::DedupeSource;
use crate::reject::{Reason, Reject};

/// A keyed MAC state ready to be cloned per request.
#[derive(Clone)]
enum PreparedKey {
    Sha1(Hmac<Sha1>),
    Sha256(Hmac<Sha256>),
    Sha512(Hmac<Sha512>),
    Md5(Hmac<Md5>),
}

impl PreparedKey {
    fn new(algorithm: Algorithm, secret: &[u8]) -> Self {
        // HMAC accepts keys of any length (long ones are hashed first), so
        // `new_from_slice` cannot fail here.
        match algorithm {
            Algorithm::Sha1 => PreparedKey::Sha1(
                <Hmac<Sha1> as KeyInit>::new_from_slice(secret).expect("HMAC takes any key length"),
            ),
            Algorithm::Sha256 => PreparedKey::Sha256(
                <Hmac<Sha256> as KeyInit>::new_from_slice(secret)
                    .expect("HMAC takes any key length"),
            ),
            Algorithm::Sha512 => PreparedKey::Sha512(
                <Hmac<Sha512> as KeyInit>::new_from_slice(secret)
                    .expect("HMAC takes any key length"),
            ),
            Algorithm::Md5 => PreparedKey::Md5(
                <Hmac<Md5> as KeyInit>::new_from_slice(secret).expect("HMAC takes any key length"),
            ),
        }
    }

    /// MACs `bytes` alone (a challenge's token).
    fn mac(&self, bytes: &[u8]) -> Vec<u8> {
        fn run<M: Mac + Clone>(key: &M, bytes: &[u8]) -> Vec<u8> {
            let mut mac = key.clone();
            mac.update(bytes);
            mac.finalize().into_bytes().to_vec()
        }
        match self {
            PreparedKey::Sha1(k) => run(k, bytes),
            PreparedKey::Sha256(k) => run(k, bytes),
            PreparedKey::Sha512(k) => run(k, bytes),
            PreparedKey::Md5(k) => run(k, bytes),
        }
    }

    /// MACs the message the template describes.
    fn tag(&self, template: &Template, values: &Values<'_>) -> Result<Vec<u8>, Reject> {
        fn run<M: Mac + Clone>(
            key: &M,
            template: &Template,
            values: &Values<'_>,
        ) -> Result<Vec<u8>, Reject> {
            let mut mac = key.clone();
            template.feed(values, &mut |bytes| mac.update(bytes))?;
            Ok(mac.finalize().into_bytes().to_vec())
        }
        match self {
            PreparedKey::Sha1(k) => run(k, template, values),
            PreparedKey::Sha256(k) => run(k, template, values),
            PreparedKey::Sha512(k) => run(k, template, values),
            PreparedKey::Md5(k) => run(k, template, values),
        }
    }
}

impl std::fmt::Debug for PreparedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PreparedKey(<redacted>)")
    }
}

/// A member of the HMAC family, prepared for one route.
#[derive(Debug)]
pub struct HmacScheme {
    /// The config spelling (`"hmac"`, `"stripe"`), from the registry.
    name: &'static str,
    desc: Description,
    key_ids: Vec<String>,
    /// The hashes this scheme may use: the description's one, or each of
    /// its allow-list's, in that list's order.
    algorithms: Vec<Algorithm>,
    /// Per secret, one prepared state per entry of `algorithms`.
    keys: Vec<Vec<PreparedKey>>,
    /// True when some part of the scheme reads the JSON body, so that it is
    /// parsed once per request, and only then.
    needs_json: bool,
    /// Where a secret the sender sends in its setup request is learned
    /// (`learn_secret_file`; Asana, Notion).
    learn: Option<challenge::Learn>,
}

/// What the sender claims, beside the signed message: every decoded
/// signature the request carries, and its timestamp in seconds.
struct Claimed {
    candidates: Vec<Vec<u8>>,
    timestamp: Option<i64>,
}

impl HmacScheme {
    /// Runs `desc` under the name `name`, with one keyed state prepared per
    /// `(id, key)`; keys are already in their final form (see
    /// [`KeyForm::key`]).
    pub fn new(name: &'static str, desc: Description, keys: Vec<(String, Vec<u8>)>) -> Self {
        let needs_json = desc.message.uses_json()
            || matches!(desc.signature, SignatureSource::Json(_))
            || matches!(desc.timestamp, Some(TimestampSource::Json(..)))
            || matches!(desc.id, Some(IdSource::Json(_)));
        let mut algorithms = vec![desc.algorithm];
        if let Some(choice) = &desc.algorithm_from {
            algorithms = Vec::new();
            for (_, algorithm) in &choice.values {
                if !algorithms.contains(algorithm) {
                    algorithms.push(*algorithm);
                }
            }
        }
        HmacScheme {
            keys: keys
                .iter()
                .map(|(_, key)| {
                    algorithms
                        .iter()
                        .map(|algorithm| PreparedKey::new(*algorithm, key))
                        .collect()
                })
                .collect(),
            algorithms,
            key_ids: keys.into_iter().map(|(id, _)| id).collect(),
            needs_json,
            name,
            desc,
            learn: None,
        }
    }

    /// The same scheme, learning a setup request's secret into `learn`
    /// (only meaningful for a description whose challenge
    /// [`ChallengeKind::learns`]).
    pub fn learning(mut self, learn: Option<challenge::Learn>) -> Self {
        self.learn = learn;
        self
    }

    /// Confirms a secret a setup request carries: 200 when it equals one of
    /// the route's secrets (compared in constant time, through a MAC keyed
    /// with each, so that nothing about a near miss shows), or, when the
    /// route has none yet and learns, once it is written to the learn file.
    /// The value appears in no message and no log line.
    fn confirm(
        &self,
        value: &str,
        reply: challenge::Reply,
    ) -> Option<Result<challenge::Reply, Reject>> {
        const PROBE: &[u8] = b"hookguard setup secret check";
        if !challenge::token_shaped(value) {
            return Some(Err(Reject::with(
                Reason::MalformedRequest,
                format!(
                    "the setup secret is not token-shaped (1 to {} base64 or alphanumeric characters); it is not answered",
                    challenge::MAX_TOKEN
                ),
            )));
        }
        let algorithm = self.algorithms[0];
        let offered = PreparedKey::new(algorithm, value.as_bytes()).mac(PROBE);
        let known = self
            .keys
            .iter()
            .any(|key| bool::from(key[0].mac(PROBE).ct_eq(&offered)));
        if known {
            return Some(Ok(reply));
        }
        match &self.learn {
            Some(learn) if self.keys.is_empty() => match learn.write_once(value.as_bytes()) {
                Ok(()) => {
                    tracing::warn!(
                        scheme = self.name,
                        file = %learn.path().display(),
                        "learned the route's secret from the sender's setup request; it is used once the reload reads the file"
                    );
                    Some(Ok(reply))
                }
                Err(why) => Some(Err(Reject::with(Reason::BadSignature, why))),
            },
            Some(_) => Some(Err(Reject::with(
                Reason::BadSignature,
                "the setup request's secret is not the route's secret, and the route has one already (learned or configured); to learn a new one, empty learn_secret_file and remove the configured secrets"
                    .to_owned(),
            ))),
            None => Some(Err(Reject::with(
                Reason::BadSignature,
                "the setup request's secret is not the route's secret (set learn_secret_file to learn it)"
                    .to_owned(),
            ))),
        }
    }

    /// The description this scheme runs.
    pub fn description(&self) -> &Description {
        &self.desc
    }

    /// The index into `algorithms` of the hash this request was signed
    /// with: always the one, or the one its header names from the
    /// allow-list. A value outside the list is refused, never guessed.
    fn algorithm_of(&self, request: &RequestView<'_>) -> Result<usize, Reject> {
        let Some(choice) = &self.desc.algorithm_from else {
            return Ok(0);
        };
        let allowed = || {
            choice
                .values
                .iter()
                .map(|(v, _)| v.as_ref())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let value = request
            .headers
            .get(&choice.header)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                Reject::with(
                    Reason::MissingSignedHeader,
                    format!(
                        "header {} (the hash: one of {}) is missing",
                        choice.header,
                        allowed()
                    ),
                )
            })?;
        let algorithm = choice
            .values
            .iter()
            .find(|(v, _)| v.as_ref() == value.trim())
            .map(|(_, a)| *a)
            .ok_or_else(|| {
                Reject::with(
                    Reason::MalformedSignature,
                    format!(
                        "header {} names a hash this route does not accept; it accepts {}",
                        choice.header,
                        allowed()
                    ),
                )
            })?;
        Ok(self
            .algorithms
            .iter()
            .position(|a| *a == algorithm)
            .expect("every listed hash is prepared"))
    }

    /// Reads everything the signed message is made of (the JSON body once,
    /// the signatures, timestamp and id, the public URL) and hands the
    /// message's values and what the sender claims to `then`. Verifying and
    /// explaining a request both come through here, so they cannot differ
    /// on what was signed.
    fn read<R>(
        &self,
        request: &RequestView<'_>,
        then: impl FnOnce(&Values<'_>, Claimed) -> Result<R, Reject>,
    ) -> Result<R, Reject> {
        let json = if self.needs_json {
            let doc = serde_json::from_slice(request.body).map_err(|_| {
                Reject::with(
                    Reason::MissingSignature,
                    format!(
                        "scheme {} reads its signature or timestamp from a JSON body, and the body is not JSON",
                        self.name
                    ),
                )
            })?;
            Some(doc)
        } else {
            None
        };
        let extracted = extract::extract(&self.desc, request, json.as_ref())?;
        let url = self
            .desc
            .public_url
            .as_ref()
            .map(|u| u.for_request(request.uri));
        let values = Values {
            method: request.method.as_str(),
            path: request.uri.path_and_query().map_or("/", |pq| pq.as_str()),
            body: request.body,
            timestamp: extracted.timestamp.as_ref().map(|(t, _)| t.as_ref()),
            id: extracted.id.as_deref(),
            headers: request.headers,
            url: url.as_deref(),
            json: json.as_ref(),
        };
        let claimed = Claimed {
            candidates: extracted.candidates,
            timestamp: extracted.timestamp.as_ref().map(|(_, seconds)| *seconds),
        };
        then(&values, claimed)
    }
}

impl Scheme for HmacScheme {
    fn name(&self) -> &'static str {
        self.name
    }

    fn describe(&self) -> String {
        let desc = &self.desc;
        let names_of = |names: &[HeaderName]| {
            names
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" or ")
        };
        let prefix_of = |prefix: &Option<std::borrow::Cow<'static, str>>| match prefix {
            Some(prefix) => format!(" (prefix {prefix:?} optional)"),
            None => String::new(),
        };
        let where_ = match &desc.signature {
            SignatureSource::Header { names, prefix } => {
                format!("header {}{}", names_of(names), prefix_of(prefix))
            }
            SignatureSource::Headers { names, prefix } => format!(
                "every present header of {} .. {}{}",
                names[0],
                names[names.len() - 1],
                prefix_of(prefix)
            ),
            SignatureSource::KvList {
                name,
                separator,
                timestamp_key,
                signature_key,
                groups,
            } => format!(
                "header {name} as \"{timestamp_key}=..{separator}{signature_key}=..\"{} (any {signature_key} entry may match)",
                if *groups { ", space-separated groups" } else { "" }
            ),
            SignatureSource::Positional { name, separator } => {
                format!("header {name} as \"<timestamp>{separator}<sig>[{separator}<sig>..]\"")
            }
            SignatureSource::Versioned { names, version } => format!(
                "header {} as space-separated \"{version},<sig>\" entries",
                names_of(names)
            ),
            SignatureSource::Json(pointer) => format!("the JSON body at {pointer}"),
            SignatureSource::Query(param) => format!("query parameter {param}"),
            SignatureSource::FormPairs(field) => {
                format!("form field {field} as public_key|signature pairs joined by &")
            }
        };
        let mut text = format!(
            "HMAC-{} of \"{}\", {}-encoded in {where_}",
            desc.algorithm.as_str().to_uppercase(),
            desc.message,
            desc.encoding.as_str(),
        );
        match &desc.timestamp {
            Some(TimestampSource::Header(names, unit)) => {
                text.push_str(&format!(
                    "; timestamp in {} ({})",
                    names[0],
                    unit.config_str()
                ));
            }
            Some(TimestampSource::Json(pointer, unit)) => {
                text.push_str(&format!(
                    "; timestamp at {pointer} in the JSON body ({})",
                    unit.as_str()
                ));
            }
            Some(TimestampSource::List(TimestampUnit::Millis)) => {
                text.push_str("; the list's timestamp is in ms");
            }
            Some(TimestampSource::List(_)) | None => {}
        }
        if desc.timestamp.is_some() && !desc.window {
            text.push_str("; the timestamp is signed but no window is checked");
        }
        match &desc.id {
            Some(IdSource::Header(names)) => text.push_str(&format!("; id in {}", names[0])),
            Some(IdSource::Json(pointer)) => text.push_str(&format!("; id at {pointer}")),
            None => {}
        }
        if let Some(choice) = &desc.algorithm_from {
            let values: Vec<String> = choice
                .values
                .iter()
                .map(|(v, a)| format!("{v} = {}", a.as_str()))
                .collect();
            text.push_str(&format!(
                "; the hash is the one {} names, of {}",
                choice.header,
                values.join(", ")
            ));
        }
        if let Some(url) = &desc.public_url {
            text.push_str(&format!("; {{url}} is {}", url.base));
        }
        if let Some(kind) = desc.challenge {
            text.push_str(&format!(
                "; hookguard {} (unless answer_challenges = false)",
                kind.describe()
            ));
        }
        text
    }

    fn sends_secret(&self) -> bool {
        // The setup request carries the secret itself.
        self.desc.challenge.is_some_and(ChallengeKind::learns)
    }

    fn challenge_kind(&self) -> Option<ChallengeKind> {
        self.desc.challenge
    }

    fn challenge(
        &self,
        request: &RequestView<'_>,
        verified: Option<&Verified>,
    ) -> Option<Result<challenge::Reply, Reject>> {
        let kind = self.desc.challenge?;
        // Signed kinds only once verified; unsigned kinds only before.
        if kind.signed() != verified.is_some() {
            return None;
        }
        let refused = |detail: String| Some(Err(Reject::with(Reason::MalformedRequest, detail)));
        let query = |name: &str| {
            form_urlencoded::parse(request.uri.query().unwrap_or("").as_bytes())
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        let json = |pointer: &str| -> Option<String> {
            let doc: serde_json::Value = serde_json::from_slice(request.body).ok()?;
            doc.pointer(pointer)?.as_str().map(str::to_owned)
        };
        let text = |body: String| challenge::Reply {
            body: body.into(),
            ..challenge::Reply::empty()
        };
        match kind {
            ChallengeKind::XCrc | ChallengeKind::EchoQuery(_) | ChallengeKind::EchoHeader(_) => {
                if request.method != http::Method::GET {
                    return None;
                }
                let (token, what) = match kind {
                    ChallengeKind::EchoHeader(name) => (
                        request.headers.get(name)?.to_str().unwrap_or("").to_owned(),
                        format!("the {name} header"),
                    ),
                    ChallengeKind::EchoQuery(param) => {
                        (query(param)?, format!("the {param} query parameter"))
                    }
                    _ => (
                        query("crc_token")?,
                        "the crc_token query parameter".to_owned(),
                    ),
                };
                if !challenge::token_shaped(&token) {
                    return refused(format!(
                        "{what} is not token-shaped (1 to {} base64 or alphanumeric characters); it is not answered",
                        challenge::MAX_TOKEN
                    ));
                }
                if !matches!(kind, ChallengeKind::XCrc) {
                    return Some(Ok(text(token)));
                }
                // X signs with the consumer secret: the route's first.
                let tag = self.keys[0][0].mac(token.as_bytes());
                let answer = serde_json::json!({
                    "response_token": format!("sha256={}", encoding::encode(Encoding::Base64, &tag)),
                });
                Some(Ok(challenge::Reply {
                    content_type: "application/json",
                    body: answer.to_string().into(),
                    headers: Vec::new(),
                }))
            }
            ChallengeKind::ZoomUrlValidation => {
                let verified = verified?;
                if json("/event")? != "endpoint.url_validation" {
                    return None;
                }
                let Some(plain) = json("/payload/plainToken") else {
                    return refused("endpoint.url_validation has no payload.plainToken".into());
                };
                if plain.len() > challenge::MAX_TOKEN {
                    return refused("payload.plainToken is too long to answer".into());
                }
                let tag = self.keys[verified.key][0].mac(plain.as_bytes());
                let answer = serde_json::json!({
                    "plainToken": plain,
                    "encryptedToken": encoding::encode(Encoding::Hex, &tag),
                });
                Some(Ok(challenge::Reply {
                    content_type: "application/json",
                    body: answer.to_string().into(),
                    headers: Vec::new(),
                }))
            }
            ChallengeKind::AsanaHandshake => {
                // developers.asana.com/docs/webhooks-guide: the handshake
                // carries X-Hook-Secret and no X-Hook-Signature; the answer
                // is 200 (or 204) with the same X-Hook-Secret.
                if request.method != http::Method::POST
                    || request.headers.contains_key("x-hook-signature")
                {
                    return None;
                }
                let value = request.headers.get("x-hook-secret")?;
                let reply = challenge::Reply {
                    headers: vec![(HeaderName::from_static("x-hook-secret"), value.clone())],
                    ..challenge::Reply::empty()
                };
                self.confirm(value.to_str().unwrap_or(""), reply)
            }
            ChallengeKind::NotionVerification => {
                // developers.notion.com/reference/webhooks: one unsigned
                // POST {"verification_token": ..}; the token is pasted
                // back into Notion's UI and then keys X-Notion-Signature.
                if request.method != http::Method::POST
                    || request.headers.contains_key("x-notion-signature")
                {
                    return None;
                }
                let token = json("/verification_token")?;
                self.confirm(&token, challenge::Reply::empty())
            }
            ChallengeKind::HeadOk => {
                (request.method == http::Method::HEAD).then(|| Ok(challenge::Reply::empty()))
            }
            ChallengeKind::WoocommercePing => {
                // WooCommerce's WC_Webhook::deliver_ping: body
                // "webhook_id=<id>", no signature, and anything but 200
                // fails the webhook's creation.
                let digits = request.body.strip_prefix(b"webhook_id=")?;
                let ping = request.method == http::Method::POST
                    && !request.headers.contains_key("x-wc-webhook-signature")
                    && (1..=20).contains(&digits.len())
                    && digits.iter().all(u8::is_ascii_digit);
                ping.then(|| Ok(challenge::Reply::empty()))
            }
            ChallengeKind::XeroIntentToReceive => {
                // developer.xero.com/documentation/webhooks/configuring-your-server:
                // the validation POSTs carry `"events": []` (and an
                // `entropy` that differs each time); a correctly signed
                // one needs 200 with no body, which the app then never
                // has to produce. Real deliveries carry events and are
                // forwarded.
                verified?;
                let doc: serde_json::Value = serde_json::from_slice(request.body).ok()?;
                let no_events = doc
                    .get("events")
                    .and_then(serde_json::Value::as_array)
                    .is_some_and(Vec::is_empty);
                (request.method == http::Method::POST && no_events)
                    .then(|| Ok(challenge::Reply::empty()))
            }
            ChallengeKind::TwitchVerification => {
                let kind = request
                    .headers
                    .get("twitch-eventsub-message-type")
                    .and_then(|v| v.to_str().ok())?;
                if kind != "webhook_callback_verification" {
                    return None;
                }
                match json("/challenge") {
                    Some(token) if token.len() <= challenge::MAX_TOKEN => Some(Ok(text(token))),
                    _ => refused("webhook_callback_verification has no usable challenge".into()),
                }
            }
        }
    }

    fn signed_headers(&self) -> Vec<HeaderName> {
        self.desc
            .message
            .parts()
            .iter()
            .filter_map(|part| match part {
                Part::Header(name) => Some(name.clone()),
                _ => None,
            })
            .collect()
    }

    fn timestamp_unit(&self) -> Option<TimestampUnit> {
        match &self.desc.timestamp {
            Some(
                TimestampSource::Header(_, unit)
                | TimestampSource::Json(_, unit)
                | TimestampSource::List(unit),
            ) => Some(*unit),
            None => None,
        }
    }

    fn delivery_header(&self) -> Option<&HeaderName> {
        match &self.desc.id {
            Some(IdSource::Header(names)) => names.first(),
            _ => None,
        }
    }

    fn default_dedupe(&self) -> Vec<DedupeSource> {
        self.desc.dedupe.clone()
    }

    fn default_tolerance(&self) -> Duration {
        self.desc.tolerance
    }

    fn signed_message(&self, request: &RequestView<'_>) -> Option<Result<Vec<u8>, Reject>> {
        Some(self.read(request, |values, _| {
            let mut message = Vec::new();
            self.desc
                .message
                .feed(values, &mut |bytes| message.extend_from_slice(bytes))?;
            Ok(message)
        }))
    }

    fn sign(&self, key: usize, request: &mut Unsigned) -> Result<(), String> {
        if key >= self.keys.len() {
            return Err(format!(
                "the route has no secret yet (it learns one into learn_secret_file); {} cannot sign",
                self.name
            ));
        }
        sign::sign(self, &[key], request)
    }

    fn sign_with_every_key(&self, request: &mut Unsigned) -> Result<(), String> {
        let keys: Vec<usize> = (0..self.keys.len()).collect();
        sign::sign(self, &keys, request)
    }

    fn key_ids(&self) -> &[String] {
        &self.key_ids
    }

    fn verify(&self, request: &RequestView<'_>) -> Result<Verified, Reject> {
        let algorithm = self.algorithm_of(request)?;
        self.read(request, |values, claimed| {
            for (index, key) in self.keys.iter().enumerate() {
                let expected = key[algorithm].tag(&self.desc.message, values)?;
                // Length is public (it is the algorithm's output size); the
                // contents are compared without early exit. A candidate of
                // the wrong length is simply not a match.
                let matched = claimed.candidates.iter().position(|candidate| {
                    candidate.len() == expected.len() && bool::from(expected.ct_eq(candidate))
                });
                if let Some(found) = matched {
                    return Ok(Verified {
                        key: index,
                        signature: claimed
                            .candidates
                            .into_iter()
                            .nth(found)
                            .expect("position is in range"),
                        // Without a window the timestamp is only signed text.
                        timestamp: claimed.timestamp.filter(|_| self.desc.window),
                    });
                }
            }
            Err(Reject::with(
                Reason::BadSignature,
                format!(
                    "the {} signature matches none of the route's {} secret(s)",
                    self.name,
                    self.keys.len()
                ),
            ))
        })
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::schemes::encoding::{self, Encoding};
    use bytes::Bytes;
    use http::{HeaderMap, Method, Uri};

    pub(super) fn scheme(prefix: Option<&str>, encoding: Encoding, secrets: &[&str]) -> HmacScheme {
        let spec = HmacSpec {
            encoding,
            ..HmacSpec::body(HeaderName::from_static("x-signature"), prefix)
        };
        let keys = secrets
            .iter()
            .enumerate()
            .map(|(i, s)| (i.to_string(), s.as_bytes().to_vec()))
            .collect();
        HmacScheme::new("hmac", spec.into(), keys)
    }

    pub(super) fn verify(
        s: &HmacScheme,
        sig: Option<&str>,
        body: &'static [u8],
    ) -> Result<Verified, Reject> {
        let mut headers = HeaderMap::new();
        if let Some(sig) = sig {
            headers.insert("x-signature", sig.parse().unwrap());
        }
        let body = Bytes::from_static(body);
        let uri = Uri::from_static("/hook");
        s.verify(&RequestView {
            method: &Method::POST,
            uri: &uri,
            headers: &headers,
            body: &body,
        })
    }

    // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
    const RFC4231_TC2_SHA256: &str =
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";

    #[test]
    fn matches_the_rfc_4231_vector_with_or_without_prefix() {
        let s = scheme(Some("sha256="), Encoding::Hex, &["Jefe"]);
        let body: &'static [u8] = b"what do ya want for nothing?";
        assert!(verify(&s, Some(RFC4231_TC2_SHA256), body).is_ok());
        let prefixed = format!("sha256={RFC4231_TC2_SHA256}");
        let ok = verify(&s, Some(&prefixed), body).unwrap();
        assert_eq!(ok.key, 0);
        assert_eq!(hex::encode(ok.signature), RFC4231_TC2_SHA256);
        let upper = format!("SHA256={}", RFC4231_TC2_SHA256.to_uppercase());
        assert!(verify(&s, Some(&upper), body).is_ok());
    }

    #[test]
    fn decoding_failures_and_wrong_lengths_have_distinct_reasons() {
        let s = scheme(Some("sha256="), Encoding::Hex, &["Jefe"]);
        let body: &'static [u8] = b"what do ya want for nothing?";
        assert_eq!(
            verify(&s, None, body).unwrap_err().reason,
            Reason::MissingSignature
        );
        assert_eq!(
            verify(&s, Some("sha256=xyz"), body).unwrap_err().reason,
            Reason::MalformedSignature
        );
        assert_eq!(
            verify(&s, Some("sha256="), body).unwrap_err().reason,
            Reason::MalformedSignature
        );
        // Valid hex, wrong length: simply not a match.
        assert_eq!(
            verify(&s, Some("abcd"), body).unwrap_err().reason,
            Reason::BadSignature
        );
        let mut tampered = RFC4231_TC2_SHA256.to_owned();
        tampered.replace_range(0..1, "6");
        let err = verify(&s, Some(&tampered), body).unwrap_err();
        assert_eq!(err.reason, Reason::BadSignature);
        assert!(!err.detail.contains(RFC4231_TC2_SHA256));
    }

    #[test]
    fn a_list_of_signatures_passes_when_any_entry_matches() {
        let s = scheme(Some("sha256="), Encoding::Hex, &["Jefe"]);
        let body: &'static [u8] = b"what do ya want for nothing?";
        let list = format!("sha256=zz, sha256=abcd sha256={RFC4231_TC2_SHA256}");
        let ok = verify(&s, Some(&list), body).unwrap();
        assert_eq!(hex::encode(ok.signature), RFC4231_TC2_SHA256);
        assert_eq!(
            verify(&s, Some("sha256=zz, nothex"), body)
                .unwrap_err()
                .reason,
            Reason::MalformedSignature
        );
        assert_eq!(
            verify(&s, Some("sha256=abcd, sha256=00ff"), body)
                .unwrap_err()
                .reason,
            Reason::BadSignature
        );
    }

    #[test]
    fn any_secret_matching_passes_and_is_named() {
        let s = scheme(None, Encoding::Base64, &["new", "Jefe"]);
        let sig = encoding::encode(Encoding::Base64, &hex::decode(RFC4231_TC2_SHA256).unwrap());
        let ok = verify(&s, Some(&sig), b"what do ya want for nothing?").unwrap();
        assert_eq!(ok.key, 1);
        assert_eq!(s.key_ids()[ok.key], "1");
    }
}
