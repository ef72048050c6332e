//! Server-side apply requests (`application/apply-patch+yaml`): validation of the applied
//! configuration, the resourceVersion precondition, create-on-apply, and conflicts as `Status`.

use serde_json::{Value, json};

use super::error::ApiError;
use super::managed::{self, Writer};
use super::meta::{meta_mut, meta_str};
use super::store::{Obj, ObjKey, State};
use super::write::{Ownership, Sub, WriteCtx, check_type, set_status};

impl State {
    /// Server-side apply (`application/apply-patch+yaml`). Returns the object and whether it was
    /// created.
    pub fn apply(
        &mut self,
        key: &ObjKey,
        mut applied: Value,
        sub: Sub,
        force: bool,
        ctx: &WriteCtx,
    ) -> Result<(Obj, bool), ApiError> {
        let rt = self.rt(key.ty);
        if !applied.is_object() {
            return Err(ApiError::bad_request(
                "an apply patch must be a YAML or JSON object",
            ));
        }
        check_type(&rt, &applied, true)?;
        if let Some(name) = meta_str(&applied, "name")
            && name != key.name
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({name}) does not match the name on the URL ({})",
                key.name
            )));
        }
        if sub == Sub::Main && rt.status {
            set_status(&mut applied, None);
        }
        strip_nulls(&mut applied);
        let precondition = meta_str(&applied, "resourceVersion").map(str::to_string);
        let w = Writer {
            manager: &ctx.manager,
            subresource: sub.name(),
            api_version: &rt.api_version(),
            now: &ctx.now,
        };
        let conflict = |conflicts: Vec<managed::Conflict>| {
            let causes: Vec<Value> = conflicts
                .iter()
                .map(|c| {
                    json!({"reason": "FieldManagerConflict", "field": c.path,
                    "message": format!("conflict with \"{}\" using {}", c.manager, c.api_version)})
                })
                .collect();
            let mut err = ApiError::new(409, "Conflict", managed::conflict_message(&conflicts));
            err.details = Some(
                json!({"name": key.name, "group": rt.group, "kind": rt.plural, "causes": causes}),
            );
            err
        };
        let Some(old) = self.lookup(key) else {
            if sub != Sub::Main {
                return Err(ApiError::not_found(&rt, &key.name));
            }
            if precondition.is_some() {
                return Err(ApiError::conflict(&rt, &key.name));
            }
            let mut entries = Vec::new();
            let mut merged = managed::apply(&Value::Null, &mut entries, &applied, force, &w)
                .map_err(conflict)?;
            meta_mut(&mut merged).insert("name".into(), json!(key.name));
            if let Some(g) = meta_str(&applied, "generateName") {
                meta_mut(&mut merged).insert("generateName".into(), json!(g));
            }
            let created = self.create(key.ty, &key.ns, merged, ctx, Some(entries))?;
            return Ok((created, true));
        };
        if let Some(rv) = precondition
            && meta_str(&old, "resourceVersion") != Some(rv.as_str())
        {
            return Err(ApiError::conflict(&rt, &key.name));
        }
        let mut entries = managed::decode(&old);
        let mut merged =
            managed::apply(&old, &mut entries, &applied, force, &w).map_err(conflict)?;
        // ownership already computed; make commit's precondition see the live version
        meta_mut(&mut merged).insert(
            "resourceVersion".into(),
            json!(meta_str(&old, "resourceVersion")),
        );
        let obj = self.commit(key, old, merged, sub, Ownership::Applied(entries), ctx)?;
        Ok((obj, false))
    }
}

/// Drops null leaves: the fake treats `field: null` in an applied configuration as "not
/// specified" (a simplification of the real server's handling).
fn strip_nulls(v: &mut Value) {
    if let Some(map) = v.as_object_mut() {
        map.retain(|_, child| !child.is_null());
        for child in map.values_mut() {
            strip_nulls(child);
        }
    }
}
