//! Properties of signing and verifying, over generated routes and requests:
//! whatever `sign` produces, `verify` accepts, and any single-byte change to
//! the body or to the signature is refused.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Uri};
use proptest::prelude::*;

use hookguard::config::Config;
use hookguard::schemes::{RequestView, Unsigned};

/// A generic HMAC route with the given description.
fn hmac_route(algorithm: &str, encoding: &str, prefix: &str, template: &str) -> Config {
    let text = format!(
        r#"
[server]
upstream = "http://127.0.0.1:1"
[[routes]]
name = "p"
path = "/p"
scheme = "hmac"
secrets = [{{ value = "first" }}, {{ value = "second" }}]
[routes.hmac]
header = "X-Sig"
prefix = "{prefix}"
algorithm = "{algorithm}"
encoding = "{encoding}"
message = "{template}"
timestamp_header = "X-Ts"
id_header = "X-Id"
"#
    );
    Config::from_toml(&text, &|_: &str| None::<String>).unwrap_or_else(|e| panic!("{e}"))
}

fn signed(config: &Config, body: &[u8], now: i64) -> Unsigned {
    let mut unsigned = Unsigned {
        method: Method::POST,
        uri: Uri::from_static("/p?x=1"),
        headers: HeaderMap::new(),
        body: Bytes::copy_from_slice(body),
        now,
        id: "msg_2b".into(),
    };
    config.routes[0].scheme.sign(0, &mut unsigned).unwrap();
    unsigned
}

fn verify(config: &Config, u: &Unsigned) -> Result<usize, String> {
    let view = RequestView {
        method: &u.method,
        uri: &u.uri,
        headers: &u.headers,
        body: &u.body,
    };
    config.routes[0]
        .scheme
        .verify(&view)
        .map(|v| v.key)
        .map_err(|r| r.reason.as_str().to_owned())
}

fn description() -> impl Strategy<Value = (&'static str, &'static str, &'static str, &'static str)>
{
    (
        prop::sample::select(vec!["sha1", "sha256", "sha512"]),
        prop::sample::select(vec!["hex", "base64"]),
        prop::sample::select(vec!["", "sha256=", "v1,"]),
        prop::sample::select(vec![
            "{body}",
            "{body}.{timestamp}",
            "{timestamp}.{body}",
            "{id}.{timestamp}.{body}",
            "v0:{timestamp}:{body}",
            "{method} {path}\\n{body}",
        ]),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn what_sign_makes_verify_accepts(
        (algorithm, encoding, prefix, template) in description(),
        body in prop::collection::vec(any::<u8>(), 0..512),
        now in 1_000_000_000i64..4_000_000_000,
    ) {
        let config = hmac_route(algorithm, encoding, prefix, template);
        let request = signed(&config, &body, now);
        prop_assert_eq!(verify(&config, &request), Ok(0));
    }

    #[test]
    fn any_single_byte_change_to_the_body_is_refused(
        (algorithm, encoding, prefix, template) in description(),
        body in prop::collection::vec(any::<u8>(), 1..512),
        position in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let config = hmac_route(algorithm, encoding, prefix, template);
        let mut request = signed(&config, &body, 1_700_000_000);
        let mut changed = body.clone();
        let i = position.index(changed.len());
        changed[i] ^= flip;
        request.body = Bytes::from(changed);
        prop_assert_eq!(verify(&config, &request), Err("bad_signature".to_owned()));
    }

    #[test]
    fn any_single_character_change_to_the_signature_is_refused(
        (algorithm, encoding, prefix, template) in description(),
        body in prop::collection::vec(any::<u8>(), 0..128),
        position in any::<prop::sample::Index>(),
        replacement in prop::sample::select(b"0123456789abcdefABCDEF+/=_-xyz".to_vec()),
    ) {
        let config = hmac_route(algorithm, encoding, prefix, template);
        let mut request = signed(&config, &body, 1_700_000_000);
        let original = request.headers["x-sig"].to_str().unwrap().to_owned();
        let signature_start = prefix.len();
        let i = signature_start + position.index(original.len() - signature_start);
        let mut bytes = original.clone().into_bytes();
        prop_assume!(bytes[i] != replacement);
        bytes[i] = replacement;
        // Base64 padding and unused low bits can decode to the same bytes;
        // only a change that alters what is compared must be refused.
        let decoded = |text: &str| {
            let text = text.strip_prefix(prefix).unwrap_or(text);
            match encoding {
                "hex" => hex::decode(text).ok(),
                _ => base64_decode(text),
            }
        };
        let changed = String::from_utf8(bytes).unwrap();
        prop_assume!(decoded(&changed) != decoded(&original));
        request.headers.insert("x-sig", HeaderValue::from_str(&changed).unwrap());
        let result = verify(&config, &request);
        prop_assert!(
            matches!(result.as_ref().map_err(String::as_str), Err("bad_signature") | Err("malformed_signature")),
            "{:?}", result
        );
    }
}

/// Lenient base64 decoding, as hookguard does it (standard or URL-safe
/// alphabet, padding optional).
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
    use base64::engine::DecodePaddingMode;
    use base64::{alphabet, Engine};
    let config =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    GeneralPurpose::new(&alphabet::STANDARD, config)
        .decode(text)
        .or_else(|_| GeneralPurpose::new(&alphabet::URL_SAFE, config).decode(text))
        .ok()
}
