//! Where a delivery's dedupe keys come from: one entry of a route's `dedupe`
//! list, its grammar and its spelling.
//!
//! A leaf module: schemes name their default sources with it, config reads a
//! route's own list with [`DedupeSource::parse`], and the replay step derives
//! keys from it, so none of those has to import another for this one type.

use std::fmt;

use http::header::HeaderName;

/// One entry of a route's `dedupe` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DedupeSource {
    /// The verified signature bytes.
    Signature,
    /// A request header's value.
    Header(HeaderName),
    /// A value in the JSON body, by JSON pointer.
    Json(String),
    /// Several JSON values together, by JSON pointers: one key from all of
    /// them (T-Bank's PaymentId with Status: each status of a payment is
    /// its own notification). Written `json:(/PaymentId,/Status)`.
    JsonAll(Vec<String>),
}

impl DedupeSource {
    /// Reads one entry as written in the config (`"signature"`,
    /// `"header:Name"`, `"json:/pointer"`, `"json:(/a,/b)"`). The error says
    /// what is wrong and quotes the entry; the caller adds the key.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text == "signature" {
            return Ok(DedupeSource::Signature);
        }
        if let Some(name) = text.strip_prefix("header:") {
            return HeaderName::from_bytes(name.as_bytes())
                .map(DedupeSource::Header)
                .map_err(|_| format!("{name:?} is not a valid header name"));
        }
        if let Some(list) = text
            .strip_prefix("json:(")
            .and_then(|rest| rest.strip_suffix(')'))
        {
            let pointers: Vec<String> = list.split(',').map(|p| p.trim().to_owned()).collect();
            return if pointers.len() >= 2 && pointers.iter().all(|p| p.starts_with('/')) {
                Ok(DedupeSource::JsonAll(pointers))
            } else {
                Err(format!(
                    "{text:?}: list two or more JSON pointers, e.g. \"json:(/PaymentId,/Status)\""
                ))
            };
        }
        if let Some(pointer) = text.strip_prefix("json:") {
            return if pointer.starts_with('/') {
                Ok(DedupeSource::Json(pointer.to_owned()))
            } else {
                Err(format!(
                    "{text:?}: a JSON pointer starts with \"/\", e.g. \"json:/id\""
                ))
            };
        }
        Err(format!(
            "{text:?} is not one of \"signature\", \"header:Name\", \"json:/pointer\", \"json:(/a,/b)\""
        ))
    }
}

/// The config spelling, so that `check` prints what a user would write.
impl fmt::Display for DedupeSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DedupeSource::Signature => f.write_str("signature"),
            DedupeSource::Header(h) => write!(f, "header:{h}"),
            DedupeSource::Json(p) => write!(f, "json:{p}"),
            DedupeSource::JsonAll(ps) => write!(f, "json:({})", ps.join(",")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_reads_back_as_written() {
        for text in [
            "signature",
            "header:x-delivery",
            "json:/id",
            "json:(/PaymentId,/Status)",
        ] {
            assert_eq!(DedupeSource::parse(text).unwrap().to_string(), text);
        }
        assert_eq!(
            DedupeSource::parse("json:( /a , /b )").unwrap(),
            DedupeSource::JsonAll(vec!["/a".into(), "/b".into()])
        );
    }

    #[test]
    fn malformed_entries_say_which_form_was_meant() {
        let error = |text| DedupeSource::parse(text).unwrap_err();
        assert_eq!(error("header:a b"), "\"a b\" is not a valid header name");
        assert!(error("json:(/a)").contains("two or more JSON pointers"));
        assert!(error("json:(/a,b)").contains("two or more JSON pointers"));
        assert!(error("json:id").contains("starts with \"/\""));
        assert!(error("body").contains("is not one of"));
    }
}
