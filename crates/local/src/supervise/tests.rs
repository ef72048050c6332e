//! Supervision without Flink: a fake distribution whose scripts `exec sleep`, so process
//! handling (adoption, crashes, recycled pids, interrupted deploys, strays) is tested in
//! milliseconds. The real-Flink tests are in `tests/backend.rs`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use api::FlinkVersion;
use engine::{ClusterMode, ClusterObservation, ClusterPlan, JobPlan, ProcessPlan, ResourceKey};
use flink::config::FlinkConfig;

use super::*;

struct Fake {
    dir: tempfile::TempDir,
    supervisor: Supervisor,
}

const SCRIPT: &str =
    "#!/bin/sh\n# a stand-in for Flink: the pid stays the same through exec\nexec sleep 600\n";

impl Fake {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("cache/flink-2.3.0/pyflink");
        for sub in ["bin", "lib", "conf"] {
            fs::create_dir_all(home.join(sub)).unwrap();
        }
        for script in ["jobmanager.sh", "taskmanager.sh", "standalone-job.sh"] {
            let path = home.join("bin").join(script);
            fs::write(&path, SCRIPT).unwrap();
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        }
        fs::write(home.join("lib/flink-dist-2.3.0.jar"), "").unwrap();
        fs::write(home.join("conf/config.yaml"), "parallelism.default: 1\n").unwrap();
        fs::write(dir.path().join("job.jar"), "").unwrap();
        let supervisor = supervisor_at(dir.path());
        Fake { dir, supervisor }
    }

    /// Another controller on the same state dir.
    fn restarted(&self) -> Supervisor {
        supervisor_at(self.dir.path())
    }

    fn plan(&self, hash: &str, taskmanagers: u32) -> ClusterPlan {
        plan_at(self.dir.path(), hash, taskmanagers)
    }

    fn record(&self) -> ClusterRecord {
        self.supervisor.record(&key()).unwrap().expect("a record")
    }

    fn paths(&self) -> ClusterPaths {
        self.supervisor.paths(&key())
    }
}

/// A controller on the fake set-up in `root`.
fn supervisor_at(root: &Path) -> Supervisor {
    Supervisor {
        state: StateDir::new(root.join("state")),
        homes: FlinkHomes::with_cache(root.join("cache")),
        children: Children::default(),
        stop: StopTimeouts {
            grace: Duration::from_secs(5),
            kill: Duration::from_secs(5),
        },
    }
}

fn plan_at(root: &Path, hash: &str, taskmanagers: u32) -> ClusterPlan {
    ClusterPlan {
        key: key(),
        owner_uid: None,
        flink_version: FlinkVersion::v2_3,
        mode: ClusterMode::Application,
        config: FlinkConfig::new(),
        job: Some(JobPlan {
            jar_uri: format!("file://{}", root.join("job.jar").display()),
            entry_class: Some("a.Main".into()),
            args: vec!["--x".into()],
            parallelism: 1,
            job_id: "00000000000000000000000000000001".into(),
            restore: None,
        }),
        jobmanager: ProcessPlan {
            replicas: 1,
            memory_bytes: None,
            cpu: None,
        },
        taskmanager: ProcessPlan {
            replicas: taskmanagers,
            memory_bytes: None,
            cpu: None,
        },
        task_slots: 1,
        log_configuration: BTreeMap::new(),
        spec: Default::default(),
        plan_hash: hash.into(),
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        let _ = self.supervisor.delete(&key());
    }
}

fn key() -> ResourceKey {
    ResourceKey::new("default", "app")
}

fn ids(record: &ClusterRecord) -> Vec<ProcessId> {
    record.processes.iter().map(ProcessRecord::id).collect()
}

fn sigkill(pid: u32) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap()),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn deploy_records_every_process_and_is_idempotent() {
    let fake = Fake::new();
    fake.supervisor.deploy(&key(), &fake.plan("h", 2)).unwrap();
    let record = fake.record();
    assert_eq!(record.processes.len(), 3);
    assert!(ids(&record).iter().all(ProcessId::is_running));
    assert_eq!(
        fake.supervisor.observe(&key()).unwrap(),
        ClusterObservation::Running {
            plan_hash: Some("h".into()),
            taskmanagers: 2
        }
    );

    fake.supervisor.deploy(&key(), &fake.plan("h", 2)).unwrap();
    assert_eq!(ids(&fake.record()), ids(&record), "nothing new was started");

    let err = fake
        .supervisor
        .deploy(&key(), &fake.plan("other", 2))
        .unwrap_err();
    assert!(
        err.to_string().contains("delete it before deploying"),
        "{err}"
    );
}

#[test]
fn a_restarted_controller_adopts_and_deletes_the_processes() {
    let fake = Fake::new();
    fake.supervisor.deploy(&key(), &fake.plan("h", 1)).unwrap();
    let started = ids(&fake.record());

    let restarted = fake.restarted();
    assert!(matches!(
        restarted.observe(&key()).unwrap(),
        ClusterObservation::Running {
            taskmanagers: 1,
            ..
        }
    ));
    restarted.deploy(&key(), &fake.plan("h", 1)).unwrap();
    assert_eq!(ids(&fake.record()), started);

    restarted.delete(&key()).unwrap();
    assert!(started.iter().all(|p| !p.is_running()));
    assert_eq!(
        restarted.observe(&key()).unwrap(),
        ClusterObservation::Absent
    );
    assert!(procfs::processes_of(&fake.paths().conf()).is_empty());
}

#[test]
fn a_crashed_jobmanager_is_failed_with_its_exit_and_a_redeploy_starts_over() {
    let fake = Fake::new();
    fake.supervisor.deploy(&key(), &fake.plan("h", 1)).unwrap();
    let before = fake.record();
    fs::write(
        fake.paths().log_of(Role::JobManager, 0),
        "boom\nsecret.key: hunter2\n",
    )
    .unwrap();
    sigkill(before.jobmanager().unwrap().pid);

    wait_until("the JobManager to be reported", || {
        matches!(
            fake.supervisor.observe(&key()).unwrap(),
            ClusterObservation::Failed { .. }
        )
    });
    let ClusterObservation::Failed {
        plan_hash,
        reason,
        log_tail,
    } = fake.supervisor.observe(&key()).unwrap()
    else {
        unreachable!()
    };
    assert_eq!(plan_hash.as_deref(), Some("h"));
    assert!(
        reason.contains("JobManager") && reason.contains("SIGKILL"),
        "{reason}"
    );
    let log_tail = log_tail.unwrap();
    assert!(
        log_tail.contains("boom") && !log_tail.contains("hunter2"),
        "{log_tail}"
    );

    // a restarted controller cannot know the exit status, but knows it is gone
    let ClusterObservation::Failed { reason, .. } = fake.restarted().observe(&key()).unwrap()
    else {
        panic!("still failed")
    };
    assert!(reason.contains("no longer running"), "{reason}");

    // deploying the same plan again starts the whole cluster anew, keeping the old logs
    fake.supervisor.deploy(&key(), &fake.plan("h", 1)).unwrap();
    let after = fake.record();
    assert!(
        ids(&before).iter().all(|p| !p.is_running()),
        "the old TaskManager was stopped"
    );
    assert!(ids(&after).iter().all(ProcessId::is_running));
    assert_ne!(after.ports, before.ports, "new ports");
    let previous = fake.paths().previous_logs().join("jobmanager.log");
    assert!(fs::read_to_string(previous).unwrap().contains("boom"));
}

#[test]
fn a_crashed_taskmanager_lowers_the_count_and_scale_or_deploy_restarts_it() {
    let fake = Fake::new();
    fake.supervisor.deploy(&key(), &fake.plan("h", 2)).unwrap();
    let tm1 = fake.record().process(Role::TaskManager, 1).unwrap().id();
    sigkill(tm1.pid);
    wait_until("the TaskManager to be gone", || !tm1.is_running());

    assert_eq!(
        fake.supervisor.observe(&key()).unwrap(),
        ClusterObservation::Running {
            plan_hash: Some("h".into()),
            taskmanagers: 1
        }
    );
    fake.supervisor.deploy(&key(), &fake.plan("h", 2)).unwrap();
    let restarted = fake.record().process(Role::TaskManager, 1).unwrap().id();
    assert_ne!(restarted, tm1);
    assert!(restarted.is_running());

    fake.supervisor.scale(&key(), 3).unwrap();
    assert!(matches!(
        fake.supervisor.observe(&key()).unwrap(),
        ClusterObservation::Running {
            taskmanagers: 3,
            ..
        }
    ));
    let tm2 = fake.record().process(Role::TaskManager, 2).unwrap().id();
    fake.supervisor.scale(&key(), 1).unwrap();
    assert!(!tm2.is_running() && !restarted.is_running());
    assert_eq!(fake.record().taskmanagers().count(), 1);
    // a redeploy of the same plan keeps the scaled count
    fake.supervisor.deploy(&key(), &fake.plan("h", 2)).unwrap();
    assert_eq!(fake.record().taskmanagers().count(), 1);
}

#[test]
fn a_recycled_pid_is_never_adopted_or_killed() {
    let fake = Fake::new();
    // an unrelated process, recorded as if it were our JobManager with another start time
    let mut unrelated = std::process::Command::new("sleep")
        .arg("600")
        .spawn()
        .unwrap();
    let pid = unrelated.id();
    let start_time = procfs::stat(pid).unwrap().start_time;
    let paths = fake.paths();
    let mut record = ClusterRecord {
        format: RECORD_FORMAT,
        namespace: "default".into(),
        name: "app".into(),
        plan_hash: "h".into(),
        flink_version: "v2_3".into(),
        flink_home: fake.dir.path().join("cache/flink-2.3.0/pyflink"),
        mode: RecordedMode::Application,
        ports: Ports::pick().unwrap(),
        rest_url: "http://127.0.0.1:1".into(),
        taskmanagers: 0,
        created_at: String::new(),
        created_at_ms: 0,
        processes: Vec::new(),
    };
    record.put_process(ProcessRecord {
        role: Role::JobManager,
        index: 0,
        pid,
        start_time: start_time + 1,
        started_at: String::new(),
    });
    record.save(&paths.record()).unwrap();

    let observed = fake.supervisor.observe(&key()).unwrap();
    assert!(
        matches!(&observed, ClusterObservation::Failed { reason, .. } if reason.contains("no longer running")),
        "{observed:?}"
    );
    // deploying the recorded plan starts our own JobManager and leaves the stranger alone
    fake.supervisor.deploy(&key(), &fake.plan("h", 0)).unwrap();
    assert_ne!(fake.record().jobmanager().unwrap().pid, pid);
    fake.supervisor.delete(&key()).unwrap();
    assert!(
        procfs::is_running(pid, start_time),
        "an unrelated process was killed"
    );
    unrelated.kill().unwrap();
    unrelated.wait().unwrap();
}

#[test]
fn an_unrecorded_process_from_a_crashed_deploy_is_found_and_stopped() {
    let fake = Fake::new();
    fake.supervisor.deploy(&key(), &fake.plan("h", 0)).unwrap();
    // a crash right after starting a process, before recording it
    let paths = fake.paths();
    let mut stray = std::process::Command::new("sleep");
    stray.arg("600").env("FLINK_CONF_DIR", paths.conf());
    let stray = process::spawn(
        stray,
        &paths.logs().join("stray.log"),
        &fake.supervisor.children,
    )
    .unwrap();

    fake.supervisor.delete(&key()).unwrap();

    assert!(!stray.is_running(), "the unrecorded process was stopped");
    assert!(procfs::processes_of(&paths.conf()).is_empty());
}

#[test]
fn a_record_without_a_jobmanager_is_starting_then_interrupted_and_deploy_completes_it() {
    let fake = Fake::new();
    fake.supervisor.deploy(&key(), &fake.plan("h", 1)).unwrap();
    let paths = fake.paths();
    // as if the deploy crashed after writing the record: stop everything, empty the record
    let mut record = fake.record();
    process::stop(
        &ids(&record),
        Duration::from_secs(5),
        Duration::from_secs(5),
        &fake.supervisor.children,
    );
    record.processes.clear();
    record.created_at_ms = now_ms();
    record.save(&paths.record()).unwrap();
    assert!(matches!(
        fake.supervisor.observe(&key()).unwrap(),
        ClusterObservation::Starting { .. }
    ));
    record.created_at_ms = now_ms() - STARTING_GRACE_MS - 1;
    record.save(&paths.record()).unwrap();
    let observed = fake.supervisor.observe(&key()).unwrap();
    assert!(
        matches!(&observed, ClusterObservation::Failed { reason, .. } if reason.contains("interrupted")),
        "{observed:?}"
    );

    fake.supervisor.deploy(&key(), &fake.plan("h", 1)).unwrap();
    assert!(matches!(
        fake.supervisor.observe(&key()).unwrap(),
        ClusterObservation::Running {
            taskmanagers: 1,
            ..
        }
    ));
}

#[test]
fn a_damaged_record_is_reported_and_delete_still_stops_everything() {
    let fake = Fake::new();
    fake.supervisor.deploy(&key(), &fake.plan("h", 1)).unwrap();
    let started = ids(&fake.record());
    fs::write(fake.paths().record(), "{\"format\": 1, \"na").unwrap();

    let observed = fake.supervisor.observe(&key()).unwrap();
    assert!(
        matches!(&observed, ClusterObservation::Failed { reason, .. } if reason.contains("damaged")),
        "{observed:?}"
    );
    fake.restarted().delete(&key()).unwrap();
    assert!(started.iter().all(|p| !p.is_running()));
    assert!(!fake.paths().record().exists());
}

#[test]
fn the_application_command_line_carries_job_restore_and_arguments() {
    let fake = Fake::new();
    let mut plan = fake.plan("h", 0);
    plan.job.as_mut().unwrap().restore = Some(engine::RestorePlan {
        path: "file:///sp/savepoint-1".into(),
        allow_non_restored_state: true,
    });
    fake.supervisor.deploy(&key(), &plan).unwrap();
    let config = fs::read_to_string(fake.paths().conf().join("config.yaml")).unwrap();
    assert!(config.contains("rest.address: \"127.0.0.1\""), "{config}");
    // the process carries its cluster's conf dir (what finds unrecorded processes)
    let jm = fake.record().jobmanager().unwrap().pid;
    wait_until("the JobManager to carry its conf dir", || {
        procfs::processes_of(&fake.paths().conf())
            .iter()
            .any(|p| p.pid == jm)
    });
    let command = launch::jobmanager(
        &FlinkHome::open(fake.record().flink_home).unwrap(),
        &fake.paths(),
        &plan,
        Some(Path::new("/jobs/a.jar")),
    );
    let args: Vec<String> = command
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        args,
        [
            "start-foreground",
            "--job-classname",
            "a.Main",
            "--jars",
            "/jobs/a.jar",
            "--job-id",
            "00000000000000000000000000000001",
            "--fromSavepoint",
            "file:///sp/savepoint-1",
            "--allowNonRestoredState",
            "--",
            "--x"
        ]
    );
}

#[test]
fn without_a_taskmanager_count_enough_start_for_the_parallelism() {
    let fake = Fake::new();
    let mut plan = fake.plan("h", 0);
    plan.task_slots = 2;
    plan.job.as_mut().unwrap().parallelism = 5;
    assert_eq!(taskmanagers_for(&plan), 3);
    plan.mode = ClusterMode::Session;
    assert_eq!(taskmanagers_for(&plan), 1);
    plan.taskmanager.replicas = 4;
    assert_eq!(taskmanagers_for(&plan), 4);
}

const CONTROLLER_ENV: &str = "FLINKPILOT_FAKE_CONTROLLER_DIR";

/// Not a test on its own (hence ignored): the controller process of
/// `processes_outlive_a_controller_stopped_by_ctrl_c`. It deploys, says so, and waits to be
/// interrupted.
#[test]
#[ignore = "a helper process of processes_outlive_a_controller_stopped_by_ctrl_c"]
fn controller_process() {
    let Some(root) = std::env::var_os(CONTROLLER_ENV) else {
        return;
    };
    let root = Path::new(&root);
    supervisor_at(root)
        .deploy(&key(), &plan_at(root, "h", 1))
        .unwrap();
    fs::write(root.join("deployed"), "").unwrap();
    std::thread::sleep(Duration::from_secs(60));
}

/// Ctrl-C in the controller's terminal signals the controller's process group; the Flink
/// processes lead their own groups, so they keep running, and the next controller adopts them.
#[test]
fn processes_outlive_a_controller_stopped_by_ctrl_c() {
    use std::os::unix::process::{CommandExt, ExitStatusExt};

    let fake = Fake::new();
    let mut controller = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "supervise::tests::controller_process",
            "--ignored",
            "--quiet",
        ])
        .env(CONTROLLER_ENV, fake.dir.path())
        .stdout(std::process::Stdio::null())
        // a terminal job of its own, as a shell would start it
        .process_group(0)
        .spawn()
        .unwrap();
    wait_until("the controller to deploy", || {
        fake.dir.path().join("deployed").exists()
    });
    let group = nix::unistd::Pid::from_raw(i32::try_from(controller.id()).unwrap());

    nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGINT).unwrap();

    let status = controller.wait().unwrap();
    assert_eq!(
        status.signal(),
        Some(2),
        "the controller died of Ctrl-C: {status:?}"
    );
    let record = fake.record();
    assert_eq!(record.processes.len(), 2);
    for process in &record.processes {
        assert!(
            process.id().is_running(),
            "{process:?} died with the controller"
        );
        let group = procfs::stat(process.pid).unwrap().pgrp;
        assert_eq!(
            u32::try_from(group).unwrap(),
            process.pid,
            "leads its own group"
        );
    }
    assert!(matches!(
        fake.supervisor.observe(&key()).unwrap(),
        ClusterObservation::Running {
            taskmanagers: 1,
            ..
        }
    ));
    fake.supervisor.delete(&key()).unwrap();
    assert!(ids(&record).iter().all(|p| !p.is_running()));
}
