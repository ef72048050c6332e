//! Jars on a session cluster: upload, list, run, delete.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::call::segs;
use crate::client::{Call, FlinkClient};
use crate::error::{Error, Result};
use crate::ids::JobId;

/// Id of an uploaded jar, as Flink assigns it (`<uuid>_<file name>`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JarId(String);

impl JarId {
    /// Wraps an id Flink returned earlier.
    pub fn new(id: impl Into<String>) -> Self {
        JarId(id.into())
    }

    /// The id as Flink spells it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JarId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One uploaded jar (`GET /jars`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct JarInfo {
    /// Its id.
    pub id: JarId,
    /// Original file name.
    pub name: String,
    /// Upload time, epoch milliseconds.
    pub uploaded: i64,
    /// Entry classes found in the manifest.
    #[serde(default)]
    pub entry: Vec<JarEntry>,
}

/// An entry class of a jar.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct JarEntry {
    /// Fully qualified class name.
    pub name: String,
    /// Description, if the jar has one.
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Deserialize)]
struct JarList {
    #[serde(default)]
    files: Vec<JarInfo>,
}

#[derive(Deserialize)]
struct UploadResponse {
    filename: String,
}

/// How a restored job treats the snapshot it starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ClaimMode {
    /// The job takes ownership of the snapshot and may delete it later.
    Claim,
    /// The snapshot stays untouched; the first checkpoint is a full one.
    NoClaim,
}

/// Running an uploaded jar (`POST /jars/:jarid/run`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RunJarRequest {
    /// Entry class; the jar manifest's when `None`.
    #[serde(rename = "entryClass", skip_serializing_if = "Option::is_none")]
    pub entry_class: Option<String>,
    /// Program arguments, one element per argument (no shell splitting).
    #[serde(rename = "programArgsList", skip_serializing_if = "Vec::is_empty")]
    pub program_args: Vec<String>,
    /// Default parallelism.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<u32>,
    /// Savepoint or retained checkpoint to restore from.
    #[serde(rename = "savepointPath", skip_serializing_if = "Option::is_none")]
    pub savepoint_path: Option<String>,
    /// Start even if some state in the snapshot maps to no operator.
    #[serde(
        rename = "allowNonRestoredState",
        skip_serializing_if = "Option::is_none"
    )]
    pub allow_non_restored_state: Option<bool>,
    /// Submit under this job id (e.g. to make a resubmission recognisable).
    #[serde(rename = "jobId", skip_serializing_if = "Option::is_none")]
    pub job_id: Option<JobId>,
    /// Snapshot ownership; Flink's default (`NO_CLAIM`) when `None`.
    #[serde(rename = "claimMode", skip_serializing_if = "Option::is_none")]
    pub claim_mode: Option<ClaimMode>,
    /// Job-level Flink configuration.
    #[serde(
        rename = "flinkConfiguration",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub flink_configuration: BTreeMap<String, String>,
}

/// What `POST /jars/:jarid/run` returned.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SubmittedJob {
    /// The new job's id.
    #[serde(rename = "jobid")]
    pub job_id: JobId,
    /// Its application's id; Flink 2.x only.
    #[serde(default, rename = "applicationId")]
    pub application_id: Option<String>,
}

impl FlinkClient {
    /// Uploads a jar file and returns its id. Never retried (a retry after a lost answer
    /// would store the jar twice).
    pub async fn upload_jar(&self, path: &Path) -> Result<JarId> {
        let bytes = tokio::fs::read(path).await.map_err(|source| Error::Io {
            path: path.display().to_string(),
            source,
        })?;
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "job.jar".into());
        let response: UploadResponse = self
            .upload(
                Call::new(Method::POST, &segs!["jars", "upload"]),
                file_name,
                bytes,
            )
            .await?;
        // Flink answers with the stored file's path; its file name is the jar id.
        let id = response
            .filename
            .rsplit(['/', '\\'])
            .next()
            .unwrap_or(&response.filename);
        Ok(JarId::new(id))
    }

    /// Jars uploaded to this cluster.
    pub async fn jars(&self) -> Result<Vec<JarInfo>> {
        let list: JarList = self.get(Call::get(&segs!["jars"])).await?;
        Ok(list.files)
    }

    /// Runs an uploaded jar; returns once the job is submitted (it is then `INITIALIZING`
    /// or later). Sent exactly once: a retry could start the job twice.
    pub async fn run_jar(&self, jar: &JarId, request: &RunJarRequest) -> Result<SubmittedJob> {
        let call = Call::new(Method::POST, &segs!["jars", jar, "run"]);
        self.send(call, Some(request)).await
    }

    /// Deletes an uploaded jar.
    pub async fn delete_jar(&self, jar: &JarId) -> Result<()> {
        let call = Call::new(Method::DELETE, &segs!["jars", jar]);
        self.send_ignore(call, None::<&()>).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_request_sends_only_what_is_set() {
        let request = RunJarRequest {
            entry_class: Some("flinkpilot.jobs.Counter".into()),
            program_args: vec!["--rate".into(), "20".into()],
            parallelism: Some(2),
            savepoint_path: Some("file:/sp/savepoint-1".into()),
            allow_non_restored_state: Some(false),
            ..RunJarRequest::default()
        };
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            serde_json::json!({
                "entryClass": "flinkpilot.jobs.Counter",
                "programArgsList": ["--rate", "20"],
                "parallelism": 2,
                "savepointPath": "file:/sp/savepoint-1",
                "allowNonRestoredState": false
            })
        );
    }

    #[test]
    fn run_response_of_both_versions_decodes() {
        let v1: SubmittedJob =
            serde_json::from_str(r#"{"jobid":"80fc24cdd6664dec438dd061e8a74129"}"#).unwrap();
        assert_eq!(v1.application_id, None);
        let v2: SubmittedJob = serde_json::from_str(
            r#"{"jobid":"17b8fa574977b617f4ff1e36adc23f40","applicationId":"17b8fa574977b617f4ff1e36adc23f40"}"#,
        )
        .unwrap();
        assert_eq!(
            v2.application_id.as_deref(),
            Some("17b8fa574977b617f4ff1e36adc23f40")
        );
    }
}
