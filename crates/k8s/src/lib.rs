//! The Kubernetes backend: the controller, child resources, events, leader election and
//! the admission webhook.

pub mod resources;
