//! Failpoints: deliberate crashes at exact points of a reconcile pass, for the crash-safety
//! tests. Always compiled in, inert unless `FLINKPILOT_FAILPOINT` is set.
//!
//! `FLINKPILOT_FAILPOINT=<point>:<phase>` aborts the process (as `kill -9` would, with no
//! cleanup) whenever the point is reached in that phase; a test restarts the process without
//! it:
//!
//! | point                | phase      | where                                                     |
//! |----------------------|------------|-----------------------------------------------------------|
//! | `after-status-write` | `upgrade`  | the write-ahead status of a stop (`UPGRADING`, target suspended) is persisted; the job is not stopped yet |
//! | `after-status-write` | `deploy`   | the write-ahead status of a deploy is persisted; nothing is deployed yet |
//! | `after-status-write` | `delete`   | the status before deleting a cluster is persisted; the cluster still runs |
//! | `after-status-write` | `submit`   | a session job's job id and target are persisted; the jar is not run yet |
//! | `after-action`       | any above  | the action ran; its outcome is not persisted              |
//!
//! Several failpoints may be given, separated by commas.

use crate::action::Action;

/// The environment variable holding the failpoints.
pub const FAILPOINT_ENV: &str = "FLINKPILOT_FAILPOINT";

/// Where in a pass a failpoint can fire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Point {
    /// Right after the status is persisted, before the actions.
    AfterStatusWrite,
    /// Right after the actions ran, before their outcomes are persisted.
    AfterAction,
}

impl Point {
    fn as_str(self) -> &'static str {
        match self {
            Point::AfterStatusWrite => "after-status-write",
            Point::AfterAction => "after-action",
        }
    }
}

/// The phase a pass's actions belong to, as failpoints name it.
pub fn phase(actions: &[Action]) -> Option<&'static str> {
    actions.iter().find_map(|a| match a {
        Action::StopWithSavepoint(_) | Action::CancelJob { .. } => Some("upgrade"),
        Action::Deploy(_) => Some("deploy"),
        Action::DeleteCluster => Some("delete"),
        _ => None,
    })
}

/// Aborts the process when `FLINKPILOT_FAILPOINT` names this point and phase.
pub fn check(point: Point, actions: &[Action]) {
    check_phase(point, phase(actions));
}

/// Like [`check`], for a phase named by the caller (the session job reconciler's `submit`).
pub fn check_phase(point: Point, phase: Option<&'static str>) {
    let Some(phase) = phase else {
        return;
    };
    let Ok(spec) = std::env::var(FAILPOINT_ENV) else {
        return;
    };
    if matches(&spec, point, phase) {
        eprintln!(
            "flinkpilot: failpoint {}:{phase} reached ({FAILPOINT_ENV}); aborting",
            point.as_str()
        );
        // A crash, on purpose: no destructors, no flushing, like a killed process.
        std::process::abort();
    }
}

fn matches(spec: &str, point: Point, phase: &str) -> bool {
    spec.split(',')
        .map(str::trim)
        .any(|fp| fp == format!("{}:{phase}", point.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failpoints_match_point_and_phase() {
        assert!(matches(
            "after-status-write:upgrade",
            Point::AfterStatusWrite,
            "upgrade"
        ));
        assert!(matches(
            "x, after-action:deploy",
            Point::AfterAction,
            "deploy"
        ));
        assert!(!matches(
            "after-status-write:upgrade",
            Point::AfterAction,
            "upgrade"
        ));
        assert!(!matches(
            "after-status-write:upgrade",
            Point::AfterStatusWrite,
            "deploy"
        ));
    }

    #[test]
    fn stopping_actions_are_the_upgrade_phase() {
        let cancel = Action::CancelJob { job_id: "x".into() };
        assert_eq!(phase(&[cancel]), Some("upgrade"));
        assert_eq!(phase(&[Action::DeleteCluster]), Some("delete"));
        assert_eq!(phase(&[Action::FinishDeletion]), None);
    }
}
