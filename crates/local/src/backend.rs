//! [`LocalBackend`]: Flink clusters as supervised local processes, behind the engine's
//! [`ClusterBackend`] trait.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use engine::{BackendError, ClusterBackend, ClusterObservation, ClusterPlan, ResourceKey};
use flink::{ClientConfig, FlinkClient, RetryPolicy};

use crate::homes::FlinkHomes;
use crate::layout::StateDir;
use crate::ports::Ports;
use crate::process::Children;
use crate::runtime::{ClusterPaths, Role};
use crate::snapshots;
use crate::supervise::{StopTimeouts, Supervisor};

/// How long one REST call to a local JobManager may take.
const REST_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs each resource's Flink cluster as local processes under
/// `<state-dir>/clusters/<namespace>/<name>/`.
///
/// - **Processes**: the JobManager (`standalone-job.sh` in application mode, `jobmanager.sh`
///   in session mode) and `taskmanager.replicas` TaskManagers (`taskmanager.sh`), each in its
///   own process group with its console output in `log/<process>.log`. They keep running when
///   the controller exits, and a new `LocalBackend` on the same state dir adopts them: a
///   process is identified by pid and start time, so a recycled pid is never taken for ours.
/// - **observe** reports [`ClusterObservation::Running`] while the JobManager runs, with the
///   number of TaskManagers that run (fewer than planned when one died: Flink restarts the job
///   on the others, and `deploy` of the same plan or `scale` starts the missing ones);
///   [`ClusterObservation::Failed`] when the JobManager is gone, with how it ended (when this
///   controller started it) and the end of its log, secrets masked;
///   [`ClusterObservation::Starting`] briefly while a deploy has not started the JobManager.
/// - **deploy** is idempotent: the same plan with the JobManager running starts only missing
///   TaskManagers; the same plan with the JobManager gone starts the cluster again (new ports,
///   the old logs kept in `log.previous/`); another plan is refused until `delete`.
/// - **delete** stops every process of the cluster (SIGTERM, then SIGKILL), also ones a crash
///   left unrecorded, and keeps logs and the data dir (`<state-dir>/data/<namespace>/<name>/`,
///   where checkpoints and savepoints go when the plan names no directory).
///
/// The trait's methods run their blocking work on Tokio's blocking pool: call them inside a
/// Tokio runtime. Cheap to clone.
#[derive(Clone)]
pub struct LocalBackend {
    inner: Arc<Supervisor>,
}

impl std::fmt::Debug for LocalBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalBackend")
            .field("state", &self.inner.state)
            .field("homes", &self.inner.homes)
            .finish_non_exhaustive()
    }
}

/// A process of a local cluster, for `describe` and `logs`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessInfo {
    /// JobManager or TaskManager.
    pub role: Role,
    /// 0 for the JobManager; the TaskManager's number.
    pub index: u32,
    /// Process id (also its process group id).
    pub pid: u32,
    /// Whether it runs now.
    pub running: bool,
    /// How it ended, when it ended and this controller started it (`exited with code 1`).
    pub exit: Option<String>,
    /// When it was started, RFC 3339.
    pub started_at: String,
    /// Its console log (the whole Flink log plus anything it printed).
    pub log: PathBuf,
}

/// What runs for one resource, for `describe`, `logs` and the status table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterInfo {
    /// The resource.
    pub key: ResourceKey,
    /// The plan hash it was deployed with.
    pub plan_hash: String,
    /// `spec.flinkVersion`, e.g. `v2_3`.
    pub flink_version: String,
    /// The Flink distribution it runs.
    pub flink_home: PathBuf,
    /// Flink's REST API and web UI, e.g. `http://127.0.0.1:12345`.
    pub rest_url: String,
    /// Its fixed ports.
    pub ports: Ports,
    /// TaskManagers wanted.
    pub taskmanagers: u32,
    /// When it was created, RFC 3339.
    pub created_at: String,
    /// `FLINK_CONF_DIR` (use it with `$FLINK_HOME/bin/flink` to talk to the cluster).
    pub conf_dir: PathBuf,
    /// The process logs.
    pub log_dir: PathBuf,
    /// JobManager first, then TaskManagers by number.
    pub processes: Vec<ProcessInfo>,
}

impl LocalBackend {
    /// A backend keeping its clusters in `state` (created if missing; its path is made
    /// absolute, because it identifies our processes), running Flink from `homes`.
    pub fn new(state: StateDir, homes: FlinkHomes) -> std::io::Result<Self> {
        let root = state.root();
        std::fs::create_dir_all(root).map_err(|e| {
            std::io::Error::new(e.kind(), format!("cannot create {}: {e}", root.display()))
        })?;
        let root = root.canonicalize().map_err(|e| {
            std::io::Error::new(e.kind(), format!("cannot resolve {}: {e}", root.display()))
        })?;
        Ok(LocalBackend {
            inner: Arc::new(Supervisor {
                state: StateDir::new(root),
                homes,
                children: Children::default(),
                stop: StopTimeouts::default(),
            }),
        })
    }

    /// Changes how long `delete`, `scale` and a redeploy wait for processes to stop. Meant
    /// right after [`LocalBackend::new`]: on a backend that was cloned already, the result
    /// forgets how the processes it started have exited.
    #[must_use]
    pub fn with_stop_timeouts(mut self, stop: StopTimeouts) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.stop = stop;
            return self;
        }
        LocalBackend {
            inner: Arc::new(Supervisor {
                state: self.inner.state.clone(),
                homes: self.inner.homes.clone(),
                children: Children::default(),
                stop,
            }),
        }
    }

    /// The state dir (absolute).
    pub fn state_dir(&self) -> &StateDir {
        &self.inner.state
    }

    /// The Flink distributions it runs.
    pub fn homes(&self) -> &FlinkHomes {
        &self.inner.homes
    }

    /// What runs for `key`, or `None` when no cluster is deployed. Blocking (small file reads).
    pub fn cluster_info(&self, key: &ResourceKey) -> Result<Option<ClusterInfo>, BackendError> {
        let Some(record) = self.inner.record(key)? else {
            return Ok(None);
        };
        let paths = self.inner.paths(key);
        let processes = record
            .processes
            .iter()
            .map(|p| ProcessInfo {
                role: p.role,
                index: p.index,
                pid: p.pid,
                running: p.id().is_running(),
                exit: self.inner.children.exit_of(p.id()).map(|e| e.to_string()),
                started_at: p.started_at.clone(),
                log: paths.log_of(p.role, p.index),
            })
            .collect();
        Ok(Some(ClusterInfo {
            key: key.clone(),
            plan_hash: record.plan_hash,
            flink_version: record.flink_version,
            flink_home: record.flink_home,
            rest_url: record.rest_url,
            ports: record.ports,
            taskmanagers: record.taskmanagers,
            created_at: record.created_at,
            conf_dir: paths.conf(),
            log_dir: paths.logs(),
            processes,
        }))
    }

    /// The console log of a process of `key`'s cluster (`log/jobmanager.log`,
    /// `log/taskmanager-<index>.log`), whether or not it exists.
    pub fn log_file(&self, key: &ResourceKey, role: Role, index: u32) -> PathBuf {
        self.inner.paths(key).log_of(role, index)
    }

    /// The runtime dir of `key`'s cluster.
    pub fn cluster_dir(&self, key: &ResourceKey) -> PathBuf {
        ClusterPaths::new(self.inner.state.cluster(key)).root
    }

    /// [`ClusterBackend::delete`] without a runtime, for drop guards and signal handlers.
    pub fn delete_blocking(&self, key: &ResourceKey) -> Result<(), BackendError> {
        self.inner.delete(key)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        key: &ResourceKey,
        work: impl FnOnce(&Supervisor) -> Result<T, BackendError> + Send + 'static,
    ) -> Result<T, BackendError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || work(&inner))
            .await
            .map_err(|e| BackendError::Transient {
                key: key.clone(),
                message: format!("the local backend's worker failed: {e}"),
            })?
    }
}

impl ClusterBackend for LocalBackend {
    async fn observe(&self, key: &ResourceKey) -> Result<ClusterObservation, BackendError> {
        let k = key.clone();
        self.blocking(key, move |s| s.observe(&k)).await
    }

    async fn deploy(&self, key: &ResourceKey, plan: &ClusterPlan) -> Result<(), BackendError> {
        let (k, plan) = (key.clone(), plan.clone());
        self.blocking(key, move |s| s.deploy(&k, &plan)).await
    }

    async fn delete(&self, key: &ResourceKey) -> Result<(), BackendError> {
        let k = key.clone();
        self.blocking(key, move |s| s.delete(&k)).await
    }

    async fn scale(&self, key: &ResourceKey, taskmanagers: u32) -> Result<(), BackendError> {
        let k = key.clone();
        self.blocking(key, move |s| s.scale(&k, taskmanagers)).await
    }

    fn flink_client(&self, key: &ResourceKey) -> Result<FlinkClient, BackendError> {
        let Some(record) = self.inner.record(key)? else {
            return Err(BackendError::Transient {
                key: key.clone(),
                message: "no cluster is deployed, so there is no JobManager to call".into(),
            });
        };
        let invalid = |e: flink::Error| BackendError::Transient {
            key: key.clone(),
            message: format!("cannot build a client for {}: {e}", record.rest_url),
        };
        // Localhost answers fast or not at all: short calls, one quick retry of reads.
        let config = ClientConfig::new(&record.rest_url)
            .map_err(invalid)?
            .with_timeout(REST_TIMEOUT)
            .with_retry(RetryPolicy {
                max_attempts: 2,
                initial_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_millis(100),
            });
        FlinkClient::new(config).map_err(invalid)
    }

    async fn snapshot_exists(&self, path: &str) -> Option<bool> {
        let path = path.to_string();
        tokio::task::spawn_blocking(move || snapshots::snapshot_exists(&path))
            .await
            .ok()
            .flatten()
    }

    async fn dispose_snapshot(&self, path: &str) -> Option<Result<(), BackendError>> {
        let uri = path.to_string();
        let result = tokio::task::spawn_blocking(move || snapshots::dispose(&uri))
            .await
            .ok()
            .flatten()?;
        Some(result.map_err(|e| BackendError::Transient {
            key: ResourceKey::new("storage", "local"),
            message: format!("cannot delete the snapshot {path}: {e}"),
        }))
    }

    async fn snapshot_time(&self, path: &str) -> Option<i64> {
        let path = path.to_string();
        tokio::task::spawn_blocking(move || snapshots::snapshot_time(&path))
            .await
            .ok()
            .flatten()
    }

    async fn latest_checkpoint_on_storage(&self, dir: &str, job_id: &str) -> Option<String> {
        let (dir, job_id) = (dir.to_string(), job_id.to_string());
        tokio::task::spawn_blocking(move || snapshots::latest_checkpoint(&dir, &job_id))
            .await
            .ok()
            .flatten()
    }
}
