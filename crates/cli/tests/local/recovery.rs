//! Recovery without anyone asking, on a real Flink with faults injected for real: a killed
//! TaskManager, a killed JobManager, a job that fails for good (with and without
//! `kubernetes.operator.job.restart.failed`), and an upgrade whose job crashes at start
//! (rollback to the last stable spec).
//!
//! Each fault test checks that state was restored, not reset: per key, the first count after
//! the fault is more than 1, at most the last count before it plus one, and lost no more than
//! the records counted since the restored snapshot (the count is at least the highest count
//! written [`SNAPSHOT_SLACK`] before the snapshot was written).

use std::collections::BTreeMap;
use std::path::PathBuf;

use api::{FlinkDeployment, FlinkJobState, ReconciliationState, ResourceLifecycleState};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use testkit::{CounterOutput, now_millis, wait_until};

use super::support::*;

const KEYS: u64 = 4;

/// How long before its `_metadata` was written a checkpoint's barrier may have passed the
/// counter (checkpoints take milliseconds here; this leaves room for a loaded machine).
const SNAPSHOT_SLACK: u64 = 5_000;

/// A counter deployment with extra Flink/operator options (`key: value` lines) and extra
/// job arguments.
fn recovery_manifest(
    env: &Env,
    name: &str,
    mode: &str,
    options: &[(&str, &str)],
    extra_args: &[&str],
) -> String {
    let out = env.root().join("out").join(name);
    let mut config = String::new();
    for (k, v) in options {
        config.push_str(&format!("    {k}: \"{v}\"\n"));
    }
    let mut args = vec![
        "--rate".to_string(),
        "20".into(),
        "--keys".into(),
        KEYS.to_string(),
        "--output".into(),
        out.display().to_string(),
    ];
    args.extend(extra_args.iter().map(ToString::to_string));
    let args: Vec<String> = args.iter().map(|a| format!("\"{a}\"")).collect();
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
{config}  jobManager:
    resource: {{memory: 1024m, cpu: 0.5}}
  taskManager:
    resource: {{memory: 1024m, cpu: 0.5}}
  job:
    jarURI: local:///opt/flink/usrlib/counter.jar
    entryClass: flinkpilot.jobs.Counter
    args: [{args}]
    parallelism: 2
    upgradeMode: {mode}
"#,
        args = args.join(", ")
    )
}

/// Per key, the highest count written before `t`.
fn max_before(out: &CounterOutput, t: u64) -> BTreeMap<u64, u64> {
    let mut max = BTreeMap::new();
    for r in out.records().into_iter().filter(|r| r.at_millis < t) {
        let m = max.entry(r.key).or_insert(0);
        *m = (*m).max(r.count);
    }
    max
}

/// Waits until every key has a count of at least `per_key`.
fn wait_counts(env: &Env, name: &str, per_key: u64) {
    let out = env.output(name);
    wait_until(START, &format!("{name} to count {per_key} per key"), || {
        let m = out.max_counts();
        m.len() as u64 == KEYS && m.values().all(|c| *c >= per_key)
    });
}

/// Waits until job `job` of cluster `cluster` has a completed checkpoint on storage, so a
/// fault injected next has state to recover from.
pub(crate) fn wait_checkpoint(env: &Env, cluster: &str, job: &str) {
    let checkpoints = env
        .root()
        .join("flink-data")
        .join(cluster)
        .join("checkpoints")
        .join(job);
    wait_until(START, &format!("a completed checkpoint of {job}"), || {
        std::fs::read_dir(&checkpoints).is_ok_and(|mut entries| {
            entries.any(|e| e.is_ok_and(|e| e.path().join("_metadata").is_file()))
        })
    });
}

/// State was restored, not reset: per key, the first count after `resumed_at` continues
/// from a snapshot written at `snapshot_at` (epoch ms) or later, and never from before it.
pub(crate) fn assert_restored(
    out: &CounterOutput,
    what: &str,
    fault_at: u64,
    resumed_at: u64,
    snapshot_at: u64,
) {
    let last = max_before(out, fault_at);
    let covered = max_before(out, snapshot_at.saturating_sub(SNAPSHOT_SLACK));
    let first = out.first_counts_after(resumed_at);
    assert_eq!(first.len() as u64, KEYS, "{what}: every key counts again");
    for (key, f) in &first {
        let last = last.get(key).copied().unwrap_or(0);
        let covered = covered.get(key).copied().unwrap_or(0);
        assert!(
            *f > 1 && *f <= last + 1 && *f > covered,
            "{what}: key {key} must continue from restored state: first count after the \
             fault {f}, last before it {last}, at least {covered} were in the snapshot \
             (last {last:?}, first {first:?})"
        );
    }
}

fn events(env: &Env, name: &str) -> Vec<(String, String)> {
    env.store
        .events::<FlinkDeployment>(&engine::ResourceKey::new("default", name))
        .expect("read events")
        .into_iter()
        .map(|e| (e.reason, e.message))
        .collect()
}

fn upgrade_savepoint_path(d: &FlinkDeployment) -> Option<String> {
    d.status
        .as_ref()?
        .job_status
        .as_ref()?
        .upgrade_savepoint_path
        .clone()
}

/// When the snapshot at `uri` was written (its `_metadata`), epoch milliseconds.
pub(crate) fn written_at(uri: &str) -> u64 {
    let path = PathBuf::from(
        uri.trim_start_matches("file://")
            .trim_start_matches("file:"),
    )
    .join("_metadata");
    let modified = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| panic!("{} must exist: {e}", path.display()));
    u64::try_from(
        modified
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis(),
    )
    .unwrap_or(u64::MAX)
}

pub(crate) fn kill9(pid: i32) {
    kill(Pid::from_raw(pid), Signal::SIGKILL).expect("kill the Flink process");
}

#[test]
fn a_killed_taskmanager_is_replaced_and_flink_restores_the_job_from_its_checkpoint() {
    let mut env = Env::new();
    env.start_controller(&[]);
    let options = [
        ("heartbeat.interval", "1000"),
        ("heartbeat.timeout", "5000"),
    ];
    env.apply(
        "tm",
        &recovery_manifest(&env, "tm", "savepoint", &options, &[]),
    );
    let d = env.wait_stable("tm");
    wait_counts(&env, "tm", 20);
    let tm = env
        .flink_processes()
        .into_iter()
        .find(|(_, jm, n)| !*jm && n == "tm")
        .expect("a TaskManager runs");
    let killed_at = now_millis();
    kill9(tm.0);

    // A new TaskManager process is started and Flink restarts the same job on it.
    wait_until(START, "a new TaskManager", || {
        env.flink_processes()
            .iter()
            .any(|(pid, jm, n)| !*jm && n == "tm" && *pid != tm.0)
    });
    env.wait_counting("tm", killed_at, KEYS);
    let out = env.output("tm");
    // Flink restored its newest checkpoint; with one every second, that one was written
    // shortly before the kill.
    assert_restored(&out, "TaskManager killed", killed_at, killed_at, killed_at);
    let after = env.get("tm").expect("deployment");
    assert_eq!(
        job_id(&after),
        job_id(&d),
        "Flink restarted the job itself; the operator did not redeploy it"
    );
    env.wait_event::<FlinkDeployment>(
        "tm",
        "the restart of the TaskManager as an event",
        |r, m| r == "RecoverDeployment" && m.contains("TaskManagers run"),
    );
    assert_eq!(env.jobmanagers("tm"), 1);
}

#[test]
fn a_killed_jobmanager_is_recovered_from_the_latest_checkpoint() {
    let mut env = Env::new();
    env.start_controller(&[]);
    env.apply("jm", &recovery_manifest(&env, "jm", "savepoint", &[], &[]));
    let d = env.wait_stable("jm");
    let old_job = job_id(&d).expect("job id");
    wait_counts(&env, "jm", 20);
    wait_checkpoint(&env, "jm", &old_job);
    let jm = env
        .flink_processes()
        .into_iter()
        .find(|(_, jm, n)| *jm && n == "jm")
        .expect("a JobManager runs");
    let killed_at = now_millis();
    kill9(jm.0);

    let d = env.wait_for_state("jm", START, "recovered, running a new job", |d| {
        job_id(d).is_some_and(|id| id != old_job)
            && lifecycle(d) == Some(ResourceLifecycleState::Stable)
            && job_state(d) == Some(FlinkJobState::Running)
    });
    let restored = upgrade_savepoint_path(&d).expect("the restored checkpoint is recorded");
    assert!(
        restored.contains(&format!("/{old_job}/chk-")),
        "restored from the old job's newest checkpoint: {restored}"
    );
    let start = job_start(&d);
    env.wait_counting("jm", start, KEYS);
    assert_restored(
        &env.output("jm"),
        "JobManager killed",
        killed_at,
        start,
        written_at(&restored),
    );
    assert_eq!(
        env.jobmanagers("jm"),
        1,
        "exactly one JobManager afterwards"
    );
    env.wait_event::<FlinkDeployment>(
        "jm",
        "a RecoverDeployment event naming the checkpoint it used",
        |r, m| r == "RecoverDeployment" && m.contains(&restored),
    );
}

#[test]
fn a_failed_job_stays_failed_with_its_cause_until_restart_failed_redeploys_it_from_state() {
    let mut env = Env::new();
    env.start_controller(&[]);
    // No restarts by Flink, so losing the TaskManager fails the job for good; heartbeats
    // notice the loss within seconds.
    let mut options = vec![
        ("restart-strategy.type", "none"),
        ("heartbeat.interval", "1000"),
        ("heartbeat.timeout", "5000"),
    ];
    env.apply(
        "fail",
        &recovery_manifest(&env, "fail", "last-state", &options, &[]),
    );
    let d = env.wait_stable("fail");
    let failed_job = job_id(&d).expect("job id");
    wait_counts(&env, "fail", 20);
    wait_checkpoint(&env, "fail", &failed_job);
    let tm = env
        .flink_processes()
        .into_iter()
        .find(|(_, jm, n)| !*jm && n == "fail")
        .expect("a TaskManager runs");
    let failed_at = now_millis();
    kill9(tm.0);
    let d = env.wait_for_state("fail", START, "FAILED", |d| {
        job_state(d) == Some(FlinkJobState::Failed)
    });
    let status = d.status.clone().expect("status");
    let error = status.error.clone().unwrap_or_default();
    assert!(
        error.starts_with("Job failed: ") && error.len() > "Job failed: ".len() + 10,
        "the cause is in status.error: {error:?}"
    );
    assert_eq!(status.lifecycle_state, Some(ResourceLifecycleState::Failed));
    assert_eq!(job_id(&d).as_deref(), Some(failed_job.as_str()));
    assert!(
        !events(&env, "fail")
            .iter()
            .any(|(r, _)| r == "RestartFailedJob"),
        "without restart.failed the job is not redeployed"
    );

    // Enabling restart.failed (an operator option: no upgrade) redeploys it from its
    // newest checkpoint.
    options.push(("kubernetes.operator.job.restart.failed", "true"));
    env.apply(
        "fail",
        &recovery_manifest(&env, "fail", "last-state", &options, &[]),
    );
    let d = env.wait_for_state("fail", START, "redeployed, stable", |d| {
        job_id(d).is_some_and(|id| id != failed_job)
            && lifecycle(d) == Some(ResourceLifecycleState::Stable)
            && job_state(d) == Some(FlinkJobState::Running)
    });
    let restored = upgrade_savepoint_path(&d).expect("the restored checkpoint is recorded");
    assert!(
        restored.contains(&format!("/{failed_job}/chk-")),
        "restored from the failed job's newest checkpoint: {restored}"
    );
    let start = job_start(&d);
    env.wait_counting("fail", start, KEYS);
    assert_restored(
        &env.output("fail"),
        "failed job redeployed",
        failed_at,
        start,
        written_at(&restored),
    );
    env.wait_event::<FlinkDeployment>(
        "fail",
        "a RestartFailedJob event naming the checkpoint",
        |r, m| r == "RestartFailedJob" && m.contains(&restored),
    );
    assert_eq!(env.jobmanagers("fail"), 1, "one cluster");
}

#[test]
fn an_upgrade_whose_job_crashes_at_start_is_rolled_back_to_the_last_stable_spec() {
    let mut env = Env::new();
    env.start_controller(&[]);
    let options = [
        ("kubernetes.operator.deployment.rollback.enabled", "true"),
        ("kubernetes.operator.deployment.readiness.timeout", "10s"),
    ];
    env.apply(
        "rb",
        &recovery_manifest(&env, "rb", "savepoint", &options, &[]),
    );
    let d = env.wait_stable("rb");
    let stable_job = job_id(&d).expect("job id");
    wait_counts(&env, "rb", 10);

    env.apply(
        "rb",
        &recovery_manifest(&env, "rb", "savepoint", &options, &["--fail-on-start"]),
    );
    let d = env.wait_for_state("rb", START, "ROLLED_BACK with the job running", |d| {
        lifecycle(d) == Some(ResourceLifecycleState::RolledBack)
            && job_state(d) == Some(FlinkJobState::Running)
            && job_id(d).is_some_and(|id| id != stable_job)
    });
    let status = d.status.clone().expect("status");
    let recon = status.reconciliation_status.clone().expect("recon");
    assert_eq!(recon.state, Some(ReconciliationState::RolledBack));
    assert!(
        recon
            .last_reconciled_spec
            .as_deref()
            .is_some_and(|s| s.contains("--fail-on-start")),
        "lastReconciledSpec keeps the spec that failed"
    );
    assert!(
        !recon
            .last_stable_spec
            .as_deref()
            .unwrap_or_default()
            .contains("--fail-on-start"),
        "the stable spec runs"
    );
    // The upgrade's savepoint (the failing job never completed a checkpoint) is restored.
    let restored = upgrade_savepoint_path(&d).expect("restore path");
    assert_eq!(last_savepoint(&d).as_deref(), Some(restored.as_str()));
    let start = job_start(&d);
    env.wait_counting("rb", start, KEYS);
    let out = env.output("rb");
    let before = max_before(&out, start);
    let after = out.first_counts_after(start);
    for (key, first) in &after {
        assert_eq!(
            *first,
            before[key] + 1,
            "rolled back from the upgrade savepoint: key {key} continues exactly \
             ({before:?} → {after:?})"
        );
    }
    env.wait_event::<FlinkDeployment>(
        "rb",
        "a Rollback event saying why and from which snapshot",
        |r, m| {
            r == "Rollback"
                && m.contains("did not become stable within 10s")
                && m.contains(&restored)
        },
    );
    assert_eq!(env.jobmanagers("rb"), 1);
}

#[test]
fn a_job_restarting_too_often_is_restarted_by_the_health_check_from_its_newest_checkpoint() {
    let mut env = Env::new();
    env.start_controller(&[]);
    // Flink restarts the job every second and it fails again at count 30: more than 2
    // restarts within the window is unhealthy.
    let options = [
        ("restart-strategy.type", "fixed-delay"),
        ("restart-strategy.fixed-delay.attempts", "1000"),
        ("restart-strategy.fixed-delay.delay", "1 s"),
        ("metrics.fetcher.update-interval", "1000"),
        ("kubernetes.operator.cluster.health-check.enabled", "true"),
        (
            "kubernetes.operator.cluster.health-check.restarts.threshold",
            "2",
        ),
    ];
    env.apply(
        "health",
        &recovery_manifest(
            &env,
            "health",
            "last-state",
            &options,
            &["--fail-at-count", "30"],
        ),
    );
    let d = env.wait_stable("health");
    let sick_job = job_id(&d).expect("job id");
    let d = env.wait_for_state("health", START, "restarted by the health check", |d| {
        job_id(d).is_some_and(|id| id != sick_job)
    });
    let restored = upgrade_savepoint_path(&d).expect("the restored checkpoint is recorded");
    assert!(
        restored.contains(&format!("/{sick_job}/chk-")),
        "restarted from the unhealthy job's newest checkpoint: {restored}"
    );
    env.wait_event::<FlinkDeployment>(
        "health",
        "a RestartUnhealthyJob event saying why and from which checkpoint",
        |r, m| {
            r == "RestartUnhealthyJob"
                && m.contains("restarted")
                && m.contains("times within 2m")
                && m.contains(&restored)
        },
    );
    let info = d
        .status
        .as_ref()
        .and_then(|s| s.cluster_info.as_ref())
        .and_then(|i| i.get("ClusterHealthInfo"))
        .cloned();
    assert!(
        info.as_ref()
            .is_none_or(|i| !i.contains("\"healthy\":false")),
        "the health history starts again with the new job: {info:?}"
    );
    wait_until(START, "one JobManager", || env.jobmanagers("health") == 1);
}
