//! The Kubernetes backend: the controller, child resources, events, leader election and
//! the admission webhook.

pub mod http;
pub mod install;
pub mod metrics;
pub mod resources;
pub mod webhook;
