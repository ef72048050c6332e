//! Differences between Flink versions, in one place.
//!
//! The client learns the version from `GET /config` (`flink-version`) and asks this module
//! before using anything that is not in every supported version. Response shapes that
//! differ are normalised here too, so the rest of the crate sees one shape.
//!
//! Verified against real JobManagers of Flink 1.20.5 and 2.3.0:
//! - `POST /jobs/:jobid/checkpoints` (manual checkpoint) exists since 1.17 (FLINK-27101);
//!   the `INCREMENTAL` type is refused since 1.19 (FLINK-33723).
//! - `GET /jobs/:jobid/exceptions` lost `root-exception`/`all-exceptions` in 2.0; only
//!   `exceptionHistory` is left. In 1.20 `root-exception` is often the scheduler's
//!   "Recovery is suppressed" wrapper, so the history is the better source on both.
//! - 2.x answers `POST /jars/:jarid/run` with an `applicationId` and job details with an
//!   `application-id`; `/jobs/:jobid/rescales/*` exists in 2.3 but not in 1.20.
//! - 2.x dropped the `state.savepoints.dir`/`state.checkpoints.dir` keys in favour of
//!   `execution.checkpointing.savepoint-dir`/`execution.checkpointing.dir` (1.20 knows both).

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use crate::jobs::{ExceptionEntry, JobExceptions, RawExceptions};

/// A Flink release version, e.g. `2.3.0` or `1.20-SNAPSHOT` (patch 0).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FlinkVersion {
    /// Major version.
    pub major: u32,
    /// Minor version.
    pub minor: u32,
    /// Patch version (0 when absent).
    pub patch: u32,
    /// The version string as Flink reported it.
    pub raw: String,
}

impl FlinkVersion {
    /// A version from its numbers (for comparisons and tests).
    pub fn new(major: u32, minor: u32, patch: u32) -> Self {
        FlinkVersion {
            major,
            minor,
            patch,
            raw: format!("{major}.{minor}.{patch}"),
        }
    }

    fn at_least(&self, major: u32, minor: u32) -> bool {
        (self.major, self.minor) >= (major, minor)
    }

    /// `POST /jobs/:jobid/checkpoints` exists (Flink 1.17+).
    pub fn supports_checkpoint_trigger(&self) -> bool {
        self.at_least(1, 17)
    }

    /// A manual checkpoint may be of type `INCREMENTAL` (1.17 and 1.18 only).
    pub fn supports_incremental_checkpoint_trigger(&self) -> bool {
        self.supports_checkpoint_trigger() && !self.at_least(1, 19)
    }

    /// Keys under which this version reads the default savepoint directory, newest first.
    pub fn savepoint_dir_keys(&self) -> &'static [&'static str] {
        if self.major >= 2 {
            &["execution.checkpointing.savepoint-dir"]
        } else if self.at_least(1, 20) {
            &[
                "execution.checkpointing.savepoint-dir",
                "state.savepoints.dir",
            ]
        } else {
            &["state.savepoints.dir"]
        }
    }

    /// Keys under which this version reads the checkpoint directory, newest first.
    pub fn checkpoint_dir_keys(&self) -> &'static [&'static str] {
        if self.major >= 2 {
            &["execution.checkpointing.dir"]
        } else if self.at_least(1, 20) {
            &["execution.checkpointing.dir", "state.checkpoints.dir"]
        } else {
            &["state.checkpoints.dir"]
        }
    }

    /// The default savepoint directory from a cluster configuration, if one is set.
    pub fn default_savepoint_dir<'a>(
        &self,
        config: &'a BTreeMap<String, String>,
    ) -> Option<&'a str> {
        first_key(config, self.savepoint_dir_keys())
    }

    /// The checkpoint directory from a cluster configuration, if one is set.
    pub fn checkpoint_dir<'a>(&self, config: &'a BTreeMap<String, String>) -> Option<&'a str> {
        first_key(config, self.checkpoint_dir_keys())
    }
}

fn first_key<'a>(config: &'a BTreeMap<String, String>, keys: &[&str]) -> Option<&'a str> {
    keys.iter()
        .find_map(|k| config.get(*k))
        .map(String::as_str)
        .filter(|v| !v.is_empty())
}

impl PartialOrd for FlinkVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for FlinkVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.major, self.minor, self.patch).cmp(&(other.major, other.minor, other.patch))
    }
}

impl fmt::Display for FlinkVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Flink {}", self.raw)
    }
}

/// A `flink-version` string that is not `MAJOR.MINOR[.PATCH][-suffix]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a Flink version (expected MAJOR.MINOR[.PATCH], e.g. 2.3.0)")]
pub struct ParseVersionError(String);

impl FromStr for FlinkVersion {
    type Err = ParseVersionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseVersionError(s.to_string());
        let numeric = s.trim().split(['-', '+']).next().unwrap_or_default();
        let mut parts = numeric.split('.');
        let mut next = |required: bool| -> Result<u32, ParseVersionError> {
            match parts.next() {
                Some(p) => p.parse().map_err(|_| err()),
                None if required => Err(err()),
                None => Ok(0),
            }
        };
        let (major, minor, patch) = (next(true)?, next(true)?, next(false)?);
        Ok(FlinkVersion {
            major,
            minor,
            patch,
            raw: s.trim().to_string(),
        })
    }
}

/// Normalises `GET /jobs/:jobid/exceptions` across versions: the root cause is the newest
/// entry of the exception history; the 1.x-only `root-exception` is used only when the
/// history is empty (it is absent in 2.x).
pub(crate) fn job_exceptions(raw: RawExceptions) -> JobExceptions {
    let history: Vec<ExceptionEntry> = raw
        .exception_history
        .as_ref()
        .map(|h| h.entries.iter().map(ExceptionEntry::from_raw).collect())
        .unwrap_or_default();
    let root_cause = history.first().cloned().or_else(|| {
        raw.root_exception
            .as_deref()
            .map(|trace| ExceptionEntry::from_trace(trace, raw.timestamp))
    });
    JobExceptions {
        root_cause,
        history,
        truncated: raw.exception_history.map(|h| h.truncated).unwrap_or(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_release_and_snapshot_versions() {
        let v: FlinkVersion = "2.3.0".parse().unwrap();
        assert_eq!((v.major, v.minor, v.patch), (2, 3, 0));
        let v: FlinkVersion = "1.20-SNAPSHOT".parse().unwrap();
        assert_eq!((v.major, v.minor, v.patch), (1, 20, 0));
        assert_eq!(v.to_string(), "Flink 1.20-SNAPSHOT");
        assert!("2".parse::<FlinkVersion>().is_err());
        assert!("<unknown>".parse::<FlinkVersion>().is_err());
    }

    #[test]
    fn versions_order_numerically_not_lexically() {
        assert!(FlinkVersion::new(1, 20, 5) > FlinkVersion::new(1, 9, 0));
        assert!(FlinkVersion::new(2, 3, 0) > FlinkVersion::new(1, 20, 5));
    }

    #[test]
    fn checkpoint_trigger_needs_flink_1_17() {
        assert!(!FlinkVersion::new(1, 16, 3).supports_checkpoint_trigger());
        assert!(FlinkVersion::new(1, 17, 0).supports_checkpoint_trigger());
        assert!(FlinkVersion::new(1, 20, 5).supports_checkpoint_trigger());
        assert!(FlinkVersion::new(2, 3, 0).supports_checkpoint_trigger());
        assert!(FlinkVersion::new(1, 18, 1).supports_incremental_checkpoint_trigger());
        assert!(!FlinkVersion::new(1, 20, 5).supports_incremental_checkpoint_trigger());
    }

    #[test]
    fn default_savepoint_dir_uses_the_keys_each_version_reads() {
        let config: BTreeMap<String, String> = [(
            "state.savepoints.dir".to_string(),
            "file:///old".to_string(),
        )]
        .into();
        assert_eq!(
            FlinkVersion::new(1, 20, 5).default_savepoint_dir(&config),
            Some("file:///old")
        );
        // Flink 2 no longer reads the old key, so a savepoint would need a target dir.
        assert_eq!(
            FlinkVersion::new(2, 3, 0).default_savepoint_dir(&config),
            None
        );
        let config: BTreeMap<String, String> = [(
            "execution.checkpointing.savepoint-dir".to_string(),
            "file:///new".to_string(),
        )]
        .into();
        assert_eq!(
            FlinkVersion::new(2, 3, 0).default_savepoint_dir(&config),
            Some("file:///new")
        );
    }

    // Trimmed answers of real JobManagers to the same failed counter job.
    const EXCEPTIONS_1_20: &str = r#"{"root-exception":"org.apache.flink.runtime.JobException: Recovery is suppressed by NoRestartBackoffTimeStrategy\n\tat org.apache.flink.runtime.scheduler.adaptive.AdaptiveScheduler.howToHandleFailure(AdaptiveScheduler.java:1)\nCaused by: java.lang.IllegalStateException: counter forced failure at count 20\n\tat flinkpilot.jobs.Counter$Count.processElement(Counter.java:54)\n","timestamp":1795314368409,"all-exceptions":[{"exception":"java.lang.IllegalStateException: counter forced failure at count 20\n\tat x","task":"KeyedProcess -> Sink: Print to Std. Out (1/1)","location":"localhost:33987","endpoint":"localhost:33987","timestamp":1795314368386,"taskManagerId":"localhost:45299-00e2d9"}],"truncated":false,"exceptionHistory":{"entries":[{"exceptionName":"java.lang.IllegalStateException","stacktrace":"java.lang.IllegalStateException: counter forced failure at count 20\n\tat flinkpilot.jobs.Counter$Count.processElement(Counter.java:54)\n","timestamp":1795314368386,"failureLabels":{},"concurrentExceptions":[]}],"truncated":false}}"#;
    const EXCEPTIONS_2_3: &str = r#"{"exceptionHistory":{"entries":[{"exceptionName":"java.lang.IllegalStateException","stacktrace":"java.lang.IllegalStateException: counter forced failure at count 20\n\tat flinkpilot.jobs.Counter$Count.processElement(Counter.java:54)\n","timestamp":1795314368102,"failureLabels":{},"concurrentExceptions":[]}],"truncated":false}}"#;

    #[test]
    fn root_cause_is_the_same_on_1_20_and_2_3() {
        for raw in [EXCEPTIONS_1_20, EXCEPTIONS_2_3] {
            let raw: RawExceptions = serde_json::from_str(raw).unwrap();
            let ex = job_exceptions(raw);
            let root = ex.root_cause.unwrap();
            assert_eq!(
                root.class.as_deref(),
                Some("java.lang.IllegalStateException")
            );
            assert_eq!(
                root.message,
                "java.lang.IllegalStateException: counter forced failure at count 20"
            );
            assert_eq!(ex.history.len(), 1);
        }
    }

    #[test]
    fn legacy_root_exception_is_used_when_history_is_empty() {
        let raw: RawExceptions = serde_json::from_str(
            r#"{"root-exception":"org.apache.flink.runtime.JobException: Recovery is suppressed\n\tat a.B(B.java:1)\nCaused by: java.io.IOException: disk full\n\tat c.D(D.java:2)\n","timestamp":5,"exceptionHistory":{"entries":[],"truncated":false}}"#,
        )
        .unwrap();
        let root = job_exceptions(raw).root_cause.unwrap();
        assert_eq!(
            root.root_cause.as_deref(),
            Some("java.io.IOException: disk full")
        );
        assert_eq!(root.timestamp, Some(5));
    }
}
