//! Endpoint challenges hookguard answers itself: the ones whose answer
//! needs the route's secret (so that the app never has to hold it) or that
//! arrive unsigned and would otherwise be refused.
//!
//! A preset names its [`Kind`] in its description; the pipeline asks the
//! scheme ([`super::Scheme::challenge`]) before verification for the
//! unsigned kinds and after it for the signed ones, and answers 200 itself
//! when the scheme recognises one. Two rules keep an answer computed with
//! the secret from becoming a signing oracle (README, "Endpoint
//! challenges"): Zoom's validation is answered only when the request itself
//! is validly signed, and X's CRC only for a token of the shape X sends
//! (bounded, base64 or alphanumeric characters), never for anything that
//! could be a webhook body: X's answer is exactly the signature X would put
//! on a `POST` whose body is the token.

use bytes::Bytes;

/// Which challenge a preset answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Zoom's `endpoint.url_validation` (signed `POST`): answered with
    /// `plainToken` and `encryptedToken` = hex HMAC-SHA256 of it, keyed
    /// with the secret that verified the request.
    ZoomUrlValidation,
    /// X's CRC (unsigned `GET ?crc_token=`): answered with
    /// `{"response_token":"sha256=<base64 HMAC-SHA256 of the token>"}`,
    /// keyed with the route's first secret.
    XCrc,
    /// Twitch's `webhook_callback_verification` (signed `POST`): answered
    /// with the body's `challenge`, as text.
    TwitchVerification,
    /// An unsigned `GET` whose query parameter is echoed as text (Dropbox's
    /// and Nylas's `challenge`).
    EchoQuery(&'static str),
    /// An unsigned `GET` whose request header is echoed as text
    /// (Worldline's `X-GCS-Webhooks-Endpoint-Verification`).
    EchoHeader(&'static str),
}

impl Kind {
    /// Whether the challenge arrives signed, and is recognised only once
    /// the request has verified.
    pub fn signed(self) -> bool {
        matches!(self, Kind::ZoomUrlValidation | Kind::TwitchVerification)
    }

    /// What hookguard does with it, for `check` ("answers ...").
    pub fn describe(self) -> &'static str {
        match self {
            Kind::ZoomUrlValidation => {
                "answers Zoom's endpoint.url_validation when it is validly signed"
            }
            Kind::XCrc => "answers X's CRC GET for token-shaped crc_token values",
            Kind::TwitchVerification => "answers Twitch's signed webhook_callback_verification",
            Kind::EchoQuery(_) => "echoes the challenge GET's query parameter",
            Kind::EchoHeader(_) => "echoes the verification GET's header",
        }
    }
}

/// hookguard's own 200 answer to a challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// `application/json` or `text/plain`.
    pub content_type: &'static str,
    /// The answer.
    pub body: Bytes,
}

/// Longest token or challenge answered: X's CRC tokens and Dropbox's
/// challenges are far shorter.
pub const MAX_TOKEN: usize = 256;

/// Whether `token` has the shape the providers send: 1 to [`MAX_TOKEN`]
/// characters of base64 (either alphabet) or plain alphanumerics. JSON,
/// markup and anything with spaces or quotes is refused, so no webhook
/// body can be signed through a CRC answer and nothing is reflected that a
/// browser could read as markup.
pub fn token_shaped(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= MAX_TOKEN
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'-' | b'_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_token_shaped_values_are_answered() {
        assert!(token_shaped("Zm9vYmFy+/=="));
        assert!(token_shaped("abc-DEF_123"));
        for refused in [
            "",
            r#"{"id":"evt_1"}"#,
            "<script>",
            "a b",
            "a\"b",
            &"a".repeat(MAX_TOKEN + 1),
        ] {
            assert!(!token_shaped(refused), "{refused:?}");
        }
    }
}
