//! Matching a request path to a configured route.
//!
//! Exact paths win over prefixes; among prefixes the longest wins, so that
//! `/v1/inbound/leads/*` can sit beside a broader `/v1/*`. The table is built
//! once per config; a lookup is a hash probe plus a short scan of prefixes.

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::{PathPattern, Route};

/// The route named `name`; the error lists the names there are (for the
/// tools and the admin endpoints that take a route by name).
pub fn by_name<'r>(routes: &'r [Arc<Route>], name: &str) -> Result<&'r Route, String> {
    routes
        .iter()
        .find(|r| r.name == name)
        .map(|r| r.as_ref())
        .ok_or_else(|| {
            let names: Vec<&str> = routes.iter().map(|r| r.name.as_str()).collect();
            format!("no route named {name:?}; routes are: {}", names.join(", "))
        })
}

/// The route table.
#[derive(Debug)]
pub struct Router {
    /// Path to the route's index in the config.
    exact: HashMap<String, usize>,
    /// Sorted longest prefix first.
    prefixes: Vec<(String, usize)>,
}

impl Router {
    /// Builds the table from validated routes (paths are already unique).
    pub fn new(routes: &[Arc<Route>]) -> Self {
        let mut exact = HashMap::new();
        let mut prefixes = Vec::new();
        for (index, route) in routes.iter().enumerate() {
            match &route.path {
                PathPattern::Exact(p) => {
                    exact.insert(p.clone(), index);
                }
                PathPattern::Prefix(p) => prefixes.push((p.clone(), index)),
            }
        }
        prefixes.sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
        Router { exact, prefixes }
    }

    /// The route serving `path`, if any.
    pub fn find(&self, path: &str) -> Option<usize> {
        self.exact.get(path).copied().or_else(|| {
            self.prefixes
                .iter()
                .find(|(prefix, _)| path.starts_with(prefix.as_str()))
                .map(|&(_, index)| index)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn config() -> Config {
        let text = r#"
            [server]
            upstream = "http://127.0.0.1:1"
            [[routes]]
            name = "broad"
            path = "/v1/*"
            scheme = "hmac"
            secrets = [{ value = "s" }]
            hmac = { header = "X-Sig" }
            [[routes]]
            name = "leads"
            path = "/v1/inbound/leads/*"
            scheme = "hmac"
            secrets = [{ value = "s" }]
            hmac = { header = "X-Sig" }
            [[routes]]
            name = "exact"
            path = "/v1/inbound/leads/special"
            scheme = "hmac"
            secrets = [{ value = "s" }]
            hmac = { header = "X-Sig" }
        "#;
        Config::from_toml(text, &crate::config::ProcessEnv).unwrap()
    }

    #[test]
    fn exact_beats_prefix_and_longest_prefix_wins() {
        let config = config();
        let router = Router::new(&config.routes);
        let name = |p: &str| router.find(p).map(|i| config.routes[i].name.clone());
        assert_eq!(name("/v1/inbound/leads/special").as_deref(), Some("exact"));
        assert_eq!(name("/v1/inbound/leads/42").as_deref(), Some("leads"));
        assert_eq!(name("/v1/other").as_deref(), Some("broad"));
        assert_eq!(name("/v1"), None);
        assert_eq!(name("/v2/x"), None);
    }
}
