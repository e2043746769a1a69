//! Reloading the configuration without a restart.
//!
//! SIGHUP re-reads the config file and every secret source. Between signals,
//! the config file and every secret file it names are polled every
//! `server.reload_interval`, comparing contents, not modification times:
//! Kubernetes updates a mounted Secret by swapping a symlink, which leaves
//! the link's own mtime unchanged.
//!
//! A new config is validated completely before it replaces the live one in
//! one atomic swap; requests in flight finish on the config they started
//! with. An invalid config is refused whole: the old one keeps serving, every
//! error is logged and `hookguard_config_reloads_total{result="error"}`
//! counts it. The replay store is not part of what is swapped, so a reload
//! never reopens the replay window.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::config::{Config, Env};
use crate::proxy::{Live, State};

/// Where the configuration comes from.
#[derive(Clone)]
pub struct ReloadSource {
    /// The config file.
    pub path: PathBuf,
    /// Where `env` secrets are looked up.
    pub env: Arc<dyn Env>,
}

impl std::fmt::Debug for ReloadSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadSource")
            .field("path", &self.path)
            .finish()
    }
}

/// A digest of the config file and of every secret file it names, so that a
/// change to any of them is noticed.
pub fn fingerprint(path: &Path) -> [u8; 32] {
    let mut hasher = Sha256::new();
    match std::fs::read(path) {
        Ok(text) => {
            hasher.update(&text);
            for file in secret_files(&String::from_utf8_lossy(&text)) {
                hasher.update(file.as_bytes());
                match std::fs::read(&file) {
                    Ok(contents) => hasher.update(Sha256::digest(&contents)),
                    Err(_) => hasher.update(b"\0missing"),
                }
            }
        }
        Err(_) => hasher.update(b"\0unreadable"),
    }
    hasher.finalize().into()
}

/// Every `file = "..."` under a route's `secrets` or `public_keys`.
fn secret_files(text: &str) -> Vec<String> {
    let Ok(document) = text.parse::<toml::Table>() else {
        return Vec::new();
    };
    let routes = document
        .get("routes")
        .and_then(|r| r.as_array())
        .map(Vec::as_slice)
        .unwrap_or_default();
    routes
        .iter()
        .filter_map(|route| route.as_table())
        .flat_map(|route| {
            ["secrets", "public_keys"]
                .into_iter()
                .filter_map(|key| route.get(key).and_then(|v| v.as_array()))
                .flatten()
        })
        .filter_map(|source| source.get("file").and_then(|f| f.as_str()))
        .map(str::to_owned)
        .collect()
}

/// Loads, validates and swaps in the config; returns whether it did.
pub fn reload(state: &State, source: &ReloadSource) -> bool {
    match Config::load(&source.path, source.env.as_ref()) {
        Ok(config) => {
            let old = state.live.load();
            warn_restart_only(&old.config, &config);
            let routes = config.routes.len();
            state
                .live
                .store(Arc::new(Live::new(config, &state.metrics)));
            state.metrics.reload(true);
            tracing::info!(path = %source.path.display(), routes, "configuration reloaded");
            true
        }
        Err(errors) => {
            state.metrics.reload(false);
            let errors: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
            tracing::error!(
                path = %source.path.display(),
                errors = ?errors,
                "configuration reload refused; the previous configuration keeps serving"
            );
            false
        }
    }
}

/// Settings that are bound at start; a reload that changes them logs that
/// they wait for a restart.
fn warn_restart_only(old: &Config, new: &Config) {
    let changed = [
        ("server.listen", old.server.listen != new.server.listen),
        (
            "server.admin_listen",
            old.server.admin_listen != new.server.admin_listen,
        ),
        (
            "server.max_connections",
            old.server.max_connections != new.server.max_connections,
        ),
        ("server.workers", old.server.workers != new.server.workers),
        (
            "replay.max_entries",
            old.replay.max_entries != new.replay.max_entries,
        ),
        (
            "replay.store",
            format!("{:?}", old.replay.store) != format!("{:?}", new.replay.store),
        ),
    ];
    for (key, differs) in changed {
        if differs {
            tracing::warn!(
                key,
                "changed in the reloaded configuration; takes effect after a restart"
            );
        }
    }
}

/// Reloads on SIGHUP and whenever the fingerprint changes, until dropped.
pub async fn watch(state: Arc<State>, source: ReloadSource) {
    let mut last = fingerprint(&source.path);
    #[cfg(unix)]
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    loop {
        let interval = state.live.load().config.server.reload_interval;
        #[cfg(unix)]
        let forced = async {
            match hangup.as_mut() {
                Some(signal) => signal.recv().await.is_some(),
                None => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let forced = std::future::pending::<bool>();
        let force = tokio::select! {
            got = forced => got,
            () = tokio::time::sleep(interval) => false,
        };
        let now = fingerprint(&source.path);
        if force || now != last {
            if force {
                tracing::info!("SIGHUP: reloading the configuration");
            }
            reload(&state, &source);
            last = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_files_are_found_under_secrets_and_public_keys() {
        let text = r#"
            [[routes]]
            secrets = [{ env = "A" }, { file = "/run/a" }]
            [[routes]]
            public_keys = [{ file = "/run/b.pub" }]
        "#;
        assert_eq!(secret_files(text), ["/run/a", "/run/b.pub"]);
        assert!(secret_files("not toml [").is_empty());
    }
}
