//! T-Bank (Tinkoff) payment notifications (`scheme = "tbank"`): a `Token`
//! inside the JSON body.
//!
//! The token is the hex SHA-256 of the values of the body's root scalar
//! fields plus `Password` (the terminal password, the route's secret),
//! sorted by field name, with `Token` itself left out. Nested objects and
//! arrays (`Receipt`, `DATA`) and nulls are not signed; booleans are written
//! `true`/`false` and numbers as sent. The body is only read: the exact
//! bytes received are what is forwarded (re-read:
//! developer.tbank.ru/eacq/intro/developer/token: root parameters only,
//! `Password` added, sorted by key, the values joined, SHA-256).

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::encoding::{self, Encoding};
use super::{RequestView, Scheme, Unsigned, Verified};
use crate::dedupe::DedupeSource;
use crate::reject::{Reason, Reject};

/// T-Bank's token check for one route.
pub struct TbankScheme {
    key_ids: Vec<String>,
    passwords: Vec<String>,
}

impl std::fmt::Debug for TbankScheme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TbankScheme")
            .field("key_ids", &self.key_ids)
            .finish_non_exhaustive()
    }
}

/// The text of one signed value; `None` for values that are not signed.
fn scalar_text(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The string T-Bank hashes: signed values sorted by field name,
/// `Password` included, `Token` excluded.
pub fn canonical(doc: &serde_json::Map<String, serde_json::Value>, password: &str) -> String {
    let mut fields: Vec<(&str, String)> = doc
        .iter()
        .filter(|(k, _)| k.as_str() != "Token" && k.as_str() != "Password")
        .filter_map(|(k, v)| scalar_text(v).map(|t| (k.as_str(), t)))
        .collect();
    fields.push(("Password", password.to_owned()));
    fields.sort_by(|a, b| a.0.cmp(b.0));
    fields.into_iter().map(|(_, v)| v).collect()
}

impl TbankScheme {
    /// Keeps the terminal passwords; they must be text.
    pub fn new(keys: Vec<(String, String)>) -> Self {
        TbankScheme {
            key_ids: keys.iter().map(|(id, _)| id.clone()).collect(),
            passwords: keys.into_iter().map(|(_, p)| p).collect(),
        }
    }

    fn object(body: &[u8]) -> Result<serde_json::Map<String, serde_json::Value>, Reject> {
        match serde_json::from_slice(body) {
            Ok(serde_json::Value::Object(map)) => Ok(map),
            _ => Err(Reject::new(
                Reason::MissingSignature,
                "a T-Bank notification is a JSON object with a Token; the body is not one",
            )),
        }
    }
}

impl Scheme for TbankScheme {
    fn name(&self) -> &'static str {
        "tbank"
    }

    fn key_ids(&self) -> &[String] {
        &self.key_ids
    }

    fn describe(&self) -> String {
        "SHA-256 (hex) of the JSON body's root scalar values plus Password, sorted by field name, Token excluded; compared with the body's Token".to_owned()
    }

    fn default_dedupe(&self) -> Vec<DedupeSource> {
        vec![DedupeSource::JsonAll(vec![
            "/PaymentId".to_owned(),
            "/Status".to_owned(),
        ])]
    }

    fn verify(&self, request: &RequestView<'_>) -> Result<Verified, Reject> {
        let doc = Self::object(request.body)?;
        let token = match doc.get("Token") {
            None => {
                return Err(Reject::new(
                    Reason::MissingSignature,
                    "the JSON body has no Token",
                ))
            }
            Some(serde_json::Value::String(t)) => t,
            Some(_) => {
                return Err(Reject::new(
                    Reason::MalformedSignature,
                    "the body's Token is not a string",
                ))
            }
        };
        let candidate = encoding::decode(Encoding::Hex, token).ok_or_else(|| {
            Reject::new(Reason::MalformedSignature, "the body's Token is not hex")
        })?;
        for (key, password) in self.passwords.iter().enumerate() {
            let expected = Sha256::digest(canonical(&doc, password).as_bytes());
            if candidate.len() == expected.len() && bool::from(expected.ct_eq(&candidate[..])) {
                return Ok(Verified {
                    key,
                    signature: candidate,
                    timestamp: None,
                });
            }
        }
        Err(Reject::with(
            Reason::BadSignature,
            format!(
                "the Token matches none of the route's {} password(s)",
                self.passwords.len()
            ),
        ))
    }

    fn sign(&self, key: usize, request: &mut Unsigned) -> Result<(), String> {
        let mut doc = Self::object(&request.body).map_err(|r| r.detail.into_owned())?;
        doc.remove("Token");
        let token = hex::encode(Sha256::digest(
            canonical(&doc, &self.passwords[key]).as_bytes(),
        ));
        doc.insert("Token".to_owned(), token.into());
        request.body = serde_json::to_vec(&doc)
            .map_err(|e| format!("cannot write the JSON body: {e}"))?
            .into();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_sorts_by_name_skips_nested_and_token_and_writes_booleans() {
        let doc: serde_json::Value = serde_json::from_str(
            r#"{"TerminalKey":"T1","Amount":1000,"Success":true,"Token":"zz",
                "Receipt":{"x":1},"DATA":[1],"Pan":null,"Status":"CONFIRMED","PaymentId":42}"#,
        )
        .unwrap();
        assert_eq!(
            canonical(doc.as_object().unwrap(), "pw"),
            "1000pw42CONFIRMEDtrueT1"
        );
    }
}
