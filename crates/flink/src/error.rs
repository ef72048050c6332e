//! Errors of the Flink REST client.
//!
//! Every error that comes from a call says which endpoint it was and which JobManager it
//! went to (the base URL without credentials), so a person reading an Event or a CLI line
//! knows where to look without a debugger.

use std::fmt;
use std::time::Duration;

use crate::ops::{OperationKind, TriggerId};

/// Result of a Flink client call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The endpoint a call went to and the JobManager it was sent to.
///
/// `jobmanager` is the configured base URL with any user info removed; the bearer token is
/// never part of it (it travels in a header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallSite {
    /// Method and path below the base URL, e.g. `POST /v1/jobs/<id>/savepoints`.
    pub endpoint: String,
    /// Base URL of the JobManager REST API, e.g. `http://localhost:8081/`.
    pub jobmanager: String,
}

impl fmt::Display for CallSite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} on JobManager {}", self.endpoint, self.jobmanager)
    }
}

/// What Flink reported as the reason an asynchronous operation (savepoint, checkpoint,
/// disposal) failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureCause {
    /// Java class of the outermost exception, when Flink sent it.
    pub class: Option<String>,
    /// First line of the outermost exception.
    pub message: String,
    /// First line of the innermost `Caused by:` exception, when there is one; usually the
    /// line a person needs (e.g. an I/O error writing the savepoint).
    pub root_cause: Option<String>,
    /// The stack trace, truncated to a readable size.
    pub stack_trace: String,
}

impl fmt::Display for FailureCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        match &self.root_cause {
            Some(root) if root != &self.message => write!(f, " (caused by: {root})"),
            _ => Ok(()),
        }
    }
}

/// A failed Flink REST call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The connection could not be made or broke (refused, DNS, TLS, reset), or a gateway
    /// in front of the JobManager (e.g. the Kubernetes API-server proxy) said the backend is
    /// down.
    #[error(
        "cannot reach the Flink JobManager ({at}): {detail}; check that the JobManager is running and that the REST URL is right"
    )]
    Unreachable {
        /// Where the call went.
        at: CallSite,
        /// What the transport reported.
        detail: String,
    },

    /// No answer within the per-call timeout.
    #[error(
        "the Flink JobManager did not answer within {after:?} ({at}); it may be overloaded or unreachable, try again or raise the timeout"
    )]
    Timeout {
        /// Where the call went.
        at: CallSite,
        /// The timeout that elapsed.
        after: Duration,
    },

    /// Flink answered that the job, jar, trigger or savepoint does not exist.
    #[error("not found: {message} ({at})")]
    NotFound {
        /// Where the call went.
        at: CallSite,
        /// Flink's message, e.g. `Job 0123… not found`.
        message: String,
    },

    /// The server answered, but it is not a Flink JobManager REST API.
    #[error(
        "the server is not a Flink JobManager ({at}): {detail}; check the REST URL and its path prefix"
    )]
    NotFlink {
        /// Where the call went.
        at: CallSite,
        /// What gave it away.
        detail: String,
    },

    /// A gateway or the JobManager refused the credentials (HTTP 401/403).
    #[error(
        "access denied with HTTP {status} ({at}): {message}; check the bearer token, the client certificate and the RBAC rules for the service proxy"
    )]
    Unauthorized {
        /// Where the call went.
        at: CallSite,
        /// 401 or 403.
        status: u16,
        /// What the server said.
        message: String,
    },

    /// Flink answered with an error status and its own error text.
    #[error("Flink rejected the request with HTTP {status} ({at}): {}", errors.join("; "))]
    Flink {
        /// Where the call went.
        at: CallSite,
        /// HTTP status code.
        status: u16,
        /// Flink's error messages, without Java stack traces.
        errors: Vec<String>,
    },

    /// The endpoint or option does not exist in the Flink version behind the URL.
    #[error("not supported by {version} ({at}): {reason}")]
    Unsupported {
        /// Where the call went (or would have gone).
        at: CallSite,
        /// The Flink version, e.g. `Flink 1.16.3`, or `this Flink version` when unknown.
        version: String,
        /// Why, and what to use instead when there is an alternative.
        reason: String,
    },

    /// Flink's answer did not have the expected shape.
    #[error("cannot decode Flink's answer ({at}): {source}")]
    Decode {
        /// Where the call went.
        at: CallSite,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },

    /// An asynchronous operation completed with a failure; `cause` is Flink's own.
    #[error("the {operation} {trigger_id} failed ({at}): {cause}")]
    OperationFailed {
        /// The status endpoint that reported the failure.
        at: CallSite,
        /// Which kind of operation.
        operation: OperationKind,
        /// Its trigger id.
        trigger_id: TriggerId,
        /// What Flink reported.
        cause: Box<FailureCause>,
    },

    /// An asynchronous operation was still running when the caller's deadline passed. It may
    /// still complete: poll again with the same trigger id rather than triggering anew.
    #[error(
        "the {operation} {trigger_id} is still in progress after {waited:?} ({at}); poll it again with the same trigger id instead of triggering a new one"
    )]
    OperationPending {
        /// The status endpoint.
        at: CallSite,
        /// Which kind of operation.
        operation: OperationKind,
        /// Its trigger id.
        trigger_id: TriggerId,
        /// How long the caller waited.
        waited: Duration,
    },

    /// The client configuration is invalid (bad URL, unreadable PEM, …).
    #[error("invalid Flink client configuration in `{field}`: {message}")]
    Config {
        /// The configuration field, e.g. `tls.ca_pem`.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },

    /// A local file the call needs (e.g. a jar to upload) could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// A short, static category: for metric labels and Kubernetes Event reasons, where an
    /// unbounded string would be wrong.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Unreachable { .. } => "Unreachable",
            Error::Timeout { .. } => "Timeout",
            Error::NotFound { .. } => "NotFound",
            Error::NotFlink { .. } => "NotFlink",
            Error::Unauthorized { .. } => "Unauthorized",
            Error::Flink { .. } => "FlinkError",
            Error::Unsupported { .. } => "Unsupported",
            Error::Decode { .. } => "Decode",
            Error::OperationFailed { .. } => "OperationFailed",
            Error::OperationPending { .. } => "OperationPending",
            Error::Config { .. } => "Config",
            Error::Io { .. } => "Io",
        }
    }

    /// Whether trying the same idempotent read again may succeed: the connection failed,
    /// timed out, or Flink/a gateway said it is temporarily unavailable.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Unreachable { .. } | Error::Timeout { .. } => true,
            Error::Flink { status, .. } => matches!(status, 502..=504),
            _ => false,
        }
    }

    /// Whether this is [`Error::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }

    /// The call site, for errors that come from a call.
    pub fn call_site(&self) -> Option<&CallSite> {
        match self {
            Error::Unreachable { at, .. }
            | Error::Timeout { at, .. }
            | Error::NotFound { at, .. }
            | Error::NotFlink { at, .. }
            | Error::Unauthorized { at, .. }
            | Error::Flink { at, .. }
            | Error::Unsupported { at, .. }
            | Error::Decode { at, .. }
            | Error::OperationFailed { at, .. }
            | Error::OperationPending { at, .. } => Some(at),
            Error::Config { .. } | Error::Io { .. } => None,
        }
    }
}

/// Longest error text kept from one Flink error entry.
const MAX_ERROR_LEN: usize = 1000;

/// Turns one entry of Flink's `{"errors": [...]}` into a readable line: the server-side
/// wrapper and the Java stack trace are dropped, and REST plumbing class names are removed
/// so that the message itself comes first.
pub(crate) fn clean_flink_error(raw: &str) -> String {
    let text = raw
        .trim_start_matches("<Exception on server side:")
        .trim_start();
    let text = text.split("\n\tat ").next().unwrap_or(text);
    let mut line = text.trim().trim_end_matches('>').trim().to_string();
    for wrapper in [
        "org.apache.flink.runtime.rest.handler.RestHandlerException: ",
        "org.apache.flink.runtime.rest.NotFoundException: ",
        "java.util.concurrent.CompletionException: ",
    ] {
        if let Some(rest) = line.strip_prefix(wrapper) {
            line = rest.to_string();
        }
    }
    truncate(&mut line, MAX_ERROR_LEN);
    line
}

/// Cleans Flink's error list; drops the generic "Internal server error." entry when a more
/// specific one follows.
pub(crate) fn clean_flink_errors(raw: &[String]) -> Vec<String> {
    let cleaned: Vec<String> = raw.iter().map(|e| clean_flink_error(e)).collect();
    if cleaned.len() > 1 {
        let specific: Vec<String> = cleaned
            .iter()
            .filter(|e| e.as_str() != "Internal server error.")
            .cloned()
            .collect();
        if !specific.is_empty() {
            return specific;
        }
    }
    cleaned
}

/// Cuts `s` to at most `max` bytes on a char boundary, marking the cut.
pub(crate) fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flink_error_text_drops_stack_trace_and_rest_wrappers() {
        let raw = "org.apache.flink.runtime.rest.NotFoundException: Job 00000000000000000000000000000000 not found\n\tat org.apache.flink.runtime.rest.handler.job.AbstractExecutionGraphHandler.lambda$handleRequest$1(AbstractExecutionGraphHandler.java:99)\n\tat java.base/java.util.concurrent.CompletableFuture.uniApply(CompletableFuture.java:646)";
        assert_eq!(
            clean_flink_error(raw),
            "Job 00000000000000000000000000000000 not found"
        );
    }

    #[test]
    fn server_side_exception_wrapper_is_removed_and_generic_entry_dropped() {
        let raw = vec![
            "Internal server error.".to_string(),
            "<Exception on server side:\njava.lang.IllegalStateException: Flink does not support triggering incremental checkpoint explicitly. See FLINK-33723.\n\tat org.apache.flink.runtime.rest.handler.job.checkpoints.CheckpointHandlers.x(CheckpointHandlers.java:1)\n\nEnd of exception on server side>".to_string(),
        ];
        assert_eq!(
            clean_flink_errors(&raw),
            vec![
                "java.lang.IllegalStateException: Flink does not support triggering incremental checkpoint explicitly. See FLINK-33723."
                    .to_string()
            ]
        );
    }

    #[test]
    fn long_error_text_is_truncated_on_a_char_boundary() {
        let mut s = "é".repeat(MAX_ERROR_LEN);
        truncate(&mut s, MAX_ERROR_LEN);
        assert!(s.len() <= MAX_ERROR_LEN + '…'.len_utf8());
        assert!(s.ends_with('…'));
    }

    #[test]
    fn only_connection_failures_timeouts_and_unavailable_are_transient() {
        let at = CallSite {
            endpoint: "GET /v1/jobs".into(),
            jobmanager: "http://jm:8081/".into(),
        };
        let flink = |status| Error::Flink {
            at: at.clone(),
            status,
            errors: vec![],
        };
        assert!(
            Error::Unreachable {
                at: at.clone(),
                detail: "refused".into()
            }
            .is_transient()
        );
        assert!(
            Error::Timeout {
                at: at.clone(),
                after: Duration::from_secs(1)
            }
            .is_transient()
        );
        assert!(flink(503).is_transient());
        assert!(!flink(500).is_transient());
        assert!(!flink(400).is_transient());
        assert!(
            !Error::NotFound {
                at,
                message: "gone".into()
            }
            .is_transient()
        );
    }
}
