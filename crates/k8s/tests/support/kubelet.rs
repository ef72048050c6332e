//! A "kubelet" for the fake API server: when a FlinkDeployment's JobManager Deployment appears,
//! it starts a real local Flink application cluster from what Kubernetes holds — the
//! `flink-config-<name>` ConfigMap's `config.yaml` (job id, jar, entry class, arguments,
//! parallelism, restore path, state directories) — through the local backend (a session
//! cluster with one TaskManager when the config names no jar), marks the
//! Deployment ready once the cluster runs, and points the operator's REST client at it (what
//! the `<name>-rest` Service does in a cluster): directly ([`RestUrls`]) or as the endpoint of
//! the fake API server's service proxy ([`ServiceProxy`]). When the Deployment goes or is replaced by one
//! of another plan, the cluster is stopped first. Every pod gets its own network in a cluster,
//! so the fixed ports of the rendered config are left to the local backend to choose.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use api::FlinkVersion;
use engine::{
    ClusterBackend, ClusterMode, ClusterObservation, ClusterPlan, JobPlan, ProcessPlan,
    ResourceKey, RestorePlan,
};
use flink::config::FlinkConfig;
use flinkpilot_k8s::backend::{PLAN_HASH_ANNOTATION, RestUrls};
use flinkpilot_k8s::resources::split_escaped;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use local::{FlinkHomes, LocalBackend, StateDir};
use serde_json::json;
use testkit::FlinkDist;
use testkit::kube_fake::ServiceProxy;
use tokio::task::JoinHandle;

/// Ports a pod has to itself; a local cluster gets free ones instead.
const POD_PORTS: &[&str] = &[
    "rest.port",
    "jobmanager.rpc.port",
    "blob.server.port",
    "taskmanager.rpc.port",
    "taskmanager.data.port",
];

/// Where the kubelet publishes a running JobManager's REST URL.
#[derive(Clone)]
pub enum RestTarget {
    /// Straight to the operator's REST client (`RestAccess::Fixed`).
    Urls(RestUrls),
    /// As the endpoints of `<name>-rest` behind the fake API server's service proxy.
    Proxy(ServiceProxy),
}

impl From<RestUrls> for RestTarget {
    fn from(urls: RestUrls) -> Self {
        RestTarget::Urls(urls)
    }
}

impl From<ServiceProxy> for RestTarget {
    fn from(proxy: ServiceProxy) -> Self {
        RestTarget::Proxy(proxy)
    }
}

impl RestTarget {
    fn set(&self, key: &ResourceKey, url: &str) {
        match self {
            RestTarget::Urls(urls) => urls.set(key, &format!("{url}/")),
            RestTarget::Proxy(proxy) => {
                proxy.set(&key.namespace, &format!("{}-rest", key.name), url);
            }
        }
    }

    fn remove(&self, key: &ResourceKey) {
        match self {
            RestTarget::Urls(urls) => urls.remove(key),
            RestTarget::Proxy(proxy) => proxy.remove(&key.namespace, &format!("{}-rest", key.name)),
        }
    }
}

/// Runs the clusters of one FlinkDeployment until dropped (which stops them).
pub struct Kubelet {
    task: JoinHandle<()>,
    backend: LocalBackend,
    key: ResourceKey,
    /// Plan hashes of the clusters started, in order.
    pub started: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Kubelet {
    /// Starts serving `key`'s JobManager Deployment, with Flink from `dist` and cluster files
    /// under `dir`.
    pub fn start(
        client: Client,
        key: ResourceKey,
        dist: &FlinkDist,
        dir: &Path,
        rest: impl Into<RestTarget>,
    ) -> Kubelet {
        // <cache>/flink-<version>/pyflink
        let cache = dist.home.parent().and_then(Path::parent).unwrap();
        let backend = LocalBackend::new(
            StateDir::new(dir.join("kubelet")),
            FlinkHomes::with_cache(cache),
        )
        .unwrap();
        let version = if dist.major() == 1 {
            FlinkVersion::v1_20
        } else {
            FlinkVersion::v2_3
        };
        let started = std::sync::Arc::default();
        let task = tokio::spawn(serve(
            client,
            key.clone(),
            backend.clone(),
            rest.into(),
            version,
            std::sync::Arc::clone(&started),
        ));
        Kubelet {
            task,
            backend,
            key,
            started,
        }
    }

    /// The REST URL of the running cluster's JobManager, if it runs.
    pub fn rest_url(&self) -> Option<String> {
        self.backend
            .cluster_info(&self.key)
            .ok()
            .flatten()
            .map(|c| c.rest_url)
    }

    /// Local processes of the cluster right now.
    pub fn running(&self) -> bool {
        self.backend
            .cluster_info(&self.key)
            .ok()
            .flatten()
            .is_some_and(|c| c.processes.iter().any(|p| p.running))
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        self.task.abort();
        if let Err(e) = self.backend.delete_blocking(&self.key) {
            eprintln!("kubelet: stopping {}: {e}", self.key);
        }
    }
}

async fn serve(
    client: Client,
    key: ResourceKey,
    backend: LocalBackend,
    rest: RestTarget,
    version: FlinkVersion,
    started: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
) {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &key.namespace);
    let config_maps: Api<ConfigMap> = Api::namespaced(client, &key.namespace);
    // (plan hash, ready) of the cluster that runs
    let mut running: Option<(String, bool)> = None;
    loop {
        let jm = deployments.get_opt(&key.name).await.unwrap();
        let wanted = jm
            .as_ref()
            .filter(|d| d.metadata.deletion_timestamp.is_none())
            .and_then(|d| {
                d.metadata
                    .annotations
                    .as_ref()?
                    .get(PLAN_HASH_ANNOTATION)
                    .cloned()
            });
        if running.as_ref().map(|(h, _)| h) != wanted.as_ref() {
            if running.take().is_some() {
                rest.remove(&key);
                backend.delete(&key).await.unwrap();
            }
            if let Some(hash) = wanted.clone() {
                let cm = config_maps
                    .get(&format!("flink-config-{}", key.name))
                    .await
                    .unwrap();
                let plan = plan(&key, &cm, &hash, version);
                backend.deploy(&key, &plan).await.unwrap();
                started.lock().unwrap().push(hash.clone());
                running = Some((hash, false));
            }
        }
        if let Some((_, ready)) = running.as_mut()
            && !*ready
            && matches!(
                backend.observe(&key).await.unwrap(),
                ClusterObservation::Running { .. }
            )
        {
            let info = backend.cluster_info(&key).unwrap().unwrap();
            rest.set(&key, info.rest_url.trim_end_matches('/'));
            deployments
                .patch_status(
                    &key.name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"status": {
                        "replicas": 1, "readyReplicas": 1, "availableReplicas": 1
                    }})),
                )
                .await
                .unwrap();
            *ready = true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The cluster a JobManager pod of this ConfigMap would run.
fn plan(key: &ResourceKey, cm: &ConfigMap, hash: &str, version: FlinkVersion) -> ClusterPlan {
    let data = cm.data.as_ref().unwrap();
    let text = data
        .get("config.yaml")
        .or_else(|| data.get("flink-conf.yaml"))
        .unwrap();
    let flat: BTreeMap<String, String> = serde_saphyr::from_str(text).unwrap();
    let mut config: FlinkConfig = flat.into_iter().collect();
    for port in POD_PORTS {
        config.remove(port);
    }
    let get = |k: &str| config.get(k).map(str::to_string);
    let slots: u32 = get("taskmanager.numberOfTaskSlots")
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let parallelism: u32 = get("parallelism.default")
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let Some(jars) = get("pipeline.jars") else {
        // a session cluster: it starts empty, jobs are submitted to it
        return ClusterPlan {
            mode: ClusterMode::Session,
            job: None,
            taskmanager: ProcessPlan {
                replicas: 1,
                memory_bytes: None,
                cpu: None,
            },
            ..cluster(key, config, slots, hash, version)
        };
    };
    let restore = get("execution.state-recovery.path")
        .or_else(|| get("execution.savepoint.path"))
        .map(|path| RestorePlan {
            path,
            allow_non_restored_state: false,
        });
    let job = JobPlan {
        jar_uri: split_escaped(&jars, ';').remove(0),
        entry_class: get("$internal.application.main"),
        args: get("$internal.application.program-args")
            .map(|a| split_escaped(&a, ';'))
            .unwrap_or_default(),
        parallelism,
        job_id: get("$internal.pipeline.job-id").unwrap(),
        restore,
    };
    ClusterPlan {
        job: Some(job),
        // native mode: the JobManager asks for the TaskManagers its job needs
        taskmanager: ProcessPlan {
            replicas: parallelism.div_ceil(slots.max(1)),
            memory_bytes: None,
            cpu: None,
        },
        ..cluster(key, config, slots, hash, version)
    }
}

/// An application cluster of `config` without a job and TaskManagers yet.
fn cluster(
    key: &ResourceKey,
    config: FlinkConfig,
    slots: u32,
    hash: &str,
    version: FlinkVersion,
) -> ClusterPlan {
    ClusterPlan {
        key: key.clone(),
        owner_uid: None,
        flink_version: version,
        mode: ClusterMode::Application,
        config,
        job: None,
        jobmanager: ProcessPlan {
            replicas: 1,
            memory_bytes: None,
            cpu: None,
        },
        taskmanager: ProcessPlan {
            replicas: 0,
            memory_bytes: None,
            cpu: None,
        },
        task_slots: slots,
        log_configuration: BTreeMap::new(),
        spec: Default::default(),
        plan_hash: hash.to_string(),
    }
}
