//! A real Flink session cluster for tests: one JobManager and N TaskManagers as local
//! processes, each cluster with its own config dir, ports, logs and state dirs, all stopped
//! when the guard drops (also while a test panics).

mod builder;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub use builder::{RestartStrategy, SessionClusterBuilder};
use flink::config::FlinkConfig;
use serde_json::Value;
use tempfile::TempDir;

use crate::FlinkDist;
use crate::process::{FlinkProcess, Reaper};

/// Set this environment variable to keep a cluster's directory (config, logs, checkpoints)
/// when its test panics; the path is printed.
pub const KEEP_DIR_ENV: &str = "FLINKPILOT_KEEP_CLUSTER_DIR";

/// A running Flink session cluster. Dropping it kills every process it started and removes
/// its directory.
#[derive(Debug)]
pub struct SessionCluster {
    dist: &'static FlinkDist,
    config: FlinkConfig,
    rest_port: u16,
    startup_time: Duration,
    jobmanager: FlinkProcess,
    taskmanagers: Vec<FlinkProcess>,
    reaper: Reaper,
    dir: Option<TempDir>,
}

impl SessionCluster {
    /// A builder with the defaults: 1 TaskManager with 2 slots, JobManager 768m, TaskManager
    /// 1024m, Flink's restart strategy, checkpoints and savepoints inside the cluster dir.
    pub fn builder(dist: &'static FlinkDist) -> SessionClusterBuilder {
        SessionClusterBuilder::new(dist)
    }

    /// A cluster with the builder's defaults on the default Flink version.
    pub async fn start() -> SessionCluster {
        Self::builder(FlinkDist::get_default()).start().await
    }

    /// The distribution the cluster runs.
    pub fn dist(&self) -> &'static FlinkDist {
        self.dist
    }

    /// The JobManager's REST API, e.g. `http://127.0.0.1:41234` (no trailing slash).
    pub fn rest_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.rest_port)
    }

    /// The REST port.
    pub fn rest_port(&self) -> u16 {
        self.rest_port
    }

    /// How long [`SessionClusterBuilder::start`] took, until every TaskManager registered.
    pub fn startup_time(&self) -> Duration {
        self.startup_time
    }

    /// The options in the cluster's `config.yaml`.
    pub fn config(&self) -> &FlinkConfig {
        &self.config
    }

    /// The cluster's own directory (removed on drop).
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().map_or(Path::new(""), TempDir::path)
    }

    /// `FLINK_CONF_DIR` of the cluster: use it with `$FLINK_HOME/bin/flink` to talk to it.
    pub fn conf_dir(&self) -> PathBuf {
        self.dir().join("conf")
    }

    /// Where every process's console output (`jobmanager.out`, `taskmanager-N.out`) and Flink's
    /// own log files go.
    pub fn log_dir(&self) -> PathBuf {
        self.dir().join("log")
    }

    /// `execution.checkpointing.dir`, as a path.
    pub fn checkpoint_dir(&self) -> PathBuf {
        self.dir().join("checkpoints")
    }

    /// `execution.checkpointing.savepoint-dir`, as a path.
    pub fn savepoint_dir(&self) -> PathBuf {
        self.dir().join("savepoints")
    }

    /// The JobManager's console output (its whole log, plus anything the JVM printed).
    pub fn jobmanager_log(&self) -> &Path {
        self.jobmanager.log()
    }

    /// TaskManager `index`'s console output, which includes what jobs print to stdout.
    pub fn taskmanager_log(&self, index: usize) -> &Path {
        self.taskmanager(index).log()
    }

    /// The JobManager's pid (also its process group id).
    pub fn jobmanager_pid(&self) -> u32 {
        self.jobmanager.pid()
    }

    /// TaskManager `index`'s pid (also its process group id).
    pub fn taskmanager_pid(&self, index: usize) -> u32 {
        self.taskmanager(index).pid()
    }

    /// Number of TaskManagers started so far, killed ones included; indexes are `0..n`.
    pub fn taskmanager_count(&self) -> usize {
        self.taskmanagers.len()
    }

    /// The pids of every process this cluster started, each also its process group id.
    pub fn pids(&self) -> Vec<u32> {
        std::iter::once(&self.jobmanager)
            .chain(&self.taskmanagers)
            .map(FlinkProcess::pid)
            .collect()
    }

    /// SIGKILLs the JobManager (a crash, for fault tests) and waits until it is gone.
    pub fn kill_jobmanager(&mut self) {
        self.jobmanager.kill();
    }

    /// SIGKILLs TaskManager `index` and waits until it is gone.
    pub fn kill_taskmanager(&mut self, index: usize) {
        self.taskmanager_mut(index).kill();
    }

    /// Starts one more TaskManager and returns its index once it has registered.
    pub async fn add_taskmanager(&mut self) -> usize {
        let id = self.spawn_taskmanager();
        let deadline = Instant::now() + Duration::from_secs(120);
        if let Err(what) = self.wait_for_taskmanagers(&[id], deadline).await {
            self.fail(&what);
        }
        self.taskmanagers.len() - 1
    }

    /// The last `lines` lines of every process's console output, for failure messages.
    pub fn log_tails(&self, lines: usize) -> String {
        std::iter::once(&self.jobmanager)
            .chain(&self.taskmanagers)
            .map(|p| {
                format!(
                    "----- {} (pid {}), last {lines} lines of {}:\n{}",
                    p.name(),
                    p.pid(),
                    p.log().display(),
                    tail(p.log(), lines)
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn taskmanager(&self, index: usize) -> &FlinkProcess {
        self.taskmanagers.get(index).unwrap_or_else(|| {
            panic!(
                "no TaskManager {index}: this cluster started {}",
                self.taskmanagers.len()
            )
        })
    }

    fn taskmanager_mut(&mut self, index: usize) -> &mut FlinkProcess {
        let started = self.taskmanagers.len();
        self.taskmanagers
            .get_mut(index)
            .unwrap_or_else(|| panic!("no TaskManager {index}: this cluster started {started}"))
    }

    /// Starts TaskManager number `len()` with resource id `tm-<index>`, and returns that id.
    fn spawn_taskmanager(&mut self) -> String {
        let index = self.taskmanagers.len();
        let id = format!("tm-{index}");
        let command = flink_command(
            self.dist,
            self.dir(),
            "taskmanager.sh",
            &["-D".to_string(), format!("taskmanager.resource-id={id}")],
        );
        let log = self.log_dir().join(format!("taskmanager-{index}.out"));
        let process = FlinkProcess::spawn(&format!("taskmanager-{index}"), command, &log)
            .unwrap_or_else(|e| self.fail(&format!("cannot start Flink TaskManager {index}: {e}")));
        watch(&self.reaper, &process);
        self.taskmanagers.push(process);
        id
    }

    /// Polls the REST API until every TaskManager in `ids` has registered; gives up early when
    /// a process exits.
    async fn wait_for_taskmanagers(
        &mut self,
        ids: &[String],
        deadline: Instant,
    ) -> Result<(), String> {
        let client = http_client();
        let url = format!("{}/taskmanagers", self.rest_url());
        loop {
            if let Some(exited) = self.exited_process() {
                return Err(format!("Flink {exited} while the cluster was starting"));
            }
            if let Some(body) = get_json(&client, &url).await {
                let registered: Vec<&str> = body["taskmanagers"]
                    .as_array()
                    .map(|tms| tms.iter().filter_map(|tm| tm["id"].as_str()).collect())
                    .unwrap_or_default();
                if ids.iter().all(|id| registered.contains(&id.as_str())) {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "Flink {} cluster at {} did not register TaskManagers {ids:?} in time",
                    self.dist.version,
                    self.rest_url()
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// A stale process on our port would answer too; the version shows it is ours.
    async fn check_version(&self) -> Result<(), String> {
        let url = format!("{}/config", self.rest_url());
        let body = get_json(&http_client(), &url).await;
        let version = body.as_ref().and_then(|b| b["flink-version"].as_str());
        if version == Some(self.dist.version.as_str()) {
            return Ok(());
        }
        Err(format!(
            "{url} reports Flink {version:?}, expected {}: is another process on port {}?",
            self.dist.version, self.rest_port
        ))
    }

    fn exited_process(&mut self) -> Option<String> {
        std::iter::once(&mut self.jobmanager)
            .chain(&mut self.taskmanagers)
            .find_map(|p| {
                p.unexpected_exit()
                    .map(|status| format!("{} exited ({status})", p.name()))
            })
    }

    fn fail(&self, what: &str) -> ! {
        panic!("{what}\n{}", self.log_tails(60))
    }
}

impl Drop for SessionCluster {
    fn drop(&mut self) {
        for tm in &mut self.taskmanagers {
            tm.kill();
        }
        self.jobmanager.kill();
        if std::thread::panicking()
            && std::env::var_os(KEEP_DIR_ENV).is_some()
            && let Some(dir) = self.dir.take()
        {
            eprintln!(
                "flinkpilot-testkit: kept cluster dir {}",
                dir.keep().display()
            );
        }
        // Fields drop next: the reaper, then the directory.
    }
}

/// `bin/<script> start-foreground <args>` with the cluster's conf, log and pid dirs.
fn flink_command(dist: &FlinkDist, root: &Path, script: &str, args: &[String]) -> Command {
    let mut command = Command::new(dist.bin(script));
    command
        .arg("start-foreground")
        .args(args)
        .current_dir(root)
        .env("FLINK_HOME", &dist.home)
        .env("FLINK_CONF_DIR", root.join("conf"))
        .env("FLINK_LOG_DIR", root.join("log"))
        .env("FLINK_PID_DIR", root.join("pid"))
        .env_remove("FLINK_ENV_JAVA_OPTS");
    command
}

fn watch(reaper: &Reaper, process: &FlinkProcess) {
    reaper
        .watch(process.pid())
        .unwrap_or_else(|e| panic!("cannot register {} with the reaper: {e}", process.name()));
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap_or_else(|e| panic!("cannot build an HTTP client: {e}"))
}

/// The JSON body of a successful GET, or `None` while the server is not (yet) answering.
async fn get_json(client: &reqwest::Client, url: &str) -> Option<Value> {
    let response = client.get(url).send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    response.json().await.ok()
}

fn tail(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read: {e})"),
    }
}
