//! [`K8sBackend`]: Flink clusters as Kubernetes objects, behind the engine's
//! [`ClusterBackend`] trait.
//!
//! - **deploy** server-side applies every child of the plan (`resources::children`) with the
//!   field manager `flinkpilot` (forcing ownership), the plan hash annotated on the JobManager
//!   Deployment, then deletes the children labelled as ours that the plan no longer contains.
//!   The same plan again changes nothing; a cluster of another plan is refused (the engine
//!   deletes it first).
//! - **observe** reads the JobManager Deployment and the cluster's pods (and the standalone
//!   TaskManager Deployment): see [`observe::cluster`].
//! - **delete** deletes every child labelled as ours and Flink's HA ConfigMaps of the cluster,
//!   with the configured propagation, and waits (bounded) until the JobManager Deployment and
//!   the cluster's pods are gone.
//! - **scale** sets the standalone TaskManager Deployment's replicas.
//! - **flink_client** reaches the JobManager as [`RestAccess`] says; every call is reported to
//!   the call observer (the operator's REST latency histogram).
//! - **snapshot_exists** / **latest_checkpoint_on_storage**: `None` — the operator cannot see
//!   the cluster's storage. The engine then trusts what the JobManager's REST API reports (a
//!   checkpoint Flink calls completed is on storage), and a last-state stop whose JobManager
//!   cannot be asked is refused instead of guessed (`docs/engine.md`).
//!
//! Every write checks the [`Fence`] first: a replica that lost the lease writes nothing more.

mod apply;
pub mod observe;
pub mod rest;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use engine::{BackendError, ClusterBackend, ClusterObservation, ClusterPlan, ResourceKey};
use flink::{CallObserver, FlinkClient};
use kube::Client;

use crate::leader::Fence;
use crate::resources::REST_PORT;
use crate::resources::ResourceSettings;

pub use observe::PLAN_HASH_ANNOTATION;
pub use rest::{ProxyAccess, RestAccess, RestAccessError, RestUrls};

/// The field manager of every write the operator makes.
pub const FIELD_MANAGER: &str = "flinkpilot";

/// How children are deleted: Kubernetes' `propagationPolicy` (the Apache operator's
/// `kubernetes.operator.resource.deletion.propagation`, default `Foreground`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Propagation {
    /// Dependents (ReplicaSets, pods) are deleted before the owner disappears.
    #[default]
    Foreground,
    /// The owner disappears at once; the garbage collector deletes dependents afterwards.
    Background,
}

/// Settings of the Kubernetes backend.
#[derive(Clone, Debug)]
pub struct BackendSettings {
    /// Field manager of server-side applies and patches.
    pub field_manager: String,
    /// Propagation of deletions.
    pub propagation: Propagation,
    /// How long `delete` waits for the cluster to be gone before it reports a (transient)
    /// failure; the next pass deletes again and waits again.
    pub delete_timeout: Duration,
    /// Longest pause between two checks while waiting for a deletion.
    pub delete_poll_max: Duration,
    /// Limit of one JobManager REST call.
    pub rest_timeout: Duration,
    /// Defaults of the generated objects.
    pub resources: ResourceSettings,
}

impl Default for BackendSettings {
    fn default() -> Self {
        BackendSettings {
            field_manager: FIELD_MANAGER.to_string(),
            propagation: Propagation::default(),
            delete_timeout: Duration::from_secs(60),
            delete_poll_max: Duration::from_secs(2),
            rest_timeout: Duration::from_secs(10),
            resources: ResourceSettings::default(),
        }
    }
}

/// Flink clusters as Kubernetes objects. Cheap to clone.
#[derive(Clone)]
pub struct K8sBackend {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    settings: BackendSettings,
    rest: RestAccess,
    /// Sees every JobManager REST call (the operator's latency histogram).
    observer: Option<Arc<dyn CallObserver>>,
    fence: Fence,
    /// REST port of each cluster, as its JobManager Deployment declares it.
    rest_ports: Mutex<HashMap<ResourceKey, u16>>,
    /// JobManager clients by resource: the port they were built for and until when their
    /// credentials are good.
    clients: Mutex<HashMap<ResourceKey, CachedClient>>,
    /// Resources whose last deploy or scale was refused as invalid (retrying cannot help
    /// before the spec changes).
    refused: Mutex<HashSet<ResourceKey>>,
    /// Resources whose last observation found a JobManager Deployment without a ready replica.
    starting: Mutex<HashSet<ResourceKey>>,
}

struct CachedClient {
    port: u16,
    good_until: Option<Instant>,
    client: FlinkClient,
}

impl std::fmt::Debug for K8sBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("K8sBackend")
            .field("settings", &self.inner.settings)
            .field("rest", &self.inner.rest)
            .finish_non_exhaustive()
    }
}

impl K8sBackend {
    /// A backend writing through `client` while `fence` is open. Its JobManager clients report
    /// every call to `observer`.
    pub fn new(
        client: Client,
        settings: BackendSettings,
        rest: RestAccess,
        observer: Option<Arc<dyn CallObserver>>,
        fence: Fence,
    ) -> Self {
        K8sBackend {
            inner: Arc::new(Inner {
                client,
                settings,
                rest,
                observer,
                fence,
                rest_ports: Mutex::default(),
                clients: Mutex::default(),
                refused: Mutex::default(),
                starting: Mutex::default(),
            }),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &BackendSettings {
        &self.inner.settings
    }

    /// Whether the last deploy or scale of `key` was refused as invalid; clears the mark.
    pub fn take_refused(&self, key: &ResourceKey) -> bool {
        lock(&self.inner.refused).remove(key)
    }

    /// Whether the last observation of `key` found its JobManager Deployment without a ready
    /// replica: the Deployment's next status change (watched) says when that changes.
    pub fn is_starting(&self, key: &ResourceKey) -> bool {
        lock(&self.inner.starting).contains(key)
    }

    fn mark(&self, key: &ResourceKey, result: &Result<(), BackendError>) {
        if let Err(BackendError::Invalid { .. }) = result {
            lock(&self.inner.refused).insert(key.clone());
        }
    }

    fn forget(&self, key: &ResourceKey) {
        lock(&self.inner.clients).remove(key);
        lock(&self.inner.rest_ports).remove(key);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl ClusterBackend for K8sBackend {
    async fn observe(&self, key: &ResourceKey) -> Result<ClusterObservation, BackendError> {
        let (observation, rest_port) = apply::observe(&self.inner.client, key).await?;
        if matches!(observation, ClusterObservation::Starting { .. }) {
            lock(&self.inner.starting).insert(key.clone());
        } else {
            lock(&self.inner.starting).remove(key);
        }
        let mut ports = lock(&self.inner.rest_ports);
        match rest_port {
            Some(port) => {
                ports.insert(key.clone(), port);
            }
            None => {
                ports.remove(key);
            }
        }
        Ok(observation)
    }

    async fn deploy(&self, key: &ResourceKey, plan: &ClusterPlan) -> Result<(), BackendError> {
        let result = apply::deploy(
            &self.inner.client,
            &self.inner.settings,
            &self.inner.fence,
            key,
            plan,
        )
        .await;
        self.mark(key, &result);
        result
    }

    async fn delete(&self, key: &ResourceKey) -> Result<(), BackendError> {
        let result = apply::delete(
            &self.inner.client,
            &self.inner.settings,
            &self.inner.fence,
            key,
        )
        .await;
        if result.is_ok() {
            self.forget(key);
        }
        result
    }

    async fn scale(&self, key: &ResourceKey, taskmanagers: u32) -> Result<(), BackendError> {
        let result = apply::scale(
            &self.inner.client,
            &self.inner.settings,
            &self.inner.fence,
            key,
            taskmanagers,
        )
        .await;
        self.mark(key, &result);
        result
    }

    fn flink_client(&self, key: &ResourceKey) -> Result<FlinkClient, BackendError> {
        let port = lock(&self.inner.rest_ports)
            .get(key)
            .copied()
            .unwrap_or(REST_PORT);
        let mut clients = lock(&self.inner.clients);
        if let Some(cached) = clients.get(key)
            && cached.port == port
            && cached.good_until.is_none_or(|t| Instant::now() < t)
        {
            return Ok(cached.client.clone());
        }
        let transient = |message: String| BackendError::Transient {
            key: key.clone(),
            message,
        };
        let (config, good_until) = self
            .inner
            .rest
            .client_config(key, port)
            .map_err(|e| transient(e.to_string()))?;
        let mut config = config.with_timeout(self.inner.settings.rest_timeout);
        if let Some(observer) = &self.inner.observer {
            config = config.with_observer(observer.clone());
        }
        let client = FlinkClient::new(config).map_err(|e| transient(e.to_string()))?;
        clients.insert(
            key.clone(),
            CachedClient {
                port,
                good_until,
                client: client.clone(),
            },
        );
        Ok(client)
    }

    async fn snapshot_exists(&self, _path: &str) -> Option<bool> {
        None
    }

    async fn latest_checkpoint_on_storage(&self, _dir: &str, _job_id: &str) -> Option<String> {
        None
    }
}
