//! What the end-to-end tests share: a state dir with the counter jar, the `flinkpilot` binary
//! (commands and a controller process), the store read directly, the Flink processes found in
//! `/proc`, and the counter's output.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use api::{FlinkDeployment, FlinkJobState, ResourceLifecycleState};
use engine::ResourceKey;
use local::{LocalStore, StateDir, StoredObject};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use testkit::{CounterOutput, FlinkDist, TestJob, wait_until};

/// Long enough for a Flink cluster to start on a busy 2-core machine.
pub const START: Duration = Duration::from_secs(120);

/// One state dir with its controller; every Flink process under it is killed on drop.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub flink_home: PathBuf,
    pub controller: Option<Child>,
    pub store: LocalStore,
}

impl Env {
    /// A fresh state dir holding the counter jar at `usrlib/counter.jar` (where manifests'
    /// `local:///opt/flink/usrlib/counter.jar` points locally).
    pub fn new() -> Self {
        let dist = FlinkDist::get_default();
        let job = TestJob::build_for("counter", dist);
        let dir = tempfile::Builder::new()
            .prefix("fp-e2e-")
            .tempdir()
            .expect("temp dir");
        let usrlib = dir.path().join("usrlib");
        std::fs::create_dir_all(&usrlib).expect("usrlib");
        std::fs::copy(&job.jar, usrlib.join("counter.jar")).expect("copy the counter jar");
        let store = LocalStore::new(StateDir::new(dir.path()));
        Env {
            dir,
            flink_home: dist.home.clone(),
            controller: None,
            store,
        }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// A `flinkpilot local …` command on this state dir.
    pub fn command(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_flinkpilot"));
        c.arg("local")
            .arg("--state-dir")
            .arg(self.root())
            .arg("--flink-home")
            .arg(&self.flink_home);
        c
    }

    /// Runs `flinkpilot local <args>` and returns its stdout; panics with its output when it
    /// fails.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = self.command().args(args).output().expect("run flinkpilot");
        assert!(
            out.status.success(),
            "flinkpilot local {args:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `flinkpilot local <args>` expecting failure; returns stderr.
    pub fn cli_fails(&self, args: &[&str]) -> String {
        let out = self.command().args(args).output().expect("run flinkpilot");
        assert!(
            !out.status.success(),
            "flinkpilot local {args:?} should have failed:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Applies a manifest given as text.
    pub fn apply(&self, name: &str, manifest: &str) {
        let file = self.root().join(format!("{name}.yaml"));
        std::fs::write(&file, manifest).expect("write manifest");
        self.cli(&["apply", "-f", file.to_str().expect("utf-8 path")]);
    }

    /// Starts `flinkpilot local up` (output in `controller.out`), with extra environment.
    pub fn start_controller(&mut self, env: &[(&str, &str)]) {
        assert!(self.controller.is_none(), "a controller already runs");
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root().join("controller.out"))
            .expect("controller output");
        let mut c = self.command();
        c.args(["up", "--plain", "--observe-interval", "1"])
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup"))
            .stderr(out);
        for (k, v) in env {
            c.env(k, v);
        }
        self.controller = Some(c.spawn().expect("start the controller"));
    }

    /// Waits for the controller to exit by itself (a failpoint); returns whether it was
    /// killed by a signal.
    pub fn wait_controller_crash(&mut self, timeout: Duration) -> bool {
        let child = self.controller.as_mut().expect("a controller runs");
        let mut status = None;
        wait_until(timeout, "the controller to crash at its failpoint", || {
            status = child.try_wait().expect("wait");
            status.is_some()
        });
        self.controller = None;
        use std::os::unix::process::ExitStatusExt;
        status.is_some_and(|s| s.signal().is_some())
    }

    /// Stops the controller (SIGTERM: Flink keeps running).
    pub fn stop_controller(&mut self) {
        if let Some(mut child) = self.controller.take() {
            let pid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(0));
            let _ = kill(pid, Signal::SIGTERM);
            // Bounded, so a controller that ignores SIGTERM fails the test instead of hanging
            // the suite.
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            while matches!(child.try_wait(), Ok(None)) {
                if std::time::Instant::now() >= deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    assert!(
                        std::thread::panicking(),
                        "the controller did not stop within 60 s of SIGTERM"
                    );
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// The deployment as stored.
    pub fn get(&self, name: &str) -> Option<FlinkDeployment> {
        self.store
            .get::<FlinkDeployment>(&ResourceKey::new("default", name))
            .expect("read the store")
    }

    /// Waits until `cond` holds for the stored deployment.
    pub fn wait_for_state(
        &self,
        name: &str,
        timeout: Duration,
        what: &str,
        mut cond: impl FnMut(&FlinkDeployment) -> bool,
    ) -> FlinkDeployment {
        let mut last = None;
        let mut found = None;
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if let Some(d) = self.get(name) {
                if cond(&d) {
                    found = Some(d);
                    break;
                }
                last = Some(d);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        found.unwrap_or_else(|| {
            panic!(
                "timed out after {timeout:?} waiting for {name} to be {what}; last status: \
                 {:#?}\ncontroller output:\n{}",
                last.and_then(|d| d.status),
                self.controller_output()
            )
        })
    }

    /// Waits until the job runs on a ready JobManager and the spec is stable, and returns the
    /// deployment.
    pub fn wait_stable(&self, name: &str) -> FlinkDeployment {
        self.wait_for_state(name, START, "STABLE with the job RUNNING", |d| {
            lifecycle(d) == Some(ResourceLifecycleState::Stable)
                && job_state(d) == Some(FlinkJobState::Running)
                && d.status.as_ref().and_then(|s| s.observed_generation) == d.metadata.generation
        })
    }

    /// Waits until one of the events of the `K` named `name` satisfies `cond(reason, message)`,
    /// and returns them all as `(reason, message)`. `act` records events after it writes the
    /// status, so a status just seen may not have its event yet.
    pub fn wait_event<K: StoredObject>(
        &self,
        name: &str,
        what: &str,
        mut cond: impl FnMut(&str, &str) -> bool,
    ) -> Vec<(String, String)> {
        let key = ResourceKey::new("default", name);
        let mut events = Vec::new();
        let deadline = std::time::Instant::now() + START;
        while std::time::Instant::now() < deadline {
            events = self
                .store
                .events::<K>(&key)
                .expect("read events")
                .into_iter()
                .map(|e| (e.reason, e.message))
                .collect();
            if events.iter().any(|(r, m)| cond(r, m)) {
                return events;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("timed out after {START:?} waiting for {what}; events of {name}: {events:#?}")
    }

    pub fn controller_output(&self) -> String {
        std::fs::read_to_string(self.root().join("controller.out")).unwrap_or_default()
    }

    /// The output dir of a counter deployment named `name`.
    pub fn output(&self, name: &str) -> CounterOutput {
        CounterOutput::new(self.root().join("out").join(name))
    }

    /// Flink processes of this state dir's clusters: `(pid, is JobManager, cluster name)`.
    pub fn flink_processes(&self) -> Vec<(i32, bool, String)> {
        flink_processes_under(self.root())
    }

    /// JobManager processes of cluster `name`.
    pub fn jobmanagers(&self, name: &str) -> usize {
        self.flink_processes()
            .iter()
            .filter(|(_, jm, n)| *jm && n == name)
            .count()
    }

    /// Processes of cluster `name`.
    pub fn processes_of(&self, name: &str) -> usize {
        self.flink_processes()
            .iter()
            .filter(|(_, _, n)| n == name)
            .count()
    }

    /// Waits until at least `n` records were counted after `after_millis` for every key.
    pub fn wait_counting(&self, name: &str, after_millis: u64, keys: u64) {
        let out = self.output(name);
        wait_until(
            START,
            &format!("{name} to count after {after_millis}"),
            || {
                let firsts = out.first_counts_after(after_millis);
                firsts.len() as u64 == keys
            },
        );
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        self.stop_controller();
        // Never leak a JVM, whatever the test did.
        for (pid, _, _) in self.flink_processes() {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        if std::thread::panicking() {
            eprintln!("controller output:\n{}", self.controller_output());
        }
    }
}

/// Java processes whose command line names a cluster dir under `root`
/// (`…/clusters/<namespace>/<name>/conf`).
pub fn flink_processes_under(root: &Path) -> Vec<(i32, bool, String)> {
    let marker = format!("{}/clusters/default/", root.display());
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(raw) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
        if !cmdline.contains("java") {
            continue;
        }
        let Some(at) = cmdline.find(&marker) else {
            continue;
        };
        let name: String = cmdline[at + marker.len()..]
            .chars()
            .take_while(|c| *c != '/' && *c != ' ')
            .collect();
        let jm = cmdline.contains("StandaloneApplicationClusterEntryPoint")
            || cmdline.contains("StandaloneSessionClusterEntrypoint");
        out.push((pid, jm, name));
    }
    out
}

pub fn lifecycle(d: &FlinkDeployment) -> Option<ResourceLifecycleState> {
    d.status.as_ref().and_then(|s| s.lifecycle_state)
}

pub fn job_state(d: &FlinkDeployment) -> Option<FlinkJobState> {
    d.status
        .as_ref()
        .and_then(|s| s.job_status.as_ref())
        .and_then(|j| j.state)
}

pub fn job_id(d: &FlinkDeployment) -> Option<String> {
    d.status
        .as_ref()
        .and_then(|s| s.job_status.as_ref())
        .and_then(|j| j.job_id.clone())
}

/// The job's start time recorded in the status, epoch milliseconds.
pub fn job_start(d: &FlinkDeployment) -> u64 {
    d.status
        .as_ref()
        .and_then(|s| s.job_status.as_ref())
        .and_then(|j| j.start_time.as_deref())
        .and_then(|t| t.parse().ok())
        .expect("a running job has a start time")
}

pub fn last_savepoint(d: &FlinkDeployment) -> Option<String> {
    d.status
        .as_ref()?
        .job_status
        .as_ref()?
        .savepoint_info
        .as_ref()?
        .last_savepoint
        .as_ref()?
        .location
        .clone()
}

/// A counter deployment manifest: `mode`, `rate` records/s over 4 keys, output under
/// `<state>/out/<name>`, checkpoints every second, one TaskManager with 2 slots.
pub fn manifest(env: &Env, name: &str, mode: &str, rate: u32, extra_job: &str) -> String {
    let out = env.root().join("out").join(name);
    format!(
        r#"apiVersion: flink.apache.org/v1beta1
kind: FlinkDeployment
metadata:
  name: {name}
spec:
  image: flink:2.3
  flinkVersion: v2_3
  serviceAccount: flink
  flinkConfiguration:
    taskmanager.numberOfTaskSlots: "2"
    execution.checkpointing.interval: 1s
    state.savepoints.dir: file:///flink-data/{name}/savepoints
    state.checkpoints.dir: file:///flink-data/{name}/checkpoints
  jobManager:
    resource: {{memory: 1024m, cpu: 0.5}}
  taskManager:
    resource: {{memory: 1024m, cpu: 0.5}}
  job:
    jarURI: local:///opt/flink/usrlib/counter.jar
    entryClass: flinkpilot.jobs.Counter
    args: ["--rate", "{rate}", "--keys", "4", "--output", "{out}"]
    parallelism: 2
    upgradeMode: {mode}
{extra_job}"#,
        out = out.display()
    )
}
