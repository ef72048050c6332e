//! In-place rescaling through the adaptive scheduler's resource requirements.
//!
//! With `jobmanager.scheduler: adaptive`, a job's per-vertex parallelism bounds can be
//! changed while it runs; the scheduler then restarts it from its latest checkpoint with the
//! new parallelism (after its cool-down). The default scheduler rejects the `PUT`.

use std::collections::BTreeMap;

use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::call::segs;
use crate::client::{Call, FlinkClient};
use crate::error::{Error, Result};
use crate::ids::{JobId, VertexId};

/// Desired parallelism bounds of every vertex of a job.
pub type ResourceRequirements = BTreeMap<VertexId, VertexResources>;

/// Resource requirements of one vertex.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VertexResources {
    /// Parallelism bounds.
    pub parallelism: ParallelismBounds,
}

/// The scheduler runs the vertex with as much parallelism as it gets slots for, between
/// the bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParallelismBounds {
    /// Fewest subtasks the job may run with.
    #[serde(rename = "lowerBound")]
    pub lower_bound: u32,
    /// Most subtasks; the target when enough slots are free.
    #[serde(rename = "upperBound")]
    pub upper_bound: u32,
}

/// `GET /jobs/:jobid/rescales/overview` (Flink 2.x; absent in 1.20).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RescalesOverview {
    /// Rescale counts by outcome.
    #[serde(rename = "rescalesCounts")]
    pub counts: RescaleCounts,
}

/// Part of [`RescalesOverview`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct RescaleCounts {
    /// Rescales the scheduler skipped.
    pub ignored: u64,
    /// Running now.
    #[serde(rename = "inProgress")]
    pub in_progress: u64,
    /// Completed.
    pub completed: u64,
    /// Failed.
    pub failed: u64,
}

impl FlinkClient {
    /// A job's current resource requirements (adaptive scheduler).
    pub async fn resource_requirements(&self, job: &JobId) -> Result<ResourceRequirements> {
        self.get(Call::get(&segs!["jobs", job, "resource-requirements"]))
            .await
    }

    /// Replaces a job's resource requirements; the scheduler rescales the job to them.
    /// Every vertex of the job must be listed. Sent exactly once.
    pub async fn set_resource_requirements(
        &self,
        job: &JobId,
        requirements: &ResourceRequirements,
    ) -> Result<()> {
        let call = Call::new(Method::PUT, &segs!["jobs", job, "resource-requirements"]);
        self.send_ignore(call, Some(requirements)).await
    }

    /// Sets the upper parallelism bound of every vertex to `parallelism` (lower bound 1):
    /// the usual "rescale the job to N". Returns the requirements sent.
    pub async fn rescale(&self, job: &JobId, parallelism: u32) -> Result<ResourceRequirements> {
        if parallelism == 0 {
            return Err(Error::Config {
                field: "parallelism",
                message: "must be at least 1".into(),
            });
        }
        let mut requirements = self.resource_requirements(job).await?;
        for vertex in requirements.values_mut() {
            vertex.parallelism = ParallelismBounds {
                lower_bound: 1,
                upper_bound: parallelism,
            };
        }
        self.set_resource_requirements(job, &requirements).await?;
        Ok(requirements)
    }

    /// Counts of the adaptive scheduler's rescales of a job. [`Error::Unsupported`] on
    /// versions without the endpoint (1.20 and earlier).
    pub async fn rescales_overview(&self, job: &JobId) -> Result<RescalesOverview> {
        self.get(Call::get(&segs!["jobs", job, "rescales", "overview"]))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_requirements_round_trip_flinks_shape() {
        // Real answer of Flink 1.20.5 and 2.3.0 for the counter job.
        let raw = r#"{"b71731f1c0df9c3076c4a455334d0ad6":{"parallelism":{"lowerBound":1,"upperBound":2}},"e63fab684be5ca366e56a1cf529e21e8":{"parallelism":{"lowerBound":1,"upperBound":2}}}"#;
        let req: ResourceRequirements = serde_json::from_str(raw).unwrap();
        assert_eq!(req.len(), 2);
        assert!(req.values().all(|v| v.parallelism.upper_bound == 2));
        let back: serde_json::Value = serde_json::to_value(&req).unwrap();
        assert_eq!(
            back,
            serde_json::from_str::<serde_json::Value>(raw).unwrap()
        );
    }
}
