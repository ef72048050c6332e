//! Test support, compiled only with the `test-fixtures` feature: builders for resources in a
//! known state (`FlinkDeployment::test("name").with_job(…).suspended()`) and the location of the
//! Apache operator's compatibility corpus.

use std::path::PathBuf;

/// Environment variable that overrides where the Apache operator's CRDs and examples are.
pub const COMPAT_DIR_ENV: &str = "FLINKPILOT_COMPAT_DIR";

/// The Apache operator's compatibility corpus (`crds/`, `examples/`): `$FLINKPILOT_COMPAT_DIR`,
/// else `<workspace root>/../shared/compat/apache-operator`, else the same relative path from a
/// further ancestor of the workspace (so git worktrees nested one level deeper also find it),
/// else `/work/shared/compat/apache-operator` (a checkout elsewhere on the same machine).
///
/// # Panics
/// When the directory does not exist: tests that need it must fail loudly, never skip.
pub fn compat_dir() -> PathBuf {
    let dir = match std::env::var_os(COMPAT_DIR_ENV) {
        Some(dir) => PathBuf::from(dir),
        None => {
            let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
            let relative = "shared/compat/apache-operator";
            workspace
                .ancestors()
                .skip(1)
                .map(|a| a.join(relative))
                .find(|d| d.is_dir())
                .or_else(|| {
                    // Where this workplace keeps it, for checkouts outside its tree (`/tmp/x`).
                    let fixed = PathBuf::from("/work").join(relative);
                    fixed.is_dir().then_some(fixed)
                })
                .unwrap_or_else(|| workspace.join("..").join(relative))
        }
    };
    assert!(
        dir.join("crds").is_dir() && dir.join("examples").is_dir(),
        "the Apache operator's compatibility corpus was not found at {} (expected crds/ and \
         examples/ in it); set {COMPAT_DIR_ENV} to its location",
        dir.display()
    );
    dir
}

use crate::reconciled::ReconciliationMetadata;
use crate::{
    DeploymentMode, FlinkConfiguration, FlinkDeployment, FlinkDeploymentSpec,
    FlinkDeploymentStatus, FlinkSessionJob, FlinkSessionJobSpec, FlinkStateSnapshot,
    FlinkStateSnapshotSpec, FlinkVersion, JobKind, JobManagerSpec, JobReference, JobSpec, JobState,
    ReconciliationState, ReconciliationStatus, Resource, SavepointSpec, TaskManagerSpec,
    UpgradeMode,
};

/// Namespace of every fixture unless changed with `in_namespace`.
pub const TEST_NAMESPACE: &str = "default";

/// Flink version of every fixture unless changed with `with_version`.
pub const TEST_FLINK_VERSION: FlinkVersion = FlinkVersion::v2_3;

fn test_meta(name: &str) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
    k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(TEST_NAMESPACE.to_string()),
        generation: Some(1),
        ..Default::default()
    }
}

fn set_config(config: &mut Option<FlinkConfiguration>, key: &str, value: &str) {
    config
        .get_or_insert_with(FlinkConfiguration::default)
        .set(key, value);
}

impl JobSpec {
    /// A valid stateless job running `jar` (e.g. `local:///opt/flink/usrlib/counter.jar`) with
    /// parallelism 1.
    pub fn test(jar: &str) -> Self {
        Self {
            jar_uri: Some(jar.to_string()),
            parallelism: Some(1),
            upgrade_mode: Some(UpgradeMode::Stateless),
            ..Default::default()
        }
    }
}

impl FlinkDeployment {
    /// A valid session cluster: Flink 2.3, small JobManager and TaskManager, two slots.
    pub fn test(name: &str) -> Self {
        let resource = |memory: &str| Resource {
            cpu: Some(1.0),
            memory: Some(memory.to_string()),
            ephemeral_storage: None,
        };
        Self {
            metadata: test_meta(name),
            spec: FlinkDeploymentSpec {
                image: Some("flink:2.3".into()),
                flink_version: Some(TEST_FLINK_VERSION),
                service_account: Some("flink".into()),
                flink_configuration: Some(FlinkConfiguration::from_flat([(
                    "taskmanager.numberOfTaskSlots",
                    "2",
                )])),
                job_manager: Some(JobManagerSpec {
                    resource: Some(resource("1024m")),
                    ..Default::default()
                }),
                task_manager: Some(TaskManagerSpec {
                    resource: Some(resource("1024m")),
                    ..Default::default()
                }),
                ..Default::default()
            },
            status: None,
        }
    }

    /// Makes it an application cluster running `job`.
    pub fn with_job(mut self, job: JobSpec) -> Self {
        self.spec.job = Some(job);
        self
    }

    /// Makes it an application cluster running the counter test job.
    pub fn application(self) -> Self {
        self.with_job(JobSpec::test("local:///opt/flink/usrlib/counter.jar"))
    }

    fn job_mut(&mut self) -> &mut JobSpec {
        self.spec
            .job
            .get_or_insert_with(|| JobSpec::test("local:///opt/flink/usrlib/counter.jar"))
    }

    /// Sets the job's desired state to `suspended` (adding the test job if there is none).
    pub fn suspended(mut self) -> Self {
        self.job_mut().state = Some(JobState::Suspended);
        self
    }

    /// Sets the job's upgrade mode (adding the test job if there is none).
    pub fn with_upgrade_mode(mut self, mode: UpgradeMode) -> Self {
        self.job_mut().upgrade_mode = Some(mode);
        self
    }

    /// Sets the job's parallelism (adding the test job if there is none).
    pub fn with_parallelism(mut self, parallelism: i32) -> Self {
        self.job_mut().parallelism = Some(parallelism);
        self
    }

    /// Configures checkpoint and savepoint directories under `base` (e.g. `file:///tmp/x`),
    /// as stateful upgrade modes require.
    pub fn with_state_dirs(self, base: &str) -> Self {
        self.with_config(
            "execution.checkpointing.dir",
            &format!("{base}/checkpoints"),
        )
        .with_config(
            "execution.checkpointing.savepoint-dir",
            &format!("{base}/savepoints"),
        )
    }

    /// Sets one Flink configuration key.
    pub fn with_config(mut self, key: &str, value: &str) -> Self {
        set_config(&mut self.spec.flink_configuration, key, value);
        self
    }

    /// Sets the Flink version.
    pub fn with_version(mut self, version: FlinkVersion) -> Self {
        self.spec.flink_version = Some(version);
        self
    }

    /// Sets the deployment mode.
    pub fn with_mode(mut self, mode: DeploymentMode) -> Self {
        self.spec.mode = Some(mode);
        self
    }

    /// Sets the number of TaskManagers.
    pub fn with_task_managers(mut self, replicas: i32) -> Self {
        self.spec
            .task_manager
            .get_or_insert_with(TaskManagerSpec::default)
            .replicas = Some(replicas);
        self
    }

    /// Moves it to another namespace.
    pub fn in_namespace(mut self, namespace: &str) -> Self {
        self.metadata.namespace = Some(namespace.to_string());
        self
    }

    /// Sets `metadata.generation`.
    pub fn with_generation(mut self, generation: i64) -> Self {
        self.metadata.generation = Some(generation);
        self
    }

    /// Records the current spec as reconciled and deployed (and stable), as after a successful
    /// first deployment.
    pub fn deployed(mut self) -> Self {
        let mut reconciliation = ReconciliationStatus {
            state: Some(ReconciliationState::Deployed),
            ..Default::default()
        };
        let meta = ReconciliationMetadata::new(self.metadata.generation, true);
        // our own spec type always serializes
        let _ = reconciliation.set_last_reconciled(&self.spec, &meta);
        reconciliation.mark_reconciled_spec_stable();
        let status = self
            .status
            .get_or_insert_with(FlinkDeploymentStatus::default);
        status.reconciliation_status = Some(reconciliation);
        status.observed_generation = self.metadata.generation;
        self
    }
}

impl FlinkSessionJob {
    /// A valid stateless session job in the session cluster `deployment`.
    pub fn test(name: &str, deployment: &str) -> Self {
        Self {
            metadata: test_meta(name),
            spec: FlinkSessionJobSpec {
                deployment_name: Some(deployment.to_string()),
                job: Some(JobSpec::test("https://example.com/jobs/counter.jar")),
                ..Default::default()
            },
            status: None,
        }
    }

    fn job_mut(&mut self) -> &mut JobSpec {
        self.spec
            .job
            .get_or_insert_with(|| JobSpec::test("https://example.com/jobs/counter.jar"))
    }

    /// Replaces the job.
    pub fn with_job(mut self, job: JobSpec) -> Self {
        self.spec.job = Some(job);
        self
    }

    /// Sets the job's desired state to `suspended`.
    pub fn suspended(mut self) -> Self {
        self.job_mut().state = Some(JobState::Suspended);
        self
    }

    /// Sets the job's upgrade mode.
    pub fn with_upgrade_mode(mut self, mode: UpgradeMode) -> Self {
        self.job_mut().upgrade_mode = Some(mode);
        self
    }

    /// Sets one Flink configuration key.
    pub fn with_config(mut self, key: &str, value: &str) -> Self {
        set_config(&mut self.spec.flink_configuration, key, value);
        self
    }
}

impl FlinkStateSnapshot {
    /// A savepoint request for the job of the `kind` resource `target`.
    pub fn test_savepoint(name: &str, kind: JobKind, target: &str) -> Self {
        Self {
            metadata: test_meta(name),
            spec: FlinkStateSnapshotSpec {
                job_reference: Some(JobReference {
                    kind: Some(kind),
                    name: Some(target.to_string()),
                }),
                savepoint: Some(SavepointSpec::default()),
                ..Default::default()
            },
            status: None,
        }
    }

    /// A checkpoint request for the job of the `kind` resource `target`.
    pub fn test_checkpoint(name: &str, kind: JobKind, target: &str) -> Self {
        let mut s = Self::test_savepoint(name, kind, target);
        s.spec.savepoint = None;
        s.spec.checkpoint = Some(crate::CheckpointSpec {});
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builders_compose() {
        let d = FlinkDeployment::test("counter")
            .application()
            .with_upgrade_mode(UpgradeMode::Savepoint)
            .with_state_dirs("file:///tmp/fp")
            .suspended()
            .deployed();
        let job = d.spec.job.as_ref().unwrap();
        assert_eq!(job.state(), JobState::Suspended);
        assert_eq!(job.upgrade_mode(), UpgradeMode::Savepoint);
        let rs = d.status.unwrap().reconciliation_status.unwrap();
        let stored = rs
            .last_reconciled::<FlinkDeploymentSpec>()
            .unwrap()
            .unwrap();
        assert_eq!(stored.spec.job, d.spec.job);
        assert!(rs.is_last_reconciled_spec_stable());
    }
}
