//! The admission webhook's objects: its Service, the `ValidatingWebhookConfiguration`, and
//! with cert-manager the self-signed Issuer and the Certificate whose Secret the operator mounts.

use k8s_openapi::api::admissionregistration::v1::{
    RuleWithOperations, ServiceReference, ValidatingWebhook, ValidatingWebhookConfiguration,
    WebhookClientConfig,
};
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{Value, json};

use super::operator::pod_selector;
use super::{InstallOptions, labels, meta, to_value};
use crate::webhook::VALIDATE_PATH;

/// Name of the webhook's Service.
pub const SERVICE: &str = "flinkpilot-webhook";
/// Name of the `kubernetes.io/tls` Secret holding the webhook's certificate (`tls.crt`,
/// `tls.key`, and with cert-manager `ca.crt`).
pub const CERT_SECRET: &str = "flinkpilot-webhook-cert";
/// Name of the cert-manager Certificate (same as its Secret).
pub const CERTIFICATE: &str = CERT_SECRET;
/// Name of the cert-manager self-signed Issuer.
pub const ISSUER: &str = "flinkpilot-selfsigned";
/// The webhook's name inside its configuration (must be a qualified name).
pub const WEBHOOK_NAME: &str = "validate.flinkpilot.flink.apache.org";
/// Annotation that makes cert-manager's CA injector fill in `caBundle`.
pub const INJECT_CA_ANNOTATION: &str = "cert-manager.io/inject-ca-from";

/// The ValidatingWebhookConfiguration's name: per operator namespace, so two installs (each
/// watching its own namespaces) do not overwrite each other's.
pub fn configuration_name(opts: &InstallOptions) -> String {
    format!("flinkpilot-{}-validating-webhook", opts.namespace)
}

/// The Service the API server calls the webhook through (443 → the pods' webhook port).
pub fn service(opts: &InstallOptions) -> Value {
    to_value(&Service {
        metadata: meta(SERVICE, Some(&opts.namespace), "webhook"),
        spec: Some(ServiceSpec {
            selector: Some(pod_selector()),
            ports: Some(vec![ServicePort {
                name: Some("https".into()),
                port: 443,
                target_port: Some(IntOrString::String("webhook".into())),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        status: None,
    })
}

/// The `ValidatingWebhookConfiguration`: CREATE and UPDATE of the three kinds go to
/// `/validate`, and fail closed. `caBundle` is left out: cert-manager's CA injector fills it in
/// (the `cert-manager.io/inject-ca-from` annotation); without cert-manager it is patched in by
/// hand (see the header of the install manifest).
pub fn configuration(opts: &InstallOptions) -> Value {
    let mut metadata = meta(&configuration_name(opts), None, "webhook");
    if opts.cert_manager {
        metadata.annotations = Some(
            [(
                INJECT_CA_ANNOTATION.to_string(),
                format!("{}/{CERTIFICATE}", opts.namespace),
            )]
            .into(),
        );
    }
    // Only the watched namespaces: resources elsewhere are another operator's business, and
    // failing closed there would block them whenever this operator is down.
    let namespace_selector = (!opts.watch_namespaces.is_empty()).then(|| LabelSelector {
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: "kubernetes.io/metadata.name".into(),
            operator: "In".into(),
            values: Some(opts.watch_namespaces.clone()),
        }]),
        match_labels: None,
    });
    to_value(&ValidatingWebhookConfiguration {
        metadata,
        webhooks: Some(vec![ValidatingWebhook {
            name: WEBHOOK_NAME.into(),
            admission_review_versions: vec!["v1".into()],
            client_config: WebhookClientConfig {
                service: Some(ServiceReference {
                    name: SERVICE.into(),
                    namespace: opts.namespace.clone(),
                    path: Some(VALIDATE_PATH.into()),
                    port: Some(443),
                }),
                ca_bundle: None,
                url: None,
            },
            failure_policy: Some("Fail".into()),
            // requests through any version of the resources are converted to v1beta1, the
            // version the webhook reads
            match_policy: Some("Equivalent".into()),
            rules: Some(vec![RuleWithOperations {
                api_groups: Some(vec![api::resource::GROUP.into()]),
                api_versions: Some(vec![api::resource::VERSION.into()]),
                operations: Some(vec!["CREATE".into(), "UPDATE".into()]),
                resources: Some(vec![
                    api::FlinkDeployment::CRD_INFO.plural.into(),
                    api::FlinkSessionJob::CRD_INFO.plural.into(),
                    api::FlinkStateSnapshot::CRD_INFO.plural.into(),
                ]),
                scope: Some("Namespaced".into()),
            }]),
            side_effects: "None".into(),
            timeout_seconds: Some(10),
            namespace_selector,
            match_conditions: None,
            object_selector: None,
        }]),
    })
}

/// cert-manager's self-signed Issuer, in the operator's namespace.
pub fn issuer(opts: &InstallOptions) -> Value {
    json!({
        "apiVersion": "cert-manager.io/v1",
        "kind": "Issuer",
        "metadata": {
            "name": ISSUER,
            "namespace": opts.namespace,
            "labels": labels("webhook"),
        },
        "spec": {"selfSigned": {}},
    })
}

/// The webhook's serving certificate, for the Service's DNS names; cert-manager renews it and
/// the operator reloads it from the mounted Secret.
pub fn certificate(opts: &InstallOptions) -> Value {
    let ns = &opts.namespace;
    json!({
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": {
            "name": CERTIFICATE,
            "namespace": ns,
            "labels": labels("webhook"),
        },
        "spec": {
            "secretName": CERT_SECRET,
            "dnsNames": [
                format!("{SERVICE}.{ns}.svc"),
                format!("{SERVICE}.{ns}.svc.cluster.local"),
            ],
            "issuerRef": {"group": "cert-manager.io", "kind": "Issuer", "name": ISSUER},
            "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
            "usages": ["server auth", "digital signature"],
        },
    })
}
