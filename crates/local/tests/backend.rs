//! The local backend on a real Flink running the counter job: deploy, observe, adoption by a
//! restarted controller, failures, scaling, restore from a savepoint, and delete leaving no
//! process behind.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::*;
use engine::{BackendError, ClusterBackend, ClusterObservation, RestorePlan};
use flink::{PollOptions, RunJarRequest, SavepointRequest};
use flinkpilot_local::Role;
use testkit::{
    CounterArgs, CounterOutput, FLINK_1_20, FLINK_2_3, FlinkDist, TestJob, now_millis,
    wait_until_async,
};

fn counter_args(output: &std::path::Path) -> CounterArgs {
    CounterArgs::default()
        .rate(20)
        .keys(3)
        .output(output)
        .checkpoint_interval(Duration::from_millis(500))
}

async fn wait_output_grows(output: &CounterOutput, after_millis: u64) {
    wait_until_async(
        STARTUP,
        "counter output written after the (re)start",
        async || output.last_millis().is_some_and(|t| t > after_millis),
    )
    .await;
}

/// One application cluster through its whole life. Shares one cluster across the steps to
/// keep the suite fast: deploy → idempotent deploy → adoption by a new controller →
/// TaskManager crash and repair → savepoint → delete → restore from the savepoint →
/// JobManager crash → delete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn application_cluster_is_supervised_adopted_and_restored_from_a_savepoint() {
    let dist = FlinkDist::get(FLINK_2_3);
    let job = TestJob::build_for("counter", dist);
    let mut env = TestEnv::new(dist);
    let key = env.key("counter");
    let output = CounterOutput::new(env.path("out-1"));
    let (plan, job_id) = counter_plan(
        &key,
        dist,
        &job,
        &counter_args(output.dir()),
        None,
        "plan-1",
    );

    // deploy: JobManager and TaskManager up, REST answers, the job runs and counts
    env.backend.deploy(&key, &plan).await.unwrap();
    wait_running(&env.backend, &key, 1).await;
    let info = env.backend.cluster_info(&key).unwrap().unwrap();
    assert_eq!(info.processes.len(), 2);
    assert!(info.processes.iter().all(|p| p.running));
    wait_job_running(&env.backend, &key, &job_id).await;
    let health = env
        .backend
        .flink_client(&key)
        .unwrap()
        .health()
        .await
        .unwrap();
    assert_eq!(health.version.raw, dist.version);
    wait_output_grows(&output, 0).await;
    let cluster_dir = env.backend.cluster_dir(&key);
    assert!(info.conf_dir.starts_with(&cluster_dir));
    assert!(
        !processes_mentioning(&info.conf_dir).is_empty(),
        "pgrep finds the cluster"
    );

    // the same plan again starts nothing
    let started = pids(&env.backend, &key);
    env.backend.deploy(&key, &plan).await.unwrap();
    assert_eq!(pids(&env.backend, &key), started);

    // a restarted controller adopts the processes instead of starting new ones
    let controller = env.new_controller();
    match controller.observe(&key).await.unwrap() {
        ClusterObservation::Running {
            plan_hash,
            taskmanagers,
        } => {
            assert_eq!(plan_hash.as_deref(), Some("plan-1"));
            assert_eq!(taskmanagers, 1);
        }
        other => panic!("expected the adopted cluster to run: {other:?}"),
    }
    controller.deploy(&key, &plan).await.unwrap();
    assert_eq!(pids(&controller, &key), started, "no duplicate processes");
    let (other_plan, _) = counter_plan(
        &key,
        dist,
        &job,
        &counter_args(output.dir()),
        None,
        "plan-x",
    );
    let refused = controller.deploy(&key, &other_plan).await.unwrap_err();
    assert!(
        matches!(&refused, BackendError::Invalid { message, .. } if message.contains("delete it")),
        "{refused}"
    );
    assert_eq!(pids(&controller, &key), started);

    // a crashed TaskManager is reported, and scale starts it again; the job goes on
    crash(started[1]);
    wait_running(&controller, &key, 0).await;
    let tm = controller.cluster_info(&key).unwrap().unwrap().processes[1].clone();
    assert_eq!((tm.role, tm.running), (Role::TaskManager, false));
    controller.scale(&key, 1).await.unwrap();
    wait_running(&controller, &key, 1).await;
    assert_ne!(pids(&controller, &key)[1], started[1]);
    let restarted_at = now_millis();
    wait_output_grows(&output, restarted_at).await;

    // a savepoint through the REST API
    let client = controller.flink_client(&key).unwrap();
    let savepoint = client
        .savepoint(
            &job_id,
            &SavepointRequest {
                target_directory: Some(format!("file://{}", env.path("savepoints").display())),
                ..Default::default()
            },
            PollOptions::new(Duration::from_secs(120), Duration::from_millis(200)),
        )
        .await
        .unwrap();
    assert_eq!(controller.snapshot_exists(&savepoint).await, Some(true));
    let counted = output.max_counts();

    // delete leaves nothing behind, and is idempotent
    let recorded = pids(&controller, &key);
    controller.delete(&key).await.unwrap();
    assert_nothing_runs(&recorded, &cluster_dir);
    assert_eq!(
        controller.observe(&key).await.unwrap(),
        ClusterObservation::Absent
    );
    controller.delete(&key).await.unwrap();
    assert!(controller.cluster_info(&key).unwrap().is_none());
    assert!(
        env.path("state/data/default/counter/checkpoints").is_dir(),
        "delete keeps the data dir"
    );

    // restore: the counts go on from the savepoint in a new cluster
    let restored = CounterOutput::new(env.path("out-2"));
    let restore = RestorePlan {
        path: savepoint.clone(),
        allow_non_restored_state: false,
    };
    let (plan2, job2) = counter_plan(
        &key,
        dist,
        &job,
        &counter_args(restored.dir()),
        Some(restore),
        "plan-2",
    );
    controller.deploy(&key, &plan2).await.unwrap();
    wait_job_running(&controller, &key, &job2).await;
    wait_output_grows(&restored, 0).await;
    let first = restored.first_counts_after(0);
    assert_eq!(first.len(), counted.len(), "{first:?} vs {counted:?}");
    for (k, count) in &first {
        assert!(
            *count > 1,
            "key {k} started again at {count}: state was not restored"
        );
        assert!(
            *count <= counted[k] + 1,
            "key {k}: {count} is past the savepoint"
        );
    }

    // a crashed JobManager is a failed cluster, with how it ended and its log
    let recorded = pids(&controller, &key);
    crash(recorded[0]);
    let (reason, log_tail) = wait_for_failed(&controller, &key).await;
    assert!(
        reason.contains("JobManager") && reason.contains("SIGKILL"),
        "{reason}"
    );
    assert!(log_tail.unwrap().contains("org.apache.flink"));
    controller.delete(&key).await.unwrap();
    assert_nothing_runs(&recorded, &cluster_dir);
}

async fn wait_for_failed(
    backend: &flinkpilot_local::LocalBackend,
    key: &engine::ResourceKey,
) -> (String, Option<String>) {
    testkit::wait_for(
        Duration::from_secs(30),
        "the cluster reported failed",
        async || match backend.observe(key).await.unwrap() {
            ClusterObservation::Failed {
                reason, log_tail, ..
            } => Some((reason, log_tail)),
            _ => None,
        },
    )
    .await
}

/// A session cluster starts empty and runs a jar submitted through its REST API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_cluster_runs_a_jar_submitted_through_rest() {
    let dist = FlinkDist::get(FLINK_2_3);
    let job = TestJob::build_for("counter", dist);
    let mut env = TestEnv::new(dist);
    let key = env.key("session");
    let plan = session_plan(&key, dist, "session-1");

    env.backend.deploy(&key, &plan).await.unwrap();
    wait_running(&env.backend, &key, 1).await;
    let client = env.backend.flink_client(&key).unwrap();
    wait_until_async(STARTUP, "the session cluster's REST API", async || {
        client.health().await.is_ok()
    })
    .await;
    assert!(
        client.jobs().await.unwrap().is_empty(),
        "a session starts empty"
    );

    let output = CounterOutput::new(env.path("out"));
    let jar = client.upload_jar(&job.jar).await.unwrap();
    let submitted = client
        .run_jar(
            &jar,
            &RunJarRequest {
                entry_class: Some(job.entry_class.clone()),
                program_args: counter_args(output.dir()).to_args(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    wait_job_running(&env.backend, &key, &submitted.job_id).await;
    wait_output_grows(&output, 0).await;

    let recorded = pids(&env.backend, &key);
    env.backend.delete(&key).await.unwrap();
    assert_nothing_runs(&recorded, &env.backend.cluster_dir(&key));
}

/// Flink 1.20 runs the same way: deploy, observe, delete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flink_1_20_application_cluster_round_trip() {
    let dist = FlinkDist::get(FLINK_1_20);
    let job = TestJob::build_for("counter", dist);
    let mut env = TestEnv::new(dist);
    let key = env.key("counter-120");
    let output = CounterOutput::new(env.path("out"));
    let (plan, job_id) = counter_plan(&key, dist, &job, &counter_args(output.dir()), None, "p");

    env.backend.deploy(&key, &plan).await.unwrap();
    wait_running(&env.backend, &key, 1).await;
    wait_job_running(&env.backend, &key, &job_id).await;
    wait_output_grows(&output, 0).await;
    let health = env
        .backend
        .flink_client(&key)
        .unwrap()
        .health()
        .await
        .unwrap();
    assert_eq!(health.version.raw, dist.version);
    let conf = env.backend.cluster_info(&key).unwrap().unwrap().conf_dir;
    assert!(conf.join("config.yaml").is_file());

    let recorded = pids(&env.backend, &key);
    env.backend.delete(&key).await.unwrap();
    assert_nothing_runs(&recorded, &env.backend.cluster_dir(&key));
    assert_eq!(
        env.backend.observe(&key).await.unwrap(),
        ClusterObservation::Absent
    );
}

/// Bad input is refused with the field named, before anything is written or started.
#[tokio::test]
async fn unusable_jars_are_refused_before_anything_starts() {
    let dist = FlinkDist::get(FLINK_2_3);
    let job = TestJob::build_for("counter", dist);
    let mut env = TestEnv::new(dist);
    let key = env.key("bad");
    let (mut plan, _) = counter_plan(&key, dist, &job, &CounterArgs::default(), None, "p");

    for (uri, expected) in [
        ("https://example.com/job.jar", "local:///"),
        ("s3://bucket/job.jar", "local:///"),
        (
            "local:///nonexistent/flinkpilot/job.jar",
            "/nonexistent/flinkpilot/job.jar",
        ),
    ] {
        plan.job.as_mut().unwrap().jar_uri = uri.to_string();
        let err = env.backend.deploy(&key, &plan).await.unwrap_err();
        let BackendError::Invalid { message, .. } = &err else {
            panic!("{uri}: expected Invalid, got {err}");
        };
        assert!(message.contains("spec.job.jarURI"), "{message}");
        assert!(message.contains(expected), "{message}");
        assert!(err.to_string().starts_with("default/bad: "), "{err}");
    }
    assert!(!env.backend.cluster_dir(&key).join("cluster.json").exists());
    assert_eq!(
        env.backend.observe(&key).await.unwrap(),
        ClusterObservation::Absent
    );

    let err = env.backend.scale(&key, 2).await.unwrap_err();
    assert!(matches!(err, BackendError::Invalid { .. }), "{err}");
    assert!(env.backend.flink_client(&key).is_err());
}
