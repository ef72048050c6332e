//! The lifecycle engine: observe → decide (pure) → act, shared by every backend.
//!
//! This crate knows Flink and the `flink.apache.org` resources, not where the processes run:
//! backends implement [`ClusterBackend`] (local processes, Kubernetes objects) and the engine
//! drives them. See `docs/engine.md` for the status protocol that keeps job state safe.

pub mod act;
pub mod action;
pub mod backend;
pub mod controller;
pub mod decide;
pub mod failpoint;
pub mod lifecycle;
pub mod observation;
pub mod observe;
pub mod plan;
pub mod plan_builder;
mod polled;
pub mod session_job;
pub mod settings;
pub mod snapshot;

pub use act::{ActReport, FINALIZER, StatusStore, StoreError, act};
pub use action::{Action, Event, EventReason, EventType, Outcome, SavepointCall};
pub use backend::{BackendError, ClusterBackend, ResourceKey};
pub use controller::{ControllerOptions, ResourceStore};
pub use decide::{
    DecideInput, Decision, FreshIds, ObserveNeeds, apply_outcome, decide, observe_needs,
};
pub use lifecycle::lifecycle_state;
pub use observation::{
    CheckpointRef, ClusterObservation, JobInfo, JobObservation, Observation, Progress,
    SnapshotObservation, TriggerObservation, TriggerState,
};
pub use observe::observe;
pub use plan::{ClusterMode, ClusterPlan, JobPlan, ProcessPlan, RestorePlan};
pub use settings::{PathMap, Settings};
