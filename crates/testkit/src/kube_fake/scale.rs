//! The scale subresource: an `autoscaling/v1` Scale view mapped onto the type's replicas path.

use serde_json::{Value, json};

use super::error::ApiError;
use super::meta::{meta_mut, meta_str};
use super::store::{ObjKey, State};
use super::write::{Ownership, Sub, WriteCtx};

impl State {
    /// The `autoscaling/v1` Scale view of an object.
    pub fn scale_of(&self, key: &ObjKey) -> Result<Value, ApiError> {
        let rt = self.rt(key.ty);
        let spec = rt.scale.as_ref().ok_or_else(ApiError::no_route)?;
        let obj = self.get(key)?;
        let at = |path: &str| {
            path.trim_start_matches('.')
                .split('.')
                .try_fold(&*obj, |cur, k| cur.get(k))
                .cloned()
        };
        let mut scale = json!({
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                "name": key.name,
                "namespace": key.ns,
                "uid": obj["metadata"]["uid"],
                "resourceVersion": obj["metadata"]["resourceVersion"],
                "creationTimestamp": obj["metadata"]["creationTimestamp"],
            },
            "spec": {"replicas": at(&spec.spec_replicas_path).unwrap_or(json!(0))},
            "status": {"replicas": at(&spec.status_replicas_path).unwrap_or(json!(0))},
        });
        if let Some(sel) = spec.label_selector_path.as_deref().and_then(at) {
            scale["status"]["selector"] = sel;
        }
        Ok(scale)
    }

    /// Writes a Scale back: its `spec.replicas` goes to the type's replicas path.
    pub fn write_scale(
        &mut self,
        key: &ObjKey,
        scale: &Value,
        ctx: &WriteCtx,
    ) -> Result<Value, ApiError> {
        let rt = self.rt(key.ty);
        let spec = rt.scale.clone().ok_or_else(ApiError::no_route)?;
        let replicas = scale["spec"]["replicas"].as_i64().ok_or_else(|| {
            ApiError::invalid(
                &rt,
                &key.name,
                "spec.replicas",
                "Required value: an integer is required",
            )
        })?;
        if replicas < 0 {
            return Err(ApiError::invalid(
                &rt,
                &key.name,
                "spec.replicas",
                "Invalid value: must be greater than or equal to 0",
            ));
        }
        let old = self.get(key)?;
        let mut candidate = (*old).clone();
        let path: Vec<&str> = spec
            .spec_replicas_path
            .trim_start_matches('.')
            .split('.')
            .collect();
        let mut cur = &mut candidate;
        for (i, part) in path.iter().enumerate() {
            if !cur.is_object() {
                *cur = json!({});
            }
            if i + 1 == path.len() {
                cur[*part] = json!(replicas);
                break;
            }
            cur = &mut cur[*part];
        }
        if let Some(rv) = meta_str(scale, "resourceVersion").filter(|r| !r.is_empty()) {
            meta_mut(&mut candidate).insert("resourceVersion".into(), json!(rv));
        }
        self.commit(key, old, candidate, Sub::Scale, Ownership::Update, ctx)?;
        self.scale_of(key)
    }
}
