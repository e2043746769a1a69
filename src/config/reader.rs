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
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::time::Duration;

use http::header::HeaderName;
use ipnet::IpNet;

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
    /// Every key asked for, present or not: the known keys an unknown one
    /// is compared with for a "did you mean".
    asked: Vec<String>,
}

impl<'a> Section<'a> {
    /// The document root.
    pub fn root(table: &'a toml::Table) -> Self {
        Section {
            path: String::new(),
            table,
            used: Vec::new(),
            asked: Vec::new(),
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

    /// Adds a label to this section's path, for the keys read from now on:
    /// a route, once its name is known, is `routes[0] ("vendor")`, so that
    /// an error in a file of many routes says which one it is about.
    pub fn label(&mut self, label: &str) {
        self.path = format!("{} ({label:?})", self.path);
    }

    /// True when `key` is present (and marks it as read).
    pub fn has(&mut self, key: &str) -> bool {
        self.raw(key).is_some()
    }

    /// The raw value under `key`, marking it as read.
    pub fn raw(&mut self, key: &str) -> Option<&'a toml::Value> {
        if !self.asked.iter().any(|k| k == key) {
            self.asked.push(key.to_owned());
        }
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

    /// A number, integer or not.
    pub fn number(&mut self, key: &str, errors: &mut ConfigErrors) -> Option<f64> {
        match self.raw(key)? {
            toml::Value::Integer(n) => Some(*n as f64),
            toml::Value::Float(n) => Some(*n),
            other => {
                errors.push(
                    self.key(key),
                    format!("expected a number, found {}", describe(other)),
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

    /// A string the table must have: when the key is absent, records
    /// `missing: {hint}` (the hint says what to write, e.g. an example).
    pub fn required_string(
        &mut self,
        key: &str,
        hint: &str,
        errors: &mut ConfigErrors,
    ) -> Option<&'a str> {
        let value = self.string(key, errors);
        if !self.has(key) {
            errors.push(self.key(key), format!("missing: {hint}"));
        }
        value
    }

    /// A string the table must have, parsed by `parse`: a missing key,
    /// a wrong type and a parse error are each recorded under `key`.
    pub fn required<T>(
        &mut self,
        key: &str,
        hint: &str,
        parse: impl FnOnce(&'a str) -> Result<T, String>,
        errors: &mut ConfigErrors,
    ) -> Option<T> {
        let text = self.required_string(key, hint, errors)?;
        self.checked(key, parse(text), errors)
    }

    /// The value of `result`, or its error recorded under `key`: the step
    /// after reading a key, when its text must also parse.
    pub fn checked<T>(
        &self,
        key: &str,
        result: Result<T, String>,
        errors: &mut ConfigErrors,
    ) -> Option<T> {
        result.map_err(|m| errors.push(self.key(key), m)).ok()
    }

    /// A header name; `None` when absent or not one (then recorded).
    pub fn header_name(&mut self, key: &str, errors: &mut ConfigErrors) -> Option<HeaderName> {
        let text = self.string(key, errors)?;
        self.checked(key, header_name(text), errors)
    }

    /// An `IP:PORT` address, `default` when absent.
    pub fn socket_addr(
        &mut self,
        key: &str,
        default: &str,
        errors: &mut ConfigErrors,
    ) -> Option<SocketAddr> {
        let text = self.string(key, errors).unwrap_or(default);
        let parsed = text
            .parse()
            .map_err(|_| format!("{text:?} is not an address: use IP:PORT, e.g. \"0.0.0.0:8000\""));
        self.checked(key, parsed, errors)
    }

    /// A duration that must not be zero, `default_secs` when absent. A zero
    /// is recorded and returned, so that the caller still has a value.
    pub fn positive_duration(
        &mut self,
        key: &str,
        default_secs: u64,
        errors: &mut ConfigErrors,
    ) -> Duration {
        let value = self
            .duration(key, errors)
            .unwrap_or(Duration::from_secs(default_secs));
        if value.is_zero() {
            errors.push(self.key(key), "must be greater than 0");
        }
        value
    }

    /// An integer key with a default and an allowed range; a value outside
    /// it is recorded and the default returned.
    pub fn bounded(
        &mut self,
        key: &str,
        default: usize,
        range: RangeInclusive<usize>,
        errors: &mut ConfigErrors,
    ) -> usize {
        match self.unsigned(key, errors) {
            Some(n) if usize::try_from(n).is_ok_and(|n| range.contains(&n)) => n as usize,
            Some(n) => {
                errors.push(
                    self.key(key),
                    format!(
                        "{n} is out of range: use {} to {}",
                        range.start(),
                        range.end()
                    ),
                );
                default
            }
            None => default,
        }
    }

    /// A list of CIDRs (`"10.0.0.0/8"`, `"2001:db8::/32"`); a bare address
    /// is taken as a single host.
    pub fn cidr_list(&mut self, key: &str, errors: &mut ConfigErrors) -> Option<Vec<IpNet>> {
        let list = self.strings(key, errors)?;
        let mut nets = Vec::with_capacity(list.len());
        for (i, text) in list.iter().enumerate() {
            let parsed = text
                .parse::<IpNet>()
                .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from));
            match parsed {
                Ok(net) => nets.push(net.trunc()),
                Err(_) => errors.push(
                    format!("{}[{i}]", self.key(key)),
                    format!("{text:?} is not a CIDR such as \"10.0.0.0/8\" or \"2001:db8::/32\""),
                ),
            }
        }
        Some(nets)
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
                    format!(
                        "{value:?} is not one of {}{}",
                        allowed.join(", "),
                        did_you_mean(value, allowed.iter().copied(), '"')
                    ),
                );
                None
            }
        }
    }

    /// The keys present, in the file's order (for tables whose keys are
    /// data, such as `algorithms`).
    pub fn keys(&self) -> Vec<&'a str> {
        self.table.keys().map(String::as_str).collect()
    }

    /// A nested table, as its own section.
    pub fn table(&mut self, key: &str, errors: &mut ConfigErrors) -> Option<Section<'a>> {
        match self.raw(key)? {
            toml::Value::Table(t) => Some(Section {
                path: self.key(key),
                table: t,
                used: Vec::new(),
                asked: Vec::new(),
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
                let hint = did_you_mean(key, self.asked.iter().map(String::as_str), '`');
                errors.push(self.key(key), format!("unknown key{hint}"));
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
            asked: Vec::new(),
        }),
        other => {
            errors.push(path, format!("expected a table, found {}", describe(other)));
            None
        }
    }
}

/// `"; did you mean `tolerance`?"` when one of `known` is close enough to
/// `word` to be what was meant, else empty. `quote` is how the message
/// quotes it: a key in backticks, a value in double quotes.
pub fn did_you_mean<'k>(word: &str, known: impl Iterator<Item = &'k str>, quote: char) -> String {
    closest(word, known).map_or_else(String::new, |k| {
        format!("; did you mean {quote}{k}{quote}?")
    })
}

/// The entry of `known` nearest to `word` by [`edit_distance`], ignoring
/// case, when it is near enough to be a typo: at most one edit per three
/// characters (at least one, at most three), so that `tolerence` finds
/// `tolerance` while `foo` finds nothing in a list of unrelated keys.
pub fn closest<'k>(word: &str, known: impl Iterator<Item = &'k str>) -> Option<&'k str> {
    let word = word.to_ascii_lowercase();
    let allowed = (word.chars().count() / 3).clamp(1, 3);
    known
        .map(|k| (edit_distance(&word, &k.to_ascii_lowercase()), k))
        .filter(|(d, _)| *d <= allowed)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Up to `n` entries of `known` near `word`, nearest first: typos as
/// [`closest`] judges them, compared without case, `-` or `_` (so that
/// `launchdarkly` finds `launchdarkly` and `launch_darkly`, and
/// `lemonsqueezy` finds `lemon-squeezy`), and names one contains whole.
pub fn closest_few<'k>(word: &str, known: impl Iterator<Item = &'k str>, n: usize) -> Vec<&'k str> {
    let plain = |text: &str| -> String {
        text.chars()
            .filter(|c| *c != '-' && *c != '_')
            .map(|c| c.to_ascii_lowercase())
            .collect()
    };
    let word = plain(word);
    let allowed = (word.chars().count() / 3).clamp(1, 3);
    let mut near: Vec<(usize, &str)> = known
        .filter_map(|k| {
            let name = plain(k);
            let distance = edit_distance(&word, &name);
            let contains = name.len() >= 3
                && word.len() >= 3
                && (name.contains(&word) || word.contains(&name));
            (distance <= allowed || contains).then_some((distance, k))
        })
        .collect();
    near.sort_by_key(|(d, _)| *d);
    near.into_iter().take(n).map(|(_, k)| k).collect()
}

/// Levenshtein distance with adjacent transpositions counted as one edit
/// (optimal string alignment): `tolerence` is 1 from `tolerance`, and a
/// swapped pair of letters (`shceme`) is 1 from `scheme`.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Three rows: the one two back is what a transposition looks at.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        current[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (previous[j] + 1)
                .min(current[j - 1] + 1)
                .min(previous[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(before[j - 2] + 1);
            }
            current[j] = best;
        }
        std::mem::swap(&mut before, &mut previous);
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

/// Parses a header name; the error quotes it.
pub fn header_name(text: &str) -> Result<HeaderName, String> {
    HeaderName::from_bytes(text.as_bytes())
        .map_err(|_| format!("{text:?} is not a valid header name"))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `read` over a `[t]` table holding `body`, returning what it read
    /// and the errors, as `key: message` lines.
    fn read<T>(
        body: &str,
        read: impl FnOnce(&mut Section<'_>, &mut ConfigErrors) -> T,
    ) -> (T, Vec<String>) {
        let document: toml::Table = format!("[t]\n{body}").parse().expect("valid TOML");
        let mut errors = ConfigErrors::default();
        let mut root = Section::root(&document);
        let mut section = root.table("t", &mut errors).expect("a table");
        let value = read(&mut section, &mut errors);
        let lines = errors.0.iter().map(ToString::to_string).collect();
        (value, lines)
    }

    #[test]
    fn edit_distance_counts_insertions_deletions_substitutions_and_swaps() {
        assert_eq!(edit_distance("tolerence", "tolerance"), 1);
        assert_eq!(edit_distance("shceme", "scheme"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("abc", ""), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }

    #[test]
    fn only_a_near_key_is_suggested() {
        let known = ["tolerance", "dedupe", "max_body"];
        assert_eq!(closest("tolerence", known.into_iter()), Some("tolerance"));
        assert_eq!(closest("Max_Bdoy", known.into_iter()), Some("max_body"));
        assert_eq!(closest("foo", known.into_iter()), None);
        assert_eq!(closest("x", ["y"].into_iter()), Some("y"));
        assert_eq!(
            closest("enforced", ["enforce"].into_iter()),
            Some("enforce")
        );
    }

    #[test]
    fn unknown_keys_suggest_the_closest_key_asked_for() {
        let document: toml::Table = "tolerence = \"5m\"\nzzz = 1".parse().expect("valid TOML");
        let mut errors = ConfigErrors::default();
        let mut section = Section::root(&document);
        section.duration("tolerance", &mut errors);
        section.has("dedupe");
        section.finish(&mut errors);
        let lines: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [
                "tolerence: unknown key; did you mean `tolerance`?",
                "zzz: unknown key"
            ]
        );
    }

    #[test]
    fn a_choice_suggests_the_closest_value() {
        let (_, errors) = read("a = \"sha265\"", |s, e| {
            s.choice("a", &["sha1", "sha256"], e)
        });
        assert_eq!(
            errors,
            ["t.a: \"sha265\" is not one of sha1, sha256; did you mean \"sha256\"?"]
        );
    }

    #[test]
    fn required_strings_say_what_is_missing_and_type_errors_once() {
        let hint = "e.g. \"/webhooks/x\"";
        let (value, errors) = read("path = \"/a\"", |s, e| {
            s.required_string("path", hint, e).map(str::to_owned)
        });
        assert_eq!((value.as_deref(), errors.len()), (Some("/a"), 0));
        let (value, errors) = read("", |s, e| {
            s.required_string("path", hint, e).map(str::to_owned)
        });
        assert_eq!(value, None);
        assert_eq!(errors, ["t.path: missing: e.g. \"/webhooks/x\""]);
        let (value, errors) = read("path = 3", |s, e| {
            s.required_string("path", hint, e).map(str::to_owned)
        });
        assert_eq!(value, None);
        assert_eq!(errors, ["t.path: expected a string, found an integer"]);
    }

    #[test]
    fn required_values_are_parsed_where_read() {
        let parse = |text: &str| {
            text.parse::<u8>()
                .map_err(|_| format!("{text:?} is not a byte"))
        };
        let (value, errors) = read("b = \"7\"", |s, e| s.required("b", "a byte", parse, e));
        assert_eq!((value, errors.len()), (Some(7), 0));
        let (value, errors) = read("b = \"x\"", |s, e| s.required("b", "a byte", parse, e));
        assert_eq!(value, None);
        assert_eq!(errors, ["t.b: \"x\" is not a byte"]);
        let (_, errors) = read("", |s, e| s.required("b", "a byte", parse, e));
        assert_eq!(errors, ["t.b: missing: a byte"]);
    }

    #[test]
    fn bounded_integers_fall_back_to_the_default_with_the_range_named() {
        let range = || 1..=1_000;
        let (n, errors) = read("n = 1000", |s, e| s.bounded("n", 100, range(), e));
        assert_eq!((n, errors.len()), (1_000, 0));
        let (n, errors) = read("", |s, e| s.bounded("n", 100, range(), e));
        assert_eq!((n, errors.len()), (100, 0));
        let (n, errors) = read("n = 0", |s, e| s.bounded("n", 100, range(), e));
        assert_eq!(n, 100);
        assert_eq!(errors, ["t.n: 0 is out of range: use 1 to 1000"]);
        let (_, errors) = read("n = -1", |s, e| s.bounded("n", 100, range(), e));
        assert_eq!(
            errors,
            ["t.n: expected a non-negative integer, found a negative integer"]
        );
    }

    #[test]
    fn sizes_and_durations_take_units_and_name_the_key() {
        let (size, errors) = read("a = \"512KiB\"\nb = 7", |s, e| {
            (s.size("a", e), s.size("b", e), s.size("c", e))
        });
        assert_eq!((size, errors.len()), ((Some(512 << 10), Some(7), None), 0));
        let (_, errors) = read("a = true", |s, e| s.size("a", e));
        assert_eq!(
            errors,
            ["t.a: expected a size such as 1048576 or \"512KiB\", found a boolean"]
        );
        let (d, errors) = read("d = \"250ms\"", |s, e| s.duration("d", e));
        assert_eq!((d, errors.len()), (Some(Duration::from_millis(250)), 0));
        let (_, errors) = read("d = 10", |s, e| s.duration("d", e));
        assert_eq!(
            errors,
            ["t.d: expected a duration such as \"10s\" or \"5m\", found an integer"]
        );
    }

    #[test]
    fn positive_durations_refuse_zero_and_default_when_absent() {
        let (d, errors) = read("", |s, e| s.positive_duration("d", 10, e));
        assert_eq!((d, errors.len()), (Duration::from_secs(10), 0));
        let (_, errors) = read("d = \"0s\"", |s, e| s.positive_duration("d", 10, e));
        assert_eq!(errors, ["t.d: must be greater than 0"]);
    }

    #[test]
    fn addresses_networks_and_header_names_are_parsed_where_read() {
        let (addr, errors) = read("", |s, e| s.socket_addr("a", "127.0.0.1:9", e));
        assert_eq!((addr.map(|a| a.port()), errors.len()), (Some(9), 0));
        let (_, errors) = read("a = \"localhost\"", |s, e| {
            s.socket_addr("a", "0.0.0.0:1", e)
        });
        assert_eq!(
            errors,
            ["t.a: \"localhost\" is not an address: use IP:PORT, e.g. \"0.0.0.0:8000\""]
        );
        let (nets, errors) = read("n = [\"10.1.2.3/8\", \"::1\", \"x\"]", |s, e| {
            s.cidr_list("n", e)
        });
        let nets: Vec<String> = nets.unwrap().iter().map(ToString::to_string).collect();
        assert_eq!(nets, ["10.0.0.0/8", "::1/128"]);
        assert_eq!(
            errors,
            ["t.n[2]: \"x\" is not a CIDR such as \"10.0.0.0/8\" or \"2001:db8::/32\""]
        );
        let (name, errors) = read("h = \"X-Id\"\ng = \"a b\"", |s, e| {
            (s.header_name("h", e), s.header_name("g", e))
        });
        assert_eq!(name.0.map(|h| h.to_string()), Some("x-id".to_owned()));
        assert_eq!(name.1, None);
        assert_eq!(errors, ["t.g: \"a b\" is not a valid header name"]);
    }
}
