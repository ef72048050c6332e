//! Merging pod templates the way the Apache operator merges `spec.podTemplate` with
//! `spec.jobManager.podTemplate` / `spec.taskManager.podTemplate` (its `FlinkUtils.mergePodTemplates`,
//! controlled by `kubernetes.operator.pod-template.merge-arrays-by-name`):
//!
//! - objects merge key by key, recursively; on a conflict the component template wins;
//! - arrays merge element by element **by position** (element `i` of the component template is
//!   merged into element `i` of the base; extra elements are appended) — the Apache default;
//! - with merge-by-name, arrays whose elements all have a `name` (containers, volumes, env, …)
//!   merge elements of the same name instead, keeping the base's order and appending new names;
//! - an object in the base stays when the component template has a non-object there;
//! - anything else (scalars, `null`, an array meeting a non-array) is replaced.

use serde_json::{Map, Value};

/// How arrays are merged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArrayMerge {
    /// Element `i` with element `i` (Apache's default).
    ByPosition,
    /// Elements with the same `name` (when every element of both arrays has one).
    ByName,
}

/// `overlay` merged into `base` (the component template over the common one).
pub fn merge(base: &Value, overlay: &Value, arrays: ArrayMerge) -> Value {
    let mut out = base.clone();
    merge_into(&mut out, overlay, arrays);
    out
}

fn merge_into(to: &mut Value, from: &Value, arrays: ArrayMerge) {
    match (to, from) {
        (Value::Object(to), Value::Object(from)) => {
            for (key, from_child) in from {
                match to.get_mut(key) {
                    Some(to_child) => merge_into(to_child, from_child, arrays),
                    None => {
                        to.insert(key.clone(), from_child.clone());
                    }
                }
            }
        }
        (Value::Array(to), Value::Array(from)) => merge_arrays(to, from, arrays),
        // as in Apache: an object is only ever merged into, never replaced by a non-object
        (Value::Object(_), _) => {}
        (to, from) => *to = from.clone(),
    }
}

fn merge_arrays(to: &mut Vec<Value>, from: &[Value], arrays: ArrayMerge) {
    if arrays == ArrayMerge::ByName && all_named(to) && all_named(from) {
        for element in from {
            let name = element.get("name");
            match to.iter_mut().find(|e| e.get("name") == name) {
                Some(existing) => merge_into(existing, element, arrays),
                None => to.push(element.clone()),
            }
        }
        return;
    }
    for (i, element) in from.iter().enumerate() {
        match to.get_mut(i) {
            Some(existing) => merge_into(existing, element, arrays),
            None => to.push(element.clone()),
        }
    }
}

fn all_named(items: &[Value]) -> bool {
    items.iter().all(|e| {
        e.as_object()
            .is_some_and(|o: &Map<String, Value>| o.contains_key("name"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> Value {
        json!({"metadata": {"labels": {"a": "1", "b": "1"}},
               "spec": {"containers": [{"name": "flink-main-container", "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                        "volumes": [{"name": "data", "emptyDir": {}}],
                        "nodeSelector": {"disk": "ssd"}}})
    }

    #[test]
    fn component_template_wins_on_conflicts_and_objects_merge_recursively() {
        let overlay = json!({"metadata": {"labels": {"b": "2", "c": "2"}}, "spec": {"nodeSelector": {"disk": "hdd"}}});
        let m = merge(&base(), &overlay, ArrayMerge::ByPosition);
        assert_eq!(
            m["metadata"]["labels"],
            json!({"a": "1", "b": "2", "c": "2"})
        );
        assert_eq!(m["spec"]["nodeSelector"]["disk"], "hdd");
        assert_eq!(
            m["spec"]["volumes"],
            base()["spec"]["volumes"],
            "untouched parts stay"
        );
    }

    #[test]
    fn by_position_merges_the_first_containers_even_with_different_names() {
        // Apache's default: a sidecar in the component template lands on the base's first
        // container, which is why merge-arrays-by-name exists
        let overlay = json!({"spec": {"containers": [{"name": "sidecar", "image": "busybox"}]}});
        let m = merge(&base(), &overlay, ArrayMerge::ByPosition);
        let containers = m["spec"]["containers"].as_array().unwrap();
        assert_eq!(containers.len(), 1);
        assert_eq!(containers[0]["name"], "sidecar");
        assert_eq!(containers[0]["volumeMounts"][0]["name"], "data");
    }

    #[test]
    fn by_name_merges_same_named_elements_and_appends_new_ones() {
        let overlay = json!({"spec": {
            "containers": [{"name": "sidecar", "image": "busybox"},
                           {"name": "flink-main-container", "env": [{"name": "A", "value": "1"}]}],
            "volumes": [{"name": "data", "emptyDir": {"medium": "Memory"}}, {"name": "logs", "emptyDir": {}}]}});
        let m = merge(&base(), &overlay, ArrayMerge::ByName);
        let containers = m["spec"]["containers"].as_array().unwrap();
        assert_eq!(containers.len(), 2);
        assert_eq!(containers[0]["name"], "flink-main-container");
        assert_eq!(containers[0]["env"][0]["name"], "A");
        assert_eq!(
            containers[0]["volumeMounts"][0]["name"], "data",
            "base fields kept"
        );
        assert_eq!(containers[1]["name"], "sidecar");
        let volumes = m["spec"]["volumes"].as_array().unwrap();
        assert_eq!(volumes[0]["emptyDir"]["medium"], "Memory");
        assert_eq!(volumes[1]["name"], "logs");
    }

    #[test]
    fn by_name_falls_back_to_position_when_an_element_has_no_name() {
        let base = json!({"spec": {"tolerations": [{"key": "a", "operator": "Exists"}]}});
        let overlay = json!({"spec": {"tolerations": [{"key": "b"}]}});
        let m = merge(&base, &overlay, ArrayMerge::ByName);
        assert_eq!(
            m["spec"]["tolerations"],
            json!([{"key": "b", "operator": "Exists"}])
        );
    }

    #[test]
    fn scalars_are_replaced_but_objects_are_only_merged_into() {
        let m = merge(
            &json!({"a": {"b": 1}, "c": 1, "d": [1]}),
            &json!({"a": null, "c": "x", "d": 2}),
            ArrayMerge::ByName,
        );
        assert_eq!(m, json!({"a": {"b": 1}, "c": "x", "d": 2}));
    }
}
