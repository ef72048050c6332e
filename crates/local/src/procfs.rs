//! What `/proc` says about a process: whether it still is the one we started (pid plus start
//! time, so a recycled pid is never mistaken for ours) and which cluster it belongs to.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// One process as `/proc/<pid>/stat` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ProcStat {
    /// Process id.
    pub pid: u32,
    /// State letter: `R`, `S`, `D`, `Z` (zombie: exited, not yet reaped), …
    pub state: u8,
    /// Process group id.
    pub pgrp: i32,
    /// Start time in clock ticks after boot (field 22): with the pid, a unique identity.
    pub start_time: u64,
}

impl ProcStat {
    /// Running (or sleeping): anything but a zombie or a dead entry.
    pub fn is_live(&self) -> bool {
        !matches!(self.state, b'Z' | b'X' | b'x')
    }
}

/// `/proc/<pid>/stat`, or `None` when there is no such process.
pub(crate) fn stat(pid: u32) -> Option<ProcStat> {
    let text = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(pid, &text)
}

/// Whether the process `pid` that started at `start_time` still runs (a zombie does not).
pub(crate) fn is_running(pid: u32, start_time: u64) -> bool {
    stat(pid).is_some_and(|s| s.start_time == start_time && s.is_live())
}

/// The `comm` field may hold spaces and parentheses, so fields are counted after the last `)`.
fn parse_stat(pid: u32, text: &[u8]) -> Option<ProcStat> {
    let close = text.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(text.get(close + 1..)?).ok()?;
    // after `comm`: field 3 (state) is index 0, so field N is index N - 3
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(ProcStat {
        pid,
        state: *fields.first()?.as_bytes().first()?,
        pgrp: fields.get(5 - 3)?.parse().ok()?,
        start_time: fields.get(22 - 3)?.parse().ok()?,
    })
}

/// Every live process that belongs to the cluster whose config dir is `conf_dir`: its
/// environment holds `FLINK_CONF_DIR=<conf_dir>` (set for every process we start and inherited
/// by their children) or its command line holds `conf_dir` as an argument (`--configDir`).
/// Finds processes whose pid never made it into the runtime record (a crash between start and
/// record). Processes of other users cannot be read and are never ours.
pub(crate) fn processes_of(conf_dir: &Path) -> Vec<ProcStat> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let own = std::process::id();
    let mut marker = b"FLINK_CONF_DIR=".to_vec();
    marker.extend_from_slice(conf_dir.as_os_str().as_bytes());
    let conf = conf_dir.as_os_str().as_bytes();
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != own)
        .filter(|&pid| {
            let nul_fields = |file: &str| -> Vec<Vec<u8>> {
                std::fs::read(format!("/proc/{pid}/{file}"))
                    .map(|b| b.split(|&c| c == 0).map(<[u8]>::to_vec).collect())
                    .unwrap_or_default()
            };
            nul_fields("environ").contains(&marker)
                || nul_fields("cmdline").iter().any(|a| a == conf)
        })
        .filter_map(stat)
        .filter(ProcStat::is_live)
        .collect()
}

/// This process's start time.
#[cfg(test)]
pub(crate) fn own_start_time() -> u64 {
    stat(std::process::id()).map_or(0, |s| s.start_time)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_spaces_and_parens_in_the_command_name() {
        let line =
            b"4242 (java (x) y) S 1 4242 4242 0 -1 4194560 1 0 0 0 5 6 0 0 20 0 30 0 987654 0 0";
        let stat = parse_stat(4242, line).unwrap();
        assert_eq!(stat.state, b'S');
        assert_eq!(stat.pgrp, 4242);
        assert_eq!(stat.start_time, 987_654);
        assert!(stat.is_live());
    }

    #[test]
    fn this_process_is_running_with_its_own_start_time_only() {
        let pid = std::process::id();
        let start = own_start_time();
        assert!(start > 0);
        assert!(is_running(pid, start));
        assert!(
            !is_running(pid, start + 1),
            "another start time is another process"
        );
    }

    #[test]
    fn finds_a_child_by_its_conf_dir_environment() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("conf");
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .env("FLINK_CONF_DIR", &conf)
            .spawn()
            .unwrap();
        // Right after spawn the child may still be inside exec, its environment not yet
        // readable, so look until it shows (or the deadline).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let mut found = processes_of(&conf);
        while found.is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
            found = processes_of(&conf);
        }
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(
            found.iter().map(|s| s.pid).collect::<Vec<_>>(),
            vec![child.id()]
        );
        assert!(processes_of(&dir.path().join("other")).is_empty());
    }
}
