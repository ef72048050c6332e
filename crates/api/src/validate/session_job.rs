//! Rules for a `FlinkSessionJob`, alone and with the session cluster it names.

use super::Problem;
use super::job::{Owner, check_config, check_job};
use crate::names::DeploymentName;
use crate::{FlinkConfiguration, FlinkDeployment, FlinkSessionJob};

pub(super) fn validate(job: &FlinkSessionJob, session: Option<&FlinkDeployment>) -> Vec<Problem> {
    let mut out = Vec::new();
    let spec = &job.spec;

    if job.metadata.name.as_deref().is_none_or(str::is_empty) {
        out.push(Problem::new("metadata.name", "the resource needs a name"));
    }
    match spec.deployment_name.as_deref() {
        None | Some("") => out.push(Problem::new(
            "spec.deploymentName",
            "name the session FlinkDeployment (in the same namespace) the job runs in",
        )),
        Some(name) => {
            if let Err(e) = DeploymentName::parse(name) {
                out.push(Problem::new("spec.deploymentName", e.to_string()));
            }
        }
    }

    // The configuration the job runs with: the session cluster's, overlaid with the job's own.
    let merged = session.map(|s| {
        let mut flat = s.spec.flink_config().flatten();
        flat.extend(spec.flink_config().flatten());
        FlinkConfiguration::from_flat(flat)
    });

    if let Some(session) = session {
        if session.name() != spec.deployment_name.as_deref().unwrap_or("") {
            out.push(Problem::new(
                "spec.deploymentName",
                format!(
                    "the job names `{}` but was checked against FlinkDeployment `{}`",
                    spec.deployment_name.as_deref().unwrap_or(""),
                    session.name()
                ),
            ));
        }
        if session.spec.job.is_some() {
            out.push(Problem::new(
                "spec.deploymentName",
                format!(
                    "FlinkDeployment `{}` is an application cluster (it has spec.job) and cannot \
                     run session jobs; name a FlinkDeployment without spec.job",
                    session.name()
                ),
            ));
        }
    }

    match &spec.job {
        None => out.push(Problem::new(
            "spec.job",
            "a session job needs a job: set spec.job with at least jarURI and parallelism",
        )),
        Some(j) => check_job(j, Owner::SessionJob, None, merged.as_ref(), &mut out),
    }
    check_config(spec.flink_config(), &mut out);
    out
}
