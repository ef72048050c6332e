//! Retention: `kubernetes.operator.savepoint.history.max.count` (default 10) and
//! `…savepoint.history.max.age` (default 24 h), as in the Apache operator:
//!
//! - the legacy `savepointHistory`: oldest first, entries past the count, then entries past
//!   the age, are disposed and only then dropped (a failed disposal keeps the entry and is
//!   retried; the count pass stops at it, so an older one is never orphaned by dropping a newer
//!   one). With `kubernetes.operator.savepoint.cleanup.enabled: false` entries are dropped
//!   without disposing their files, as the Apache operator does;
//! - `FlinkStateSnapshot`s this deployment took itself (`PERIODIC`, `UPGRADE`): past the count
//!   or the age (checkpoints: past `execution.checkpointing.num-retained`), deleted; each one's
//!   finalizer disposes its files first when it says so (`disposeOnDelete`).
//!
//! Never disposed or deleted: the newest completed snapshot, the one the job restores from
//! (`upgradeSavepointPath`, `initialSavepointPath`), and history entries a snapshot resource
//! also owns. One disposal per pass keeps every step small and retried on its own.

use std::time::Duration;

use api::{FlinkStateSnapshot, FlinkStateSnapshotState, SnapshotTriggerType};

use super::Cx;
use crate::action::{Action, Event, EventReason};
use crate::observation::{ClusterObservation, JobObservation};
use crate::snapshot::decide::same_path;
use crate::snapshot::{self, SnapshotKind};

/// Operator option: most savepoints kept.
pub const MAX_COUNT: &str = "kubernetes.operator.savepoint.history.max.count";
/// Operator option: oldest savepoint kept.
pub const MAX_AGE: &str = "kubernetes.operator.savepoint.history.max.age";
/// Operator option: dispose savepoints (and delete snapshot resources) past the limits.
pub const CLEANUP_ENABLED: &str = "kubernetes.operator.savepoint.cleanup.enabled";
/// Flink's retained checkpoints (current key first).
const NUM_RETAINED: &[&str] = &[
    "execution.checkpointing.num-retained",
    "state.checkpoints.num-retained",
];

/// The retention policy of a deployment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Most savepoints kept (at least 1).
    pub max_count: usize,
    /// Oldest savepoint kept.
    pub max_age: Duration,
    /// Most checkpoint resources kept (at least 1).
    pub max_checkpoints: usize,
    /// Dispose files (and delete resources); otherwise legacy entries are only dropped.
    pub cleanup: bool,
}

impl Policy {
    fn of(cx: &Cx<'_>) -> Policy {
        let config = cx.desired.flink_config();
        let count = |v: Option<i64>, default: i64| {
            usize::try_from(v.unwrap_or(default).max(1)).unwrap_or(1)
        };
        let checkpoints = config
            .get_first(NUM_RETAINED)
            .and_then(|(_, v)| v.trim().parse::<i64>().ok());
        Policy {
            max_count: count(config.get_i64(MAX_COUNT).ok().flatten(), 10),
            max_age: config
                .get_duration(MAX_AGE)
                .ok()
                .flatten()
                .unwrap_or(Duration::from_secs(24 * 3600)),
            max_checkpoints: count(checkpoints, 1),
            cleanup: config
                .get_bool(CLEANUP_ENABLED)
                .ok()
                .flatten()
                .unwrap_or(true),
        }
    }
}

/// Paths retention must never dispose: what the job restores from.
fn protected_paths(cx: &Cx<'_>) -> Vec<String> {
    let restore = cx.restore_path();
    let initial = [
        Some(cx.desired),
        super::super::target_spec(&cx.status).as_ref(),
    ]
    .into_iter()
    .flatten()
    .filter_map(|s| s.job.as_ref()?.initial_savepoint_path.clone())
    .collect::<Vec<_>>();
    restore.into_iter().chain(initial).collect()
}

/// One retention step.
pub(super) fn step(cx: &mut Cx<'_>) {
    let policy = Policy::of(cx);
    let protected = protected_paths(cx);
    legacy(cx, &policy, &protected);
    if policy.cleanup {
        resources(cx, &policy, &protected, SnapshotKind::Savepoint);
        resources(cx, &policy, &protected, SnapshotKind::Checkpoint);
    }
}

/// A legacy history entry to dispose (or drop), oldest first.
fn legacy(cx: &mut Cx<'_>, policy: &Policy, protected: &[String]) {
    let Some(info) = super::savepoint_info(cx) else {
        return;
    };
    let history = info.savepoint_history.clone().unwrap_or_default();
    if history.len() < 2 {
        return;
    }
    let owned_by_resource = |path: &str| {
        cx.obs
            .snapshots
            .resources
            .iter()
            .any(|s| snapshot::snapshot_path(s).is_some_and(|p| same_path(&p, path)))
    };
    let keep = |path: Option<&str>| match path {
        None => false,
        Some(p) => protected.iter().any(|k| same_path(k, p)) || owned_by_resource(p),
    };
    let newest = history.len() - 1;
    let cutoff = cx
        .now_ms
        .saturating_sub(i64::try_from(policy.max_age.as_millis()).unwrap_or(i64::MAX));
    // count: the oldest entry that may go, while there are too many
    let mut chosen = None;
    if history.len() > policy.max_count {
        chosen = history
            .iter()
            .enumerate()
            .take(newest)
            .find(|(_, sp)| !keep(sp.location.as_deref()))
            .map(|(i, _)| {
                (
                    i,
                    "more than kubernetes.operator.savepoint.history.max.count",
                )
            });
    }
    if chosen.is_none() {
        chosen = history
            .iter()
            .enumerate()
            .take(newest)
            .find(|(_, sp)| {
                sp.time_stamp.is_some_and(|t| t < cutoff) && !keep(sp.location.as_deref())
            })
            .map(|(i, _)| {
                (
                    i,
                    "older than kubernetes.operator.savepoint.history.max.age",
                )
            });
    }
    let Some((i, why)) = chosen else {
        return;
    };
    let entry = history[i].clone();
    match entry.location.clone() {
        Some(path) if policy.cleanup => {
            cx.events.push(Event::normal(
                EventReason::Cleanup,
                format!("Disposing savepoint {path} ({why})"),
            ));
            let via_flink = matches!(cx.obs.cluster, ClusterObservation::Running { .. })
                && matches!(cx.obs.job, JobObservation::Found(_));
            cx.act(Action::DisposeSnapshot { path, via_flink });
        }
        location => {
            // nothing to dispose (no location, or disposal turned off): drop the entry only
            if let Some(h) = cx.savepoint_info().savepoint_history.as_mut() {
                h.remove(i);
            }
            cx.events.push(Event::normal(
                EventReason::Cleanup,
                format!(
                    "Dropped savepoint {} from the history ({why}); its files are kept",
                    location.unwrap_or_else(|| "without a location".into())
                ),
            ));
        }
    }
}

/// Snapshot resources of `kind` this deployment took itself, to delete.
fn resources(cx: &mut Cx<'_>, policy: &Policy, protected: &[String], kind: SnapshotKind) {
    let (max_count, cutoff) = match kind {
        SnapshotKind::Savepoint => (
            policy.max_count,
            cx.now_ms
                .saturating_sub(i64::try_from(policy.max_age.as_millis()).unwrap_or(i64::MAX)),
        ),
        SnapshotKind::Checkpoint => (policy.max_checkpoints, i64::MIN),
    };
    let victims = to_delete(
        &cx.obs.snapshots.resources,
        kind,
        max_count,
        cutoff,
        protected,
    );
    for s in victims {
        let name = s.metadata.name.clone().unwrap_or_default();
        cx.events.push(Event::normal(
            EventReason::Cleanup,
            format!(
                "Deleting FlinkStateSnapshot {name} (retention: at most {max_count} {}s{})",
                kind.as_str(),
                if kind == SnapshotKind::Savepoint {
                    format!(", none older than {}s", policy.max_age.as_secs())
                } else {
                    String::new()
                }
            ),
        ));
        cx.act(Action::DeleteSnapshotResource { name });
    }
}

/// Which of `all` to delete: this deployment's own (`PERIODIC`, `UPGRADE`) settled snapshots
/// of `kind`, oldest first, past `max_count` or created before `cutoff_ms`; never the newest
/// completed one, never the last one, never one at a protected path, never one still being
/// taken (it neither counts nor goes). Pure.
pub fn to_delete<'s>(
    all: &'s [FlinkStateSnapshot],
    kind: SnapshotKind,
    max_count: usize,
    cutoff_ms: i64,
    protected: &[String],
) -> Vec<&'s FlinkStateSnapshot> {
    let mut list: Vec<&FlinkStateSnapshot> = all
        .iter()
        .filter(|s| s.metadata.deletion_timestamp.is_none())
        .filter(|s| SnapshotKind::of(s) == kind)
        .filter(|s| {
            !matches!(
                snapshot::state(s),
                FlinkStateSnapshotState::TriggerPending | FlinkStateSnapshotState::InProgress
            )
        })
        .filter(|s| {
            matches!(
                snapshot::trigger_type(s),
                SnapshotTriggerType::Periodic | SnapshotTriggerType::Upgrade
            )
        })
        .collect();
    list.sort_by_key(|s| (snapshot::created_ms(s), s.metadata.name.clone()));
    if list.len() < 2 {
        return Vec::new();
    }
    let newest_complete = list
        .iter()
        .rposition(|s| snapshot::state(s) == FlinkStateSnapshotState::Completed);
    let mut out = Vec::new();
    let total = list.len();
    for (i, s) in list.iter().enumerate() {
        if Some(i) == newest_complete {
            continue;
        }
        if out.len() == total - 1 {
            break;
        }
        let is_protected =
            snapshot::snapshot_path(s).is_some_and(|p| protected.iter().any(|k| same_path(k, &p)));
        if is_protected {
            continue;
        }
        if total - out.len() > max_count || snapshot::created_ms(s) < cutoff_ms {
            out.push(*s);
        }
    }
    out
}
