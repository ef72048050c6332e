//! Object metadata: server-set fields, names, labels, and their validation.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

use serde_json::{Map, Value};

/// `metadata.<key>` as a string.
pub fn meta_str<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(key)?.as_str()
}

/// Mutable `metadata`, created when missing.
pub fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.is_object() {
        *obj = Value::Object(Map::new());
    }
    let Some(map) = obj.as_object_mut() else {
        unreachable!("just made an object")
    };
    let meta = map
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    match meta.as_object_mut() {
        Some(m) => m,
        None => unreachable!("just made an object"),
    }
}

/// `metadata.finalizers` as strings.
pub fn finalizers(obj: &Value) -> Vec<String> {
    obj["metadata"]["finalizers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// True when deletion of the object has started.
pub fn is_deleting(obj: &Value) -> bool {
    obj["metadata"]
        .get("deletionTimestamp")
        .is_some_and(|v| !v.is_null())
}

/// The uids named in `metadata.ownerReferences`, with their `blockOwnerDeletion` flag.
pub fn owner_uids(obj: &Value) -> Vec<(String, bool)> {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .map(|refs| {
            refs.iter()
                .filter_map(|r| {
                    let uid = r["uid"].as_str()?.to_string();
                    Some((uid, r["blockOwnerDeletion"].as_bool().unwrap_or(false)))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Current time as the API server writes `metav1.Time` (RFC 3339, seconds).
pub fn now_timestamp() -> String {
    let now = jiff::Timestamp::now();
    now.round(jiff::Unit::Second).unwrap_or(now).to_string()
}

/// Random-enough identifiers: uids and `generateName` suffixes. Not cryptographic; unique
/// within a server because a counter is mixed in.
#[derive(Debug)]
pub struct IdGen {
    state: u64,
    counter: u64,
}

impl IdGen {
    /// Seeded from the process's hash randomness.
    pub fn new() -> Self {
        let seed = RandomState::new().hash_one(std::process::id());
        Self {
            state: seed | 1,
            counter: 0,
        }
    }

    fn next(&mut self) -> u64 {
        // xorshift64*
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A uid in the UUID text layout.
    pub fn uid(&mut self) -> String {
        self.counter += 1;
        let hi = self.next();
        let lo = self.counter ^ (self.next() << 32);
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            hi >> 32,
            (hi >> 16) & 0xffff,
            hi & 0x0fff,
            0x8000 | ((lo >> 48) & 0x3fff),
            lo & 0xffff_ffff_ffff
        )
    }

    /// The 5-character suffix the real server appends for `generateName`.
    pub fn name_suffix(&mut self) -> String {
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        (0..5)
            .map(|_| {
                let idx = (self.next() % ALPHABET.len() as u64) as usize;
                char::from(ALPHABET[idx])
            })
            .collect()
    }
}

impl Default for IdGen {
    fn default() -> Self {
        Self::new()
    }
}

fn is_alnum_lower(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// RFC 1123 label: lowercase alphanumerics and '-', starting and ending alphanumeric, ≤ 63.
pub fn check_dns_label(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|c| is_alnum_lower(c) || c == '-')
        && name.starts_with(is_alnum_lower)
        && name.ends_with(is_alnum_lower);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "Invalid value: \"{name}\": a lowercase RFC 1123 label must consist of lower case \
             alphanumeric characters or '-', and must start and end with an alphanumeric \
             character (at most 63 characters)"
        ))
    }
}

/// RFC 1123 subdomain: dot-separated labels, ≤ 253.
pub fn check_dns_subdomain(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|part| check_dns_label(part).is_ok());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case \
             alphanumeric characters, '-' or '.', and must start and end with an alphanumeric \
             character (at most 253 characters)"
        ))
    }
}

fn is_qualified_part(s: &str) -> bool {
    let alnum = |c: char| c.is_ascii_alphanumeric();
    !s.is_empty()
        && s.len() <= 63
        && s.starts_with(alnum)
        && s.ends_with(alnum)
        && s.chars()
            .all(|c| alnum(c) || c == '-' || c == '_' || c == '.')
}

/// Checks `metadata.labels`: qualified-name keys and ≤ 63-character values. Returns the field
/// path and message of the first problem.
pub fn check_labels(obj: &Value) -> Result<(), (String, String)> {
    let Some(labels) = obj["metadata"]["labels"].as_object() else {
        return Ok(());
    };
    for (key, value) in labels {
        let (prefix, name) = match key.split_once('/') {
            Some((p, n)) => (Some(p), n),
            None => (None, key.as_str()),
        };
        let key_ok =
            is_qualified_part(name) && prefix.is_none_or(|p| check_dns_subdomain(p).is_ok());
        if !key_ok {
            return Err((
                "metadata.labels".to_string(),
                format!(
                    "Invalid value: \"{key}\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (at most 63 characters), with an optional DNS subdomain prefix and '/'"
                ),
            ));
        }
        let Some(v) = value.as_str() else {
            return Err((
                format!("metadata.labels.{key}"),
                "Invalid value: label values must be strings".to_string(),
            ));
        };
        if !(v.is_empty() || is_qualified_part(v)) {
            return Err((
                "metadata.labels".to_string(),
                format!(
                    "Invalid value: \"{v}\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (at most 63 characters)"
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_follow_rfc_1123() {
        assert!(check_dns_subdomain("flink-config-basic.example").is_ok());
        assert!(check_dns_subdomain("Bad_Name").is_err());
        assert!(check_dns_label("a.b").is_err());
        assert!(check_dns_label(&"a".repeat(64)).is_err());
    }

    #[test]
    fn label_values_longer_than_63_are_rejected() {
        assert!(check_labels(&json!({"metadata": {"labels": {"app": "x"}}})).is_ok());
        assert!(
            check_labels(&json!({"metadata": {"labels": {"app.kubernetes.io/name": ""}}})).is_ok()
        );
        let long = "a".repeat(64);
        assert!(check_labels(&json!({"metadata": {"labels": {"app": long}}})).is_err());
        assert!(check_labels(&json!({"metadata": {"labels": {"-bad": "x"}}})).is_err());
    }

    #[test]
    fn uids_are_unique_and_shaped_like_uuids() {
        let mut ids = IdGen::new();
        let a = ids.uid();
        let b = ids.uid();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(ids.name_suffix().len(), 5);
    }
}
