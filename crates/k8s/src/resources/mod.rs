//! The Kubernetes objects of one `FlinkDeployment`: pure functions from the resource and the
//! engine's [`ClusterPlan`] to the complete list of children to apply. No I/O.
//!
//! - [`native`]: what Flink's own native Kubernetes deployer creates — the JobManager
//!   Deployment running `kubernetes-jobmanager.sh`, the config ConfigMap, the TaskManager pod
//!   template ConfigMap, the internal and REST Services; Flink's JobManager then starts the
//!   TaskManager pods itself through the Kubernetes API.
//! - [`standalone`]: JobManager and TaskManager Deployments running the image's `standalone-job`
//!   / `jobmanager` / `taskmanager` entrypoints, as the Apache operator's standalone mode does;
//!   Flink gets no Kubernetes API access.
//!
//! Every child carries the owner reference to the `FlinkDeployment` and the labels
//! `app=<name>`, `type=…`, `app.kubernetes.io/managed-by=flinkpilot`; [`Children`] names each by
//! `(ApiResource, name)` so an apply loop can server-side-apply them and delete the ones a new
//! plan no longer contains.

mod config;
mod config_map;
mod ingress;
mod jobmanager;
pub mod labels;
mod merge;
mod names;
mod options;
mod pod_template;
mod requirements;
mod services;
mod taskmanager;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;

use std::collections::BTreeMap;

use api::{DeploymentMode, FlinkDeployment};
use engine::ClusterPlan;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    ConfigMap, EnvVar, EnvVarSource, SecretKeySelector, SecretVolumeSource, Service, Toleration,
    Volume, VolumeMount,
};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube_core::{ApiResource, Resource};
use serde_json::Value;

pub use config::{ClusterConfig, Ports, REST_PORT};
pub use config_map::config_file_name;
pub use labels::{ClusterType, Component};
pub use merge::ArrayMerge;
pub use names::ClusterNames;
pub use options::{join_escaped, split_escaped};

use config::{ConfigInputs, image_key};
use options::Options;
use requirements::ProcessResources;

/// Operator-wide settings of the generated objects (the defaults a user's `flinkConfiguration`
/// can override per resource).
#[derive(Clone, Debug, PartialEq)]
pub struct ResourceSettings {
    /// Log configuration files used when a resource has no `logConfiguration`.
    pub default_log_configuration: BTreeMap<String, String>,
    /// Default of `kubernetes.operator.pod-template.merge-arrays-by-name` (Apache: `false`).
    pub merge_arrays_by_name: bool,
    /// Default of `kubernetes.operator.jm-startup-probe.enabled` (Apache: `true`).
    pub jobmanager_startup_probe: bool,
    /// Image when neither the spec, the configuration nor a template names one; `None` means
    /// the official `flink:<major>.<minor>` image of the resource's Flink version.
    pub default_image: Option<String>,
}

impl Default for ResourceSettings {
    fn default() -> Self {
        Self {
            default_log_configuration: BTreeMap::from([(
                "log4j-console.properties".to_string(),
                include_str!("default-log4j-console.properties").to_string(),
            )]),
            merge_arrays_by_name: false,
            jobmanager_startup_probe: true,
            default_image: None,
        }
    }
}

/// A spec (or plan) the objects cannot be built from. The message names the resource and the
/// field, and never shows a configuration value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResourceError {
    /// A field holds something no valid object can be made from.
    #[error("FlinkDeployment {name}: {field}: {message}")]
    Invalid {
        /// The resource's name.
        name: String,
        /// The field, e.g. `spec.ingress.template`.
        field: String,
        /// What is wrong and what to do.
        message: String,
    },
}

/// One object to apply.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Child {
    /// `v1` ConfigMap.
    ConfigMap(ConfigMap),
    /// `apps/v1` Deployment.
    Deployment(Deployment),
    /// `v1` Service.
    Service(Service),
    /// `networking.k8s.io/v1` Ingress.
    Ingress(Ingress),
}

/// Which object a child is: its API resource (group, version, kind, plural) and name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildId {
    /// The API resource, for a dynamic client or a server-side-apply request.
    pub resource: ApiResource,
    /// `metadata.name`.
    pub name: String,
}

impl Child {
    /// The object's metadata.
    pub fn meta(&self) -> &ObjectMeta {
        match self {
            Self::ConfigMap(o) => &o.metadata,
            Self::Deployment(o) => &o.metadata,
            Self::Service(o) => &o.metadata,
            Self::Ingress(o) => &o.metadata,
        }
    }

    /// `metadata.name`.
    pub fn name(&self) -> &str {
        self.meta().name.as_deref().unwrap_or_default()
    }

    /// The kind, e.g. `Deployment`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::ConfigMap(_) => "ConfigMap",
            Self::Deployment(_) => "Deployment",
            Self::Service(_) => "Service",
            Self::Ingress(_) => "Ingress",
        }
    }

    /// API resource and name.
    pub fn id(&self) -> ChildId {
        let resource = match self {
            Self::ConfigMap(_) => ApiResource::erase::<ConfigMap>(&()),
            Self::Deployment(_) => ApiResource::erase::<Deployment>(&()),
            Self::Service(_) => ApiResource::erase::<Service>(&()),
            Self::Ingress(_) => ApiResource::erase::<Ingress>(&()),
        };
        ChildId {
            resource,
            name: self.name().to_string(),
        }
    }

    /// The object as JSON, with `apiVersion` and `kind`: the body of a server-side apply.
    pub fn to_value(&self) -> Value {
        let value = match self {
            Self::ConfigMap(o) => serde_json::to_value(o),
            Self::Deployment(o) => serde_json::to_value(o),
            Self::Service(o) => serde_json::to_value(o),
            Self::Ingress(o) => serde_json::to_value(o),
        };
        // k8s-openapi objects are plain data and always serialize
        value.unwrap_or(Value::Null)
    }

    fn order(&self) -> u8 {
        match self {
            Self::ConfigMap(_) => 0,
            Self::Deployment(_) => 1,
            Self::Service(_) => 2,
            Self::Ingress(_) => 3,
        }
    }
}

/// Every object of one cluster, in a stable order (ConfigMaps, Deployments, Services, Ingress;
/// by name within a kind).
#[derive(Clone, Debug, PartialEq)]
pub struct Children {
    items: Vec<Child>,
    selector: String,
}

impl Children {
    fn new(mut items: Vec<Child>, selector: String) -> Self {
        items.sort_by(|a, b| (a.order(), a.name()).cmp(&(b.order(), b.name())));
        Self { items, selector }
    }

    /// The objects.
    pub fn iter(&self) -> impl Iterator<Item = &Child> {
        self.items.iter()
    }

    /// The number of objects.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there are none (never, for a valid plan).
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The identities of the objects: anything labelled [`Children::label_selector`] that is not
    /// among them is left over from an earlier plan.
    pub fn ids(&self) -> Vec<ChildId> {
        self.items.iter().map(Child::id).collect()
    }

    /// The label selector matching every object flinkpilot applied for this cluster (and
    /// nothing Flink created itself).
    pub fn label_selector(&self) -> &str {
        &self.selector
    }

    /// The object of `kind` named `name`.
    pub fn get(&self, kind: &str, name: &str) -> Option<&Child> {
        self.items
            .iter()
            .find(|c| c.kind() == kind && c.name() == name)
    }

    /// The Deployment named `name`.
    pub fn deployment(&self, name: &str) -> Option<&Deployment> {
        match self.get("Deployment", name) {
            Some(Child::Deployment(d)) => Some(d),
            _ => None,
        }
    }

    /// The Service named `name`.
    pub fn service(&self, name: &str) -> Option<&Service> {
        match self.get("Service", name) {
            Some(Child::Service(s)) => Some(s),
            _ => None,
        }
    }

    /// The ConfigMap named `name`.
    pub fn config_map(&self, name: &str) -> Option<&ConfigMap> {
        match self.get("ConfigMap", name) {
            Some(Child::ConfigMap(c)) => Some(c),
            _ => None,
        }
    }

    /// The Ingress, if any.
    pub fn ingress(&self) -> Option<&Ingress> {
        self.items.iter().find_map(|c| match c {
            Child::Ingress(i) => Some(i),
            _ => None,
        })
    }
}

impl<'a> IntoIterator for &'a Children {
    type Item = &'a Child;
    type IntoIter = std::slice::Iter<'a, Child>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.iter()
    }
}

/// The children of `deployment` in the mode its target spec (`plan.spec.mode`) asks for.
pub fn children(
    deployment: &FlinkDeployment,
    plan: &ClusterPlan,
    settings: &ResourceSettings,
) -> Result<Children, ResourceError> {
    match plan.spec.mode() {
        DeploymentMode::Native => native(deployment, plan, settings),
        DeploymentMode::Standalone => standalone(deployment, plan, settings),
    }
}

/// The children of a native-mode cluster.
pub fn native(
    deployment: &FlinkDeployment,
    plan: &ClusterPlan,
    settings: &ResourceSettings,
) -> Result<Children, ResourceError> {
    let c = Cluster::new(deployment, plan, settings, ClusterType::Native)?;
    let mut items = vec![
        Child::ConfigMap(c.config_map()?),
        Child::Deployment(jobmanager::deployment(&c)?),
        Child::Service(services::rest(&c)?),
    ];
    if let Some(cm) = taskmanager::pod_template_config_map(&c)? {
        items.push(Child::ConfigMap(cm));
    }
    items.extend(services::internal(&c).map(Child::Service));
    items.extend(ingress::ingress(&c)?.map(Child::Ingress));
    Ok(Children::new(
        items,
        labels::managed_selector(c.names.cluster_id(), c.kind),
    ))
}

/// The children of a standalone cluster.
pub fn standalone(
    deployment: &FlinkDeployment,
    plan: &ClusterPlan,
    settings: &ResourceSettings,
) -> Result<Children, ResourceError> {
    let c = Cluster::new(deployment, plan, settings, ClusterType::Standalone)?;
    let mut items = vec![
        Child::ConfigMap(c.config_map()?),
        Child::Deployment(jobmanager::deployment(&c)?),
        Child::Deployment(taskmanager::deployment(&c)?),
        Child::Service(services::rest(&c)?),
    ];
    items.extend(services::internal(&c).map(Child::Service));
    items.extend(ingress::ingress(&c)?.map(Child::Ingress));
    Ok(Children::new(
        items,
        labels::managed_selector(c.names.cluster_id(), c.kind),
    ))
}

/// Everything the builders of one cluster's objects share, decided once.
pub(crate) struct Cluster<'a> {
    names: ClusterNames,
    kind: ClusterType,
    plan: &'a ClusterPlan,
    settings: &'a ResourceSettings,
    owner: OwnerReference,
    cfg: ClusterConfig,
    jobmanager: ProcessResources,
    taskmanager: ProcessResources,
    log_files: BTreeMap<String, String>,
    /// Native mode: the TaskManager pod template the JobManager creates pods from.
    taskmanager_template: Option<Value>,
}

impl<'a> Cluster<'a> {
    fn new(
        deployment: &'a FlinkDeployment,
        plan: &'a ClusterPlan,
        settings: &'a ResourceSettings,
        kind: ClusterType,
    ) -> Result<Self, ResourceError> {
        let name = deployment
            .metadata
            .name
            .as_deref()
            .unwrap_or(&plan.key.name);
        let namespace = deployment
            .metadata
            .namespace
            .as_deref()
            .unwrap_or(&plan.key.namespace);
        let names = ClusterNames::new(name, namespace)?;
        let uid = plan
            .owner_uid
            .clone()
            .or_else(|| deployment.metadata.uid.clone())
            .ok_or_else(|| ResourceError::Invalid {
                name: name.to_string(),
                field: "metadata.uid".into(),
                message: "children need the resource's uid for their owner reference; read the \
                          resource from the API server before building its objects"
                    .into(),
            })?;
        let owner = OwnerReference {
            api_version: FlinkDeployment::api_version(&()).into_owned(),
            kind: FlinkDeployment::kind(&()).into_owned(),
            name: names.cluster_id().to_string(),
            uid,
            controller: Some(true),
            block_owner_deletion: Some(true),
        };
        let jobmanager =
            ProcessResources::decide(Component::JobManager, &plan.spec, plan, &plan.config, name)?;
        let taskmanager =
            ProcessResources::decide(Component::TaskManager, &plan.spec, plan, &plan.config, name)?;
        let owner_reference = format!(
            "apiVersion:{},kind:{},name:{},uid:{},controller:true,blockOwnerDeletion:true",
            owner.api_version, owner.kind, owner.name, owner.uid
        );
        let cfg = ClusterConfig::build(&ConfigInputs {
            names: &names,
            kind,
            plan,
            jobmanager: &jobmanager,
            taskmanager: &taskmanager,
            owner_reference,
        })?;
        let log_files = if plan.log_configuration.is_empty() {
            settings.default_log_configuration.clone()
        } else {
            plan.log_configuration.clone()
        };
        let mut cluster = Self {
            names,
            kind,
            plan,
            settings,
            owner,
            cfg,
            jobmanager,
            taskmanager,
            log_files,
            taskmanager_template: None,
        };
        if kind == ClusterType::Native {
            cluster.taskmanager_template = pod_template::component_template(
                &plan.spec,
                Component::TaskManager,
                cluster.array_merge(),
            );
        }
        Ok(cluster)
    }

    fn options(&self) -> Options<'_> {
        Options(&self.cfg.config)
    }

    /// Metadata of an object named `name`: namespace, owner, labels (`extra` under ours).
    fn meta(&self, name: String, extra: &BTreeMap<String, String>) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.names.namespace().to_string()),
            labels: Some(labels::object(self.names.cluster_id(), self.kind, extra)),
            owner_references: Some(vec![self.owner.clone()]),
            ..Default::default()
        }
    }

    fn array_merge(&self) -> ArrayMerge {
        let by_name = self
            .options()
            .bool("kubernetes.operator.pod-template.merge-arrays-by-name")
            .unwrap_or(self.settings.merge_arrays_by_name);
        if by_name {
            ArrayMerge::ByName
        } else {
            ArrayMerge::ByPosition
        }
    }

    fn startup_probe(&self) -> bool {
        self.options()
            .bool("kubernetes.operator.jm-startup-probe.enabled")
            .unwrap_or(self.settings.jobmanager_startup_probe)
    }

    /// `kubernetes.entry.path`, by default the image's `/docker-entrypoint.sh`.
    fn entrypoint(&self) -> String {
        self.options()
            .string("kubernetes.entry.path")
            .unwrap_or("/docker-entrypoint.sh")
            .to_string()
    }

    /// The configured image, else the template's, else the default (Flink's resolution order).
    fn image(&self, template: Option<&Value>) -> String {
        let version = self.plan.flink_version;
        self.options()
            .string(image_key(version))
            .map(str::to_string)
            .or_else(|| main_container_field(template, "image"))
            .or_else(|| self.settings.default_image.clone())
            .unwrap_or_else(|| {
                let (major, minor) = version.major_minor();
                format!("flink:{major}.{minor}")
            })
    }

    fn image_pull_policy(&self, template: Option<&Value>) -> String {
        self.options()
            .string("kubernetes.container.image.pull-policy")
            .map(str::to_string)
            .or_else(|| main_container_field(template, "imagePullPolicy"))
            .unwrap_or_else(|| "IfNotPresent".into())
    }

    /// The first of `keys` that is set; else `None` to keep the template's account if it names
    /// one; else `default`.
    fn service_account(&self, keys: &[&str], template: Option<&Value>) -> Option<String> {
        let options = self.options();
        if let Some(account) = keys.iter().find_map(|k| options.string(k)) {
            return Some(account.to_string());
        }
        let templated = template
            .and_then(|t| t["spec"]["serviceAccountName"].as_str())
            .is_some();
        (!templated).then(|| "default".to_string())
    }

    fn tolerations(&self, key: &str) -> Vec<Toleration> {
        self.options()
            .list_of_maps(key)
            .into_iter()
            .map(|m| {
                let get = |k: &str| {
                    m.iter()
                        .find(|(mk, _)| mk.eq_ignore_ascii_case(k))
                        .map(|(_, v)| v.clone())
                };
                Toleration {
                    key: get("key"),
                    operator: get("operator"),
                    value: get("value"),
                    effect: get("effect"),
                    toleration_seconds: get("tolerationSeconds").and_then(|s| s.parse().ok()),
                }
            })
            .collect()
    }

    /// `kubernetes.secrets` (`name:/mount/path,…`): one secret volume and mount each, as
    /// Flink's `MountSecretsDecorator` adds them.
    fn secret_volumes(&self) -> (Vec<Volume>, Vec<VolumeMount>) {
        self.options()
            .map("kubernetes.secrets")
            .into_iter()
            .map(|(secret, path)| {
                let volume = format!("{secret}-volume");
                (
                    Volume {
                        name: volume.clone(),
                        secret: Some(SecretVolumeSource {
                            secret_name: Some(secret),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                    VolumeMount {
                        name: volume,
                        mount_path: path,
                        ..Default::default()
                    },
                )
            })
            .unzip()
    }

    /// `kubernetes.env.secretKeyRef` (`env:NAME,secret:s,key:k;…`): variables from secrets,
    /// as Flink's `EnvSecretsDecorator` adds them.
    fn secret_env(&self) -> Vec<EnvVar> {
        self.options()
            .list_of_maps("kubernetes.env.secretKeyRef")
            .into_iter()
            .filter_map(|m| {
                Some(EnvVar {
                    name: m.get("env")?.clone(),
                    value_from: Some(EnvVarSource {
                        secret_key_ref: Some(SecretKeySelector {
                            name: m.get("secret")?.clone(),
                            key: m.get("key")?.clone(),
                            optional: None,
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                })
            })
            .collect()
    }

    /// `flink-config-<name>`: the configuration file and the log configuration.
    fn config_map(&self) -> Result<ConfigMap, ResourceError> {
        let version = self.plan.flink_version;
        let text = config_map::render_config(&self.cfg.config, version, self.names.cluster_id())?;
        let data = config_map::config_data(text, version, &self.log_files);
        Ok(config_map::config_map(
            self.names.config_map(),
            self.meta(self.names.config_map(), &BTreeMap::new()),
            data,
        ))
    }
}

/// A string field of a template's main container.
fn main_container_field(template: Option<&Value>, field: &str) -> Option<String> {
    template?["spec"]["containers"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == pod_template::MAIN_CONTAINER)?
        .get(field)?
        .as_str()
        .filter(|s| !s.trim().is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests;
