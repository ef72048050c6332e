//! Spec + status → [`ClusterPlan`]: the user's Flink configuration plus what the engine needs
//! from every cluster (a fixed job id, the restore path, checkpoints kept on cancellation, a
//! JobManager that outlives its job), with Flink-version differences applied. Pure.

pub mod quirks;

use std::collections::BTreeMap;

use api::units::parse_resource_memory;
use api::{FlinkDeploymentSpec, FlinkVersion, UpgradeMode};
use flink::config::FlinkConfig;
use serde_json::{Value, json};

use crate::backend::ResourceKey;
use crate::plan::{ClusterMode, ClusterPlan, JobPlan, ProcessPlan, RestorePlan};
use crate::settings::Settings;

/// Flink's option for the job id of an application (internal, but stable since 1.11).
pub const JOB_ID_KEY: &str = "$internal.pipeline.job-id";
/// Keeps the JobManager up after its application ends, so its final state and savepoint path
/// can still be read.
pub const SHUTDOWN_ON_FINISH_KEY: &str = "execution.shutdown-on-application-finish";
/// What happens to retained checkpoints when a job is cancelled (same key on 1.x and 2.x).
pub const RETENTION_KEY: &str = "execution.checkpointing.externalized-checkpoint-retention";
/// The value that keeps the latest checkpoint when the job is cancelled.
pub const RETAIN_ON_CANCELLATION: &str = "RETAIN_ON_CANCELLATION";
/// Task slots per TaskManager.
pub const SLOTS_KEY: &str = "taskmanager.numberOfTaskSlots";

/// A spec that cannot be turned into a cluster. Validation catches these first; this is the
/// engine's own guard.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct PlanError {
    /// The spec field at fault.
    pub field: String,
    /// What is wrong and what to do.
    pub message: String,
}

fn plan_error(field: &str, message: impl Into<String>) -> PlanError {
    PlanError {
        field: field.to_string(),
        message: message.into(),
    }
}

/// The Flink version of a spec (validation makes it required).
pub fn flink_version(spec: &FlinkDeploymentSpec) -> Result<FlinkVersion, PlanError> {
    spec.flink_version.ok_or_else(|| {
        plan_error(
            "spec.flinkVersion",
            "the Flink version is required; set it, e.g. `v2_3`",
        )
    })
}

/// The configuration a cluster of `spec` runs with, before the job-specific additions: the
/// user's settings flattened, paths mapped, default state directories filled in, and keys that
/// this Flink version no longer reads translated.
pub fn effective_config(
    key: &ResourceKey,
    spec: &FlinkDeploymentSpec,
    settings: &Settings,
) -> Result<BTreeMap<String, String>, PlanError> {
    let version = flink_version(spec)?;
    let mut config: BTreeMap<String, String> = spec
        .flink_config()
        .flatten()
        .into_iter()
        .map(|(k, v)| {
            let v = settings.paths.apply(&v);
            (k, v)
        })
        .collect();
    for (k, v) in &settings.default_config {
        config.entry(k.clone()).or_insert_with(|| v.clone());
    }
    if let Some(base) = &settings.default_state_dir {
        let base = base.trim_end_matches('/');
        let own = format!("{base}/{}/{}", key.namespace, key.name);
        let all_checkpoint_keys = ["execution.checkpointing.dir", "state.checkpoints.dir"];
        let all_savepoint_keys = [
            "execution.checkpointing.savepoint-dir",
            "state.savepoints.dir",
        ];
        if quirks::first_set(&config, &all_checkpoint_keys).is_none() {
            let key = quirks::checkpoint_dir_keys(version)[0];
            config.insert(key.to_string(), format!("{own}/checkpoints"));
        }
        if quirks::first_set(&config, &all_savepoint_keys).is_none() {
            let key = quirks::savepoint_dir_keys(version)[0];
            config.insert(key.to_string(), format!("{own}/savepoints"));
        }
    }
    quirks::translate_deprecated(version, &mut config);
    Ok(config)
}

/// The checkpoint directory of a cluster of `spec`, if one is configured.
pub fn checkpoint_dir(
    key: &ResourceKey,
    spec: &FlinkDeploymentSpec,
    settings: &Settings,
) -> Option<String> {
    let version = flink_version(spec).ok()?;
    let config = effective_config(key, spec, settings).ok()?;
    quirks::first_set(&config, quirks::checkpoint_dir_keys(version)).map(str::to_string)
}

/// The default savepoint directory of a cluster of `spec`, if one is configured.
pub fn savepoint_dir(
    key: &ResourceKey,
    spec: &FlinkDeploymentSpec,
    settings: &Settings,
) -> Option<String> {
    let version = flink_version(spec).ok()?;
    let config = effective_config(key, spec, settings).ok()?;
    quirks::first_set(&config, quirks::savepoint_dir_keys(version)).map(str::to_string)
}

/// Whether a cluster of `spec` keeps its latest checkpoint when the job is cancelled — what a
/// last-state upgrade without HA restores from. The engine renders `RETAIN_ON_CANCELLATION`
/// unless the user chose otherwise, and always for `last-state`.
pub fn retains_checkpoints_on_cancel(spec: &FlinkDeploymentSpec) -> bool {
    let last_state = spec
        .job
        .as_ref()
        .is_some_and(|j| j.upgrade_mode() == UpgradeMode::LastState);
    last_state
        || spec
            .flink_config()
            .get(RETENTION_KEY)
            .is_none_or(|v| v.trim().eq_ignore_ascii_case(RETAIN_ON_CANCELLATION))
}

/// The number of TaskManagers for `spec`: `taskManager.replicas` when set, else enough slots
/// for the job's parallelism (at least one).
pub fn taskmanager_count(spec: &FlinkDeploymentSpec) -> u32 {
    if let Some(n) = spec.task_manager_replicas() {
        return u32::try_from(n.max(0)).unwrap_or(0);
    }
    let slots = task_slots(spec);
    let parallelism = spec
        .job
        .as_ref()
        .map(|j| u32::try_from(j.parallelism().max(1)).unwrap_or(1))
        .unwrap_or(1);
    parallelism.div_ceil(slots).max(1)
}

fn task_slots(spec: &FlinkDeploymentSpec) -> u32 {
    spec.flink_config()
        .get_i64(SLOTS_KEY)
        .ok()
        .flatten()
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| *n > 0)
        .unwrap_or(1)
}

/// Memory of a process: `resource.memory`, else the memory limit (or request) of `resources`.
fn process_memory(
    field: &str,
    resource: Option<&api::Resource>,
    resources: Option<Value>,
) -> Result<Option<u64>, PlanError> {
    let text = resource.and_then(|r| r.memory.clone()).or_else(|| {
        let r = resources?;
        ["limits", "requests"]
            .iter()
            .find_map(|k| r.get(*k)?.get("memory")?.as_str().map(str::to_string))
    });
    match text {
        None => Ok(None),
        Some(t) => parse_resource_memory(&t)
            .map(|m| Some(m.bytes()))
            .map_err(|e| plan_error(field, e.to_string())),
    }
}

fn process_cpu(resource: Option<&api::Resource>) -> Option<f64> {
    resource.and_then(|r| r.cpu)
}

/// What to build a cluster from.
#[derive(Clone, Copy, Debug)]
pub struct PlanInput<'a> {
    /// The resource.
    pub key: &'a ResourceKey,
    /// `metadata.uid`, if any.
    pub owner_uid: Option<&'a str>,
    /// The spec to run (the recorded target, with `job.state: running`).
    pub spec: &'a FlinkDeploymentSpec,
    /// The job id recorded in the status for this deployment.
    pub job_id: &'a str,
    /// The state to start from, as recorded in the status; `None` for a fresh start.
    pub restore: Option<&'a str>,
}

/// Builds the plan of a cluster.
pub fn build(input: PlanInput<'_>, settings: &Settings) -> Result<ClusterPlan, PlanError> {
    let spec = input.spec;
    let version = flink_version(spec)?;
    let mut config = effective_config(input.key, spec, settings)?;

    let jm = spec.job_manager.clone().unwrap_or_default();
    let tm = spec.task_manager.clone().unwrap_or_default();
    let to_json = |r: &Option<_>| r.as_ref().and_then(|r| serde_json::to_value(r).ok());
    let jm_memory = process_memory(
        "spec.jobManager.resource.memory",
        jm.resource.as_ref(),
        to_json(&jm.resources),
    )?;
    let tm_memory = process_memory(
        "spec.taskManager.resource.memory",
        tm.resource.as_ref(),
        to_json(&tm.resources),
    )?;
    // Like the Apache operator, the spec's resources win over the same keys in the config.
    if let Some(bytes) = jm_memory {
        config.insert(
            "jobmanager.memory.process.size".into(),
            api::units::MemorySize::from_bytes(bytes).to_string(),
        );
    }
    if let Some(bytes) = tm_memory {
        config.insert(
            "taskmanager.memory.process.size".into(),
            api::units::MemorySize::from_bytes(bytes).to_string(),
        );
    }
    let slots = task_slots(spec);
    config.insert(SLOTS_KEY.into(), slots.to_string());

    let job = match &spec.job {
        None => None,
        Some(job) => {
            let jar = job.jar_uri.as_deref().ok_or_else(|| {
                plan_error("spec.job.jarURI", "an application needs the URI of its jar")
            })?;
            let parallelism = u32::try_from(job.parallelism()).unwrap_or(0);
            if parallelism > 0 {
                config.insert("parallelism.default".into(), parallelism.to_string());
            }
            config.insert(JOB_ID_KEY.into(), input.job_id.to_string());
            config.insert(SHUTDOWN_ON_FINISH_KEY.into(), "false".into());
            if retains_checkpoints_on_cancel(spec) {
                config.insert(RETENTION_KEY.into(), RETAIN_ON_CANCELLATION.into());
            }
            let (path_key, ignore_key) = quirks::restore_keys(version);
            // Any restore setting the user wrote is the engine's to decide: the status says
            // where the state is.
            for (old, new) in [
                ("execution.savepoint.path", "execution.state-recovery.path"),
                (
                    "execution.savepoint.ignore-unclaimed-state",
                    "execution.state-recovery.ignore-unclaimed-state",
                ),
            ] {
                config.remove(old);
                config.remove(new);
            }
            let restore = input.restore.map(|path| RestorePlan {
                path: settings.paths.apply(path),
                allow_non_restored_state: job.allow_non_restored_state(),
            });
            if let Some(r) = &restore {
                config.insert(path_key.into(), r.path.clone());
                config.insert(ignore_key.into(), r.allow_non_restored_state.to_string());
            }
            Some(JobPlan {
                jar_uri: settings.paths.apply(jar),
                entry_class: job.entry_class.clone(),
                args: job.args().to_vec(),
                parallelism,
                job_id: input.job_id.to_string(),
                restore,
            })
        }
    };
    let mode = if job.is_some() {
        ClusterMode::Application
    } else {
        ClusterMode::Session
    };

    let jobmanager = ProcessPlan {
        replicas: u32::try_from(spec.job_manager_replicas().max(1)).unwrap_or(1),
        memory_bytes: jm_memory,
        cpu: process_cpu(jm.resource.as_ref()),
    };
    let taskmanager = ProcessPlan {
        replicas: taskmanager_count(spec),
        memory_bytes: tm_memory,
        cpu: process_cpu(tm.resource.as_ref()),
    };
    let log_configuration = spec.log_configuration.clone().unwrap_or_default();
    let flink_config: FlinkConfig = config.iter().map(|(k, v)| (k.clone(), v.clone())).collect();

    let fingerprint = json!({
        "version": version.as_str(),
        "mode": format!("{mode:?}"),
        "config": config,
        "job": job.as_ref().map(|j| json!({
            "jar": j.jar_uri, "entry": j.entry_class, "args": j.args,
            "parallelism": j.parallelism, "jobId": j.job_id,
            "restore": j.restore.as_ref().map(|r| (r.path.clone(), r.allow_non_restored_state)),
        })),
        "jm": [jobmanager.replicas, jobmanager.memory_bytes.unwrap_or(0)],
        "jmCpu": jobmanager.cpu,
        "tm": [taskmanager.replicas, taskmanager.memory_bytes.unwrap_or(0)],
        "tmCpu": taskmanager.cpu,
        "slots": slots,
        "logs": log_configuration,
        "spec": serde_json::to_value(spec).unwrap_or(Value::Null),
    });
    let plan_hash = format!("{:016x}", fnv1a(fingerprint.to_string().as_bytes()));

    Ok(ClusterPlan {
        key: input.key.clone(),
        owner_uid: input.owner_uid.map(str::to_string),
        flink_version: version,
        mode,
        config: flink_config,
        job,
        jobmanager,
        taskmanager,
        task_slots: slots,
        log_configuration,
        spec: spec.clone(),
        plan_hash,
    })
}

/// FNV-1a, 64 bit: a hash that is the same in every build and on every machine, so a plan hash
/// written by one flinkpilot version is understood by the next.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests;
