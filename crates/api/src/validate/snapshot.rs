//! Rules for a `FlinkStateSnapshot`.

use super::Problem;
use super::job::check_state_path;
use crate::FlinkStateSnapshot;

pub(super) fn validate(s: &FlinkStateSnapshot) -> Vec<Problem> {
    let mut out = Vec::new();
    let spec = &s.spec;

    if s.metadata.name.as_deref().is_none_or(str::is_empty) {
        out.push(Problem::new("metadata.name", "the resource needs a name"));
    }
    match (&spec.savepoint, &spec.checkpoint) {
        (Some(_), Some(_)) => out.push(Problem::new(
            "spec",
            "set exactly one of spec.savepoint and spec.checkpoint, not both",
        )),
        (None, None) => out.push(Problem::new(
            "spec",
            "set exactly one of spec.savepoint (e.g. `savepoint: {}`) and spec.checkpoint \
             (`checkpoint: {}`)",
        )),
        _ => {}
    }
    if spec.backoff_limit() < -1 {
        out.push(Problem::new(
            "spec.backoffLimit",
            format!(
                "must be -1 (retry forever), 0 (never retry) or more (it is {})",
                spec.backoff_limit()
            ),
        ));
    }

    let existing = spec.savepoint.as_ref().filter(|sp| sp.already_exists());
    if let Some(sp) = &spec.savepoint {
        match (sp.path.as_deref(), sp.already_exists()) {
            (None, true) => out.push(Problem::new(
                "spec.savepoint.path",
                "alreadyExists records an existing savepoint, so its path is required",
            )),
            (Some(path), _) => {
                if let Err(why) = check_state_path(path) {
                    out.push(Problem::new("spec.savepoint.path", why));
                }
            }
            (None, false) => {}
        }
    }
    // An existing savepoint is only recorded; anything else is taken from a job.
    if existing.is_none() {
        match &spec.job_reference {
            None => out.push(Problem::new(
                "spec.jobReference",
                "name the job to snapshot: set kind (FlinkDeployment or FlinkSessionJob) and name",
            )),
            Some(r) => {
                if r.kind.is_none() {
                    out.push(Problem::new(
                        "spec.jobReference.kind",
                        "set the kind of the referenced resource: FlinkDeployment or FlinkSessionJob",
                    ));
                }
                if r.name.as_deref().is_none_or(str::is_empty) {
                    out.push(Problem::new(
                        "spec.jobReference.name",
                        "set the name of the FlinkDeployment or FlinkSessionJob to snapshot",
                    ));
                }
            }
        }
    }
    out
}
