//! The cluster: health and version, overview, configuration, TaskManagers.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::call::{Seg, segs};
use crate::client::{Call, FlinkClient};
use crate::compat::FlinkVersion;
use crate::error::{Error, Result};

/// `GET /config`: the web UI's configuration, which names the Flink version.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DashboardConfig {
    /// E.g. `2.3.0`.
    #[serde(rename = "flink-version")]
    pub flink_version: String,
    /// Commit and build date.
    #[serde(default, rename = "flink-revision")]
    pub flink_revision: String,
    /// Web UI features switched on (`web-submit`, `web-cancel`, `web-rescale`, …).
    #[serde(default)]
    pub features: BTreeMap<String, bool>,
}

/// `GET /overview`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ClusterOverview {
    /// Registered TaskManagers.
    pub taskmanagers: u32,
    /// Task slots in total.
    #[serde(rename = "slots-total")]
    pub slots_total: u32,
    /// Free task slots.
    #[serde(rename = "slots-available")]
    pub slots_available: u32,
    /// Jobs running.
    #[serde(rename = "jobs-running")]
    pub jobs_running: u32,
    /// Jobs finished.
    #[serde(rename = "jobs-finished")]
    pub jobs_finished: u32,
    /// Jobs cancelled.
    #[serde(rename = "jobs-cancelled")]
    pub jobs_cancelled: u32,
    /// Jobs failed.
    #[serde(rename = "jobs-failed")]
    pub jobs_failed: u32,
    /// Flink version.
    #[serde(default, rename = "flink-version")]
    pub flink_version: String,
}

/// A reachable JobManager: what [`FlinkClient::health`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterHealth {
    /// The Flink version.
    pub version: FlinkVersion,
    /// Commit and build date.
    pub revision: String,
    /// TaskManagers, slots and job counts.
    pub overview: ClusterOverview,
}

/// One TaskManager (`GET /taskmanagers`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TaskManagerInfo {
    /// TaskManager id, e.g. `localhost:34115-f30ea0`.
    pub id: String,
    /// RPC address.
    pub path: String,
    /// Data port.
    #[serde(rename = "dataPort")]
    pub data_port: i64,
    /// Last heartbeat, epoch milliseconds (despite the name).
    #[serde(rename = "timeSinceLastHeartbeat")]
    pub last_heartbeat: i64,
    /// Task slots.
    #[serde(rename = "slotsNumber")]
    pub slots: u32,
    /// Free task slots.
    #[serde(rename = "freeSlots")]
    pub free_slots: u32,
    /// Hardware seen by the TaskManager.
    #[serde(default)]
    pub hardware: Option<Hardware>,
}

/// Part of [`TaskManagerInfo`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Hardware {
    /// CPU cores.
    #[serde(rename = "cpuCores")]
    pub cpu_cores: u32,
    /// Physical memory, bytes.
    #[serde(rename = "physicalMemory")]
    pub physical_memory: i64,
    /// JVM free memory, bytes.
    #[serde(rename = "freeMemory")]
    pub free_memory: i64,
    /// Managed memory, bytes.
    #[serde(rename = "managedMemory")]
    pub managed_memory: i64,
}

/// `GET /taskmanagers/:taskmanagerid`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TaskManagerDetails {
    /// The same fields as in the list.
    #[serde(flatten)]
    pub info: TaskManagerInfo,
    /// Slots allocated to jobs.
    #[serde(default, rename = "allocatedSlots")]
    pub allocated_slots: Vec<AllocatedSlot>,
    /// JVM and network memory metrics (heap, direct, shuffle memory, GC).
    #[serde(default)]
    pub metrics: BTreeMap<String, serde_json::Value>,
}

/// A slot in [`TaskManagerDetails`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AllocatedSlot {
    /// The job using it.
    #[serde(rename = "jobId")]
    pub job_id: String,
}

#[derive(Deserialize)]
struct TaskManagerList {
    taskmanagers: Vec<TaskManagerInfo>,
}

#[derive(Deserialize)]
struct ConfigEntry {
    key: String,
    value: String,
}

impl FlinkClient {
    /// Checks the endpoint: `Ok` with the version and overview when a Flink JobManager
    /// answers; [`Error::Unreachable`]/[`Error::Timeout`] when nothing answers;
    /// [`Error::NotFlink`] when something else answers. Refreshes the cached version.
    pub async fn health(&self) -> Result<ClusterHealth> {
        let (config, version) = self.read_dashboard_config().await?;
        let overview: ClusterOverview = match self.get(Call::get(&segs!["overview"])).await {
            Err(Error::Decode { at, source }) => {
                return Err(Error::NotFlink {
                    at,
                    detail: format!("`/overview` is not Flink's cluster overview: {source}"),
                });
            }
            other => other?,
        };
        Ok(ClusterHealth {
            version,
            revision: config.flink_revision,
            overview,
        })
    }

    /// `GET /config`; also learns the Flink version. An answer without a parseable
    /// `flink-version` is [`Error::NotFlink`].
    pub async fn dashboard_config(&self) -> Result<DashboardConfig> {
        Ok(self.read_dashboard_config().await?.0)
    }

    async fn read_dashboard_config(&self) -> Result<(DashboardConfig, FlinkVersion)> {
        let call = Call::get(&segs!["config"]);
        let at = self.call_site(&call);
        let raw: serde_json::Value = match self.get(call).await {
            Err(Error::Unsupported { at, .. }) => {
                return Err(Error::NotFlink {
                    at,
                    detail: "it has no `/v1/config` endpoint".into(),
                });
            }
            other => other?,
        };
        let config: DashboardConfig = serde_json::from_value(raw).map_err(|e| Error::NotFlink {
            at: at.clone(),
            detail: format!("`/config` does not name a Flink version: {e}"),
        })?;
        let version: FlinkVersion = config.flink_version.parse().map_err(|e| Error::NotFlink {
            at,
            detail: format!("`/config` does not name a Flink version: {e}"),
        })?;
        self.remember_version(version.clone());
        Ok((config, version))
    }

    /// The Flink version: read from `/config` once, then cached; [`Self::health`] refreshes
    /// it (a URL may come to point at a cluster of another version after an upgrade).
    pub async fn flink_version(&self) -> Result<FlinkVersion> {
        if let Some(version) = self.cached_version() {
            return Ok(version);
        }
        Ok(self.read_dashboard_config().await?.1)
    }

    /// TaskManagers, slots and job counts.
    pub async fn overview(&self) -> Result<ClusterOverview> {
        self.get(Call::get(&segs!["overview"])).await
    }

    /// The JobManager's effective configuration (`GET /jobmanager/config`). Flink masks
    /// values of sensitive keys (passwords, secrets) before sending them.
    pub async fn jobmanager_config(&self) -> Result<BTreeMap<String, String>> {
        let entries: Vec<ConfigEntry> = self.get(Call::get(&segs!["jobmanager", "config"])).await?;
        Ok(entries.into_iter().map(|e| (e.key, e.value)).collect())
    }

    /// Registered TaskManagers.
    pub async fn taskmanagers(&self) -> Result<Vec<TaskManagerInfo>> {
        let list: TaskManagerList = self.get(Call::get(&segs!["taskmanagers"])).await?;
        Ok(list.taskmanagers)
    }

    /// Details of one TaskManager, with its allocated slots and memory metrics.
    pub async fn taskmanager(&self, id: &str) -> Result<TaskManagerDetails> {
        self.get(Call::get(&segs![
            "taskmanagers",
            Seg::id(":taskmanagerid", id)
        ]))
        .await
    }
}
