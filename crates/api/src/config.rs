//! `flinkConfiguration`: Flink settings written either flat (`"state.savepoints.dir": "s3://…"`)
//! or as nested YAML (`state: {savepoints.dir: "s3://…"}`), kept exactly as written so a manifest
//! round-trips, and flattened on demand into the `key → string` map Flink reads.
//!
//! Flattening rules (the same as the Apache operator's, except for lists and nulls):
//! - nested keys are joined with `.`: `a: {b: {c: 1}}` → `a.b.c = "1"`;
//! - scalars become the text Flink parses: `true`, `10 s`, `0.5`, `4`;
//! - a list of scalars becomes one `;`-separated value (Flink's list syntax):
//!   `pipeline.classpaths: [a, b]` → `"a;b"`; a list holding maps or lists becomes its JSON text;
//! - a `null` value means "not set" and is left out.

use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::units::{self, MemorySize, UnitError};

/// Flink configuration overrides of a deployment or session job (`spec.flinkConfiguration`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FlinkConfiguration(Map<String, Value>);

/// A configuration value that is present but cannot be read as the type its key needs.
/// Its message never shows the value of a key that looks secret (see [`is_sensitive_key`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "flinkConfiguration key `{key}` has value {}: {reason}",
    shown_value(key, value)
)]
pub struct ConfigValueError {
    /// The flattened key, e.g. `execution.checkpointing.interval`.
    pub key: String,
    /// The value as Flink would read it.
    pub value: String,
    /// What is wrong and what is expected.
    pub reason: String,
}

/// `true` for keys whose values must not appear in messages, logs, events or status:
/// passwords, secrets, tokens, credentials, key material, authentication settings (compared
/// case-insensitively, like Flink's own log masking). The one list every crate uses.
pub fn is_sensitive_key(key: &str) -> bool {
    const MARKERS: &[&str] = &[
        "password",
        "secret",
        "token",
        "credential",
        "private-key",
        "access-key",
        "apikey",
        "api-key",
        "account.key",
        // also covers `auth-params`, `basic-auth`, `authorization`
        "auth",
        "jaas.config",
        "http-headers",
    ];
    let key = key.to_ascii_lowercase();
    MARKERS.iter().any(|m| key.contains(m))
}

/// The value quoted for a message, or `<redacted>` for sensitive keys.
fn shown_value(key: &str, value: &str) -> String {
    if is_sensitive_key(key) {
        "<redacted>".to_string()
    } else {
        format!("`{value}`")
    }
}

static EMPTY: LazyLock<FlinkConfiguration> = LazyLock::new(FlinkConfiguration::default);

impl FlinkConfiguration {
    /// A shared empty configuration, for specs that have none.
    pub fn empty() -> &'static FlinkConfiguration {
        &EMPTY
    }

    /// Builds a configuration from flat `key → value` pairs.
    pub fn from_flat<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let mut config = Self::default();
        for (k, v) in pairs {
            config.set(k, v);
        }
        config
    }

    /// The configuration exactly as written (nested maps and typed scalars included).
    pub fn raw(&self) -> &Map<String, Value> {
        &self.0
    }

    /// `true` when nothing is configured.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Sets `key` to `value` as a flat entry, removing any nested spelling of the same key so the
    /// new value is the only one.
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let key = key.into();
        self.remove(&key);
        self.0.insert(key, Value::String(value.into()));
    }

    /// Removes `key` wherever it is written (flat or nested). Returns whether it was present.
    pub fn remove(&mut self, key: &str) -> bool {
        remove_path(&mut self.0, key)
    }

    /// The flattened `key → value` map Flink reads. When a key is written twice (once flat and
    /// once nested), the flat spelling wins; [`Self::duplicate_keys`] reports such keys.
    pub fn flatten(&self) -> BTreeMap<String, String> {
        self.entries().into_iter().map(|(k, v, _)| (k, v)).collect()
    }

    /// Flattened keys that are written more than once (e.g. `a.b: 1` and `a: {b: 2}`).
    pub fn duplicate_keys(&self) -> Vec<String> {
        let mut seen = BTreeMap::<String, usize>::new();
        let mut out = Vec::new();
        flatten_into(&self.0, "", &mut |k, _, _| *seen.entry(k).or_default() += 1);
        for (k, n) in seen {
            if n > 1 {
                out.push(k);
            }
        }
        out
    }

    /// The value of a flattened key, e.g. `get("state.savepoints.dir")`.
    pub fn get(&self, key: &str) -> Option<String> {
        self.flatten().remove(key)
    }

    /// The first of `keys` that is set (Flink's deprecated/fallback keys), with the key found.
    pub fn get_first(&self, keys: &[&str]) -> Option<(String, String)> {
        let flat = self.flatten();
        keys.iter()
            .find_map(|k| flat.get(*k).map(|v| (k.to_string(), v.clone())))
    }

    /// `true` when the flattened key is set.
    pub fn contains(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// A boolean key. Flink accepts `true`/`false` in any case.
    pub fn get_bool(&self, key: &str) -> Result<Option<bool>, ConfigValueError> {
        self.typed(key, |v| match v.trim().to_ascii_lowercase().as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err("expected `true` or `false`".to_string()),
        })
    }

    /// An integer key.
    pub fn get_i64(&self, key: &str) -> Result<Option<i64>, ConfigValueError> {
        self.typed(key, |v| {
            v.trim()
                .parse()
                .map_err(|_| "expected a whole number".to_string())
        })
    }

    /// A floating-point key.
    pub fn get_f64(&self, key: &str) -> Result<Option<f64>, ConfigValueError> {
        self.typed(key, |v| {
            v.trim()
                .parse()
                .map_err(|_| "expected a number".to_string())
        })
    }

    /// A duration key in Flink syntax (`10 s`, `5min`, `1h`, bare milliseconds).
    pub fn get_duration(&self, key: &str) -> Result<Option<Duration>, ConfigValueError> {
        self.typed(key, |v| {
            units::parse_duration(v).map_err(|e: UnitError| e.reason())
        })
    }

    /// A memory-size key in Flink syntax (`1024m`, `2g`, `1gb`, bare bytes).
    pub fn get_memory(&self, key: &str) -> Result<Option<MemorySize>, ConfigValueError> {
        self.typed(key, |v| units::parse_memory(v).map_err(|e| e.reason()))
    }

    fn typed<T>(
        &self,
        key: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigValueError> {
        match self.get(key) {
            None => Ok(None),
            Some(value) => parse(&value).map(Some).map_err(|reason| ConfigValueError {
                key: key.to_string(),
                value,
                reason,
            }),
        }
    }

    /// Flattened entries with a flag telling whether each came from a flat key (wins ties).
    fn entries(&self) -> Vec<(String, String, bool)> {
        let mut by_key: BTreeMap<String, (String, bool)> = BTreeMap::new();
        flatten_into(&self.0, "", &mut |k, v, flat| match by_key.get(&k) {
            Some((_, true)) if !flat => {}
            _ => {
                by_key.insert(k, (v, flat));
            }
        });
        by_key.into_iter().map(|(k, (v, f))| (k, v, f)).collect()
    }
}

/// Walks a (possibly nested) map and reports `(flattened key, text, written flat?)` per scalar.
fn flatten_into(map: &Map<String, Value>, prefix: &str, out: &mut dyn FnMut(String, String, bool)) {
    for (k, v) in map {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            Value::Object(inner) => flatten_into(inner, &key, out),
            Value::Null => {}
            other => out(key, scalar_text(other), prefix.is_empty()),
        }
    }
}

/// The text Flink parses for a YAML value.
fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Null => String::new(),
        Value::Array(items) if items.iter().all(|i| !i.is_object() && !i.is_array()) => items
            .iter()
            .filter(|i| !i.is_null())
            .map(scalar_text)
            .collect::<Vec<_>>()
            .join(";"),
        other => other.to_string(),
    }
}

/// Removes a flattened key from a nested map, pruning maps it leaves empty.
fn remove_path(map: &mut Map<String, Value>, key: &str) -> bool {
    let mut removed = map.remove(key).is_some();
    // Try every split point: `a.b.c` may be written as `a: {b.c: …}` or `a.b: {c: …}`.
    for (i, _) in key.match_indices('.') {
        let (head, tail) = (&key[..i], &key[i + 1..]);
        if let Some(Value::Object(inner)) = map.get_mut(head) {
            if remove_path(inner, tail) {
                removed = true;
            }
            if inner.is_empty() {
                map.remove(head);
            }
        }
    }
    removed
}

impl JsonSchema for FlinkConfiguration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "FlinkConfiguration".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        preserve_unknown_fields()
    }
}

/// The schema of free-form fields: anything goes, as in the Apache operator's CRD.
pub(crate) fn preserve_unknown_fields() -> Schema {
    json_schema!({ "x-kubernetes-preserve-unknown-fields": true })
}

/// `schema_with` helper for `Option<FlinkConfiguration>` fields (avoids a nullable wrapper).
pub(crate) fn config_field_schema(_: &mut SchemaGenerator) -> Schema {
    preserve_unknown_fields()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_looking_keys_of_every_kind_are_sensitive() {
        for key in [
            "s3.secret-key",
            "fs.azure.account.key.acc.blob.core.windows.net",
            "properties.sasl.jaas.config",
            "security.ssl.rest.keystore-password",
            "metrics.reporter.dghttp.apikey",
            "kubernetes.operator.metrics.reporter.basic-auth.user",
            "source.http-headers",
        ] {
            assert!(is_sensitive_key(key), "{key}");
        }
        for key in [
            "execution.checkpointing.dir",
            "taskmanager.numberOfTaskSlots",
        ] {
            assert!(!is_sensitive_key(key), "{key}");
        }
    }

    fn yaml(s: &str) -> FlinkConfiguration {
        serde_saphyr::from_str(s).unwrap()
    }

    #[test]
    fn nested_yaml_flattens_to_dotted_keys() {
        let c = yaml(
            "state:\n  savepoints.dir: file:///sp\n  checkpoints.dir: file:///cp\n\
             high-availability:\n  type: kubernetes\ntaskmanager.numberOfTaskSlots: 2\n",
        );
        let flat = c.flatten();
        assert_eq!(flat["state.savepoints.dir"], "file:///sp");
        assert_eq!(flat["state.checkpoints.dir"], "file:///cp");
        assert_eq!(flat["high-availability.type"], "kubernetes");
        assert_eq!(flat["taskmanager.numberOfTaskSlots"], "2");
        assert_eq!(flat.len(), 4);
    }

    #[test]
    fn scalars_are_stringified_as_flink_expects() {
        let c = yaml("a: true\nb: 0.5\nc: 10 s\nd: 'true'\ne: ~\nf: [x, z, 3]\n");
        let flat = c.flatten();
        assert_eq!(flat["a"], "true");
        assert_eq!(flat["b"], "0.5");
        assert_eq!(flat["c"], "10 s");
        assert_eq!(flat["d"], "true");
        assert!(!flat.contains_key("e"), "null means not set");
        assert_eq!(flat["f"], "x;z;3");
    }

    #[test]
    fn round_trip_keeps_what_was_written() {
        let text = "job.autoscaler:\n  enabled: true\n  metrics.window: 15m\nx.y: 1\n";
        let c = yaml(text);
        let back: Value = serde_json::to_value(&c).unwrap();
        let original: Value = serde_saphyr::from_str(text).unwrap();
        assert_eq!(back, original);
    }

    #[test]
    fn flat_spelling_wins_over_nested_and_is_reported_as_duplicate() {
        let c = yaml("a.b: flat\na:\n  b: nested\n");
        assert_eq!(c.get("a.b").as_deref(), Some("flat"));
        assert_eq!(c.duplicate_keys(), vec!["a.b".to_string()]);
    }

    #[test]
    fn set_replaces_nested_spellings() {
        let mut c = yaml("state:\n  savepoints.dir: old\n  checkpoints.dir: cp\n");
        c.set("state.savepoints.dir", "new");
        assert_eq!(c.get("state.savepoints.dir").as_deref(), Some("new"));
        assert_eq!(c.get("state.checkpoints.dir").as_deref(), Some("cp"));
        assert!(c.duplicate_keys().is_empty());
        assert!(c.remove("state.checkpoints.dir"));
        assert!(
            !c.raw().contains_key("state"),
            "emptied nested maps are pruned"
        );
    }

    #[test]
    fn typed_getters_parse_or_name_the_key() {
        let c = FlinkConfiguration::from_flat([
            ("i", "10 s"),
            ("m", "1g"),
            ("b", "TRUE"),
            ("bad", "soon"),
        ]);
        assert_eq!(c.get_duration("i").unwrap(), Some(Duration::from_secs(10)));
        assert_eq!(c.get_memory("m").unwrap().map(|m| m.bytes()), Some(1 << 30));
        assert_eq!(c.get_bool("b").unwrap(), Some(true));
        assert_eq!(c.get_bool("missing").unwrap(), None);
        let err = c.get_duration("bad").unwrap_err();
        assert_eq!(err.key, "bad");
        assert!(err.to_string().contains("`soon`"), "{err}");
    }

    #[test]
    fn values_of_secret_looking_keys_are_never_shown() {
        let c = FlinkConfiguration::from_flat([("s3.secret-key", "hunter2")]);
        let err = c.get_bool("s3.secret-key").unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(err.to_string().contains("<redacted>"), "{err}");
        assert!(is_sensitive_key("security.ssl.rest.keystore-password"));
        assert!(!is_sensitive_key("state.savepoints.dir"));
    }
}
