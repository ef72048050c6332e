//! `FlinkSessionJob` resources: a job submitted to the session cluster of a `FlinkDeployment`
//! (one without `spec.job`), reconciled like deployments — observe → `decide_session_job`
//! (pure) → `act_session_job`, one step per pass, the status as the write-ahead log:
//!
//! ```text
//! New ──(session cluster READY; job id + restore path recorded, UPGRADING)──▶ Submitting
//! Submitting ──(job found under the recorded id)──▶ Running (DEPLOYED; STABLE once RUNNING)
//! Running ──(spec change / suspend: target = desired suspended, UPGRADING)──▶ Stopping
//! Stopping ──(savepoint | last-state checkpoint | stateless, job ended)──▶ Suspended or Submitting
//! Running ──(job FAILED / lost by its cluster: newest state + next job id recorded)──▶ Submitting
//! ```
//!
//! The job id is derived from the resource's uid and generation ([`job_id_for`]) and recorded
//! before the jar is run, so a submission cut short by a crash is found (or submitted again
//! under the same id, which Flink refuses as a duplicate: counted as done) on the next pass.

pub mod act;
pub mod controller;
pub mod decide;
pub mod fetch;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use api::{FlinkSessionJob, FlinkSessionJobSpec, FlinkSessionJobStatus};

use crate::action::SavepointCall;
use crate::backend::ResourceKey;

pub use act::{SessionJobStore, act_session_job, apply_session_job_outcome};
pub use decide::{SessionJobDecision, SessionJobInput, decide_session_job};

/// The finalizer of session jobs (the Apache operator's name).
pub const SESSION_JOB_FINALIZER: &str = "flinksessionjobs.flink.apache.org/finalizer";

/// The key of a session job.
pub fn session_job_key(job: &FlinkSessionJob) -> ResourceKey {
    ResourceKey::new(
        job.metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into()),
        job.metadata.name.clone().unwrap_or_default(),
    )
}

/// The session `FlinkDeployment` a session job names (same namespace), if it names one.
pub fn deployment_key(job: &FlinkSessionJob) -> Option<ResourceKey> {
    let name = job
        .spec
        .deployment_name
        .as_deref()
        .filter(|n| !n.is_empty())?;
    Some(ResourceKey::new(session_job_key(job).namespace, name))
}

/// The Flink job id of a session job at `generation`: FNV-1a of its uid, then the generation,
/// 16 hex digits each (as the Apache operator derives it from uid and generation). The same
/// inputs give the same id in every build, so a submission repeated after a crash is
/// recognised; every spec change gets a new one, so runs never share checkpoint directories.
pub fn job_id_for(uid: &str, generation: i64) -> String {
    job_id_of_attempt(uid, generation, 0)
}

/// The job id of a new submission at `generation`: [`job_id_for`], or — when `previous` (the
/// recorded job id) is a submission of the same generation, i.e. the job is resubmitted after
/// it failed or its cluster lost it — the next attempt's: Flink refuses an id it has seen, and
/// every run keeps its own checkpoint directory. Derived, so a repeated decision gives the
/// same id.
pub fn next_job_id(uid: &str, generation: i64, previous: Option<&str>) -> String {
    let first = job_id_for(uid, generation);
    let attempt = previous
        .and_then(|p| attempt_of(&first, p))
        .map_or(0, |a| a.wrapping_add(1));
    job_id_of_attempt(uid, generation, attempt)
}

/// Attempt `attempt` of `generation`: the attempt is folded into the upper half of the
/// generation's digits (attempt 0 is [`job_id_for`]'s id).
fn job_id_of_attempt(uid: &str, generation: i64, attempt: u32) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in uid.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    let low = u64::try_from(generation.max(0)).unwrap_or(0) ^ (u64::from(attempt) << 32);
    format!("{hash:016x}{low:016x}")
}

/// The attempt `id` is of the generation whose first id is `first`, if it is one.
fn attempt_of(first: &str, id: &str) -> Option<u32> {
    if first.len() != 32 || id.len() != 32 || first.get(..16) != id.get(..16) {
        return None;
    }
    let a = u64::from_str_radix(first.get(16..)?, 16).ok()?;
    let b = u64::from_str_radix(id.get(16..)?, 16).ok()?;
    let x = a ^ b;
    (x & 0xffff_ffff == 0).then(|| u32::try_from(x >> 32).unwrap_or(0))
}

/// `uri` with any credentials (`scheme://user:password@host/…`) replaced by `***`, for
/// messages: a status, event or log line never shows them.
pub fn without_credentials(uri: &str) -> std::borrow::Cow<'_, str> {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return uri.into();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]).into(),
        None => uri.into(),
    }
}

/// What `Submit` runs: an uploaded jar with the job's arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubmitPlan {
    /// The job id, recorded in `status.jobStatus.jobId` before submitting.
    pub job_id: String,
    /// `spec.job.jarURI` as written (for messages).
    pub jar_uri: String,
    /// The jar on this machine (the URI's path after `Settings::paths`), or the `http(s)://`
    /// URI it is downloaded from ([`fetch`]).
    pub jar_path: String,
    /// Entry class; the jar manifest's when `None`.
    pub entry_class: Option<String>,
    /// Program arguments.
    pub args: Vec<String>,
    /// Parallelism; the cluster's default when `None`.
    pub parallelism: Option<u32>,
    /// Savepoint or checkpoint to restore from.
    pub restore_path: Option<String>,
    /// Start even if some state maps to no operator.
    pub allow_non_restored_state: bool,
    /// Job-level Flink configuration (the session job's `flinkConfiguration` without operator
    /// keys).
    pub config: BTreeMap<String, String>,
}

/// One step `act_session_job` carries out; every one talks to the session cluster.
#[derive(Clone, Debug, PartialEq)]
pub enum SessionJobAction {
    /// Upload the jar, run it under the recorded job id, delete the uploaded jar.
    Submit(Box<SubmitPlan>),
    /// Stop the job with a savepoint, under a trigger id already recorded.
    StopWithSavepoint(SavepointCall),
    /// Cancel the job.
    CancelJob {
        /// The job.
        job_id: String,
    },
    /// Remove the finalizer of the session job being deleted.
    FinishDeletion,
}

impl SessionJobAction {
    /// A short name for logs.
    pub fn name(&self) -> &'static str {
        match self {
            SessionJobAction::Submit(_) => "submit",
            SessionJobAction::StopWithSavepoint(_) => "stop-with-savepoint",
            SessionJobAction::CancelJob { .. } => "cancel-job",
            SessionJobAction::FinishDeletion => "finish-deletion",
        }
    }
}

/// The spec recorded in a session job's `lastReconciledSpec`, if any and readable.
pub fn target_spec(status: &FlinkSessionJobStatus) -> Option<FlinkSessionJobSpec> {
    status
        .reconciliation_status
        .as_ref()?
        .last_reconciled::<FlinkSessionJobSpec>()
        .ok()
        .flatten()
        .map(|r| r.spec)
}

/// The names of the session jobs among `jobs` that run in the session cluster `deployment`
/// (a session cluster is not deleted while there are any).
pub fn jobs_of<'a>(
    jobs: &'a [FlinkSessionJob],
    deployment: &ResourceKey,
) -> impl Iterator<Item = &'a FlinkSessionJob> {
    jobs.iter()
        .filter(move |j| deployment_key(j).as_ref() == Some(deployment))
}
