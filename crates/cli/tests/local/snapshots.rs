//! End-to-end: `FlinkStateSnapshot`s in `flinkpilot local` on a real Flink with the counter
//! job — one deployment shared by every check to keep the run short: `savepoint NAME` and
//! `checkpoint NAME`, the deprecated trigger nonces, periodic savepoints with retention across
//! an upgrade, and a savepoint that cannot be written.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use api::{
    FlinkDeployment, FlinkJobState, FlinkStateSnapshot, FlinkStateSnapshotState,
    SnapshotTriggerType,
};
use engine::snapshot::{self, SnapshotKind};

use crate::support::*;

const NAME: &str = "snap";
const KEYS: u64 = 4;
/// The nonces set by the nonce check, kept in later manifests so they take nothing new.
const NONCES: &str = "    savepointTriggerNonce: 7\n    checkpointTriggerNonce: 7\n";

/// Periodic savepoints every 2 s, at most 2 kept (their files disposed with the resource by
/// default).
fn snapshot_manifest(env: &Env, rate: u32, extra_job: &str) -> String {
    manifest(env, NAME, "savepoint", rate, extra_job).replace(
        "    taskmanager.numberOfTaskSlots: \"2\"\n",
        "    taskmanager.numberOfTaskSlots: \"2\"\n\
         \x20   kubernetes.operator.periodic.savepoint.interval: 2s\n\
         \x20   kubernetes.operator.savepoint.history.max.count: \"2\"\n",
    )
}

fn snapshots(env: &Env) -> Vec<FlinkStateSnapshot> {
    env.store
        .list::<FlinkStateSnapshot>()
        .expect("list snapshots")
}

fn snapshot_named(env: &Env, name: &str) -> Option<FlinkStateSnapshot> {
    snapshots(env)
        .into_iter()
        .find(|s| s.metadata.name.as_deref() == Some(name))
}

fn of(env: &Env, kind: SnapshotKind, trigger: SnapshotTriggerType) -> Vec<FlinkStateSnapshot> {
    snapshots(env)
        .into_iter()
        .filter(|s| SnapshotKind::of(s) == kind && snapshot::trigger_type(s) == trigger)
        .collect()
}

fn state(s: &FlinkStateSnapshot) -> FlinkStateSnapshotState {
    snapshot::state(s)
}

fn path_of(s: &FlinkStateSnapshot) -> Option<PathBuf> {
    s.status
        .as_ref()?
        .path
        .as_deref()
        .map(|p| PathBuf::from(p.trim_start_matches("file://").trim_start_matches("file:")))
}

/// The name of the FlinkStateSnapshot a `savepoint`/`checkpoint` command created.
fn created_name(stdout: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("flinkstatesnapshot/"))
        .and_then(|l| l.strip_suffix(" created"))
        .unwrap_or_else(|| panic!("no `flinkstatesnapshot/… created` line in {stdout:?}"))
        .to_string()
}

fn wait_snapshot(
    env: &Env,
    what: &str,
    mut cond: impl FnMut(&[FlinkStateSnapshot]) -> bool,
) -> Vec<FlinkStateSnapshot> {
    let mut last = Vec::new();
    let deadline = std::time::Instant::now() + START;
    while std::time::Instant::now() < deadline {
        last = snapshots(env);
        if cond(&last) {
            return last;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let states: Vec<String> = last
        .iter()
        .map(|s| {
            format!(
                "{} {} {:?}",
                s.metadata.name.as_deref().unwrap_or_default(),
                state(s).as_str(),
                s.status.as_ref().and_then(|s| s.error.clone())
            )
        })
        .collect();
    panic!(
        "timed out waiting for {what}; snapshots: {states:#?}\ncontroller output:\n{}",
        env.controller_output()
    );
}

/// Remembers where every periodic savepoint seen so far lives.
fn remember(seen: &mut BTreeMap<String, PathBuf>, all: &[FlinkStateSnapshot]) {
    for s in all {
        if snapshot::trigger_type(s) == SnapshotTriggerType::Periodic
            && let (Some(name), Some(path)) = (s.metadata.name.clone(), path_of(s))
        {
            seen.insert(name, path);
        }
    }
}

fn wait_counting_from_now(env: &Env) {
    env.wait_counting(NAME, testkit::now_millis(), KEYS);
}

#[test]
fn snapshot_resources_manual_nonces_periodic_retention_and_failures_on_one_deployment() {
    let mut env = Env::new();
    env.start_controller(&[]);
    env.apply(NAME, &snapshot_manifest(&env, 20, ""));
    let d = env.wait_stable(NAME);
    let first_job = job_id(&d).unwrap_or_default();
    wait_counting_from_now(&env);

    // (a) `savepoint NAME` creates a MANUAL FlinkStateSnapshot, waits, prints the path
    let out = env.cli(&["savepoint", NAME]);
    let manual = created_name(&out);
    let printed = out.lines().last().unwrap_or_default().to_string();
    let s = snapshot_named(&env, &manual).expect("the savepoint resource exists");
    assert_eq!(state(&s), FlinkStateSnapshotState::Completed);
    assert_eq!(snapshot::trigger_type(&s), SnapshotTriggerType::Manual);
    assert_eq!(
        s.status.as_ref().and_then(|s| s.path.clone()),
        Some(printed)
    );
    let manual_dir = path_of(&s).expect("a completed savepoint has a path");
    assert!(manual_dir.join("_metadata").is_file(), "{manual_dir:?}");
    let labels = s.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels.get("snapshot.state").map(String::as_str),
        Some("COMPLETED")
    );
    assert_eq!(
        labels.get("snapshot.type").map(String::as_str),
        Some("SAVEPOINT")
    );
    assert_eq!(
        labels.get("job-reference.name").map(String::as_str),
        Some(NAME)
    );

    // … and `checkpoint NAME` a checkpoint
    let out = env.cli(&["checkpoint", NAME]);
    let checkpoint = created_name(&out);
    let c = snapshot_named(&env, &checkpoint).expect("the checkpoint resource exists");
    assert_eq!(state(&c), FlinkStateSnapshotState::Completed);
    assert!(
        out.lines().last().unwrap_or_default().contains("/chk-"),
        "a checkpoint path: {out}"
    );
    let described = env.cli(&["describe", NAME]);
    assert!(
        described.contains("Snapshots (") && described.contains(&checkpoint),
        "{described}"
    );
    let table = env.cli(&["get", "snapshots"]);
    assert!(
        table.starts_with("NAME") && table.contains(&manual) && table.contains(&checkpoint),
        "{table}"
    );

    // (d) each deprecated nonce change takes exactly one snapshot, as a MANUAL resource
    let manual_savepoints = of(&env, SnapshotKind::Savepoint, SnapshotTriggerType::Manual).len();
    let manual_checkpoints = of(&env, SnapshotKind::Checkpoint, SnapshotTriggerType::Manual).len();
    env.store
        .patch_spec::<FlinkDeployment>(&engine::ResourceKey::new("default", NAME), |spec| {
            if let Some(job) = spec.job.as_mut() {
                job.savepoint_trigger_nonce = Some(7);
                job.checkpoint_trigger_nonce = Some(7);
            }
        })
        .expect("set the nonces");
    let done = |s: &&FlinkStateSnapshot| state(s) == FlinkStateSnapshotState::Completed;
    wait_snapshot(&env, "one snapshot per nonce, completed", |all| {
        let count = |kind, done_only: bool| {
            all.iter()
                .filter(|s| {
                    SnapshotKind::of(s) == kind
                        && snapshot::trigger_type(s) == SnapshotTriggerType::Manual
                })
                .filter(|s| !done_only || done(s))
                .count()
        };
        count(SnapshotKind::Savepoint, true) == manual_savepoints + 1
            && count(SnapshotKind::Checkpoint, true) == manual_checkpoints + 1
    });
    // a few more passes of the controller take nothing more
    let d = env.wait_for_state(NAME, START, "the nonces recorded", |d| {
        let target = d
            .status
            .clone()
            .and_then(|s| engine::decide::target_spec(&s));
        target.and_then(|t| t.job).is_some_and(|j| {
            j.savepoint_trigger_nonce == Some(7) && j.checkpoint_trigger_nonce == Some(7)
        })
    });
    wait_counting_from_now(&env);
    wait_counting_from_now(&env);
    assert_eq!(
        of(&env, SnapshotKind::Savepoint, SnapshotTriggerType::Manual).len(),
        manual_savepoints + 1,
        "savepointTriggerNonce took exactly one savepoint"
    );
    assert_eq!(
        of(&env, SnapshotKind::Checkpoint, SnapshotTriggerType::Manual).len(),
        manual_checkpoints + 1,
        "checkpointTriggerNonce took exactly one checkpoint"
    );
    assert_eq!(job_id(&d).as_deref(), Some(first_job.as_str()));

    // (b) periodic savepoints, capped at max.count, across an upgrade whose savepoint the new
    // job restores from: that one is never disposed, the others really are
    let mut seen: BTreeMap<String, PathBuf> = BTreeMap::new();
    wait_snapshot(&env, "periodic savepoints before the upgrade", |all| {
        remember(&mut seen, all);
        seen.len() >= 2
    });
    env.apply(NAME, &snapshot_manifest(&env, 24, NONCES));
    let d = env.wait_for_state(NAME, START, "running the upgraded job, stable", |d| {
        job_id(d).is_some_and(|id| id != first_job)
            && lifecycle(d) == Some(api::ResourceLifecycleState::Stable)
            && job_state(d) == Some(FlinkJobState::Running)
    });
    let restored_from = d
        .status
        .as_ref()
        .and_then(|s| s.job_status.as_ref())
        .and_then(|j| j.upgrade_savepoint_path.clone())
        .expect("the upgrade savepoint is recorded");
    let restored_dir = PathBuf::from(
        restored_from
            .trim_start_matches("file://")
            .trim_start_matches("file:"),
    );
    let upgrade = of(&env, SnapshotKind::Savepoint, SnapshotTriggerType::Upgrade);
    assert_eq!(
        upgrade.len(),
        1,
        "the upgrade savepoint is a FlinkStateSnapshot"
    );
    let upgrade_name = upgrade[0].metadata.name.clone().unwrap_or_default();
    let upgraded_at = job_start(&d);
    let mut periodic_after: BTreeSet<String> = BTreeSet::new();
    let settled = wait_snapshot(
        &env,
        "retention to cap the history after the upgrade",
        |all| {
            remember(&mut seen, all);
            periodic_after.extend(
                all.iter()
                    .filter(|s| snapshot::trigger_type(s) == SnapshotTriggerType::Periodic)
                    .filter(|s| snapshot::created_ms(s) > i64::try_from(upgraded_at).unwrap_or(0))
                    .filter_map(|s| s.metadata.name.clone()),
            );
            let kept: Vec<&FlinkStateSnapshot> = all
                .iter()
                .filter(|s| {
                    matches!(
                        snapshot::trigger_type(s),
                        SnapshotTriggerType::Periodic | SnapshotTriggerType::Upgrade
                    ) && state(s) == FlinkStateSnapshotState::Completed
                })
                .collect();
            periodic_after.len() >= 3
                && kept.len() == 2
                && kept.iter().all(|s| s.metadata.deletion_timestamp.is_none())
        },
    );
    assert!(
        snapshot_named(&env, &upgrade_name).is_some(),
        "the savepoint the job restored from is kept"
    );
    assert!(
        restored_dir.join("_metadata").is_file(),
        "its files are kept: {restored_dir:?}"
    );
    let live: BTreeSet<String> = settled
        .iter()
        .filter_map(|s| s.metadata.name.clone())
        .collect();
    let newest_periodic = settled
        .iter()
        .filter(|s| snapshot::trigger_type(s) == SnapshotTriggerType::Periodic && done(s))
        .max_by_key(|s| snapshot::created_ms(s))
        .expect("the newest periodic savepoint is kept");
    let newest_dir = path_of(newest_periodic).expect("path");
    assert!(newest_dir.join("_metadata").is_file(), "{newest_dir:?}");
    let gone: Vec<&PathBuf> = seen
        .iter()
        .filter(|(name, _)| !live.contains(*name))
        .map(|(_, p)| p)
        .collect();
    assert!(
        gone.len() >= 2,
        "retention deleted periodic savepoints: {seen:?}"
    );
    for dir in gone {
        // a resource is only removed once its files are gone
        assert!(
            !dir.exists(),
            "disposed savepoint directory still exists: {dir:?}"
        );
    }
    assert!(
        manual_dir.join("_metadata").is_file(),
        "manual savepoints are not retention's"
    );

    // (c) a savepoint that cannot be written: FAILED after backoffLimit retries, the error in
    // its status, the job untouched and counting
    let blocker = env.root().join("not-a-dir");
    std::fs::write(&blocker, b"a file where the savepoint directory should be").expect("write");
    let job_before = job_id(&env.get(NAME).expect(NAME));
    let failing = format!(
        "apiVersion: flink.apache.org/v1beta1\nkind: FlinkStateSnapshot\nmetadata:\n  name: \
         unwritable\nspec:\n  backoffLimit: 1\n  jobReference:\n    kind: FlinkDeployment\n    \
         name: {NAME}\n  savepoint:\n    path: file://{}/savepoints\n",
        blocker.display()
    );
    env.apply("unwritable", &failing);
    let all = wait_snapshot(&env, "the unwritable savepoint to fail", |all| {
        all.iter().any(|s| {
            s.metadata.name.as_deref() == Some("unwritable")
                && state(s) == FlinkStateSnapshotState::Failed
        })
    });
    let failed = all
        .iter()
        .find(|s| s.metadata.name.as_deref() == Some("unwritable"))
        .expect("unwritable");
    let status = failed.status.clone().unwrap_or_default();
    assert_eq!(
        status.failures,
        Some(2),
        "one try and one retry: {status:?}"
    );
    let error = status.error.unwrap_or_default();
    assert!(!error.is_empty(), "the cause is in the status");
    env.wait_event::<FlinkStateSnapshot>("unwritable", "a SavepointError event", |r, _| {
        r == "SavepointError"
    });
    let d = env.get(NAME).expect(NAME);
    assert_eq!(
        job_state(&d),
        Some(FlinkJobState::Running),
        "the job keeps running"
    );
    assert_eq!(job_id(&d), job_before, "the job was not touched");
    wait_counting_from_now(&env);

    // without snapshot resources (an operator option: no redeploy), periodic savepoints go to
    // the legacy savepointHistory, capped the same way, files disposed before entries go
    let job_before = job_id(&env.get(NAME).expect(NAME));
    env.apply(
        NAME,
        &snapshot_manifest(&env, 24, NONCES).replace(
            "    kubernetes.operator.periodic.savepoint.interval: 2s\n",
            "    kubernetes.operator.periodic.savepoint.interval: 2s\n\
             \x20   kubernetes.operator.snapshot.resource.enabled: \"false\"\n",
        ),
    );
    let history = |d: &FlinkDeployment| -> Vec<String> {
        d.status
            .as_ref()
            .and_then(|s| s.job_status.as_ref())
            .and_then(|j| j.savepoint_info.as_ref())
            .and_then(|s| s.savepoint_history.clone())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|sp| sp.location)
            .collect()
    };
    let mut legacy_seen: BTreeSet<String> = BTreeSet::new();
    let d = env.wait_for_state(NAME, START, "the legacy history capped at 2", |d| {
        let now = history(d);
        legacy_seen.extend(now.iter().cloned());
        legacy_seen.len() >= 4 && now.len() == 2
    });
    assert_eq!(
        job_id(&d),
        job_before,
        "an operator option does not redeploy"
    );
    let kept = history(&d);
    for location in &legacy_seen {
        let dir = PathBuf::from(
            location
                .trim_start_matches("file://")
                .trim_start_matches("file:"),
        );
        if kept.contains(location) {
            assert!(dir.join("_metadata").is_file(), "kept: {dir:?}");
        } else {
            assert!(
                !dir.exists(),
                "dropped from the history but not disposed: {dir:?}"
            );
        }
    }

    // deleting a savepoint that says disposeOnDelete disposes its files first
    let out = env.cli(&["savepoint", NAME, "--dispose-on-delete"]);
    let disposable = created_name(&out);
    let dir = path_of(&snapshot_named(&env, &disposable).expect("created")).expect("path");
    assert!(dir.join("_metadata").is_file(), "{dir:?}");
    env.cli(&[
        "delete",
        "snapshot",
        &disposable,
        "--wait",
        "--timeout",
        "60",
    ]);
    assert!(snapshot_named(&env, &disposable).is_none());
    assert!(!dir.exists(), "disposed with its resource: {dir:?}");
    assert!(
        manual_dir.join("_metadata").is_file(),
        "other savepoints stay"
    );

    env.cli(&["delete", NAME, "--wait", "--timeout", "120"]);
    assert_eq!(env.processes_of(NAME), 0);
}
