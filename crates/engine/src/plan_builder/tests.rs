use super::*;
use api::{FlinkDeployment, UpgradeMode};

fn key() -> ResourceKey {
    ResourceKey::new("default", "counter")
}

fn spec() -> FlinkDeploymentSpec {
    FlinkDeployment::test("counter")
        .application()
        .with_parallelism(3)
        .spec
}

fn plan(spec: &FlinkDeploymentSpec, restore: Option<&str>, settings: &Settings) -> ClusterPlan {
    build(
        PlanInput {
            key: &key(),
            owner_uid: None,
            spec,
            job_id: "0123456789abcdef0123456789abcdef",
            restore,
        },
        settings,
    )
    .unwrap()
}

#[test]
fn application_plan_has_the_engine_additions() {
    let p = plan(&spec(), None, &Settings::default());
    assert_eq!(p.mode, ClusterMode::Application);
    assert_eq!(
        p.config.get(JOB_ID_KEY),
        Some("0123456789abcdef0123456789abcdef")
    );
    assert_eq!(p.config.get(SHUTDOWN_ON_FINISH_KEY), Some("false"));
    assert_eq!(p.config.get(RETENTION_KEY), Some(RETAIN_ON_CANCELLATION));
    assert_eq!(p.config.get("parallelism.default"), Some("3"));
    assert_eq!(p.config.get("jobmanager.memory.process.size"), Some("1 gb"));
    assert_eq!(
        p.config.get("taskmanager.memory.process.size"),
        Some("1 gb")
    );
    assert_eq!(p.config.get("execution.state-recovery.path"), None);
    let job = p.job.unwrap();
    assert_eq!(job.job_id, "0123456789abcdef0123456789abcdef");
    assert_eq!(job.parallelism, 3);
    assert_eq!(job.restore, None);
}

#[test]
fn taskmanagers_fit_the_parallelism_unless_replicas_are_set() {
    // 2 slots per TM (fixture), parallelism 3 → 2 TMs
    let p = plan(&spec(), None, &Settings::default());
    assert_eq!(p.taskmanager.replicas, 2);
    assert_eq!(p.task_slots, 2);
    let mut s = spec();
    s.task_manager.as_mut().unwrap().replicas = Some(5);
    assert_eq!(plan(&s, None, &Settings::default()).taskmanager.replicas, 5);
    let mut s = spec();
    s.job.as_mut().unwrap().parallelism = None;
    assert_eq!(plan(&s, None, &Settings::default()).taskmanager.replicas, 1);
}

#[test]
fn restore_keys_depend_on_the_flink_version() {
    let p = plan(
        &spec(),
        Some("file:///sp/savepoint-1"),
        &Settings::default(),
    );
    assert_eq!(
        p.config.get("execution.state-recovery.path"),
        Some("file:///sp/savepoint-1")
    );
    assert_eq!(
        p.config
            .get("execution.state-recovery.ignore-unclaimed-state"),
        Some("false")
    );
    assert_eq!(p.config.get("execution.savepoint.path"), None);

    let mut old = spec();
    old.flink_version = Some(FlinkVersion::v1_20);
    old.job.as_mut().unwrap().allow_non_restored_state = Some(true);
    let p = plan(&old, Some("file:///sp/savepoint-1"), &Settings::default());
    assert_eq!(
        p.config.get("execution.savepoint.path"),
        Some("file:///sp/savepoint-1")
    );
    assert_eq!(
        p.config.get("execution.savepoint.ignore-unclaimed-state"),
        Some("true")
    );
    assert_eq!(p.config.get("execution.state-recovery.path"), None);
    assert!(p.job.unwrap().restore.unwrap().allow_non_restored_state);
}

#[test]
fn a_restore_path_written_by_the_user_is_replaced_by_the_recorded_one() {
    let s = FlinkDeployment::test("counter")
        .application()
        .with_config("execution.savepoint.path", "file:///somewhere-else")
        .spec;
    let p = plan(&s, None, &Settings::default());
    assert_eq!(p.config.get("execution.savepoint.path"), None);
    assert_eq!(p.config.get("execution.state-recovery.path"), None);
}

#[test]
fn deprecated_state_dirs_are_translated_for_flink_2() {
    let s = FlinkDeployment::test("counter")
        .application()
        .with_config("state.savepoints.dir", "file:///sp")
        .with_config("state.checkpoints.dir", "file:///cp")
        .spec;
    let p = plan(&s, None, &Settings::default());
    assert_eq!(
        p.config.get("execution.checkpointing.savepoint-dir"),
        Some("file:///sp")
    );
    assert_eq!(
        p.config.get("execution.checkpointing.dir"),
        Some("file:///cp")
    );
    assert_eq!(p.config.get("state.savepoints.dir"), None);
    assert_eq!(
        savepoint_dir(&key(), &s, &Settings::default()).as_deref(),
        Some("file:///sp")
    );
}

#[test]
fn last_state_always_retains_checkpoints_on_cancel() {
    let s = FlinkDeployment::test("counter")
        .with_upgrade_mode(UpgradeMode::LastState)
        .with_config(RETENTION_KEY, "DELETE_ON_CANCELLATION")
        .spec;
    assert!(retains_checkpoints_on_cancel(&s));
    assert_eq!(
        plan(&s, None, &Settings::default())
            .config
            .get(RETENTION_KEY),
        Some(RETAIN_ON_CANCELLATION)
    );
    let s = FlinkDeployment::test("counter")
        .with_upgrade_mode(UpgradeMode::Savepoint)
        .with_config(RETENTION_KEY, "DELETE_ON_CANCELLATION")
        .spec;
    assert!(!retains_checkpoints_on_cancel(&s));
    assert_eq!(
        plan(&s, None, &Settings::default())
            .config
            .get(RETENTION_KEY),
        Some("DELETE_ON_CANCELLATION")
    );
}

#[test]
fn paths_are_mapped_and_default_state_dirs_filled_in() {
    let settings = Settings {
        paths: crate::settings::PathMap::new()
            .with("/opt/flink/usrlib", "/state/usrlib")
            .with("/flink-data", "/state/flink-data"),
        default_state_dir: Some("file:///state/data".into()),
        ..Settings::default()
    };
    let s = FlinkDeployment::test("counter")
        .application()
        .with_config("state.savepoints.dir", "file:///flink-data/savepoints")
        .spec;
    let p = plan(&s, Some("file:///flink-data/savepoints/sp-1"), &settings);
    assert_eq!(
        p.job.as_ref().unwrap().jar_uri,
        "local:///state/usrlib/counter.jar"
    );
    assert_eq!(
        p.config.get("execution.checkpointing.savepoint-dir"),
        Some("file:///state/flink-data/savepoints")
    );
    assert_eq!(
        p.config.get("execution.checkpointing.dir"),
        Some("file:///state/data/default/counter/checkpoints")
    );
    assert_eq!(
        p.job.unwrap().restore.unwrap().path,
        "file:///state/flink-data/savepoints/sp-1"
    );
}

#[test]
fn kubernetes_resources_give_the_memory_when_resource_is_absent() {
    let mut s = spec();
    let jm = s.job_manager.as_mut().unwrap();
    jm.resource = None;
    jm.resources = serde_json::from_value(serde_json::json!({"limits": {"memory": "2Gi"}})).ok();
    let p = plan(&s, None, &Settings::default());
    assert_eq!(p.jobmanager.memory_bytes, Some(2 << 30));
    assert_eq!(p.config.get("jobmanager.memory.process.size"), Some("2 gb"));
}

#[test]
fn plan_hash_is_stable_and_changes_with_the_plan() {
    let a = plan(&spec(), None, &Settings::default());
    let b = plan(&spec(), None, &Settings::default());
    assert_eq!(a.plan_hash, b.plan_hash);
    let c = plan(&spec(), Some("file:///sp/1"), &Settings::default());
    assert_ne!(a.plan_hash, c.plan_hash);
    let mut other = spec();
    other.job.as_mut().unwrap().args = Some(vec!["--rate".into(), "5".into()]);
    assert_ne!(
        a.plan_hash,
        plan(&other, None, &Settings::default()).plan_hash
    );
}

#[test]
fn session_cluster_plan_has_no_job_keys() {
    let s = FlinkDeployment::test("session").spec;
    let p = plan(&s, None, &Settings::default());
    assert_eq!(p.mode, ClusterMode::Session);
    assert!(p.job.is_none());
    assert_eq!(p.config.get(JOB_ID_KEY), None);
    assert_eq!(p.config.get(SHUTDOWN_ON_FINISH_KEY), None);
}

#[test]
fn default_config_applies_only_where_the_spec_is_silent() {
    let mut settings = Settings::default();
    settings
        .default_config
        .insert("cluster.registration.error-delay".into(), "500 ms".into());
    settings
        .default_config
        .insert("taskmanager.numberOfTaskSlots".into(), "9".into());
    let p = plan(&spec(), None, &settings);
    assert_eq!(
        p.config.get("cluster.registration.error-delay"),
        Some("500 ms")
    );
    assert_eq!(p.config.get("taskmanager.numberOfTaskSlots"), Some("2"));
}
