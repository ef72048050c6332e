//! TaskManagers: in native mode the pod template the JobManager creates TaskManager pods from
//! (ConfigMap `pod-template-<name>`, as Flink's `PodTemplateMountDecorator` ships it); in
//! standalone mode the Deployment `<name>-taskmanager`, as the Apache operator's
//! `StandaloneKubernetesTaskManagerFactory` builds it.

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::config_map::{TASK_MANAGER_POD_TEMPLATE_FILE, config_map, config_mount, config_volume};
use super::labels::{self, Component};
use super::pod_template::{PodParts, component_template, decorate, env, port};
use super::{Cluster, ResourceError};

/// The ConfigMap with the TaskManager pod template (native mode), when there is a template.
pub fn pod_template_config_map(c: &Cluster<'_>) -> Result<Option<ConfigMap>, ResourceError> {
    let Some(template) = &c.taskmanager_template else {
        return Ok(None);
    };
    let text = serde_saphyr::to_string(template).map_err(|e| ResourceError::Invalid {
        name: c.names.cluster_id().into(),
        field: "spec.taskManager.podTemplate".into(),
        message: format!("the TaskManager pod template cannot be written as YAML: {e}"),
    })?;
    let meta = c.meta(c.names.pod_template_config_map(), &Default::default());
    Ok(Some(config_map(
        c.names.pod_template_config_map(),
        meta,
        [(TASK_MANAGER_POD_TEMPLATE_FILE.to_string(), text)].into(),
    )))
}

/// The TaskManager Deployment of a standalone cluster.
pub fn deployment(c: &Cluster<'_>) -> Result<Deployment, ResourceError> {
    let options = c.options();
    let template = component_template(&c.plan.spec, Component::TaskManager, c.array_merge());
    let mut pod_labels = options.map("kubernetes.taskmanager.labels");
    pod_labels.extend(labels::selector(
        c.names.cluster_id(),
        c.kind,
        Component::TaskManager,
    ));
    let annotations = options.map("kubernetes.taskmanager.annotations");

    let (mut volumes, mut mounts) = c.secret_volumes();
    volumes.push(config_volume(
        &c.names.config_map(),
        c.plan.flink_version,
        &c.log_files,
    ));
    mounts.push(config_mount(&c.cfg.config));
    let mut container_env: Vec<_> = options
        .prefixed("containerized.taskmanager.env.")
        .iter()
        .map(|(k, v)| env(k, v))
        .collect();
    if let Some(dir) = options.string("kubernetes.flink.log.dir") {
        container_env.push(env("FLINK_LOG_DIR", dir));
    }
    container_env.extend(c.secret_env());

    let parts = PodParts {
        labels: pod_labels.clone(),
        annotations: annotations.clone(),
        service_account: c.service_account(
            &[
                "kubernetes.taskmanager.service-account",
                "kubernetes.service-account",
            ],
            template.as_ref(),
        ),
        image_pull_secrets: options.list("kubernetes.container.image.pull-secrets"),
        node_selector: options.map("kubernetes.taskmanager.node-selector"),
        tolerations: c.tolerations("kubernetes.taskmanager.tolerations"),
        pod_network: false,
        volumes,
        image: c.image(template.as_ref()),
        image_pull_policy: c.image_pull_policy(template.as_ref()),
        command: vec![c.entrypoint()],
        args: vec!["taskmanager".into()],
        ports: vec![port("taskmanager-rpc", c.cfg.ports.taskmanager_rpc)],
        env: container_env,
        mounts,
    };
    let pod = decorate(
        template.as_ref(),
        parts,
        &c.taskmanager,
        c.names.cluster_id(),
    )?;
    let mut meta = c.meta(c.names.taskmanager(), &pod_labels);
    if !annotations.is_empty() {
        meta.annotations = Some(annotations);
    }
    Ok(Deployment {
        metadata: meta,
        spec: DeploymentSpec {
            replicas: Some(i32::try_from(c.plan.taskmanager.replicas).unwrap_or(i32::MAX)),
            selector: LabelSelector {
                match_labels: Some(labels::selector(
                    c.names.cluster_id(),
                    c.kind,
                    Component::TaskManager,
                )),
                ..Default::default()
            },
            template: pod,
            ..Default::default()
        },
        ..Default::default()
    })
}
