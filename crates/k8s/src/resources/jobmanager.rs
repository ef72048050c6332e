//! The JobManager Deployment `<name>`: in native mode as Flink's `KubernetesJobManagerFactory`
//! builds it (`kubernetes-jobmanager.sh kubernetes-application|kubernetes-session`), in
//! standalone mode as the Apache operator's `StandaloneKubernetesJobManagerFactory` does
//! (`standalone-job …` for an application, `jobmanager` for a session).

use engine::ClusterMode;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{EmptyDirVolumeSource, Volume, VolumeMount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::config_map::{config_mount, config_volume, pod_template_mount, pod_template_volume};
use super::labels::{self, ClusterType, Component};
use super::pod_template::{
    PodParts, add_startup_probe, component_template, decorate, env, pod_ip_env, port,
};
use super::{Cluster, ResourceError};

/// The volume Flink 1.19+ mounts for user artifacts it downloads (`user.artifacts.base.dir`).
const USER_ARTIFACTS_VOLUME: &str = "user-artifacts-volume";
const DEFAULT_USER_ARTIFACTS_DIR: &str = "/opt/flink/artifacts";

/// The JobManager Deployment of `c`.
pub fn deployment(c: &Cluster<'_>) -> Result<Deployment, ResourceError> {
    let options = c.options();
    let mut template = component_template(&c.plan.spec, Component::JobManager, c.array_merge());
    if c.startup_probe() {
        add_startup_probe(template.get_or_insert_with(|| serde_json::json!({})));
    }

    let mut pod_labels = options.map("kubernetes.jobmanager.labels");
    pod_labels.extend(labels::selector(
        c.names.cluster_id(),
        c.kind,
        Component::JobManager,
    ));
    let annotations = options.map("kubernetes.jobmanager.annotations");

    let mut volumes: Vec<Volume> = Vec::new();
    let mut mounts: Vec<VolumeMount> = Vec::new();
    if c.kind == ClusterType::Native && c.plan.flink_version.is_at_least(api::FlinkVersion::v1_19) {
        volumes.push(Volume {
            name: USER_ARTIFACTS_VOLUME.into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        });
        mounts.push(VolumeMount {
            name: USER_ARTIFACTS_VOLUME.into(),
            mount_path: options
                .string("user.artifacts.base.dir")
                .unwrap_or(DEFAULT_USER_ARTIFACTS_DIR)
                .into(),
            ..Default::default()
        });
    }
    let (secret_volumes, secret_mounts) = c.secret_volumes();
    volumes.extend(secret_volumes);
    mounts.extend(secret_mounts);
    volumes.push(config_volume(
        &c.names.config_map(),
        c.plan.flink_version,
        &c.log_files,
    ));
    mounts.push(config_mount(&c.cfg.config));
    if c.kind == ClusterType::Native && c.taskmanager_template.is_some() {
        volumes.push(pod_template_volume(&c.names.pod_template_config_map()));
        mounts.push(pod_template_mount());
    }

    let mut container_env: Vec<_> = options
        .prefixed("containerized.master.env.")
        .iter()
        .map(|(k, v)| env(k, v))
        .collect();
    container_env.push(pod_ip_env());
    if let Some(dir) = options.string("kubernetes.flink.log.dir") {
        container_env.push(env("FLINK_LOG_DIR", dir));
    }
    container_env.extend(c.secret_env());

    let ports = &c.cfg.ports;
    let parts = PodParts {
        labels: pod_labels.clone(),
        annotations: annotations.clone(),
        service_account: c.service_account(
            &[
                "kubernetes.jobmanager.service-account",
                "kubernetes.service-account",
            ],
            template.as_ref(),
        ),
        image_pull_secrets: options.list("kubernetes.container.image.pull-secrets"),
        node_selector: options.map("kubernetes.jobmanager.node-selector"),
        tolerations: c.tolerations("kubernetes.jobmanager.tolerations"),
        pod_network: true,
        volumes,
        image: c.image(template.as_ref()),
        image_pull_policy: c.image_pull_policy(template.as_ref()),
        command: vec![c.entrypoint()],
        args: args(c),
        ports: vec![
            port("rest", ports.rest),
            port("jobmanager-rpc", ports.rpc),
            port("blobserver", ports.blob),
        ],
        env: container_env,
        mounts,
    };
    let pod = decorate(
        template.as_ref(),
        parts,
        &c.jobmanager,
        c.names.cluster_id(),
    )?;

    let selector = labels::selector(c.names.cluster_id(), c.kind, Component::JobManager);
    let mut meta = c.meta(c.names.jobmanager(), &pod_labels);
    if !annotations.is_empty() {
        meta.annotations = Some(annotations);
    }
    Ok(Deployment {
        metadata: meta,
        spec: DeploymentSpec {
            replicas: Some(i32::try_from(c.plan.jobmanager.replicas.max(1)).unwrap_or(1)),
            selector: LabelSelector {
                match_labels: Some(selector),
                ..Default::default()
            },
            template: pod,
            ..Default::default()
        },
        ..Default::default()
    })
}

/// The main container's arguments.
fn args(c: &Cluster<'_>) -> Vec<String> {
    let application = c.plan.mode == ClusterMode::Application;
    match c.kind {
        ClusterType::Native => {
            // Flink's CmdJobManagerDecorator: one shell command, entrypoint args appended
            let target = if application {
                "kubernetes-application"
            } else {
                "kubernetes-session"
            };
            let extra = c
                .options()
                .string("kubernetes.jobmanager.entrypoint.args")
                .unwrap_or("");
            vec![
                "bash".into(),
                "-c".into(),
                format!("kubernetes-jobmanager.sh {target} {extra}"),
            ]
        }
        ClusterType::Standalone => {
            // the JobManager binds its pod IP when HA elects a leader among replicas
            let rpc_address = "-Djobmanager.rpc.address=$(_POD_IP_ADDRESS)".to_string();
            match c.plan.job.as_ref().filter(|_| application) {
                None => {
                    let mut args = vec!["jobmanager".to_string()];
                    if c.cfg.ha {
                        args.push(rpc_address);
                    }
                    args
                }
                Some(job) => {
                    let mut args = vec!["standalone-job".to_string()];
                    if let Some(class) = &job.entry_class {
                        args.extend(["--job-classname".to_string(), class.clone()]);
                    }
                    if let Some(restore) = &job.restore {
                        if restore.allow_non_restored_state {
                            args.push("--allowNonRestoredState".into());
                        }
                        args.extend(["--fromSavepoint".to_string(), restore.path.clone()]);
                    }
                    if c.cfg.ha {
                        args.push(rpc_address);
                    }
                    args.extend(job.args.iter().cloned());
                    args
                }
            }
        }
    }
}
