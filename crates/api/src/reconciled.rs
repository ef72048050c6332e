//! `status.reconciliationStatus.lastReconciledSpec` / `lastStableSpec`: the spec the operator
//! last acted on, stored as a JSON string in the Apache operator's format, so a resource can move
//! between the two operators without a redeploy:
//!
//! ```json
//! {"spec": {...},
//!  "resource_metadata": {"apiVersion": "flink.apache.org/v1beta1",
//!                        "metadata": {"generation": 3}, "firstDeployment": false}}
//! ```
//!
//! The Apache operator writes every spec field (nulls and defaults included) and
//! `flinkConfiguration` as a flat `key → string` map; reading accepts that, and writing produces
//! the flat map too (absent fields are left out, which the Apache operator reads as null).
//! Its oldest format, the bare spec object, is read as well.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::FlinkConfiguration;
use crate::resource::API_VERSION;
use crate::status::ReconciliationStatus;
use crate::{FlinkDeploymentSpec, FlinkSessionJobSpec};

/// The key of the metadata object next to `spec`.
pub const METADATA_KEY: &str = "resource_metadata";

/// A stored spec that cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ReconciledSpecError {
    /// The string is not JSON, or not a spec of the expected kind.
    #[error(
        "status.reconciliationStatus holds a spec that cannot be read ({0}); \
             remove the status field so the resource is treated as new"
    )]
    Read(#[source] serde_json::Error),
    /// The spec could not be turned into JSON.
    #[error("could not store the reconciled spec as JSON: {0}")]
    Write(#[source] serde_json::Error),
}

/// Facts stored with the spec.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReconciliationMetadata {
    /// `apiVersion` of the resource when the spec was stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// `metadata.generation` of the resource when the spec was stored.
    #[serde(skip_serializing_if = "Option::is_none", with = "generation")]
    pub metadata: Option<i64>,
    /// `true` while the spec is that of the very first deployment.
    #[serde(default)]
    pub first_deployment: bool,
}

impl ReconciliationMetadata {
    /// Metadata for a spec of the resource at `generation`.
    pub fn new(generation: Option<i64>, first_deployment: bool) -> Self {
        Self {
            api_version: Some(API_VERSION.to_string()),
            metadata: generation,
            first_deployment,
        }
    }
}

/// `"metadata": {"generation": N}` ⇄ `Some(N)`.
mod generation {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize, Default)]
    struct Meta {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        generation: Option<i64>,
    }

    pub fn serialize<S: Serializer>(g: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
        Meta { generation: *g }.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        Ok(Option::<Meta>::deserialize(d)?.and_then(|m| m.generation))
    }
}

/// A stored spec with its metadata (`None` for the oldest, metadata-less format).
#[derive(Clone, Debug, PartialEq)]
pub struct ReconciledSpec<S> {
    /// The spec.
    pub spec: S,
    /// What was stored with it.
    pub meta: Option<ReconciliationMetadata>,
}

/// Specs that can be stored in `lastReconciledSpec`.
pub trait StoredSpec: Serialize + DeserializeOwned + Clone {
    /// The spec as the Apache operator stores it: `flinkConfiguration` flattened to strings.
    fn for_storage(&self) -> Self;
}

fn flattened(config: &Option<FlinkConfiguration>) -> Option<FlinkConfiguration> {
    config
        .as_ref()
        .map(|c| FlinkConfiguration::from_flat(c.flatten()))
}

impl StoredSpec for FlinkDeploymentSpec {
    fn for_storage(&self) -> Self {
        Self {
            flink_configuration: flattened(&self.flink_configuration),
            ..self.clone()
        }
    }
}

impl StoredSpec for FlinkSessionJobSpec {
    fn for_storage(&self) -> Self {
        Self {
            flink_configuration: flattened(&self.flink_configuration),
            ..self.clone()
        }
    }
}

/// Serializes a spec and its metadata in the Apache operator's format.
pub fn write<S: StoredSpec>(
    spec: &S,
    meta: &ReconciliationMetadata,
) -> Result<String, ReconciledSpecError> {
    let mut wrapper = Map::new();
    wrapper.insert(
        "spec".into(),
        serde_json::to_value(spec.for_storage()).map_err(ReconciledSpecError::Write)?,
    );
    wrapper.insert(
        METADATA_KEY.into(),
        serde_json::to_value(meta).map_err(ReconciledSpecError::Write)?,
    );
    serde_json::to_string(&Value::Object(wrapper)).map_err(ReconciledSpecError::Write)
}

/// Reads a stored spec in either of the Apache operator's formats.
pub fn read<S: StoredSpec>(json: &str) -> Result<ReconciledSpec<S>, ReconciledSpecError> {
    let mut wrapper: Map<String, Value> =
        serde_json::from_str(json).map_err(ReconciledSpecError::Read)?;
    match wrapper.remove(METADATA_KEY) {
        Some(meta) => {
            let meta = serde_json::from_value(meta).map_err(ReconciledSpecError::Read)?;
            let spec = wrapper.remove("spec").unwrap_or(Value::Object(Map::new()));
            let spec = serde_json::from_value(spec).map_err(ReconciledSpecError::Read)?;
            Ok(ReconciledSpec {
                spec,
                meta: Some(meta),
            })
        }
        None => {
            // oldest format: the spec itself, with an `apiVersion` next to its fields
            wrapper.remove("apiVersion");
            let spec = serde_json::from_value(Value::Object(wrapper))
                .map_err(ReconciledSpecError::Read)?;
            Ok(ReconciledSpec { spec, meta: None })
        }
    }
}

impl ReconciliationStatus {
    /// The last reconciled spec, if any.
    pub fn last_reconciled<S: StoredSpec>(
        &self,
    ) -> Result<Option<ReconciledSpec<S>>, ReconciledSpecError> {
        self.last_reconciled_spec.as_deref().map(read).transpose()
    }

    /// The last stable spec, if any.
    pub fn last_stable<S: StoredSpec>(
        &self,
    ) -> Result<Option<ReconciledSpec<S>>, ReconciledSpecError> {
        self.last_stable_spec.as_deref().map(read).transpose()
    }

    /// Records `spec` as the last reconciled spec.
    pub fn set_last_reconciled<S: StoredSpec>(
        &mut self,
        spec: &S,
        meta: &ReconciliationMetadata,
    ) -> Result<(), ReconciledSpecError> {
        self.last_reconciled_spec = Some(write(spec, meta)?);
        Ok(())
    }

    /// Marks the last reconciled spec as stable (the rollback target).
    pub fn mark_reconciled_spec_stable(&mut self) {
        self.last_stable_spec = self.last_reconciled_spec.clone();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{JobState, UpgradeMode};

    /// Shaped like what the Apache operator stores: nulls, defaults, flat string config.
    const APACHE: &str = r#"{"spec":{"job":{"jarURI":"local:///opt/flink/examples/streaming/StateMachineExample.jar","parallelism":2,"entryClass":null,"args":[],"state":"running","savepointTriggerNonce":null,"initialSavepointPath":null,"checkpointTriggerNonce":null,"upgradeMode":"savepoint","allowNonRestoredState":null,"savepointRedeployNonce":null},"restartNonce":null,"flinkConfiguration":{"taskmanager.numberOfTaskSlots":"2","state.savepoints.dir":"file:///flink-data/savepoints"},"image":"flink:1.17","imagePullPolicy":null,"serviceAccount":"flink","flinkVersion":"v1_17","ingress":null,"podTemplate":null,"jobManager":{"resource":{"cpu":1.0,"memory":"2048m","ephemeralStorage":null},"replicas":1,"podTemplate":null},"taskManager":{"resource":{"cpu":1.0,"memory":"2048m","ephemeralStorage":null},"replicas":null,"podTemplate":null},"logConfiguration":null,"mode":null},"resource_metadata":{"apiVersion":"flink.apache.org/v1beta1","metadata":{"generation":2},"firstDeployment":false}}"#;

    #[test]
    fn apache_operator_format_is_read() {
        let r: ReconciledSpec<FlinkDeploymentSpec> = read(APACHE).unwrap();
        let job = r.spec.job.as_ref().unwrap();
        assert_eq!(job.upgrade_mode(), UpgradeMode::Savepoint);
        assert_eq!(job.state(), JobState::Running);
        assert_eq!(job.entry_class, None);
        assert_eq!(
            r.spec.flink_config().get("state.savepoints.dir").as_deref(),
            Some("file:///flink-data/savepoints")
        );
        assert_eq!(r.meta, Some(ReconciliationMetadata::new(Some(2), false)));
    }

    #[test]
    fn written_spec_reads_back_and_has_the_apache_shape() {
        let spec: FlinkDeploymentSpec = serde_saphyr::from_str(
            "flinkConfiguration:\n  state:\n    savepoints.dir: s3://b/sp\n  taskmanager.numberOfTaskSlots: 2\njob:\n  jarURI: local:///j.jar\n",
        )
        .unwrap();
        let meta = ReconciliationMetadata::new(Some(7), true);
        let json = write(&spec, &meta).unwrap();
        let v: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["resource_metadata"]["metadata"]["generation"], 7);
        assert_eq!(v["resource_metadata"]["apiVersion"], API_VERSION);
        assert_eq!(v["resource_metadata"]["firstDeployment"], true);
        // flat string config, as the Apache operator writes and older versions can read
        assert_eq!(
            v["spec"]["flinkConfiguration"]["state.savepoints.dir"],
            "s3://b/sp"
        );
        assert_eq!(
            v["spec"]["flinkConfiguration"]["taskmanager.numberOfTaskSlots"],
            "2"
        );
        let back: ReconciledSpec<FlinkDeploymentSpec> = read(&json).unwrap();
        assert_eq!(
            back.spec.flink_config().flatten(),
            spec.flink_config().flatten()
        );
        assert_eq!(back.spec.job, spec.job);
        assert_eq!(back.meta, Some(meta));
    }

    #[test]
    fn oldest_metadata_less_format_is_read() {
        let r: ReconciledSpec<FlinkSessionJobSpec> =
            read(r#"{"apiVersion":"flink.apache.org/v1beta1","deploymentName":"s","job":{"jarURI":"x"}}"#).unwrap();
        assert_eq!(r.spec.deployment_name.as_deref(), Some("s"));
        assert_eq!(r.meta, None);
    }

    #[test]
    fn status_helpers_store_and_mark_stable() {
        let mut status = ReconciliationStatus::default();
        assert!(
            status
                .last_reconciled::<FlinkSessionJobSpec>()
                .unwrap()
                .is_none()
        );
        let spec = FlinkSessionJobSpec {
            deployment_name: Some("s".into()),
            ..Default::default()
        };
        status
            .set_last_reconciled(&spec, &ReconciliationMetadata::new(Some(1), true))
            .unwrap();
        assert!(!status.is_last_reconciled_spec_stable());
        status.mark_reconciled_spec_stable();
        assert!(status.is_last_reconciled_spec_stable());
        let stable = status
            .last_stable::<FlinkSessionJobSpec>()
            .unwrap()
            .unwrap();
        assert_eq!(stable.spec, spec);
    }

    #[test]
    fn garbage_is_an_error_that_says_what_to_do() {
        let err = read::<FlinkDeploymentSpec>("{not json").unwrap_err();
        assert!(err.to_string().contains("remove the status field"), "{err}");
    }
}
