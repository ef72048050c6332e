//! The local process backend: Flink JobManagers and TaskManagers as supervised local
//! processes, and a file store for local resources.
//!
//! - [`LocalBackend`] implements the engine's [`engine::ClusterBackend`]: one directory per
//!   cluster under `<state-dir>/clusters/<namespace>/<name>/` (conf, logs, runtime record),
//!   processes that outlive the controller and are adopted again by the next one.
//! - [`LocalStore`]: one YAML file per resource under the same state dir, with Kubernetes API
//!   semantics (generation, resourceVersion, finalizers, deletionTimestamp).
//! - [`FlinkHomes`]: which Flink distribution runs a `flinkVersion`, installed from PyPI into
//!   a shared cache when missing ([`provision`]).
//!
//! See [`layout`] for what lives where under the state dir.

mod backend;
mod fsutil;
pub mod homes;
mod launch;
pub mod layout;
mod ports;
mod process;
mod procfs;
pub mod provision;
mod redact;
mod render;
mod runtime;
mod snapshots;
pub mod store;
mod supervise;

pub use backend::{ClusterInfo, LocalBackend, ProcessInfo};
pub use homes::{FlinkHome, FlinkHomes, HomeError, release_for};
pub use layout::StateDir;
pub use ports::Ports;
pub use render::{DEFAULT_JOBMANAGER_MEMORY, DEFAULT_TASKMANAGER_MEMORY};
pub use runtime::Role;
pub use store::{
    ApplyOutcome, DeleteOutcome, Event, EventType, LocalStore, StoreError, StoredObject,
};
pub use supervise::StopTimeouts;
