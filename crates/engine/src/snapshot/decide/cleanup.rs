//! A snapshot being deleted: disposing its files (when it says so and nothing restores from
//! them), then letting it go.

use api::FlinkDeployment;

use super::{Cx, SnapshotAction, State};
use crate::action::{Event, EventReason};

/// The snapshot is being deleted: dispose its files when it says so, then let it go.
pub(super) fn cleanup(cx: &mut Cx<'_>) {
    let snapshot = cx.input.snapshot;
    let finish = |cx: &mut Cx<'_>| {
        cx.actions.push(SnapshotAction::FinishDeletion);
        cx.requeue = None;
    };
    let Some(sp) = snapshot.spec.savepoint.as_ref() else {
        // Checkpoints belong to Flink's own retention.
        return finish(cx);
    };
    if !sp.dispose_on_delete() {
        return finish(cx);
    }
    match cx.state() {
        State::InProgress => {
            // As the Apache operator: wait for the savepoint to end before deleting.
            cx.soon();
        }
        State::Completed => {
            let Some(path) = cx.status.path.clone() else {
                return finish(cx);
            };
            if let Some(owner) = restores_from(cx.input.target, &path) {
                cx.events.push(Event::warning(
                    EventReason::Cleanup,
                    format!(
                        "Kept the files of {} at {path}: FlinkDeployment {owner} restores from \
                         them",
                        cx.what()
                    ),
                ));
                return finish(cx);
            }
            let observed = cx.input.observed;
            if observed.exists == Some(false) {
                return finish(cx);
            }
            if !observed.cluster_running && observed.exists.is_none() && cx.input.target.is_none() {
                // No JobManager and storage this backend cannot reach: nothing could ever
                // dispose it, so (as the Apache operator without a job reference) let it go.
                cx.events.push(Event::warning(
                    EventReason::CleanupFailed,
                    format!(
                        "Deleted {} without disposing {path}: no Flink cluster runs for it and \
                         the storage is not reachable from here",
                        cx.what()
                    ),
                ));
                return finish(cx);
            }
            cx.events.push(Event::normal(
                EventReason::Cleanup,
                format!("Disposing the files of {} at {path}", cx.what()),
            ));
            cx.actions.push(SnapshotAction::Dispose {
                path,
                via_flink: observed.cluster_running,
            });
            finish(cx);
        }
        State::TriggerPending | State::Failed | State::Abandoned => finish(cx),
    }
}

/// The deployment that restores (or would restore) from `path`, if any: its
/// `upgradeSavepointPath` or `initialSavepointPath`.
fn restores_from(target: Option<&FlinkDeployment>, path: &str) -> Option<String> {
    let target = target?;
    let upgrade = target
        .status
        .as_ref()
        .and_then(|s| s.job_status.as_ref())
        .and_then(|j| j.upgrade_savepoint_path.clone());
    let initial = target
        .spec
        .job
        .as_ref()
        .and_then(|j| j.initial_savepoint_path.clone());
    [upgrade, initial]
        .into_iter()
        .flatten()
        .any(|p| same_path(&p, path))
        .then(|| target.name().to_string())
}

/// Two spellings of one snapshot path (`file:///a`, `file:/a`, `/a`, trailing `/`).
pub fn same_path(a: &str, b: &str) -> bool {
    fn norm(p: &str) -> &str {
        let p = p.trim().trim_end_matches('/');
        let p = p.strip_prefix("file://").unwrap_or(p);
        p.strip_prefix("file:").unwrap_or(p)
    }
    norm(a) == norm(b)
}
