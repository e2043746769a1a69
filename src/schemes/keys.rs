//! Shared secrets prepared once as keyed MAC states, for the schemes with
//! rules of their own module (Plivo, Contentful): a request clones a state
//! instead of re-deriving the key schedule, and candidates are compared in
//! constant time. (The HMAC family has its own, per algorithm.)

use hmac::digest::KeyInit;
use hmac::Mac;
use subtle::ConstantTimeEq;

/// The route's secrets as keyed `M` states, with their ids.
pub struct MacKeys<M> {
    ids: Vec<String>,
    keys: Vec<M>,
}

impl<M> std::fmt::Debug for MacKeys<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MacKeys")
            .field("ids", &self.ids)
            .finish_non_exhaustive()
    }
}

impl<M: Mac + KeyInit + Clone> MacKeys<M> {
    /// Prepares one state per `(id, secret)`.
    pub fn new(keys: Vec<(String, Vec<u8>)>) -> Self {
        MacKeys {
            keys: keys
                .iter()
                .map(|(_, k)| <M as KeyInit>::new_from_slice(k).expect("HMAC takes any key length"))
                .collect(),
            ids: keys.into_iter().map(|(id, _)| id).collect(),
        }
    }

    /// The secrets' ids, in configuration order.
    pub fn ids(&self) -> &[String] {
        &self.ids
    }

    /// How many secrets there are.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there are none (never, once config has validated).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The MAC of `message` with secret `key`.
    pub fn tag(&self, key: usize, message: &[u8]) -> Vec<u8> {
        let mut mac = self.keys[key].clone();
        mac.update(message);
        mac.finalize().into_bytes().to_vec()
    }

    /// The first secret whose MAC of `message` equals one of `candidates`,
    /// compared in constant time (a candidate of the wrong length is simply
    /// not a match), and that candidate.
    pub fn find(&self, message: &[u8], candidates: &[Vec<u8>]) -> Option<(usize, Vec<u8>)> {
        (0..self.keys.len()).find_map(|key| {
            let expected = self.tag(key, message);
            candidates
                .iter()
                .find(|c| c.len() == expected.len() && bool::from(expected.ct_eq(c)))
                .map(|c| (key, c.clone()))
        })
    }
}
