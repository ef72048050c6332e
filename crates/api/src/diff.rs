//! Spec diff: what kind of action a spec change needs, following the Apache operator's
//! `@SpecDiff` rules, and which fields changed.
//!
//! | change | kind |
//! |---|---|
//! | `job.upgradeMode`, `job.initialSavepointPath`, `job.allowNonRestoredState`, `job.autoscalerResetNonce`, `job.savepointTriggerNonce`, `job.checkpointTriggerNonce` | `Ignore` (read when needed, not deployed) |
//! | config keys starting with `kubernetes.operator`, `job.autoscaler`, `parallelism.default` | `Ignore` |
//! | `job.parallelism`, `taskManager.replicas` in standalone mode | `Scale` |
//! | config keys starting with `pipeline.jobvertex-parallelism-overrides` in native mode | `Scale` |
//! | `restartNonce` (ignored when cleared to null) | `Restart` |
//! | `job.savepointRedeployNonce` (ignored when cleared to null) | `SavepointRedeploy` |
//! | everything else (image, flinkVersion, pod templates, jarURI, job state, resources, other config keys, …) | `Upgrade` |
//!
//! The most significant change wins: `Ignore < Scale < Restart < Upgrade < SavepointRedeploy`.
//! A restart is an upgrade with nothing to upgrade, so a real upgrade subsumes it; a savepoint
//! redeploy replaces the state as well, so it subsumes both.
//!
//! Values are compared after defaults apply, so writing a default explicitly (`state: running`,
//! `upgradeMode: stateless`, `jobManager.replicas: 1`, `args: []`) is no change, and neither is
//! an absent object versus an empty one (`taskManager` missing versus `taskManager: {}`). (The
//! Apache operator compares `null` with an empty object as an upgrade; that restarts a job for an
//! edit that changes nothing, so flinkpilot does not.) `flinkConfiguration` is compared key by
//! key after flattening, so rewriting flat keys as nested YAML is no change.
//!
//! `Scale` says the change *may* be applied without a redeploy; whether it can is up to the
//! engine, which falls back to an upgrade otherwise (see [`can_scale_in_place`]).

use std::collections::BTreeSet;
use std::fmt;

use crate::{
    DeploymentMode, FlinkConfiguration, FlinkDeploymentSpec, FlinkSessionJobSpec, FlinkVersion,
    JobSpec, TaskManagerSpec,
};

/// What a spec change needs, from least to most disruptive.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChangeKind {
    /// Nothing to deploy.
    #[default]
    Ignore,
    /// Rescale the running job/cluster if possible, else upgrade.
    Scale,
    /// Restart the job/cluster with the same spec, carrying state per the upgrade mode.
    Restart,
    /// Stop the job (state per the upgrade mode) and deploy the new spec.
    Upgrade,
    /// Redeploy from `initialSavepointPath`, discarding the current state.
    SavepointRedeploy,
}

impl fmt::Display for ChangeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ignore => "Ignore",
            Self::Scale => "Scale",
            Self::Restart => "Restart",
            Self::Upgrade => "Upgrade",
            Self::SavepointRedeploy => "SavepointRedeploy",
        })
    }
}

/// One changed field.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FieldChange {
    /// Path of the field, e.g. `spec.job.parallelism` or `spec.flinkConfiguration.a.b`.
    pub path: String,
    /// What this field's change alone needs.
    pub kind: ChangeKind,
}

/// The result of comparing two specs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpecDiff {
    /// The most significant kind among the changes; `Ignore` when nothing changed.
    pub kind: ChangeKind,
    /// Every changed field, ignored ones included, sorted by path.
    pub changes: Vec<FieldChange>,
}

impl SpecDiff {
    fn from_changes(mut changes: Vec<FieldChange>) -> Self {
        changes.sort();
        let kind = changes.iter().map(|c| c.kind).max().unwrap_or_default();
        Self { kind, changes }
    }

    /// Paths of the changes that need action (everything but `Ignore`).
    pub fn significant_paths(&self) -> Vec<&str> {
        self.changes
            .iter()
            .filter(|c| c.kind != ChangeKind::Ignore)
            .map(|c| c.path.as_str())
            .collect()
    }
}

impl fmt::Display for SpecDiff {
    /// `Upgrade (spec.image, spec.job.parallelism)`, for events and logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let paths = self.significant_paths();
        if paths.is_empty() {
            write!(f, "{}", self.kind)
        } else {
            write!(f, "{} ({})", self.kind, paths.join(", "))
        }
    }
}

/// Specs that can be diffed.
pub trait Diff {
    /// Adds this spec's changed fields to `out`. `mode` is the deployment mode of the cluster
    /// the spec runs on (for a session job: its session cluster's).
    fn collect_changes(old: &Self, new: &Self, mode: DeploymentMode, out: &mut Vec<FieldChange>);

    /// The deployment mode to judge a change by when none is given.
    fn default_mode(_old: &Self, new: &Self) -> DeploymentMode {
        let _ = new;
        DeploymentMode::Native
    }
}

/// Compares two specs. A `FlinkDeployment`'s own (new) mode decides the mode-dependent rules;
/// for a `FlinkSessionJob` use [`diff_with_mode`] with its session cluster's mode (this function
/// assumes native, where a parallelism change is an upgrade: the safe choice).
pub fn diff<S: Diff>(old: &S, new: &S) -> SpecDiff {
    diff_with_mode(old, new, S::default_mode(old, new))
}

/// Compares two specs for a cluster in `mode`.
pub fn diff_with_mode<S: Diff>(old: &S, new: &S, mode: DeploymentMode) -> SpecDiff {
    let mut changes = Vec::new();
    S::collect_changes(old, new, mode, &mut changes);
    SpecDiff::from_changes(changes)
}

fn push<T: PartialEq>(out: &mut Vec<FieldChange>, path: &str, old: T, new: T, kind: ChangeKind) {
    if old != new {
        out.push(FieldChange {
            path: path.to_string(),
            kind,
        });
    }
}

/// `kind` in `mode`, `Upgrade` in any other mode.
fn only_in(mode: DeploymentMode, wanted: DeploymentMode, kind: ChangeKind) -> ChangeKind {
    if mode == wanted {
        kind
    } else {
        ChangeKind::Upgrade
    }
}

/// A nonce whose change triggers `kind`, except that clearing it is ignored.
fn nonce(
    out: &mut Vec<FieldChange>,
    path: &str,
    old: Option<i64>,
    new: Option<i64>,
    kind: ChangeKind,
) {
    if old != new {
        let kind = if new.is_none() {
            ChangeKind::Ignore
        } else {
            kind
        };
        out.push(FieldChange {
            path: path.to_string(),
            kind,
        });
    }
}

/// Config key prefixes with their own rule; first match wins, like the Apache operator's.
fn config_key_kind(key: &str, mode: DeploymentMode) -> ChangeKind {
    const RULES: &[(&str, ChangeKind, Option<DeploymentMode>)] = &[
        ("job.autoscaler", ChangeKind::Ignore, None),
        ("parallelism.default", ChangeKind::Ignore, None),
        ("kubernetes.operator", ChangeKind::Ignore, None),
        (
            "pipeline.jobvertex-parallelism-overrides",
            ChangeKind::Scale,
            Some(DeploymentMode::Native),
        ),
    ];
    RULES
        .iter()
        .filter(|(_, _, only)| only.is_none_or(|m| m == mode))
        .find(|(prefix, _, _)| key.starts_with(prefix))
        .map_or(ChangeKind::Upgrade, |(_, kind, _)| *kind)
}

fn config_changes(
    old: &FlinkConfiguration,
    new: &FlinkConfiguration,
    mode: DeploymentMode,
    out: &mut Vec<FieldChange>,
) {
    let (old, new) = (old.flatten(), new.flatten());
    let keys: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    for key in keys {
        if old.get(key) != new.get(key) {
            out.push(FieldChange {
                path: format!("spec.flinkConfiguration.{key}"),
                kind: config_key_kind(key, mode),
            });
        }
    }
}

fn job_changes(
    old: &Option<JobSpec>,
    new: &Option<JobSpec>,
    mode: DeploymentMode,
    out: &mut Vec<FieldChange>,
) {
    let (old, new) = match (old, new) {
        (Some(o), Some(n)) => (o, n),
        (None, None) => return,
        _ => {
            return push(
                out,
                "spec.job",
                old.is_some(),
                new.is_some(),
                ChangeKind::Upgrade,
            );
        }
    };
    use ChangeKind::{Ignore, SavepointRedeploy, Scale, Upgrade};
    push(out, "spec.job.jarURI", &old.jar_uri, &new.jar_uri, Upgrade);
    push(
        out,
        "spec.job.parallelism",
        old.parallelism(),
        new.parallelism(),
        only_in(mode, DeploymentMode::Standalone, Scale),
    );
    push(
        out,
        "spec.job.entryClass",
        &old.entry_class,
        &new.entry_class,
        Upgrade,
    );
    push(out, "spec.job.args", old.args(), new.args(), Upgrade);
    push(out, "spec.job.state", old.state(), new.state(), Upgrade);
    push(
        out,
        "spec.job.savepointTriggerNonce",
        old.savepoint_trigger_nonce,
        new.savepoint_trigger_nonce,
        Ignore,
    );
    push(
        out,
        "spec.job.initialSavepointPath",
        &old.initial_savepoint_path,
        &new.initial_savepoint_path,
        Ignore,
    );
    push(
        out,
        "spec.job.checkpointTriggerNonce",
        old.checkpoint_trigger_nonce,
        new.checkpoint_trigger_nonce,
        Ignore,
    );
    push(
        out,
        "spec.job.upgradeMode",
        old.upgrade_mode(),
        new.upgrade_mode(),
        Ignore,
    );
    push(
        out,
        "spec.job.allowNonRestoredState",
        old.allow_non_restored_state(),
        new.allow_non_restored_state(),
        Ignore,
    );
    push(
        out,
        "spec.job.autoscalerResetNonce",
        old.autoscaler_reset_nonce,
        new.autoscaler_reset_nonce,
        Ignore,
    );
    // Clearing the nonce is not a request to redeploy (the Apache operator's `onNullIgnore`).
    if new.savepoint_redeploy_nonce.is_some() {
        push(
            out,
            "spec.job.savepointRedeployNonce",
            old.savepoint_redeploy_nonce,
            new.savepoint_redeploy_nonce,
            SavepointRedeploy,
        );
    }
}

fn task_manager_changes(
    old: &TaskManagerSpec,
    new: &TaskManagerSpec,
    mode: DeploymentMode,
    out: &mut Vec<FieldChange>,
) {
    use ChangeKind::{Scale, Upgrade};
    push(
        out,
        "spec.taskManager.resource",
        &old.resource,
        &new.resource,
        Upgrade,
    );
    push(
        out,
        "spec.taskManager.resources",
        &old.resources,
        &new.resources,
        Upgrade,
    );
    push(
        out,
        "spec.taskManager.replicas",
        old.replicas,
        new.replicas,
        only_in(mode, DeploymentMode::Standalone, Scale),
    );
    push(
        out,
        "spec.taskManager.podTemplate",
        &old.pod_template,
        &new.pod_template,
        Upgrade,
    );
}

impl Diff for FlinkDeploymentSpec {
    fn collect_changes(old: &Self, new: &Self, mode: DeploymentMode, out: &mut Vec<FieldChange>) {
        use ChangeKind::Upgrade;
        job_changes(&old.job, &new.job, mode, out);
        nonce(
            out,
            "spec.restartNonce",
            old.restart_nonce,
            new.restart_nonce,
            ChangeKind::Restart,
        );
        config_changes(old.flink_config(), new.flink_config(), mode, out);
        push(out, "spec.image", &old.image, &new.image, Upgrade);
        push(
            out,
            "spec.imagePullPolicy",
            &old.image_pull_policy,
            &new.image_pull_policy,
            Upgrade,
        );
        push(
            out,
            "spec.serviceAccount",
            &old.service_account,
            &new.service_account,
            Upgrade,
        );
        push(
            out,
            "spec.flinkVersion",
            old.flink_version,
            new.flink_version,
            Upgrade,
        );
        push(
            out,
            "spec.ingress",
            old.ingress.clone().unwrap_or_default(),
            new.ingress.clone().unwrap_or_default(),
            Upgrade,
        );
        push(
            out,
            "spec.podTemplate",
            &old.pod_template,
            &new.pod_template,
            Upgrade,
        );
        let (ojm, njm) = (
            old.job_manager.clone().unwrap_or_default(),
            new.job_manager.clone().unwrap_or_default(),
        );
        push(
            out,
            "spec.jobManager",
            (
                &ojm.resource,
                &ojm.resources,
                ojm.replicas(),
                &ojm.pod_template,
            ),
            (
                &njm.resource,
                &njm.resources,
                njm.replicas(),
                &njm.pod_template,
            ),
            Upgrade,
        );
        task_manager_changes(
            &old.task_manager.clone().unwrap_or_default(),
            &new.task_manager.clone().unwrap_or_default(),
            mode,
            out,
        );
        push(
            out,
            "spec.logConfiguration",
            old.log_configuration.clone().unwrap_or_default(),
            new.log_configuration.clone().unwrap_or_default(),
            Upgrade,
        );
        push(out, "spec.mode", old.mode(), new.mode(), Upgrade);
    }

    fn default_mode(_old: &Self, new: &Self) -> DeploymentMode {
        new.mode()
    }
}

impl Diff for FlinkSessionJobSpec {
    fn collect_changes(old: &Self, new: &Self, mode: DeploymentMode, out: &mut Vec<FieldChange>) {
        job_changes(&old.job, &new.job, mode, out);
        nonce(
            out,
            "spec.restartNonce",
            old.restart_nonce,
            new.restart_nonce,
            ChangeKind::Restart,
        );
        config_changes(old.flink_config(), new.flink_config(), mode, out);
        push(
            out,
            "spec.deploymentName",
            &old.deployment_name,
            &new.deployment_name,
            ChangeKind::Upgrade,
        );
    }
}

/// Whether a `Scale` change of this (new) deployment spec can be applied without redeploying,
/// as the Apache operator decides it: in standalone mode only with the reactive scheduler
/// (`scheduler-mode: reactive`), where TaskManagers are simply added or removed; in native
/// mode only on Flink 1.18+ with the adaptive scheduler (`jobmanager.scheduler: adaptive`) and
/// in-place scaling not disabled (`kubernetes.operator.job.upgrade.inplace-scaling.enabled`),
/// where new vertex parallelisms are sent to the running job. Otherwise the change is applied as
/// an upgrade.
pub fn can_scale_in_place(spec: &FlinkDeploymentSpec) -> bool {
    let config = spec.flink_config();
    let is = |key: &str, value: &str| {
        config
            .get(key)
            .is_some_and(|v| v.trim().eq_ignore_ascii_case(value))
    };
    match spec.mode() {
        DeploymentMode::Standalone => is("scheduler-mode", "reactive"),
        DeploymentMode::Native => {
            spec.job.is_some()
                && spec
                    .flink_version
                    .is_some_and(|v| v.is_at_least(FlinkVersion::v1_18))
                && is("jobmanager.scheduler", "adaptive")
                && config
                    .get_bool("kubernetes.operator.job.upgrade.inplace-scaling.enabled")
                    .ok()
                    .flatten()
                    != Some(false)
        }
    }
}
