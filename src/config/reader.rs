//! A path-tracking reader over a parsed TOML document.
//!
//! Configuration errors are for humans: each one names the full key
//! (`routes[2].hmac.algorithm`), says what was found and what is allowed, and
//! all of them are reported at once. serde's derive stops at the first
//! problem, so the validation pass walks the TOML tree itself with this
//! reader, which records every error and, at the end of each table, every key
//! nobody asked for (unknown keys are errors: a typo must not silently fall
//! back to a default).

use std::fmt;
use std::time::Duration;

use super::units;

/// One configuration problem, tied to the key it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Full dotted path of the offending key, e.g. `routes[0].secrets[1]`.
    pub key: String,
    /// What is wrong, in words a user can act on. Never contains a secret.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.key, self.message)
        }
    }
}

/// Every error found in one validation pass.
#[derive(Debug, Default, Clone)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// Records a problem with `key`.
    pub fn push(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigError {
            key: key.into(),
            message: message.into(),
        });
    }

    /// True when nothing has been recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// A view of one TOML table that knows its own path and which keys were read.
pub struct Section<'a> {
    path: String,
    table: &'a toml::Table,
    used: Vec<&'a str>,
}

impl<'a> Section<'a> {
    /// The document root.
    pub fn root(table: &'a toml::Table) -> Self {
        Section {
            path: String::new(),
            table,
            used: Vec::new(),
        }
    }

    /// Full path of `key` inside this section.
    pub fn key(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// This section's own path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// True when `key` is present (and marks it as read).
    pub fn has(&mut self, key: &str) -> bool {
        self.raw(key).is_some()
    }

    /// The raw value under `key`, marking it as read.
    pub fn raw(&mut self, key: &str) -> Option<&'a toml::Value> {
        let (name, value) = self.table.get_key_value(key)?;
        self.used.push(name.as_str());
        Some(value)
    }

    /// A string value; a value of another type is recorded as an error.
    pub fn string(&mut self, key: &str, errors: &mut ConfigErrors) -> Option<&'a str> {
        match self.raw(key)? {
            toml::Value::String(s) => Some(s.as_str()),
            other => {
                errors.push(
                    self.key(key),
                    format!("expected a string, found {}", describe(other)),
                );
                None
            }
        }
    }

    /// A non-negative integer value.
    pub fn unsigned(&mut self, key: &str, errors: &mut ConfigErrors) -> Option<u64> {
        match self.raw(key)? {
            toml::Value::Integer(n) if *n >= 0 => Some(*n as u64),
            other => {
                errors.push(
                    self.key(key),
                    format!("expected a non-negative integer, found {}", describe(other)),
                );
                None
            }
        }
    }

    /// A boolean value.
    pub fn boolean(&mut self, key: &str, errors: &mut ConfigErrors) -> Option<bool> {
        match self.raw(key)? {
            toml::Value::Boolean(b) => Some(*b),
            other => {
                errors.push(
                    self.key(key),
                    format!("expected true or false, found {}", describe(other)),
                );
                None
            }
        }
    }

    /// A size: an integer number of bytes or a string with a unit.
    pub fn size(&mut self, key: &str, errors: &mut ConfigErrors) -> Option<u64> {
        let parsed = match self.raw(key)? {
            toml::Value::Integer(n) if *n >= 0 => Ok(*n as u64),
            toml::Value::String(s) => units::parse_size(s),
            other => Err(format!(
                "expected a size such as 1048576 or \"512KiB\", found {}",
                describe(other)
            )),
        };
        parsed.map_err(|m| errors.push(self.key(key), m)).ok()
    }

    /// A duration string with a unit.
    pub fn duration(&mut self, key: &str, errors: &mut ConfigErrors) -> Option<Duration> {
        let parsed = match self.raw(key)? {
            toml::Value::String(s) => units::parse_duration(s),
            other => Err(format!(
                "expected a duration such as \"10s\" or \"5m\", found {}",
                describe(other)
            )),
        };
        parsed.map_err(|m| errors.push(self.key(key), m)).ok()
    }

    /// A string that must be one of `allowed`.
    pub fn choice(
        &mut self,
        key: &str,
        allowed: &[&'static str],
        errors: &mut ConfigErrors,
    ) -> Option<&'static str> {
        let value = self.string(key, errors)?;
        match allowed.iter().find(|a| **a == value) {
            Some(found) => Some(found),
            None => {
                errors.push(
                    self.key(key),
                    format!("{value:?} is not one of {}", allowed.join(", ")),
                );
                None
            }
        }
    }

    /// A nested table, as its own section.
    pub fn table(&mut self, key: &str, errors: &mut ConfigErrors) -> Option<Section<'a>> {
        match self.raw(key)? {
            toml::Value::Table(t) => Some(Section {
                path: self.key(key),
                table: t,
                used: Vec::new(),
            }),
            other => {
                errors.push(
                    self.key(key),
                    format!("expected a table, found {}", describe(other)),
                );
                None
            }
        }
    }

    /// An array; each element comes with its own path (`key[i]`).
    pub fn array(
        &mut self,
        key: &str,
        errors: &mut ConfigErrors,
    ) -> Option<Vec<(String, &'a toml::Value)>> {
        match self.raw(key)? {
            toml::Value::Array(items) => Some(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (format!("{}[{i}]", self.key(key)), v))
                    .collect(),
            ),
            other => {
                errors.push(
                    self.key(key),
                    format!("expected an array, found {}", describe(other)),
                );
                None
            }
        }
    }

    /// An array of strings.
    pub fn strings(&mut self, key: &str, errors: &mut ConfigErrors) -> Option<Vec<&'a str>> {
        let items = self.array(key, errors)?;
        let mut out = Vec::with_capacity(items.len());
        for (path, item) in items {
            match item {
                toml::Value::String(s) => out.push(s.as_str()),
                other => errors.push(
                    path,
                    format!("expected a string, found {}", describe(other)),
                ),
            }
        }
        Some(out)
    }

    /// Reports every key of this table that was never read.
    pub fn finish(self, errors: &mut ConfigErrors) {
        for key in self.table.keys() {
            if !self.used.contains(&key.as_str()) {
                errors.push(self.key(key), "unknown key");
            }
        }
    }
}

/// Wraps an array element (or any value) that must be a table.
pub fn as_section<'a>(
    path: String,
    value: &'a toml::Value,
    errors: &mut ConfigErrors,
) -> Option<Section<'a>> {
    match value {
        toml::Value::Table(table) => Some(Section {
            path,
            table,
            used: Vec::new(),
        }),
        other => {
            errors.push(path, format!("expected a table, found {}", describe(other)));
            None
        }
    }
}

/// Names a TOML value's type for error messages. Values themselves are not
/// echoed: the wrong value might be a secret pasted into the wrong key.
pub fn describe(value: &toml::Value) -> &'static str {
    match value {
        toml::Value::String(_) => "a string",
        toml::Value::Integer(n) if *n < 0 => "a negative integer",
        toml::Value::Integer(_) => "an integer",
        toml::Value::Float(_) => "a float",
        toml::Value::Boolean(_) => "a boolean",
        toml::Value::Datetime(_) => "a date-time",
        toml::Value::Array(_) => "an array",
        toml::Value::Table(_) => "a table",
    }
}
