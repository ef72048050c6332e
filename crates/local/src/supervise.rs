//! Deploy, observe, scale and delete one cluster: the blocking work behind
//! [`crate::LocalBackend`].
//!
//! Deploy, scale and delete of one cluster hold its lock file (an `flock`), so two controllers
//! on the same state dir never start processes twice; observe only reads. Every step keeps the
//! runtime record in line with what runs, so a crash at any point converges: `deploy` completes
//! or restarts a half-started cluster, `delete` stops whatever is recorded and whatever still
//! carries the cluster's conf dir in its environment.

use std::fs::{self, File, OpenOptions};
use std::path::Path;
use std::time::Duration;

use engine::{BackendError, ClusterMode, ClusterObservation, ClusterPlan, ResourceKey};

use crate::homes::{FlinkHome, FlinkHomes};
use crate::layout::{StateDir, is_valid_name};
use crate::ports::Ports;
use crate::process::{self, Children, ProcessId};
use crate::runtime::{
    ClusterPaths, ClusterRecord, ProcessRecord, RECORD_FORMAT, RecordError, RecordedMode, Role,
};
use crate::{launch, procfs, provision, redact, render};

/// How long stopping may take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StopTimeouts {
    /// After SIGTERM, how long the processes get to shut down cleanly (a JobManager takes a
    /// few seconds) before SIGKILL.
    pub grace: Duration,
    /// After SIGKILL, how long to wait for the kernel to end them.
    pub kill: Duration,
}

impl Default for StopTimeouts {
    fn default() -> Self {
        StopTimeouts {
            grace: Duration::from_secs(15),
            kill: Duration::from_secs(10),
        }
    }
}

/// A cluster whose record names no JobManager yet counts as starting for this long; after it,
/// the deploy that wrote the record is taken to have been interrupted.
const STARTING_GRACE_MS: i64 = 60_000;
/// Lines of a log that go into a failure report.
const LOG_TAIL_LINES: usize = 40;

pub(crate) struct Supervisor {
    pub state: StateDir,
    pub homes: FlinkHomes,
    pub children: Children,
    pub stop: StopTimeouts,
}

fn invalid(key: &ResourceKey, message: impl Into<String>) -> BackendError {
    BackendError::Invalid {
        key: key.clone(),
        message: message.into(),
    }
}

fn transient(key: &ResourceKey, message: impl Into<String>) -> BackendError {
    BackendError::Transient {
        key: key.clone(),
        message: message.into(),
    }
}

/// The cluster's lock, held while the guard lives; released by the kernel if we die.
struct ClusterLock {
    _file: File,
}

impl Supervisor {
    pub fn paths(&self, key: &ResourceKey) -> ClusterPaths {
        ClusterPaths::new(self.state.cluster(key))
    }

    fn check_key(&self, key: &ResourceKey) -> Result<ClusterPaths, BackendError> {
        if !is_valid_name(&key.namespace) || !is_valid_name(&key.name) {
            return Err(invalid(
                key,
                "namespace and name must be lowercase letters, digits, `-` and `.`, starting and \
                 ending with a letter or digit",
            ));
        }
        Ok(self.paths(key))
    }

    fn lock(&self, key: &ResourceKey, paths: &ClusterPaths) -> Result<ClusterLock, BackendError> {
        let io = |what: &str, e: std::io::Error| {
            transient(
                key,
                format!("cannot {what} {}: {e}", paths.lock().display()),
            )
        };
        fs::create_dir_all(&paths.root).map_err(|e| io("create the directory of", e))?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(paths.lock())
            .map_err(|e| io("open", e))?;
        file.lock().map_err(|e| io("lock", e))?;
        Ok(ClusterLock { _file: file })
    }

    /// The record, or `None`; a damaged record counts as none (the processes it named are
    /// still found through their environment).
    fn load_for_change(
        &self,
        key: &ResourceKey,
        paths: &ClusterPaths,
    ) -> Result<Option<ClusterRecord>, BackendError> {
        match ClusterRecord::load(&paths.record()) {
            Ok(record) => Ok(record),
            Err(RecordError::Corrupt(why)) => {
                tracing::warn!(cluster = %key, "ignoring a damaged runtime record: {why}");
                Ok(None)
            }
            Err(RecordError::Io(e)) => Err(transient(
                key,
                format!("cannot read {}: {e}", paths.record().display()),
            )),
        }
    }

    fn save(
        &self,
        key: &ResourceKey,
        paths: &ClusterPaths,
        record: &ClusterRecord,
    ) -> Result<(), BackendError> {
        record.save(&paths.record()).map_err(|e| {
            transient(
                key,
                format!("cannot write {}: {e}", paths.record().display()),
            )
        })
    }

    /// The runtime record, for observation and the CLI.
    pub fn record(&self, key: &ResourceKey) -> Result<Option<ClusterRecord>, BackendError> {
        let paths = self.check_key(key)?;
        ClusterRecord::load(&paths.record()).map_err(|e| {
            transient(
                key,
                format!("cannot read {}: {e}", paths.record().display()),
            )
        })
    }

    pub fn observe(&self, key: &ResourceKey) -> Result<ClusterObservation, BackendError> {
        let paths = self.check_key(key)?;
        self.children.reap();
        let record = match ClusterRecord::load(&paths.record()) {
            Ok(Some(record)) => record,
            Ok(None) => return Ok(ClusterObservation::Absent),
            Err(RecordError::Corrupt(why)) => {
                return Ok(ClusterObservation::Failed {
                    plan_hash: None,
                    reason: format!(
                        "the runtime record {} is damaged ({why}); delete the cluster to stop \
                         whatever it started",
                        paths.record().display()
                    ),
                    log_tail: None,
                });
            }
            Err(RecordError::Io(e)) => {
                return Err(transient(
                    key,
                    format!("cannot read {}: {e}", paths.record().display()),
                ));
            }
        };
        let plan_hash = Some(record.plan_hash.clone());
        let Some(jobmanager) = record.jobmanager() else {
            if now_ms() - record.created_at_ms < STARTING_GRACE_MS {
                return Ok(ClusterObservation::Starting { plan_hash });
            }
            return Ok(ClusterObservation::Failed {
                plan_hash,
                reason: "its deployment was interrupted before the JobManager started; deploy \
                         it again or delete it"
                    .to_string(),
                log_tail: None,
            });
        };
        if jobmanager.id().is_running() {
            let taskmanagers = record
                .taskmanagers()
                .filter(|p| p.id().is_running())
                .count();
            return Ok(ClusterObservation::Running {
                plan_hash,
                taskmanagers: u32::try_from(taskmanagers).unwrap_or(u32::MAX),
            });
        }
        let config = render::read_config(&paths.conf());
        let log_tail =
            redact::log_tail(&paths.log_of(Role::JobManager, 0), LOG_TAIL_LINES, &config);
        let reason = self.exit_reason(jobmanager, log_tail.as_deref());
        Ok(ClusterObservation::Failed {
            plan_hash,
            reason,
            log_tail,
        })
    }

    /// How a process ended, as far as we know, with a hint from its log.
    fn exit_reason(&self, process: &ProcessRecord, log_tail: Option<&str>) -> String {
        let what = match self
            .children
            .await_exit(process.id(), Duration::from_secs(2))
        {
            Some(exit) => format!("the {} (pid {}) {exit}", process.role, process.pid),
            None => format!(
                "the {} (pid {}) is no longer running",
                process.role, process.pid
            ),
        };
        format!("{what}{}", hint(log_tail.unwrap_or_default()))
    }

    pub fn deploy(&self, key: &ResourceKey, plan: &ClusterPlan) -> Result<(), BackendError> {
        let paths = self.check_key(key)?;
        if plan.key != *key {
            return Err(invalid(
                key,
                format!("the plan is for {}, not for this resource", plan.key),
            ));
        }
        // Bad input is refused before anything is touched.
        let jar = self.check_inputs(key, plan)?;
        let home = self.homes.resolve(plan.flink_version).map_err(|e| {
            if e.is_transient() {
                transient(key, e.to_string())
            } else {
                invalid(key, format!("spec.flinkVersion: {e}"))
            }
        })?;
        provision::check_java().map_err(|e| invalid(key, e.to_string()))?;

        let _lock = self.lock(key, &paths)?;
        let record = self.load_for_change(key, &paths)?;
        if let Some(record) = &record {
            if record.plan_hash != plan.plan_hash {
                return Err(invalid(
                    key,
                    format!(
                        "a cluster from another plan ({}) exists; delete it before deploying \
                         this one ({})",
                        record.plan_hash, plan.plan_hash
                    ),
                ));
            }
            if record.jobmanager().is_some_and(|jm| jm.id().is_running()) {
                // Same plan, JobManager up: only TaskManagers that are gone are started again.
                let home = FlinkHome::open(&record.flink_home).unwrap_or(home);
                let mut record = record.clone();
                return self.start_missing_taskmanagers(key, &paths, &home, &mut record);
            }
            tracing::info!(cluster = %key, "the JobManager is not running; starting the cluster again");
        }
        self.stop_all(key, &paths, record.as_ref())?;
        self.start(key, plan, &paths, &home, jar.as_deref())
    }

    /// The jar of an application cluster (checked to exist) and the log configuration names.
    fn check_inputs(
        &self,
        key: &ResourceKey,
        plan: &ClusterPlan,
    ) -> Result<Option<std::path::PathBuf>, BackendError> {
        for name in plan.log_configuration.keys() {
            if name.is_empty() || name.starts_with('.') || name.contains('/') {
                return Err(invalid(
                    key,
                    format!("spec.logConfiguration key {name:?} is not a plain file name"),
                ));
            }
        }
        match (plan.mode, &plan.job) {
            (ClusterMode::Application, Some(job)) => {
                let jar = launch::jar_path(&job.jar_uri).map_err(|m| invalid(key, m))?;
                if !jar.is_file() {
                    return Err(invalid(
                        key,
                        format!(
                            "spec.job.jarURI {:?}: there is no file {}",
                            job.jar_uri,
                            jar.display()
                        ),
                    ));
                }
                Ok(Some(jar))
            }
            (ClusterMode::Application, None) => Err(invalid(
                key,
                "an application cluster needs spec.job; without it, deploy a session cluster",
            )),
            (ClusterMode::Session, _) => Ok(None),
        }
    }

    /// Starts a new cluster: fresh conf dir, ports and logs, then the JobManager, then the
    /// TaskManagers, recording each process as soon as it runs.
    fn start(
        &self,
        key: &ResourceKey,
        plan: &ClusterPlan,
        paths: &ClusterPaths,
        home: &FlinkHome,
        jar: Option<&Path>,
    ) -> Result<(), BackendError> {
        let io = |what: &str, path: &Path, e: std::io::Error| {
            transient(key, format!("cannot {what} {}: {e}", path.display()))
        };
        rotate_logs(paths).map_err(|e| io("keep the previous logs in", &paths.logs(), e))?;
        for dir in [paths.logs(), paths.flink_logs(), paths.tmp(), paths.pid()] {
            fs::create_dir_all(&dir).map_err(|e| io("create", &dir, e))?;
        }
        let ports =
            Ports::pick().map_err(|e| transient(key, format!("no free local port: {e}")))?;
        let data = self.state.data(key);
        let config =
            render::render_config(plan, home, paths, &data, ports).map_err(|m| invalid(key, m))?;
        render::write_conf_dir(plan, home, &paths.conf(), &config)
            .map_err(|m| transient(key, m))?;

        let created = k8s_openapi::jiff::Timestamp::now();
        let mut record = ClusterRecord {
            format: RECORD_FORMAT,
            namespace: key.namespace.clone(),
            name: key.name.clone(),
            plan_hash: plan.plan_hash.clone(),
            flink_version: plan.flink_version.to_string(),
            flink_home: home.path.clone(),
            mode: match plan.mode {
                ClusterMode::Application => RecordedMode::Application,
                ClusterMode::Session => RecordedMode::Session,
            },
            ports,
            rest_url: format!("http://127.0.0.1:{}", ports.rest),
            taskmanagers: taskmanagers_for(plan),
            created_at: created.to_string(),
            created_at_ms: created.as_millisecond(),
            processes: Vec::new(),
        };
        // Recorded before anything starts: a crash from here on is cleaned up by the next
        // deploy or delete.
        self.save(key, paths, &record)?;
        let command = launch::jobmanager(home, paths, plan, jar);
        self.spawn_into(key, paths, &mut record, Role::JobManager, 0, command)?;
        self.start_missing_taskmanagers(key, paths, home, &mut record)?;
        tracing::info!(
            cluster = %key,
            rest = %record.rest_url,
            taskmanagers = record.taskmanagers,
            "started a Flink {} cluster",
            home.version
        );
        Ok(())
    }

    fn start_missing_taskmanagers(
        &self,
        key: &ResourceKey,
        paths: &ClusterPaths,
        home: &FlinkHome,
        record: &mut ClusterRecord,
    ) -> Result<(), BackendError> {
        for index in 0..record.taskmanagers {
            let running = record
                .process(Role::TaskManager, index)
                .is_some_and(|p| p.id().is_running());
            if !running {
                let command = launch::taskmanager(home, paths, &key.name, index);
                self.spawn_into(key, paths, record, Role::TaskManager, index, command)?;
            }
        }
        Ok(())
    }

    fn spawn_into(
        &self,
        key: &ResourceKey,
        paths: &ClusterPaths,
        record: &mut ClusterRecord,
        role: Role,
        index: u32,
        command: std::process::Command,
    ) -> Result<(), BackendError> {
        let log = paths.log_of(role, index);
        let id = process::spawn(command, &log, &self.children)
            .map_err(|e| transient(key, format!("cannot start {role} {index}: {e}")))?;
        record.put_process(ProcessRecord {
            role,
            index,
            pid: id.pid,
            start_time: id.start_time,
            started_at: k8s_openapi::jiff::Timestamp::now().to_string(),
        });
        self.save(key, paths, record)
    }

    pub fn delete(&self, key: &ResourceKey) -> Result<(), BackendError> {
        let paths = self.check_key(key)?;
        if !paths.root.exists() {
            // Never deployed, or its directory was removed by hand: still stop any process
            // that carries its conf dir.
            return self.stop_all(key, &paths, None);
        }
        let _lock = self.lock(key, &paths)?;
        let record = self.load_for_change(key, &paths)?;
        self.stop_all(key, &paths, record.as_ref())?;
        let remove_err = |path: &Path, e: std::io::Error| {
            transient(key, format!("cannot remove {}: {e}", path.display()))
        };
        crate::fsutil::remove_durably(&paths.record())
            .map_err(|e| remove_err(&paths.record(), e))?;
        for dir in [paths.conf(), paths.tmp(), paths.pid()] {
            match fs::remove_dir_all(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(remove_err(&dir, e)),
            }
        }
        if let Some(record) = record {
            let ids: Vec<ProcessId> = record.processes.iter().map(ProcessRecord::id).collect();
            self.children.forget(&ids);
            tracing::info!(cluster = %key, "deleted the cluster");
        }
        Ok(())
    }

    /// Stops every recorded process that still runs and every process carrying the cluster's
    /// conf dir; fails only when one survives SIGKILL.
    fn stop_all(
        &self,
        key: &ResourceKey,
        paths: &ClusterPaths,
        record: Option<&ClusterRecord>,
    ) -> Result<(), BackendError> {
        let mut targets: Vec<ProcessId> = record
            .map(|r| r.processes.iter().map(ProcessRecord::id).collect())
            .unwrap_or_default();
        targets.retain(ProcessId::is_running);
        let mut left = Vec::new();
        // A process in the middle of an exec (the scripts exec twice) briefly shows an empty
        // environment, so the scan is repeated until it finds nothing new.
        for _ in 0..3 {
            for stray in procfs::processes_of(&paths.conf()) {
                let id = ProcessId::from(stray);
                if !targets.contains(&id) {
                    targets.push(id);
                }
            }
            if targets.is_empty() {
                break;
            }
            left.extend(process::stop(
                &targets,
                self.stop.grace,
                self.stop.kill,
                &self.children,
            ));
            targets.clear();
            std::thread::sleep(Duration::from_millis(50));
        }
        if left.is_empty() {
            return Ok(());
        }
        let pids: Vec<String> = left.iter().map(|p| p.pid.to_string()).collect();
        Err(transient(
            key,
            format!(
                "processes {} did not end even after SIGKILL; check them with `ps`",
                pids.join(", ")
            ),
        ))
    }

    pub fn scale(&self, key: &ResourceKey, taskmanagers: u32) -> Result<(), BackendError> {
        let paths = self.check_key(key)?;
        let no_cluster = || invalid(key, "there is no cluster to scale; deploy it first");
        if !paths.root.exists() {
            return Err(no_cluster());
        }
        let _lock = self.lock(key, &paths)?;
        let Some(mut record) = self.load_for_change(key, &paths)? else {
            return Err(no_cluster());
        };
        record.taskmanagers = taskmanagers;
        self.save(key, &paths, &record)?;
        let extra: Vec<(u32, ProcessId)> = record
            .taskmanagers()
            .filter(|p| p.index >= taskmanagers)
            .map(|p| (p.index, p.id()))
            .collect();
        let ids: Vec<ProcessId> = extra
            .iter()
            .map(|(_, id)| *id)
            .filter(ProcessId::is_running)
            .collect();
        let left = process::stop(&ids, self.stop.grace, self.stop.kill, &self.children);
        if !left.is_empty() {
            return Err(transient(
                key,
                format!(
                    "{} TaskManager(s) did not stop even after SIGKILL",
                    left.len()
                ),
            ));
        }
        for (index, _) in &extra {
            record.remove_process(Role::TaskManager, *index);
        }
        self.save(key, &paths, &record)?;
        let home = FlinkHome::open(&record.flink_home)
            .map_err(|e| transient(key, format!("cannot start TaskManagers: {e}")))?;
        self.start_missing_taskmanagers(key, &paths, &home, &mut record)
    }
}

/// TaskManagers to start. Without a count (native mode, where Flink on Kubernetes starts
/// TaskManagers on demand) a local cluster starts enough for the job's parallelism, or one
/// for a session cluster.
pub(crate) fn taskmanagers_for(plan: &ClusterPlan) -> u32 {
    if plan.taskmanager.replicas > 0 {
        return plan.taskmanager.replicas;
    }
    match &plan.job {
        Some(job) if plan.mode == ClusterMode::Application => {
            job.parallelism.max(1).div_ceil(plan.task_slots.max(1))
        }
        _ => 1,
    }
}

/// Moves the logs of the last run to `log.previous/` (dropping older ones), so a redeploy
/// starts with empty logs and the crash that led to it can still be read.
fn rotate_logs(paths: &ClusterPaths) -> std::io::Result<()> {
    let logs = paths.logs();
    let has_files = fs::read_dir(&logs).is_ok_and(|mut d| d.next().is_some());
    if !has_files {
        return Ok(());
    }
    let previous = paths.previous_logs();
    match fs::remove_dir_all(&previous) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    fs::rename(&logs, &previous)
}

/// A hint for the usual reasons a JobManager dies early, from its log.
fn hint(log: &str) -> &'static str {
    if log.contains("BindException") || log.contains("Address already in use") {
        "; a port it needed was taken by another program: deploying again picks new ports"
    } else if log.contains("OutOfMemoryError") {
        "; it ran out of memory: raise spec.jobManager.resource.memory"
    } else if log.contains("ClassNotFoundException")
        || log.contains("Could not find or load main class")
    {
        "; a class was not found: check spec.job.entryClass and spec.job.jarURI"
    } else if log.contains("JAVA_HOME") || log.contains("java: not found") {
        "; Java was not found: install Java 11+ or set JAVA_HOME"
    } else {
        ""
    }
}

fn now_ms() -> i64 {
    k8s_openapi::jiff::Timestamp::now().as_millisecond()
}

#[cfg(test)]
mod tests;
