//! How the webhook finds the `FlinkDeployment` a `FlinkSessionJob` names.

use std::future::Future;

use api::FlinkDeployment;
use kube::runtime::reflector::{ObjectRef, Store};

/// Looking up a `FlinkDeployment` failed (the API server could not be asked, not "it does not
/// exist": that is `Ok(None)`).
#[derive(Debug, thiserror::Error)]
#[error("could not look up FlinkDeployment {namespace}/{name}: {source}")]
pub struct LookupError {
    /// Namespace looked in.
    pub namespace: String,
    /// Name looked for.
    pub name: String,
    /// The cause.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// Finds `FlinkDeployment`s by namespace and name, so the webhook can check a session job
/// against its cluster without knowing where deployments come from: the operator answers from
/// its watch cache ([`Store`]) or the API server, tests from a map.
pub trait DeploymentLookup: Send + Sync + 'static {
    /// The `FlinkDeployment` `namespace/name`, or `None` when there is none.
    fn get(
        &self,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<FlinkDeployment>, LookupError>> + Send;
}

/// The operator's watch cache of `FlinkDeployment`s. Before the cache has synced it answers
/// `None`, which makes the webhook skip the checks that need the cluster (with a warning), as for
/// a session job created before its cluster.
impl DeploymentLookup for Store<FlinkDeployment> {
    async fn get(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<FlinkDeployment>, LookupError> {
        let key = ObjectRef::new(name).within(namespace);
        Ok(Store::get(self, &key).map(|d| (*d).clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::watcher::Event;

    #[tokio::test]
    async fn a_reflector_store_finds_deployments_by_namespace_and_name() {
        let (store, mut writer) = kube::runtime::reflector::store::<FlinkDeployment>();
        let mut d = FlinkDeployment::test("session");
        d.metadata.namespace = Some("team-a".into());
        writer.apply_watcher_event(&Event::Apply(d.clone()));

        let found = DeploymentLookup::get(&store, "team-a", "session").await;
        assert_eq!(found.unwrap(), Some(d));
        let other_ns = DeploymentLookup::get(&store, "team-b", "session").await;
        assert_eq!(other_ns.unwrap(), None);
        let other_name = DeploymentLookup::get(&store, "team-a", "nope").await;
        assert_eq!(other_name.unwrap(), None);
    }
}
