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
//!
//! Two senders create the secret themselves and send it once, unsigned,
//! while the webhook is being set up: Asana's `X-Hook-Secret` handshake
//! and Notion's `verification_token`. hookguard confirms such a value only
//! when it equals a secret the route already has (compared in constant
//! time, so the answer says nothing about any other value), or, on a route
//! that sets `learn_secret_file`, writes it once to that file ([`Learn`]),
//! which the reload then reads as the route's secret. The value is never
//! logged. Trello's `HEAD` and WooCommerce's `webhook_id=` ping involve no
//! secret and are answered 200 with nothing forwarded.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};

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
    /// Asana's handshake: an unsigned `POST` carrying `X-Hook-Secret`, the
    /// secret Asana made for the webhook, to be echoed in the answer's
    /// `X-Hook-Secret`.
    AsanaHandshake,
    /// Notion's subscription verification: an unsigned `POST` whose JSON
    /// body is `{"verification_token": ..}`, the secret Notion made for the
    /// subscription, which the operator pastes back into Notion's UI.
    NotionVerification,
    /// Trello's `HEAD` to the callback URL when the webhook is created:
    /// answered 200 with no body.
    HeadOk,
    /// WooCommerce's ping when a webhook is created: an unsigned `POST`
    /// whose body is `webhook_id=<id>`, which must get exactly 200.
    WoocommercePing,
    /// Xero's intent to receive (signed `POST`s whose `events` is empty):
    /// a good signature gets 200 with no body, from hookguard; a bad one
    /// gets the usual 401.
    XeroIntentToReceive,
}

impl Kind {
    /// Whether the challenge arrives signed, and is recognised only once
    /// the request has verified.
    pub fn signed(self) -> bool {
        matches!(
            self,
            Kind::ZoomUrlValidation | Kind::TwitchVerification | Kind::XeroIntentToReceive
        )
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
            Kind::AsanaHandshake => {
                "answers Asana's X-Hook-Secret handshake when the value is the route's secret, or learns it into learn_secret_file"
            }
            Kind::NotionVerification => {
                "answers Notion's verification_token POST when the token is the route's secret, or learns it into learn_secret_file"
            }
            Kind::HeadOk => "answers the HEAD sent when the webhook is created",
            Kind::WoocommercePing => "answers the webhook_id= ping sent when the webhook is created",
            Kind::XeroIntentToReceive => {
                "answers Xero's validly signed intent-to-receive POSTs (no events) with 200 and no body"
            }
        }
    }

    /// Whether the sender makes the secret and sends it in the setup
    /// request, so that a route may learn it (`learn_secret_file`).
    pub fn learns(self) -> bool {
        matches!(self, Kind::AsanaHandshake | Kind::NotionVerification)
    }
}

/// The file a route learns its secret into (`learn_secret_file`): written
/// once, created with mode 0600, and only while it is absent or empty.
#[derive(Debug)]
pub struct Learn {
    path: PathBuf,
    /// Serialises the check and the write, so that two setup requests at
    /// once cannot both find the file empty.
    lock: Mutex<()>,
}

impl Learn {
    /// The file at `path` (read at load as the route's secret when it
    /// holds one).
    pub fn new(path: PathBuf) -> Self {
        Learn {
            path,
            lock: Mutex::new(()),
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `secret` to the file when it is absent or empty; refuses when
    /// it already holds something (a secret was learned before). The error
    /// names the file, never the secret.
    pub fn write_once(&self, secret: &[u8]) -> Result<(), String> {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let _held = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let path = self.path.display();
        let created = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&self.path);
        let mut file = match created {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let len = std::fs::metadata(&self.path)
                    .map_err(|e| format!("cannot read {path}: {e}"))?
                    .len();
                if len > 0 {
                    return Err(format!(
                        "{path} already holds a learned secret; empty it to learn again"
                    ));
                }
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&self.path)
                    .map_err(|e| format!("cannot write {path}: {e}"))?;
                file.set_permissions(std::fs::Permissions::from_mode(0o600))
                    .map_err(|e| format!("cannot make {path} private: {e}"))?;
                file
            }
            Err(e) => return Err(format!("cannot create {path}: {e}")),
        };
        file.write_all(secret)
            .and_then(|()| file.sync_all())
            .map_err(|e| format!("cannot write {path}: {e}"))
    }
}

/// hookguard's own 200 answer to a challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// `application/json` or `text/plain`.
    pub content_type: &'static str,
    /// The answer.
    pub body: Bytes,
    /// Headers the answer must carry (Asana's `X-Hook-Secret`).
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl Reply {
    /// A 200 with nothing in it.
    pub fn empty() -> Self {
        Reply {
            content_type: "text/plain; charset=utf-8",
            body: Bytes::new(),
            headers: Vec::new(),
        }
    }
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
    fn a_learned_secret_is_written_once_privately() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("hookguard-learn-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("secret");
        let _ = std::fs::remove_file(&path);
        let learn = Learn::new(path.clone());
        learn.write_once(b"first").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = learn.write_once(b"second").unwrap_err();
        assert!(again.contains("already holds"), "{again}");
        assert!(!again.contains("second"));
        // An empty file is learned into.
        std::fs::write(&path, b"").unwrap();
        learn.write_once(b"third").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"third");
        std::fs::remove_dir_all(&dir).unwrap();
    }

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
