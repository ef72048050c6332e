//! Flink configuration files: the flat `key: value` options a JobManager or TaskManager reads
//! from `$FLINK_CONF_DIR/config.yaml`.
//!
//! Flink 1.19+ and 2.x read `config.yaml` as standard YAML and accept flat dotted keys, so one
//! rendering serves every supported version. Values are always written as double-quoted YAML
//! strings: Flink parses each option from its string form, and quoting keeps values such as
//! `*`, `true` or `a: b` from being read as something else.

use std::collections::BTreeMap;
use std::fmt;

/// An ordered set of Flink options (`rest.port` → `8081`), rendered as a `config.yaml`.
///
/// `Debug` hides the values of options whose names look secret (see [`is_sensitive_key`]), so
/// a config can be logged.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct FlinkConfig {
    options: BTreeMap<String, String>,
}

impl FlinkConfig {
    /// An empty configuration.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` to `value`, replacing an earlier value.
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.options.insert(key.into(), value.into());
        self
    }

    /// Like [`FlinkConfig::set`], by value, for building a config in one expression.
    #[must_use]
    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.set(key, value);
        self
    }

    /// The value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.options.get(key).map(String::as_str)
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        self.options.remove(key)
    }

    /// The options in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.options.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The number of options.
    pub fn len(&self) -> usize {
        self.options.len()
    }

    /// Whether no option is set.
    pub fn is_empty(&self) -> bool {
        self.options.is_empty()
    }

    /// The `config.yaml` text: one `key: "value"` line per option, in key order.
    pub fn to_yaml(&self) -> String {
        let mut out = String::new();
        for (key, value) in &self.options {
            push_yaml_key(&mut out, key);
            out.push_str(": ");
            push_yaml_quoted(&mut out, value);
            out.push('\n');
        }
        out
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for FlinkConfig {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut config = Self::new();
        config.extend(iter);
        config
    }
}

impl<K: Into<String>, V: Into<String>> Extend<(K, V)> for FlinkConfig {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.set(k, v);
        }
    }
}

impl fmt::Debug for FlinkConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (key, value) in &self.options {
            if is_sensitive_key(key) {
                map.entry(key, &"******");
            } else {
                map.entry(key, value);
            }
        }
        map.finish()
    }
}

/// Whether an option's value must never appear in logs, events or status (one list for every
/// crate, kept with the resource types).
pub use api::config::is_sensitive_key;

/// Flink option names are plain (`a.b-c.d`) and stay readable unquoted; anything else is quoted.
fn push_yaml_key(out: &mut String, key: &str) {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        && key.starts_with(|c: char| c.is_ascii_alphanumeric());
    if plain {
        out.push_str(key);
    } else {
        push_yaml_quoted(out, key);
    }
}

/// A YAML double-quoted scalar: the only escapes needed are `\`, `"` and control characters.
fn push_yaml_quoted(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_flat_keys_in_order_with_quoted_values() {
        let config = FlinkConfig::new()
            .with("taskmanager.numberOfTaskSlots", "2")
            .with("rest.port", "8081")
            .with(
                "env.java.opts.all",
                "--add-opens=java.base/java.lang=ALL-UNNAMED",
            );
        assert_eq!(
            config.to_yaml(),
            "env.java.opts.all: \"--add-opens=java.base/java.lang=ALL-UNNAMED\"\n\
             rest.port: \"8081\"\n\
             taskmanager.numberOfTaskSlots: \"2\"\n"
        );
    }

    #[test]
    fn escapes_quotes_backslashes_and_control_characters() {
        let config = FlinkConfig::new().with("a", "say \"hi\"\\ \n\t\u{1}");
        assert_eq!(
            config.to_yaml(),
            "a: \"say \\\"hi\\\"\\\\ \\n\\t\\u0001\"\n"
        );
    }

    #[test]
    fn quotes_keys_that_are_not_plain_option_names() {
        let config = FlinkConfig::new().with("weird key: x", "v");
        assert_eq!(config.to_yaml(), "\"weird key: x\": \"v\"\n");
    }

    #[test]
    fn later_set_replaces_earlier_value() {
        let mut config: FlinkConfig = [("rest.port", "1")].into_iter().collect();
        config.extend([("rest.port", "2")]);
        assert_eq!(config.get("rest.port"), Some("2"));
        assert_eq!(config.len(), 1);
    }

    #[test]
    fn debug_hides_values_of_secret_looking_keys() {
        let config = FlinkConfig::new()
            .with("s3.secret-key", "hunter2")
            .with("security.ssl.rest.keystore-password", "pw")
            .with("rest.port", "8081");
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("\"pw\""), "{shown}");
        assert!(shown.contains("8081"), "{shown}");
    }
}
