//! Hop-by-hop fields: the ones that describe one connection rather than the
//! message, and so are never passed from one connection to the next.
//!
//! One list ([`HOP_BY_HOP`], RFC 9110 §7.6.1) and one reader of the
//! `Connection` header ([`ConnectionOptions`]) serve every direction: the
//! sender's request head (persistence), the request rebuilt for the app
//! (what to drop), and the app's answer (persistence and what to drop).
//! What each direction drops besides is named where it is used.

/// Fields that are hop-by-hop by definition (RFC 9110 §7.6.1, plus the
/// obsolete `Keep-Alive` and `Proxy-Connection` that clients still send).
pub const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Whether `name` is in [`HOP_BY_HOP`], in any case.
pub fn is_hop_by_hop(name: &str) -> bool {
    HOP_BY_HOP.iter().any(|h| h.eq_ignore_ascii_case(name))
}

/// What the `Connection` fields of one message say.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ConnectionOptions<'a> {
    /// `close` was among the options.
    pub close: bool,
    /// `keep-alive` was among the options (meaningful for HTTP/1.0).
    pub keep_alive: bool,
    /// Every other option: field names the sender made hop-by-hop for this
    /// message. Empty (and unallocated) for nearly every message.
    pub named: Vec<&'a [u8]>,
}

impl<'a> ConnectionOptions<'a> {
    /// Reads the values of every `Connection` field of a message.
    pub fn parse(values: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let mut options = ConnectionOptions::default();
        for value in values {
            for option in value.split(|&b| b == b',') {
                let option = option.trim_ascii();
                if option.eq_ignore_ascii_case(b"close") {
                    options.close = true;
                } else if option.eq_ignore_ascii_case(b"keep-alive") {
                    options.keep_alive = true;
                } else if !option.is_empty() {
                    options.named.push(option);
                }
            }
        }
        options
    }

    /// Whether the connection persists after this message: HTTP/1.1 keeps
    /// it unless told to close, HTTP/1.0 closes it unless told to keep it
    /// (RFC 9112 §9.3).
    pub fn persists(&self, http10: bool) -> bool {
        if http10 {
            self.keep_alive && !self.close
        } else {
            !self.close
        }
    }

    /// Whether `name` is one of the fields this message's `Connection`
    /// made hop-by-hop.
    pub fn names(&self, name: &str) -> bool {
        self.named
            .iter()
            .any(|n| n.eq_ignore_ascii_case(name.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_read_across_fields_and_commas_in_any_case() {
        let options = ConnectionOptions::parse([&b"Keep-Alive, X-Secret"[..], b" CLOSE ,,"]);
        assert!(options.close && options.keep_alive);
        assert!(options.names("x-secret"));
        assert!(!options.names("x-other"));
        assert!(!options.persists(false) && !options.persists(true));
    }

    #[test]
    fn persistence_follows_the_version() {
        let none = ConnectionOptions::parse([]);
        assert!(none.persists(false));
        assert!(!none.persists(true));
        let keep = ConnectionOptions::parse([&b"keep-alive"[..]]);
        assert!(keep.persists(true));
    }

    #[test]
    fn the_list_is_matched_in_any_case() {
        assert!(is_hop_by_hop("Transfer-Encoding"));
        assert!(is_hop_by_hop("PROXY-AUTHORIZATION"));
        assert!(!is_hop_by_hop("content-length"));
    }
}
