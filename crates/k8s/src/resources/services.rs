//! The Services of a cluster, as Flink's `InternalServiceDecorator` and
//! `ExternalServiceDecorator` build them: the headless internal Service `<name>` (RPC and blob
//! ports, only without HA — with HA the TaskManagers find the leader through Kubernetes) and the
//! REST Service `<name>-rest`, whose type is `kubernetes.rest-service.exposed.type`.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::labels::{self, Component};
use super::{Cluster, ResourceError};

/// The internal Service, `None` when HA is on.
pub fn internal(c: &Cluster<'_>) -> Option<Service> {
    if c.cfg.ha {
        return None;
    }
    let mut meta = c.meta(c.names.jobmanager(), &Default::default());
    let annotations = c.options().map("kubernetes.internal-service.annotations");
    if !annotations.is_empty() {
        meta.annotations = Some(annotations);
    }
    Some(Service {
        metadata: meta,
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            selector: Some(labels::selector(
                c.names.cluster_id(),
                c.kind,
                Component::JobManager,
            )),
            ports: Some(vec![
                service_port("jobmanager-rpc", c.cfg.ports.rpc, None),
                service_port("blobserver", c.cfg.ports.blob, None),
            ]),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// The REST Service.
pub fn rest(c: &Cluster<'_>) -> Result<Service, ResourceError> {
    let options = c.options();
    let key = "kubernetes.rest-service.exposed.type";
    let exposed = options.string(key).unwrap_or("ClusterIP");
    let (service_type, headless) = match exposed.to_ascii_lowercase().as_str() {
        "clusterip" => ("ClusterIP", false),
        "nodeport" => ("NodePort", false),
        "loadbalancer" => ("LoadBalancer", false),
        "headless_clusterip" => ("ClusterIP", true),
        _ => {
            return Err(ResourceError::Invalid {
                name: c.names.cluster_id().into(),
                field: format!("spec.flinkConfiguration.{key}"),
                message: format!(
                    "`{exposed}` is not a service type; use ClusterIP, NodePort, LoadBalancer or \
                     Headless_ClusterIP"
                ),
            });
        }
    };
    let target = options
        .fixed_port("rest.bind-port")
        .unwrap_or(c.cfg.ports.rest);
    let mut meta = c.meta(
        c.names.rest_service(),
        &options.map("kubernetes.rest-service.labels"),
    );
    let annotations = options.map("kubernetes.rest-service.annotations");
    if !annotations.is_empty() {
        meta.annotations = Some(annotations);
    }
    Ok(Service {
        metadata: meta,
        spec: Some(ServiceSpec {
            type_: Some(service_type.into()),
            cluster_ip: headless.then(|| "None".to_string()),
            selector: Some(labels::selector(
                c.names.cluster_id(),
                c.kind,
                Component::JobManager,
            )),
            ports: Some(vec![service_port("rest", c.cfg.ports.rest, Some(target))]),
            ..Default::default()
        }),
        ..Default::default()
    })
}

fn service_port(name: &str, port: u16, target: Option<u16>) -> ServicePort {
    ServicePort {
        name: Some(name.into()),
        port: i32::from(port),
        target_port: target.map(|t| IntOrString::Int(i32::from(t))),
        ..Default::default()
    }
}
