//! The working state of one pass (`Cx`): status accessors, validation, the session cluster's
//! readiness, savepoint triggers and the write-ahead record of a submission.

use api::reconciled::ReconciliationMetadata;
use api::{
    FlinkSessionJobSpec, JobManagerDeploymentStatus, JobState, JobStatus, ReconciliationState,
    ReconciliationStatus, Savepoint, SavepointFormatType, SnapshotTriggerType, UpgradeMode,
};

use super::{BLOCKED, Cx, INVALID, SAVEPOINT_FAILED, WAITING, with_state};
use crate::action::{Event, EventReason, SavepointCall, SavepointFormat};
use crate::observation::{ClusterObservation, JobInfo, JobObservation, TriggerState};
use crate::plan_builder;
use crate::session_job::{SessionJobAction, SubmitPlan, next_job_id, session_job_key};
use crate::settings::Settings;

/// Folds what the JobManager reports about the recorded job into `jobStatus`.
pub(super) fn fold_job(cx: &mut Cx<'_>) {
    let Some(info) = cx.observed_job().cloned() else {
        return;
    };
    let js = cx.job_status();
    if js.state != Some(info.state) {
        cx.events.push(Event::normal(
            EventReason::JobStatusChanged,
            format!("Job {} is {}", info.id, info.state.as_str()),
        ));
    }
    let js = cx.job_status();
    js.state = Some(info.state);
    if !info.name.is_empty() {
        js.job_name = Some(info.name.clone());
    }
    if info.start_time_ms > 0 {
        js.start_time = Some(info.start_time_ms.to_string());
    }
    if info.update_time_ms > 0 {
        js.update_time = Some(info.update_time_ms.to_string());
    }
}

impl Cx<'_> {
    pub(super) fn recon(&mut self) -> &mut ReconciliationStatus {
        self.status
            .reconciliation_status
            .get_or_insert_with(ReconciliationStatus::default)
    }

    pub(super) fn job_status(&mut self) -> &mut JobStatus {
        self.status
            .job_status
            .get_or_insert_with(JobStatus::default)
    }

    pub(super) fn job_id(&self) -> Option<String> {
        self.status.job_status.as_ref()?.job_id.clone()
    }

    pub(super) fn restore_path(&self) -> Option<String> {
        self.status
            .job_status
            .as_ref()?
            .upgrade_savepoint_path
            .clone()
    }

    pub(super) fn trigger_id(&self) -> Option<String> {
        self.status
            .job_status
            .as_ref()?
            .savepoint_info
            .as_ref()?
            .trigger_id
            .clone()
    }

    /// The recorded job, as the JobManager reports it.
    pub(super) fn observed_job(&self) -> Option<&JobInfo> {
        match &self.obs.job {
            JobObservation::Found(info) if Some(&info.id) == self.job_id().as_ref() => Some(info),
            _ => None,
        }
    }

    /// The recorded job has ended or is not in the cluster (nor is the cluster).
    pub(super) fn job_ended(&self) -> bool {
        if let Some(info) = self.observed_job() {
            return info.state.is_terminal();
        }
        self.job_id().is_none()
            || self.obs.job == JobObservation::NotFound
            || matches!(self.obs.cluster, ClusterObservation::Absent)
    }

    pub(super) fn set_error(&mut self, reason: EventReason, message: String) {
        if self.status.error.as_deref() != Some(message.as_str()) {
            self.events.push(Event::warning(reason, message.clone()));
        }
        self.status.error = Some(message);
        self.error_raised = true;
        self.requeue = self.requeue.max(self.settings.retry_interval);
    }

    pub(super) fn clear_error_of(&mut self, prefixes: &[&str]) {
        let matches = self
            .status
            .error
            .as_deref()
            .is_some_and(|e| prefixes.iter().any(|p| e.starts_with(p)));
        if matches && !self.error_raised {
            self.status.error = None;
        }
    }

    pub(super) fn soon(&mut self) {
        self.requeue = self.settings.transition_interval;
    }

    pub(super) fn set_target(&mut self, spec: &FlinkSessionJobSpec, first: bool) -> bool {
        let generation = self.input.job.metadata.generation;
        let meta = ReconciliationMetadata::new(generation, first);
        match self.recon().set_last_reconciled(spec, &meta) {
            Ok(()) => {
                self.status.observed_generation = generation;
                true
            }
            Err(e) => {
                self.set_error(EventReason::Error, e.to_string());
                false
            }
        }
    }

    /// Validates the desired spec against its session cluster; records the problems.
    pub(super) fn validate(&mut self) -> bool {
        let mut problems: Vec<String> =
            api::validate::session_job(self.input.job, self.input.deployment)
                .iter()
                .map(ToString::to_string)
                .collect();
        if let Some(uri) = self.desired.job.as_ref().and_then(|j| j.jar_uri.as_deref())
            && let Err(e) = jar_path(uri, self.settings)
        {
            problems.push(e);
        }
        if problems.is_empty() {
            self.clear_error_of(&[INVALID]);
            return true;
        }
        let message = format!("{INVALID}{}", problems.join("; "));
        self.set_error(EventReason::ValidationError, message);
        self.requeue = self.settings.observe_interval;
        false
    }

    /// Whether the session cluster takes jobs; otherwise records why not.
    pub(super) fn cluster_ready(&mut self) -> bool {
        let name = self.desired.deployment_name.clone().unwrap_or_default();
        let why = match self.input.deployment {
            None => Some(format!(
                "FlinkDeployment {name} named by spec.deploymentName does not exist; the job is \
                 submitted once it does"
            )),
            Some(d) if d.metadata.deletion_timestamp.is_some() => {
                Some(format!("FlinkDeployment {name} is being deleted"))
            }
            Some(d) => {
                let status = d.status.as_ref();
                let jm = status.and_then(|s| s.job_manager_deployment_status);
                let upgrading = status
                    .and_then(|s| s.reconciliation_status.as_ref())
                    .is_some_and(|r| r.state() == ReconciliationState::Upgrading);
                let running = matches!(self.obs.cluster, ClusterObservation::Running { .. });
                (jm != Some(JobManagerDeploymentStatus::Ready) || upgrading || !running).then(|| {
                    format!(
                        "FlinkDeployment {name} is not ready (its JobManager is {}); the job is \
                         submitted once it is READY",
                        jm.map_or("not deployed", JobManagerDeploymentStatus::as_str)
                    )
                })
            }
        };
        match why {
            None => {
                self.clear_error_of(&[WAITING]);
                true
            }
            Some(why) => {
                let message = format!("{WAITING}{why}");
                if self.status.error.as_deref() != Some(message.as_str()) {
                    self.events
                        .push(Event::normal(EventReason::Submit, message.clone()));
                }
                self.status.error = Some(message);
                self.error_raised = true;
                self.requeue = self.settings.observe_interval;
                false
            }
        }
    }

    /// An operator option: the job's `flinkConfiguration`, else its session cluster's (the
    /// Apache operator's session job configuration is the cluster's with the job's on top),
    /// else the operator-wide default ([`Settings::default_config`]).
    pub(super) fn option(&self, key: &str) -> Option<String> {
        self.desired
            .flink_config()
            .get(key)
            .or_else(|| {
                self.input
                    .deployment
                    .and_then(|d| d.spec.flink_config().get(key))
            })
            .or_else(|| self.settings.default_config.get(key).cloned())
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    /// A boolean operator option ([`Cx::option`]); `default` when unset or unreadable.
    pub(super) fn flag(&self, key: &str, default: bool) -> bool {
        match self.option(key).as_deref() {
            Some(v) if v.eq_ignore_ascii_case("true") => true,
            Some(v) if v.eq_ignore_ascii_case("false") => false,
            _ => default,
        }
    }

    pub(super) fn savepoint_call(&self, job_id: String) -> SavepointCall {
        let config = self.desired.flink_config();
        let dir = config
            .get("execution.checkpointing.savepoint-dir")
            .or_else(|| config.get("state.savepoints.dir"))
            .map(|d| self.settings.paths.apply(&d));
        let native = config
            .get("kubernetes.operator.savepoint.format.type")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("NATIVE"));
        SavepointCall {
            job_id,
            trigger_id: self.input.fresh_trigger_id.to_string(),
            target_dir: dir,
            format: if native {
                SavepointFormat::Native
            } else {
                SavepointFormat::Canonical
            },
            drain: false,
        }
    }

    /// Records a savepoint trigger (write-ahead) and stops the job with it.
    pub(super) fn stop_with_savepoint(&mut self, job_id: String, trigger: SnapshotTriggerType) {
        let call = self.savepoint_call(job_id);
        let now = self.input.now_ms;
        let info = self
            .job_status()
            .savepoint_info
            .get_or_insert_with(Default::default);
        info.trigger_id = Some(call.trigger_id.clone());
        info.trigger_timestamp = Some(now);
        info.trigger_type = Some(trigger);
        info.format_type = Some(format_type(call.format));
        self.actions.push(SessionJobAction::StopWithSavepoint(call));
        self.soon();
    }

    /// Folds the recorded savepoint trigger: completed → path recorded; failed → error.
    /// Returns `true` while it is still in flight.
    pub(super) fn fold_trigger(&mut self) -> bool {
        let Some(trigger) = self.trigger_id() else {
            return false;
        };
        let seen = self
            .obs
            .trigger
            .as_ref()
            .filter(|t| t.trigger_id == trigger)
            .map(|t| t.state.clone());
        match seen {
            Some(TriggerState::Completed { location }) => {
                let now = self.input.now_ms;
                let info = self
                    .job_status()
                    .savepoint_info
                    .get_or_insert_with(Default::default);
                let savepoint = Savepoint {
                    time_stamp: Some(now),
                    location: location.clone(),
                    trigger_type: info.trigger_type,
                    format_type: info.format_type,
                    trigger_nonce: None,
                };
                info.trigger_id = None;
                info.trigger_timestamp = None;
                info.last_savepoint = Some(savepoint.clone());
                info.savepoint_history
                    .get_or_insert_with(Vec::new)
                    .push(savepoint);
                self.job_status().upgrade_savepoint_path = location.clone();
                self.clear_error_of(&[SAVEPOINT_FAILED, BLOCKED]);
                self.events.push(Event::normal(
                    EventReason::SavepointCreated,
                    format!("Savepoint completed at {}", location.unwrap_or_default()),
                ));
                false
            }
            Some(TriggerState::Failed { cause }) => {
                let info = self
                    .job_status()
                    .savepoint_info
                    .get_or_insert_with(Default::default);
                info.trigger_id = None;
                info.trigger_timestamp = None;
                self.set_error(
                    EventReason::SavepointError,
                    format!("{SAVEPOINT_FAILED}{cause}"),
                );
                false
            }
            Some(TriggerState::Unknown) if self.job_ended() => {
                // The JobManager forgot the trigger and the job is gone: nothing to wait for.
                let info = self
                    .job_status()
                    .savepoint_info
                    .get_or_insert_with(Default::default);
                info.trigger_id = None;
                info.trigger_timestamp = None;
                false
            }
            Some(TriggerState::Unknown) => {
                // Sent again under the same id: Flink treats it as the same operation.
                if let Some(id) = self.job_id() {
                    let mut call = self.savepoint_call(id);
                    call.trigger_id = trigger;
                    self.actions.push(SessionJobAction::StopWithSavepoint(call));
                }
                self.soon();
                true
            }
            Some(TriggerState::InProgress) | None => {
                self.soon();
                true
            }
        }
    }

    /// Records `spec` running as the target, a new job id and the restore path (write-ahead),
    /// then submits.
    pub(super) fn submit(
        &mut self,
        spec: &FlinkSessionJobSpec,
        restore: Option<String>,
        first: bool,
    ) {
        let generation = self.input.job.metadata.generation.unwrap_or(0);
        let uid = self
            .input
            .job
            .metadata
            .uid
            .clone()
            .unwrap_or_else(|| session_job_key(self.input.job).to_string());
        let job_id = next_job_id(&uid, generation, self.job_id().as_deref());
        let plan = match plan(spec, &job_id, restore.clone(), self.settings) {
            Ok(p) => p,
            Err(e) => {
                self.set_error(EventReason::ValidationError, format!("{INVALID}{e}"));
                return;
            }
        };
        if !self.set_target(&with_state(spec, JobState::Running, None), first) {
            return;
        }
        self.recon().state = Some(ReconciliationState::Upgrading);
        let js = self.job_status();
        if js.job_id.as_deref() != Some(job_id.as_str()) {
            js.job_id = Some(job_id.clone());
            js.state = None;
            js.start_time = None;
            js.update_time = None;
        }
        js.upgrade_savepoint_path = restore.clone();
        let from = restore.map_or_else(String::new, |p| format!(" from {p}"));
        let cluster = spec.deployment_name.clone().unwrap_or_default();
        self.events.push(Event::normal(
            EventReason::Submit,
            format!("Submitting job {job_id} to session cluster {cluster}{from}"),
        ));
        self.actions.push(SessionJobAction::Submit(Box::new(plan)));
        self.soon();
    }
}

pub(super) fn format_type(format: SavepointFormat) -> SavepointFormatType {
    match format {
        SavepointFormat::Native => SavepointFormatType::Native,
        _ => SavepointFormatType::Canonical,
    }
}

/// The local path of a `local://` or `file://` jar URI, after the path map; an `http(s)://`
/// URI as it is (the jar is downloaded before it is submitted).
pub fn jar_path(uri: &str, settings: &Settings) -> Result<String, String> {
    if crate::session_job::fetch::is_remote(uri) {
        return Ok(uri.to_string());
    }
    let mapped = settings.paths.apply(uri);
    let path = mapped
        .strip_prefix("local://")
        .or_else(|| mapped.strip_prefix("file://"))
        .or_else(|| mapped.strip_prefix("file:"))
        .filter(|p| p.starts_with('/'));
    path.map(str::to_string).ok_or_else(|| {
        let uri = crate::session_job::without_credentials(uri);
        format!(
            "spec.job.jarURI: `{uri}` cannot be submitted to a session cluster here; use a \
             local:// or file:// URI of an absolute path to the jar, or an http(s):// URI"
        )
    })
}

/// What `Submit` runs for `spec`.
pub(super) fn plan(
    spec: &FlinkSessionJobSpec,
    job_id: &str,
    restore: Option<String>,
    settings: &Settings,
) -> Result<SubmitPlan, String> {
    let job = spec.job.clone().unwrap_or_default();
    let uri = job.jar_uri.clone().unwrap_or_default();
    let mut config: std::collections::BTreeMap<String, String> = spec
        .flink_config()
        .flatten()
        .into_iter()
        .filter(|(k, _)| !k.starts_with("kubernetes.operator."))
        .map(|(k, v)| (k, settings.paths.apply(&v)))
        .collect();
    // A last-state upgrade restores from the checkpoint the cancel leaves behind.
    if job.upgrade_mode() == UpgradeMode::LastState {
        config.insert(
            plan_builder::RETENTION_KEY.into(),
            plan_builder::RETAIN_ON_CANCELLATION.into(),
        );
    }
    Ok(SubmitPlan {
        job_id: job_id.to_string(),
        jar_path: jar_path(&uri, settings)?,
        jar_uri: uri,
        entry_class: job.entry_class.clone(),
        args: job.args().to_vec(),
        parallelism: u32::try_from(job.parallelism()).ok().filter(|p| *p > 0),
        restore_path: restore.map(|p| settings.paths.apply(&p)),
        allow_non_restored_state: job.allow_non_restored_state(),
        config,
    })
}
