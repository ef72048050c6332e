//! `metadata.managedFields`: who owns which field, updated on every write, and the
//! server-side apply merge with its conflict rules.
//!
//! What this models (per entry = manager + operation + subresource):
//! - a non-apply write (create, PUT, merge/JSON/strategic patch) gives its manager an `Update`
//!   entry owning every leaf it changed, and takes those leaves away from all other entries
//!   (non-apply writes never conflict);
//! - an apply owns exactly the leaves in the applied configuration; a leaf owned by another
//!   entry whose live value differs from the applied value is a conflict (409) unless `force`,
//!   which moves ownership to the applier; leaves the applier owned before and no longer applies
//!   are removed from the object unless another entry still owns them.

use serde_json::{Value, json};

use super::fieldset::{FieldSet, Path, display_path, get_path, remove_path, set_path};

/// The two operations the API server records.
pub const APPLY: &str = "Apply";
/// See [`APPLY`].
pub const UPDATE: &str = "Update";

/// One `managedFields` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct ManagedEntry {
    pub manager: String,
    pub operation: String,
    pub api_version: String,
    pub time: String,
    pub subresource: String,
    pub fields: FieldSet,
}

impl ManagedEntry {
    fn is(&self, manager: &str, operation: &str, subresource: &str) -> bool {
        self.manager == manager && self.operation == operation && self.subresource == subresource
    }

    fn to_json(&self) -> Value {
        let mut v = json!({
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
            "time": self.time,
            "fieldsType": "FieldsV1",
            "fieldsV1": self.fields.to_fields_v1(),
        });
        if !self.subresource.is_empty() {
            v["subresource"] = json!(self.subresource);
        }
        v
    }
}

/// Who is writing, for ownership bookkeeping.
#[derive(Debug, Clone)]
pub struct Writer<'a> {
    pub manager: &'a str,
    pub subresource: &'a str,
    pub api_version: &'a str,
    pub now: &'a str,
}

/// Reads the entries stored in `obj`.
pub fn decode(obj: &Value) -> Vec<ManagedEntry> {
    let Some(items) = obj["metadata"]["managedFields"].as_array() else {
        return Vec::new();
    };
    items
        .iter()
        .map(|e| ManagedEntry {
            manager: e["manager"].as_str().unwrap_or_default().to_string(),
            operation: e["operation"].as_str().unwrap_or(UPDATE).to_string(),
            api_version: e["apiVersion"].as_str().unwrap_or_default().to_string(),
            time: e["time"].as_str().unwrap_or_default().to_string(),
            subresource: e["subresource"].as_str().unwrap_or_default().to_string(),
            fields: FieldSet::from_fields_v1(&e["fieldsV1"]),
        })
        .collect()
}

/// Stores `entries` into `obj` (removing the field when there are none).
pub fn encode_into(obj: &mut Value, entries: &[ManagedEntry]) {
    let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    if entries.is_empty() {
        meta.remove("managedFields");
    } else {
        meta.insert(
            "managedFields".to_string(),
            Value::Array(entries.iter().map(ManagedEntry::to_json).collect()),
        );
    }
}

fn entry_mut<'e>(
    entries: &'e mut Vec<ManagedEntry>,
    w: &Writer<'_>,
    operation: &str,
) -> &'e mut ManagedEntry {
    let pos = entries
        .iter()
        .position(|e| e.is(w.manager, operation, w.subresource));
    let idx = match pos {
        Some(idx) => idx,
        None => {
            entries.push(ManagedEntry {
                manager: w.manager.to_string(),
                operation: operation.to_string(),
                api_version: w.api_version.to_string(),
                time: w.now.to_string(),
                subresource: w.subresource.to_string(),
                fields: FieldSet::default(),
            });
            entries.len() - 1
        }
    };
    &mut entries[idx]
}

/// Ownership after a non-apply write from `old` (Null for a create) to `new`.
pub fn record_update(entries: &mut Vec<ManagedEntry>, old: &Value, new: &Value, w: &Writer<'_>) {
    let old_set = FieldSet::of_object(old);
    let new_set = FieldSet::of_object(new);
    let changed: Vec<Path> = new_set
        .paths()
        .into_iter()
        .filter(|p| !old_set.contains(p) || get_path(old, p) != get_path(new, p))
        .collect();
    let removed: Vec<Path> = old_set
        .paths()
        .into_iter()
        .filter(|p| !new_set.contains(p))
        .collect();
    if changed.is_empty() && removed.is_empty() {
        return;
    }
    for entry in entries.iter_mut() {
        let mut touched = false;
        for p in changed.iter().chain(&removed) {
            touched |= entry.fields.remove(p);
        }
        if touched {
            entry.time = w.now.to_string();
        }
    }
    if !changed.is_empty() {
        let mine = entry_mut(entries, w, UPDATE);
        for p in &changed {
            mine.fields.insert(p);
        }
        mine.time = w.now.to_string();
        mine.api_version = w.api_version.to_string();
    }
    entries.retain(|e| !e.fields.is_empty());
}

/// A field another manager owns with a different value.
#[derive(Debug, Clone, PartialEq)]
pub struct Conflict {
    pub manager: String,
    pub api_version: String,
    pub path: String,
}

/// The message the real server gives for apply conflicts.
pub fn conflict_message(conflicts: &[Conflict]) -> String {
    let noun = if conflicts.len() == 1 {
        "conflict"
    } else {
        "conflicts"
    };
    let list: Vec<String> = conflicts
        .iter()
        .map(|c| {
            format!(
                "conflict with \"{}\" using {}: {}",
                c.manager, c.api_version, c.path
            )
        })
        .collect();
    format!(
        "Apply failed with {} {noun}: {}",
        conflicts.len(),
        list.join("; ")
    )
}

/// Server-side apply of `applied` onto `live` (Null when the object does not exist yet).
/// Returns the merged object; `entries` is updated in place.
pub fn apply(
    live: &Value,
    entries: &mut Vec<ManagedEntry>,
    applied: &Value,
    force: bool,
    w: &Writer<'_>,
) -> Result<Value, Vec<Conflict>> {
    let mut applied_set = FieldSet::of_object(applied);
    if w.subresource == "status" {
        applied_set = applied_set.restricted_to_status();
    }
    let applied_paths = applied_set.paths();

    let mut conflicts = Vec::new();
    let mut stolen: Vec<(usize, Path)> = Vec::new();
    for (idx, entry) in entries.iter().enumerate() {
        if entry.is(w.manager, APPLY, w.subresource) {
            continue;
        }
        for p in &applied_paths {
            if entry.fields.contains(p) && get_path(live, p) != get_path(applied, p) {
                conflicts.push(Conflict {
                    manager: entry.manager.clone(),
                    api_version: entry.api_version.clone(),
                    path: display_path(p),
                });
                stolen.push((idx, p.clone()));
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(conflicts);
    }
    for (idx, p) in &stolen {
        entries[*idx].fields.remove(p);
        entries[*idx].time = w.now.to_string();
    }

    let mut merged = if live.is_null() {
        json!({})
    } else {
        live.clone()
    };
    for p in &applied_paths {
        if let Some(v) = get_path(applied, p) {
            set_path(&mut merged, p, v.clone());
        }
    }
    let previous = entries
        .iter()
        .find(|e| e.is(w.manager, APPLY, w.subresource))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    for p in previous.paths() {
        if applied_set.contains(&p) {
            continue;
        }
        let owned_elsewhere = entries
            .iter()
            .any(|e| !e.is(w.manager, APPLY, w.subresource) && e.fields.contains(&p));
        if !owned_elsewhere {
            remove_path(&mut merged, &p);
        }
    }

    let mine = entry_mut(entries, w, APPLY);
    if mine.fields != applied_set {
        mine.fields = applied_set;
        mine.time = w.now.to_string();
    }
    mine.api_version = w.api_version.to_string();
    entries.retain(|e| !e.fields.is_empty());
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer<'a>(manager: &'a str) -> Writer<'a> {
        Writer {
            manager,
            subresource: "",
            api_version: "v1",
            now: "t",
        }
    }

    #[test]
    fn update_takes_changed_fields_from_other_managers() {
        let old = json!({"spec": {"a": 1, "b": 2}});
        let mut entries = Vec::new();
        record_update(&mut entries, &Value::Null, &old, &writer("creator"));
        let new = json!({"spec": {"a": 5, "b": 2}});
        record_update(&mut entries, &old, &new, &writer("editor"));
        assert_eq!(entries.len(), 2);
        assert!(
            entries[0]
                .fields
                .contains(&FieldSet::of_object(&json!({"spec": {"b": 0}})).paths()[0])
        );
        assert_eq!(entries[1].manager, "editor");
        assert_eq!(
            entries[1].fields,
            FieldSet::of_object(&json!({"spec": {"a": 0}}))
        );
    }

    #[test]
    fn apply_conflicts_only_on_differing_values_and_force_takes_ownership() {
        let mut entries = Vec::new();
        let live = apply(
            &Value::Null,
            &mut entries,
            &json!({"spec": {"n": 1, "m": 1}}),
            false,
            &writer("a"),
        )
        .unwrap();
        // same value: shared ownership, no conflict
        let same = apply(
            &live,
            &mut entries,
            &json!({"spec": {"n": 1}}),
            false,
            &writer("b"),
        )
        .unwrap();
        assert_eq!(same, live);
        let err = apply(
            &live,
            &mut entries,
            &json!({"spec": {"m": 2}}),
            false,
            &writer("b"),
        )
        .unwrap_err();
        assert_eq!(err.len(), 1);
        assert_eq!(err[0].path, ".spec.m");
        let forced = apply(
            &live,
            &mut entries,
            &json!({"spec": {"m": 2}}),
            true,
            &writer("b"),
        )
        .unwrap();
        assert_eq!(forced, json!({"spec": {"n": 1, "m": 2}}));
        let a = entries.iter().find(|e| e.manager == "a").unwrap();
        assert_eq!(a.fields, FieldSet::of_object(&json!({"spec": {"n": 0}})));
    }

    #[test]
    fn apply_removes_fields_the_manager_stopped_applying_unless_shared() {
        let mut entries = Vec::new();
        let live = apply(
            &Value::Null,
            &mut entries,
            &json!({"spec": {"x": 1, "y": 1}}),
            false,
            &writer("a"),
        )
        .unwrap();
        let live = apply(
            &live,
            &mut entries,
            &json!({"spec": {"y": 1}}),
            false,
            &writer("b"),
        )
        .unwrap();
        let live = apply(
            &live,
            &mut entries,
            &json!({"spec": {"z": 1}}),
            false,
            &writer("a"),
        )
        .unwrap();
        assert_eq!(live, json!({"spec": {"y": 1, "z": 1}}));
    }
}
