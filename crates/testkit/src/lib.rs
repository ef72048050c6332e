//! Test support only: provisions a real Flink, builds the test jobs under `jobs/`, starts
//! clusters, and fakes the Kubernetes API server. Nothing in the product depends on it.

pub mod kube_fake;
