//! A `SessionCluster` never leaves a process behind: not when dropped, not when its test
//! panics, and not when the whole test process dies without running destructors.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use flinkpilot_testkit::{FlinkDist, SessionCluster, live_processes_in_groups, wait_until};

async fn small_cluster(taskmanagers: usize) -> SessionCluster {
    SessionCluster::builder(FlinkDist::get_default())
        .taskmanagers(taskmanagers)
        .slots(1)
        .start()
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn dropping_a_cluster_kills_every_process_it_started() {
    let cluster = small_cluster(2).await;
    let groups = cluster.pids();
    let dir = cluster.dir().to_path_buf();
    assert_eq!(groups.len(), 3, "a JobManager and two TaskManagers");
    assert_eq!(live_processes_in_groups(&groups).len(), 3);

    drop(cluster);

    assert_eq!(live_processes_in_groups(&groups), Vec::<u32>::new());
    assert!(!dir.exists(), "{} was not removed", dir.display());
}

#[test]
fn a_panicking_test_still_kills_its_cluster() {
    let (tx, rx) = std::sync::mpsc::channel();
    let result = std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let cluster = small_cluster(1).await;
            tx.send((cluster.pids(), cluster.dir().to_path_buf()))
                .unwrap();
            panic!("deliberate panic with a running cluster");
        })
    })
    .join();
    assert!(result.is_err(), "the thread was meant to panic");

    let (groups, dir) = rx.recv().unwrap();
    assert_eq!(live_processes_in_groups(&groups), Vec::<u32>::new());
    assert!(!dir.exists(), "{} was not removed", dir.display());
}

/// If the reaper fails, this test must not leave the orphans running.
struct KillGroupsOnDrop(Vec<u32>);

impl Drop for KillGroupsOnDrop {
    fn drop(&mut self) {
        for group in &self.0 {
            let pgid = nix::unistd::Pid::from_raw(i32::try_from(*group).unwrap());
            let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
        }
    }
}

/// Set in the child process that starts a cluster and exits without dropping it.
const ORPHAN_CHILD_ENV: &str = "FLINKPILOT_TESTKIT_ORPHAN_CHILD";

#[tokio::test(flavor = "multi_thread")]
async fn the_reaper_kills_a_cluster_whose_test_process_died() {
    if std::env::var_os(ORPHAN_CHILD_ENV).is_some() {
        // The child: report the cluster, then die the way a killed test run does, without
        // unwinding or destructors.
        let cluster = small_cluster(1).await;
        let pids: Vec<String> = cluster.pids().iter().map(u32::to_string).collect();
        println!("cluster {} {}", cluster.dir().display(), pids.join(" "));
        std::process::exit(0);
    }

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "the_reaper_kills_a_cluster_whose_test_process_died",
            "--nocapture",
        ])
        .env(ORPHAN_CHILD_ENV, "1")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let line = stdout
        .lines()
        .map(Result::unwrap)
        .find(|l| l.starts_with("cluster "))
        .expect("the child process did not report its cluster");
    let status = child.wait().unwrap();
    assert!(status.success(), "child: {status}");

    let mut fields = line.split_whitespace().skip(1);
    let dir = PathBuf::from(fields.next().unwrap());
    let groups: Vec<u32> = fields.map(|p| p.parse().unwrap()).collect();
    let _cleanup = KillGroupsOnDrop(groups.clone());
    assert_eq!(groups.len(), 2);
    wait_until(
        Duration::from_secs(30),
        "the reaper to kill the orphaned cluster",
        || live_processes_in_groups(&groups).is_empty() && !dir.exists(),
    );
}
