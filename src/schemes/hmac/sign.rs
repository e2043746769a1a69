//! Signing as a sender would, for `hookguard sign` and tests: never called
//! on the request path. Whatever this signs, verification must accept (the
//! property tests hold both to that).

use super::description::{IdSource, SignatureSource, TimestampSource, TimestampUnit};
use super::HmacScheme;
use crate::reject::Reject;
use crate::schemes::encoding;
use crate::schemes::template::Values;
use crate::schemes::Unsigned;

impl HmacScheme {
    /// Signs as a sender would, with secret `key`: the encoded MAC of the
    /// message `values` describe, with the header prefix when the scheme has
    /// one (list syntax is added by [`crate::schemes::Scheme::sign`]).
    pub fn signature_for(&self, key: usize, values: &Values<'_>) -> Result<String, Reject> {
        // `algorithm` is the first prepared hash (see `HmacScheme::new`)
        // or, with an allow-list, the one `sign` names in its header.
        let index = self
            .algorithms
            .iter()
            .position(|a| *a == self.desc.algorithm)
            .unwrap_or(0);
        let tag = self.keys[key][index].tag(&self.desc.message, values)?;
        let encoded = encoding::encode(self.desc.encoding, &tag);
        Ok(match &self.desc.signature {
            SignatureSource::Header {
                prefix: Some(prefix),
                ..
            }
            | SignatureSource::Headers {
                prefix: Some(prefix),
                ..
            } => format!("{prefix}{encoded}"),
            _ => encoded,
        })
    }
}

/// Signs `request` with each secret in `keys` as the provider would: adds
/// the timestamp, id and signature where the description reads them
/// (headers or the JSON body). With several keys (a rotation) every
/// signature goes into the one header, in the list syntax verification
/// reads: `v1,a v1,b`, `t=..,v1=a,v1=b`, `sha256=a,sha256=b`. A signature
/// inside a JSON body has room for one, so only the first key signs there.
/// `hookguard sign` (one key) and the egress signer (every key) both come
/// here.
pub(super) fn sign(
    scheme: &HmacScheme,
    keys: &[usize],
    request: &mut Unsigned,
) -> Result<(), String> {
    if keys.is_empty() {
        return Err(format!("scheme {} has no secret to sign with", scheme.name));
    }
    let desc = &scheme.desc;
    let mut json: Option<serde_json::Value> = if scheme.needs_json {
        let doc: serde_json::Value = serde_json::from_slice(&request.body)
            .map_err(|_| format!("scheme {} signs a JSON object body", scheme.name))?;
        if !doc.is_object() {
            return Err(format!("scheme {} signs a JSON object body", scheme.name));
        }
        Some(doc)
    } else {
        None
    };
    if let Some(choice) = &desc.algorithm_from {
        if let Some((value, _)) = choice.values.iter().find(|(_, a)| *a == desc.algorithm) {
            let value = http::HeaderValue::from_str(value)
                .map_err(|_| "the algorithm name is not a valid header value".to_owned())?;
            request.headers.insert(choice.header.clone(), value);
        }
    }
    let mut timestamp_text = None;
    match &desc.timestamp {
        Some(TimestampSource::Header(names, unit)) => {
            let value = unit.format(request.now);
            request.headers.insert(
                names[0].clone(),
                value.parse().expect("a formatted time is a header"),
            );
            timestamp_text = Some(value);
        }
        Some(TimestampSource::List(unit)) => timestamp_text = Some(unit.format(request.now)),
        Some(TimestampSource::Json(pointer, unit)) => {
            let doc = json.as_mut().expect("JSON sources parse the body");
            let value = unit.format(request.now);
            // Mailgun writes its timestamp (seconds) as a string, Linear
            // its (milliseconds) as a number; keep whichever the body
            // already uses, else follow the provider.
            let number = value.parse::<i64>().ok();
            let new = match (doc.pointer(pointer), unit, number) {
                (Some(serde_json::Value::Number(_)), _, Some(n))
                | (None, TimestampUnit::Millis, Some(n)) => serde_json::Value::from(n),
                _ => serde_json::Value::from(value.clone()),
            };
            json_set(doc, pointer, new)?;
            timestamp_text = Some(value);
        }
        None => {}
    }
    match &desc.id {
        Some(IdSource::Header(names)) => {
            let value = http::HeaderValue::from_str(&request.id)
                .map_err(|_| "the delivery id is not a valid header value".to_owned())?;
            request.headers.insert(names[0].clone(), value);
        }
        Some(IdSource::Json(pointer)) => {
            let doc = json.as_mut().expect("JSON sources parse the body");
            json_set(doc, pointer, serde_json::Value::from(request.id.clone()))?;
        }
        None => {}
    }
    if let Some(doc) = &json {
        request.body = serde_json::to_vec(doc)
            .map_err(|e| format!("cannot write the JSON body: {e}"))?
            .into();
    }
    let url = desc
        .public_url
        .as_ref()
        .map(|u| u.for_request(&request.uri));
    let path = request.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let values = Values {
        method: request.method.as_str(),
        path,
        body: &request.body,
        timestamp: timestamp_text.as_deref(),
        id: match desc.id {
            Some(IdSource::Header(_)) => Some(request.id.as_str()),
            _ => json
                .as_ref()
                .zip(match &desc.id {
                    Some(IdSource::Json(p)) => Some(*p),
                    _ => None,
                })
                .and_then(|(doc, p)| doc.pointer(p))
                .and_then(|v| v.as_str()),
        },
        headers: &request.headers,
        url: url.as_deref(),
        json: json.as_ref(),
    };
    let signatures = keys
        .iter()
        .map(|&key| scheme.signature_for(key, &values))
        .collect::<Result<Vec<String>, Reject>>()
        .map_err(|r| r.detail.into_owned())?;
    let timestamp = timestamp_text.unwrap_or_default();
    let wire = match &desc.signature {
        SignatureSource::Header { names, .. } => (names[0].clone(), signatures.join(",")),
        // A signature spread over several headers is sent in the first:
        // with several keys, the first key's (hookguard's verifier reads
        // the first header it finds).
        SignatureSource::Headers { names, .. } => (names[0].clone(), signatures[0].clone()),
        SignatureSource::KvList {
            name,
            separator,
            timestamp_key,
            signature_key,
            ..
        } => {
            let mut text = format!("{timestamp_key}={timestamp}");
            for signature in &signatures {
                text.push_str(&format!("{separator}{signature_key}={signature}"));
            }
            (name.clone(), text)
        }
        SignatureSource::Positional { name, separator } => {
            let mut text = timestamp.to_owned();
            for signature in &signatures {
                text.push_str(&format!("{separator}{signature}"));
            }
            (name.clone(), text)
        }
        SignatureSource::Versioned { names, version } => {
            let entries: Vec<String> = signatures
                .iter()
                .map(|signature| format!("{version},{signature}"))
                .collect();
            (names[0].clone(), entries.join(" "))
        }
        SignatureSource::Json(pointer) => {
            let mut doc = json.expect("JSON sources parse the body");
            let first = signatures.into_iter().next().unwrap_or_default();
            json_set(&mut doc, pointer, serde_json::Value::from(first))?;
            request.body = serde_json::to_vec(&doc)
                .map_err(|e| format!("cannot write the JSON body: {e}"))?
                .into();
            return Ok(());
        }
        SignatureSource::FormPairs(field) => {
            let mut form = form_urlencoded::Serializer::new(String::new());
            for (name, value) in form_urlencoded::parse(&request.body) {
                if name != *field {
                    form.append_pair(&name, &value);
                }
            }
            form.append_pair(field, &format!("hookguard|{}", signatures[0]));
            request.body = form.finish().into();
            return Ok(());
        }
        SignatureSource::Query(param) => {
            let pair: String = form_urlencoded::Serializer::new(String::new())
                .append_pair(param, &signatures[0])
                .finish();
            let target = match request.uri.query() {
                Some(query) => format!("{}?{query}&{pair}", request.uri.path()),
                None => format!("{}?{pair}", request.uri.path()),
            };
            request.uri = target
                .parse()
                .map_err(|_| "the signed target is not a valid URI".to_owned())?;
            return Ok(());
        }
    };
    let value = http::HeaderValue::from_str(&wire.1)
        .map_err(|_| "the signature prefix is not a valid header value".to_owned())?;
    request.headers.insert(wire.0, value);
    Ok(())
}

/// Sets `pointer` in `doc`, creating objects along the way (for signing
/// body-embedded schemes); an array on the way is entered by the index the
/// pointer names, which must exist (Adyen's `/notificationItems/0/..`).
fn json_set(
    doc: &mut serde_json::Value,
    pointer: &str,
    value: serde_json::Value,
) -> Result<(), String> {
    let mut node = doc;
    let mut parts = pointer.split('/').skip(1).peekable();
    while let Some(part) = parts.next() {
        if let serde_json::Value::Array(items) = node {
            let item = part
                .parse::<usize>()
                .ok()
                .and_then(|i| items.get_mut(i))
                .ok_or_else(|| format!("{pointer}: the body's array has no element {part}"))?;
            node = item;
            continue;
        }
        let map = node
            .as_object_mut()
            .ok_or_else(|| format!("{pointer}: the body has a non-object on the way"))?;
        if parts.peek().is_none() {
            map.insert(part.to_owned(), value);
            return Ok(());
        }
        node = map
            .entry(part.to_owned())
            .or_insert_with(|| serde_json::Value::Object(Default::default()));
    }
    Err(format!("{pointer} is not a JSON pointer to a field"))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{scheme, verify};
    use super::*;
    use crate::reject::Reason;
    use crate::schemes::encoding::Encoding;
    use crate::schemes::hmac::{Algorithm, HmacSpec};
    use crate::schemes::template::Template;
    use crate::schemes::{RequestView, Scheme};
    use bytes::Bytes;
    use http::header::HeaderName;
    use http::{HeaderMap, Method, Uri};

    #[test]
    fn sign_produces_what_verify_accepts() {
        let s = scheme(Some("sha256="), Encoding::Hex, &["k"]);
        let headers = HeaderMap::new();
        let values = Values {
            method: "POST",
            path: "/hook",
            body: b"hello",
            timestamp: None,
            id: None,
            headers: &headers,
            url: None,
            json: None,
        };
        let sig = s.signature_for(0, &values).unwrap();
        assert!(sig.starts_with("sha256="));
        assert!(verify(&s, Some(&sig), b"hello").is_ok());
        assert_eq!(
            verify(&s, Some(&sig), b"hellO").unwrap_err().reason,
            Reason::BadSignature
        );
    }

    #[test]
    fn the_trait_sign_adds_every_header_verify_needs() {
        let spec = HmacSpec {
            algorithm: Algorithm::Sha512,
            encoding: Encoding::Base64,
            message: Template::parse("{id}.{timestamp}.{method}.{path}.{body}").unwrap(),
            timestamp: Some(TimestampSource::Header(
                vec![HeaderName::from_static("x-ts")],
                TimestampUnit::Millis,
            )),
            id_header: Some(HeaderName::from_static("x-id")),
            ..HmacSpec::body(HeaderName::from_static("x-sig"), Some("v1="))
        };
        let s = HmacScheme::new("hmac", spec.into(), vec![("a".into(), b"k".to_vec())]);
        let mut unsigned = Unsigned {
            method: Method::PUT,
            uri: Uri::from_static("/x?y=1"),
            headers: HeaderMap::new(),
            body: Bytes::from_static(b"payload"),
            now: 1_700_000_000,
            id: "msg_1".into(),
        };
        Scheme::sign(&s, 0, &mut unsigned).unwrap();
        assert_eq!(unsigned.headers["x-ts"], "1700000000000");
        assert_eq!(unsigned.headers["x-id"], "msg_1");
        let view = RequestView {
            method: &unsigned.method,
            uri: &unsigned.uri,
            headers: &unsigned.headers,
            body: &unsigned.body,
        };
        let ok = s.verify(&view).unwrap();
        assert_eq!(ok.timestamp, Some(1_700_000_000));
        let message = s.signed_message(&view).unwrap().unwrap();
        assert_eq!(message, b"msg_1.1700000000000.PUT./x?y=1.payload");
        assert!(s.describe().contains("HMAC-SHA512"));
    }

    #[test]
    fn json_set_creates_objects_along_the_pointer() {
        let mut doc = serde_json::json!({"a": 1});
        json_set(&mut doc, "/signature/token", "t".into()).unwrap();
        assert_eq!(
            doc,
            serde_json::json!({"a": 1, "signature": {"token": "t"}})
        );
        assert!(json_set(&mut doc, "/a/b", 1.into()).is_err());
        let mut doc = serde_json::json!({"items": [{"x": 1}]});
        json_set(&mut doc, "/items/0/sig", "s".into()).unwrap();
        assert_eq!(doc, serde_json::json!({"items": [{"x": 1, "sig": "s"}]}));
        assert!(json_set(&mut doc, "/items/1/sig", "s".into()).is_err());
    }
}
