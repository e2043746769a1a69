//! `scheme = "none"`: no signature at all. Some senders (a bank's callback,
//! seed 003) sign nothing and publish only the addresses they send from;
//! such a route accepts requests by its `allow_ips` alone (config requires
//! a non-empty list), so what authenticates them is the network, not a key.
//! hookguard still applies every other check, dedupes on the sources the
//! route names (none by default: there is no signature to dedupe on), and
//! marks forwarded requests `scheme=none; key=allow_ips` so the app can
//! tell. `hookguard check` warns that nothing is authenticated.

use super::{RequestView, Scheme, Unsigned, Verified};
use crate::dedupe::DedupeSource;
use crate::reject::Reject;

/// The one "key" of a route without one: the address check that stands in
/// for a signature, as named in `X-Verified-By`.
const KEY_ID: &str = "allow_ips";

/// The scheme of a route that authenticates nothing itself.
#[derive(Debug)]
pub struct NoneScheme {
    ids: Vec<String>,
}

impl Default for NoneScheme {
    fn default() -> Self {
        NoneScheme {
            ids: vec![KEY_ID.to_owned()],
        }
    }
}

impl Scheme for NoneScheme {
    fn name(&self) -> &'static str {
        "none"
    }

    fn key_ids(&self) -> &[String] {
        &self.ids
    }

    fn verify(&self, _request: &RequestView<'_>) -> Result<Verified, Reject> {
        Ok(Verified {
            key: 0,
            signature: Vec::new(),
            timestamp: None,
        })
    }

    fn describe(&self) -> String {
        "no signature: requests are accepted by the route's allow_ips alone; nothing is authenticated".to_owned()
    }

    fn default_dedupe(&self) -> Vec<DedupeSource> {
        Vec::new()
    }

    fn authenticates(&self) -> bool {
        false
    }

    fn sign(&self, _key: usize, _request: &mut Unsigned) -> Result<(), String> {
        // Nothing to add: the request goes as it is.
        Ok(())
    }
}
