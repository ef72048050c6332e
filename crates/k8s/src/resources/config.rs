//! The Flink configuration a cluster's pods read: the plan's configuration (the user's
//! `flinkConfiguration` plus the engine's settings) with what running on Kubernetes needs added —
//! the same keys Flink's native deployer (`KubernetesClusterDescriptor`) and the Apache
//! operator's `FlinkConfigBuilder` add before they create the cluster.

use api::{FlinkDeploymentSpec, FlinkVersion};
use engine::{ClusterMode, ClusterPlan};
use flink::config::FlinkConfig;

use super::ResourceError;
use super::labels::ClusterType;
use super::names::ClusterNames;
use super::options::{Options, join_escaped};
use super::requirements::ProcessResources;

/// Port of the REST endpoint when `rest.port` is not set.
pub const REST_PORT: u16 = 8081;
/// Port of the JobManager's RPC endpoint when `jobmanager.rpc.port` is not set.
pub const JOBMANAGER_RPC_PORT: u16 = 6123;
/// Fixed blob server port (Flink's `Constants.BLOB_SERVER_PORT`).
pub const BLOB_SERVER_PORT: u16 = 6124;
/// Fixed TaskManager RPC port (Flink's `Constants.TASK_MANAGER_RPC_PORT`).
pub const TASK_MANAGER_RPC_PORT: u16 = 6122;

/// The ports the containers and Services expose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ports {
    /// `rest.port`.
    pub rest: u16,
    /// `jobmanager.rpc.port`.
    pub rpc: u16,
    /// `blob.server.port`.
    pub blob: u16,
    /// `taskmanager.rpc.port`.
    pub taskmanager_rpc: u16,
}

/// A cluster's effective configuration and the facts derived from it.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// Everything the pods read from `config.yaml` / `flink-conf.yaml`.
    pub config: FlinkConfig,
    /// High availability is on (`high-availability.type` set and not `NONE`).
    pub ha: bool,
    /// Exposed ports.
    pub ports: Ports,
}

/// Inputs of [`ClusterConfig::build`].
pub struct ConfigInputs<'a> {
    /// Checked names.
    pub names: &'a ClusterNames,
    /// Native or standalone.
    pub kind: ClusterType,
    /// The plan.
    pub plan: &'a ClusterPlan,
    /// The JobManager's size.
    pub jobmanager: &'a ProcessResources,
    /// The TaskManagers' size.
    pub taskmanager: &'a ProcessResources,
    /// `kubernetes.jobmanager.owner.reference` value (native mode).
    pub owner_reference: String,
}

/// `true` when `config` turns high availability on (`high-availability.type`, or the older
/// `high-availability` key, set to anything but `NONE`).
pub fn ha_enabled(config: &FlinkConfig) -> bool {
    let options = Options(config);
    options
        .string("high-availability.type")
        .or_else(|| options.string("high-availability"))
        .is_some_and(|v| !v.eq_ignore_ascii_case("none"))
}

impl ClusterConfig {
    /// The effective configuration of the cluster `inputs` describe.
    pub fn build(inputs: &ConfigInputs<'_>) -> Result<Self, ResourceError> {
        let ConfigInputs {
            names, kind, plan, ..
        } = *inputs;
        let spec: &FlinkDeploymentSpec = &plan.spec;
        let version = plan.flink_version;
        let mut config = plan.config.clone();
        let set_default = |config: &mut FlinkConfig, key: &str, value: String| {
            if config.get(key).is_none() {
                config.set(key, value);
            }
        };

        config.set("kubernetes.cluster-id", names.cluster_id());
        config.set("kubernetes.namespace", names.namespace());
        let application = plan.mode == ClusterMode::Application;
        config.set(
            "execution.target",
            match (kind, application) {
                (ClusterType::Native, true) => "kubernetes-application",
                (ClusterType::Native, false) => "kubernetes-session",
                (ClusterType::Standalone, _) => "remote",
            },
        );

        if let Some(job) = plan.job.as_ref().filter(|_| application) {
            if job.jar_uri.trim().is_empty() {
                return Err(ResourceError::Invalid {
                    name: names.cluster_id().into(),
                    field: "spec.job.jarURI".into(),
                    message: "an application cluster needs the URI of its job jar".into(),
                });
            }
            match kind {
                ClusterType::Native => {
                    config.set(
                        "pipeline.jars",
                        join_escaped(std::slice::from_ref(&job.jar_uri), ';'),
                    );
                }
                ClusterType::Standalone => {
                    // standalone-job loads the jar from the classpath; it has no `local://` scheme
                    config.set(
                        "pipeline.classpaths",
                        join_escaped(&[standalone_jar_uri(&job.jar_uri)], ';'),
                    );
                }
            }
            if let Some(class) = &job.entry_class {
                config.set("$internal.application.main", class.clone());
            }
            if !job.args.is_empty() {
                config.set(
                    "$internal.application.program-args",
                    join_escaped(&job.args, ';'),
                );
            }
            if job.parallelism > 0 {
                set_default(
                    &mut config,
                    "parallelism.default",
                    job.parallelism.to_string(),
                );
            }
        }

        if kind == ClusterType::Native {
            config.set(
                "kubernetes.jobmanager.replicas",
                plan.jobmanager.replicas.max(1).to_string(),
            );
            config.set(
                "kubernetes.jobmanager.owner.reference",
                inputs.owner_reference.clone(),
            );
            config.set(
                "kubernetes.internal.jobmanager.entrypoint.class",
                if application {
                    "org.apache.flink.kubernetes.entrypoint.KubernetesApplicationClusterEntrypoint"
                } else {
                    "org.apache.flink.kubernetes.entrypoint.KubernetesSessionClusterEntrypoint"
                },
            );
            config.set("internal.cluster.execution-mode", "NORMAL");
        }
        if let Some(account) = spec
            .service_account
            .as_deref()
            .filter(|s| !s.trim().is_empty())
        {
            config.set("kubernetes.service-account", account);
        }
        if let Some(image) = spec.image.as_deref().filter(|s| !s.trim().is_empty()) {
            config.set(image_key(version), image);
        }
        if let Some(policy) = spec
            .image_pull_policy
            .as_deref()
            .filter(|s| !s.trim().is_empty())
        {
            config.set("kubernetes.container.image.pull-policy", policy);
        }
        for entry in inputs
            .jobmanager
            .config_entries(version)
            .into_iter()
            .chain(inputs.taskmanager.config_entries(version))
        {
            config.set(entry.0, entry.1);
        }
        set_default(
            &mut config,
            "kubernetes.rest-service.exposed.type",
            "ClusterIP".to_string(),
        );

        // ports that must be fixed because Services and containers expose them
        let options = Options(&config);
        let rest = options.fixed_port("rest.port").unwrap_or(REST_PORT);
        let rpc = options
            .fixed_port("jobmanager.rpc.port")
            .unwrap_or(JOBMANAGER_RPC_PORT);
        let blob = options.fixed_port("blob.server.port");
        let tm_rpc = options.fixed_port("taskmanager.rpc.port");
        let bind_port_unfixed = options.string("rest.bind-port").is_some()
            && options.fixed_port("rest.bind-port").is_none();
        let ha = ha_enabled(&config);
        let ha_port_unfixed = options
            .fixed_port("high-availability.jobmanager.port")
            .is_none();
        let blob = blob.unwrap_or_else(|| {
            config.set("blob.server.port", BLOB_SERVER_PORT.to_string());
            BLOB_SERVER_PORT
        });
        let taskmanager_rpc = tm_rpc.unwrap_or_else(|| {
            config.set("taskmanager.rpc.port", TASK_MANAGER_RPC_PORT.to_string());
            TASK_MANAGER_RPC_PORT
        });
        if bind_port_unfixed {
            config.set("rest.bind-port", rest.to_string());
        }

        if ha {
            // HA keeps the leader's address in Kubernetes; the JobManager binds its pod IP
            config.set("high-availability.cluster-id", names.cluster_id());
            if ha_port_unfixed {
                config.set("high-availability.jobmanager.port", rpc.to_string());
            }
        } else {
            // without HA, TaskManagers reach the JobManager through the internal Service
            config.set("jobmanager.rpc.address", names.internal_address());
        }

        Ok(Self {
            config,
            ha,
            ports: Ports {
                rest,
                rpc,
                blob,
                taskmanager_rpc,
            },
        })
    }
}

/// The image option: `kubernetes.container.image.ref` since Flink 1.17, before it
/// `kubernetes.container.image` (as the Apache operator chooses).
pub fn image_key(version: FlinkVersion) -> &'static str {
    if version.is_at_least(FlinkVersion::v1_17) {
        "kubernetes.container.image.ref"
    } else {
        "kubernetes.container.image"
    }
}

/// `local:///opt/x.jar` → `file:///opt/x.jar`: standalone clusters read the jar from their own
/// file system (the Apache operator converts the same way).
pub fn standalone_jar_uri(uri: &str) -> String {
    match uri.strip_prefix("local:") {
        Some(rest) => format!("file:{rest}"),
        None => uri.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_jars_become_file_uris_for_standalone() {
        assert_eq!(
            standalone_jar_uri("local:///opt/flink/usrlib/a.jar"),
            "file:///opt/flink/usrlib/a.jar"
        );
        assert_eq!(standalone_jar_uri("s3://b/a.jar"), "s3://b/a.jar");
    }

    #[test]
    fn image_key_follows_the_flink_version() {
        assert_eq!(image_key(FlinkVersion::v1_16), "kubernetes.container.image");
        assert_eq!(
            image_key(FlinkVersion::v1_20),
            "kubernetes.container.image.ref"
        );
    }

    #[test]
    fn ha_is_on_for_any_type_but_none() {
        assert!(ha_enabled(
            &FlinkConfig::new().with("high-availability.type", "kubernetes")
        ));
        assert!(ha_enabled(
            &FlinkConfig::new().with("high-availability", "zookeeper")
        ));
        assert!(!ha_enabled(
            &FlinkConfig::new().with("high-availability.type", "NONE")
        ));
        assert!(!ha_enabled(&FlinkConfig::new()));
    }
}
