//! The API calls behind [`super::K8sBackend`]: reading a cluster, applying and pruning its
//! children, deleting it, scaling it.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use api::FlinkDeployment;
use engine::{BackendError, ClusterObservation, ClusterPlan, ResourceKey};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, ListParams, ObjectMeta, Patch, PatchParams,
};
use kube::{Api, Client};
use serde_json::json;

use super::observe::{self, PLAN_HASH_ANNOTATION};
use super::{BackendSettings, Propagation};
use crate::leader::Fence;
use crate::resources::labels::{APP, COMPONENT, MANAGED_BY, MANAGED_BY_VALUE};
use crate::resources::{self, ChildId, ClusterNames};

/// Flink's label on its HA ConfigMaps (`configmap-type=high-availability`).
const HA_CONFIGMAP_SELECTOR: &str = "configmap-type=high-availability";

fn transient(key: &ResourceKey, what: &str, e: impl std::fmt::Display) -> BackendError {
    BackendError::Transient {
        key: key.clone(),
        message: format!("{what}: {e}"),
    }
}

/// An API error: a request the server refuses as malformed or invalid will be refused again
/// until the spec changes; anything else may pass.
fn api_error(key: &ResourceKey, what: &str, e: kube::Error) -> BackendError {
    match &e {
        kube::Error::Api(s) if matches!(s.code, 400 | 422) => BackendError::Invalid {
            key: key.clone(),
            message: format!("{what}: the API server refused it: {}", s.message),
        },
        _ => transient(key, what, e),
    }
}

fn fenced(fence: &Fence, key: &ResourceKey) -> Result<(), BackendError> {
    fence.check().map_err(|e| transient(key, "not writing", e))
}

/// The `(observation, REST port)` of the cluster of `key`.
pub(super) async fn observe(
    client: &Client,
    key: &ResourceKey,
) -> Result<(ClusterObservation, Option<u16>), BackendError> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &key.namespace);
    let jm = deployments
        .get_opt(&key.name)
        .await
        .map_err(|e| transient(key, "reading the JobManager Deployment", e))?;
    let Some(jm) = jm else {
        return Ok((ClusterObservation::Absent, None));
    };
    let pods: Api<Pod> = Api::namespaced(client.clone(), &key.namespace);
    let selector = format!("{APP}={},{COMPONENT} in (jobmanager,taskmanager)", key.name);
    let pods = pods
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| transient(key, "listing the cluster's pods", e))?
        .items;
    let standalone = jm
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(resources::labels::TYPE))
        .is_some_and(|t| t == resources::labels::TYPE_STANDALONE);
    let taskmanager = if standalone {
        deployments
            .get_opt(&format!("{}-taskmanager", key.name))
            .await
            .map_err(|e| transient(key, "reading the TaskManager Deployment", e))?
    } else {
        None
    };
    let observation = observe::cluster(Some(&jm), &pods, taskmanager.as_ref());
    Ok((observation, rest_port(&jm)))
}

/// The port of the main container's `rest` port.
fn rest_port(jm: &Deployment) -> Option<u16> {
    jm.spec
        .template
        .spec
        .as_ref()?
        .containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .find(|p| p.name.as_deref() == Some("rest"))
        .and_then(|p| u16::try_from(p.container_port).ok())
}

/// The children of the cluster of `plan`, the JobManager Deployment annotated with the plan
/// hash.
fn children(
    key: &ResourceKey,
    plan: &ClusterPlan,
    settings: &BackendSettings,
) -> Result<resources::Children, BackendError> {
    let owner = FlinkDeployment {
        metadata: ObjectMeta {
            name: Some(key.name.clone()),
            namespace: Some(key.namespace.clone()),
            uid: plan.owner_uid.clone(),
            ..Default::default()
        },
        spec: plan.spec.clone(),
        status: None,
    };
    resources::children(&owner, plan, &settings.resources).map_err(|e| BackendError::Invalid {
        key: key.clone(),
        message: e.to_string(),
    })
}

/// Applies every child of `plan`, then deletes our children it no longer has.
pub(super) async fn deploy(
    client: &Client,
    settings: &BackendSettings,
    fence: &Fence,
    key: &ResourceKey,
    plan: &ClusterPlan,
) -> Result<(), BackendError> {
    let children = children(key, plan, settings)?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &key.namespace);
    let existing = deployments
        .get_opt(&key.name)
        .await
        .map_err(|e| transient(key, "reading the JobManager Deployment", e))?;
    if let Some(jm) = &existing {
        if jm.metadata.deletion_timestamp.is_some() {
            return Err(transient(
                key,
                "deploying",
                "the previous JobManager Deployment is still being deleted; retried",
            ));
        }
        let running = observe::plan_hash(jm);
        if running.as_deref() != Some(plan.plan_hash.as_str()) {
            return Err(BackendError::Invalid {
                key: key.clone(),
                message: format!(
                    "a cluster of another plan ({}) runs; it must be deleted before plan {} is \
                     deployed",
                    running.as_deref().unwrap_or("unknown"),
                    plan.plan_hash
                ),
            });
        }
    }
    let params = PatchParams::apply(&settings.field_manager).force();
    for child in &children {
        let mut body = child.to_value();
        if child.kind() == "Deployment" && child.name() == key.name {
            body["metadata"]["annotations"][PLAN_HASH_ANNOTATION] = json!(plan.plan_hash);
        }
        let ChildId { resource, name } = child.id();
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), &key.namespace, &resource);
        fenced(fence, key)?;
        api.patch(&name, &params, &Patch::Apply(&body))
            .await
            .map_err(|e| api_error(key, &format!("applying {} {name}", child.kind()), e))?;
    }
    prune(client, settings, fence, key, &children).await
}

/// The API resources flinkpilot applies.
fn child_resources() -> [ApiResource; 4] {
    [
        ApiResource::erase::<ConfigMap>(&()),
        ApiResource::erase::<Deployment>(&()),
        ApiResource::erase::<Service>(&()),
        ApiResource::erase::<Ingress>(&()),
    ]
}

/// Deletes children labelled as ours that `children` does not contain.
async fn prune(
    client: &Client,
    settings: &BackendSettings,
    fence: &Fence,
    key: &ResourceKey,
    children: &resources::Children,
) -> Result<(), BackendError> {
    let wanted: HashSet<(String, String)> = children
        .iter()
        .map(|c| (c.kind().to_string(), c.name().to_string()))
        .collect();
    for resource in child_resources() {
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), &key.namespace, &resource);
        let found = api
            .list_metadata(&ListParams::default().labels(children.label_selector()))
            .await
            .map_err(|e| transient(key, &format!("listing {}s", resource.kind), e))?;
        for item in found.items {
            let name = item.metadata.name.unwrap_or_default();
            if wanted.contains(&(resource.kind.clone(), name.clone())) {
                continue;
            }
            tracing::info!(resource = %key, kind = %resource.kind, %name, "deleting a child the plan no longer has");
            fenced(fence, key)?;
            delete_one(&api, &name, settings.propagation)
                .await
                .map_err(|e| transient(key, &format!("deleting {} {name}", resource.kind), e))?;
        }
    }
    Ok(())
}

async fn delete_one(
    api: &Api<DynamicObject>,
    name: &str,
    propagation: Propagation,
) -> Result<(), kube::Error> {
    let params = match propagation {
        Propagation::Foreground => DeleteParams::foreground(),
        Propagation::Background => DeleteParams::background(),
    };
    match api.delete(name, &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.is_not_found() => Ok(()),
        Err(e) => Err(e),
    }
}

/// Deletes the cluster of `key` and waits until it is gone.
pub(super) async fn delete(
    client: &Client,
    settings: &BackendSettings,
    fence: &Fence,
    key: &ResourceKey,
) -> Result<(), BackendError> {
    let names =
        ClusterNames::new(&key.name, &key.namespace).map_err(|e| BackendError::Invalid {
            key: key.clone(),
            message: e.to_string(),
        })?;
    // Deployments first: the pods stop before their configuration goes.
    let ours = format!(
        "{APP}={},{MANAGED_BY}={MANAGED_BY_VALUE}",
        names.cluster_id()
    );
    let ha = format!("{APP}={},{HA_CONFIGMAP_SELECTOR}", names.cluster_id());
    let [config_maps, deployments, services, ingresses] = child_resources();
    let order = [
        (deployments, ours.clone()),
        (services, ours.clone()),
        (ingresses, ours.clone()),
        (config_maps.clone(), ours),
        // Flink's HA data outlives its JobManager by design; the engine has recorded where the
        // state is before it deletes a cluster, and a new cluster must start from exactly that,
        // not from the old job's HA pointers.
        (config_maps, ha),
    ];
    for (resource, selector) in order {
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), &key.namespace, &resource);
        let found = api
            .list_metadata(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| transient(key, &format!("listing {}s", resource.kind), e))?;
        for item in found.items {
            let name = item.metadata.name.unwrap_or_default();
            fenced(fence, key)?;
            delete_one(&api, &name, settings.propagation)
                .await
                .map_err(|e| transient(key, &format!("deleting {} {name}", resource.kind), e))?;
        }
    }
    wait_gone(client, settings, key).await
}

/// Waits until the JobManager Deployment and every pod of the cluster are gone.
async fn wait_gone(
    client: &Client,
    settings: &BackendSettings,
    key: &ResourceKey,
) -> Result<(), BackendError> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &key.namespace);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &key.namespace);
    let selector = format!("{APP}={},{COMPONENT} in (jobmanager,taskmanager)", key.name);
    let deadline = Instant::now() + settings.delete_timeout;
    let mut pause = Duration::from_millis(100);
    loop {
        let jm = deployments
            .get_metadata_opt(&key.name)
            .await
            .map_err(|e| transient(key, "reading the JobManager Deployment", e))?;
        let left = if jm.is_some() {
            1
        } else {
            pods.list_metadata(&ListParams::default().labels(&selector))
                .await
                .map_err(|e| transient(key, "listing the cluster's pods", e))?
                .items
                .len()
        };
        if left == 0 {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(transient(
                key,
                "deleting the cluster",
                format!(
                    "its JobManager Deployment or pods still exist after {:?}; checked again on \
                     the next pass",
                    settings.delete_timeout
                ),
            ));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(settings.delete_poll_max);
    }
}

/// Sets the replicas of the standalone TaskManager Deployment.
pub(super) async fn scale(
    client: &Client,
    settings: &BackendSettings,
    fence: &Fence,
    key: &ResourceKey,
    taskmanagers: u32,
) -> Result<(), BackendError> {
    let name = format!("{}-taskmanager", key.name);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &key.namespace);
    let patch = json!({"spec": {"replicas": taskmanagers}});
    fenced(fence, key)?;
    match deployments
        .patch(
            &name,
            &PatchParams {
                field_manager: Some(settings.field_manager.clone()),
                ..Default::default()
            },
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.is_not_found() => Err(BackendError::Invalid {
            key: key.clone(),
            message: format!(
                "there is no TaskManager Deployment {name} to scale (only standalone clusters \
                 have one)"
            ),
        }),
        Err(e) => Err(api_error(key, &format!("scaling {name}"), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_refusals_of_the_request_itself_are_invalid() {
        let key = ResourceKey::new("ns", "a");
        let status = |code: u16| {
            kube::Error::Api(
                kube::core::Status::failure("refused", "Invalid")
                    .with_code(code)
                    .boxed(),
            )
        };
        assert!(!api_error(&key, "x", status(422)).is_transient());
        assert!(!api_error(&key, "x", status(400)).is_transient());
        for code in [403, 404, 409, 429, 500, 503] {
            assert!(api_error(&key, "x", status(code)).is_transient(), "{code}");
        }
    }

    #[test]
    fn the_rest_port_is_read_from_the_main_containers_rest_port() {
        let d: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "a"},
            "spec": {"selector": {}, "template": {"spec": {"containers": [
                {"name": "flink-main-container", "ports": [
                    {"name": "jobmanager-rpc", "containerPort": 6123},
                    {"name": "rest", "containerPort": 8082}
                ]}
            ]}}}
        }))
        .unwrap();
        assert_eq!(rest_port(&d), Some(8082));
    }

    #[test]
    fn every_kind_of_child_is_listed_when_pruning_and_deleting() {
        let settings = BackendSettings::default();
        let key = ResourceKey::new("default", "basic-ingress");
        for mode in [api::DeploymentMode::Native, api::DeploymentMode::Standalone] {
            let mut d = api::FlinkDeployment::test("basic-ingress")
                .application()
                .with_mode(mode);
            d.spec.ingress =
                Some(serde_json::from_value(json!({"template": "{{name}}.example"})).unwrap());
            let plan = crate::resources::testing::plan_for(&d);
            for child in &children(&key, &plan, &settings).unwrap() {
                assert!(
                    child_resources().iter().any(|r| r.kind == child.kind()),
                    "{mode:?}: {} is never pruned",
                    child.kind()
                );
            }
        }
    }
}
