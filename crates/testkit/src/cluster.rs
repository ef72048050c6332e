//! A real Flink session cluster for tests: one JobManager and N TaskManagers as local
//! processes, each cluster with its own config dir, ports, logs and state dirs, all stopped
//! when the guard drops (also while a test panics).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use flink::config::FlinkConfig;
use serde_json::Value;
use tempfile::TempDir;

use crate::FlinkDist;
use crate::process::{FlinkProcess, Reaper};

/// Set this environment variable to keep a cluster's directory (config, logs, checkpoints)
/// when its test panics; the path is printed.
pub const KEEP_DIR_ENV: &str = "FLINKPILOT_KEEP_CLUSTER_DIR";

/// How Flink restarts a failed job (`restart-strategy.*`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum RestartStrategy {
    /// Flink's own default: exponential-delay when checkpointing is on.
    #[default]
    FlinkDefault,
    /// No restart: the first failure ends the job FAILED.
    None,
    /// At most `attempts` restarts, `delay` apart.
    FixedDelay {
        /// Restarts before the job fails for good.
        attempts: u32,
        /// Pause before each restart.
        delay: Duration,
    },
}

/// Settings of a [`SessionCluster`]; start it with [`SessionClusterBuilder::start`].
#[derive(Debug)]
pub struct SessionClusterBuilder {
    dist: &'static FlinkDist,
    taskmanagers: usize,
    slots: u32,
    jobmanager_memory: String,
    taskmanager_memory: String,
    restart_strategy: RestartStrategy,
    config: FlinkConfig,
    startup_timeout: Duration,
}

impl SessionClusterBuilder {
    /// Number of TaskManagers (default 1).
    #[must_use]
    pub fn taskmanagers(mut self, n: usize) -> Self {
        self.taskmanagers = n;
        self
    }

    /// Slots per TaskManager (default 2).
    #[must_use]
    pub fn slots(mut self, n: u32) -> Self {
        self.slots = n;
        self
    }

    /// `jobmanager.memory.process.size` (default `768m`).
    #[must_use]
    pub fn jobmanager_memory(mut self, size: &str) -> Self {
        self.jobmanager_memory = size.to_string();
        self
    }

    /// `taskmanager.memory.process.size` (default `1024m`).
    #[must_use]
    pub fn taskmanager_memory(mut self, size: &str) -> Self {
        self.taskmanager_memory = size.to_string();
        self
    }

    /// The cluster-wide restart strategy (default: Flink's).
    #[must_use]
    pub fn restart_strategy(mut self, strategy: RestartStrategy) -> Self {
        self.restart_strategy = strategy;
        self
    }

    /// Any Flink option; applied last, so it overrides the defaults above.
    #[must_use]
    pub fn config(mut self, key: &str, value: &str) -> Self {
        self.config.set(key, value);
        self
    }

    /// How long the cluster may take to come up before the test fails (default 180 s: a busy
    /// 2-core CI machine starts several JVMs at once).
    #[must_use]
    pub fn startup_timeout(mut self, timeout: Duration) -> Self {
        self.startup_timeout = timeout;
        self
    }

    /// Starts the JobManager and TaskManagers and returns once the REST API answers and every
    /// TaskManager has registered.
    ///
    /// # Panics
    /// When the cluster does not come up in time or a process exits, with the tail of every
    /// process's log.
    pub async fn start(self) -> SessionCluster {
        let started = Instant::now();
        let dir = tempfile::Builder::new()
            .prefix("flinkpilot-cluster-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temp dir for a Flink cluster: {e}"));
        let root = dir.path().to_path_buf();
        for sub in ["conf", "log", "pid", "tmp", "checkpoints", "savepoints"] {
            create_dir(&root.join(sub));
        }
        let rest_port = free_port();
        let config = self.render_config(&root, free_port(), rest_port);
        write_conf_dir(self.dist, &root.join("conf"), &config);

        let reaper = Reaper::start(&root.join("reaper-groups"), &root)
            .unwrap_or_else(|e| panic!("cannot start the process reaper: {e}"));
        let jm_command = flink_command(self.dist, &root, "jobmanager.sh", &[]);
        let jobmanager =
            FlinkProcess::spawn("jobmanager", jm_command, &root.join("log/jobmanager.out"))
                .unwrap_or_else(|e| panic!("cannot start the Flink JobManager: {e}"));
        watch(&reaper, &jobmanager);

        let mut cluster = SessionCluster {
            dist: self.dist,
            config,
            rest_port,
            startup_time: Duration::ZERO,
            jobmanager,
            taskmanagers: Vec::new(),
            reaper,
            dir: Some(dir),
        };
        let ids: Vec<String> = (0..self.taskmanagers)
            .map(|_| cluster.spawn_taskmanager())
            .collect();
        cluster
            .wait_for_taskmanagers(&ids, started + self.startup_timeout)
            .await;
        cluster.check_version().await;
        cluster.startup_time = started.elapsed();
        eprintln!(
            "flinkpilot-testkit: Flink {} session cluster ({} TaskManager(s) x {} slots) ready at \
             {} in {:.1?} (dir {})",
            cluster.dist.version,
            self.taskmanagers,
            self.slots,
            cluster.rest_url(),
            cluster.startup_time,
            root.display()
        );
        cluster
    }

    fn render_config(&self, root: &Path, rpc_port: u16, rest_port: u16) -> FlinkConfig {
        let mut c = self.dist.default_config();
        // The distribution's JVM flags (e.g. --add-opens for Java 17) stay; ours keep the
        // JVM's temp files inside the cluster dir and leave no hsperfdata behind on SIGKILL.
        let tmp = root.join("tmp");
        let java_opts = format!(
            "{} -XX:-UsePerfData -Djava.io.tmpdir={}",
            c.get("env.java.opts.all").unwrap_or_default(),
            tmp.display()
        );
        c.set("env.java.opts.all", java_opts.trim());
        let localhost = "127.0.0.1";
        for key in [
            "jobmanager.rpc.address",
            "jobmanager.bind-host",
            "taskmanager.host",
            "taskmanager.bind-host",
            "rest.address",
            "rest.bind-address",
        ] {
            c.set(key, localhost);
        }
        c.set("jobmanager.rpc.port", rpc_port.to_string());
        c.set("rest.port", rest_port.to_string());
        c.set(
            "jobmanager.memory.process.size",
            self.jobmanager_memory.as_str(),
        );
        c.set(
            "taskmanager.memory.process.size",
            self.taskmanager_memory.as_str(),
        );
        c.set("taskmanager.numberOfTaskSlots", self.slots.to_string());
        c.set("parallelism.default", "1");
        c.set("io.tmp.dirs", tmp.display().to_string());
        c.set("web.tmpdir", tmp.join("web").display().to_string());
        c.set(
            "execution.checkpointing.dir",
            file_uri(&root.join("checkpoints")),
        );
        c.set(
            "execution.checkpointing.savepoint-dir",
            file_uri(&root.join("savepoints")),
        );
        // Tests inspect checkpoints after a job ends (last-state, recovery).
        c.set(
            "execution.checkpointing.externalized-checkpoint-retention",
            "RETAIN_ON_CANCELLATION",
        );
        // A killed TaskManager is noticed after two failed heartbeats (~2 s) instead of ~20 s;
        // the timeout for a hung (not dead) one stays at Flink's default.
        c.set("heartbeat.interval", "1000");
        match &self.restart_strategy {
            RestartStrategy::FlinkDefault => {}
            RestartStrategy::None => {
                c.set("restart-strategy.type", "none");
            }
            RestartStrategy::FixedDelay { attempts, delay } => {
                c.set("restart-strategy.type", "fixed-delay");
                c.set(
                    "restart-strategy.fixed-delay.attempts",
                    attempts.to_string(),
                );
                c.set(
                    "restart-strategy.fixed-delay.delay",
                    format!("{} ms", delay.as_millis()),
                );
            }
        }
        c.extend(self.config.iter());
        c
    }
}

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
        SessionClusterBuilder {
            dist,
            taskmanagers: 1,
            slots: 2,
            jobmanager_memory: "768m".to_string(),
            taskmanager_memory: "1024m".to_string(),
            restart_strategy: RestartStrategy::default(),
            config: FlinkConfig::new(),
            startup_timeout: Duration::from_secs(180),
        }
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
        self.wait_for_taskmanagers(&[id], Instant::now() + Duration::from_secs(120))
            .await;
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

    /// Polls the REST API until every TaskManager in `ids` has registered; fails fast when a
    /// process exits.
    async fn wait_for_taskmanagers(&mut self, ids: &[String], deadline: Instant) {
        let client = http_client();
        let url = format!("{}/taskmanagers", self.rest_url());
        loop {
            if let Some(exited) = self.exited_process() {
                self.fail(&format!("Flink {exited} while the cluster was starting"));
            }
            if let Some(body) = get_json(&client, &url).await {
                let registered: Vec<&str> = body["taskmanagers"]
                    .as_array()
                    .map(|tms| tms.iter().filter_map(|tm| tm["id"].as_str()).collect())
                    .unwrap_or_default();
                if ids.iter().all(|id| registered.contains(&id.as_str())) {
                    return;
                }
            }
            if Instant::now() > deadline {
                self.fail(&format!(
                    "Flink {} cluster at {} did not register TaskManagers {ids:?} in time",
                    self.dist.version,
                    self.rest_url()
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// A stale process on our port would answer too; the version shows it is ours.
    async fn check_version(&self) {
        let url = format!("{}/config", self.rest_url());
        let body = get_json(&http_client(), &url).await;
        let version = body.as_ref().and_then(|b| b["flink-version"].as_str());
        if version != Some(self.dist.version.as_str()) {
            self.fail(&format!(
                "{url} reports Flink {version:?}, expected {}: is another process on port {}?",
                self.dist.version, self.rest_port
            ));
        }
    }

    fn exited_process(&mut self) -> Option<String> {
        std::iter::once(&mut self.jobmanager)
            .chain(&mut self.taskmanagers)
            .find_map(|p| {
                p.exit_status()
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

/// The cluster's `config.yaml`, plus the distribution's other conf files (log4j configs for
/// the daemons and the CLI), so `FLINK_CONF_DIR=<conf> bin/flink …` works too.
fn write_conf_dir(dist: &FlinkDist, conf: &Path, config: &FlinkConfig) {
    let entries = std::fs::read_dir(dist.conf_dir())
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dist.conf_dir().display()));
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name();
        if name != "config.yaml" && name != "flink-conf.yaml" && entry.path().is_file() {
            let to = conf.join(&name);
            std::fs::copy(entry.path(), &to).unwrap_or_else(|e| {
                panic!(
                    "cannot copy {} to {}: {e}",
                    entry.path().display(),
                    to.display()
                )
            });
        }
    }
    let path = conf.join("config.yaml");
    std::fs::write(&path, config.to_yaml())
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

fn watch(reaper: &Reaper, process: &FlinkProcess) {
    reaper
        .watch(process.pid())
        .unwrap_or_else(|e| panic!("cannot register {} with the reaper: {e}", process.name()));
}

fn create_dir(path: &Path) {
    std::fs::create_dir_all(path)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
}

fn file_uri(path: &Path) -> String {
    format!("file://{}", path.display())
}

/// A port that was free a moment ago. Another process may take it before Flink binds it;
/// then the JobManager exits and the start fails with its log, rather than hanging.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("cannot find a free local port: {e}"))
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
