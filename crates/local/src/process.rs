//! Starting Flink processes so they outlive the controller, and stopping them without ever
//! touching a process that is not ours.
//!
//! Every JobManager and TaskManager is started with `bin/<script> start-foreground`: the
//! scripts `exec` into the JVM, so the pid we record is the JVM's, and it leads its own process
//! group (`process_group(0)`), so a Ctrl-C on the controller's terminal never reaches it and one
//! signal to the group also ends any helper the scripts still run. Output goes to a file, never
//! a pipe, so nothing breaks when the controller exits.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

use crate::procfs::{self, ProcStat};

/// A process identity that survives pid reuse.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ProcessId {
    pub pid: u32,
    pub start_time: u64,
}

impl ProcessId {
    pub fn is_running(&self) -> bool {
        procfs::is_running(self.pid, self.start_time)
    }
}

impl From<ProcStat> for ProcessId {
    fn from(s: ProcStat) -> Self {
        ProcessId {
            pid: s.pid,
            start_time: s.start_time,
        }
    }
}

/// Starts `command` in its own process group with no stdin and stdout/stderr appended to
/// `log`, and returns its identity. The child handle goes to `children`, which reaps it and
/// remembers how it exited.
pub(crate) fn spawn(
    mut command: Command,
    log: &Path,
    children: &Children,
) -> std::io::Result<ProcessId> {
    let out = File::options().create(true).append(true).open(log)?;
    let err = out.try_clone()?;
    let child = command
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()?;
    let pid = child.id();
    // The child exists until we reap it (as a zombie at worst), so its start time is readable.
    let Some(stat) = procfs::stat(pid) else {
        return Err(std::io::Error::other(format!(
            "process {pid} vanished right after it was started"
        )));
    };
    let id = ProcessId {
        pid,
        start_time: stat.start_time,
    };
    children.add(id, child);
    Ok(id)
}

/// How a process ended, as far as this controller knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Exit {
    /// Exited with a status code.
    Code(i32),
    /// Killed by a signal.
    Signal(i32),
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Code(code) => write!(f, "exited with code {code}"),
            Exit::Signal(9) => write!(f, "was killed (SIGKILL)"),
            Exit::Signal(15) => write!(f, "was terminated (SIGTERM)"),
            Exit::Signal(sig) => write!(f, "was killed by signal {sig}"),
        }
    }
}

impl From<ExitStatus> for Exit {
    fn from(status: ExitStatus) -> Self {
        match (status.code(), status.signal()) {
            (Some(code), _) => Exit::Code(code),
            (None, Some(sig)) => Exit::Signal(sig),
            (None, None) => Exit::Code(-1),
        }
    }
}

/// The processes this controller started itself: their handles (to reap them, so no zombie
/// lingers) and how the ended ones exited. Processes adopted from an earlier controller are
/// not children; they are reaped by init, and their exit status is unknown.
#[derive(Debug, Default)]
pub(crate) struct Children {
    inner: Mutex<ChildrenInner>,
}

#[derive(Debug, Default)]
struct ChildrenInner {
    running: HashMap<ProcessId, Child>,
    exited: HashMap<ProcessId, Exit>,
}

impl Children {
    fn add(&self, id: ProcessId, child: Child) {
        self.lock().running.insert(id, child);
    }

    /// Collects every child that has ended.
    pub fn reap(&self) {
        let mut inner = self.lock();
        let mut ended = Vec::new();
        for (id, child) in inner.running.iter_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                ended.push((*id, Exit::from(status)));
            }
        }
        for (id, exit) in ended {
            inner.running.remove(&id);
            inner.exited.insert(id, exit);
        }
    }

    /// How `id` ended, if it was our child and has ended.
    pub fn exit_of(&self, id: ProcessId) -> Option<Exit> {
        self.reap();
        self.lock().exited.get(&id).copied()
    }

    /// Like [`Children::exit_of`] for a process known to have ended, waiting up to `timeout`
    /// for its status: a killed JVM shows as a zombie while its other threads still exit, and
    /// only after that can it be reaped.
    pub fn await_exit(&self, id: ProcessId, timeout: Duration) -> Option<Exit> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(exit) = self.exit_of(id) {
                return Some(exit);
            }
            if !self.lock().running.contains_key(&id) || Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Forgets exits of processes that are no longer recorded anywhere.
    pub fn forget(&self, ids: &[ProcessId]) {
        let mut inner = self.lock();
        for id in ids {
            inner.exited.remove(id);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ChildrenInner> {
        // A panic while holding the lock leaves the maps consistent.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Stops `targets`: SIGTERM to each (to its whole group when it leads one), up to `grace` for
/// them to exit, then SIGKILL, and up to `kill_wait` more. Only processes whose identity still
/// matches are signalled. Returns the ones still running at the end (normally none).
pub(crate) fn stop(
    targets: &[ProcessId],
    grace: Duration,
    kill_wait: Duration,
    children: &Children,
) -> Vec<ProcessId> {
    signal_all(targets, Signal::SIGTERM);
    let left = wait_gone(targets, grace, children);
    if left.is_empty() {
        return left;
    }
    tracing::debug!(pids = ?left.iter().map(|p| p.pid).collect::<Vec<_>>(), "sending SIGKILL");
    signal_all(&left, Signal::SIGKILL);
    wait_gone(&left, kill_wait, children)
}

fn signal_all(targets: &[ProcessId], signal: Signal) {
    for target in targets {
        // Checked right before signalling: a process that is gone may have a recycled pid.
        let Some(stat) = procfs::stat(target.pid) else {
            continue;
        };
        if stat.start_time != target.start_time || !stat.is_live() {
            continue;
        }
        let Ok(pid) = i32::try_from(target.pid) else {
            continue;
        };
        let pid = Pid::from_raw(pid);
        // A group leader takes its group along (script helpers, a JVM still in its script).
        if stat.pgrp == pid.as_raw() {
            let _ = killpg(pid, signal);
        } else {
            let _ = kill(pid, signal);
        }
    }
}

/// Polls until none of `targets` runs or `timeout` passes; returns those still running.
fn wait_gone(targets: &[ProcessId], timeout: Duration, children: &Children) -> Vec<ProcessId> {
    let deadline = Instant::now() + timeout;
    loop {
        children.reap();
        let left: Vec<ProcessId> = targets
            .iter()
            .copied()
            .filter(ProcessId::is_running)
            .collect();
        if left.is_empty() || Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sleeper(children: &Children, dir: &Path) -> ProcessId {
        let mut command = Command::new("sleep");
        command.arg("60");
        spawn(command, &dir.join("sleep.log"), children).unwrap()
    }

    #[test]
    fn stop_ends_a_process_and_its_exit_is_known() {
        let dir = tempfile::tempdir().unwrap();
        let children = Children::default();
        let id = sleeper(&children, dir.path());
        assert!(id.is_running());
        assert_eq!(children.exit_of(id), None);

        let left = stop(
            &[id],
            Duration::from_secs(5),
            Duration::from_secs(5),
            &children,
        );

        assert!(left.is_empty());
        assert!(!id.is_running());
        assert_eq!(children.exit_of(id), Some(Exit::Signal(15)));
    }

    #[test]
    fn a_process_ignoring_sigterm_is_killed() {
        let dir = tempfile::tempdir().unwrap();
        let children = Children::default();
        let mut command = Command::new("sh");
        command.args([
            "-c",
            "trap '' TERM; echo ready; while :; do sleep 0.1; done",
        ]);
        let log = dir.path().join("stubborn.log");
        let id = spawn(command, &log, &children).unwrap();
        // the trap must be installed before the signal is sent
        let deadline = Instant::now() + Duration::from_secs(10);
        while !std::fs::read_to_string(&log).unwrap().contains("ready") {
            assert!(Instant::now() < deadline, "the shell did not start");
            std::thread::sleep(Duration::from_millis(20));
        }

        let left = stop(
            &[id],
            Duration::from_millis(300),
            Duration::from_secs(5),
            &children,
        );

        assert!(left.is_empty());
        assert_eq!(children.exit_of(id), Some(Exit::Signal(9)));
    }

    #[test]
    fn a_wrong_start_time_is_never_signalled() {
        let dir = tempfile::tempdir().unwrap();
        let children = Children::default();
        let id = sleeper(&children, dir.path());
        let impostor = ProcessId {
            pid: id.pid,
            start_time: id.start_time + 1,
        };

        let left = stop(
            &[impostor],
            Duration::from_millis(100),
            Duration::from_millis(100),
            &children,
        );

        assert!(
            left.is_empty(),
            "the impostor identity counts as not running"
        );
        assert!(id.is_running(), "the real process was not touched");
        stop(
            &[id],
            Duration::from_secs(5),
            Duration::from_secs(5),
            &children,
        );
    }
}
