//! The local process backend: Flink JobManagers and TaskManagers as supervised local
//! processes, and a file store for local resources.
//!
//! - [`LocalStore`]: one YAML file per resource under the state dir, with Kubernetes API
//!   semantics (generation, resourceVersion, finalizers, deletionTimestamp).

mod fsutil;
pub mod layout;
pub mod store;

pub use layout::StateDir;
pub use store::{
    ApplyOutcome, DeleteOutcome, Event, EventType, LocalStore, StoreError, StoredObject,
};
