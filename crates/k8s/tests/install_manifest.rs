//! The install manifest: `deploy/install.yaml` is current, every document reads as its
//! Kubernetes type, the RBAC grants exactly the permissions listed in `install::rbac` where they
//! are needed, and the Deployment, Services and webhook configuration fit together.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;
use std::path::PathBuf;

use flinkpilot_k8s::install::rbac;
use flinkpilot_k8s::install::{self, InstallOptions, operator, webhook};
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use support::install::{find, listed, manifest, typed, variants};

/// Reads `doc` as `T` and writes it back: equal only if every field is one `T` knows, with
/// the type it expects.
fn round_trips<T: DeserializeOwned + Serialize>(doc: &Value) -> bool {
    let t: T = match serde_json::from_value(doc.clone()) {
        Ok(t) => t,
        Err(_) => return false,
    };
    serde_json::to_value(&t).unwrap() == *doc
}

#[test]
fn deploy_install_yaml_is_current() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/install.yaml");
    let committed = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "deploy/install.yaml is missing ({e}); regenerate it with `{}`",
            install::REGENERATE
        )
    });
    assert!(
        committed == install::to_yaml(&InstallOptions::default()).unwrap(),
        "deploy/install.yaml is stale; regenerate it with `{}`",
        install::REGENERATE
    );
}

#[test]
fn every_document_reads_as_its_kubernetes_type() {
    for opts in variants() {
        let docs = manifest(&opts);
        for doc in &docs {
            let kind = doc["kind"].as_str().unwrap();
            let api_version = doc["apiVersion"].as_str().unwrap();
            let ok = match (api_version, kind) {
                ("apiextensions.k8s.io/v1", "CustomResourceDefinition") => {
                    round_trips::<CustomResourceDefinition>(doc)
                }
                ("v1", "Namespace") => round_trips::<Namespace>(doc),
                ("v1", "ServiceAccount") => round_trips::<ServiceAccount>(doc),
                ("v1", "Service") => round_trips::<Service>(doc),
                ("rbac.authorization.k8s.io/v1", "ClusterRole") => round_trips::<ClusterRole>(doc),
                ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
                    round_trips::<ClusterRoleBinding>(doc)
                }
                ("rbac.authorization.k8s.io/v1", "Role") => round_trips::<Role>(doc),
                ("rbac.authorization.k8s.io/v1", "RoleBinding") => round_trips::<RoleBinding>(doc),
                ("apps/v1", "Deployment") => round_trips::<Deployment>(doc),
                ("policy/v1", "PodDisruptionBudget") => round_trips::<PodDisruptionBudget>(doc),
                ("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration") => {
                    round_trips::<ValidatingWebhookConfiguration>(doc)
                }
                // no Rust types for cert-manager: its required fields are checked by hand
                ("cert-manager.io/v1", "Issuer") => doc["spec"]["selfSigned"].is_object(),
                ("cert-manager.io/v1", "Certificate") => {
                    doc["spec"]["secretName"].is_string()
                        && doc["spec"]["issuerRef"]["name"].is_string()
                        && doc["spec"]["dnsNames"].is_array()
                }
                other => panic!("unexpected document {other:?}"),
            };
            assert!(ok, "{kind} does not read as its type:\n{doc:#}");
            // namespaced kinds say where they go; kubectl must not guess from its context
            let cluster_scoped = [
                "CustomResourceDefinition",
                "Namespace",
                "ClusterRole",
                "ClusterRoleBinding",
                "ValidatingWebhookConfiguration",
            ]
            .contains(&kind);
            assert_eq!(
                doc["metadata"]["namespace"].is_string(),
                !cluster_scoped,
                "{kind} {}",
                doc["metadata"]["name"]
            );
        }
        let names: Vec<(String, String, String)> = docs
            .iter()
            .map(|d| {
                (
                    d["kind"].to_string(),
                    d["metadata"]["namespace"].to_string(),
                    d["metadata"]["name"].to_string(),
                )
            })
            .collect();
        let unique: BTreeSet<_> = names.iter().collect();
        assert_eq!(unique.len(), names.len(), "duplicate objects in {opts:?}");
    }
}

#[test]
fn the_default_manifest_holds_the_crds_and_every_part() {
    let docs = manifest(&InstallOptions::default());
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(
        &kinds[..3],
        ["CustomResourceDefinition"; 3],
        "the CRDs come first"
    );
    assert_eq!(
        kinds.last(),
        Some(&"ValidatingWebhookConfiguration"),
        "the webhook configuration comes last"
    );
    for kind in [
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "Service",
        "Issuer",
        "Certificate",
        "PodDisruptionBudget",
    ] {
        assert!(kinds.contains(&kind), "{kind} missing: {kinds:?}");
    }
    let crds: Vec<CustomResourceDefinition> = docs[..3].iter().map(typed).collect();
    assert_eq!(crds, api::crd::all());
}

#[test]
fn the_operator_deployment_is_small_non_root_and_probed() {
    let opts = listed(&["team-a", "team-b"]);
    let docs = manifest(&opts);
    let d: Deployment = typed(
        find(
            &docs,
            "Deployment",
            rbac::OPERATOR_NAME,
            Some(&opts.namespace),
        )
        .unwrap(),
    );
    assert_eq!(d.spec.replicas, Some(operator::REPLICAS));
    let pod = d.spec.template.spec.unwrap();
    assert_eq!(
        pod.service_account_name.as_deref(),
        Some(rbac::OPERATOR_NAME)
    );
    let psc = pod.security_context.unwrap();
    assert_eq!(psc.run_as_non_root, Some(true));
    assert!(psc.run_as_user.unwrap() > 0);
    let c = &pod.containers[0];
    assert_eq!(c.image.as_deref(), Some(install::DEFAULT_IMAGE));
    let args = c.args.clone().unwrap();
    assert!(
        args.contains(&"--namespaces=team-a,team-b".to_string()),
        "{args:?}"
    );
    assert_eq!(args[0], "operator");
    let sc = c.security_context.clone().unwrap();
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.capabilities.unwrap().drop.unwrap(), ["ALL"]);
    let resources = c.resources.clone().unwrap();
    for key in ["cpu", "memory"] {
        assert!(
            resources.requests.as_ref().unwrap().contains_key(key),
            "{key}"
        );
        assert!(
            resources.limits.as_ref().unwrap().contains_key(key),
            "{key}"
        );
    }
    // probes point at the health server's named port
    let ports: Vec<(String, i32)> = c
        .ports
        .iter()
        .flatten()
        .map(|p| (p.name.clone().unwrap(), p.container_port))
        .collect();
    assert!(
        ports.contains(&("http".to_string(), operator::HTTP_PORT)),
        "{ports:?}"
    );
    for (probe, path) in [
        (&c.liveness_probe, "/healthz"),
        (&c.readiness_probe, "/readyz"),
    ] {
        let get = probe.clone().unwrap().http_get.unwrap();
        assert_eq!(get.path.as_deref(), Some(path));
        assert_eq!(
            get.port,
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String("http".into())
        );
    }
    // the pods are what the Services select
    let pod_labels = d.spec.template.metadata.unwrap().labels.unwrap();
    for svc in [operator::METRICS_SERVICE, webhook::SERVICE] {
        let s: Service = typed(find(&docs, "Service", svc, Some(&opts.namespace)).unwrap());
        let spec = s.spec.unwrap();
        for (k, v) in spec.selector.unwrap() {
            assert_eq!(pod_labels.get(&k), Some(&v), "{svc} selects {k}={v}");
        }
    }
    // watching all namespaces: no --namespaces flag
    let docs_all = manifest(&InstallOptions::default());
    let d: Deployment = typed(
        find(
            &docs_all,
            "Deployment",
            rbac::OPERATOR_NAME,
            Some("flinkpilot"),
        )
        .unwrap(),
    );
    let args = d.spec.template.spec.unwrap().containers[0]
        .args
        .clone()
        .unwrap();
    assert!(
        !args.iter().any(|a| a.starts_with("--namespaces")),
        "{args:?}"
    );
}

#[test]
fn the_webhook_configuration_reaches_the_operator_and_fails_closed() {
    let opts = listed(&["team-a"]);
    let docs = manifest(&opts);
    let vwc: ValidatingWebhookConfiguration = typed(
        find(
            &docs,
            "ValidatingWebhookConfiguration",
            &webhook::configuration_name(&opts),
            None,
        )
        .unwrap(),
    );
    let hook = &vwc.webhooks.as_ref().unwrap()[0];
    assert_eq!(hook.failure_policy.as_deref(), Some("Fail"));
    assert_eq!(hook.side_effects, "None");
    assert_eq!(hook.admission_review_versions, ["v1"]);
    assert_eq!(hook.match_policy.as_deref(), Some("Equivalent"));
    let rule = &hook.rules.as_ref().unwrap()[0];
    assert_eq!(rule.operations.as_deref().unwrap(), ["CREATE", "UPDATE"]);
    assert_eq!(
        rule.resources.as_deref().unwrap(),
        [
            "flinkdeployments",
            "flinksessionjobs",
            "flinkstatesnapshots"
        ]
    );
    assert_eq!(rule.api_groups.as_deref().unwrap(), ["flink.apache.org"]);
    // only the watched namespaces
    let selector = hook.namespace_selector.as_ref().unwrap();
    let expr = &selector.match_expressions.as_ref().unwrap()[0];
    assert_eq!(expr.key, "kubernetes.io/metadata.name");
    assert_eq!(expr.values.as_deref().unwrap(), ["team-a"]);

    // service → Service → the container's webhook port
    let svc_ref = hook.client_config.service.as_ref().unwrap();
    assert_eq!(
        svc_ref.path.as_deref(),
        Some(flinkpilot_k8s::webhook::VALIDATE_PATH)
    );
    assert_eq!(svc_ref.namespace, opts.namespace);
    let svc: Service = typed(find(&docs, "Service", &svc_ref.name, Some(&opts.namespace)).unwrap());
    let port = &svc.spec.unwrap().ports.unwrap()[0];
    assert_eq!(Some(port.port), svc_ref.port);
    let d: Deployment = typed(
        find(
            &docs,
            "Deployment",
            rbac::OPERATOR_NAME,
            Some(&opts.namespace),
        )
        .unwrap(),
    );
    let pod = d.spec.template.spec.unwrap();
    let c = &pod.containers[0];
    let target = port.target_port.clone().unwrap();
    let named = c.ports.iter().flatten().find(|p| {
        target
            == k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(
                p.name.clone().unwrap(),
            )
    });
    assert_eq!(
        named.map(|p| p.container_port),
        Some(operator::WEBHOOK_PORT)
    );
    assert!(c.args.as_ref().unwrap().contains(&format!(
        "--webhook-addr=0.0.0.0:{}",
        operator::WEBHOOK_PORT
    )));

    // cert-manager: the Certificate covers the Service's name, its Secret is what the pods
    // mount, and the CA injector is pointed at it
    let cert = find(
        &docs,
        "Certificate",
        webhook::CERTIFICATE,
        Some(&opts.namespace),
    )
    .unwrap();
    let dns: Vec<&str> = cert["spec"]["dnsNames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        dns.contains(&format!("{}.{}.svc", svc_ref.name, opts.namespace).as_str()),
        "{dns:?}"
    );
    let secret = cert["spec"]["secretName"].as_str().unwrap();
    let mounted = pod
        .volumes
        .iter()
        .flatten()
        .filter_map(|v| v.secret.as_ref()?.secret_name.clone())
        .collect::<Vec<_>>();
    assert_eq!(mounted, [secret]);
    assert_eq!(
        vwc.metadata.annotations.unwrap()[webhook::INJECT_CA_ANNOTATION],
        format!("{}/{}", opts.namespace, webhook::CERTIFICATE)
    );
    assert!(hook.client_config.ca_bundle.is_none());
    let issuer = &cert["spec"]["issuerRef"]["name"];
    assert!(
        find(
            &docs,
            "Issuer",
            issuer.as_str().unwrap(),
            Some(&opts.namespace)
        )
        .is_some()
    );
}

#[test]
fn without_cert_manager_the_secret_and_ca_are_left_to_the_user() {
    let opts = InstallOptions {
        cert_manager: false,
        ..InstallOptions::default()
    };
    let text = install::to_yaml(&opts).unwrap();
    let docs = manifest(&opts);
    assert!(docs.iter().all(|d| d["apiVersion"] != "cert-manager.io/v1"));
    let vwc = docs.last().unwrap();
    assert_eq!(vwc["kind"], "ValidatingWebhookConfiguration");
    assert!(vwc["metadata"]["annotations"].is_null(), "{vwc}");
    // the header says how to provide both
    assert!(
        text.contains(&format!("create secret tls {}", webhook::CERT_SECRET)),
        "{text:.2000}"
    );
    assert!(
        text.contains("/webhooks/0/clientConfig/caBundle"),
        "{text:.2000}"
    );
}

#[test]
fn without_the_webhook_nothing_of_it_is_installed() {
    let opts = InstallOptions {
        webhook: false,
        ..InstallOptions::default()
    };
    let docs = manifest(&opts);
    assert!(
        docs.iter()
            .all(|d| d["kind"] != "ValidatingWebhookConfiguration")
    );
    assert!(docs.iter().all(|d| d["apiVersion"] != "cert-manager.io/v1"));
    assert!(find(&docs, "Service", webhook::SERVICE, Some(&opts.namespace)).is_none());
    let d: Deployment = typed(
        find(
            &docs,
            "Deployment",
            rbac::OPERATOR_NAME,
            Some(&opts.namespace),
        )
        .unwrap(),
    );
    let pod = d.spec.template.spec.unwrap();
    assert!(pod.volumes.iter().flatten().all(|v| v.secret.is_none()));
    let args = pod.containers[0].args.clone().unwrap();
    assert!(!args.iter().any(|a| a.starts_with("--webhook")), "{args:?}");
}
