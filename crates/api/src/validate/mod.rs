//! Validation: every problem of a resource, or of a change to one, each with the path of the
//! field to fix and a sentence saying what to do. Pure: no I/O, no clock.
//!
//! The rules cover what the Apache operator's validator rejects, plus checks for mistakes that
//! otherwise surface later as confusing runtime failures (malformed durations and memory sizes
//! in keys flinkpilot reads, an `initialSavepointPath` that is not a URI, a key written twice).
//!
//! Flink versions: `v1_16` to `v2_4` are accepted ([`FlinkVersion::OLDEST_SUPPORTED`]); 1.20 and
//! 2.3 are the versions tested against a real Flink. `v1_13`–`v1_15` are rejected (the Apache
//! operator dropped 1.13/1.14 and deprecated 1.15).
//!
//! What is not checked (the Apache operator checks it against its own default configuration,
//! which a manifest alone does not carry): that JobManager/TaskManager memory is defined
//! somewhere, and keys inherited from operator-wide defaults. Resources carrying the label
//! `flink.apache.org/canary: "true"` are the Apache operator's health-check canaries and are
//! never validated.
//!
//! Unknown enum values (`upgradeMode: sometimes`) and wrongly typed fields are rejected earlier,
//! when the manifest is read ([`crate::manifest`]), with the field named.
//!
//! [`FlinkVersion::OLDEST_SUPPORTED`]: crate::FlinkVersion::OLDEST_SUPPORTED

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::manifest::Resource;
use crate::{
    FlinkDeployment, FlinkDeploymentSpec, FlinkSessionJob, FlinkSessionJobSpec, FlinkStateSnapshot,
};

mod change;
mod deployment;
mod job;
mod session_job;
mod snapshot;

/// One thing wrong with a resource.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Problem {
    /// Path of the field to fix, e.g. `spec.job.jarURI` or
    /// `spec.flinkConfiguration.execution.checkpointing.dir`.
    pub path: String,
    /// What is wrong and what to do, as one sentence.
    pub message: String,
}

impl Problem {
    /// A problem at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Path of a flattened configuration key.
pub(crate) fn config_path(key: &str) -> String {
    format!("spec.flinkConfiguration.{key}")
}

/// All problems of a `FlinkDeployment`, including those of its change from the last reconciled
/// spec recorded in its status (as the Apache operator's admission check does).
pub fn deployment(d: &FlinkDeployment) -> Vec<Problem> {
    if d.is_canary() {
        return Vec::new();
    }
    let mut problems = deployment::validate(d);
    if let Some(rs) = d
        .status
        .as_ref()
        .and_then(|s| s.reconciliation_status.as_ref())
    {
        match rs.last_reconciled::<FlinkDeploymentSpec>() {
            Ok(Some(old)) => problems.extend(deployment_change(&old.spec, &d.spec)),
            Ok(None) => {}
            Err(e) => problems.push(Problem::new(
                "status.reconciliationStatus.lastReconciledSpec",
                e.to_string(),
            )),
        }
    }
    problems
}

/// All problems of changing a `FlinkDeployment` from `old` to `new` (the spec alone is
/// checked by [`deployment`]).
pub fn deployment_change(old: &FlinkDeploymentSpec, new: &FlinkDeploymentSpec) -> Vec<Problem> {
    change::deployment(old, new)
}

/// All problems of a `FlinkSessionJob`. `session` is the `FlinkDeployment` named by
/// `spec.deploymentName` when it is known; checks that need it (it must be a session cluster;
/// its configuration provides state directories) are skipped without it.
pub fn session_job(job: &FlinkSessionJob, session: Option<&FlinkDeployment>) -> Vec<Problem> {
    if crate::is_canary(&job.metadata) {
        return Vec::new();
    }
    let mut problems = session_job::validate(job, session);
    if let Some(rs) = job
        .status
        .as_ref()
        .and_then(|s| s.reconciliation_status.as_ref())
    {
        match rs.last_reconciled::<FlinkSessionJobSpec>() {
            Ok(Some(old)) => problems.extend(session_job_change(&old.spec, &job.spec)),
            Ok(None) => {}
            Err(e) => problems.push(Problem::new(
                "status.reconciliationStatus.lastReconciledSpec",
                e.to_string(),
            )),
        }
    }
    problems
}

/// All problems of changing a `FlinkSessionJob` from `old` to `new`.
pub fn session_job_change(old: &FlinkSessionJobSpec, new: &FlinkSessionJobSpec) -> Vec<Problem> {
    change::session_job(old, new)
}

/// All problems of a `FlinkStateSnapshot`.
pub fn snapshot(s: &FlinkStateSnapshot) -> Vec<Problem> {
    snapshot::validate(s)
}

/// Validates one resource of a set, e.g. the documents of the files given to
/// `flinkpilot validate`: a session job is checked against the `FlinkDeployment` it names when
/// that is in the set too (same name and namespace).
pub fn resource(r: &Resource, set: &[&Resource]) -> Vec<Problem> {
    match r {
        Resource::Deployment(d) => deployment(d),
        Resource::Snapshot(s) => snapshot(s),
        Resource::SessionJob(j) => {
            let ns = |m: &ObjectMeta| m.namespace.clone().unwrap_or_else(|| "default".into());
            let session = set.iter().find_map(|other| match other {
                Resource::Deployment(d)
                    if d.metadata.name == j.spec.deployment_name
                        && ns(&d.metadata) == ns(&j.metadata) =>
                {
                    Some(d)
                }
                _ => None,
            });
            session_job(j, session)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{JobKind, UpgradeMode};

    #[test]
    fn fixtures_are_valid() {
        assert_eq!(deployment(&FlinkDeployment::test("d")), vec![]);
        assert_eq!(
            deployment(&FlinkDeployment::test("d").application()),
            vec![]
        );
        let stateful = FlinkDeployment::test("d")
            .with_upgrade_mode(UpgradeMode::Savepoint)
            .with_state_dirs("file:///tmp/fp");
        assert_eq!(deployment(&stateful), vec![]);
        let session = FlinkDeployment::test("s");
        assert_eq!(
            session_job(&FlinkSessionJob::test("j", "s"), Some(&session)),
            vec![]
        );
        assert_eq!(
            snapshot(&FlinkStateSnapshot::test_savepoint(
                "x",
                JobKind::FlinkDeployment,
                "d"
            )),
            vec![]
        );
        assert_eq!(
            snapshot(&FlinkStateSnapshot::test_checkpoint(
                "x",
                JobKind::FlinkSessionJob,
                "j"
            )),
            vec![]
        );
    }

    #[test]
    fn canaries_are_never_validated() {
        let mut d = FlinkDeployment::test("Not A Valid Name");
        d.spec = Default::default();
        assert!(!deployment(&d).is_empty());
        d.metadata.labels = Some([(crate::CANARY_LABEL.to_string(), "true".to_string())].into());
        assert_eq!(deployment(&d), vec![]);
    }

    #[test]
    fn deployment_checks_its_change_from_the_recorded_spec() {
        let deployed = FlinkDeployment::test("d").application().deployed();
        let mut session = deployed.clone();
        session.spec.job = None;
        let problems = deployment(&session);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].path, "spec.job");
    }

    #[test]
    fn problem_displays_as_path_colon_message() {
        assert_eq!(
            Problem::new("spec.job", "fix it.").to_string(),
            "spec.job: fix it."
        );
    }
}
