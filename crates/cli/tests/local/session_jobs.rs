//! End-to-end: `FlinkSessionJob`s in `flinkpilot local` — the counter job submitted to a real
//! Flink 2.3 session cluster (a `FlinkDeployment` without `job`), upgraded, suspended, resumed
//! and deleted, and the errors a person meets on the way.

use std::time::Duration;

use api::{FlinkJobState, FlinkSessionJob, ResourceLifecycleState};
use engine::ResourceKey;
use testkit::wait_until;

use crate::support::*;

mod recovery;

const KEYS: u64 = 4;
const SESSION: &str = "session";

/// A session cluster: one TaskManager with 4 slots, checkpoints every second.
fn session_manifest() -> String {
    format!(
        r#"apiVersion: flink.apache.org/v1beta1
kind: FlinkDeployment
metadata:
  name: {SESSION}
spec:
  image: flink:2.3
  flinkVersion: v2_3
  serviceAccount: flink
  flinkConfiguration:
    taskmanager.numberOfTaskSlots: "4"
    execution.checkpointing.interval: 1s
    state.savepoints.dir: file:///flink-data/{SESSION}/savepoints
    state.checkpoints.dir: file:///flink-data/{SESSION}/checkpoints
  jobManager:
    resource: {{memory: 1024m, cpu: 0.5}}
  taskManager:
    resource: {{memory: 1024m, cpu: 0.5}}
"#
    )
}

/// A counter session job in the session cluster: `mode`, `rate` records/s over 4 keys, output
/// under `<state>/out/<name>`.
fn job_manifest(env: &Env, name: &str, mode: &str, rate: u32, jar: &str) -> String {
    let out = env.root().join("out").join(name);
    format!(
        r#"apiVersion: flink.apache.org/v1beta1
kind: FlinkSessionJob
metadata:
  name: {name}
spec:
  deploymentName: {SESSION}
  job:
    jarURI: local:///opt/flink/usrlib/{jar}
    entryClass: flinkpilot.jobs.Counter
    args: ["--rate", "{rate}", "--keys", "4", "--output", "{out}"]
    parallelism: 2
    upgradeMode: {mode}
"#,
        out = out.display()
    )
}

fn session_job(env: &Env, name: &str) -> Option<FlinkSessionJob> {
    env.store
        .get::<FlinkSessionJob>(&ResourceKey::new("default", name))
        .expect("read the store")
}

fn job_status(j: &FlinkSessionJob) -> (Option<String>, Option<FlinkJobState>) {
    let js = j.status.as_ref().and_then(|s| s.job_status.clone());
    (
        js.as_ref().and_then(|j| j.job_id.clone()),
        js.and_then(|j| j.state),
    )
}

fn lifecycle_of(j: &FlinkSessionJob) -> Option<ResourceLifecycleState> {
    j.status.as_ref().and_then(|s| s.lifecycle_state)
}

fn error_of(j: &FlinkSessionJob) -> Option<String> {
    j.status.as_ref().and_then(|s| s.error.clone())
}

fn wait_job(
    env: &Env,
    name: &str,
    what: &str,
    mut cond: impl FnMut(&FlinkSessionJob) -> bool,
) -> FlinkSessionJob {
    let mut last = None;
    let deadline = std::time::Instant::now() + START;
    while std::time::Instant::now() < deadline {
        if let Some(j) = session_job(env, name) {
            if cond(&j) {
                return j;
            }
            last = Some(j);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "timed out waiting for session job {name} to be {what}; last status: {:#?}\n\
         controller output:\n{}",
        last.and_then(|j| j.status),
        env.controller_output()
    );
}

/// Waits until the session job runs a job other than `old` (any, when `None`), stable.
fn wait_running(env: &Env, name: &str, old: Option<&str>) -> FlinkSessionJob {
    wait_job(env, name, "RUNNING and STABLE", |j| {
        let (id, state) = job_status(j);
        state == Some(FlinkJobState::Running)
            && lifecycle_of(j) == Some(ResourceLifecycleState::Stable)
            && id.is_some_and(|id| Some(id.as_str()) != old)
            && j.status.as_ref().and_then(|s| s.observed_generation) == j.metadata.generation
    })
}

fn start_of(j: &FlinkSessionJob) -> u64 {
    j.status
        .as_ref()
        .and_then(|s| s.job_status.as_ref())
        .and_then(|j| j.start_time.as_deref())
        .and_then(|t| t.parse().ok())
        .expect("a running job has a start time")
}

/// Per key, the first count of the job started at `start` is one more than the last count
/// before it (the job continued from its savepoint).
fn assert_counts_continue(env: &Env, name: &str, start: u64, what: &str) {
    env.wait_counting(name, start, KEYS);
    let out = env.output(name);
    let after = out.first_counts_after(start);
    for (key, first) in &after {
        let before = out
            .records()
            .into_iter()
            .filter(|r| r.key == *key && r.at_millis < start)
            .map(|r| r.count)
            .max()
            .unwrap_or(0);
        assert!(before > 0, "{what}: key {key} had counted before");
        assert_eq!(*first, before + 1, "{what}: key {key} continues");
    }
}

/// Waits until the FlinkStateSnapshot `name` is COMPLETED.
fn wait_snapshot_completed(env: &Env, name: &str) -> api::FlinkStateSnapshot {
    let key = ResourceKey::new("default", name);
    let mut last = None;
    let deadline = std::time::Instant::now() + START;
    while std::time::Instant::now() < deadline {
        let s = env
            .store
            .get::<api::FlinkStateSnapshot>(&key)
            .expect("read the store");
        if let Some(s) = s {
            if engine::snapshot::state(&s) == api::FlinkStateSnapshotState::Completed {
                return s;
            }
            last = s.status;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("snapshot {name} did not complete: {last:#?}");
}

/// Runs `call` with a REST client of the session cluster's JobManager.
fn with_flink<T>(env: &Env, call: impl AsyncFnOnce(flink::FlinkClient) -> T) -> T {
    let described = env.cli(&["describe", SESSION]);
    let url = described
        .lines()
        .find_map(|l| l.strip_prefix("Flink web UI:"))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no web UI in {described}"))
        .to_string();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let client = flink::FlinkClient::from_url(&url).expect("client");
    runtime.block_on(call(client))
}

/// The state of job `id` as the session cluster's JobManager reports it.
fn flink_job_state(env: &Env, id: &str) -> String {
    let job: flink::JobId = id.parse().expect("job id");
    with_flink(env, async |client| match client.job_state(&job).await {
        Ok(state) => state.as_str().to_string(),
        Err(e) if e.is_not_found() => "NOT FOUND".to_string(),
        Err(e) => panic!("cannot ask about job {id}: {e}"),
    })
}

/// How many jobs the session cluster has (in any state).
fn flink_job_count(env: &Env) -> usize {
    with_flink(env, async |client| {
        client.jobs().await.expect("list jobs").len()
    })
}

#[test]
fn a_session_job_is_upgraded_with_a_savepoint_suspended_resumed_and_deleted_leaving_the_cluster() {
    let mut env = Env::new();
    env.start_controller(&[]);
    env.apply(SESSION, &session_manifest());
    env.apply(
        "counter",
        &job_manifest(&env, "counter", "savepoint", 20, "counter.jar"),
    );
    let j = wait_running(&env, "counter", None);
    let first = job_status(&j).0.expect("a job id");
    env.wait_counting("counter", 0, KEYS);

    // an arg changes: stop with a savepoint, submit again from it
    env.apply(
        "counter",
        &job_manifest(&env, "counter", "savepoint", 24, "counter.jar"),
    );
    let j = wait_running(&env, "counter", Some(&first));
    let second = job_status(&j).0.expect("a job id");
    let restored = j
        .status
        .as_ref()
        .and_then(|s| s.job_status.as_ref())
        .and_then(|s| s.upgrade_savepoint_path.clone())
        .expect("the upgrade savepoint is recorded");
    assert!(restored.contains("savepoint-"), "{restored}");
    assert_counts_continue(&env, "counter", start_of(&j), "savepoint upgrade");
    assert_eq!(flink_job_state(&env, &first), "FINISHED");

    // a FlinkStateSnapshot of the session job: a savepoint of its job, through its cluster
    env.apply(
        "snap",
        "apiVersion: flink.apache.org/v1beta1\nkind: FlinkStateSnapshot\nmetadata:\n  name: \
         snap\nspec:\n  jobReference:\n    kind: FlinkSessionJob\n    name: counter\n  \
         savepoint: {}\n",
    );
    let snapshot = wait_snapshot_completed(&env, "snap");
    let path = snapshot
        .status
        .as_ref()
        .and_then(|s| s.path.clone())
        .expect("a completed savepoint has a path");
    let dir = path
        .trim_start_matches("file://")
        .trim_start_matches("file:");
    assert!(
        std::path::Path::new(dir).join("_metadata").is_file(),
        "{path} exists"
    );
    assert_eq!(
        flink_job_state(&env, &second),
        "RUNNING",
        "a savepoint, not a stop"
    );

    // suspend: the job stops with a savepoint; resume: it continues from it
    env.cli(&["suspend", "sessionjob", "counter"]);
    let j = wait_job(&env, "counter", "SUSPENDED", |j| {
        lifecycle_of(j) == Some(ResourceLifecycleState::Suspended)
    });
    assert_eq!(job_status(&j).1, Some(FlinkJobState::Finished));
    env.cli(&["resume", "sessionjob", "counter"]);
    let j = wait_running(&env, "counter", Some(&second));
    assert_counts_continue(&env, "counter", start_of(&j), "resume");
    let third = job_status(&j).0.expect("a job id");
    assert!(
        env.controller_output()
            .contains("sessionjob/counter: job=RUNNING lifecycle=STABLE"),
        "up shows session jobs:\n{}",
        env.controller_output()
    );
    let table = env.cli(&["get", "sessionjobs"]);
    assert!(
        table.starts_with("NAME") && table.contains("counter") && table.contains("RUNNING"),
        "{table}"
    );

    // the session cluster is not deleted under its job
    let err = env.cli_fails(&["delete", SESSION]);
    assert!(
        err.contains("FlinkDeployment default/session") && err.contains("counter"),
        "{err}"
    );

    // delete: the job is cancelled, the cluster stays
    env.cli(&[
        "delete",
        "sessionjob",
        "counter",
        "--wait",
        "--timeout",
        "60",
    ]);
    assert!(session_job(&env, "counter").is_none());
    assert_eq!(flink_job_state(&env, &third), "CANCELED");
    assert_eq!(env.jobmanagers(SESSION), 1, "the session cluster stays");

    env.cli(&["delete", SESSION, "--wait", "--timeout", "60"]);
    assert!(env.flink_processes().is_empty());
}

#[test]
fn session_job_errors_name_the_field_and_a_last_state_upgrade_keeps_counting() {
    let mut env = Env::new();
    env.start_controller(&[]);

    // a session job whose cluster does not exist yet waits, saying so
    env.apply(
        "late",
        &job_manifest(&env, "late", "last-state", 20, "counter.jar"),
    );
    let j = wait_job(&env, "late", "waiting for its cluster", |j| {
        error_of(j)
            .is_some_and(|e| e.contains("FlinkDeployment session") && e.contains("does not exist"))
    });
    assert_eq!(job_status(&j).0, None, "nothing was submitted");

    // an application deployment cannot take session jobs
    let app = manifest(&env, "app", "stateless", 1, "    state: suspended\n");
    env.apply("app", &app);
    let file = env.root().join("wrong.yaml");
    std::fs::write(
        &file,
        job_manifest(&env, "wrong", "stateless", 1, "counter.jar")
            .replace("deploymentName: session", "deploymentName: app"),
    )
    .expect("write");
    let err = env.cli_fails(&["apply", "-f", file.to_str().expect("utf-8")]);
    assert!(
        err.contains("FlinkSessionJob/wrong: spec.deploymentName") && err.contains("application"),
        "{err}"
    );
    env.cli(&["delete", "app"]);

    // once the cluster is READY the waiting job runs
    env.apply(SESSION, &session_manifest());
    let j = wait_running(&env, "late", None);
    let first = job_status(&j).0.expect("a job id");
    env.wait_counting("late", 0, KEYS);

    // a jar that is not there: a clear error naming the field; the running job is untouched
    env.apply(
        "missing",
        &job_manifest(&env, "missing", "stateless", 1, "missing.jar"),
    );
    let j = wait_job(&env, "missing", "reporting the missing jar", |j| {
        error_of(j).is_some_and(|e| e.contains("spec.job.jarURI") && e.contains("missing.jar"))
    });
    assert_eq!(job_status(&j).1, None, "nothing runs");

    // last-state: cancelled after its newest checkpoint is recorded, resubmitted from it
    let out = env.output("late");
    wait_until(START, "a few counts", || {
        out.max_counts().values().all(|c| *c >= 10)
    });
    env.apply(
        "late",
        &job_manifest(&env, "late", "last-state", 24, "counter.jar"),
    );
    let j = wait_running(&env, "late", Some(&first));
    let restored = j
        .status
        .as_ref()
        .and_then(|s| s.job_status.as_ref())
        .and_then(|s| s.upgrade_savepoint_path.clone())
        .expect("the checkpoint is recorded");
    assert!(
        restored.contains("/chk-"),
        "restored from a checkpoint: {restored}"
    );
    let start = start_of(&j);
    env.wait_counting("late", start, KEYS);
    let after = out.first_counts_after(start);
    let before = crate::max_before(&out, start);
    for (key, first) in &after {
        assert!(
            *first > 1 && *first <= before[key] + 1,
            "last-state upgrade: key {key} continues from a checkpoint ({before:?} → {after:?})"
        );
    }
    assert_eq!(flink_job_state(&env, &first), "CANCELED");

    for name in ["late", "missing"] {
        env.cli(&["delete", "sessionjob", name, "--wait", "--timeout", "60"]);
    }
    env.cli(&["delete", SESSION, "--wait", "--timeout", "60"]);
    assert!(env.flink_processes().is_empty());
}

#[test]
fn a_controller_killed_right_after_submitting_finds_the_job_by_its_recorded_id() {
    let mut env = Env::new();
    env.start_controller(&[("FLINKPILOT_FAILPOINT", "after-action:submit")]);
    env.apply(SESSION, &session_manifest());
    env.apply(
        "crash",
        &job_manifest(&env, "crash", "savepoint", 20, "counter.jar"),
    );
    assert!(
        env.wait_controller_crash(START),
        "the controller aborts at the failpoint:\n{}",
        env.controller_output()
    );
    let j = session_job(&env, "crash").expect("crash");
    let id = job_status(&j)
        .0
        .expect("the job id was recorded before the submission");
    let recon = j
        .status
        .as_ref()
        .and_then(|s| s.reconciliation_status.clone());
    assert_eq!(
        recon.and_then(|r| r.state),
        Some(api::ReconciliationState::Upgrading),
        "the submission's outcome was not recorded"
    );
    wait_until(START, "the submitted job to run", || {
        flink_job_state(&env, &id) == "RUNNING"
    });

    env.start_controller(&[]);
    let j = wait_running(&env, "crash", None);
    assert_eq!(
        job_status(&j).0.as_deref(),
        Some(id.as_str()),
        "the same job"
    );
    assert_eq!(flink_job_count(&env), 1, "submitted once");

    env.cli(&["delete", "sessionjob", "crash", "--wait", "--timeout", "60"]);
    env.cli(&["delete", SESSION, "--wait", "--timeout", "60"]);
    assert!(env.flink_processes().is_empty());
}
