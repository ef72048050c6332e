//! Metrics of a job, a vertex, and a vertex's subtasks aggregated.
//!
//! Flink only returns metrics it was asked for by name (`?get=a,b`); without names it
//! lists the available ones. Vertex metrics are per subtask (`0.numRecordsIn`) or per
//! operator (`0.Source__keys.numRecordsOut`); the aggregated endpoint folds the subtasks
//! into min/max/avg/sum, which is what an autoscaler wants (`busyTimeMsPerSecond`,
//! `backPressuredTimeMsPerSecond`, `numRecordsInPerSecond`, `pendingRecords`, …).

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::call::segs;
use crate::client::{Call, FlinkClient};
use crate::error::Result;
use crate::ids::{JobId, VertexId};

/// Metric values by name. Flink sends them as strings; [`MetricValues::f64`] parses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricValues(pub BTreeMap<String, String>);

impl MetricValues {
    /// The raw value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// The value as a number, when it is one.
    pub fn f64(&self, name: &str) -> Option<f64> {
        self.get(name).and_then(|v| v.parse().ok())
    }
}

/// One metric aggregated over a vertex's subtasks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
pub struct AggregatedMetric {
    /// Smallest subtask value.
    #[serde(default)]
    pub min: Option<f64>,
    /// Largest subtask value.
    #[serde(default)]
    pub max: Option<f64>,
    /// Mean.
    #[serde(default)]
    pub avg: Option<f64>,
    /// Sum.
    #[serde(default)]
    pub sum: Option<f64>,
    /// Skew in percent, where Flink computes it.
    #[serde(default)]
    pub skew: Option<f64>,
}

#[derive(Deserialize)]
struct RawMetric {
    id: String,
    #[serde(default)]
    value: Option<String>,
}

#[derive(Deserialize)]
struct RawAggregated {
    id: String,
    #[serde(flatten)]
    values: AggregatedMetric,
}

fn with_names(mut call: Call, names: &[&str]) -> Call {
    if !names.is_empty() {
        call = call.query("get", names.join(","));
    }
    call
}

fn values(raw: Vec<RawMetric>) -> MetricValues {
    MetricValues(
        raw.into_iter()
            .filter_map(|m| m.value.map(|v| (m.id, v)))
            .collect(),
    )
}

impl FlinkClient {
    /// Job-level metrics by name, e.g. `numRestarts`, `lastCheckpointDuration`, `uptime`.
    /// Names the job does not have are absent from the result.
    pub async fn job_metrics(&self, job: &JobId, names: &[&str]) -> Result<MetricValues> {
        let call = with_names(Call::get(&segs!["jobs", job, "metrics"]), names);
        Ok(values(self.get(call).await?))
    }

    /// Vertex metrics by name; per-subtask names carry the subtask index
    /// (`0.numRecordsInPerSecond`).
    pub async fn vertex_metrics(
        &self,
        job: &JobId,
        vertex: &VertexId,
        names: &[&str],
    ) -> Result<MetricValues> {
        let call = with_names(
            Call::get(&segs!["jobs", job, "vertices", vertex, "metrics"]),
            names,
        );
        Ok(values(self.get(call).await?))
    }

    /// Names of the metrics a vertex has right now (they appear once its tasks run).
    pub async fn available_vertex_metrics(
        &self,
        job: &JobId,
        vertex: &VertexId,
    ) -> Result<Vec<String>> {
        let call = Call::get(&segs!["jobs", job, "vertices", vertex, "metrics"]);
        let raw: Vec<RawMetric> = self.get(call).await?;
        Ok(raw.into_iter().map(|m| m.id).collect())
    }

    /// Metrics aggregated over all subtasks of a vertex, e.g. `busyTimeMsPerSecond`,
    /// `backPressuredTimeMsPerSecond`, `numRecordsInPerSecond`,
    /// `Source__keys.pendingRecords` (operator metrics carry the operator's name).
    pub async fn subtask_metrics(
        &self,
        job: &JobId,
        vertex: &VertexId,
        names: &[&str],
    ) -> Result<BTreeMap<String, AggregatedMetric>> {
        let call = with_names(
            Call::get(&segs![
                "jobs", job, "vertices", vertex, "subtasks", "metrics",
            ]),
            names,
        );
        let raw: Vec<RawAggregated> = self.get(call).await?;
        Ok(raw.into_iter().map(|m| (m.id, m.values)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregated_metrics_decode_from_flinks_answer() {
        // Real answer of Flink 2.3.0 for the counter's keyed vertex.
        let raw = r#"[{"id":"busyTimeMsPerSecond","min":0.0,"max":0.0,"avg":0.0,"sum":0.0,"skew":0.0},{"id":"numRecordsInPerSecond","min":0.0,"max":2.8333333333333335,"avg":1.4166666666666667,"sum":2.8333333333333335,"skew":100.0}]"#;
        let raw: Vec<RawAggregated> = serde_json::from_str(raw).unwrap();
        let m: BTreeMap<_, _> = raw.into_iter().map(|m| (m.id, m.values)).collect();
        assert_eq!(m["numRecordsInPerSecond"].sum, Some(2.8333333333333335));
        assert_eq!(m["busyTimeMsPerSecond"].max, Some(0.0));
    }

    #[test]
    fn metric_values_parse_numbers() {
        let raw: Vec<RawMetric> = serde_json::from_str(
            r#"[{"id":"numRestarts","value":"0"},{"id":"lastCheckpointExternalPath","value":"file:/cp/chk-3"}]"#,
        )
        .unwrap();
        let v = values(raw);
        assert_eq!(v.f64("numRestarts"), Some(0.0));
        assert_eq!(v.f64("lastCheckpointExternalPath"), None);
        assert_eq!(v.get("lastCheckpointExternalPath"), Some("file:/cp/chk-3"));
    }
}
