//! The Kubernetes backend: the controller, child resources, events, leader election and
//! the admission webhook.

pub mod backend;
pub mod controller;
pub mod events;
pub mod http;
pub mod install;
pub mod leader;
pub mod metrics;
pub mod operator;
pub mod resources;
pub mod store;
pub mod webhook;
