//! Behaviour of the generated children as a whole: ownership, labels and selectors, mode
//! specifics, version differences, pod template merging, secrets.

use std::collections::BTreeMap;

use api::{FlinkDeployment, FlinkVersion, IngressSpec, IngressTls};
use engine::RestorePlan;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Container;

use super::testing::{TEST_UID, as_stored, plan_for};
use super::*;

mod templates;

pub(super) fn app() -> FlinkDeployment {
    as_stored(FlinkDeployment::test("app").application())
}

pub(super) fn build(d: &FlinkDeployment, kind: ClusterType) -> Children {
    let plan = plan_for(d);
    let settings = ResourceSettings::default();
    match kind {
        ClusterType::Native => native(d, &plan, &settings),
        ClusterType::Standalone => standalone(d, &plan, &settings),
    }
    .unwrap()
}

pub(super) fn main_container(d: &Deployment) -> &Container {
    let spec = d.spec.template.spec.as_ref().unwrap();
    spec.containers
        .iter()
        .find(|c| c.name == "flink-main-container")
        .unwrap()
}

pub(super) fn config_text(c: &Children, name: &str) -> String {
    let cm = c.config_map(&format!("flink-config-{name}")).unwrap();
    let data = cm.data.as_ref().unwrap();
    data.get("config.yaml")
        .or_else(|| data.get("flink-conf.yaml"))
        .unwrap()
        .clone()
}

pub(super) fn with_ingress(mut d: FlinkDeployment) -> FlinkDeployment {
    d.spec.ingress = Some(IngressSpec {
        template: Some("{{name}}.{{namespace}}.flink.k8s.io".into()),
        class_name: Some("nginx".into()),
        tls: Some(vec![IngressTls {
            hosts: Some(vec!["app.default.flink.k8s.io".into()]),
            secret_name: Some("tls".into()),
        }]),
        ..Default::default()
    });
    d
}

#[test]
fn every_child_is_owned_by_the_flink_deployment_as_controller() {
    for kind in [ClusterType::Native, ClusterType::Standalone] {
        let children = build(&with_ingress(app()), kind);
        assert!(children.len() >= 5, "{kind:?}: {:?}", children.ids());
        for child in &children {
            let owners = child.meta().owner_references.as_ref().unwrap();
            assert_eq!(owners.len(), 1, "{}", child.name());
            let o = &owners[0];
            assert_eq!(
                (
                    o.api_version.as_str(),
                    o.kind.as_str(),
                    o.name.as_str(),
                    o.uid.as_str()
                ),
                (
                    "flink.apache.org/v1beta1",
                    "FlinkDeployment",
                    "app",
                    TEST_UID
                )
            );
            assert_eq!(
                (o.controller, o.block_owner_deletion),
                (Some(true), Some(true))
            );
            assert_eq!(child.meta().namespace.as_deref(), Some("default"));
        }
    }
}

#[test]
fn every_child_matches_the_managed_selector_and_nothing_flink_creates_does() {
    for kind in [ClusterType::Native, ClusterType::Standalone] {
        let children = build(&with_ingress(app()), kind);
        let selector: BTreeMap<&str, &str> = children
            .label_selector()
            .split(',')
            .map(|kv| kv.split_once('=').unwrap())
            .collect();
        assert_eq!(selector["app.kubernetes.io/managed-by"], "flinkpilot");
        for child in &children {
            let labels = child.meta().labels.as_ref().unwrap();
            for (k, v) in &selector {
                assert_eq!(
                    labels.get(*k).map(String::as_str),
                    Some(*v),
                    "{} {k}",
                    child.name()
                );
            }
        }
        // pods (what Flink's own TaskManager pods look like) do not carry the managed-by label
        for name in ["app", "app-taskmanager"] {
            if let Some(d) = children.deployment(name) {
                let pod_labels = d
                    .spec
                    .template
                    .metadata
                    .as_ref()
                    .unwrap()
                    .labels
                    .as_ref()
                    .unwrap();
                assert!(!pod_labels.contains_key("app.kubernetes.io/managed-by"));
            }
        }
    }
}

#[test]
fn deployment_selectors_match_their_pods_and_services_select_the_jobmanager_only() {
    for kind in [ClusterType::Native, ClusterType::Standalone] {
        let children = build(&app(), kind);
        let jm = children.deployment("app").unwrap();
        let jm_pod = jm
            .spec
            .template
            .metadata
            .as_ref()
            .unwrap()
            .labels
            .clone()
            .unwrap();
        for d in [Some(jm), children.deployment("app-taskmanager")]
            .into_iter()
            .flatten()
        {
            let selector = d.spec.selector.match_labels.as_ref().unwrap();
            let pod = d
                .spec
                .template
                .metadata
                .as_ref()
                .unwrap()
                .labels
                .as_ref()
                .unwrap();
            for (k, v) in selector {
                assert_eq!(
                    pod.get(k),
                    Some(v),
                    "{}: {k}",
                    d.metadata.name.as_deref().unwrap()
                );
            }
        }
        for svc in ["app", "app-rest"] {
            let selector = children
                .service(svc)
                .unwrap()
                .spec
                .as_ref()
                .unwrap()
                .selector
                .clone()
                .unwrap();
            assert_eq!(selector["component"], "jobmanager");
            assert!(
                selector.iter().all(|(k, v)| jm_pod.get(k) == Some(v)),
                "{svc}"
            );
        }
        if let Some(tm) = children.deployment("app-taskmanager") {
            let tm_selector = tm.spec.selector.match_labels.as_ref().unwrap();
            assert_eq!(tm_selector["component"], "taskmanager");
            assert_ne!(tm_selector, jm.spec.selector.match_labels.as_ref().unwrap());
        }
        let type_label = jm_pod["type"].as_str();
        assert_eq!(type_label, kind.label());
    }
}

#[test]
fn native_runs_flinks_kubernetes_entrypoint_and_ships_the_taskmanager_template() {
    let children = build(&app(), ClusterType::Native);
    let jm = children.deployment("app").unwrap();
    let main = main_container(jm);
    assert_eq!(main.command.as_deref().unwrap(), ["/docker-entrypoint.sh"]);
    assert_eq!(
        main.args.as_deref().unwrap(),
        [
            "bash",
            "-c",
            "kubernetes-jobmanager.sh kubernetes-application "
        ]
    );
    assert!(children.deployment("app-taskmanager").is_none());
    let config = config_text(&children, "app");
    for line in [
        "execution.target: \"kubernetes-application\"",
        "kubernetes.cluster-id: \"app\"",
        "pipeline.jars: \"local:///opt/flink/usrlib/counter.jar\"",
        "jobmanager.rpc.address: \"app.default\"",
    ] {
        assert!(config.contains(line), "{line} missing from\n{config}");
    }
}

#[test]
fn session_clusters_use_the_session_entrypoints() {
    let session = as_stored(FlinkDeployment::test("s"));
    let native = build(&session, ClusterType::Native);
    assert_eq!(
        main_container(native.deployment("s").unwrap())
            .args
            .as_deref()
            .unwrap(),
        ["bash", "-c", "kubernetes-jobmanager.sh kubernetes-session "]
    );
    assert!(config_text(&native, "s").contains("execution.target: \"kubernetes-session\""));
    let standalone = build(&session, ClusterType::Standalone);
    assert_eq!(
        main_container(standalone.deployment("s").unwrap())
            .args
            .as_deref()
            .unwrap(),
        ["jobmanager"]
    );
    assert_eq!(
        main_container(standalone.deployment("s-taskmanager").unwrap())
            .args
            .as_deref()
            .unwrap(),
        ["taskmanager"]
    );
}

#[test]
fn standalone_application_passes_class_savepoint_and_args_to_standalone_job() {
    let mut d = app().with_config("high-availability.type", "kubernetes");
    let job = d.spec.job.as_mut().unwrap();
    job.entry_class = Some("org.example.Counter".into());
    job.args = Some(vec!["--rate".into(), "10".into()]);
    let mut plan = plan_for(&d);
    plan.job.as_mut().unwrap().restore = Some(RestorePlan {
        path: "s3://b/savepoint-1".into(),
        allow_non_restored_state: true,
    });
    let children = standalone(&d, &plan, &ResourceSettings::default()).unwrap();
    let main = main_container(children.deployment("app").unwrap());
    assert_eq!(
        main.args.as_deref().unwrap(),
        [
            "standalone-job",
            "--job-classname",
            "org.example.Counter",
            "--allowNonRestoredState",
            "--fromSavepoint",
            "s3://b/savepoint-1",
            "-Djobmanager.rpc.address=$(_POD_IP_ADDRESS)",
            "--rate",
            "10"
        ]
    );
    let config = config_text(&children, "app");
    assert!(
        config.contains("pipeline.classpaths: \"file:///opt/flink/usrlib/counter.jar\""),
        "{config}"
    );
    assert!(config.contains("execution.target: \"remote\""), "{config}");
    assert!(
        !config.contains("kubernetes.jobmanager.owner.reference"),
        "{config}"
    );
}

#[test]
fn standalone_scaling_changes_only_the_taskmanager_replicas() {
    let d = app().with_config("scheduler-mode", "reactive");
    let plan = plan_for(&d);
    let mut scaled = plan.clone();
    scaled.taskmanager.replicas = plan.taskmanager.replicas + 3;
    let settings = ResourceSettings::default();
    let before = standalone(&d, &plan, &settings).unwrap();
    let after = standalone(&d, &scaled, &settings).unwrap();
    let mut changed = Vec::new();
    for (a, b) in before.iter().zip(after.iter()) {
        if a != b {
            changed.push(a.name().to_string());
        }
    }
    assert_eq!(changed, ["app-taskmanager"]);
    let replicas = |c: &Children| c.deployment("app-taskmanager").unwrap().spec.replicas;
    assert_eq!(
        replicas(&after),
        Some(i32::try_from(scaled.taskmanager.replicas).unwrap())
    );
    assert_ne!(replicas(&before), replicas(&after));
}

#[test]
fn high_availability_drops_the_internal_service_and_names_the_ha_cluster() {
    let d = app()
        .with_config("high-availability.type", "kubernetes")
        .with_config("high-availability.storageDir", "s3://b/ha");
    for kind in [ClusterType::Native, ClusterType::Standalone] {
        let children = build(&d, kind);
        assert!(children.service("app").is_none(), "{kind:?}");
        assert!(children.service("app-rest").is_some());
        let config = config_text(&children, "app");
        assert!(
            config.contains("high-availability.cluster-id: \"app\""),
            "{config}"
        );
        assert!(
            config.contains("high-availability.jobmanager.port: \"6123\""),
            "{config}"
        );
        assert!(!config.contains("jobmanager.rpc.address"), "{config}");
    }
}

#[test]
fn the_config_file_is_config_yaml_from_flink_1_19_and_flink_conf_yaml_before() {
    for (version, file, other) in [
        (FlinkVersion::v1_18, "flink-conf.yaml", "config.yaml"),
        (FlinkVersion::v1_19, "config.yaml", "flink-conf.yaml"),
        (FlinkVersion::v2_3, "config.yaml", "flink-conf.yaml"),
    ] {
        let d = app().with_version(version);
        let children = build(&d, ClusterType::Native);
        let cm = children.config_map("flink-config-app").unwrap();
        let data = cm.data.as_ref().unwrap();
        assert!(
            data.contains_key(file) && !data.contains_key(other),
            "{version}"
        );
        let jm = children.deployment("app").unwrap();
        let volumes = jm
            .spec
            .template
            .spec
            .as_ref()
            .unwrap()
            .volumes
            .as_ref()
            .unwrap();
        let config_volume = volumes
            .iter()
            .find(|v| v.name == "flink-config-volume")
            .unwrap();
        let items = config_volume
            .config_map
            .as_ref()
            .unwrap()
            .items
            .as_ref()
            .unwrap();
        assert!(items.iter().any(|i| i.key == file), "{version}: {items:?}");
        if version == FlinkVersion::v1_18 {
            // Flink's line-based reader: no quoting
            assert!(
                data[file].contains("kubernetes.cluster-id: app\n"),
                "{}",
                data[file]
            );
        }
    }
}

#[test]
fn a_resource_without_uid_cannot_own_children() {
    let mut d = app();
    d.metadata.uid = None;
    let mut plan = plan_for(&d);
    plan.owner_uid = None;
    let e = native(&d, &plan, &ResourceSettings::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("metadata.uid"), "{e}");
}

#[test]
fn children_have_stable_identities_for_apply_and_prune() {
    let children = build(&with_ingress(app()), ClusterType::Standalone);
    let ids: Vec<(String, String)> = children
        .ids()
        .into_iter()
        .map(|id| (id.resource.kind, id.name))
        .collect();
    let expected = [
        ("ConfigMap", "flink-config-app"),
        ("Deployment", "app"),
        ("Deployment", "app-taskmanager"),
        ("Service", "app"),
        ("Service", "app-rest"),
        ("Ingress", "app"),
    ];
    assert_eq!(ids, expected.map(|(k, n)| (k.to_string(), n.to_string())));
    let ingress_id = children.get("Ingress", "app").unwrap().id();
    assert_eq!(ingress_id.resource.group, "networking.k8s.io");
    assert_eq!(ingress_id.resource.plural, "ingresses");
    let value = children.get("Deployment", "app").unwrap().to_value();
    assert_eq!(value["apiVersion"], "apps/v1");
    assert_eq!(value["kind"], "Deployment");
}
