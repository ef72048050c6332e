//! Cluster plans for tests, built from a `FlinkDeployment` the way `docs/engine.md` says the
//! engine builds them. It stands in for the engine's plan builder (being written on another
//! branch) so the resources can be tested against the Apache examples today; switch the tests to
//! the engine's builder once it lands.

use api::units::parse_resource_memory;
use api::{FlinkDeployment, FlinkVersion};
use engine::{ClusterMode, ClusterPlan, JobPlan, ProcessPlan, ResourceKey, RestorePlan};
use flink::config::FlinkConfig;

/// `metadata.uid` given to fixtures that have none (manifests read from files).
pub const TEST_UID: &str = "00000000-0000-4000-8000-000000000001";
/// The job id every test plan uses.
pub const TEST_JOB_ID: &str = "cafebabe00000000cafebabe00000001";

/// `d` with the namespace (`default`) and uid a resource read from the API server would have.
pub fn as_stored(mut d: FlinkDeployment) -> FlinkDeployment {
    d.metadata.namespace.get_or_insert_with(|| "default".into());
    d.metadata.uid.get_or_insert_with(|| TEST_UID.into());
    d
}

/// The plan of a first deployment of `d` (restoring from `initialSavepointPath` if set).
pub fn plan_for(d: &FlinkDeployment) -> ClusterPlan {
    let d = as_stored(d.clone());
    let spec = d.spec.clone();
    let version = spec.flink_version.unwrap_or(FlinkVersion::v2_3);
    let mut config: FlinkConfig = spec.flink_config().flatten().into_iter().collect();
    let slots: u32 = config
        .get("taskmanager.numberOfTaskSlots")
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1);
    let memory = |r: Option<&api::Resource>| {
        r.and_then(|r| r.memory.as_deref())
            .and_then(|m| parse_resource_memory(m).ok())
            .map(|m| m.bytes())
    };
    let jm_resource = spec.job_manager.as_ref().and_then(|j| j.resource.as_ref());
    let tm_resource = spec.task_manager.as_ref().and_then(|t| t.resource.as_ref());
    let job = spec.job.as_ref().map(|job| {
        let restore = job.initial_savepoint_path.clone().map(|path| RestorePlan {
            path,
            allow_non_restored_state: job.allow_non_restored_state(),
        });
        JobPlan {
            jar_uri: job.jar_uri.clone().unwrap_or_default(),
            entry_class: job.entry_class.clone(),
            args: job.args().to_vec(),
            parallelism: u32::try_from(job.parallelism()).unwrap_or(0),
            job_id: TEST_JOB_ID.into(),
            restore,
        }
    });
    if version.is_at_least(FlinkVersion::v2_0) {
        // docs/engine.md: keys Flink 2 no longer reads are translated; an explicit new key wins
        for (old, new) in [
            ("state.checkpoints.dir", "execution.checkpointing.dir"),
            (
                "state.savepoints.dir",
                "execution.checkpointing.savepoint-dir",
            ),
        ] {
            if let Some(value) = config.remove(old)
                && config.get(new).is_none()
            {
                config.set(new, value);
            }
        }
    }
    if let Some(job) = &job {
        // what docs/engine.md says the engine adds to every application cluster
        config.set("execution.shutdown-on-application-finish", "false");
        config.set("$internal.pipeline.job-id", job.job_id.clone());
        if job.parallelism > 0 {
            config.set("parallelism.default", job.parallelism.to_string());
        }
        if let Some(restore) = &job.restore {
            let (path, ignore) = if version.is_at_least(FlinkVersion::v2_0) {
                (
                    "execution.state-recovery.path",
                    "execution.state-recovery.ignore-unclaimed-state",
                )
            } else {
                (
                    "execution.savepoint.path",
                    "execution.savepoint.ignore-unclaimed-state",
                )
            };
            config.set(path, restore.path.clone());
            config.set(ignore, restore.allow_non_restored_state.to_string());
        }
    }
    let tm_replicas = spec
        .task_manager_replicas()
        .and_then(|r| u32::try_from(r).ok())
        .unwrap_or_else(|| {
            let parallelism = job.as_ref().map_or(1, |j| j.parallelism.max(1));
            parallelism.div_ceil(slots.max(1))
        });
    ClusterPlan {
        key: ResourceKey::new(
            d.metadata.namespace.clone().unwrap_or_default(),
            d.metadata.name.clone().unwrap_or_default(),
        ),
        owner_uid: d.metadata.uid.clone(),
        flink_version: version,
        mode: if job.is_some() {
            ClusterMode::Application
        } else {
            ClusterMode::Session
        },
        config,
        job,
        jobmanager: ProcessPlan {
            replicas: u32::try_from(spec.job_manager_replicas()).unwrap_or(1),
            memory_bytes: memory(jm_resource),
            cpu: jm_resource.and_then(|r| r.cpu),
        },
        taskmanager: ProcessPlan {
            replicas: tm_replicas,
            memory_bytes: memory(tm_resource),
            cpu: tm_resource.and_then(|r| r.cpu),
        },
        task_slots: slots,
        log_configuration: spec.log_configuration.clone().unwrap_or_default(),
        spec,
        plan_hash: "test".into(),
    }
}

/// The JobManager template as it is before Flink's decoration (merged templates, resources and
/// the startup probe): what Flink's own deployer would read from
/// `kubernetes.pod-template-file.jobmanager`, for comparing with it.
pub fn jobmanager_template(
    plan: &ClusterPlan,
    settings: &super::ResourceSettings,
) -> serde_json::Value {
    use super::labels::Component;
    use super::merge::ArrayMerge;
    use super::pod_template::{add_startup_probe, component_template};
    let by_name = plan
        .config
        .get("kubernetes.operator.pod-template.merge-arrays-by-name")
        .map_or(settings.merge_arrays_by_name, |v| {
            v.trim().eq_ignore_ascii_case("true")
        });
    let arrays = if by_name {
        ArrayMerge::ByName
    } else {
        ArrayMerge::ByPosition
    };
    let mut template = component_template(&plan.spec, Component::JobManager, arrays)
        .unwrap_or_else(|| serde_json::json!({}));
    if settings.jobmanager_startup_probe {
        add_startup_probe(&mut template);
    }
    template
}
