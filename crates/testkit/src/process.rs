//! Flink processes in their own process groups, and a reaper that kills them if the test
//! process dies without running destructors (Ctrl-C, a harness timeout, `process::exit`).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// A JobManager or TaskManager started with `start-foreground`: the `bin/*.sh` scripts `exec`
/// into the JVM, so the child is the JVM itself and leads its own process group, and killing
/// that group also ends any helper the scripts were still running.
#[derive(Debug)]
pub(crate) struct FlinkProcess {
    name: String,
    child: Child,
    log: PathBuf,
    status: Option<ExitStatus>,
}

impl FlinkProcess {
    /// Starts `command` with stdout and stderr in `log` and no stdin.
    pub(crate) fn spawn(name: &str, mut command: Command, log: &Path) -> std::io::Result<Self> {
        let out = File::create(log)?;
        let err = out.try_clone()?;
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()?;
        Ok(Self {
            name: name.to_string(),
            child,
            log: log.to_path_buf(),
            status: None,
        })
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn log(&self) -> &Path {
        &self.log
    }

    /// The exit status, once the process has ended.
    pub(crate) fn exit_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// SIGKILLs the process group and reaps the JVM. Idempotent.
    pub(crate) fn kill(&mut self) {
        if self.status.is_some() {
            return;
        }
        kill_group(self.pid());
        self.status = self.child.wait().ok();
    }
}

impl Drop for FlinkProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// SIGKILL to the process group `pgid`; a group that is already gone is fine.
pub(crate) fn kill_group(pgid: u32) {
    if let Ok(pgid) = i32::try_from(pgid) {
        let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
    }
}

/// A small shell process that outlives the test process: once that is gone, it SIGKILLs every
/// process group listed in its file and removes the cluster directory. Normally the cluster's
/// `Drop` stops everything first and then ends the reaper.
#[derive(Debug)]
pub(crate) struct Reaper {
    child: Child,
    groups: PathBuf,
}

const REAPER_SCRIPT: &str = r#"
while kill -0 "$1" 2>/dev/null; do sleep 1; done
while read -r group; do kill -KILL -- "-$group" 2>/dev/null; done < "$2"
rm -rf "$3"
"#;

impl Reaper {
    /// Watches this process; `groups` lists the groups to kill, `dir` is removed at the end.
    pub(crate) fn start(groups: &Path, dir: &Path) -> std::io::Result<Self> {
        File::create(groups)?;
        let child = Command::new("sh")
            .arg("-c")
            .arg(REAPER_SCRIPT)
            .arg("flinkpilot-testkit-reaper")
            .arg(std::process::id().to_string())
            .arg(groups)
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // its own group: a Ctrl-C to the test's group must not take the reaper with it
            .process_group(0)
            .spawn()?;
        Ok(Self {
            child,
            groups: groups.to_path_buf(),
        })
    }

    /// Adds a process group to kill.
    pub(crate) fn watch(&self, pgid: u32) -> std::io::Result<()> {
        let mut file = OpenOptions::new().append(true).open(&self.groups)?;
        writeln!(file, "{pgid}")
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        kill_group(self.child.id());
        let _ = self.child.wait();
    }
}
