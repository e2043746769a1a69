//! Reloading the configuration without a restart.
//!
//! SIGHUP re-reads the config file and every secret source. Between signals,
//! the config file and every file its key sources read (secrets, public
//! keys, Meta's verify token, the Redis password: whatever
//! [`Config::watched_files`] lists) are polled every
//! `server.reload_interval`, comparing contents, not modification times:
//! Kubernetes updates a mounted Secret by swapping a symlink, which leaves
//! the link's own mtime unchanged. After a refused reload, the files the
//! refused config named are polled instead, so that a secret file appearing
//! after the config that names it is noticed.
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

use crate::config::{Config, Env, SourceReader};
use crate::proxy::{Live, State};

/// Where the configuration comes from.
#[derive(Clone)]
pub struct ReloadSource {
    /// The config file.
    pub path: PathBuf,
    /// Where `env` secrets are looked up.
    pub env: Arc<dyn Env>,
    /// The [`fingerprint`] taken as soon as the running config was loaded,
    /// to compare the first poll with. Taken when the watcher starts
    /// instead, a secret file rotated while hookguard was starting (before
    /// the watcher ran: after the load, the queue's checks, the listeners
    /// and the egress routes) was in the watcher's first fingerprint, so
    /// it was never seen to change and the old secret stayed in use.
    pub loaded: Option<[u8; 32]>,
}

impl std::fmt::Debug for ReloadSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadSource")
            .field("path", &self.path)
            .finish()
    }
}

/// A digest of the config file and of `files` (the files its key sources
/// read), so that a change to any of them is noticed.
pub fn fingerprint(path: &Path, files: &[PathBuf]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    match std::fs::read(path) {
        Ok(text) => hasher.update(&text),
        Err(_) => hasher.update(b"\0unreadable"),
    }
    for file in files {
        hasher.update(file.as_os_str().as_encoded_bytes());
        match std::fs::read(file) {
            Ok(contents) => hasher.update(Sha256::digest(&contents)),
            Err(_) => hasher.update(b"\0missing"),
        }
    }
    hasher.finalize().into()
}

/// Loads, validates and swaps in the config. Returns the files its key
/// sources named, those of the new config or of the refused one: what to
/// poll until the next reload.
pub fn reload(state: &State, source: &ReloadSource) -> Vec<PathBuf> {
    let mut sources = SourceReader::new(source.env.as_ref());
    let loaded = Config::load_with(&source.path, &mut sources);
    match loaded {
        Ok(config) => {
            let old = state.live.load();
            warn_restart_only(&old.config, &config);
            let routes = config.routes.len();
            state
                .live
                .store(Arc::new(Live::new(config, &state.metrics)));
            state.metrics.reload(true);
            tracing::info!(path = %source.path.display(), routes, "configuration reloaded");
        }
        Err(errors) => {
            state.metrics.reload(false);
            let errors: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
            tracing::error!(
                path = %source.path.display(),
                errors = ?errors,
                "configuration reload refused; the previous configuration keeps serving"
            );
        }
    }
    sources.into_files()
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
    let mut files = state.live.load().config.watched_files().to_vec();
    let mut last = source
        .loaded
        .unwrap_or_else(|| fingerprint(&source.path, &files));
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
        let now = fingerprint(&source.path, &files);
        if force || now != last {
            if force {
                tracing::info!("SIGHUP: reloading the configuration");
            }
            let named = reload(&state, &source);
            // `now` was taken before reading, so a change made during the
            // reload shows at the next poll. Only a new set of files needs a
            // digest of its own, taken after reading.
            last = if named == files {
                now
            } else {
                fingerprint(&source.path, &named)
            };
            files = named;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fingerprint_changes_with_the_config_and_each_watched_file_only() {
        let dir = std::env::temp_dir().join(format!("hookguard-fp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (config, secret, other) = (dir.join("c.toml"), dir.join("s"), dir.join("o"));
        std::fs::write(&config, "a").unwrap();
        std::fs::write(&secret, "1").unwrap();
        std::fs::write(&other, "x").unwrap();
        let files = [secret.clone()];
        let first = fingerprint(&config, &files);
        std::fs::write(&other, "y").unwrap();
        assert_eq!(fingerprint(&config, &files), first, "unwatched files");
        std::fs::write(&secret, "2").unwrap();
        let second = fingerprint(&config, &files);
        assert_ne!(second, first, "a watched file");
        std::fs::remove_file(&secret).unwrap();
        assert_ne!(fingerprint(&config, &files), second, "a watched file gone");
        std::fs::write(&config, "b").unwrap();
        assert_ne!(fingerprint(&config, &[]), fingerprint(&config, &files));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
