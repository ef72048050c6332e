//! What a controller remembers about each object between passes: its consecutive failures
//! (for the backoff) and the unreadable generations it has already reported.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Mutex;

use engine::ResourceKey;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::Resource;
use kube::core::error_boundary::InvalidObject;

use super::lock;

/// Per-object memory of one controller kind.
#[derive(Default)]
pub(super) struct PerObject {
    /// Consecutive failed passes per object.
    failures: Mutex<HashMap<ResourceKey, u32>>,
    /// Unreadable objects already reported, by uid and generation.
    reported: Mutex<HashSet<(String, i64)>>,
}

impl PerObject {
    /// Counts one more failed pass of `key`; returns how many failed in a row.
    pub(super) fn failed(&self, key: &ResourceKey) -> u32 {
        let mut all = lock(&self.failures);
        let n = all.entry(key.clone()).or_insert(0);
        *n = n.saturating_add(1);
        *n
    }

    /// A pass of `key` succeeded: its backoff starts over.
    pub(super) fn succeeded(&self, key: &ResourceKey) {
        lock(&self.failures).remove(key);
    }

    /// Reports an object that does not read as a `K` through `report` (given a reference to
    /// it), once per generation: a generation reported already is not reported again.
    pub(super) async fn report_unreadable_once<K, E, Fut>(
        &self,
        key: &ResourceKey,
        invalid: &InvalidObject,
        report: impl FnOnce(ObjectReference) -> Fut,
    ) -> Result<(), E>
    where
        K: Resource<DynamicType = ()>,
        Fut: Future<Output = Result<(), E>>,
    {
        let meta = &invalid.metadata;
        let seen = (
            meta.uid.clone().unwrap_or_default(),
            meta.generation.unwrap_or_default(),
        );
        if lock(&self.reported).contains(&seen) {
            return Ok(());
        }
        let kind = K::kind(&());
        tracing::warn!(resource = %key, error = %invalid.error, "{kind} cannot be read");
        let reference = ObjectReference {
            api_version: Some(K::api_version(&()).into_owned()),
            kind: Some(kind.into_owned()),
            name: meta.name.clone(),
            namespace: meta.namespace.clone(),
            uid: meta.uid.clone(),
            resource_version: meta.resource_version.clone(),
            ..Default::default()
        };
        report(reference).await?;
        lock(&self.reported).insert(seen);
        Ok(())
    }
}
