//! `hookguard check`: validates a config file, secrets included, without
//! binding anything, and prints a summary that names key ids but never a
//! secret.

use std::path::Path;
use std::process::ExitCode;

use super::{output, print_errors, with_config};

/// Loads the config at `path`; prints a summary and exits 0, or prints
/// every error and exits 2. `replicas` processes will run it: more than
/// one cannot share an embedded queue.
pub fn run(path: &Path, replicas: u32) -> ExitCode {
    with_config(path, |config| {
        if let Err(errors) = config.check_replicas(replicas) {
            print_errors(&errors);
            return ExitCode::from(2);
        }
        output(&format!(
            "{}: OK, {} route(s)\n{}",
            path.display(),
            config.routes.len(),
            config.summary()
        ));
        ExitCode::SUCCESS
    })
}
