//! `status.lifecycleState`, derived from the rest of the status exactly as the Apache operator's
//! `CommonStatus.getLifecycleState()` derives it, so dashboards that read it keep working.

use api::{
    FlinkDeploymentSpec, FlinkDeploymentStatus, FlinkJobState, FlinkSessionJobSpec,
    FlinkSessionJobStatus, JobState, ReconciliationState, ReconciliationStatus,
    ResourceLifecycleState,
};

/// The lifecycle state of a `FlinkDeployment` with this status. `deleting` is `true` while the
/// resource is being deleted: the Apache operator then reports `DELETING` (its controller sets
/// it during cleanup, and the getter returns it before anything else).
pub fn lifecycle_state(status: &FlinkDeploymentStatus, deleting: bool) -> ResourceLifecycleState {
    let job_state = status.job_status.as_ref().and_then(|j| j.state);
    from_status::<FlinkDeploymentSpec>(
        status.reconciliation_status.as_ref(),
        status.error.as_deref(),
        job_state,
        deleting,
        |spec| spec.job,
    )
}

/// The lifecycle state of a `FlinkSessionJob` with this status, derived the same way.
pub fn session_job_lifecycle_state(
    status: &FlinkSessionJobStatus,
    deleting: bool,
) -> ResourceLifecycleState {
    let job_state = status.job_status.as_ref().and_then(|j| j.state);
    from_status::<FlinkSessionJobSpec>(
        status.reconciliation_status.as_ref(),
        status.error.as_deref(),
        job_state,
        deleting,
        |spec| spec.job,
    )
}

/// Derives the state from the parts every kind's status has; `job` finds the job in the
/// last reconciled spec (suspended or not).
fn from_status<S: api::reconciled::StoredSpec>(
    recon: Option<&ReconciliationStatus>,
    error: Option<&str>,
    job_state: Option<FlinkJobState>,
    deleting: bool,
    job: impl FnOnce(S) -> Option<api::JobSpec>,
) -> ResourceLifecycleState {
    let recon = recon.cloned().unwrap_or_default();
    // An unreadable stored spec reads as "not suspended", like a spec without a job.
    let suspended = recon
        .last_reconciled::<S>()
        .ok()
        .flatten()
        .and_then(|r| job(r.spec))
        .is_some_and(|job| job.state() == JobState::Suspended);
    derive(&recon, error, job_state, suspended, deleting)
}

fn derive(
    recon: &ReconciliationStatus,
    error: Option<&str>,
    job_state: Option<FlinkJobState>,
    suspended: bool,
    deleting: bool,
) -> ResourceLifecycleState {
    use ResourceLifecycleState as L;
    if deleting {
        return L::Deleting;
    }
    if recon.is_before_first_deployment() {
        return if error.is_none_or(str::is_empty) {
            L::Created
        } else {
            L::Failed
        };
    }
    match recon.state() {
        ReconciliationState::Upgrading => return L::Upgrading,
        ReconciliationState::RollingBack => return L::RollingBack,
        ReconciliationState::Deployed | ReconciliationState::RolledBack => {}
    }
    if suspended {
        return L::Suspended;
    }
    if job_state == Some(FlinkJobState::Failed) {
        return L::Failed;
    }
    if recon.state() == ReconciliationState::RolledBack {
        L::RolledBack
    } else if recon.is_last_reconciled_spec_stable() {
        L::Stable
    } else {
        L::Deployed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::reconciled::ReconciliationMetadata;
    use api::{FlinkDeployment, JobStatus, ReconciliationStatus};
    use rstest::rstest;

    fn status_with(
        spec: Option<&FlinkDeploymentSpec>,
        state: Option<ReconciliationState>,
        stable: bool,
        job: Option<FlinkJobState>,
        error: Option<&str>,
    ) -> FlinkDeploymentStatus {
        let mut recon = ReconciliationStatus {
            state,
            ..Default::default()
        };
        if let Some(spec) = spec {
            recon
                .set_last_reconciled(spec, &ReconciliationMetadata::new(Some(1), false))
                .unwrap();
            if stable {
                recon.mark_reconciled_spec_stable();
            }
        }
        FlinkDeploymentStatus {
            reconciliation_status: Some(recon),
            job_status: Some(JobStatus {
                state: job,
                ..Default::default()
            }),
            error: error.map(str::to_string),
            ..Default::default()
        }
    }

    #[rstest]
    #[case::created(false, None, false, None, None, false, ResourceLifecycleState::Created)]
    #[case::failed_before_deploy(
        false,
        None,
        false,
        None,
        Some("bad"),
        false,
        ResourceLifecycleState::Failed
    )]
    #[case::upgrading(
        true,
        Some(ReconciliationState::Upgrading),
        false,
        Some(FlinkJobState::Failed),
        None,
        false,
        ResourceLifecycleState::Upgrading
    )]
    #[case::unset_state_means_upgrading(
        true,
        None,
        true,
        None,
        None,
        false,
        ResourceLifecycleState::Upgrading
    )]
    #[case::rolling_back(
        true,
        Some(ReconciliationState::RollingBack),
        false,
        None,
        None,
        false,
        ResourceLifecycleState::RollingBack
    )]
    #[case::job_failed(
        true,
        Some(ReconciliationState::Deployed),
        true,
        Some(FlinkJobState::Failed),
        None,
        false,
        ResourceLifecycleState::Failed
    )]
    #[case::rolled_back(
        true,
        Some(ReconciliationState::RolledBack),
        true,
        Some(FlinkJobState::Running),
        None,
        false,
        ResourceLifecycleState::RolledBack
    )]
    #[case::stable(
        true,
        Some(ReconciliationState::Deployed),
        true,
        Some(FlinkJobState::Running),
        None,
        false,
        ResourceLifecycleState::Stable
    )]
    #[case::deployed(
        true,
        Some(ReconciliationState::Deployed),
        false,
        Some(FlinkJobState::Running),
        None,
        false,
        ResourceLifecycleState::Deployed
    )]
    #[case::deleting_wins(
        true,
        Some(ReconciliationState::Upgrading),
        false,
        None,
        None,
        true,
        ResourceLifecycleState::Deleting
    )]
    fn lifecycle_follows_the_apache_getter(
        #[case] reconciled: bool,
        #[case] state: Option<ReconciliationState>,
        #[case] stable: bool,
        #[case] job: Option<FlinkJobState>,
        #[case] error: Option<&str>,
        #[case] deleting: bool,
        #[case] expected: ResourceLifecycleState,
    ) {
        let spec = FlinkDeployment::test("d").application().spec;
        let status = status_with(reconciled.then_some(&spec), state, stable, job, error);
        assert_eq!(lifecycle_state(&status, deleting), expected);
    }

    #[test]
    fn a_suspended_target_is_suspended_even_when_the_job_failed() {
        let spec = FlinkDeployment::test("d").application().suspended().spec;
        let status = status_with(
            Some(&spec),
            Some(ReconciliationState::Deployed),
            true,
            Some(FlinkJobState::Failed),
            None,
        );
        assert_eq!(
            lifecycle_state(&status, false),
            ResourceLifecycleState::Suspended
        );
    }
}
