//! The cluster health check (`kubernetes.operator.cluster.health-check.*`), evaluated as the
//! Apache operator's `ClusterHealthEvaluator` does: too many restarts within a window, or no
//! completed checkpoint within a window, makes a running job unhealthy, and recovery restarts
//! it from its latest state.
//!
//! What the check remembers between passes lives where the Apache operator keeps it — in
//! `status.clusterInfo["ClusterHealthInfo"]`, as the same JSON — so `decide` stays pure and a
//! resource moves between the two operators without losing its health history.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Cx;
use super::options::{
    CHECKPOINT_INTERVAL, CHECKPOINT_PROGRESS, CHECKPOINT_PROGRESS_WINDOW, CHECKPOINT_TIMEOUT,
    HEALTH_CHECK, RESTARTS_THRESHOLD, RESTARTS_WINDOW, TOLERABLE_FAILURES, human,
};

/// The `status.clusterInfo` key (the Apache operator's class name).
pub const CLUSTER_INFO_KEY: &str = "ClusterHealthInfo";

/// The health history, in the Apache operator's JSON shape.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterHealthInfo {
    /// When it was last observed, epoch milliseconds.
    #[serde(default)]
    pub time_stamp: i64,
    /// The restart count at the start of the current restart window.
    #[serde(default)]
    pub num_restarts: i64,
    /// When the current restart window started.
    #[serde(default)]
    pub num_restarts_evaluation_time_stamp: i64,
    /// The completed-checkpoint count last seen.
    #[serde(default)]
    pub num_completed_checkpoints: i64,
    /// When the completed-checkpoint count last grew.
    #[serde(default)]
    pub num_completed_checkpoints_increased_time_stamp: i64,
    /// The verdict.
    #[serde(default)]
    pub health_result: HealthResult,
}

/// Healthy, or not and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthResult {
    /// Whether the job is healthy.
    #[serde(default = "healthy")]
    pub healthy: bool,
    /// Why not, for people.
    #[serde(default)]
    pub error: Option<String>,
}

fn healthy() -> bool {
    true
}

impl Default for HealthResult {
    fn default() -> Self {
        HealthResult {
            healthy: true,
            error: None,
        }
    }
}

/// The health check's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthConfig {
    /// Restarts are counted within this window.
    pub restarts_window: Duration,
    /// More restarts than this within the window is unhealthy.
    pub restarts_threshold: i64,
    /// No completed checkpoint within this window is unhealthy; `None` turns that check off.
    pub checkpoint_window: Option<Duration>,
}

/// What was observed this pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Observed {
    /// Now, epoch milliseconds.
    pub now_ms: i64,
    /// Restarts since the job was submitted.
    pub restarts: i64,
    /// Completed checkpoints since the job was submitted.
    pub completed_checkpoints: i64,
}

impl HealthConfig {
    /// The settings of the resource (the Apache operator's defaults where it is silent).
    pub(super) fn of(cx: &Cx<'_>) -> Self {
        HealthConfig {
            restarts_window: cx
                .option_duration(RESTARTS_WINDOW)
                .unwrap_or(Duration::from_secs(120)),
            restarts_threshold: cx.option_i64(RESTARTS_THRESHOLD).unwrap_or(64),
            checkpoint_window: checkpoint_window(cx),
        }
    }
}

/// The checkpoint-progress window: the configured one, but never shorter than
/// `max(interval, timeout) × (tolerable failures + 2)`, which is also the default when
/// checkpointing is configured. `None` when the check is off, or no window is configured and
/// the configuration does not enable checkpointing.
fn checkpoint_window(cx: &Cx<'_>) -> Option<Duration> {
    if !cx.option_bool(CHECKPOINT_PROGRESS, true) {
        return None;
    }
    let configured = cx.option_duration(CHECKPOINT_PROGRESS_WINDOW);
    let interval = cx
        .option_duration(CHECKPOINT_INTERVAL)
        .filter(|d| !d.is_zero());
    if configured.is_none() && interval.is_none() {
        return None;
    }
    let timeout = cx
        .option_duration(CHECKPOINT_TIMEOUT)
        .unwrap_or(Duration::from_secs(600));
    let factor = u32::try_from(cx.option_i64(TOLERABLE_FAILURES).unwrap_or(0).max(0) + 2)
        .unwrap_or(u32::MAX);
    let minimum = interval
        .unwrap_or_default()
        .max(timeout)
        .saturating_mul(factor);
    Some(configured.filter(|w| *w >= minimum).unwrap_or(minimum))
}

/// Evaluates one observation against the history, as the Apache operator does, and returns
/// the new history with its verdict.
pub fn evaluate(
    last: Option<ClusterHealthInfo>,
    observed: Observed,
    config: &HealthConfig,
) -> ClusterHealthInfo {
    let now = observed.now_ms;
    let Some(mut last) = last.filter(|l| l.time_stamp > 0 && l.time_stamp <= now) else {
        // Nothing to compare with yet (or a history from the future, e.g. another clock):
        // start one.
        return ClusterHealthInfo {
            time_stamp: now,
            num_restarts: observed.restarts,
            num_restarts_evaluation_time_stamp: now,
            num_completed_checkpoints: observed.completed_checkpoints,
            num_completed_checkpoints_increased_time_stamp: now,
            health_result: HealthResult::default(),
        };
    };
    let mut errors = Vec::new();
    if let Some(e) = evaluate_restarts(&mut last, observed, config) {
        errors.push(e);
    }
    if let Some(e) = evaluate_checkpoints(&mut last, observed, config) {
        errors.push(e);
    }
    last.time_stamp = now;
    last.health_result = HealthResult {
        healthy: errors.is_empty(),
        error: (!errors.is_empty()).then(|| errors.join("; ")),
    };
    last
}

/// Restarts within the window, scaled down when the baseline is older than the window.
fn evaluate_restarts(
    last: &mut ClusterHealthInfo,
    observed: Observed,
    config: &HealthConfig,
) -> Option<String> {
    let now = observed.now_ms;
    if observed.restarts < last.num_restarts {
        // A new job (counters start at 0): a new baseline.
        last.num_restarts = observed.restarts;
        last.num_restarts_evaluation_time_stamp = now;
        return None;
    }
    let window_ms = i64::try_from(config.restarts_window.as_millis()).unwrap_or(i64::MAX);
    let elapsed = now - last.num_restarts_evaluation_time_stamp;
    let scale = if elapsed <= window_ms {
        1.0
    } else {
        window_ms as f64 / elapsed as f64
    };
    let restarts = ((observed.restarts - last.num_restarts) as f64 * scale) as i64;
    if last.num_restarts_evaluation_time_stamp < now - window_ms {
        last.num_restarts = observed.restarts;
        last.num_restarts_evaluation_time_stamp = now;
    }
    (restarts > config.restarts_threshold).then(|| {
        format!(
            "the job restarted {restarts} times within {} ({RESTARTS_THRESHOLD} is {})",
            human(config.restarts_window),
            config.restarts_threshold
        )
    })
}

/// Whether a checkpoint completed within the window.
fn evaluate_checkpoints(
    last: &mut ClusterHealthInfo,
    observed: Observed,
    config: &HealthConfig,
) -> Option<String> {
    let window = config.checkpoint_window?;
    let now = observed.now_ms;
    if observed.completed_checkpoints != last.num_completed_checkpoints {
        // More checkpoints: progress. Fewer: a new job, a new baseline.
        last.num_completed_checkpoints = observed.completed_checkpoints;
        last.num_completed_checkpoints_increased_time_stamp = now;
        return None;
    }
    let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
    (last.num_completed_checkpoints_increased_time_stamp + window_ms < now).then(|| {
        format!(
            "no checkpoint completed within {} ({CHECKPOINT_PROGRESS_WINDOW}, at least \
             max(checkpoint interval, timeout) x (tolerable failures + 2))",
            human(window)
        )
    })
}

/// The history recorded in the status, if any and readable.
pub(super) fn recorded(cx: &Cx<'_>) -> Option<ClusterHealthInfo> {
    let json = cx.status.cluster_info.as_ref()?.get(CLUSTER_INFO_KEY)?;
    serde_json::from_str(json).ok()
}

/// Forgets the history (a new job starts its counters from zero).
pub(super) fn forget(cx: &mut Cx<'_>) {
    if let Some(info) = cx.status.cluster_info.as_mut() {
        info.remove(CLUSTER_INFO_KEY);
        if info.is_empty() {
            cx.status.cluster_info = None;
        }
    }
}

/// Runs the check for a running job when it is enabled: records the new history and returns
/// why the job is unhealthy, if it is.
pub(super) fn check(cx: &mut Cx<'_>) -> Option<String> {
    if !cx.option_bool(HEALTH_CHECK, false) {
        return None;
    }
    let job = cx.observed_job()?;
    if job.state.is_terminal() {
        return None;
    }
    let progress = &cx.obs.progress;
    let observed = Observed {
        now_ms: cx.now_ms,
        restarts: i64::try_from(progress.restarts?).unwrap_or(i64::MAX),
        completed_checkpoints: i64::try_from(progress.completed_checkpoints?).unwrap_or(i64::MAX),
    };
    let config = HealthConfig::of(cx);
    let info = evaluate(recorded(cx), observed, &config);
    let verdict = (!info.health_result.healthy).then(|| {
        info.health_result
            .error
            .clone()
            .unwrap_or_else(|| "the job is unhealthy".to_string())
    });
    match serde_json::to_string(&info) {
        Ok(json) => {
            cx.status
                .cluster_info
                .get_or_insert_with(Default::default)
                .insert(CLUSTER_INFO_KEY.to_string(), json);
        }
        Err(e) => tracing::warn!(error = %e, "cannot record the cluster health"),
    }
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn config(threshold: i64, checkpoint_window: Option<Duration>) -> HealthConfig {
        HealthConfig {
            restarts_window: Duration::from_secs(120),
            restarts_threshold: threshold,
            checkpoint_window,
        }
    }

    fn at(now_ms: i64, restarts: i64, completed: i64) -> Observed {
        Observed {
            now_ms,
            restarts,
            completed_checkpoints: completed,
        }
    }

    #[test]
    fn the_first_observation_starts_a_healthy_history() {
        let info = evaluate(None, at(1_000, 5, 3), &config(2, None));
        assert!(info.health_result.healthy);
        assert_eq!(info.num_restarts, 5);
        assert_eq!(info.num_restarts_evaluation_time_stamp, 1_000);
        assert_eq!(info.num_completed_checkpoints_increased_time_stamp, 1_000);
    }

    #[test]
    fn more_restarts_than_the_threshold_within_the_window_is_unhealthy() {
        let c = config(2, None);
        let info = evaluate(None, at(MIN, 0, 0), &c);
        let info = evaluate(Some(info), at(MIN + 10_000, 2, 0), &c);
        assert!(info.health_result.healthy, "2 restarts are not more than 2");
        let info = evaluate(Some(info), at(MIN + 20_000, 3, 0), &c);
        assert!(!info.health_result.healthy);
        let error = info.health_result.error.unwrap();
        assert!(error.contains("restarted 3 times within 2m"), "{error}");
    }

    #[test]
    fn restarts_spread_over_a_longer_time_are_scaled_to_the_window() {
        let c = config(2, None);
        let start = evaluate(None, at(MIN, 0, 0), &c);
        // 5 restarts over 5 minutes: 2 per 2-minute window
        let info = evaluate(Some(start), at(6 * MIN, 5, 0), &c);
        assert!(info.health_result.healthy, "{info:?}");
        // the baseline moved, since it was older than the window
        assert_eq!(info.num_restarts, 5);
        assert_eq!(info.num_restarts_evaluation_time_stamp, 6 * MIN);
    }

    #[test]
    fn a_new_job_resets_the_baselines() {
        let c = config(2, Some(Duration::from_secs(60)));
        let old = evaluate(None, at(MIN, 40, 100), &c);
        let info = evaluate(Some(old), at(2 * MIN, 0, 0), &c);
        assert!(info.health_result.healthy);
        assert_eq!(info.num_restarts, 0);
        assert_eq!(info.num_completed_checkpoints, 0);
        assert_eq!(info.num_completed_checkpoints_increased_time_stamp, 2 * MIN);
    }

    #[test]
    fn no_checkpoint_within_the_window_is_unhealthy() {
        let c = config(64, Some(Duration::from_secs(60)));
        let info = evaluate(None, at(MIN, 0, 7), &c);
        let info = evaluate(Some(info), at(MIN + 30_000, 0, 8), &c);
        assert!(info.health_result.healthy);
        let info = evaluate(Some(info), at(2 * MIN + 20_000, 0, 8), &c);
        assert!(info.health_result.healthy, "50 s without progress");
        let info = evaluate(Some(info), at(2 * MIN + 40_000, 0, 8), &c);
        assert!(!info.health_result.healthy);
        assert!(
            info.health_result
                .error
                .unwrap()
                .contains("no checkpoint completed within 1m")
        );
    }

    #[test]
    fn the_history_is_the_apache_operators_json() {
        let json = r#"{"timeStamp":5,"numRestarts":2,"numRestartsEvaluationTimeStamp":3,
            "numCompletedCheckpoints":4,"numCompletedCheckpointsIncreasedTimeStamp":5,
            "healthResult":{"healthy":false,"error":"e"}}"#;
        let info: ClusterHealthInfo = serde_json::from_str(json).unwrap();
        assert_eq!(info.num_completed_checkpoints, 4);
        assert!(!info.health_result.healthy);
        let back = serde_json::to_value(&info).unwrap();
        assert_eq!(back["numRestartsEvaluationTimeStamp"], 3);
        assert_eq!(back["healthResult"]["error"], "e");
        // older versions wrote fewer fields
        let old: ClusterHealthInfo =
            serde_json::from_str(r#"{"timeStamp":1,"numRestarts":2,"healthy":true}"#).unwrap();
        assert!(old.health_result.healthy);
    }
}
