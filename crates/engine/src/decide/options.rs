//! The operator options recovery reads from `spec.flinkConfiguration`, with the Apache
//! operator's keys and defaults (`KubernetesOperatorConfigOptions`), so manifests keep their
//! meaning. A value the spec does not set comes from [`crate::Settings::default_config`]
//! (operator-wide defaults), then from the default here.

use std::time::Duration;

use api::FlinkDeploymentSpec;

use super::Cx;
use crate::settings::Settings;

/// Redeploy a FAILED job from its latest state (default `false`).
pub const RESTART_FAILED: &str = "kubernetes.operator.job.restart.failed";
/// Recover a JobManager that is gone (default `true`).
pub const JM_RECOVERY: &str = "kubernetes.operator.jm-deployment-recovery.enabled";
/// The deprecated spelling of [`JM_RECOVERY`].
pub const JM_RECOVERY_DEPRECATED: &str =
    "kubernetes.operator.reconciler.jm-deployment-recovery.enabled";
/// Restart a job the health check finds unhealthy (default `false`).
pub const HEALTH_CHECK: &str = "kubernetes.operator.cluster.health-check.enabled";
/// The window in which restarts are counted (default 2 minutes).
pub const RESTARTS_WINDOW: &str = "kubernetes.operator.cluster.health-check.restarts.window";
/// More restarts than this within the window is unhealthy (default 64).
pub const RESTARTS_THRESHOLD: &str = "kubernetes.operator.cluster.health-check.restarts.threshold";
/// Also check that checkpoints complete (default `true`).
pub const CHECKPOINT_PROGRESS: &str =
    "kubernetes.operator.cluster.health-check.checkpoint-progress.enabled";
/// No completed checkpoint within this window is unhealthy (default: derived from the
/// checkpointing settings).
pub const CHECKPOINT_PROGRESS_WINDOW: &str =
    "kubernetes.operator.cluster.health-check.checkpoint-progress.window";
/// Roll an upgrade back that does not become stable in time (default `false`).
pub const ROLLBACK: &str = "kubernetes.operator.deployment.rollback.enabled";
/// How long a deployment may take to become stable (default 5 minutes).
pub const READINESS_TIMEOUT: &str = "kubernetes.operator.deployment.readiness.timeout";
/// A last-state upgrade needs a checkpoint at most this old (default: unset).
pub const LAST_STATE_MAX_AGE: &str =
    "kubernetes.operator.job.upgrade.last-state.max.allowed.checkpoint.age";
/// A savepoint upgrade of a job that cannot take a savepoint may use its latest checkpoint
/// (default `true`).
pub const LAST_STATE_FALLBACK: &str = "kubernetes.operator.job.upgrade.last-state-fallback.enabled";

/// Flink's checkpoint interval (checkpointing is off without it).
pub const CHECKPOINT_INTERVAL: &str = "execution.checkpointing.interval";
/// Flink's checkpoint timeout (default 10 minutes).
pub const CHECKPOINT_TIMEOUT: &str = "execution.checkpointing.timeout";
/// Checkpoint failures Flink tolerates before failing the job (default 0).
pub const TOLERABLE_FAILURES: &str = "execution.checkpointing.tolerable-failed-checkpoints";

/// The raw value of an option: `spec`'s, else the operator-wide default.
pub fn value(spec: &FlinkDeploymentSpec, settings: &Settings, key: &str) -> Option<String> {
    spec.flink_config()
        .get(key)
        .or_else(|| settings.default_config.get(key).cloned())
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// A boolean option of `spec`; `default` when unset or unreadable (validation reports bad
/// values).
pub fn flag(spec: &FlinkDeploymentSpec, settings: &Settings, key: &str, default: bool) -> bool {
    match value(spec, settings, key).as_deref() {
        Some(v) if v.eq_ignore_ascii_case("true") => true,
        Some(v) if v.eq_ignore_ascii_case("false") => false,
        _ => default,
    }
}

impl Cx<'_> {
    /// The raw value of an option: the desired spec's, else the operator-wide default.
    pub fn option(&self, key: &str) -> Option<String> {
        value(self.desired, self.settings, key)
    }

    /// A boolean option; `default` when unset or unreadable (validation reports bad values).
    pub fn option_bool(&self, key: &str, default: bool) -> bool {
        flag(self.desired, self.settings, key, default)
    }

    /// A duration option in Flink's syntax (`30 s`, `2min`, plain milliseconds); `None` when
    /// unset or unreadable.
    pub fn option_duration(&self, key: &str) -> Option<Duration> {
        api::units::parse_duration(&self.option(key)?).ok()
    }

    /// A whole-number option; `None` when unset or unreadable.
    pub fn option_i64(&self, key: &str) -> Option<i64> {
        self.option(key)?.parse().ok()
    }

    /// Whether a lost JobManager is recovered (`jm-deployment-recovery.enabled`, also under its
    /// deprecated key).
    pub fn jm_recovery_enabled(&self) -> bool {
        if self.option(JM_RECOVERY).is_some() {
            return self.option_bool(JM_RECOVERY, true);
        }
        self.option_bool(JM_RECOVERY_DEPRECATED, true)
    }
}

/// A duration for people: `90s` → `1m30s`, `300s` → `5m`.
pub fn human(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 {
        return format!("{}ms", d.as_millis());
    }
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(human(Duration::from_secs(90)), "1m30s");
        assert_eq!(human(Duration::from_secs(300)), "5m");
        assert_eq!(human(Duration::from_secs(7260)), "2h1m");
        assert_eq!(human(Duration::from_millis(250)), "250ms");
    }
}
