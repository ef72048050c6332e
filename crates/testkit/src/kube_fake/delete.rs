//! Deletion: preconditions, finalizers and `deletionTimestamp`, owner-reference garbage
//! collection (background, foreground, orphan), namespaces and CRDs.
//!
//! Garbage collection runs synchronously inside the deleting request (the real collector is an
//! asynchronous controller): when an owner is removed, each dependent whose owners are all gone
//! is deleted at once (with its own finalizers honoured), and references to the removed owner
//! are dropped from dependents that still have a live owner. The same happens to an object
//! created (or re-owned) with owner references to objects that do not exist.

use std::sync::Arc;

use serde_json::{Value, json};

use super::error::ApiError;
use super::meta::{finalizers, is_deleting, meta_mut, meta_str, owner_uids};
use super::registry::types_from_crd;
use super::store::{EventType, Obj, ObjKey, State};
use super::write::{Ownership, Sub, WriteCtx};

/// `propagationPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    Background,
    Foreground,
    Orphan,
}

/// `DeleteOptions` the fake honours.
#[derive(Debug, Clone, Default)]
pub struct DeleteOpts {
    pub propagation: Option<Propagation>,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
    pub dry_run: bool,
}

impl DeleteOpts {
    /// Parses a `DeleteOptions` body (empty body = defaults).
    pub fn from_body(body: &Value) -> Result<Self, ApiError> {
        let propagation = match body["propagationPolicy"].as_str() {
            None => None,
            Some("Background") => Some(Propagation::Background),
            Some("Foreground") => Some(Propagation::Foreground),
            Some("Orphan") => Some(Propagation::Orphan),
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "propagationPolicy: Unsupported value: {other:?}: supported values: \"Background\", \"Foreground\", \"Orphan\""
                )));
            }
        };
        let dry_run = body["dryRun"]
            .as_array()
            .is_some_and(|a| a.iter().any(|v| v.as_str() == Some("All")));
        Ok(Self {
            propagation,
            uid: body["preconditions"]["uid"].as_str().map(str::to_string),
            resource_version: body["preconditions"]["resourceVersion"]
                .as_str()
                .map(str::to_string),
            dry_run,
        })
    }
}

/// What a delete did.
#[derive(Debug, Clone)]
pub enum Deleted {
    /// The object is gone (answered with a `Status` Success).
    Gone(Obj),
    /// Deletion started and waits for finalizers (answered with the object, 202).
    Pending(Obj),
}

const FOREGROUND: &str = "foregroundDeletion";
const GC_MANAGER: &str = "generic-garbage-collector";

impl State {
    fn gc_ctx(now: &str) -> WriteCtx {
        WriteCtx {
            manager: GC_MANAGER.to_string(),
            dry_run: false,
            now: now.to_string(),
        }
    }

    /// DELETE of one object.
    pub fn delete(
        &mut self,
        key: &ObjKey,
        opts: &DeleteOpts,
        now: &str,
    ) -> Result<Deleted, ApiError> {
        let rt = self.rt(key.ty);
        let old = self.get(key)?;
        if let Some(uid) = &opts.uid
            && meta_str(&old, "uid") != Some(uid.as_str())
        {
            let actual = meta_str(&old, "uid").unwrap_or_default();
            return Err(ApiError::precondition_failed(
                &rt,
                &key.name,
                &format!("UID in precondition: {uid}, UID in object meta: {actual}"),
            ));
        }
        if let Some(rv) = &opts.resource_version
            && meta_str(&old, "resourceVersion") != Some(rv.as_str())
        {
            let actual = meta_str(&old, "resourceVersion").unwrap_or_default();
            return Err(ApiError::precondition_failed(
                &rt,
                &key.name,
                &format!(
                    "ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {actual}"
                ),
            ));
        }
        let policy = opts.propagation.unwrap_or(Propagation::Background);
        if opts.dry_run {
            return Ok(
                if finalizers(&old).is_empty() && policy != Propagation::Foreground {
                    Deleted::Gone(old)
                } else {
                    Deleted::Pending(old)
                },
            );
        }
        if is_deleting(&old) {
            return Ok(Deleted::Pending(old));
        }
        if rt.group.is_empty() && rt.plural == "namespaces" {
            return Ok(self.delete_namespace(key, &old, now));
        }
        let uid = meta_str(&old, "uid").unwrap_or_default().to_string();
        match policy {
            Propagation::Orphan => self.orphan_dependents(&uid, now),
            Propagation::Foreground => {
                let marked = self.mark_deleting(key, &old, Some(FOREGROUND), now);
                let deps: Vec<ObjKey> = self
                    .dependents
                    .get(&uid)
                    .map(|d| d.iter().cloned().collect())
                    .unwrap_or_default();
                let cascade = DeleteOpts {
                    propagation: Some(Propagation::Foreground),
                    ..DeleteOpts::default()
                };
                for dep in deps {
                    // a dependent may already be gone through another owner: that is fine
                    let _ = self.delete(&dep, &cascade, now);
                }
                self.finish_foreground(&uid, now);
                return Ok(Deleted::Pending(marked));
            }
            Propagation::Background => {}
        }
        if !finalizers(&old).is_empty() {
            return Ok(Deleted::Pending(self.mark_deleting(key, &old, None, now)));
        }
        let mut last = (*old).clone();
        let rv = self.next_rv();
        meta_mut(&mut last).insert("resourceVersion".into(), json!(rv.to_string()));
        let last = Arc::new(last);
        self.finish_removal(key, Arc::clone(&last));
        Ok(Deleted::Gone(last))
    }

    /// Sets `deletionTimestamp` (and optionally a finalizer) and records MODIFIED.
    fn mark_deleting(
        &mut self,
        key: &ObjKey,
        old: &Obj,
        add_finalizer: Option<&str>,
        now: &str,
    ) -> Obj {
        let mut new = (**old).clone();
        let generation = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
        let rv = self.next_rv();
        let meta = meta_mut(&mut new);
        meta.insert("deletionTimestamp".into(), json!(now));
        meta.insert("deletionGracePeriodSeconds".into(), json!(0));
        meta.insert("generation".into(), json!(generation));
        meta.insert("resourceVersion".into(), json!(rv.to_string()));
        if let Some(f) = add_finalizer {
            let list = meta.entry("finalizers").or_insert_with(|| json!([]));
            if let Some(items) = list.as_array_mut()
                && !items.iter().any(|i| i.as_str() == Some(f))
            {
                items.push(json!(f));
            }
        }
        let new = Arc::new(new);
        self.put(
            key,
            Arc::clone(&new),
            EventType::Modified,
            Some(Arc::clone(old)),
        );
        new
    }

    /// Removes an object whose deletion is complete, then runs what depends on it: garbage
    /// collection of its dependents, foreground owners waiting for it, a terminating namespace,
    /// and the instances of a deleted CRD.
    pub fn finish_removal(&mut self, key: &ObjKey, last: Obj) {
        self.take_out(key, Arc::clone(&last));
        let now = super::meta::now_timestamp();
        let rt = self.rt(key.ty);
        if let Some(uid) = meta_str(&last, "uid").map(str::to_string)
            && let Some(deps) = self.dependents.remove(&uid)
        {
            for dep in deps {
                self.collect_dependent(&dep, &now);
            }
        }
        for (owner, _) in owner_uids(&last) {
            self.finish_foreground(&owner, &now);
        }
        if rt.namespaced {
            self.maybe_finish_namespace(&key.ns, &now);
        }
        if rt.group == "apiextensions.k8s.io" && rt.plural == "customresourcedefinitions" {
            self.drop_crd_types(&last);
        }
    }

    /// A new or re-owned object whose owners are absent is collected at once, as the real
    /// garbage collector would shortly after (e.g. a child re-applied by a reconcile that raced
    /// its owner's deletion).
    pub fn collect_if_orphaned(&mut self, key: &ObjKey, now: &str) {
        let Some(obj) = self.lookup(key) else { return };
        let owners = owner_uids(&obj);
        if owners.is_empty() || owners.iter().all(|(uid, _)| self.uids.contains_key(uid)) {
            return;
        }
        self.collect_dependent(key, now);
    }

    /// Background GC of one dependent of a removed owner.
    fn collect_dependent(&mut self, dep: &ObjKey, now: &str) {
        let Some(obj) = self.lookup(dep) else {
            return;
        };
        let owners = owner_uids(&obj);
        let alive = owners.iter().any(|(uid, _)| self.uids.contains_key(uid));
        if !alive {
            // already deleting (or gone meanwhile): nothing more to do
            let _ = self.delete(dep, &DeleteOpts::default(), now);
            return;
        }
        let mut candidate = (*obj).clone();
        if let Some(refs) = candidate["metadata"]["ownerReferences"].as_array_mut() {
            let uids = &self.uids;
            refs.retain(|r| r["uid"].as_str().is_some_and(|u| uids.contains_key(u)));
        }
        let _ = self.commit(
            dep,
            obj,
            candidate,
            Sub::Main,
            Ownership::Update,
            &Self::gc_ctx(now),
        );
    }

    /// Orphan propagation: removes the owner's uid from its dependents' references.
    fn orphan_dependents(&mut self, owner_uid: &str, now: &str) {
        let deps: Vec<ObjKey> = self
            .dependents
            .get(owner_uid)
            .map(|d| d.iter().cloned().collect())
            .unwrap_or_default();
        for dep in deps {
            let Some(obj) = self.lookup(&dep) else {
                continue;
            };
            let mut candidate = (*obj).clone();
            if let Some(refs) = candidate["metadata"]["ownerReferences"].as_array_mut() {
                refs.retain(|r| r["uid"].as_str() != Some(owner_uid));
                if refs.is_empty()
                    && let Some(meta) = candidate["metadata"].as_object_mut()
                {
                    meta.remove("ownerReferences");
                }
            }
            let _ = self.commit(
                &dep,
                obj,
                candidate,
                Sub::Main,
                Ownership::Update,
                &Self::gc_ctx(now),
            );
        }
    }

    /// Drops the `foregroundDeletion` finalizer of a deleting owner once no dependent with
    /// `blockOwnerDeletion: true` is left.
    fn finish_foreground(&mut self, owner_uid: &str, now: &str) {
        let Some(key) = self.uids.get(owner_uid).cloned() else {
            return;
        };
        let Some(obj) = self.lookup(&key) else { return };
        if !is_deleting(&obj) || !finalizers(&obj).iter().any(|f| f == FOREGROUND) {
            return;
        }
        let blocked = self.dependents.get(owner_uid).is_some_and(|deps| {
            deps.iter().any(|d| {
                self.lookup(d).is_some_and(|o| {
                    owner_uids(&o)
                        .iter()
                        .any(|(u, block)| u == owner_uid && *block)
                })
            })
        });
        if blocked {
            return;
        }
        let mut candidate = (*obj).clone();
        if let Some(items) = candidate["metadata"]["finalizers"].as_array_mut() {
            items.retain(|f| f.as_str() != Some(FOREGROUND));
        }
        let _ = self.commit(
            &key,
            obj,
            candidate,
            Sub::Main,
            Ownership::Update,
            &Self::gc_ctx(now),
        );
    }

    /// Namespace deletion: the namespace turns `Terminating`, everything in it is deleted, and
    /// the namespace goes once it is empty.
    fn delete_namespace(&mut self, key: &ObjKey, old: &Obj, now: &str) -> Deleted {
        let mut new = (**old).clone();
        new["status"] = json!({"phase": "Terminating"});
        let rv = self.next_rv();
        let meta = meta_mut(&mut new);
        meta.insert("deletionTimestamp".into(), json!(now));
        meta.insert("deletionGracePeriodSeconds".into(), json!(0));
        meta.insert("resourceVersion".into(), json!(rv.to_string()));
        let marked = Arc::new(new);
        self.put(
            key,
            Arc::clone(&marked),
            EventType::Modified,
            Some(Arc::clone(old)),
        );
        for dep in self.keys_in_namespace(&key.name) {
            let _ = self.delete(&dep, &DeleteOpts::default(), now);
        }
        self.maybe_finish_namespace(&key.name, now);
        Deleted::Pending(marked)
    }

    fn maybe_finish_namespace(&mut self, ns: &str, _now: &str) {
        let Some(ns_ty) = self.find("", "v1", "namespaces") else {
            return;
        };
        let key = ObjKey {
            ty: ns_ty,
            ns: String::new(),
            name: ns.to_string(),
        };
        let Some(obj) = self.lookup(&key) else { return };
        if !is_deleting(&obj) || self.namespace_has_objects(ns) {
            return;
        }
        let mut last = (*obj).clone();
        let rv = self.next_rv();
        meta_mut(&mut last).insert("resourceVersion".into(), json!(rv.to_string()));
        self.finish_removal(&key, Arc::new(last));
    }

    /// A removed CRD takes its instances and its resource types with it.
    fn drop_crd_types(&mut self, crd: &Value) {
        for t in types_from_crd(crd) {
            let Some(ty) = self.find(&t.group, &t.version, &t.plural) else {
                continue;
            };
            let keys: Vec<ObjKey> = self.tables[ty]
                .objects
                .keys()
                .map(|(ns, name)| ObjKey {
                    ty,
                    ns: ns.clone(),
                    name: name.clone(),
                })
                .collect();
            for key in keys {
                if let Some(obj) = self.lookup(&key) {
                    let mut last = (*obj).clone();
                    let rv = self.next_rv();
                    meta_mut(&mut last).insert("resourceVersion".into(), json!(rv.to_string()));
                    self.finish_removal(&key, Arc::new(last));
                }
            }
            self.registry.unserve(&t.group, &t.version, &t.plural);
            if let Some(def) = self.registry.get(ty).cloned() {
                self.types[ty] = Arc::new(def);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube_fake::registry::Registry;

    fn ctx() -> WriteCtx {
        WriteCtx {
            manager: "t".into(),
            dry_run: false,
            now: "2025-01-01T00:00:00Z".into(),
        }
    }

    fn cm(st: &mut State, name: &str, owner: Option<&Obj>, block: bool) -> (ObjKey, Obj) {
        let ty = st.find("", "v1", "configmaps").unwrap();
        let mut obj = json!({"metadata": {"name": name}});
        if let Some(o) = owner {
            obj["metadata"]["ownerReferences"] = json!([{"apiVersion": "v1", "kind": "ConfigMap",
                "name": o["metadata"]["name"], "uid": o["metadata"]["uid"], "blockOwnerDeletion": block}]);
        }
        let created = st.create(ty, "ns", obj, &ctx(), None).unwrap();
        (
            ObjKey {
                ty,
                ns: "ns".into(),
                name: name.into(),
            },
            created,
        )
    }

    #[test]
    fn background_delete_collects_dependents_recursively() {
        let mut st = State::new(Registry::builtin(), 100);
        let (owner_key, owner) = cm(&mut st, "owner", None, false);
        let (child_key, child) = cm(&mut st, "child", Some(&owner), false);
        let (grandchild_key, _) = cm(&mut st, "grandchild", Some(&child), false);
        let res = st
            .delete(&owner_key, &DeleteOpts::default(), "now")
            .unwrap();
        assert!(matches!(res, Deleted::Gone(_)));
        assert!(st.lookup(&child_key).is_none());
        assert!(st.lookup(&grandchild_key).is_none());
    }

    #[test]
    fn foreground_delete_waits_for_blocking_dependents_with_finalizers() {
        let mut st = State::new(Registry::builtin(), 100);
        let (owner_key, owner) = cm(&mut st, "owner", None, false);
        let (child_key, child) = cm(&mut st, "child", Some(&owner), true);
        let mut with_fin = (*child).clone();
        with_fin["metadata"]["finalizers"] = json!(["x/hold"]);
        st.update(&child_key, with_fin, Sub::Main, &ctx()).unwrap();
        let opts = DeleteOpts {
            propagation: Some(Propagation::Foreground),
            ..Default::default()
        };
        assert!(matches!(
            st.delete(&owner_key, &opts, "now").unwrap(),
            Deleted::Pending(_)
        ));
        assert!(
            st.lookup(&owner_key).is_some(),
            "owner waits for its blocking dependent"
        );
        let child = st.lookup(&child_key).unwrap();
        assert!(is_deleting(&child));
        let mut released = (*child).clone();
        released["metadata"]["finalizers"] = json!([]);
        st.update(&child_key, released, Sub::Main, &ctx()).unwrap();
        assert!(st.lookup(&child_key).is_none());
        assert!(
            st.lookup(&owner_key).is_none(),
            "owner goes once the dependent is gone"
        );
    }

    #[test]
    fn orphan_delete_keeps_dependents_and_drops_the_reference() {
        let mut st = State::new(Registry::builtin(), 100);
        let (owner_key, owner) = cm(&mut st, "owner", None, false);
        let (child_key, _) = cm(&mut st, "child", Some(&owner), false);
        let opts = DeleteOpts {
            propagation: Some(Propagation::Orphan),
            ..Default::default()
        };
        st.delete(&owner_key, &opts, "now").unwrap();
        let child = st.lookup(&child_key).unwrap();
        assert!(child["metadata"].get("ownerReferences").is_none());
    }
}
