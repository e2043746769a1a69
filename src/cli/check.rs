//! `hookguard check`: validates a config file, secrets included, without
//! binding anything, and prints a summary that names key ids but never a
//! secret.

use std::path::Path;
use std::process::ExitCode;

use super::{output, with_config};

/// Loads the config at `path`; prints a summary and exits 0, or prints
/// every error and exits 2.
pub fn run(path: &Path) -> ExitCode {
    with_config(path, |config| {
        output(&format!(
            "{}: OK, {} route(s)\n{}",
            path.display(),
            config.routes.len(),
            config.summary()
        ));
        ExitCode::SUCCESS
    })
}
