//! Rules shared by application deployments and session jobs: the job itself, the state
//! directories its upgrade mode needs, and the configuration keys flinkpilot reads.

use super::{Problem, config_path};
use crate::{FlinkConfiguration, JobSpec, UpgradeMode};

/// Keys Flink reads the checkpoint directory from (current first, then the deprecated one).
pub(crate) const CHECKPOINT_DIR_KEYS: &[&str] =
    &["execution.checkpointing.dir", "state.checkpoints.dir"];
/// Keys Flink reads the default savepoint directory from (current first, then the deprecated one).
pub(crate) const SAVEPOINT_DIR_KEYS: &[&str] = &[
    "execution.checkpointing.savepoint-dir",
    "state.savepoints.dir",
];
/// Keys that turn high availability on (current first, then the deprecated one).
const HA_KEYS: &[&str] = &["high-availability.type", "high-availability"];

const PERIODIC_SAVEPOINT_INTERVAL: &str = "kubernetes.operator.periodic.savepoint.interval";
const LAST_STATE_MAX_AGE: &str =
    "kubernetes.operator.job.upgrade.last-state.max.allowed.checkpoint.age";

/// Duration keys flinkpilot (or Flink, at start-up) reads; a bad value fails late otherwise.
const DURATION_KEYS: &[&str] = &[
    "execution.checkpointing.interval",
    "execution.checkpointing.timeout",
    "execution.checkpointing.min-pause",
    LAST_STATE_MAX_AGE,
    "kubernetes.operator.savepoint.history.max.age",
    "kubernetes.operator.deployment.readiness.timeout",
    "kubernetes.operator.deployment.rollback.grace-period",
    "kubernetes.operator.reconcile.interval",
    "kubernetes.operator.observer.progress-check.interval",
    "kubernetes.operator.savepoint.trigger.grace-period",
    "job.autoscaler.stabilization.interval",
    "job.autoscaler.metrics.window",
];
/// Duration keys that may also hold a cron expression.
const DURATION_OR_CRON_KEYS: &[&str] = &[
    PERIODIC_SAVEPOINT_INTERVAL,
    "kubernetes.operator.periodic.checkpoint.interval",
];
/// Memory-size keys Flink reads at start-up.
const MEMORY_KEYS: &[&str] = &[
    "jobmanager.memory.process.size",
    "jobmanager.memory.flink.size",
    "jobmanager.memory.heap.size",
    "jobmanager.memory.off-heap.size",
    "taskmanager.memory.process.size",
    "taskmanager.memory.flink.size",
    "taskmanager.memory.task.heap.size",
    "taskmanager.memory.managed.size",
    "taskmanager.memory.network.min",
    "taskmanager.memory.network.max",
];
/// Whole-number keys that must be at least 1.
const POSITIVE_INT_KEYS: &[&str] = &[
    "taskmanager.numberOfTaskSlots",
    "parallelism.default",
    "kubernetes.operator.savepoint.history.max.count",
];
/// Boolean keys flinkpilot reads.
const BOOL_KEYS: &[&str] = &[
    "kubernetes.operator.deployment.rollback.enabled",
    "kubernetes.operator.cluster.health-check.enabled",
    "kubernetes.operator.jm-deployment-recovery.enabled",
    "kubernetes.operator.job.savepoint-on-deletion",
    "job.autoscaler.enabled",
    "kubernetes.operator.snapshot.resource.enabled",
    "kubernetes.operator.savepoint.cleanup.enabled",
    "kubernetes.operator.savepoint.dispose-on-delete",
];
/// Autoscaler numbers that must not be negative (checked when the autoscaler is enabled).
const AUTOSCALER_NON_NEGATIVE: &[&str] = &[
    "job.autoscaler.scale-down.max-factor",
    "job.autoscaler.scale-up.max-factor",
    "job.autoscaler.utilization.target",
    "job.autoscaler.target.utilization.boundary",
];

/// Who owns the job, for messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Owner {
    Application,
    SessionJob,
}

/// `true` when a non-blank value is set for any of `keys`.
pub(super) fn is_set(config: &FlinkConfiguration, keys: &[&str]) -> bool {
    config
        .get_first(keys)
        .is_some_and(|(_, v)| !v.trim().is_empty())
}

/// `true` when high availability is configured (any mode other than `NONE`).
pub(super) fn ha_enabled(config: &FlinkConfiguration) -> bool {
    config
        .get_first(HA_KEYS)
        .is_some_and(|(_, v)| !v.trim().is_empty() && !v.trim().eq_ignore_ascii_case("none"))
}

fn alternatives(keys: &[&str]) -> String {
    match keys {
        [current, deprecated] => format!("`{current}` (or the older `{deprecated}`)"),
        _ => keys
            .iter()
            .map(|k| format!("`{k}`"))
            .collect::<Vec<_>>()
            .join(" or "),
    }
}

/// Checks the job. `tm_replicas` is the explicit TaskManager count of an application cluster;
/// `config` is the configuration the job runs with (for a session job: the cluster's, overlaid
/// with its own), or `None` when it is not known.
pub(super) fn check_job(
    job: &JobSpec,
    owner: Owner,
    tm_replicas: Option<i32>,
    config: Option<&FlinkConfiguration>,
    out: &mut Vec<Problem>,
) {
    match job.jar_uri.as_deref().map(str::trim) {
        None | Some("") => out.push(Problem::new(
            "spec.job.jarURI",
            match owner {
                Owner::Application => {
                    "the job needs the URI of its jar; set it, e.g. \
                                       `local:///opt/flink/usrlib/job.jar` for a jar in the image"
                }
                Owner::SessionJob => {
                    "the job needs the URI of its jar to submit to the session \
                                      cluster; set it, e.g. `https://…/job.jar` or `s3://…/job.jar`"
                }
            },
        )),
        Some(uri) if uri.chars().any(char::is_whitespace) => out.push(Problem::new(
            "spec.job.jarURI",
            "the jar URI contains whitespace; percent-encode it or remove the spaces",
        )),
        Some(_) => {}
    }

    match tm_replicas {
        Some(_) => {} // the TaskManager count is checked with the TaskManager spec
        None if job.parallelism() < 1 => out.push(Problem::new(
            "spec.job.parallelism",
            format!(
                "parallelism must be at least 1 (it is {}); set spec.job.parallelism{}",
                job.parallelism(),
                if owner == Owner::Application {
                    " or spec.taskManager.replicas"
                } else {
                    ""
                }
            ),
        )),
        None => {}
    }

    if let Some(path) = job.initial_savepoint_path.as_deref()
        && let Err(why) = check_state_path(path)
    {
        out.push(Problem::new("spec.job.initialSavepointPath", why));
    }

    let Some(config) = config else { return };
    let mode = job.upgrade_mode();
    if mode != UpgradeMode::Stateless && !is_set(config, CHECKPOINT_DIR_KEYS) {
        out.push(Problem::new(
            config_path(CHECKPOINT_DIR_KEYS[0]),
            format!(
                "upgradeMode {mode} keeps the job's state in checkpoints, so a checkpoint \
                 directory is required; set {} to a durable location such as s3://bucket/checkpoints",
                alternatives(CHECKPOINT_DIR_KEYS)
            ),
        ));
    }
    if !is_set(config, SAVEPOINT_DIR_KEYS) {
        let need = if mode == UpgradeMode::Savepoint {
            Some("upgradeMode savepoint takes a savepoint on every upgrade")
        } else if job.savepoint_trigger_nonce.is_some() {
            Some("spec.job.savepointTriggerNonce asks for a savepoint")
        } else if config.contains(PERIODIC_SAVEPOINT_INTERVAL) {
            Some("periodic savepoints are configured")
        } else if config.contains(LAST_STATE_MAX_AGE) {
            Some("a maximum checkpoint age for last-state upgrades falls back to savepoints")
        } else {
            None
        };
        if let Some(reason) = need {
            out.push(Problem::new(
                config_path(SAVEPOINT_DIR_KEYS[0]),
                format!(
                    "{reason}, so a savepoint directory is required; set {}",
                    alternatives(SAVEPOINT_DIR_KEYS)
                ),
            ));
        }
    }
}

/// A savepoint or checkpoint location must be a URI with a scheme (`s3://…`, `file:///…`) or
/// an absolute path.
pub(super) fn check_state_path(path: &str) -> Result<(), String> {
    let p = path.trim();
    let hint = "use a URI such as s3://bucket/savepoints/savepoint-1a2b3c or \
                file:///flink-data/savepoints/savepoint-1a2b3c, or an absolute path";
    if p.is_empty() {
        return Err(format!("the path is empty; {hint}"));
    }
    if p.chars().any(char::is_whitespace) {
        return Err(format!("`{p}` contains whitespace; {hint}"));
    }
    if p.starts_with('/') {
        return Ok(());
    }
    // Flink itself reports local savepoints as `file:/path` (no authority); people copy that
    // spelling from the web UI and the REST API, and Flink restores from it.
    if p.strip_prefix("file:/")
        .is_some_and(|rest| !rest.starts_with('/') && !rest.is_empty())
    {
        return Ok(());
    }
    match p.split_once("://") {
        Some((scheme, rest))
            if !scheme.is_empty()
                && scheme
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
                && !rest.is_empty() =>
        {
            Ok(())
        }
        _ => Err(format!(
            "`{p}` is neither a URI with a scheme nor an absolute path; {hint}"
        )),
    }
}

/// Checks the configuration itself: keys written twice and values of keys flinkpilot reads.
pub(super) fn check_config(config: &FlinkConfiguration, out: &mut Vec<Problem>) {
    for key in config.duplicate_keys() {
        out.push(Problem::new(
            config_path(&key),
            "the key is written twice (once flat, once nested); keep one so it is clear which \
             value applies",
        ));
    }
    for key in DURATION_KEYS {
        if let Err(e) = config.get_duration(key) {
            out.push(Problem::new(config_path(key), e.to_string()));
        }
    }
    for key in DURATION_OR_CRON_KEYS {
        if let Some(Err(e)) = config
            .get(key)
            .map(|v| crate::schedule::Schedule::parse(&v))
        {
            out.push(Problem::new(config_path(key), e.to_string()));
        }
    }
    for key in MEMORY_KEYS {
        if let Err(e) = config.get_memory(key) {
            out.push(Problem::new(config_path(key), e.to_string()));
        }
    }
    for key in POSITIVE_INT_KEYS {
        match config.get_i64(key) {
            Err(e) => out.push(Problem::new(config_path(key), e.to_string())),
            Ok(Some(n)) if n < 1 => out.push(Problem::new(
                config_path(key),
                format!("must be at least 1 (it is {n})"),
            )),
            Ok(_) => {}
        }
    }
    for key in BOOL_KEYS {
        if let Err(e) = config.get_bool(key) {
            out.push(Problem::new(config_path(key), e.to_string()));
        }
    }
    if config.get_bool("job.autoscaler.enabled").ok().flatten() == Some(true) {
        for key in AUTOSCALER_NON_NEGATIVE {
            match config.get_f64(key) {
                Err(e) => out.push(Problem::new(config_path(key), e.to_string())),
                Ok(Some(v)) if v < 0.0 || !v.is_finite() => out.push(Problem::new(
                    config_path(key),
                    format!("the autoscaler needs a value of 0 or more (it is {v})"),
                )),
                Ok(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("s3://bucket/savepoints/sp-1")]
    #[case("file:///flink-data/savepoints/savepoint-45305c-d867504446e0")]
    #[case("/flink-data/savepoints/savepoint-98682a-21931bf10c39")]
    #[case("hdfs://namenode:8020/flink/sp")]
    #[case("file:/tmp/flinkpilot/savepoints/savepoint-0e1f2a-3b4c5d6e7f80")]
    fn state_paths_that_flink_can_restore_from_are_accepted(#[case] path: &str) {
        assert_eq!(check_state_path(path), Ok(()));
    }

    #[rstest]
    #[case("")]
    #[case("savepoints/sp-1")]
    #[case("s3:/bucket/sp")]
    #[case("file:")]
    #[case("file:/")]
    #[case("://x")]
    #[case("s3://bucket/my savepoint")]
    fn state_paths_that_are_not_uris_or_absolute_are_rejected(#[case] path: &str) {
        assert!(check_state_path(path).is_err());
    }

    #[test]
    fn high_availability_is_on_unless_none() {
        let on = |pairs: &[(&str, &str)]| {
            ha_enabled(&FlinkConfiguration::from_flat(pairs.iter().copied()))
        };
        assert!(on(&[("high-availability.type", "kubernetes")]));
        assert!(on(&[(
            "high-availability",
            "org.apache.flink.kubernetes.highavailability.KubernetesHaServicesFactory"
        )]));
        assert!(!on(&[("high-availability.type", "NONE")]));
        assert!(!on(&[]));
    }

    #[test]
    fn snapshot_options_are_checked() {
        let mut out = Vec::new();
        check_config(
            &FlinkConfiguration::from_flat([
                ("kubernetes.operator.savepoint.history.max.count", "0"),
                ("kubernetes.operator.snapshot.resource.enabled", "maybe"),
                ("kubernetes.operator.savepoint.history.max.age", "a week"),
            ]),
            &mut out,
        );
        let fields: Vec<String> = out.iter().map(ToString::to_string).collect();
        assert_eq!(out.len(), 3, "{fields:?}");
        assert!(
            fields
                .iter()
                .any(|f| f.contains("history.max.count") && f.contains("at least 1"))
        );
        assert!(
            fields
                .iter()
                .any(|f| f.contains("snapshot.resource.enabled"))
        );
        assert!(fields.iter().any(|f| f.contains("history.max.age")));
    }

    #[test]
    fn periodic_savepoint_interval_may_be_a_cron_expression() {
        let mut out = Vec::new();
        check_config(
            &FlinkConfiguration::from_flat([(PERIODIC_SAVEPOINT_INTERVAL, "0 0 * * * ?")]),
            &mut out,
        );
        assert_eq!(out, vec![]);
        check_config(
            &FlinkConfiguration::from_flat([(PERIODIC_SAVEPOINT_INTERVAL, "hourly")]),
            &mut out,
        );
        assert_eq!(out.len(), 1);
    }
}
