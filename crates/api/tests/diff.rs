//! `api::diff` table: each row changes a valid spec and names the change kind and the fields it
//! must report.

// test helpers outside #[test] functions may unwrap too
#![allow(clippy::unwrap_used)]

use flinkpilot_api as api;

use ChangeKind::{Ignore, Restart, SavepointRedeploy, Scale, Upgrade};
use api::diff::{ChangeKind, can_scale_in_place, diff, diff_with_mode};
use api::{
    DeploymentMode, FlinkConfiguration, FlinkDeployment, FlinkDeploymentSpec, FlinkSessionJob,
    FlinkSessionJobSpec, FlinkVersion, IngressSpec, JobState, PodTemplate, TaskManagerSpec,
    UpgradeMode,
};
use rstest::rstest;

type S = FlinkDeploymentSpec;
type Edit = fn(&mut S);

fn base() -> FlinkDeploymentSpec {
    FlinkDeployment::test("d")
        .application()
        .with_upgrade_mode(UpgradeMode::Savepoint)
        .with_state_dirs("file:///tmp/fp")
        .spec
}

fn job(s: &mut FlinkDeploymentSpec) -> &mut api::JobSpec {
    s.job.as_mut().unwrap()
}

fn config(s: &mut FlinkDeploymentSpec) -> &mut FlinkConfiguration {
    s.flink_configuration
        .get_or_insert_with(FlinkConfiguration::default)
}

fn standalone(s: &mut FlinkDeploymentSpec) {
    s.mode = Some(DeploymentMode::Standalone);
}

fn nothing(_: &mut FlinkDeploymentSpec) {}

/// The base configuration rewritten as nested YAML, plus one key written nested.
fn nested_config(s: &mut FlinkDeploymentSpec) {
    *config(s) = serde_json::from_value(serde_json::json!({
        "taskmanager.numberOfTaskSlots": "2",
        "execution.checkpointing": {
            "dir": "file:///tmp/fp/checkpoints",
            "savepoint-dir": "file:///tmp/fp/savepoints"
        },
        "state": {"checkpoints.num-retained": 3}
    }))
    .unwrap();
}

#[rstest]
// ignored: read on demand, never deployed
#[case::upgrade_mode(nothing, |s: &mut S| job(s).upgrade_mode = Some(UpgradeMode::LastState), Ignore, &[])]
#[case::initial_savepoint_path(nothing, |s: &mut S| job(s).initial_savepoint_path = Some("s3://b/sp".into()), Ignore, &[])]
#[case::allow_non_restored_state(nothing, |s: &mut S| job(s).allow_non_restored_state = Some(true), Ignore, &[])]
#[case::savepoint_trigger_nonce(nothing, |s: &mut S| job(s).savepoint_trigger_nonce = Some(3), Ignore, &[])]
#[case::checkpoint_trigger_nonce(nothing, |s: &mut S| job(s).checkpoint_trigger_nonce = Some(3), Ignore, &[])]
#[case::autoscaler_reset_nonce(nothing, |s: &mut S| job(s).autoscaler_reset_nonce = Some(3), Ignore, &[])]
#[case::operator_config_key(nothing, |s: &mut S| config(s).set("kubernetes.operator.periodic.savepoint.interval", "1h"), Ignore, &[])]
#[case::autoscaler_config_key(nothing, |s: &mut S| config(s).set("job.autoscaler.enabled", "true"), Ignore, &[])]
#[case::default_parallelism_key(nothing, |s: &mut S| config(s).set("parallelism.default", "4"), Ignore, &[])]
// defaults written out are no change
#[case::explicit_default_state(nothing, |s: &mut S| job(s).state = Some(JobState::Running), Ignore, &[])]
#[case::explicit_default_jm_replicas(nothing, |s: &mut S| s.job_manager.as_mut().unwrap().replicas = Some(1), Ignore, &[])]
#[case::explicit_empty_args(nothing, |s: &mut S| job(s).args = Some(vec![]), Ignore, &[])]
#[case::empty_ingress_is_absent(nothing, |s: &mut S| s.ingress = Some(IngressSpec::default()), Ignore, &[])]
#[case::nested_config_equals_flat(|s: &mut S| config(s).set("state.checkpoints.num-retained", "3"), nested_config, Ignore, &[])]
// scale: only where the Apache operator allows it
#[case::parallelism_native(nothing, |s: &mut S| job(s).parallelism = Some(4), Upgrade, &["spec.job.parallelism"])]
#[case::parallelism_standalone(standalone, |s: &mut S| job(s).parallelism = Some(4), Scale, &["spec.job.parallelism"])]
#[case::tm_replicas_native(nothing, |s: &mut S| s.task_manager.as_mut().unwrap().replicas = Some(3), Upgrade, &["spec.taskManager.replicas"])]
#[case::tm_replicas_standalone(standalone, |s: &mut S| s.task_manager.as_mut().unwrap().replicas = Some(3), Scale, &["spec.taskManager.replicas"])]
#[case::tm_replicas_from_absent_standalone(
    |s: &mut S| { standalone(s); s.task_manager = None },
    |s: &mut S| s.task_manager = Some(TaskManagerSpec { replicas: Some(2), ..Default::default() }),
    Scale,
    &["spec.taskManager.replicas"]
)]
#[case::vertex_overrides_native(nothing, |s: &mut S| config(s).set("pipeline.jobvertex-parallelism-overrides", "a:2"), Scale, &["spec.flinkConfiguration.pipeline.jobvertex-parallelism-overrides"])]
#[case::vertex_overrides_standalone(standalone, |s: &mut S| config(s).set("pipeline.jobvertex-parallelism-overrides", "a:2"), Upgrade, &["spec.flinkConfiguration.pipeline.jobvertex-parallelism-overrides"])]
// restart and savepoint redeploy
#[case::restart_nonce(nothing, |s: &mut S| s.restart_nonce = Some(1), Restart, &["spec.restartNonce"])]
#[case::restart_nonce_cleared(|s: &mut S| s.restart_nonce = Some(1), |s: &mut S| s.restart_nonce = None, Ignore, &[])]
#[case::redeploy_nonce(nothing, |s: &mut S| job(s).savepoint_redeploy_nonce = Some(1), SavepointRedeploy, &["spec.job.savepointRedeployNonce"])]
#[case::redeploy_nonce_cleared(|s: &mut S| job(s).savepoint_redeploy_nonce = Some(1), |s: &mut S| job(s).savepoint_redeploy_nonce = None, Ignore, &[])]
// upgrades
#[case::image(nothing, |s: &mut S| s.image = Some("flink:2.3.1".into()), Upgrade, &["spec.image"])]
#[case::flink_version(nothing, |s: &mut S| s.flink_version = Some(FlinkVersion::v2_4), Upgrade, &["spec.flinkVersion"])]
#[case::jar(nothing, |s: &mut S| job(s).jar_uri = Some("local:///opt/flink/usrlib/v2.jar".into()), Upgrade, &["spec.job.jarURI"])]
#[case::args(nothing, |s: &mut S| job(s).args = Some(vec!["--rate".into(), "10".into()]), Upgrade, &["spec.job.args"])]
#[case::suspend(nothing, |s: &mut S| job(s).state = Some(JobState::Suspended), Upgrade, &["spec.job.state"])]
#[case::other_config_key(nothing, |s: &mut S| config(s).set("execution.checkpointing.interval", "10 s"), Upgrade, &["spec.flinkConfiguration.execution.checkpointing.interval"])]
#[case::removed_config_key(nothing, |s: &mut S| { config(s).remove("taskmanager.numberOfTaskSlots"); }, Upgrade, &["spec.flinkConfiguration.taskmanager.numberOfTaskSlots"])]
#[case::pod_template(nothing, |s: &mut S| s.pod_template = Some(PodTemplate::from_value(serde_json::json!({"metadata": {"labels": {"a": "b"}}})).unwrap()), Upgrade, &["spec.podTemplate"])]
#[case::jm_memory(nothing, |s: &mut S| s.job_manager.as_mut().unwrap().resource.as_mut().unwrap().memory = Some("2g".into()), Upgrade, &["spec.jobManager"])]
#[case::tm_memory(nothing, |s: &mut S| s.task_manager.as_mut().unwrap().resource.as_mut().unwrap().memory = Some("2g".into()), Upgrade, &["spec.taskManager.resource"])]
#[case::log_config(nothing, |s: &mut S| s.log_configuration = Some([("log4j-console.properties".into(), "x".into())].into()), Upgrade, &["spec.logConfiguration"])]
#[case::service_account(nothing, |s: &mut S| s.service_account = Some("other".into()), Upgrade, &["spec.serviceAccount"])]
#[case::to_session(nothing, |s: &mut S| s.job = None, Upgrade, &["spec.job"])]
#[case::mode(nothing, standalone, Upgrade, &["spec.mode"])]
// the most significant change wins, and every field is reported
#[case::scale_and_ignore(standalone, |s: &mut S| { job(s).parallelism = Some(4); job(s).upgrade_mode = Some(UpgradeMode::LastState) }, Scale, &["spec.job.parallelism"])]
#[case::restart_and_scale(standalone, |s: &mut S| { job(s).parallelism = Some(4); s.restart_nonce = Some(2) }, Restart, &["spec.job.parallelism", "spec.restartNonce"])]
#[case::upgrade_and_restart(nothing, |s: &mut S| { s.image = Some("flink:x".into()); s.restart_nonce = Some(2) }, Upgrade, &["spec.image", "spec.restartNonce"])]
#[case::redeploy_and_upgrade(nothing, |s: &mut S| { s.image = Some("flink:x".into()); job(s).savepoint_redeploy_nonce = Some(9) }, SavepointRedeploy, &["spec.image", "spec.job.savepointRedeployNonce"])]
fn deployment_spec_changes(
    #[case] old_edit: Edit,
    #[case] new_edit: Edit,
    #[case] kind: ChangeKind,
    #[case] paths: &[&str],
) {
    let mut old = base();
    old_edit(&mut old);
    let mut new = old.clone();
    new_edit(&mut new);
    let d = diff(&old, &new);
    assert_eq!(d.kind, kind, "{d:?}");
    assert_eq!(d.significant_paths(), paths, "{d:?}");
}

#[test]
fn ignored_changes_are_still_reported() {
    let old = base();
    let mut new = old.clone();
    job(&mut new).upgrade_mode = Some(UpgradeMode::LastState);
    let d = diff(&old, &new);
    assert_eq!(d.kind, Ignore);
    assert_eq!(d.changes.len(), 1);
    assert_eq!(d.changes[0].path, "spec.job.upgradeMode");
    assert_eq!(d.to_string(), "Ignore");
}

#[test]
fn identical_specs_have_no_changes() {
    let d = diff(&base(), &base());
    assert_eq!(d.kind, Ignore);
    assert!(d.changes.is_empty());
}

#[test]
fn diff_displays_kind_and_fields_for_events() {
    let old = base();
    let mut new = old.clone();
    new.image = Some("flink:x".into());
    job(&mut new).parallelism = Some(8);
    assert_eq!(
        diff(&old, &new).to_string(),
        "Upgrade (spec.image, spec.job.parallelism)"
    );
}

#[test]
fn spec_stored_by_the_apache_operator_diffs_clean_against_the_manifest() {
    // The Apache operator stores every field with its default; that must not look like a change.
    let manifest: FlinkDeploymentSpec = serde_saphyr::from_str(
        "image: flink:1.17\nflinkVersion: v1_17\nserviceAccount: flink\n\
         flinkConfiguration:\n  taskmanager.numberOfTaskSlots: 2\n\
         jobManager:\n  resource:\n    memory: 2048m\n    cpu: 1\n\
         job:\n  jarURI: local:///opt/flink/examples/streaming/StateMachineExample.jar\n  parallelism: 2\n",
    )
    .unwrap();
    let stored = r#"{"spec":{"job":{"jarURI":"local:///opt/flink/examples/streaming/StateMachineExample.jar","parallelism":2,"entryClass":null,"args":[],"state":"running","savepointTriggerNonce":null,"initialSavepointPath":null,"checkpointTriggerNonce":null,"upgradeMode":"stateless","allowNonRestoredState":null,"savepointRedeployNonce":null},"restartNonce":null,"flinkConfiguration":{"taskmanager.numberOfTaskSlots":"2"},"image":"flink:1.17","imagePullPolicy":null,"serviceAccount":"flink","flinkVersion":"v1_17","ingress":null,"podTemplate":null,"jobManager":{"resource":{"cpu":1.0,"memory":"2048m","ephemeralStorage":null},"replicas":1,"podTemplate":null},"taskManager":null,"logConfiguration":null,"mode":null},"resource_metadata":{"apiVersion":"flink.apache.org/v1beta1","metadata":{"generation":2},"firstDeployment":false}}"#;
    let old = api::reconciled::read::<FlinkDeploymentSpec>(stored)
        .unwrap()
        .spec;
    let d = diff(&old, &manifest);
    assert_eq!(d.kind, Ignore, "{d:?}");
    assert!(d.changes.is_empty(), "{d:?}");
}

#[rstest]
#[case::parallelism_in_native_session(DeploymentMode::Native, |s: &mut FlinkSessionJobSpec| s.job.as_mut().unwrap().parallelism = Some(5), Upgrade)]
#[case::parallelism_in_standalone_session(DeploymentMode::Standalone, |s: &mut FlinkSessionJobSpec| s.job.as_mut().unwrap().parallelism = Some(5), Scale)]
#[case::upgrade_mode(DeploymentMode::Native, |s: &mut FlinkSessionJobSpec| s.job.as_mut().unwrap().upgrade_mode = Some(UpgradeMode::Savepoint), Ignore)]
#[case::restart_nonce(DeploymentMode::Native, |s: &mut FlinkSessionJobSpec| s.restart_nonce = Some(4), Restart)]
#[case::jar(DeploymentMode::Native, |s: &mut FlinkSessionJobSpec| s.job.as_mut().unwrap().jar_uri = Some("https://x/v2.jar".into()), Upgrade)]
#[case::operator_key(DeploymentMode::Native, |s: &mut FlinkSessionJobSpec| s.flink_configuration = Some(FlinkConfiguration::from_flat([("kubernetes.operator.savepoint.format.type", "NATIVE")])), Ignore)]
#[case::deployment_name(DeploymentMode::Native, |s: &mut FlinkSessionJobSpec| s.deployment_name = Some("other".into()), Upgrade)]
fn session_job_spec_changes(
    #[case] mode: DeploymentMode,
    #[case] edit: fn(&mut FlinkSessionJobSpec),
    #[case] kind: ChangeKind,
) {
    let old = FlinkSessionJob::test("j", "s").spec;
    let mut new = old.clone();
    edit(&mut new);
    assert_eq!(diff_with_mode(&old, &new, mode).kind, kind);
}

#[test]
fn session_job_diff_without_a_mode_assumes_native() {
    let old = FlinkSessionJob::test("j", "s").spec;
    let mut new = old.clone();
    new.job.as_mut().unwrap().parallelism = Some(9);
    assert_eq!(diff(&old, &new).kind, Upgrade);
}

#[rstest]
#[case::reactive_standalone(|d: FlinkDeployment| d.with_mode(DeploymentMode::Standalone).with_config("scheduler-mode", "REACTIVE"), true)]
#[case::plain_standalone(|d: FlinkDeployment| d.with_mode(DeploymentMode::Standalone), false)]
#[case::adaptive_native(|d: FlinkDeployment| d.with_config("jobmanager.scheduler", "adaptive"), true)]
#[case::adaptive_native_disabled(|d: FlinkDeployment| d.with_config("jobmanager.scheduler", "adaptive").with_config("kubernetes.operator.job.upgrade.inplace-scaling.enabled", "false"), false)]
#[case::adaptive_native_old_flink(|d: FlinkDeployment| d.with_config("jobmanager.scheduler", "adaptive").with_version(FlinkVersion::v1_17), false)]
#[case::default_scheduler_native(|d: FlinkDeployment| d, false)]
fn scale_in_place_follows_the_scheduler_rules(
    #[case] setup: fn(FlinkDeployment) -> FlinkDeployment,
    #[case] possible: bool,
) {
    let d = setup(FlinkDeployment::test("d").application());
    assert_eq!(can_scale_in_place(&d.spec), possible);
}
