//! Pod templates: the user's templates merged (`spec.podTemplate` with the component's own, see
//! [`super::merge`]) and the pods we run built on top of them the way Flink's
//! `InitJobManagerDecorator`/`InitTaskManagerDecorator` treat a template: the user's pod is the
//! base and keeps its init containers, sidecars, volumes, tolerations, security context, labels
//! and annotations; the container named `flink-main-container` is the base of the main container,
//! which gets Flink's command, image, resources, ports, environment and mounts added without
//! dropping the user's.

use std::collections::BTreeMap;

use api::FlinkDeploymentSpec;
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, EnvVarSource, LocalObjectReference, ObjectFieldSelector, Pod,
    PodTemplateSpec, Toleration, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Value, json};

use super::ResourceError;
use super::labels::Component;
use super::merge::{ArrayMerge, merge};
use super::requirements::ProcessResources;

/// The name Flink gives the main container, and looks for in templates.
pub const MAIN_CONTAINER: &str = "flink-main-container";

/// The component's template: `spec.podTemplate` merged with the component's `podTemplate`, then
/// `resources` (or `resource.ephemeralStorage`) applied to the main container, as the Apache
/// operator's `FlinkConfigBuilder.applyPodTemplate` does. `None` when nothing templates the pod.
pub fn component_template(
    spec: &FlinkDeploymentSpec,
    component: Component,
    arrays: ArrayMerge,
) -> Option<Value> {
    let common = spec.pod_template.as_ref().map(|t| t.as_value().clone());
    let (own, resource, resources) = match component {
        Component::JobManager => {
            let jm = spec.job_manager.as_ref();
            (
                jm.and_then(|j| j.pod_template.as_ref()),
                jm.and_then(|j| j.resource.as_ref()),
                jm.and_then(|j| j.resources.as_ref()),
            )
        }
        Component::TaskManager => {
            let tm = spec.task_manager.as_ref();
            (
                tm.and_then(|t| t.pod_template.as_ref()),
                tm.and_then(|t| t.resource.as_ref()),
                tm.and_then(|t| t.resources.as_ref()),
            )
        }
    };
    let own = own.map(|t| t.as_value().clone());
    let mut template = match (common, own) {
        (Some(c), Some(o)) => Some(merge(&c, &o, arrays)),
        (c, o) => c.or(o),
    };
    match resources {
        // the Kubernetes form wins over the short form, as in Apache
        Some(r) => {
            let has_any = r.requests.as_ref().is_some_and(|m| !m.is_empty())
                || r.limits.as_ref().is_some_and(|m| !m.is_empty());
            if has_any {
                let main = main_container_mut(template.get_or_insert_with(|| json!({})));
                let resources = main
                    .as_object_mut()
                    .map(|m| m.entry("resources").or_insert_with(|| json!({})));
                if let Some(resources) = resources {
                    for (kind, map) in [("requests", &r.requests), ("limits", &r.limits)] {
                        for (name, q) in map.iter().flatten() {
                            resources[kind][name] = json!(q.0);
                        }
                    }
                }
            }
        }
        None => {
            if let Some(storage) = resource
                .and_then(|r| r.ephemeral_storage.as_deref())
                .filter(|s| !s.trim().is_empty())
            {
                let main = main_container_mut(template.get_or_insert_with(|| json!({})));
                for kind in ["requests", "limits"] {
                    main["resources"][kind]["ephemeral-storage"] = json!(storage);
                }
            }
        }
    }
    template
}

/// The main container of a template (JSON), added when missing.
fn main_container_mut(template: &mut Value) -> &mut Value {
    let containers = &mut template["spec"]["containers"];
    if !containers.is_array() {
        *containers = json!([]);
    }
    let index = match containers
        .as_array()
        .and_then(|list| list.iter().position(|c| c["name"] == MAIN_CONTAINER))
    {
        Some(i) => i,
        None => {
            if let Some(list) = containers.as_array_mut() {
                list.push(json!({"name": MAIN_CONTAINER}));
            }
            containers
                .as_array()
                .map_or(0, |l| l.len().saturating_sub(1))
        }
    };
    &mut containers[index]
}

/// Adds the Apache operator's JobManager startup probe (`GET /config` on the `rest` port every
/// second, never giving up) unless the main container already has one.
pub fn add_startup_probe(template: &mut Value) {
    let main = main_container_mut(template);
    if main.get("startupProbe").is_none_or(Value::is_null) {
        main["startupProbe"] = json!({
            "failureThreshold": i32::MAX,
            "periodSeconds": 1,
            "httpGet": {"path": "/config", "port": "rest"},
        });
    }
}

/// What we add to a pod and its main container.
#[derive(Clone, Debug, Default)]
pub struct PodParts {
    /// Labels (ours win over the template's).
    pub labels: BTreeMap<String, String>,
    /// Annotations (ours win over the template's).
    pub annotations: BTreeMap<String, String>,
    /// Service account; `None` keeps the template's.
    pub service_account: Option<String>,
    /// Image pull secrets added to the template's.
    pub image_pull_secrets: Vec<String>,
    /// Node selector entries added to the template's.
    pub node_selector: BTreeMap<String, String>,
    /// Tolerations added to the template's.
    pub tolerations: Vec<Toleration>,
    /// `hostNetwork: false` and a DNS policy, as Flink sets them on JobManager pods.
    pub pod_network: bool,
    /// Volumes appended to the template's.
    pub volumes: Vec<Volume>,
    /// The main container's image.
    pub image: String,
    /// The main container's pull policy.
    pub image_pull_policy: String,
    /// The main container's command (replaces the template's).
    pub command: Vec<String>,
    /// The main container's arguments (replace the template's).
    pub args: Vec<String>,
    /// Ports appended to the template's (skipped when the template has one of that name or
    /// number, which Kubernetes would refuse twice).
    pub ports: Vec<ContainerPort>,
    /// Environment appended to the template's.
    pub env: Vec<EnvVar>,
    /// Mounts appended to the template's.
    pub mounts: Vec<VolumeMount>,
}

/// The pod of a Deployment: `template` (the user's, possibly `None`) decorated with `parts`, the
/// main container sized by `size`. The main container goes last, as Flink places it.
pub fn decorate(
    template: Option<&Value>,
    parts: PodParts,
    size: &ProcessResources,
    name: &str,
) -> Result<PodTemplateSpec, ResourceError> {
    let pod: Pod = match template {
        Some(t) => serde_json::from_value(t.clone()).map_err(|e| ResourceError::Invalid {
            name: name.to_string(),
            field: "spec.podTemplate".into(),
            message: format!("the merged pod template is not a valid Pod: {e}"),
        })?,
        None => Pod::default(),
    };
    let mut meta = pod.metadata;
    let mut spec = pod.spec.unwrap_or_default();
    let mut containers = std::mem::take(&mut spec.containers);
    let main = match containers.iter().position(|c| c.name == MAIN_CONTAINER) {
        Some(i) => containers.remove(i),
        None => Container::default(),
    };

    // pod: overwritten fields
    if let Some(account) = parts.service_account {
        spec.service_account_name = Some(account.clone());
        spec.service_account = Some(account);
    }
    if parts.pod_network {
        spec.host_network = Some(false);
        spec.dns_policy.get_or_insert_with(|| "ClusterFirst".into());
    }
    // a Deployment only runs pods that restart (Flink ignores the template's policy too)
    spec.restart_policy = None;

    // pod: merged fields
    meta.labels
        .get_or_insert_with(BTreeMap::new)
        .extend(parts.labels);
    if !parts.annotations.is_empty() {
        meta.annotations
            .get_or_insert_with(BTreeMap::new)
            .extend(parts.annotations);
    }
    for secret in parts.image_pull_secrets {
        let list = spec.image_pull_secrets.get_or_insert_with(Vec::new);
        if !list.iter().any(|s| s.name == secret) {
            list.push(LocalObjectReference { name: secret });
        }
    }
    if !parts.node_selector.is_empty() {
        spec.node_selector
            .get_or_insert_with(BTreeMap::new)
            .extend(parts.node_selector);
    }
    if !parts.tolerations.is_empty() {
        spec.tolerations
            .get_or_insert_with(Vec::new)
            .extend(parts.tolerations);
    }
    if !parts.volumes.is_empty() {
        spec.volumes
            .get_or_insert_with(Vec::new)
            .extend(parts.volumes);
    }

    let main = main_container(
        main,
        parts.image,
        parts.image_pull_policy,
        parts.command,
        parts.args,
        parts.ports,
        parts.env,
        parts.mounts,
        size,
    );
    containers.push(main);
    spec.containers = containers;
    Ok(PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: meta.labels,
            annotations: meta.annotations,
            ..Default::default()
        }),
        spec: Some(spec),
    })
}

#[allow(clippy::too_many_arguments)]
fn main_container(
    mut c: Container,
    image: String,
    pull_policy: String,
    command: Vec<String>,
    args: Vec<String>,
    ports: Vec<ContainerPort>,
    env: Vec<EnvVar>,
    mounts: Vec<VolumeMount>,
    size: &ProcessResources,
) -> Container {
    c.name = MAIN_CONTAINER.into();
    c.image = Some(image);
    c.image_pull_policy = Some(pull_policy);
    c.command = Some(command);
    c.args = Some(args);
    c.resources = Some(size.requirements(c.resources.take()));
    for port in ports {
        let list = c.ports.get_or_insert_with(Vec::new);
        let taken = list.iter().any(|p| {
            p.container_port == port.container_port || (p.name.is_some() && p.name == port.name)
        });
        if !taken {
            list.push(port);
        }
    }
    if !env.is_empty() {
        c.env.get_or_insert_with(Vec::new).extend(env);
    }
    if !mounts.is_empty() {
        c.volume_mounts.get_or_insert_with(Vec::new).extend(mounts);
    }
    c
}

/// A named container port.
pub fn port(name: &str, number: u16) -> ContainerPort {
    ContainerPort {
        name: Some(name.into()),
        container_port: i32::from(number),
        ..Default::default()
    }
}

/// Flink's `_POD_IP_ADDRESS` variable: the pod's IP, which the JobManager binds to.
pub fn pod_ip_env() -> EnvVar {
    EnvVar {
        name: "_POD_IP_ADDRESS".into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                api_version: Some("v1".into()),
                field_path: "status.podIP".into(),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A plain environment variable.
pub fn env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..Default::default()
    }
}
