//! Pod templates, secrets, the ingress and the REST Service in the generated children.

use api::PodTemplate;
use serde_json::json;

use super::{app, build, main_container, with_ingress};
use crate::resources::testing::plan_for;
use crate::resources::{ClusterType, ResourceSettings, native};

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
