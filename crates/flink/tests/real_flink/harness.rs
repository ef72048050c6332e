//! One real Flink session cluster per version, shared by every scenario of that version (they
//! run in parallel, each with its own jobs), plus helpers to run and watch the counter job.

use std::ops::Deref;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use flinkpilot_flink::jobs::JobState;
use flinkpilot_flink::{FlinkClient, JarId, JobId, RunJarRequest};
use testkit::{
    CounterArgs, FLINK_1_20, FLINK_2_3, FlinkDist, RestartStrategy, SessionCluster, TestJob,
    wait_for,
};

/// Longest wait for a job state change; generous for a busy 2-core CI machine.
pub const JOB_TIMEOUT: Duration = Duration::from_secs(120);

/// A cluster shared by the scenarios of one Flink version, with the counter jar uploaded.
pub struct Shared {
    pub cluster: SessionCluster,
    pub counter: TestJob,
    pub jar: JarId,
}

/// Per version: the shared cluster while scenarios still use it, and how many finished.
struct Slot {
    shared: Option<Arc<Shared>>,
    finished: usize,
}

/// A scenario's hold on its version's shared cluster. When the last of `total` scenarios
/// lets go, the cluster is dropped, which stops its processes; when only some scenarios run
/// (a test filter), the testkit's reaper stops it at process exit instead.
pub struct Lease {
    shared: Arc<Shared>,
    slot: &'static Mutex<Slot>,
    total: usize,
}

impl Deref for Lease {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.shared
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        slot.finished += 1;
        let last = (slot.finished == self.total).then(|| slot.shared.take());
        drop(slot);
        // The cluster itself is dropped with the last Arc, outside the lock.
        drop(last);
    }
}

/// The shared cluster of `version` for one of `total` scenarios, started on first use.
pub fn lease(version: &str, total: usize) -> Lease {
    static V2_3: Mutex<Slot> = Mutex::new(Slot {
        shared: None,
        finished: 0,
    });
    static V1_20: Mutex<Slot> = Mutex::new(Slot {
        shared: None,
        finished: 0,
    });
    let slot = match version {
        FLINK_2_3 => &V2_3,
        FLINK_1_20 => &V1_20,
        other => panic!("no shared cluster for Flink {other}"),
    };
    let mut guard = slot.lock().unwrap_or_else(PoisonError::into_inner);
    let shared = match &guard.shared {
        Some(shared) => shared.clone(),
        None => {
            let version = version.to_string();
            // Started on a thread of its own: the calling test is already inside a runtime.
            let shared = std::thread::spawn(move || start_shared(&version))
                .join()
                .unwrap_or_else(|_| panic!("the shared Flink cluster did not start"));
            let shared = Arc::new(shared);
            guard.shared = Some(shared.clone());
            shared
        }
    };
    Lease {
        shared,
        slot,
        total,
    }
}

fn start_shared(version: &str) -> Shared {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dist = FlinkDist::get(version);
        let counter = TestJob::build_for("counter", dist);
        let cluster = SessionCluster::builder(dist)
            .taskmanagers(1)
            .slots(16)
            .taskmanager_memory("1536m")
            // A deliberately failing job must end FAILED at once, not restart.
            .restart_strategy(RestartStrategy::None)
            // Resource requirements can only be changed under the adaptive scheduler.
            .config("jobmanager.scheduler", "adaptive")
            // Rescale right away instead of after Flink's 30 s cool-down; 1.20 and 2.x name
            // the option differently, and each ignores the other's key.
            .config("jobmanager.adaptive-scheduler.scaling-interval.min", "1 s")
            .config(
                "jobmanager.adaptive-scheduler.executing.cooldown-after-rescaling",
                "1 s",
            )
            .start()
            .await;
        let client = client_for(&cluster);
        let jar = client.upload_jar(&counter.jar).await.unwrap();
        Shared {
            cluster,
            counter,
            jar,
        }
    })
}

/// A client of `cluster` with the default settings.
pub fn client_for(cluster: &SessionCluster) -> FlinkClient {
    FlinkClient::from_url(&cluster.rest_url()).unwrap()
}

impl Shared {
    /// A fresh client (one per test: a client's connections belong to the test's runtime).
    pub fn client(&self) -> FlinkClient {
        client_for(&self.cluster)
    }

    /// The Flink version of this cluster.
    pub fn version(&self) -> &str {
        &self.cluster.dist().version
    }

    /// Whether this is a Flink 2.x cluster.
    pub fn is_flink_2(&self) -> bool {
        self.cluster.dist().major() >= 2
    }

    /// Runs the counter jar with `args`, optionally from a snapshot, and waits until all its
    /// tasks run.
    pub async fn run_counter(
        &self,
        client: &FlinkClient,
        args: CounterArgs,
        parallelism: u32,
        savepoint: Option<&str>,
    ) -> JobId {
        let request = RunJarRequest {
            entry_class: Some(self.counter.entry_class.clone()),
            program_args: args.to_args(),
            parallelism: Some(parallelism),
            savepoint_path: savepoint.map(str::to_string),
            ..RunJarRequest::default()
        };
        let job = client.run_jar(&self.jar, &request).await.unwrap().job_id;
        self.wait_all_running(client, &job).await;
        job
    }

    /// Waits until the job and every one of its vertices is RUNNING.
    pub async fn wait_all_running(&self, client: &FlinkClient, job: &JobId) {
        wait_for(JOB_TIMEOUT, &format!("job {job} to run"), async || {
            let details = client.job(job).await.unwrap();
            assert!(
                !details.state.is_globally_terminal(),
                "job {job} ended {} while waiting for it to run\n{}",
                details.state,
                self.cluster.log_tails(40)
            );
            let running = details.state == JobState::Running
                && !details.vertices.is_empty()
                && details.vertices.iter().all(|v| v.status == "RUNNING");
            running.then_some(())
        })
        .await;
    }

    /// Waits until the job is in `state`.
    pub async fn wait_state(&self, client: &FlinkClient, job: &JobId, state: JobState) {
        wait_for(
            JOB_TIMEOUT,
            &format!("job {job} to be {state}"),
            async || (client.job_state(job).await.unwrap() == state).then_some(()),
        )
        .await;
    }
}

/// A `file://` URI for a local directory.
pub fn file_uri(path: &std::path::Path) -> String {
    format!("file://{}", path.display())
}

/// The local path of a `file:` URI as Flink reports it (`file:/a/b` or `file:///a/b`).
pub fn local_path(uri: &str) -> std::path::PathBuf {
    let path = uri
        .strip_prefix("file://")
        .or_else(|| uri.strip_prefix("file:"))
        .unwrap_or(uri);
    std::path::PathBuf::from(path)
}
