//! Settings of a session cluster, its `config.yaml`, and starting it.

use std::hash::{BuildHasher, RandomState};
use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

use flink::config::FlinkConfig;

use super::{SessionCluster, flink_command, watch};
use crate::FlinkDist;
use crate::process::{FlinkProcess, Reaper};

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
    java_options: String,
    restart_strategy: RestartStrategy,
    config: FlinkConfig,
    startup_timeout: Duration,
}

/// Why one start attempt failed; a port taken by someone else is worth another attempt.
struct StartFailure {
    message: String,
    port_clash: bool,
}

/// Start attempts when the chosen ports turn out to be taken.
const START_ATTEMPTS: u32 = 3;

impl SessionClusterBuilder {
    /// The defaults: 1 TaskManager with 2 slots, JobManager 768m, TaskManager 1024m.
    pub(super) fn new(dist: &'static FlinkDist) -> Self {
        Self {
            dist,
            taskmanagers: 1,
            slots: 2,
            jobmanager_memory: "768m".to_string(),
            taskmanager_memory: "1024m".to_string(),
            java_options: String::new(),
            restart_strategy: RestartStrategy::default(),
            config: FlinkConfig::new(),
            startup_timeout: Duration::from_secs(180),
        }
    }

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

    /// JVM options for every process, added after the distribution's `env.java.opts.all`.
    #[must_use]
    pub fn java_options(mut self, options: &str) -> Self {
        self.java_options = format!("{} {options}", self.java_options);
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
        let mut attempt = 1;
        loop {
            match self.try_start(started).await {
                Ok(cluster) => return cluster,
                Err(failure) if failure.port_clash && attempt < START_ATTEMPTS => {
                    eprintln!("flinkpilot-testkit: a Flink port was taken; starting again");
                    attempt += 1;
                }
                Err(failure) => panic!("{}", failure.message),
            }
        }
    }

    async fn try_start(&self, started: Instant) -> Result<SessionCluster, StartFailure> {
        let dir = tempfile::Builder::new()
            .prefix("flinkpilot-cluster-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temp dir for a Flink cluster: {e}"));
        let root = dir.path().to_path_buf();
        for sub in ["conf", "log", "pid", "tmp", "checkpoints", "savepoints"] {
            let path = root.join(sub);
            std::fs::create_dir_all(&path)
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        }
        let [rpc_port, rest_port] = free_ports();
        let config = self.render_config(&root, rpc_port, rest_port);
        write_conf_dir(self.dist, &root.join("conf"), &config);

        let reaper = Reaper::start(&root.join("reaper-groups"), &root)
            .unwrap_or_else(|e| panic!("cannot start the process reaper: {e}"));
        let command = flink_command(self.dist, &root, "jobmanager.sh", &[]);
        let jobmanager =
            FlinkProcess::spawn("jobmanager", command, &root.join("log/jobmanager.out"))
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
        let ready = match cluster
            .wait_for_taskmanagers(&ids, started + self.startup_timeout)
            .await
        {
            Ok(()) => cluster.check_version().await,
            Err(e) => Err(e),
        };
        if let Err(what) = ready {
            let jm_log = std::fs::read_to_string(cluster.jobmanager_log()).unwrap_or_default();
            return Err(StartFailure {
                port_clash: jm_log.contains("BindException"),
                message: format!("{what}\n{}", cluster.log_tails(60)),
            });
        }
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
        Ok(cluster)
    }

    fn render_config(&self, root: &Path, rpc_port: u16, rest_port: u16) -> FlinkConfig {
        let mut c = self.dist.default_config();
        // The distribution's JVM flags (e.g. --add-opens for Java 17) stay; ours keep the
        // JVM's temp files inside the cluster dir and leave no hsperfdata behind on SIGKILL.
        let tmp = root.join("tmp");
        let java_opts = format!(
            "{} -XX:-UsePerfData -Djava.io.tmpdir={} {}",
            c.get("env.java.opts.all").unwrap_or_default(),
            tmp.display(),
            self.java_options
        );
        c.set("env.java.opts.all", java_opts.trim());
        for key in [
            "jobmanager.rpc.address",
            "jobmanager.bind-host",
            "taskmanager.host",
            "taskmanager.bind-host",
            "rest.address",
            "rest.bind-address",
        ] {
            c.set(key, "127.0.0.1");
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

fn file_uri(path: &Path) -> String {
    format!("file://{}", path.display())
}

/// Two distinct ports that are free now, drawn below the kernel's ephemeral range: every
/// port Flink binds as `0` (TaskManager RPC, data, blob) comes from that range, so ours
/// cannot be taken by a JVM starting at the same time. Another process may still take one
/// before Flink binds it; [`SessionClusterBuilder::start`] then tries again.
fn free_ports() -> [u16; 2] {
    let first = bind_free_port();
    let second = bind_free_port();
    let ports = [port_of(&first), port_of(&second)];
    drop((first, second));
    ports
}

fn bind_free_port() -> TcpListener {
    const LOWEST: u16 = 10_000;
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    if ephemeral_start > LOWEST + 1_000 {
        let span = u64::from(ephemeral_start - LOWEST);
        let random = RandomState::new();
        for i in 0..200_u32 {
            let offset = u16::try_from(random.hash_one(i) % span).unwrap_or(0);
            if let Ok(listener) = TcpListener::bind(("127.0.0.1", LOWEST + offset)) {
                return listener;
            }
        }
    }
    TcpListener::bind("127.0.0.1:0")
        .unwrap_or_else(|e| panic!("cannot find a free local port: {e}"))
}

fn port_of(listener: &TcpListener) -> u16 {
    listener
        .local_addr()
        .unwrap_or_else(|e| panic!("cannot read a bound port: {e}"))
        .port()
}
