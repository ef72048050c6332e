//! Shared set-up of the backend tests: a state dir with a backend, counter-job plans built by
//! hand (the engine's plan builder is not needed here), and checks on processes.

#![allow(dead_code)] // each test binary uses a different subset

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use api::FlinkVersion;
use engine::{
    ClusterBackend, ClusterMode, ClusterObservation, ClusterPlan, JobPlan, ProcessPlan,
    ResourceKey, RestorePlan,
};
use flink::JobId;
use flink::config::FlinkConfig;
use flinkpilot_local::{FlinkHomes, LocalBackend, StateDir};
use testkit::{CounterArgs, FlinkDist, TestJob, wait_for};

/// How long a cluster may take to come up on a busy 2-core machine.
pub const STARTUP: Duration = Duration::from_secs(180);

/// A state dir and a backend on it. Dropping it deletes every cluster it was told about (also
/// while a test panics), so no JVM outlives a test.
pub struct TestEnv {
    pub dir: tempfile::TempDir,
    pub backend: LocalBackend,
    homes: FlinkHomes,
    keys: Vec<ResourceKey>,
}

impl TestEnv {
    /// A fresh state dir; Flink comes from the shared cache where `dist` was installed.
    pub fn new(dist: &FlinkDist) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("flinkpilot-local-")
            .tempdir()
            .unwrap();
        let homes = homes_for(dist);
        let backend =
            LocalBackend::new(StateDir::new(dir.path().join("state")), homes.clone()).unwrap();
        TestEnv {
            dir,
            backend,
            homes,
            keys: Vec::new(),
        }
    }

    /// Registers `key` for clean-up and returns it.
    pub fn key(&mut self, name: &str) -> ResourceKey {
        let key = ResourceKey::new("default", name);
        self.keys.push(key.clone());
        key
    }

    /// A second backend on the same state dir: a restarted controller.
    pub fn new_controller(&self) -> LocalBackend {
        LocalBackend::new(self.backend.state_dir().clone(), self.homes.clone()).unwrap()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        let backend = self.new_controller();
        for key in &self.keys {
            if let Err(e) = backend.delete_blocking(key) {
                eprintln!("cleaning up {key}: {e}");
            }
        }
        if std::thread::panicking() {
            // keep the logs of a failed test
            let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
            eprintln!("kept the state dir {}", dir.keep().display());
        }
    }
}

/// Homes that find `dist` in its cache (the same resolution the product does).
pub fn homes_for(dist: &FlinkDist) -> FlinkHomes {
    // <cache>/flink-<version>/pyflink
    let cache = dist.home.parent().and_then(Path::parent).unwrap();
    FlinkHomes::with_cache(cache)
}

pub fn flink_version(dist: &FlinkDist) -> FlinkVersion {
    match dist.major() {
        1 => FlinkVersion::v1_20,
        _ => FlinkVersion::v2_3,
    }
}

/// An application plan running the counter job with `args`.
pub fn counter_plan(
    key: &ResourceKey,
    dist: &FlinkDist,
    job: &TestJob,
    args: &CounterArgs,
    restore: Option<RestorePlan>,
    plan_hash: &str,
) -> (ClusterPlan, JobId) {
    let job_id = JobId::generate();
    let plan = ClusterPlan {
        job: Some(JobPlan {
            jar_uri: format!("local://{}", job.jar.display()),
            entry_class: Some(job.entry_class.clone()),
            args: args.to_args(),
            parallelism: 1,
            job_id: job_id.to_string(),
            restore,
        }),
        ..session_plan(key, dist, plan_hash)
    };
    (
        ClusterPlan {
            mode: ClusterMode::Application,
            ..plan
        },
        job_id,
    )
}

/// A session plan: one TaskManager with two slots.
pub fn session_plan(key: &ResourceKey, dist: &FlinkDist, plan_hash: &str) -> ClusterPlan {
    let mut config = FlinkConfig::new();
    config.set("execution.checkpointing.interval", "1s");
    // a lost TaskManager is noticed in about two seconds, and the job restarts at once
    config.set("heartbeat.interval", "1000");
    config.set("restart-strategy.type", "fixed-delay");
    config.set("restart-strategy.fixed-delay.attempts", "5");
    config.set("restart-strategy.fixed-delay.delay", "1 s");
    ClusterPlan {
        key: key.clone(),
        owner_uid: None,
        flink_version: flink_version(dist),
        mode: ClusterMode::Session,
        config,
        job: None,
        jobmanager: ProcessPlan {
            replicas: 1,
            memory_bytes: None,
            cpu: None,
        },
        taskmanager: ProcessPlan {
            replicas: 1,
            memory_bytes: None,
            cpu: None,
        },
        task_slots: 2,
        log_configuration: BTreeMap::new(),
        spec: Default::default(),
        plan_hash: plan_hash.to_string(),
    }
}

/// Polls `observe` until it reports a running JobManager with `taskmanagers` TaskManagers.
pub async fn wait_running(backend: &LocalBackend, key: &ResourceKey, taskmanagers: u32) {
    wait_for(
        STARTUP,
        &format!("{key} running with {taskmanagers} TaskManager(s)"),
        async || match backend.observe(key).await.unwrap() {
            ClusterObservation::Running {
                taskmanagers: n, ..
            } if n == taskmanagers => Some(()),
            ClusterObservation::Failed {
                reason, log_tail, ..
            } => {
                panic!("{key} failed: {reason}\n{}", log_tail.unwrap_or_default())
            }
            _ => None,
        },
    )
    .await;
}

/// Polls the REST API until the job is RUNNING.
pub async fn wait_job_running(backend: &LocalBackend, key: &ResourceKey, job: &JobId) {
    let client = backend.flink_client(key).unwrap();
    wait_for(
        STARTUP,
        &format!("job {job} of {key} RUNNING"),
        async || match client.job_state(job).await {
            Ok(flink::JobState::Running) => Some(()),
            Ok(flink::JobState::Failed) => panic!("job {job} of {key} FAILED"),
            _ => None,
        },
    )
    .await;
}

/// The pids of a cluster's processes, JobManager first.
pub fn pids(backend: &LocalBackend, key: &ResourceKey) -> Vec<u32> {
    backend
        .cluster_info(key)
        .unwrap()
        .expect("a deployed cluster")
        .processes
        .iter()
        .map(|p| p.pid)
        .collect()
}

/// Whether a process with this pid exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let state = s.rsplit_once(')')?.1.split_whitespace().next()?.to_string();
            Some(state != "Z" && state != "X")
        })
        .unwrap_or(false)
}

/// Processes whose command line mentions `path` (`pgrep -f`), zombies excluded.
pub fn processes_mentioning(path: &Path) -> Vec<u32> {
    let out = std::process::Command::new("pgrep")
        .arg("-f")
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .filter(|pid| alive(*pid))
        .collect()
}

/// Asserts that nothing of the cluster runs: no recorded pid, nothing mentioning its dir.
pub fn assert_nothing_runs(recorded: &[u32], cluster_dir: &Path) {
    let alive_pids: Vec<u32> = recorded.iter().copied().filter(|p| alive(*p)).collect();
    assert!(alive_pids.is_empty(), "still running: {alive_pids:?}");
    let found = processes_mentioning(cluster_dir);
    assert!(
        found.is_empty(),
        "processes of {} still run: {found:?}",
        cluster_dir.display()
    );
}

/// SIGKILLs one process (a crash).
pub fn crash(pid: u32) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap()),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
}
