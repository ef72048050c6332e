//! What can go wrong in the store, with messages that name the object or file.

use std::io;
use std::path::{Path, PathBuf};

use engine::ResourceKey;

/// A store operation that failed. Messages name the object (`FlinkDeployment default/app`) or
/// the file, and say what to do.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The object has no name, or a name or namespace that is not a valid Kubernetes name.
    #[error("{kind} {key}: {reason}")]
    InvalidName {
        /// Kind of the object.
        kind: String,
        /// `namespace/name` as given.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// No such object.
    #[error("{kind} {key} not found")]
    NotFound {
        /// Kind of the object.
        kind: String,
        /// The object.
        key: ResourceKey,
    },
    /// A conditional write found a newer version: someone else wrote in between.
    #[error(
        "{kind} {key} was changed by another writer (resourceVersion is {actual}, expected \
         {expected}); read it again and retry"
    )]
    Conflict {
        /// Kind of the object.
        kind: String,
        /// The object.
        key: ResourceKey,
        /// The version the caller read.
        expected: String,
        /// The version stored now.
        actual: String,
    },
    /// A finalizer cannot be added to an object that is being deleted.
    #[error("{kind} {key} is being deleted; no finalizer can be added to it")]
    Terminating {
        /// Kind of the object.
        kind: String,
        /// The object.
        key: ResourceKey,
    },
    /// Another controller holds the state dir.
    #[error(
        "another flinkpilot controller{} already runs on the state dir {dir}; stop it first or \
         use another --state-dir",
        pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    ControllerRunning {
        /// The state dir.
        dir: PathBuf,
        /// The other controller's pid, when it wrote one.
        pid: Option<u32>,
    },
    /// A file could not be read or written.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was attempted (`read`, `write`, `lock`, …).
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A stored file does not hold a valid object (edited by hand?).
    #[error("{} does not hold a valid {kind}: {message}; fix or remove the file", path.display())]
    Corrupt {
        /// Kind expected.
        kind: String,
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// The object could not be written as YAML.
    #[error("cannot serialize {kind} {key}: {message}")]
    Serialize {
        /// Kind of the object.
        kind: String,
        /// The object.
        key: ResourceKey,
        /// The serializer's message.
        message: String,
    },
}

impl StoreError {
    pub(super) fn io<'a>(
        action: &'static str,
        path: &'a Path,
    ) -> impl FnOnce(io::Error) -> StoreError + 'a {
        move |source| StoreError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}
