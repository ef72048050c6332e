//! Rules for changing a spec that was already reconciled (old → new).

use super::Problem;
use crate::{FlinkDeploymentSpec, FlinkSessionJobSpec, JobState, UpgradeMode};

pub(super) fn deployment(old: &FlinkDeploymentSpec, new: &FlinkDeploymentSpec) -> Vec<Problem> {
    let mut out = Vec::new();
    match (&old.job, &new.job) {
        (None, Some(_)) => out.push(Problem::new(
            "spec.job",
            "a session cluster cannot become an application cluster; remove spec.job, or \
             create a new FlinkDeployment for the application",
        )),
        (Some(_), None) => out.push(Problem::new(
            "spec.job",
            "an application cluster cannot become a session cluster; put spec.job back, or \
             delete this FlinkDeployment and create a session cluster",
        )),
        _ => {}
    }
    if old.mode() != new.mode() {
        out.push(Problem::new(
            "spec.mode",
            format!(
                "the deployment mode cannot change from {} to {}; put back `{}`, or delete and \
                 recreate the FlinkDeployment",
                old.mode(),
                new.mode(),
                old.mode()
            ),
        ));
    }
    if let (Some(old_job), Some(new_job)) = (&old.job, &new.job) {
        let nonce_changed = new_job.savepoint_redeploy_nonce.is_some()
            && new_job.savepoint_redeploy_nonce != old_job.savepoint_redeploy_nonce;
        let path_missing = new_job
            .initial_savepoint_path
            .as_deref()
            .is_none_or(|p| p.trim().is_empty());
        if nonce_changed && path_missing {
            out.push(Problem::new(
                "spec.job.initialSavepointPath",
                "changing savepointRedeployNonce redeploys from spec.job.initialSavepointPath, \
                 which is empty; set it to the savepoint to start from",
            ));
        }
        // State suspended through last-state lives in HA metadata/checkpoints of the old
        // version; it must be resumed with that version before upgrading Flink.
        if old_job.state() == JobState::Suspended
            && old_job.upgrade_mode() == UpgradeMode::LastState
            && new_job.upgrade_mode() != UpgradeMode::Stateless
            && old.flink_version != new.flink_version
        {
            out.push(Problem::new(
                "spec.flinkVersion",
                "the job was suspended with last-state; resume it with the current flinkVersion \
                 first and change the version afterwards",
            ));
        }
    }
    out
}

pub(super) fn session_job(old: &FlinkSessionJobSpec, new: &FlinkSessionJobSpec) -> Vec<Problem> {
    let mut out = Vec::new();
    if old.deployment_name != new.deployment_name {
        out.push(Problem::new(
            "spec.deploymentName",
            format!(
                "a session job cannot move to another cluster; put back `{}`, or create a new \
                 FlinkSessionJob",
                old.deployment_name.as_deref().unwrap_or("")
            ),
        ));
    }
    out
}
