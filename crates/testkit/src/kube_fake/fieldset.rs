//! Field sets for server-side apply: which leaf fields of an object a manager owns, in the
//! `FieldsV1` wire format (`f:<field>`, `v:<value>`, `.`).
//!
//! Simplification: without OpenAPI schemas the fake cannot know list types, so every list is
//! *atomic* (owned and replaced as a whole), which is also what a CRD list without
//! `x-kubernetes-list-type` is. The one exception is `metadata.finalizers`, a set as on the real
//! server, so two managers can each own their finalizer.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum PathElement {
    /// A map field (`f:name`).
    Field(String),
    /// An item of a set-list, by its JSON encoding (`v:"x"`).
    Value(String),
}

/// A field path from the object root.
pub type Path = Vec<PathElement>;

/// A set of owned field paths (a trie).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet {
    member: bool,
    children: BTreeMap<PathElement, FieldSet>,
}

/// Metadata fields the server sets; never owned by a manager.
const SYSTEM_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];

/// Lists with set semantics (items owned one by one).
fn is_set_list(path: &[PathElement]) -> bool {
    matches!(path, [PathElement::Field(a), PathElement::Field(b)] if a == "metadata" && b == "finalizers")
}

fn is_excluded(path: &[PathElement]) -> bool {
    match path {
        [PathElement::Field(f)] => f == "apiVersion" || f == "kind",
        [PathElement::Field(m), PathElement::Field(f)] if m == "metadata" => {
            SYSTEM_METADATA.contains(&f.as_str())
        }
        _ => false,
    }
}

impl FieldSet {
    /// The leaf fields of `obj` (system metadata, `apiVersion` and `kind` excluded).
    pub fn of_object(obj: &Value) -> Self {
        let mut set = FieldSet::default();
        let mut path = Vec::new();
        collect(obj, &mut path, &mut set);
        set
    }

    /// True when the set owns nothing.
    pub fn is_empty(&self) -> bool {
        !self.member && self.children.is_empty()
    }

    /// Adds a path.
    pub fn insert(&mut self, path: &[PathElement]) {
        let mut node = self;
        for el in path {
            node = node.children.entry(el.clone()).or_default();
        }
        node.member = true;
    }

    /// True when `path` is a member.
    pub fn contains(&self, path: &[PathElement]) -> bool {
        let mut node = self;
        for el in path {
            match node.children.get(el) {
                Some(child) => node = child,
                None => return false,
            }
        }
        node.member
    }

    /// Removes a path (and prunes emptied branches). Returns whether it was a member.
    pub fn remove(&mut self, path: &[PathElement]) -> bool {
        match path.split_first() {
            None => std::mem::take(&mut self.member),
            Some((first, rest)) => {
                let Some(child) = self.children.get_mut(first) else {
                    return false;
                };
                let removed = child.remove(rest);
                if child.is_empty() {
                    self.children.remove(first);
                }
                removed
            }
        }
    }

    /// Every member path.
    pub fn paths(&self) -> Vec<Path> {
        let mut out = Vec::new();
        let mut prefix = Vec::new();
        self.walk(&mut prefix, &mut out);
        out
    }

    fn walk(&self, prefix: &mut Path, out: &mut Vec<Path>) {
        if self.member {
            out.push(prefix.clone());
        }
        for (el, child) in &self.children {
            prefix.push(el.clone());
            child.walk(prefix, out);
            prefix.pop();
        }
    }

    /// Only the paths under `.status` (for the status subresource).
    pub fn restricted_to_status(&self) -> Self {
        let key = PathElement::Field("status".to_string());
        let mut out = FieldSet::default();
        if let Some(status) = self.children.get(&key) {
            out.children.insert(key, status.clone());
        }
        out
    }

    /// The `FieldsV1` JSON encoding.
    pub fn to_fields_v1(&self) -> Value {
        let mut map = Map::new();
        if self.member && !self.children.is_empty() {
            map.insert(".".to_string(), Value::Object(Map::new()));
        }
        for (el, child) in &self.children {
            let key = match el {
                PathElement::Field(f) => format!("f:{f}"),
                PathElement::Value(v) => format!("v:{v}"),
            };
            map.insert(key, child.to_fields_v1());
        }
        Value::Object(map)
    }

    /// Parses the `FieldsV1` JSON encoding; unknown key kinds (`k:`, `i:`) are kept as opaque
    /// fields so that round-tripping a foreign entry does not lose it.
    pub fn from_fields_v1(v: &Value) -> Self {
        let mut set = FieldSet::default();
        let Some(map) = v.as_object() else {
            return set;
        };
        if map.is_empty() {
            set.member = true;
            return set;
        }
        for (key, child) in map {
            if key == "." {
                set.member = true;
                continue;
            }
            let el = match key.split_once(':') {
                Some(("f", f)) => PathElement::Field(f.to_string()),
                Some(("v", v)) => PathElement::Value(v.to_string()),
                _ => PathElement::Field(key.clone()),
            };
            set.children.insert(el, FieldSet::from_fields_v1(child));
        }
        set
    }
}

fn collect(v: &Value, path: &mut Path, set: &mut FieldSet) {
    match v {
        Value::Object(map) if !map.is_empty() => {
            for (k, child) in map {
                path.push(PathElement::Field(k.clone()));
                if !is_excluded(path) {
                    collect(child, path, set);
                }
                path.pop();
            }
        }
        Value::Array(items) if is_set_list(path) => {
            for item in items {
                path.push(PathElement::Value(item.to_string()));
                set.insert(path);
                path.pop();
            }
        }
        _ if path.is_empty() => {}
        _ => set.insert(path),
    }
}

/// Renders a path the way conflict messages do: `.spec.replicas`, `.metadata.finalizers[="x"]`.
pub fn display_path(path: &[PathElement]) -> String {
    let mut out = String::new();
    for el in path {
        match el {
            PathElement::Field(f) => {
                out.push('.');
                out.push_str(f);
            }
            PathElement::Value(v) => {
                out.push_str("[=");
                out.push_str(v);
                out.push(']');
            }
        }
    }
    out
}

/// Whether a set-list item is the one a `v:` path element names.
fn is_item(item: &Value, encoded: &str) -> bool {
    serde_json::from_str::<Value>(encoded).is_ok_and(|v| *item == v)
}

/// The value at `path` in `obj`.
pub fn get_path<'a>(obj: &'a Value, path: &[PathElement]) -> Option<&'a Value> {
    let mut cur = obj;
    for el in path {
        cur = match el {
            PathElement::Field(f) => cur.as_object()?.get(f)?,
            PathElement::Value(v) => cur.as_array()?.iter().find(|item| is_item(item, v))?,
        };
    }
    Some(cur)
}

/// Sets the value at `path` (creating parent maps); for a set item, adds it if missing.
pub fn set_path(obj: &mut Value, path: &[PathElement], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        *obj = value;
        return;
    };
    let mut cur = obj;
    for el in parents {
        let PathElement::Field(f) = el else {
            return; // items of set-lists are scalars: nothing below them
        };
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let Some(map) = cur.as_object_mut() else {
            return;
        };
        cur = map.entry(f.clone()).or_insert(Value::Null);
    }
    match last {
        PathElement::Field(f) => {
            if !cur.is_object() {
                *cur = Value::Object(Map::new());
            }
            if let Some(map) = cur.as_object_mut() {
                map.insert(f.clone(), value);
            }
        }
        PathElement::Value(v) => {
            if !cur.is_array() {
                *cur = Value::Array(Vec::new());
            }
            if let Some(items) = cur.as_array_mut()
                && !items.iter().any(|item| is_item(item, v))
            {
                items.push(value);
            }
        }
    }
}

/// Removes the value at `path`, pruning maps and set-lists that the removal left empty.
pub fn remove_path(obj: &mut Value, path: &[PathElement]) {
    fn go(cur: &mut Value, path: &[PathElement]) {
        let Some((first, rest)) = path.split_first() else {
            return;
        };
        match first {
            PathElement::Field(f) => {
                let Some(map) = cur.as_object_mut() else {
                    return;
                };
                if rest.is_empty() {
                    map.remove(f);
                    return;
                }
                if let Some(child) = map.get_mut(f) {
                    go(child, rest);
                    let emptied = match child {
                        Value::Object(m) => m.is_empty(),
                        Value::Array(a) => a.is_empty(),
                        _ => false,
                    };
                    if emptied {
                        map.remove(f);
                    }
                }
            }
            PathElement::Value(v) => {
                if let Some(items) = cur.as_array_mut() {
                    items.retain(|item| !is_item(item, v));
                }
            }
        }
    }
    go(obj, path);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn f(s: &str) -> PathElement {
        PathElement::Field(s.to_string())
    }

    #[test]
    fn object_leaves_skip_system_metadata_and_treat_lists_atomically() {
        let obj = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "resourceVersion": "3", "labels": {"x": "1"},
                         "finalizers": ["f1", "f2"]},
            "spec": {"args": ["a", "b"], "empty": {}}
        });
        let set = FieldSet::of_object(&obj);
        let shown: Vec<String> = set.paths().iter().map(|p| display_path(p)).collect();
        assert_eq!(
            shown,
            vec![
                ".metadata.finalizers[=\"f1\"]",
                ".metadata.finalizers[=\"f2\"]",
                ".metadata.labels.x",
                ".spec.args",
                ".spec.empty",
            ]
        );
    }

    #[test]
    fn fields_v1_round_trips() {
        let obj =
            json!({"metadata": {"labels": {"a": "1"}, "finalizers": ["x"]}, "spec": {"n": 1}});
        let set = FieldSet::of_object(&obj);
        let wire = set.to_fields_v1();
        assert_eq!(
            wire,
            json!({"f:metadata": {"f:finalizers": {"v:\"x\"": {}}, "f:labels": {"f:a": {}}},
                   "f:spec": {"f:n": {}}})
        );
        assert_eq!(FieldSet::from_fields_v1(&wire), set);
    }

    #[test]
    fn remove_prunes_emptied_parents() {
        let mut obj = json!({"spec": {"job": {"args": ["a"]}, "keep": 1}});
        remove_path(&mut obj, &[f("spec"), f("job"), f("args")]);
        assert_eq!(obj, json!({"spec": {"keep": 1}}));
        let mut set = FieldSet::of_object(&json!({"spec": {"job": {"args": ["a"]}}}));
        assert!(set.remove(&[f("spec"), f("job"), f("args")]));
        assert!(set.is_empty());
    }

    #[test]
    fn set_path_creates_parents_and_adds_set_items_once() {
        let mut obj = json!({});
        set_path(&mut obj, &[f("spec"), f("n")], json!(2));
        let item = PathElement::Value("\"fin\"".to_string());
        set_path(
            &mut obj,
            &[f("metadata"), f("finalizers"), item.clone()],
            json!("fin"),
        );
        set_path(
            &mut obj,
            &[f("metadata"), f("finalizers"), item],
            json!("fin"),
        );
        assert_eq!(
            obj,
            json!({"spec": {"n": 2}, "metadata": {"finalizers": ["fin"]}})
        );
    }
}
