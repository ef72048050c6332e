//! The lifecycle engine: observe → decide (pure) → act, shared by every backend.
//!
//! This crate knows Flink and the `flink.apache.org` resources, not where the processes run:
//! backends implement [`ClusterBackend`] (local processes, Kubernetes objects) and the engine
//! drives them. See `docs/engine.md` for the status protocol that keeps job state safe.

pub mod backend;
pub mod observation;
pub mod plan;

pub use backend::{BackendError, ClusterBackend, ResourceKey};
pub use observation::{
    CheckpointRef, ClusterObservation, JobInfo, JobObservation, Observation, TriggerObservation,
    TriggerState,
};
pub use plan::{ClusterMode, ClusterPlan, JobPlan, ProcessPlan, RestorePlan};
