//! Writes: create, update (PUT and the non-apply patches), server-side apply, and the status and
//! scale subresources. Every write goes through [`State::commit`], which enforces the
//! resourceVersion precondition, subresource isolation, generation, finalizer rules and
//! managedFields, and skips no-op writes (no new resourceVersion, no event) like the real server.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::error::ApiError;
use super::managed::{self, ManagedEntry, Writer};
use super::meta::{
    check_dns_label, check_dns_subdomain, check_labels, finalizers, is_deleting, meta_mut, meta_str,
};
use super::registry::{ResourceType, types_from_crd};
use super::store::{EventType, Obj, ObjKey, State};

/// Which part of an object a write addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sub {
    /// The main resource.
    Main,
    /// `/status`.
    Status,
    /// `/scale` (the caller maps replicas onto the object).
    Scale,
}

impl Sub {
    /// The `managedFields[].subresource` value.
    pub fn name(self) -> &'static str {
        match self {
            Sub::Main => "",
            Sub::Status => "status",
            Sub::Scale => "scale",
        }
    }
}

/// Per-request write settings.
#[derive(Debug, Clone)]
pub struct WriteCtx {
    pub manager: String,
    pub dry_run: bool,
    pub now: String,
}

/// How ownership is recorded for a write.
#[derive(Debug)]
pub enum Ownership {
    /// A non-apply write: diff-based `Update` entry.
    Update,
    /// Server-side apply already computed the entries.
    Applied(Vec<ManagedEntry>),
}

/// Metadata fields only the server writes.
const SERVER_META: &[&str] = &[
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
    "resourceVersion",
    "managedFields",
    "selfLink",
];

pub(super) fn check_type(rt: &ResourceType, obj: &Value, required: bool) -> Result<(), ApiError> {
    let expected = rt.api_version();
    match obj.get("apiVersion").and_then(Value::as_str) {
        Some(v) if v != expected => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({expected})"
            )));
        }
        None if required => {
            return Err(ApiError::bad_request(
                "apiVersion must be set in an apply patch",
            ));
        }
        _ => {}
    }
    match obj.get("kind").and_then(Value::as_str) {
        Some(k) if k != rt.kind => Err(ApiError::bad_request(format!(
            "the kind in the data ({k}) does not match the expected kind ({})",
            rt.kind
        ))),
        None if required => Err(ApiError::bad_request("kind must be set in an apply patch")),
        _ => Ok(()),
    }
}

/// Everything except metadata (and status, when it is a subresource) — what `generation` counts.
fn spec_changed(rt: &ResourceType, old: &Value, new: &Value) -> bool {
    let skip = |k: &str| k == "metadata" || (rt.status && k == "status");
    let empty = Map::new();
    let (a, b) = (
        old.as_object().unwrap_or(&empty),
        new.as_object().unwrap_or(&empty),
    );
    a.iter().any(|(k, v)| !skip(k) && b.get(k) != Some(v))
        || b.iter().any(|(k, _)| !skip(k) && !a.contains_key(k))
}

pub(super) fn set_status(obj: &mut Value, status: Option<Value>) {
    if let Some(map) = obj.as_object_mut() {
        match status {
            Some(s) if !s.is_null() => {
                map.insert("status".to_string(), s);
            }
            _ => {
                map.remove("status");
            }
        }
    }
}

fn check_name(rt: &ResourceType, name: &str) -> Result<(), ApiError> {
    let res = if rt.plural == "namespaces" || rt.plural == "services" {
        check_dns_label(name)
    } else {
        check_dns_subdomain(name)
    };
    res.map_err(|msg| ApiError::invalid(rt, name, "metadata.name", &msg))
}

impl State {
    /// POST: creates `obj` in `ns` (`""` for cluster-scoped types).
    pub fn create(
        &mut self,
        ty: usize,
        ns: &str,
        mut obj: Value,
        ctx: &WriteCtx,
        applied: Option<Vec<ManagedEntry>>,
    ) -> Result<Obj, ApiError> {
        let rt = self.rt(ty);
        if !obj.is_object() {
            return Err(ApiError::bad_request(
                "the request body must be a JSON object",
            ));
        }
        check_type(&rt, &obj, false)?;
        obj["apiVersion"] = json!(rt.api_version());
        obj["kind"] = json!(rt.kind);
        if let Some(rv) = meta_str(&obj, "resourceVersion").filter(|rv| !rv.is_empty()) {
            return Err(ApiError::internal(format!(
                "resourceVersion should not be set on objects to be created (got {rv:?})"
            )));
        }
        let body_ns = meta_str(&obj, "namespace").unwrap_or_default().to_string();
        if rt.namespaced && !body_ns.is_empty() && body_ns != ns {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        let mut name = meta_str(&obj, "name").unwrap_or_default().to_string();
        if name.is_empty() {
            let prefix = meta_str(&obj, "generateName")
                .unwrap_or_default()
                .to_string();
            if prefix.is_empty() {
                return Err(ApiError::invalid(
                    &rt,
                    "",
                    "metadata.name",
                    "Required value: name or generateName is required",
                ));
            }
            name = loop {
                let candidate = format!("{prefix}{}", self.ids.name_suffix());
                let key = ObjKey {
                    ty,
                    ns: ns.to_string(),
                    name: candidate.clone(),
                };
                if self.lookup(&key).is_none() {
                    break candidate;
                }
            };
        }
        check_name(&rt, &name)?;
        check_labels(&obj).map_err(|(field, msg)| ApiError::invalid(&rt, &name, &field, &msg))?;
        if rt.namespaced {
            self.check_namespace_open(ns)?;
        }
        let key = ObjKey {
            ty,
            ns: ns.to_string(),
            name: name.clone(),
        };
        if self.lookup(&key).is_some() {
            return Err(ApiError::already_exists(&rt, &name));
        }

        let uid = self.ids.uid();
        let meta = meta_mut(&mut obj);
        for field in SERVER_META {
            meta.remove(*field);
        }
        meta.insert("name".into(), json!(name));
        if rt.namespaced {
            meta.insert("namespace".into(), json!(ns));
        } else {
            meta.remove("namespace");
        }
        meta.insert("uid".into(), json!(uid));
        meta.insert("creationTimestamp".into(), json!(ctx.now));
        meta.insert("generation".into(), json!(1));
        if rt.status {
            set_status(&mut obj, None);
        }
        let entries = match applied {
            Some(entries) => entries,
            None => {
                let mut entries = Vec::new();
                let w = Writer {
                    manager: &ctx.manager,
                    subresource: "",
                    api_version: &rt.api_version(),
                    now: &ctx.now,
                };
                managed::record_update(&mut entries, &Value::Null, &obj, &w);
                entries
            }
        };
        managed::encode_into(&mut obj, &entries);
        if ctx.dry_run {
            return Ok(Arc::new(obj));
        }
        let rv = self.next_rv();
        meta_mut(&mut obj).insert("resourceVersion".into(), json!(rv.to_string()));
        let obj = Arc::new(obj);
        self.put(&key, Arc::clone(&obj), EventType::Added, None);
        self.after_write(&rt, &obj);
        self.collect_if_orphaned(&key, &ctx.now);
        Ok(obj)
    }

    /// 403 when `ns` is being deleted (the real server refuses new content there).
    fn check_namespace_open(&self, ns: &str) -> Result<(), ApiError> {
        let Some(ns_ty) = self.find("", "v1", "namespaces") else {
            return Ok(());
        };
        let key = ObjKey {
            ty: ns_ty,
            ns: String::new(),
            name: ns.to_string(),
        };
        match self.lookup(&key) {
            Some(n) if is_deleting(&n) => Err(ApiError::new(
                403,
                "Forbidden",
                format!(
                    "unable to create new content in namespace {ns} because it is being terminated"
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Applies the side effects of writing some types (a CRD registers its resource types).
    fn after_write(&mut self, rt: &ResourceType, obj: &Value) {
        if rt.group == "apiextensions.k8s.io" && rt.plural == "customresourcedefinitions" {
            for t in types_from_crd(obj) {
                self.register(t);
            }
        }
    }

    /// Writes `candidate` over `old` through the rules every update shares.
    pub fn commit(
        &mut self,
        key: &ObjKey,
        old: Obj,
        candidate: Value,
        sub: Sub,
        ownership: Ownership,
        ctx: &WriteCtx,
    ) -> Result<Obj, ApiError> {
        let rt = self.rt(key.ty);
        if !candidate.is_object() {
            return Err(ApiError::bad_request(
                "the request body must be a JSON object",
            ));
        }
        check_type(&rt, &candidate, false)?;
        let old_rv = meta_str(&old, "resourceVersion").unwrap_or_default();
        if let Some(rv) = meta_str(&candidate, "resourceVersion").filter(|rv| !rv.is_empty())
            && rv != old_rv
        {
            return Err(ApiError::conflict(&rt, &key.name));
        }
        let old_uid = meta_str(&old, "uid").unwrap_or_default();
        if let Some(uid) = meta_str(&candidate, "uid").filter(|u| !u.is_empty())
            && uid != old_uid
        {
            return Err(ApiError::precondition_failed(
                &rt,
                &key.name,
                &format!("UID in precondition: {uid}, UID in object meta: {old_uid}"),
            ));
        }

        let mut new = match sub {
            Sub::Status => {
                let mut new = (*old).clone();
                set_status(&mut new, candidate.get("status").cloned());
                new
            }
            Sub::Main | Sub::Scale => {
                let mut new = candidate;
                if rt.status {
                    set_status(&mut new, old.get("status").cloned());
                }
                new
            }
        };
        new["apiVersion"] = json!(rt.api_version());
        new["kind"] = json!(rt.kind);
        {
            let old_meta = old["metadata"].as_object().cloned().unwrap_or_default();
            let meta = meta_mut(&mut new);
            for field in SERVER_META.iter().chain(&["name", "namespace"]) {
                match old_meta.get(*field) {
                    Some(v) => meta.insert(field.to_string(), v.clone()),
                    None => meta.remove(*field),
                };
            }
        }
        check_labels(&new)
            .map_err(|(field, msg)| ApiError::invalid(&rt, &key.name, &field, &msg))?;
        if is_deleting(&old) {
            let before = finalizers(&old);
            let added: Vec<String> = finalizers(&new)
                .into_iter()
                .filter(|f| !before.contains(f))
                .collect();
            if !added.is_empty() {
                return Err(ApiError::invalid(
                    &rt,
                    &key.name,
                    "metadata.finalizers",
                    &format!(
                        "Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers {added:?}"
                    ),
                ));
            }
        }

        let entries = match ownership {
            Ownership::Applied(entries) => entries,
            Ownership::Update => {
                let mut entries = managed::decode(&old);
                let w = Writer {
                    manager: &ctx.manager,
                    subresource: sub.name(),
                    api_version: &rt.api_version(),
                    now: &ctx.now,
                };
                managed::record_update(&mut entries, &old, &new, &w);
                entries
            }
        };
        managed::encode_into(&mut new, &entries);
        if spec_changed(&rt, &old, &new) {
            let generation = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
            meta_mut(&mut new).insert("generation".into(), json!(generation));
        }
        if new == *old {
            return Ok(old);
        }
        if ctx.dry_run {
            return Ok(Arc::new(new));
        }
        let rv = self.next_rv();
        meta_mut(&mut new).insert("resourceVersion".into(), json!(rv.to_string()));
        let new = Arc::new(new);
        if is_deleting(&new) && finalizers(&new).is_empty() {
            self.finish_removal(key, Arc::clone(&new));
        } else {
            let owners_changed =
                old["metadata"].get("ownerReferences") != new["metadata"].get("ownerReferences");
            self.put(key, Arc::clone(&new), EventType::Modified, Some(old));
            self.after_write(&rt, &new);
            if owners_changed {
                self.collect_if_orphaned(key, &ctx.now);
            }
        }
        Ok(new)
    }

    /// PUT on the object or its status.
    pub fn update(
        &mut self,
        key: &ObjKey,
        body: Value,
        sub: Sub,
        ctx: &WriteCtx,
    ) -> Result<Obj, ApiError> {
        let rt = self.rt(key.ty);
        if let Some(name) = meta_str(&body, "name")
            && name != key.name
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({name}) does not match the name on the URL ({})",
                key.name
            )));
        }
        if rt.namespaced
            && let Some(ns) = meta_str(&body, "namespace").filter(|n| !n.is_empty())
            && ns != key.ns
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        let old = self.get(key)?;
        self.commit(key, old, body, sub, Ownership::Update, ctx)
    }

    /// PATCH (merge, JSON or strategic — already applied by the caller) as an update.
    pub fn patch_with(
        &mut self,
        key: &ObjKey,
        sub: Sub,
        ctx: &WriteCtx,
        patch: impl FnOnce(&Value) -> Result<Value, ApiError>,
    ) -> Result<Obj, ApiError> {
        let old = self.get(key)?;
        let patched = patch(&old)?;
        if meta_str(&patched, "name") != Some(key.name.as_str()) {
            return Err(ApiError::invalid(
                &self.rt(key.ty),
                &key.name,
                "metadata.name",
                "Invalid value: a patch may not change the name",
            ));
        }
        self.commit(key, old, patched, sub, Ownership::Update, ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube_fake::registry::Registry;

    fn ctx(manager: &str) -> WriteCtx {
        WriteCtx {
            manager: manager.into(),
            dry_run: false,
            now: "2025-01-01T00:00:00Z".into(),
        }
    }

    fn fd(st: &State) -> usize {
        st.find("flink.apache.org", "v1beta1", "flinkdeployments")
            .unwrap()
    }

    #[test]
    fn generation_counts_spec_changes_only() {
        let mut st = State::new(Registry::builtin(), 100);
        let ty = fd(&st);
        let created = st
            .create(
                ty,
                "ns",
                json!({"metadata": {"name": "a"}, "spec": {"x": 1}, "status": {"s": 1}}),
                &ctx("t"),
                None,
            )
            .unwrap();
        assert!(
            created.get("status").is_none(),
            "create drops status when it is a subresource"
        );
        let key = ObjKey {
            ty,
            ns: "ns".into(),
            name: "a".into(),
        };
        let labelled = st
            .patch_with(&key, Sub::Main, &ctx("t"), |o| {
                let mut o = o.clone();
                o["metadata"]["labels"] = json!({"l": "1"});
                Ok(o)
            })
            .unwrap();
        assert_eq!(labelled["metadata"]["generation"], json!(1));
        let status = st
            .update(
                &key,
                json!({"status": {"s": 2}, "spec": {"x": 9}}),
                Sub::Status,
                &ctx("t"),
            )
            .unwrap();
        assert_eq!(status["metadata"]["generation"], json!(1));
        assert_eq!(
            status["spec"]["x"],
            json!(1),
            "status writes change only .status"
        );
        let spec = st
            .update(&key, json!({"spec": {"x": 2}}), Sub::Main, &ctx("t"))
            .unwrap();
        assert_eq!(spec["metadata"]["generation"], json!(2));
        assert_eq!(spec["status"]["s"], json!(2), "main writes keep .status");
    }

    #[test]
    fn unchanged_write_is_a_no_op() {
        let mut st = State::new(Registry::builtin(), 100);
        let ty = fd(&st);
        let created = st
            .create(
                ty,
                "ns",
                json!({"metadata": {"name": "a"}, "spec": {"x": 1}}),
                &ctx("t"),
                None,
            )
            .unwrap();
        let key = ObjKey {
            ty,
            ns: "ns".into(),
            name: "a".into(),
        };
        let again = st
            .update(&key, (*created).clone(), Sub::Main, &ctx("t"))
            .unwrap();
        assert_eq!(
            again["metadata"]["resourceVersion"],
            created["metadata"]["resourceVersion"]
        );
        assert_eq!(st.tables[ty].events.len(), 1);
    }
}
