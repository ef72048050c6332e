//! The operator's own objects: its Namespace, ServiceAccount, Deployment, PodDisruptionBudget
//! and the Service Prometheus scrapes.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource,
    HTTPGetAction, Namespace, ObjectFieldSelector, PodAffinityTerm, PodAntiAffinity,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile,
    SecretVolumeSource, SecurityContext, Service, ServiceAccount, ServicePort, ServiceSpec, Volume,
    VolumeMount, WeightedPodAffinityTerm,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

use super::rbac::OPERATOR_NAME;
use super::webhook::CERT_SECRET;
use super::{InstallOptions, labels, meta, to_value};

/// Port of `/healthz`, `/readyz` and `/metrics` (plain HTTP).
pub const HTTP_PORT: i32 = 8080;
/// Port of the admission webhook (HTTPS).
pub const WEBHOOK_PORT: i32 = 9443;
/// Where the webhook's `kubernetes.io/tls` Secret is mounted.
pub const WEBHOOK_CERT_DIR: &str = "/etc/flinkpilot/webhook-tls";
/// Name of the Service Prometheus scrapes.
pub const METRICS_SERVICE: &str = "flinkpilot-metrics";
/// Operator replicas: one leader acts, the other stands by and serves the webhook too.
pub const REPLICAS: i32 = 2;

fn selector() -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "app.kubernetes.io/name".to_string(),
            "flinkpilot".to_string(),
        ),
        (
            "app.kubernetes.io/component".to_string(),
            "operator".to_string(),
        ),
    ])
}

/// The pods' label selector, shared by the Deployment and the Services.
pub fn pod_selector() -> BTreeMap<String, String> {
    selector()
}

/// The operator's namespace.
pub fn namespace(opts: &InstallOptions) -> Value {
    to_value(&Namespace {
        metadata: meta(&opts.namespace, None, "operator"),
        ..Default::default()
    })
}

/// The operator's ServiceAccount.
pub fn service_account(opts: &InstallOptions) -> Value {
    to_value(&ServiceAccount {
        metadata: meta(OPERATOR_NAME, Some(&opts.namespace), "operator"),
        ..Default::default()
    })
}

/// The command line the operator container runs with. This is the contract with
/// `flinkpilot operator`'s flags.
pub fn args(opts: &InstallOptions) -> Vec<String> {
    let mut args = vec!["operator".to_string()];
    if !opts.watch_namespaces.is_empty() {
        args.push(format!("--namespaces={}", opts.watch_namespaces.join(",")));
    }
    args.push(format!("--http-addr=0.0.0.0:{HTTP_PORT}"));
    if opts.webhook {
        args.push(format!("--webhook-addr=0.0.0.0:{WEBHOOK_PORT}"));
        args.push(format!("--webhook-cert-dir={WEBHOOK_CERT_DIR}"));
    }
    args
}

fn field_env(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.into(),
                api_version: None,
            }),
            ..Default::default()
        }),
        value: None,
    }
}

fn quantities(pairs: &[(&str, &str)]) -> BTreeMap<String, Quantity> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
        .collect()
}

fn probe(path: &str, period: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String("http".into()),
            ..Default::default()
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(2),
        failure_threshold: Some(3),
        ..Default::default()
    }
}

/// The operator Deployment: two replicas with leader election, probes on `/healthz` and
/// `/readyz`, small requests and limits, non-root with a read-only root file system.
pub fn deployment(opts: &InstallOptions) -> Value {
    let mut volumes = vec![Volume {
        // the only writable place: jars downloaded for session jobs on their way to Flink
        name: "tmp".into(),
        empty_dir: Some(EmptyDirVolumeSource {
            size_limit: Some(Quantity("1Gi".into())),
            ..Default::default()
        }),
        ..Default::default()
    }];
    let mut mounts = vec![VolumeMount {
        name: "tmp".into(),
        mount_path: "/tmp".into(),
        ..Default::default()
    }];
    let mut ports = vec![ContainerPort {
        name: Some("http".into()),
        container_port: HTTP_PORT,
        protocol: Some("TCP".into()),
        ..Default::default()
    }];
    if opts.webhook {
        volumes.push(Volume {
            name: "webhook-tls".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(CERT_SECRET.into()),
                ..Default::default()
            }),
            ..Default::default()
        });
        mounts.push(VolumeMount {
            name: "webhook-tls".into(),
            mount_path: WEBHOOK_CERT_DIR.into(),
            read_only: Some(true),
            ..Default::default()
        });
        ports.push(ContainerPort {
            name: Some("webhook".into()),
            container_port: WEBHOOK_PORT,
            protocol: Some("TCP".into()),
            ..Default::default()
        });
    }
    let container = Container {
        name: "operator".into(),
        image: Some(opts.image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        args: Some(args(opts)),
        env: Some(vec![
            // identity in the leader-election Lease, and the namespace the Lease lives in
            field_env("POD_NAME", "metadata.name"),
            field_env("POD_NAMESPACE", "metadata.namespace"),
            EnvVar {
                name: "RUST_LOG".into(),
                value: Some("info".into()),
                value_from: None,
            },
        ]),
        ports: Some(ports),
        liveness_probe: Some(probe("/healthz", 10)),
        readiness_probe: Some(probe("/readyz", 5)),
        resources: Some(ResourceRequirements {
            // sized for one static binary: the benchmark target is 64 MiB at 1,000 resources
            requests: Some(quantities(&[("cpu", "50m"), ("memory", "64Mi")])),
            limits: Some(quantities(&[("cpu", "1"), ("memory", "256Mi")])),
            ..Default::default()
        }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                add: None,
            }),
            ..Default::default()
        }),
        volume_mounts: Some(mounts),
        ..Default::default()
    };
    let spread = PodAntiAffinity {
        // keep the standby on another node, so one node failure does not take both
        preferred_during_scheduling_ignored_during_execution: Some(vec![WeightedPodAffinityTerm {
            weight: 100,
            pod_affinity_term: PodAffinityTerm {
                label_selector: Some(LabelSelector {
                    match_labels: Some(selector()),
                    match_expressions: None,
                }),
                topology_key: "kubernetes.io/hostname".into(),
                ..Default::default()
            },
        }]),
        required_during_scheduling_ignored_during_execution: None,
    };
    let mut pod_labels = labels("operator");
    pod_labels.extend(selector());
    to_value(&Deployment {
        metadata: meta(OPERATOR_NAME, Some(&opts.namespace), "operator"),
        spec: DeploymentSpec {
            replicas: Some(REPLICAS),
            selector: LabelSelector {
                match_labels: Some(selector()),
                match_expressions: None,
            },
            // never fewer than the current replicas while rolling: the webhook must keep
            // answering (its failurePolicy is Fail)
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(IntOrString::Int(1)),
                    max_unavailable: Some(IntOrString::Int(0)),
                }),
            }),
            template: PodTemplateSpec {
                metadata: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                    labels: Some(pod_labels),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(OPERATOR_NAME.into()),
                    enable_service_links: Some(false),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(65532),
                        run_as_group: Some(65532),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".into(),
                            localhost_profile: None,
                        }),
                        ..Default::default()
                    }),
                    affinity: Some(Affinity {
                        pod_anti_affinity: Some(spread),
                        ..Default::default()
                    }),
                    containers: vec![container],
                    volumes: Some(volumes),
                    ..Default::default()
                }),
            },
            ..Default::default()
        },
        status: None,
    })
}

/// Keeps one replica up through node drains, so the webhook keeps answering.
pub fn disruption_budget(opts: &InstallOptions) -> Value {
    to_value(&PodDisruptionBudget {
        metadata: meta(OPERATOR_NAME, Some(&opts.namespace), "operator"),
        spec: Some(PodDisruptionBudgetSpec {
            min_available: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(selector()),
                match_expressions: None,
            }),
            ..Default::default()
        }),
        status: None,
    })
}

/// The Service in front of `/metrics`.
pub fn metrics_service(opts: &InstallOptions) -> Value {
    to_value(&Service {
        metadata: meta(METRICS_SERVICE, Some(&opts.namespace), "operator"),
        spec: Some(ServiceSpec {
            selector: Some(selector()),
            ports: Some(vec![ServicePort {
                name: Some("http-metrics".into()),
                port: HTTP_PORT,
                target_port: Some(IntOrString::String("http".into())),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        status: None,
    })
}
