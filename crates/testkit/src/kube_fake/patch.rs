//! Patch bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902), strategic merge patch
//! (simplified to a merge patch) and apply patches (parsed here, merged in `managed`).

use serde_json::Value;

use super::error::ApiError;

/// The patch content types the API server accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/merge-patch+json`
    Merge,
    /// `application/json-patch+json`
    Json,
    /// `application/strategic-merge-patch+json`
    Strategic,
    /// `application/apply-patch+yaml` (server-side apply)
    Apply,
}

impl PatchType {
    /// From the request's `Content-Type`.
    pub fn from_content_type(ct: &str) -> Option<Self> {
        let mime = ct.split(';').next().unwrap_or_default().trim();
        match mime {
            "application/merge-patch+json" => Some(Self::Merge),
            "application/json-patch+json" => Some(Self::Json),
            "application/strategic-merge-patch+json" => Some(Self::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => Some(Self::Apply),
            _ => None,
        }
    }

    /// A short name for request logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Merge => "merge",
            Self::Json => "json",
            Self::Strategic => "strategic",
            Self::Apply => "apply",
        }
    }
}

/// Parses a patch body; apply patches may be YAML.
pub fn parse_body(kind: PatchType, body: &[u8]) -> Result<Value, ApiError> {
    match serde_json::from_slice(body) {
        Ok(v) => Ok(v),
        Err(json_err) if kind == PatchType::Apply => {
            let text = std::str::from_utf8(body)
                .map_err(|e| ApiError::bad_request(format!("apply patch is not UTF-8: {e}")))?;
            serde_saphyr::from_str::<Value>(text).map_err(|e| {
                ApiError::bad_request(format!(
                    "error decoding apply patch as JSON ({json_err}) or YAML ({e})"
                ))
            })
        }
        Err(e) => Err(ApiError::bad_request(format!("error decoding patch: {e}"))),
    }
}

/// Strategic-merge directives the fake does not implement; patches using them are refused
/// rather than silently applied with different meaning.
const SMP_DIRECTIVES: &[&str] = &[
    "$patch",
    "$retainKeys",
    "$deleteFromPrimitiveList",
    "$setElementOrder",
];

fn find_directive(v: &Value) -> Option<String> {
    match v {
        Value::Object(map) => map.iter().find_map(|(k, child)| {
            if SMP_DIRECTIVES.iter().any(|d| k.starts_with(d)) {
                Some(k.clone())
            } else {
                find_directive(child)
            }
        }),
        Value::Array(items) => items.iter().find_map(find_directive),
        _ => None,
    }
}

/// Applies a merge, JSON or strategic patch to `target`.
pub fn apply_patch(kind: PatchType, target: &Value, patch: &Value) -> Result<Value, ApiError> {
    let mut out = target.clone();
    match kind {
        PatchType::Merge | PatchType::Strategic => {
            if !patch.is_object() {
                return Err(ApiError::bad_request("a merge patch must be a JSON object"));
            }
            if kind == PatchType::Strategic
                && let Some(directive) = find_directive(patch)
            {
                return Err(ApiError::bad_request(format!(
                    "strategic merge patch directive {directive:?} is not supported by the fake API \
                     server (it applies strategic patches as JSON merge patches); use a merge, JSON \
                     or apply patch"
                )));
            }
            json_patch::merge(&mut out, patch);
        }
        PatchType::Json => {
            let ops: json_patch::Patch = serde_json::from_value(patch.clone())
                .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
            for op in ops.iter() {
                // The API server's JSON patch library treats a missing path as null in `test`
                // (kube::runtime::finalizer relies on it); RFC 6902 alone would fail here.
                if let json_patch::PatchOperation::Test(t) = op
                    && t.value.is_null()
                    && out.pointer(t.path.as_str()).is_none()
                {
                    continue;
                }
                json_patch::patch(&mut out, std::slice::from_ref(op)).map_err(|e| {
                    ApiError::new(
                        422,
                        "Invalid",
                        format!("JSON patch could not be applied: {e}"),
                    )
                })?;
            }
        }
        PatchType::Apply => {
            return Err(ApiError::internal(
                "apply patches are merged by server-side apply",
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_null_removes_and_lists_replace() {
        let out = apply_patch(
            PatchType::Merge,
            &json!({"spec": {"a": 1, "b": [1, 2]}}),
            &json!({"spec": {"a": null, "b": [3]}}),
        )
        .unwrap();
        assert_eq!(out, json!({"spec": {"b": [3]}}));
    }

    #[test]
    fn json_patch_test_failure_is_unprocessable() {
        let err = apply_patch(
            PatchType::Json,
            &json!({"spec": {"a": 1}}),
            &json!([{"op": "test", "path": "/spec/a", "value": 2}, {"op": "replace", "path": "/spec/a", "value": 3}]),
        )
        .unwrap_err();
        assert_eq!(err.code, 422);
    }

    #[test]
    fn json_patch_test_of_a_missing_path_against_null_passes() {
        let out = apply_patch(
            PatchType::Json,
            &json!({"metadata": {}}),
            &json!([{"op": "test", "path": "/metadata/finalizers", "value": null},
                    {"op": "add", "path": "/metadata/finalizers", "value": ["f"]}]),
        )
        .unwrap();
        assert_eq!(out, json!({"metadata": {"finalizers": ["f"]}}));
    }

    #[test]
    fn strategic_directives_are_refused() {
        let err = apply_patch(
            PatchType::Strategic,
            &json!({}),
            &json!({"spec": {"containers": [{"name": "a", "$patch": "delete"}]}}),
        )
        .unwrap_err();
        assert_eq!(err.code, 400);
    }

    #[test]
    fn apply_bodies_may_be_yaml() {
        let v = parse_body(
            PatchType::Apply,
            b"apiVersion: v1\nkind: ConfigMap\ndata:\n  a: \"1\"\n",
        )
        .unwrap();
        assert_eq!(v["data"]["a"], json!("1"));
    }
}
