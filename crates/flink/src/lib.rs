//! Typed client of the Flink JobManager REST API, Flink configuration rendering and
//! the differences between Flink versions.

pub mod config;
