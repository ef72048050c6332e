//! Behaviour of the generated children as a whole: ownership, labels and selectors, mode
//! specifics, version differences, pod template merging, secrets.

use std::collections::BTreeMap;

use api::{FlinkDeployment, FlinkVersion, IngressSpec, IngressTls, PodTemplate};
use engine::RestorePlan;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Container;
use serde_json::json;

use super::testing::{TEST_UID, as_stored, plan_for};
use super::*;

fn app() -> FlinkDeployment {
    as_stored(FlinkDeployment::test("app").application())
}

fn build(d: &FlinkDeployment, kind: ClusterType) -> Children {
    let plan = plan_for(d);
    let settings = ResourceSettings::default();
    match kind {
        ClusterType::Native => native(d, &plan, &settings),
        ClusterType::Standalone => standalone(d, &plan, &settings),
    }
    .unwrap()
}

fn main_container(d: &Deployment) -> &Container {
    let spec = d.spec.template.spec.as_ref().unwrap();
    spec.containers
        .iter()
        .find(|c| c.name == "flink-main-container")
        .unwrap()
}

fn config_text(c: &Children, name: &str) -> String {
    let cm = c.config_map(&format!("flink-config-{name}")).unwrap();
    let data = cm.data.as_ref().unwrap();
    data.get("config.yaml")
        .or_else(|| data.get("flink-conf.yaml"))
        .unwrap()
        .clone()
}

fn with_ingress(mut d: FlinkDeployment) -> FlinkDeployment {
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
fn the_main_container_keeps_the_users_fields_and_gets_flinks_added() {
    let mut d = app().with_config(
        "kubernetes.operator.pod-template.merge-arrays-by-name",
        "true",
    );
    d.spec.pod_template = Some(
        PodTemplate::from_value(json!({
        "metadata": {"labels": {"team": "data"}, "annotations": {"a": "1"}},
        "spec": {
            "securityContext": {"runAsUser": 9999},
            "tolerations": [{"key": "dedicated", "operator": "Exists"}],
            "containers": [
                {"name": "flink-main-container",
                 "args": ["ignored"],
                 "env": [{"name": "USER_VAR", "value": "x"}],
                 "ports": [{"name": "metrics", "containerPort": 9249}],
                 "volumeMounts": [{"name": "data", "mountPath": "/data"}]},
                {"name": "sidecar", "image": "busybox"}],
            "volumes": [{"name": "data", "emptyDir": {}}]}}))
        .unwrap(),
    );
    d.spec.job_manager.as_mut().unwrap().pod_template = Some(PodTemplate::from_value(json!({
        "spec": {
            "initContainers": [{"name": "fetch", "image": "busybox"}],
            "containers": [{"name": "flink-main-container", "env": [{"name": "JM_VAR", "value": "y"}]}]}}))
    .unwrap());
    let children = build(&d, ClusterType::Native);
    let jm = children.deployment("app").unwrap();
    let pod = jm.spec.template.spec.as_ref().unwrap();
    assert_eq!(
        pod.containers.last().unwrap().name,
        "flink-main-container",
        "main container goes last"
    );
    assert_eq!(pod.containers[0].name, "sidecar");
    assert_eq!(pod.init_containers.as_ref().unwrap()[0].name, "fetch");
    assert_eq!(
        pod.security_context.as_ref().unwrap().run_as_user,
        Some(9999)
    );
    assert_eq!(
        pod.tolerations.as_ref().unwrap()[0].key.as_deref(),
        Some("dedicated")
    );
    let meta = jm.spec.template.metadata.as_ref().unwrap();
    assert_eq!(meta.labels.as_ref().unwrap()["team"], "data");
    assert_eq!(meta.annotations.as_ref().unwrap()["a"], "1");
    let main = main_container(jm);
    let env: Vec<&str> = main
        .env
        .as_ref()
        .unwrap()
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(env, ["USER_VAR", "JM_VAR", "_POD_IP_ADDRESS"]);
    let ports: Vec<&str> = main
        .ports
        .as_ref()
        .unwrap()
        .iter()
        .map(|p| p.name.as_deref().unwrap())
        .collect();
    assert_eq!(ports, ["metrics", "rest", "jobmanager-rpc", "blobserver"]);
    let mounts: Vec<&str> = main
        .volume_mounts
        .as_ref()
        .unwrap()
        .iter()
        .map(|m| m.name.as_str())
        .collect();
    assert_eq!(mounts[0], "data");
    assert!(mounts.contains(&"flink-config-volume"));
    assert_eq!(
        main.args.as_deref().unwrap()[0],
        "bash",
        "Flink's command replaces the user's"
    );
    let volumes: Vec<&str> = pod
        .volumes
        .as_ref()
        .unwrap()
        .iter()
        .map(|v| v.name.as_str())
        .collect();
    assert_eq!(volumes[0], "data");
    // the TaskManager template carries the common template, not the JobManager's additions
    let tm = children.config_map("pod-template-app").unwrap();
    let text = &tm.data.as_ref().unwrap()["taskmanager-pod-template.yaml"];
    assert!(
        text.contains("sidecar") && !text.contains("fetch") && !text.contains("JM_VAR"),
        "{text}"
    );
}

#[test]
fn without_merge_by_name_arrays_merge_by_position_as_in_apache() {
    let mut d = app();
    d.spec.pod_template = Some(PodTemplate::from_value(json!({
        "spec": {"containers": [{"name": "flink-main-container", "env": [{"name": "A", "value": "1"}]}]}})).unwrap());
    d.spec.job_manager.as_mut().unwrap().pod_template = Some(
        PodTemplate::from_value(json!({
        "spec": {"containers": [{"name": "sidecar", "image": "busybox"}]}}))
        .unwrap(),
    );
    let children = build(&d, ClusterType::Native);
    let pod = children
        .deployment("app")
        .unwrap()
        .spec
        .template
        .spec
        .clone()
        .unwrap();
    let names: Vec<&str> = pod.containers.iter().map(|c| c.name.as_str()).collect();
    // the sidecar took the place (and the env) of the common template's main container
    assert_eq!(names, ["sidecar", "flink-main-container"]);
    assert_eq!(pod.containers[0].env.as_ref().unwrap()[0].name, "A");
}

#[test]
fn flink_configuration_goes_into_the_config_map_as_is_and_nowhere_else() {
    // Apache writes flinkConfiguration (passwords included) into the ConfigMap, which is the
    // only place Flink reads it from; it must not leak into pod specs or labels
    let d = app().with_config("security.ssl.rest.keystore-password", "hunter2");
    for kind in [ClusterType::Native, ClusterType::Standalone] {
        let children = build(&d, kind);
        for child in &children {
            let text = child.to_value().to_string();
            let is_config = child.name() == "flink-config-app";
            assert_eq!(text.contains("hunter2"), is_config, "{}", child.name());
        }
    }
}

#[test]
fn kubernetes_secrets_become_volumes_and_env_from_secret_refs() {
    let d = app()
        .with_config("kubernetes.secrets", "tls-cert:/opt/flink/tls-cert")
        .with_config(
            "kubernetes.env.secretKeyRef",
            "env:PASSWORD,secret:creds,key:pw",
        );
    for kind in [ClusterType::Native, ClusterType::Standalone] {
        let children = build(&d, kind);
        for name in ["app", "app-taskmanager"] {
            let Some(dep) = children.deployment(name) else {
                continue;
            };
            let pod = dep.spec.template.spec.as_ref().unwrap();
            let volume = pod
                .volumes
                .as_ref()
                .unwrap()
                .iter()
                .find(|v| v.name == "tls-cert-volume")
                .unwrap();
            assert_eq!(
                volume.secret.as_ref().unwrap().secret_name.as_deref(),
                Some("tls-cert")
            );
            let main = main_container(dep);
            assert!(
                main.volume_mounts
                    .as_ref()
                    .unwrap()
                    .iter()
                    .any(|m| m.mount_path == "/opt/flink/tls-cert")
            );
            let var = main
                .env
                .as_ref()
                .unwrap()
                .iter()
                .find(|e| e.name == "PASSWORD")
                .unwrap();
            let secret = var
                .value_from
                .as_ref()
                .unwrap()
                .secret_key_ref
                .as_ref()
                .unwrap();
            assert_eq!((secret.name.as_str(), secret.key.as_str()), ("creds", "pw"));
        }
    }
}

#[test]
fn the_ingress_routes_the_template_host_to_the_rest_service() {
    let children = build(&with_ingress(app()), ClusterType::Native);
    let ingress = children.ingress().unwrap();
    assert_eq!(ingress.metadata.name.as_deref(), Some("app"));
    let spec = ingress.spec.as_ref().unwrap();
    assert_eq!(spec.ingress_class_name.as_deref(), Some("nginx"));
    let rule = &spec.rules.as_ref().unwrap()[0];
    assert_eq!(rule.host.as_deref(), Some("app.default.flink.k8s.io"));
    let path = &rule.http.as_ref().unwrap().paths[0];
    assert_eq!(path.path, None);
    let backend = path.backend.service.as_ref().unwrap();
    assert_eq!(backend.name, "app-rest");
    assert_eq!(backend.port.as_ref().unwrap().number, Some(8081));
    assert_eq!(
        spec.tls.as_ref().unwrap()[0].secret_name.as_deref(),
        Some("tls")
    );
}

#[test]
fn the_rest_service_type_follows_flinks_option_and_bad_types_are_refused() {
    let children = build(
        &app().with_config("kubernetes.rest-service.exposed.type", "NodePort"),
        ClusterType::Native,
    );
    let svc = children.service("app-rest").unwrap();
    assert_eq!(
        svc.spec.as_ref().unwrap().type_.as_deref(),
        Some("NodePort")
    );
    let d = app().with_config("kubernetes.rest-service.exposed.type", "Public");
    let e = native(&d, &plan_for(&d), &ResourceSettings::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("kubernetes.rest-service.exposed.type") && e.contains("FlinkDeployment app"),
        "{e}"
    );
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
