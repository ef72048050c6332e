//! A small simulated Flink for the property tests: clusters that start, jobs that count and
//! checkpoint (older checkpoints subsumed and deleted, as with one retained checkpoint),
//! savepoint triggers that take a while or fail, a REST API that may not answer.

use std::collections::BTreeMap;

use api::{FlinkJobState, UpgradeMode};

use super::super::*;
use crate::action::{Action, Outcome};
use crate::plan::ClusterPlan;

#[derive(Clone, Debug)]
pub(super) enum Trigger {
    InProgress { stop: bool, ticks: u8 },
    Done(String),
    Failed,
}

#[derive(Clone, Debug)]
pub(super) struct SimJob {
    id: String,
    pub(super) state: FlinkJobState,
    value: u64,
    checkpoints: Vec<(u64, String)>,
    stop_savepoint: Option<String>,
}

#[derive(Clone, Debug)]
pub(super) struct Cluster {
    plan_hash: String,
    starting: u8,
    pub(super) jm_failed: bool,
    pub(super) job: SimJob,
    triggers: BTreeMap<String, Trigger>,
}

/// What was used to stop the previous job, for checking the restore that follows.
#[derive(Clone, Debug)]
pub(super) enum Stop {
    Savepoint(String),
    LastState {
        job: SimJob,
    },
    /// A recovery (or rollback) of a running target: restores the job's newest state.
    Recovery {
        job: SimJob,
    },
    Stateless,
}

#[derive(Default)]
pub(super) struct World {
    pub(super) cluster: Option<Cluster>,
    /// Snapshot files on storage: path → counter value they hold.
    pub(super) files: BTreeMap<String, u64>,
    pub(super) seq: u64,
    pub(super) fail_next_savepoint: bool,
    pub(super) rest_silent: bool,
    pub(super) last_stop: Option<Stop>,
    pub(super) deleted: bool,
}

impl World {
    fn next(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Time passes: jobs count and checkpoint (the older checkpoint is subsumed and deleted,
    /// as with one retained checkpoint), triggers progress.
    pub(super) fn tick(&mut self) {
        let seq = self.next();
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        if c.starting > 0 {
            c.starting -= 1;
            return;
        }
        if c.jm_failed {
            return;
        }
        if c.job.state == FlinkJobState::Cancelling {
            c.job.state = FlinkJobState::Canceled;
        }
        if c.job.state == FlinkJobState::Running {
            c.job.value += 1;
            if seq.is_multiple_of(2) {
                let id = c.job.checkpoints.last().map_or(1, |(id, _)| id + 1);
                let path = format!("file:/fp/checkpoints/{}/chk-{id}", c.job.id);
                if let Some((_, old)) = c.job.checkpoints.last() {
                    self.files.remove(old);
                }
                self.files.insert(path.clone(), c.job.value);
                c.job.checkpoints.push((id, path));
            }
        }
        let ids: Vec<String> = c.triggers.keys().cloned().collect();
        for id in ids {
            let Some(Trigger::InProgress { stop, ticks }) = c.triggers.get(&id).cloned() else {
                continue;
            };
            if ticks > 0 {
                c.triggers.insert(
                    id,
                    Trigger::InProgress {
                        stop,
                        ticks: ticks - 1,
                    },
                );
                continue;
            }
            if self.fail_next_savepoint || c.job.state != FlinkJobState::Running {
                self.fail_next_savepoint = false;
                c.triggers.insert(id, Trigger::Failed);
                continue;
            }
            let path = format!("file:/fp/savepoints/sp-{seq}-{id}");
            self.files.insert(path.clone(), c.job.value);
            if stop {
                c.job.state = FlinkJobState::Finished;
                c.job.stop_savepoint = Some(path.clone());
            }
            c.triggers.insert(id, Trigger::Done(path));
        }
    }

    pub(super) fn observe(&self, needs: &ObserveNeeds) -> Observation {
        let mut obs = absent();
        // The simulated storage can always be listed.
        obs.progress.checkpoint_lookup_complete = true;
        let Some(c) = &self.cluster else {
            obs.latest_checkpoint = self.storage_checkpoint(needs);
            return obs;
        };
        if c.jm_failed {
            obs.cluster = ClusterObservation::Failed {
                plan_hash: Some(c.plan_hash.clone()),
                reason: "killed".into(),
                log_tail: None,
            };
            obs.latest_checkpoint = self.storage_checkpoint(needs);
            return obs;
        }
        if c.starting > 0 {
            obs.cluster = ClusterObservation::Starting {
                plan_hash: Some(c.plan_hash.clone()),
            };
            return obs;
        }
        obs.cluster = ClusterObservation::Running {
            plan_hash: Some(c.plan_hash.clone()),
            taskmanagers: 1,
        };
        if self.rest_silent {
            return obs;
        }
        obs.job = if needs.job_id.as_deref() == Some(c.job.id.as_str()) {
            job(&c.job.id, c.job.state)
        } else {
            JobObservation::NotFound
        };
        obs.trigger = needs.trigger_id.as_ref().map(|id| TriggerObservation {
            trigger_id: id.clone(),
            state: match c.triggers.get(id) {
                Some(Trigger::InProgress { .. }) => TriggerState::InProgress,
                Some(Trigger::Done(path)) => TriggerState::Completed {
                    location: Some(path.clone()),
                },
                Some(Trigger::Failed) => TriggerState::Failed {
                    cause: "simulated".into(),
                },
                None => TriggerState::Unknown,
            },
        });
        let wanted = needs.latest_checkpoint
            || (needs.recovery_state && c.job.state != FlinkJobState::Running);
        if wanted && needs.job_id.as_deref() == Some(c.job.id.as_str()) {
            obs.latest_checkpoint = c.job.checkpoints.last().map(|(id, path)| CheckpointRef {
                id: *id,
                path: path.clone(),
                timestamp_ms: 0,
                on_storage: Some(self.files.contains_key(path)),
            });
        }
        obs
    }

    /// The newest `chk-N` of the job under the checkpoint dir, as the backend would find it.
    fn storage_checkpoint(&self, needs: &ObserveNeeds) -> Option<CheckpointRef> {
        if !needs.latest_checkpoint && !needs.recovery_state {
            return None;
        }
        let job_id = needs.job_id.as_ref()?;
        let prefix = format!("file:/fp/checkpoints/{job_id}/chk-");
        self.files
            .keys()
            .filter_map(|p| Some((p.strip_prefix(&prefix)?.parse::<u64>().ok()?, p.clone())))
            .max()
            .map(|(id, path)| CheckpointRef {
                id,
                path,
                timestamp_ms: 0,
                on_storage: Some(true),
            })
    }

    /// The controller persisted `status`. A deploy recorded in stateless mode with no state to
    /// restore (a stateless resume or upgrade) drops the previous stop's state on purpose, and
    /// durably: a deploy that follows owes it nothing, even if the spec has since turned
    /// stateful again (the state is no longer recorded anywhere).
    pub(super) fn persisted(&mut self, status: &api::FlinkDeploymentStatus) {
        let upgrading = status
            .reconciliation_status
            .as_ref()
            .is_some_and(|r| r.state() == api::ReconciliationState::Upgrading);
        let stateless_deploy = target_spec(status).is_some_and(|t| {
            !super::super::is_suspended(&t)
                && super::super::upgrade_mode(&t) == UpgradeMode::Stateless
        });
        let restore = status
            .job_status
            .as_ref()
            .and_then(|j| j.upgrade_savepoint_path.as_ref());
        if upgrading && stateless_deploy && restore.is_none() {
            self.last_stop = Some(Stop::Stateless);
        }
    }

    pub(super) fn execute(
        &mut self,
        action: &Action,
        status: &api::FlinkDeploymentStatus,
    ) -> Outcome {
        let target = target_spec(status);
        let mode = target.as_ref().map(super::super::upgrade_mode);
        // A running target being redeployed: a recovery or rollback, not a stop.
        let recovering = target
            .as_ref()
            .is_some_and(|t| !super::super::is_suspended(t));
        let path = status
            .job_status
            .as_ref()
            .and_then(|j| j.upgrade_savepoint_path.clone());
        match action {
            Action::Deploy(plan) => self.deploy(plan, status),
            Action::DeleteCluster => {
                if let Some(c) = self.cluster.take() {
                    if recovering && mode != Some(UpgradeMode::Stateless) {
                        self.last_stop = Some(Stop::Recovery { job: c.job });
                    } else {
                        self.record_stop(mode, &c.job, path);
                    }
                }
                Outcome::Done
            }
            Action::StopWithSavepoint(call) | Action::TriggerSavepoint(call) => {
                let stop = matches!(action, Action::StopWithSavepoint(_));
                match self.cluster.as_mut() {
                    Some(c) if !c.jm_failed && c.starting == 0 => {
                        if c.job.id == call.job_id && c.job.state == FlinkJobState::Running {
                            c.triggers
                                .entry(call.trigger_id.clone())
                                .or_insert(Trigger::InProgress { stop, ticks: 1 });
                            Outcome::Done
                        } else {
                            Outcome::Failed {
                                message: "job not running".into(),
                                transient: false,
                            }
                        }
                    }
                    _ => Outcome::Failed {
                        message: "unreachable".into(),
                        transient: true,
                    },
                }
            }
            Action::CancelJob { job_id } => {
                let Some(c) = self.cluster.as_mut() else {
                    return Outcome::Failed {
                        message: "unreachable".into(),
                        transient: true,
                    };
                };
                if c.job.id == *job_id && !c.job.state.is_terminal() {
                    c.job.state = FlinkJobState::Cancelling;
                    let job = c.job.clone();
                    self.record_stop(mode, &job, path);
                }
                Outcome::Done
            }
            Action::FinishDeletion => {
                self.deleted = true;
                Outcome::Done
            }
            Action::Scale { .. } => Outcome::Done,
            // snapshot bookkeeping is not modelled here (see `snapshot::tests`)
            Action::TriggerCheckpoint { .. }
            | Action::DisposeSnapshot { .. }
            | Action::CreateSnapshotResource(_)
            | Action::DeleteSnapshotResource { .. } => Outcome::Done,
        }
    }

    /// Remembers how the job that is being ended keeps its state, by the mode recorded in the
    /// status at that moment; a savepoint-mode stop must have recorded the stop's savepoint.
    fn record_stop(&mut self, mode: Option<UpgradeMode>, job: &SimJob, path: Option<String>) {
        self.last_stop = match mode {
            Some(UpgradeMode::LastState) => Some(Stop::LastState { job: job.clone() }),
            Some(UpgradeMode::Stateless) => Some(Stop::Stateless),
            // A savepoint stop that fell back to last-state (the job could not take one).
            Some(UpgradeMode::Savepoint)
                if path.as_deref().is_some_and(|p| p.contains("/chk-")) =>
            {
                Some(Stop::LastState { job: job.clone() })
            }
            Some(UpgradeMode::Savepoint) => {
                assert_eq!(
                    path, job.stop_savepoint,
                    "a savepoint-mode stop records the stop's own savepoint"
                );
                path.map(Stop::Savepoint)
            }
            None => None,
        };
    }

    fn deploy(&mut self, plan: &ClusterPlan, status: &api::FlinkDeploymentStatus) -> Outcome {
        if let Some(c) = &self.cluster {
            assert_eq!(
                c.plan_hash, plan.plan_hash,
                "deploy over a running cluster with another plan (duplicate cluster)"
            );
            return Outcome::Done;
        }
        let job_plan = plan.job.clone().expect("application plan");
        let recorded = status
            .job_status
            .as_ref()
            .and_then(|j| j.upgrade_savepoint_path.clone());
        let restore = job_plan.restore.as_ref().map(|r| r.path.clone());
        assert_eq!(
            restore, recorded,
            "deploy must restore from exactly the recorded path"
        );
        assert_eq!(
            Some(job_plan.job_id.clone()),
            status.job_status.as_ref().and_then(|j| j.job_id.clone()),
            "the deployed job id is recorded first"
        );
        let value = match &restore {
            None => 0,
            Some(path) => match self.files.get(path) {
                Some(v) => *v,
                // initialSavepointPath written by the user: not ours to check
                None if path.starts_with("file:///user/") => 1000,
                None => panic!("restore from {path}, which does not exist"),
            },
        };
        // A job resumed or upgraded into stateless mode starts empty by definition.
        let deployed_mode = target_spec(status).map(|t| super::super::upgrade_mode(&t));
        let last_stop = self.last_stop.take();
        let stateful = deployed_mode != Some(UpgradeMode::Stateless);
        match last_stop.filter(|_| stateful) {
            Some(Stop::Savepoint(path)) => assert_eq!(
                restore.as_deref(),
                Some(path.as_str()),
                "after a savepoint stop, the stop's savepoint is restored"
            ),
            Some(Stop::LastState { job }) => {
                let newest = self
                    .files
                    .iter()
                    .filter(|(p, _)| p.contains(&format!("/{}/chk-", job.id)))
                    .map(|(p, v)| (*v, p.clone()))
                    .max();
                if let Some((_, newest)) = newest {
                    assert_eq!(
                        restore.as_deref(),
                        Some(newest.as_str()),
                        "after a last-state stop, the newest checkpoint is restored"
                    );
                }
            }
            Some(Stop::Recovery { job }) => {
                let newest = self
                    .files
                    .iter()
                    .filter(|(p, _)| p.contains(&format!("/{}/chk-", job.id)))
                    .map(|(_, v)| *v)
                    .max();
                if let Some(newest) = newest {
                    assert!(
                        value >= newest,
                        "a recovery restores at least the newest checkpoint ({newest}), not \
                         {restore:?} ({value})"
                    );
                }
            }
            _ => {}
        }
        self.cluster = Some(Cluster {
            plan_hash: plan.plan_hash.clone(),
            starting: 1,
            jm_failed: false,
            job: SimJob {
                id: job_plan.job_id,
                state: FlinkJobState::Running,
                value,
                checkpoints: Vec::new(),
                stop_savepoint: None,
            },
            triggers: BTreeMap::new(),
        });
        Outcome::Done
    }
}
