//! The three `CustomResourceDefinition`s and their YAML, as installed in a cluster and kept in
//! `deploy/crds/` (regenerate with `cargo run -p flinkpilot-cli -- crd --write deploy/crds`).

use std::sync::LazyLock;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube_core::crd::v1::CustomResourceExt;

use crate::{FlinkDeployment, FlinkSessionJob, FlinkStateSnapshot};

/// Rendering a CRD as YAML failed.
#[derive(Debug, thiserror::Error)]
#[error("could not render the {name} CRD as YAML: {reason}")]
pub struct CrdRenderError {
    /// Name of the CRD.
    pub name: String,
    /// What went wrong.
    pub reason: String,
}

/// Generating the schemas takes a while (Kubernetes' `Pod` schema three times over), so it is
/// done once per process.
static CRDS: LazyLock<Vec<CustomResourceDefinition>> = LazyLock::new(|| {
    vec![
        FlinkDeployment::crd(),
        FlinkSessionJob::crd(),
        FlinkStateSnapshot::crd(),
    ]
});

/// All CRDs, in a stable order: deployments, session jobs, snapshots.
pub fn all() -> Vec<CustomResourceDefinition> {
    CRDS.clone()
}

/// The file name each CRD is kept under in `deploy/crds/`, e.g.
/// `flinkdeployments.flink.apache.org.yaml`.
pub fn file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}.yaml", crd.metadata.name.as_deref().unwrap_or("unnamed"))
}

/// One CRD as a YAML document (no leading `---`).
pub fn to_yaml(crd: &CustomResourceDefinition) -> Result<String, CrdRenderError> {
    let err = |reason: String| CrdRenderError {
        name: crd.metadata.name.clone().unwrap_or_default(),
        reason,
    };
    let value = serde_json::to_value(crd).map_err(|e| err(e.to_string()))?;
    serde_saphyr::to_string(&value).map_err(|e| err(e.to_string()))
}

/// All CRDs as one multi-document YAML stream.
pub fn all_to_yaml() -> Result<String, CrdRenderError> {
    let docs = all().iter().map(to_yaml).collect::<Result<Vec<_>, _>>()?;
    Ok(docs.iter().map(|d| format!("---\n{d}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crd_yaml_reads_back_as_the_same_object() {
        for crd in all() {
            let yaml = to_yaml(&crd).unwrap();
            let back: serde_json::Value = serde_saphyr::from_str(&yaml).unwrap();
            assert_eq!(
                back,
                serde_json::to_value(&crd).unwrap(),
                "{}",
                file_name(&crd)
            );
        }
    }

    #[test]
    fn every_crd_fits_well_within_the_api_servers_request_limit() {
        // etcd refuses objects over 1.5 MiB; stay under 1 MiB to leave room for growth.
        for crd in all() {
            let size = serde_json::to_vec(&crd).unwrap().len();
            assert!(
                size < 1 << 20,
                "{} is {size} bytes as JSON",
                file_name(&crd)
            );
        }
    }

    #[test]
    fn all_to_yaml_is_three_documents_in_order() {
        let text = all_to_yaml().unwrap();
        let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).unwrap();
        let names: Vec<&str> = docs
            .iter()
            .map(|d| d["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "flinkdeployments.flink.apache.org",
                "flinksessionjobs.flink.apache.org",
                "flinkstatesnapshots.flink.apache.org"
            ]
        );
    }
}
