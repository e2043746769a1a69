//! Decoding signatures as senders put them on the wire.

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::{alphabet, Engine};

/// How a signature is written in its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Lower- or upper-case hexadecimal.
    Hex,
    /// Base64, standard or URL-safe alphabet, padding optional.
    Base64,
}

impl Encoding {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Hex => "hex",
            Encoding::Base64 => "base64",
        }
    }
}

/// Senders differ on padding, and some use the URL-safe alphabet; the decoded
/// bytes are what is compared, so accepting both spellings costs nothing.
const PADDING_OPTIONAL: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, PADDING_OPTIONAL);
const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, PADDING_OPTIONAL);

/// Decodes `text`; `None` when it is not valid in that encoding or empty.
pub fn decode(encoding: Encoding, text: &str) -> Option<Vec<u8>> {
    if text.is_empty() {
        return None;
    }
    match encoding {
        // Into a slice of the right size: several times faster than
        // hex::decode's iterator, and this runs on every request.
        Encoding::Hex => {
            let mut bytes = vec![0; text.len() / 2];
            hex::decode_to_slice(text, &mut bytes).ok().map(|()| bytes)
        }
        Encoding::Base64 => STANDARD
            .decode(text)
            .or_else(|_| URL_SAFE.decode(text))
            .ok(),
    }
}

/// Encodes `bytes` the way a sender would (lower-case hex, padded base64).
pub fn encode(encoding: Encoding, bytes: &[u8]) -> String {
    match encoding {
        Encoding::Hex => hex::encode(bytes),
        Encoding::Base64 => base64::engine::general_purpose::STANDARD.encode(bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_accepts_either_case_and_refuses_odd_length() {
        assert_eq!(decode(Encoding::Hex, "0aFF"), Some(vec![0x0a, 0xff]));
        assert_eq!(decode(Encoding::Hex, "0aF"), None);
        assert_eq!(decode(Encoding::Hex, "zz"), None);
        assert_eq!(decode(Encoding::Hex, ""), None);
    }

    #[test]
    fn base64_accepts_padding_or_not_and_both_alphabets() {
        assert_eq!(decode(Encoding::Base64, "+/8="), Some(vec![0xfb, 0xff]));
        assert_eq!(decode(Encoding::Base64, "+/8"), Some(vec![0xfb, 0xff]));
        assert_eq!(decode(Encoding::Base64, "-_8"), Some(vec![0xfb, 0xff]));
        assert_eq!(decode(Encoding::Base64, "not base64!"), None);
    }

    #[test]
    fn encode_round_trips() {
        let bytes = [0u8, 1, 2, 250, 255];
        for enc in [Encoding::Hex, Encoding::Base64] {
            assert_eq!(decode(enc, &encode(enc, &bytes)).unwrap(), bytes);
        }
    }
}
