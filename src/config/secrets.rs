//! Secret material and where it comes from.
//!
//! Secrets are resolved once, during validation, from `env`, `file` or
//! `value` sources. A [`Secret`] never prints its bytes: its `Debug` is
//! redacted and nothing else exposes them except [`Secret::expose`], which the
//! schemes call to prepare their keys.

use std::fmt;
use std::path::{Path, PathBuf};

use super::reader::{describe, ConfigErrors, Section};

/// Where environment variables come from. The process environment in
/// production; tests and the demo supply their own, so that nothing has to
/// mutate the process-global environment.
pub trait Env: Send + Sync {
    /// The value of variable `name`, if set.
    fn var(&self, name: &str) -> Option<String>;
}

/// The real process environment.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl<F> Env for F
where
    F: Fn(&str) -> Option<String> + Send + Sync,
{
    fn var(&self, name: &str) -> Option<String> {
        self(name)
    }
}

/// A resolved secret with the id it is reported under.
#[derive(Clone)]
pub struct Secret {
    /// The configured `id`, or the secret's index in the list. Appears in the
    /// verified header, logs and metrics, so that operators can tell which
    /// secret is still in use before retiring it.
    pub id: String,
    bytes: Vec<u8>,
}

impl Secret {
    /// Wraps secret bytes.
    pub fn new(id: String, bytes: Vec<u8>) -> Self {
        Secret { id, bytes }
    }

    /// The secret bytes, for preparing keys.
    pub fn expose(&self) -> &[u8] {
        &self.bytes
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({:?}, <redacted>)", self.id)
    }
}

/// Where one secret is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// An environment variable.
    Env(String),
    /// A file, read whole with one trailing newline trimmed.
    File(String),
    /// A literal in the config file (for demos and tests).
    Value(String),
}

impl Source {
    /// Reads the secret; the error names the variable or path, never the
    /// contents.
    pub fn resolve(&self, env: &dyn Env) -> Result<Vec<u8>, String> {
        let bytes = match self {
            Source::Env(name) => env
                .var(name)
                .ok_or_else(|| format!("environment variable {name} is not set"))?
                .into_bytes(),
            Source::File(path) => {
                let mut bytes = std::fs::read(Path::new(path))
                    .map_err(|e| format!("cannot read secret file {path}: {e}"))?;
                trim_one_newline(&mut bytes);
                bytes
            }
            Source::Value(text) => text.clone().into_bytes(),
        };
        if bytes.is_empty() {
            return Err(match self {
                Source::Env(name) => format!("environment variable {name} is empty"),
                Source::File(path) => format!("secret file {path} is empty"),
                Source::Value(_) => "value is empty".to_owned(),
            });
        }
        Ok(bytes)
    }
}

/// Resolves key sources against an environment, and notes every file a
/// source names, whether or not it could be read: exactly what a reload must
/// poll to notice a rotated secret, or the fix of a missing one.
pub struct SourceReader<'e> {
    env: &'e dyn Env,
    files: Vec<PathBuf>,
}

impl<'e> SourceReader<'e> {
    /// A reader with no files noted yet.
    pub fn new(env: &'e dyn Env) -> Self {
        SourceReader {
            env,
            files: Vec::new(),
        }
    }

    /// Reads the secret, as [`Source::resolve`] does, noting its file.
    pub fn resolve(&mut self, source: &Source) -> Result<Vec<u8>, String> {
        if let Source::File(path) = source {
            let path = PathBuf::from(path);
            if !self.files.contains(&path) {
                self.files.push(path);
            }
        }
        source.resolve(self.env)
    }

    /// Like [`SourceReader::resolve`], for a secret marked `optional`: an
    /// unset or empty variable, or an empty file, gives `Ok(None)` (the
    /// secret is skipped) instead of an error. A file that cannot be read
    /// at all is still an error: that is more often a typo than a retired
    /// secret.
    pub fn resolve_optional(&mut self, source: &Source) -> Result<Option<Vec<u8>>, String> {
        let absent = match source {
            Source::Env(name) => self.env.var(name).is_none_or(|v| v.is_empty()),
            Source::File(path) => std::fs::read(path).is_ok_and(|mut bytes| {
                trim_one_newline(&mut bytes);
                bytes.is_empty()
            }),
            Source::Value(text) => text.is_empty(),
        };
        if absent {
            if let Source::File(path) = source {
                let path = PathBuf::from(path);
                if !self.files.contains(&path) {
                    self.files.push(path);
                }
            }
            return Ok(None);
        }
        self.resolve(source).map(Some)
    }

    /// Reads a route's `learn_secret_file`, noting it so that a reload
    /// notices the secret once it is learned: `None` while the file is
    /// absent or empty (nothing learned yet), its contents (one trailing
    /// newline trimmed) once it holds a secret.
    pub fn learned(&mut self, path: &str) -> Result<Option<Vec<u8>>, String> {
        let file = PathBuf::from(path);
        if !self.files.contains(&file) {
            self.files.push(file);
        }
        match std::fs::read(path) {
            Ok(mut bytes) => {
                trim_one_newline(&mut bytes);
                Ok((!bytes.is_empty()).then_some(bytes))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("cannot read {path}: {e}")),
        }
    }

    /// The files noted so far, each once, in the order first read.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// The files noted, for keeping beyond the reader.
    pub fn into_files(self) -> Vec<PathBuf> {
        self.files
    }
}

/// Reads one key source table (`{ env = "VAR" }`, `{ file = "/path" }` or
/// `{ value = "..." }`): exactly one must be given, or an error naming the
/// table is recorded. The caller reads any other keys and finishes the table.
pub(crate) fn read_source(entry: &mut Section<'_>, errors: &mut ConfigErrors) -> Option<Source> {
    let mut sources = Vec::new();
    if let Some(name) = entry.string("env", errors) {
        sources.push(Source::Env(name.to_owned()));
    }
    if let Some(file) = entry.string("file", errors) {
        sources.push(Source::File(file.to_owned()));
    }
    // A literal is read without `string`, so that a type error message
    // cannot hint at its content.
    if let Some(value) = entry.raw("value") {
        match value {
            toml::Value::String(text) => sources.push(Source::Value(text.clone())),
            other => errors.push(
                entry.key("value"),
                format!("expected a string, found {}", describe(other)),
            ),
        }
    }
    if sources.len() != 1 {
        errors.push(
            entry.path().to_owned(),
            "give exactly one of env = \"VAR\", file = \"/path\" or value = \"...\"",
        );
        return None;
    }
    sources.pop()
}

/// Editors and `echo` add a final newline that is not part of the secret;
/// exactly one (`\n` or `\r\n`) is removed, anything else is kept.
fn trim_one_newline(bytes: &mut Vec<u8>) {
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_secrets_lose_exactly_one_trailing_newline() {
        let dir = std::env::temp_dir().join(format!("hookguard-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s");
        let source = Source::File(path.to_string_lossy().into_owned());
        std::fs::write(&path, "abc\n\n").unwrap();
        assert_eq!(source.resolve(&ProcessEnv).unwrap(), b"abc\n");
        std::fs::write(&path, "abc\r\n").unwrap();
        assert_eq!(source.resolve(&ProcessEnv).unwrap(), b"abc");
        std::fs::write(&path, "abc").unwrap();
        assert_eq!(source.resolve(&ProcessEnv).unwrap(), b"abc");
        std::fs::write(&path, "\n").unwrap();
        assert!(source
            .resolve(&ProcessEnv)
            .unwrap_err()
            .contains("is empty"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn errors_name_the_source_not_the_secret() {
        let env = |name: &str| (name == "SET").then(|| "s3cret".to_owned());
        let err = Source::Env("UNSET".into()).resolve(&env).unwrap_err();
        assert_eq!(err, "environment variable UNSET is not set");
        assert_eq!(Source::Env("SET".into()).resolve(&env).unwrap(), b"s3cret");
        let err = Source::File("/nonexistent/hookguard".into())
            .resolve(&env)
            .unwrap_err();
        assert!(err.starts_with("cannot read secret file /nonexistent/hookguard"));
    }

    #[test]
    fn the_reader_notes_each_named_file_once_even_when_unreadable() {
        let env = |name: &str| (name == "SET").then(|| "s3cret".to_owned());
        let mut reader = SourceReader::new(&env);
        let missing = Source::File("/nonexistent/hookguard-a".into());
        assert!(reader.resolve(&missing).is_err());
        assert!(reader.resolve(&Source::Env("SET".into())).is_ok());
        assert!(reader.resolve(&Source::Value("v".into())).is_ok());
        assert!(reader.resolve(&missing).is_err());
        assert_eq!(reader.files(), [PathBuf::from("/nonexistent/hookguard-a")]);
    }

    #[test]
    fn debug_is_redacted() {
        let s = Secret::new("current".into(), b"hunter2".to_vec());
        let shown = format!("{s:?}");
        assert!(!shown.contains("hunter2"));
        assert!(shown.contains("current"));
    }
}
