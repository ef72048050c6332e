//! The runtime record of one cluster (`clusters/<namespace>/<name>/cluster.json`): which plan
//! it runs, its ports and REST URL, and every process it started (pid plus start time). It is
//! what lets a new controller adopt the processes an earlier one started.
//!
//! The record is written before a process is started and again right after, each time
//! atomically. A crash in between leaves a process the record does not name; it is still found
//! through its environment (`FLINK_CONF_DIR` is the cluster's own conf dir, see
//! [`crate::procfs::processes_of`]) and stopped before the cluster is deployed again or
//! deleted.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::fsutil;
use crate::ports::Ports;
use crate::process::ProcessId;

/// The directories and files of one cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ClusterPaths {
    pub root: PathBuf,
}

impl ClusterPaths {
    pub fn new(root: PathBuf) -> Self {
        ClusterPaths { root }
    }

    /// The runtime record.
    pub fn record(&self) -> PathBuf {
        self.root.join("cluster.json")
    }

    /// Serialises deploy, scale and delete of this cluster across controllers.
    pub fn lock(&self) -> PathBuf {
        self.root.join("lock")
    }

    /// `FLINK_CONF_DIR`.
    pub fn conf(&self) -> PathBuf {
        self.root.join("conf")
    }

    /// One console log per process (`jobmanager.log`, `taskmanager-0.log`, …).
    pub fn logs(&self) -> PathBuf {
        self.root.join("log")
    }

    /// The logs of the previous run of this cluster, kept for one redeploy.
    pub fn previous_logs(&self) -> PathBuf {
        self.root.join("log.previous")
    }

    /// `FLINK_LOG_DIR`: Flink's own rolling log files, which its web UI shows.
    pub fn flink_logs(&self) -> PathBuf {
        self.logs().join("flink")
    }

    /// Temporary files of the JVMs (`io.tmp.dirs`, `java.io.tmpdir`, `web.tmpdir`).
    pub fn tmp(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// `FLINK_PID_DIR`: the scripts' pid files, kept out of `/tmp`.
    pub fn pid(&self) -> PathBuf {
        self.root.join("pid")
    }

    /// The console log of one process.
    pub fn log_of(&self, role: Role, index: u32) -> PathBuf {
        self.logs()
            .join(format!("{}.log", process_name(role, index)))
    }
}

/// JobManager or TaskManager.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The JobManager (application or session entry point).
    JobManager,
    /// A TaskManager.
    TaskManager,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::JobManager => "JobManager",
            Role::TaskManager => "TaskManager",
        })
    }
}

/// `jobmanager` or `taskmanager-<index>`: the log file's stem.
pub(crate) fn process_name(role: Role, index: u32) -> String {
    match role {
        Role::JobManager => "jobmanager".to_string(),
        Role::TaskManager => format!("taskmanager-{index}"),
    }
}

/// One process the cluster started.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ProcessRecord {
    pub role: Role,
    /// 0 for the JobManager; the TaskManager's number otherwise.
    pub index: u32,
    pub pid: u32,
    /// Clock ticks after boot (`/proc/<pid>/stat` field 22).
    pub start_time: u64,
    /// When it was started, RFC 3339.
    pub started_at: String,
}

impl ProcessRecord {
    pub fn id(&self) -> ProcessId {
        ProcessId {
            pid: self.pid,
            start_time: self.start_time,
        }
    }
}

/// `application` or `session`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RecordedMode {
    Application,
    Session,
}

/// `cluster.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ClusterRecord {
    /// Format of this file, for later changes.
    pub format: u32,
    pub namespace: String,
    pub name: String,
    /// [`engine::ClusterPlan::plan_hash`] of the plan it runs.
    pub plan_hash: String,
    /// `spec.flinkVersion`, e.g. `v2_3`.
    pub flink_version: String,
    /// The distribution it runs from.
    pub flink_home: PathBuf,
    pub mode: RecordedMode,
    pub ports: Ports,
    /// `http://127.0.0.1:<rest port>`.
    pub rest_url: String,
    /// TaskManagers wanted (the plan's, or the last `scale`).
    pub taskmanagers: u32,
    /// When the cluster was created, RFC 3339, and in milliseconds since the epoch.
    pub created_at: String,
    pub created_at_ms: i64,
    /// One entry per process slot (JobManager, TaskManager 0, 1, …), the newest start.
    pub processes: Vec<ProcessRecord>,
}

/// The current format of `cluster.json`.
pub(crate) const RECORD_FORMAT: u32 = 1;

/// Why a record could not be read.
#[derive(Debug)]
pub(crate) enum RecordError {
    Io(std::io::Error),
    Corrupt(String),
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::Io(e) => write!(f, "{e}"),
            RecordError::Corrupt(why) => write!(f, "not a valid runtime record: {why}"),
        }
    }
}

impl ClusterRecord {
    /// The record at `path`; `None` when there is none.
    pub fn load(path: &Path) -> Result<Option<ClusterRecord>, RecordError> {
        let Some(bytes) = fsutil::read_optional(path).map_err(RecordError::Io)? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| RecordError::Corrupt(e.to_string()))
    }

    /// Writes the record atomically.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        fsutil::write_atomic(path, &json)
    }

    pub fn process(&self, role: Role, index: u32) -> Option<&ProcessRecord> {
        self.processes
            .iter()
            .find(|p| p.role == role && p.index == index)
    }

    pub fn jobmanager(&self) -> Option<&ProcessRecord> {
        self.process(Role::JobManager, 0)
    }

    pub fn taskmanagers(&self) -> impl Iterator<Item = &ProcessRecord> {
        self.processes
            .iter()
            .filter(|p| p.role == Role::TaskManager)
    }

    /// Records a (re)started process, replacing the earlier one in the same slot.
    pub fn put_process(&mut self, process: ProcessRecord) {
        self.processes
            .retain(|p| !(p.role == process.role && p.index == process.index));
        self.processes.push(process);
        self.processes
            .sort_by_key(|p| (p.role == Role::TaskManager, p.index));
    }

    pub fn remove_process(&mut self, role: Role, index: u32) {
        self.processes
            .retain(|p| !(p.role == role && p.index == index));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> ClusterRecord {
        ClusterRecord {
            format: RECORD_FORMAT,
            namespace: "ns".into(),
            name: "app".into(),
            plan_hash: "h".into(),
            flink_version: "v2_3".into(),
            flink_home: "/flink".into(),
            mode: RecordedMode::Application,
            ports: Ports {
                rest: 1,
                rpc: 2,
                blob: 3,
            },
            rest_url: "http://127.0.0.1:1".into(),
            taskmanagers: 2,
            created_at: "2026-01-01T00:00:00Z".into(),
            created_at_ms: 0,
            processes: Vec::new(),
        }
    }

    fn process(role: Role, index: u32, pid: u32) -> ProcessRecord {
        ProcessRecord {
            role,
            index,
            pid,
            start_time: 1,
            started_at: String::new(),
        }
    }

    #[test]
    fn a_restarted_process_replaces_its_slot_and_order_is_jm_first() {
        let mut r = record();
        r.put_process(process(Role::TaskManager, 1, 11));
        r.put_process(process(Role::TaskManager, 0, 10));
        r.put_process(process(Role::JobManager, 0, 1));
        r.put_process(process(Role::TaskManager, 0, 20));
        let pids: Vec<u32> = r.processes.iter().map(|p| p.pid).collect();
        assert_eq!(pids, [1, 20, 11]);
        assert_eq!(r.jobmanager().unwrap().pid, 1);
        r.remove_process(Role::TaskManager, 1);
        assert_eq!(r.taskmanagers().count(), 1);
    }

    #[test]
    fn the_record_round_trips_and_a_broken_one_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster.json");
        assert!(ClusterRecord::load(&path).unwrap().is_none());
        let mut r = record();
        r.put_process(process(Role::JobManager, 0, 5));
        r.save(&path).unwrap();
        assert_eq!(ClusterRecord::load(&path).unwrap(), Some(r));
        std::fs::write(&path, "{\"format\": 1, \"namesp").unwrap();
        assert!(matches!(
            ClusterRecord::load(&path),
            Err(RecordError::Corrupt(_))
        ));
    }
}
