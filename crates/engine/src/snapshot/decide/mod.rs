//! `decide_snapshot`: the next status, actions and events of one `FlinkStateSnapshot`. Pure:
//! `now_ms` and the fresh trigger id are inputs.
//!
//! The Apache operator's semantics: a snapshot whose job is missing or not `RUNNING` (as its
//! deployment's status says) is `ABANDONED`, before triggering and while in progress; a failure
//! (trigger refused, Flink reports the snapshot failed) counts in `status.failures` and is
//! retried after `retry_interval · 2^(failures-1)` (10 s, 20 s, …) until `failures` exceeds
//! `spec.backoffLimit` (`-1`: retry forever, as documented), then the snapshot is `FAILED`.
//! The trigger id is recorded (`IN_PROGRESS`) before it is sent; a JobManager that does not
//! know it is sent the same id again, which Flink treats as the same operation.

use std::collections::BTreeMap;
use std::time::Duration;

use api::{
    FlinkDeployment, FlinkJobState, FlinkStateSnapshot, FlinkStateSnapshotState as State,
    FlinkStateSnapshotStatus, JobKind, SavepointFormatType,
};

use super::observe::SnapshotObserved;
use super::{SnapshotKind, labels, parse_rfc3339, rfc3339, snapshot_key};
use crate::action::{Event, EventReason, SavepointCall, SavepointFormat};
use crate::observation::TriggerState;
use crate::plan_builder;
use crate::settings::Settings;

mod cleanup;

use cleanup::cleanup;
pub use cleanup::same_path;

/// Everything `decide_snapshot` reads.
#[derive(Clone, Copy, Debug)]
pub struct SnapshotInput<'a> {
    /// The snapshot resource.
    pub snapshot: &'a FlinkStateSnapshot,
    /// The deployment it refers to, `None` when it does not exist.
    pub target: Option<&'a FlinkDeployment>,
    /// What was observed.
    pub observed: &'a SnapshotObserved,
    /// Engine settings.
    pub settings: &'a Settings,
    /// Now, epoch milliseconds.
    pub now_ms: i64,
    /// A fresh trigger id (32 hex digits), used when this pass triggers.
    pub fresh_trigger_id: &'a str,
    /// Whether the store keeps `FlinkSessionJob`s, so snapshots of them can be taken.
    pub session_jobs: bool,
}

/// One step `act_snapshot` carries out.
#[derive(Clone, Debug, PartialEq)]
pub enum SnapshotAction {
    /// Take a savepoint of the deployment's job, under the recorded trigger id.
    TriggerSavepoint(SavepointCall),
    /// Take a checkpoint of the deployment's job, under the recorded trigger id.
    TriggerCheckpoint {
        /// The job.
        job_id: String,
        /// The recorded trigger id.
        trigger_id: String,
    },
    /// Delete the savepoint's files (through the JobManager when `via_flink`).
    Dispose {
        /// The savepoint.
        path: String,
        /// Through the deployment's running JobManager.
        via_flink: bool,
    },
    /// Remove the finalizer of the snapshot being deleted.
    FinishDeletion,
}

impl SnapshotAction {
    /// A short name for logs.
    pub fn name(&self) -> &'static str {
        match self {
            SnapshotAction::TriggerSavepoint(_) => "trigger-savepoint",
            SnapshotAction::TriggerCheckpoint { .. } => "trigger-checkpoint",
            SnapshotAction::Dispose { .. } => "dispose",
            SnapshotAction::FinishDeletion => "finish-deletion",
        }
    }
}

/// What `decide_snapshot` wants.
#[derive(Clone, Debug, PartialEq)]
pub struct SnapshotDecision {
    /// The new status (persisted before the actions).
    pub status: FlinkStateSnapshotStatus,
    /// The labels the resource should carry.
    pub labels: BTreeMap<String, String>,
    /// Actions, in order.
    pub actions: Vec<SnapshotAction>,
    /// Events for people.
    pub events: Vec<Event>,
    /// When to look again; `None` for a settled snapshot (only a change or deletion wakes it).
    pub requeue_after: Option<Duration>,
}

/// Prefix of `status.error` for an invalid snapshot spec.
pub const INVALID: &str = "Invalid snapshot, nothing was triggered: ";

struct Cx<'a> {
    input: SnapshotInput<'a>,
    kind: SnapshotKind,
    name: String,
    status: FlinkStateSnapshotStatus,
    actions: Vec<SnapshotAction>,
    events: Vec<Event>,
    requeue: Option<Duration>,
}

/// Decides the next step for one snapshot.
pub fn decide_snapshot(input: SnapshotInput<'_>) -> SnapshotDecision {
    let snapshot = input.snapshot;
    let mut cx = Cx {
        input,
        kind: SnapshotKind::of(snapshot),
        name: snapshot_key(snapshot).to_string(),
        status: snapshot.status.clone().unwrap_or_default(),
        actions: Vec::new(),
        events: Vec::new(),
        requeue: None,
    };
    if cx.status.state.is_none() {
        cx.status.state = Some(State::TriggerPending);
    }
    match cx.state() {
        State::TriggerPending => pending(&mut cx),
        State::InProgress => in_progress(&mut cx),
        State::Completed | State::Failed | State::Abandoned => {}
    }
    if snapshot.metadata.deletion_timestamp.is_some() {
        cleanup(&mut cx);
    }
    let labels = labels(snapshot, cx.state(), input.target.is_some());
    SnapshotDecision {
        status: cx.status,
        labels,
        actions: cx.actions,
        events: cx.events,
        requeue_after: cx.requeue,
    }
}

impl Cx<'_> {
    fn state(&self) -> State {
        self.status.state.unwrap_or(State::TriggerPending)
    }

    fn soon(&mut self) {
        self.requeue = Some(self.input.settings.transition_interval);
    }

    fn what(&self) -> String {
        format!("{} {}", capitalized(self.kind.as_str()), self.name)
    }

    fn error_reason(&self) -> EventReason {
        match self.kind {
            SnapshotKind::Savepoint => EventReason::SavepointError,
            SnapshotKind::Checkpoint => EventReason::CheckpointError,
        }
    }

    /// The referenced deployment's job, when it is RUNNING; otherwise why not.
    fn running_job(&self) -> Result<String, String> {
        let reference = self
            .input
            .snapshot
            .spec
            .job_reference
            .clone()
            .unwrap_or_default();
        let kind = match reference.kind {
            Some(JobKind::FlinkSessionJob) => "FlinkSessionJob",
            _ => "FlinkDeployment",
        };
        let ref_name = reference.name.unwrap_or_default();
        let Some(target) = self.input.target else {
            return Err(format!(
                "{kind} {ref_name} referenced by {} was not found",
                self.name
            ));
        };
        let job = target.status.as_ref().and_then(|s| s.job_status.as_ref());
        let state = job.and_then(|j| j.state);
        match (state, job.and_then(|j| j.job_id.clone())) {
            (Some(FlinkJobState::Running), Some(id)) => Ok(id),
            (state, _) => Err(format!(
                "the job of {kind} {ref_name} referenced by {} is not running (it is {})",
                self.name,
                state.map_or("not started", FlinkJobState::as_str)
            )),
        }
    }

    /// Records a failed attempt: retried after a backoff, or `FAILED` past `backoffLimit`.
    fn fail(&mut self, message: String) {
        let what = self.what();
        let reason = self.error_reason();
        fail(
            &mut self.status,
            &mut self.events,
            &mut self.requeue,
            FailContext {
                what: &what,
                reason,
                backoff_limit: self.input.snapshot.spec.backoff_limit(),
                settings: self.input.settings,
                now_ms: self.input.now_ms,
            },
            message,
        );
    }

    fn abandon(&mut self, why: String) {
        let now = self.input.now_ms;
        self.status.state = Some(State::Abandoned);
        self.status.path = None;
        self.status.trigger_id = None;
        self.status.error = Some(why.clone());
        self.status.result_timestamp = Some(rfc3339(now));
        self.events.push(Event::warning(
            EventReason::SnapshotAbandoned,
            format!("{} abandoned: {why}", self.what()),
        ));
        self.requeue = None;
    }

    fn completed(&mut self, path: Option<String>, registered: bool) {
        let now = rfc3339(self.input.now_ms);
        self.status.state = Some(State::Completed);
        self.status.path = path.clone();
        self.status.error = None;
        self.status.trigger_id = None;
        self.status.result_timestamp = Some(now.clone());
        if registered {
            self.status.trigger_timestamp = Some(now);
        }
        let (reason, verb) = match (self.kind, registered) {
            (SnapshotKind::Savepoint, true) => (EventReason::SavepointCreated, "registered"),
            (SnapshotKind::Savepoint, false) => (EventReason::SavepointCreated, "completed"),
            (SnapshotKind::Checkpoint, _) => (EventReason::CheckpointCreated, "completed"),
        };
        let at = path.map_or_else(String::new, |p| format!(" at {p}"));
        self.events
            .push(Event::normal(reason, format!("{} {verb}{at}", self.what())));
        self.requeue = None;
    }
}

/// What a failure needs to know besides the status.
pub(super) struct FailContext<'a> {
    pub what: &'a str,
    pub reason: EventReason,
    pub backoff_limit: i32,
    pub settings: &'a Settings,
    pub now_ms: i64,
}

/// Records a failed attempt in `status` (shared with `apply_snapshot_outcome`).
pub(super) fn fail(
    status: &mut FlinkStateSnapshotStatus,
    events: &mut Vec<Event>,
    requeue: &mut Option<Duration>,
    cx: FailContext<'_>,
    message: String,
) {
    let failures = status.failures.unwrap_or(0).saturating_add(1);
    status.failures = Some(failures);
    status.error = Some(message.clone());
    status.trigger_id = None;
    status.result_timestamp = Some(rfc3339(cx.now_ms));
    let what = cx.what;
    if cx.backoff_limit >= 0 && failures > cx.backoff_limit {
        status.state = Some(State::Failed);
        events.push(Event::warning(
            cx.reason,
            format!(
                "{what} failed after {failures} attempt(s), no retry left (backoffLimit {}): \
                 {message}",
                cx.backoff_limit
            ),
        ));
        *requeue = None;
    } else {
        status.state = Some(State::TriggerPending);
        let wait = retry_delay(cx.settings, failures);
        events.push(Event::warning(
            cx.reason,
            format!(
                "{what} attempt {failures} failed: {message}; retrying in {}s",
                wait.as_secs()
            ),
        ));
        *requeue = Some(wait);
    }
}

/// The wait before the next attempt after `failures` failed ones: `retry_interval ·
/// 2^(failures-1)`, as the Apache operator (10 s, 20 s, 40 s, …).
pub fn retry_delay(settings: &Settings, failures: i32) -> Duration {
    let exp = u32::try_from(failures.saturating_sub(1))
        .unwrap_or(0)
        .min(12);
    settings.retry_interval.saturating_mul(1u32 << exp)
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

/// `TRIGGER_PENDING`: validate, register an existing savepoint, wait out a backoff, abandon
/// when the job does not run, or record a trigger and send it.
fn pending(cx: &mut Cx<'_>) {
    let snapshot = cx.input.snapshot;
    if snapshot.metadata.deletion_timestamp.is_some() {
        // Nothing to take for a snapshot being deleted.
        return;
    }
    let problems = api::validate::snapshot(snapshot);
    if !problems.is_empty() {
        let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
        let message = format!("{INVALID}{}", list.join("; "));
        if cx.status.error.as_deref() != Some(message.as_str()) {
            cx.events.push(Event::warning(
                EventReason::ValidationError,
                message.clone(),
            ));
        }
        cx.status.error = Some(message);
        return;
    }
    if cx
        .status
        .error
        .as_deref()
        .is_some_and(|e| e.starts_with(INVALID))
    {
        cx.status.error = None;
    }
    if let Some(sp) = snapshot
        .spec
        .savepoint
        .as_ref()
        .filter(|s| s.already_exists())
    {
        let path = sp.path.clone().unwrap_or_default();
        match cx.input.observed.exists {
            Some(false) => cx.fail(format!(
                "no savepoint at {path} (no _metadata there); fix spec.savepoint.path"
            )),
            _ => cx.completed(Some(path), true),
        }
        return;
    }
    let failures = cx.status.failures.unwrap_or(0);
    if failures > 0 {
        let last = cx
            .status
            .result_timestamp
            .as_deref()
            .and_then(parse_rfc3339)
            .unwrap_or(0);
        let due = last.saturating_add(
            i64::try_from(retry_delay(cx.input.settings, failures).as_millis()).unwrap_or(0),
        );
        if cx.input.now_ms < due {
            let wait = u64::try_from(due - cx.input.now_ms).unwrap_or(0);
            cx.requeue = Some(Duration::from_millis(wait));
            return;
        }
    }
    let reference = snapshot.spec.job_reference.clone().unwrap_or_default();
    if reference.kind == Some(JobKind::FlinkSessionJob) && !cx.input.session_jobs {
        let message = format!(
            "{INVALID}snapshots of FlinkSessionJobs are not supported by this version of \
             flinkpilot (spec.jobReference.kind)"
        );
        if cx.status.error.as_deref() != Some(message.as_str()) {
            cx.events.push(Event::warning(
                EventReason::ValidationError,
                message.clone(),
            ));
        }
        cx.status.error = Some(message);
        return;
    }
    let job_id = match cx.running_job() {
        Ok(id) => id,
        Err(why) => return cx.abandon(why),
    };
    let Some(target) = cx.input.target else {
        return;
    };
    let trigger_id = cx.input.fresh_trigger_id.to_string();
    let action = match cx.kind {
        SnapshotKind::Savepoint => {
            let sp = snapshot.spec.savepoint.clone().unwrap_or_default();
            let target_key = crate::decide::resource_key(target);
            let running = crate::decide::target_spec(&target.status.clone().unwrap_or_default())
                .unwrap_or_else(|| target.spec.clone());
            let dir = sp
                .path
                .clone()
                .filter(|p| !p.trim().is_empty())
                .or_else(|| plan_builder::savepoint_dir(&target_key, &running, cx.input.settings));
            let Some(dir) = dir else {
                return cx.fail(format!(
                    "no directory to write the savepoint to: set spec.savepoint.path, or \
                     execution.checkpointing.savepoint-dir (state.savepoints.dir) in the \
                     flinkConfiguration of FlinkDeployment {target_key}"
                ));
            };
            SnapshotAction::TriggerSavepoint(SavepointCall {
                job_id: job_id.clone(),
                trigger_id: trigger_id.clone(),
                target_dir: Some(dir),
                format: match sp.format_type() {
                    SavepointFormatType::Native => SavepointFormat::Native,
                    _ => SavepointFormat::Canonical,
                },
                drain: false,
            })
        }
        SnapshotKind::Checkpoint => {
            let supported = plan_builder::flink_version(&target.spec)
                .map(|v| v.is_at_least(api::FlinkVersion::v1_17))
                .unwrap_or(true);
            if !supported {
                return cx.fail(
                    "manual checkpoints need Flink 1.17 or later; take a savepoint instead"
                        .to_string(),
                );
            }
            SnapshotAction::TriggerCheckpoint {
                job_id: job_id.clone(),
                trigger_id: trigger_id.clone(),
            }
        }
    };
    cx.status.state = Some(State::InProgress);
    cx.status.trigger_id = Some(trigger_id.clone());
    cx.status.trigger_timestamp = Some(rfc3339(cx.input.now_ms));
    cx.status.path = None;
    let attempt = match cx.status.failures.unwrap_or(0) {
        0 => String::new(),
        n => format!(" (attempt {})", n + 1),
    };
    cx.events.push(Event::normal(
        EventReason::SnapshotTriggered,
        format!(
            "{} triggered for job {job_id} of FlinkDeployment {}{attempt} (trigger {trigger_id})",
            cx.what(),
            target.name()
        ),
    ));
    cx.actions.push(action);
    cx.soon();
}

/// `IN_PROGRESS`: abandon when the job stopped running, else fold what Flink says.
fn in_progress(cx: &mut Cx<'_>) {
    let job_id = match cx.running_job() {
        Ok(id) => id,
        Err(why) => return cx.abandon(why),
    };
    match cx.input.observed.trigger.clone() {
        // The JobManager could not be asked this pass.
        None => cx.soon(),
        Some(TriggerState::InProgress) => cx.soon(),
        Some(TriggerState::Completed { location }) => {
            if location.is_none() && cx.kind == SnapshotKind::Savepoint {
                cx.fail("Flink reported the savepoint complete without a location".into());
            } else {
                cx.completed(location, false);
            }
        }
        Some(TriggerState::Failed { cause }) => cx.fail(cause),
        Some(TriggerState::Unknown) => {
            // Never sent (a crash after recording it) or forgotten by a restarted JobManager:
            // send the same trigger id again; Flink treats a known one as the same operation.
            let Some(trigger_id) = cx.status.trigger_id.clone() else {
                cx.status.state = Some(State::TriggerPending);
                return cx.soon();
            };
            let action = match cx.kind {
                SnapshotKind::Savepoint => {
                    let mut call = pending_call(cx, job_id.clone());
                    call.trigger_id = trigger_id;
                    SnapshotAction::TriggerSavepoint(call)
                }
                SnapshotKind::Checkpoint => {
                    SnapshotAction::TriggerCheckpoint { job_id, trigger_id }
                }
            };
            cx.actions.push(action);
            cx.soon();
        }
    }
}

/// The savepoint call of this snapshot (target dir as when it was triggered).
fn pending_call(cx: &Cx<'_>, job_id: String) -> SavepointCall {
    let sp = cx.input.snapshot.spec.savepoint.clone().unwrap_or_default();
    let dir = sp
        .path
        .clone()
        .filter(|p| !p.trim().is_empty())
        .or_else(|| {
            let target = cx.input.target?;
            let running = crate::decide::target_spec(&target.status.clone().unwrap_or_default())
                .unwrap_or_else(|| target.spec.clone());
            plan_builder::savepoint_dir(
                &crate::decide::resource_key(target),
                &running,
                cx.input.settings,
            )
        });
    SavepointCall {
        job_id,
        trigger_id: cx.input.fresh_trigger_id.to_string(),
        target_dir: dir,
        format: match sp.format_type() {
            SavepointFormatType::Native => SavepointFormat::Native,
            _ => SavepointFormat::Canonical,
        },
        drain: false,
    }
}
