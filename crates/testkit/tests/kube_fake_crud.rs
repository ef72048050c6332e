//! The fake API server through the real kube-rs client: CRUD, optimistic concurrency,
//! subresources, patches, selectors, discovery, the request log and fault injection.

use flinkpilot_testkit::kube_fake::{FakeApiServer, Fault, Verb};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams, WatchParams,
};
use kube::core::{ApiResource, GroupVersionKind, ObjectMeta};
use kube::discovery::{Discovery, Scope};
use kube::{CustomResource, CustomResourceExt, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// A local stand-in for the real FlinkDeployment type (being written on another branch).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "flink.apache.org",
    version = "v1beta1",
    kind = "FlinkDeployment",
    namespaced,
    status = "FdStatus"
)]
#[serde(rename_all = "camelCase")]
struct FdSpec {
    image: Option<String>,
    task_manager: Option<TaskManager>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
struct TaskManager {
    replicas: Option<i32>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct FdStatus {
    lifecycle_state: Option<String>,
}

async fn fake() -> FakeApiServer {
    FakeApiServer::start()
        .await
        .expect("fake API server starts")
}

fn cm(name: &str, labels: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..ObjectMeta::default()
        },
        data: Some([("k".to_string(), "v".to_string())].into()),
        ..ConfigMap::default()
    }
}

fn fd(name: &str, image: &str) -> FlinkDeployment {
    FlinkDeployment::new(
        name,
        FdSpec {
            image: Some(image.to_string()),
            task_manager: Some(TaskManager { replicas: Some(1) }),
        },
    )
}

fn api_error(err: kube::Error) -> Box<kube::core::Status> {
    match err {
        kube::Error::Api(status) => status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn crud_round_trip_keeps_server_set_metadata() {
    let server = fake().await;
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "ns");
    let created = api
        .create(&PostParams::default(), &cm("a", &[]))
        .await
        .unwrap();
    let uid = created.uid().unwrap();
    assert!(created.metadata.creation_timestamp.is_some());
    let rv1: u64 = created.resource_version().unwrap().parse().unwrap();

    let got = api.get("a").await.unwrap();
    assert_eq!(got.uid(), Some(uid.clone()));
    assert_eq!(got.data, created.data);

    let mut changed = got.clone();
    changed.data = Some([("k".to_string(), "w".to_string())].into());
    let replaced = api
        .replace("a", &PostParams::default(), &changed)
        .await
        .unwrap();
    let rv2: u64 = replaced.resource_version().unwrap().parse().unwrap();
    assert!(rv2 > rv1, "resourceVersion grows: {rv1} -> {rv2}");
    assert_eq!(replaced.uid(), Some(uid));

    let listed = api.list(&ListParams::default()).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    let list_rv: u64 = listed.metadata.resource_version.unwrap().parse().unwrap();
    assert!(list_rv >= rv2);

    let deleted = api.delete("a", &DeleteParams::default()).await.unwrap();
    assert!(
        deleted.is_right(),
        "an object without finalizers is gone at once"
    );
    let err = api_error(api.get("a").await.unwrap_err());
    assert_eq!((err.code, err.reason.as_str()), (404, "NotFound"));
    assert!(api.get_opt("a").await.unwrap().is_none());
}

#[tokio::test]
async fn create_of_existing_name_is_already_exists_and_generate_name_is_unique() {
    let server = fake().await;
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "ns");
    api.create(&PostParams::default(), &cm("a", &[]))
        .await
        .unwrap();
    let err = api_error(
        api.create(&PostParams::default(), &cm("a", &[]))
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (409, "AlreadyExists"));

    let mut generated = cm("", &[]);
    generated.metadata.name = None;
    generated.metadata.generate_name = Some("gen-".to_string());
    let one = api
        .create(&PostParams::default(), &generated)
        .await
        .unwrap();
    let two = api
        .create(&PostParams::default(), &generated)
        .await
        .unwrap();
    assert!(one.name_any().starts_with("gen-") && one.name_any().len() == "gen-".len() + 5);
    assert_ne!(one.name_any(), two.name_any());
}

#[tokio::test]
async fn invalid_names_and_labels_are_rejected_as_invalid() {
    let server = fake().await;
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "ns");
    let err = api_error(
        api.create(&PostParams::default(), &cm("Bad_Name", &[]))
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    assert!(err.message.contains("metadata.name"), "{}", err.message);
    let long = "x".repeat(64);
    let err = api_error(
        api.create(&PostParams::default(), &cm("ok", &[("app", &long)]))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 422);
    assert!(err.message.contains("metadata.labels"), "{}", err.message);
}

#[tokio::test]
async fn update_with_stale_resource_version_is_conflict() {
    let server = fake().await;
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "ns");
    let v1 = api
        .create(&PostParams::default(), &cm("a", &[]))
        .await
        .unwrap();
    let mut first = v1.clone();
    first.data = Some([("k".to_string(), "first".to_string())].into());
    api.replace("a", &PostParams::default(), &first)
        .await
        .unwrap();

    let mut stale = v1.clone();
    stale.data = Some([("k".to_string(), "second".to_string())].into());
    let err = api_error(
        api.replace("a", &PostParams::default(), &stale)
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    assert!(
        err.message.contains("the object has been modified"),
        "{}",
        err.message
    );
    assert_eq!(api.get("a").await.unwrap().data.unwrap()["k"], "first");

    // a merge patch carrying a stale resourceVersion is a precondition too
    let patch =
        json!({"metadata": {"resourceVersion": v1.resource_version()}, "data": {"k": "third"}});
    let err = api_error(
        api.patch("a", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 409);
}

#[tokio::test]
async fn status_subresource_is_isolated_and_generation_counts_spec_changes() {
    let server = fake().await;
    let api: Api<FlinkDeployment> = Api::namespaced(server.client(), "ns");
    let mut with_status = fd("basic", "flink:2.0");
    with_status.status = Some(FdStatus {
        lifecycle_state: Some("STABLE".into()),
    });
    let created = api
        .create(&PostParams::default(), &with_status)
        .await
        .unwrap();
    assert_eq!(created.status, None, "create ignores .status");
    assert_eq!(created.metadata.generation, Some(1));

    // status write: only .status changes, generation stays
    let mut status_write = created.clone();
    status_write.status = Some(FdStatus {
        lifecycle_state: Some("DEPLOYED".into()),
    });
    status_write.spec.image = Some("ignored".into());
    let after_status = api
        .replace_status("basic", &PostParams::default(), &status_write)
        .await
        .unwrap();
    assert_eq!(after_status.spec.image.as_deref(), Some("flink:2.0"));
    assert_eq!(
        after_status
            .status
            .as_ref()
            .unwrap()
            .lifecycle_state
            .as_deref(),
        Some("DEPLOYED")
    );
    assert_eq!(after_status.metadata.generation, Some(1));

    // main write: .status ignored, spec change bumps generation
    let mut spec_write = after_status.clone();
    spec_write.spec.image = Some("flink:2.1".into());
    spec_write.status = None;
    let after_spec = api
        .replace("basic", &PostParams::default(), &spec_write)
        .await
        .unwrap();
    assert_eq!(after_spec.metadata.generation, Some(2));
    assert_eq!(
        after_spec
            .status
            .as_ref()
            .unwrap()
            .lifecycle_state
            .as_deref(),
        Some("DEPLOYED")
    );

    // metadata-only change: no generation bump
    let labels = json!({"metadata": {"labels": {"team": "a"}}});
    let after_labels = api
        .patch("basic", &PatchParams::default(), &Patch::Merge(&labels))
        .await
        .unwrap();
    assert_eq!(after_labels.metadata.generation, Some(2));

    // status patch with a stale resourceVersion conflicts
    let stale = json!({"metadata": {"resourceVersion": created.resource_version()},
                       "status": {"lifecycleState": "FAILED"}});
    let err = api_error(
        api.patch_status("basic", &PatchParams::default(), &Patch::Merge(&stale))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 409);
}

#[tokio::test]
async fn unchanged_write_keeps_the_resource_version() {
    let server = fake().await;
    let api: Api<FlinkDeployment> = Api::namespaced(server.client(), "ns");
    let created = api
        .create(&PostParams::default(), &fd("a", "img"))
        .await
        .unwrap();
    let same = json!({"spec": {"image": "img"}});
    let patched = api
        .patch("a", &PatchParams::default(), &Patch::Merge(&same))
        .await
        .unwrap();
    assert_eq!(patched.resource_version(), created.resource_version());
}

#[tokio::test]
async fn scale_subresource_maps_task_manager_replicas() {
    let server = fake().await;
    let api: Api<FlinkDeployment> = Api::namespaced(server.client(), "ns");
    api.create(&PostParams::default(), &fd("a", "img"))
        .await
        .unwrap();
    let scale = api.get_scale("a").await.unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(1));

    let patch = json!({"spec": {"replicas": 4}});
    let scaled = api
        .patch_scale("a", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    assert_eq!(scaled.spec.unwrap().replicas, Some(4));
    let obj = api.get("a").await.unwrap();
    assert_eq!(obj.spec.task_manager.unwrap().replicas, Some(4));
    assert_eq!(obj.metadata.generation, Some(2));
}

#[tokio::test]
async fn merge_and_json_patches_apply_with_real_semantics() {
    let server = fake().await;
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "ns");
    api.create(&PostParams::default(), &cm("a", &[("app", "x")]))
        .await
        .unwrap();

    let merge = json!({"data": {"k": null, "n": "1"}, "metadata": {"labels": {"tier": "web"}}});
    let merged = api
        .patch("a", &PatchParams::default(), &Patch::Merge(&merge))
        .await
        .unwrap();
    assert_eq!(
        merged.data.clone().unwrap(),
        [("n".to_string(), "1".to_string())].into()
    );
    assert_eq!(merged.labels().len(), 2);

    let ops: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/data/n", "value": "1"},
        {"op": "add", "path": "/data/m", "value": "2"},
        {"op": "remove", "path": "/metadata/labels/app"}
    ]))
    .unwrap();
    let patched = api
        .patch("a", &PatchParams::default(), &Patch::Json::<()>(ops))
        .await
        .unwrap();
    assert_eq!(
        patched.data.clone().unwrap().get("m").map(String::as_str),
        Some("2")
    );
    assert!(!patched.labels().contains_key("app"));

    let failing: json_patch::Patch =
        serde_json::from_value(json!([{"op": "test", "path": "/data/n", "value": "other"}]))
            .unwrap();
    let err = api_error(
        api.patch("a", &PatchParams::default(), &Patch::Json::<()>(failing))
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
}

#[tokio::test]
async fn label_and_field_selectors_filter_lists() {
    let server = fake().await;
    let client = server.client();
    let ns_a: Api<ConfigMap> = Api::namespaced(client.clone(), "a");
    let ns_b: Api<ConfigMap> = Api::namespaced(client.clone(), "b");
    ns_a.create(
        &PostParams::default(),
        &cm("jm", &[("app", "x"), ("component", "jobmanager")]),
    )
    .await
    .unwrap();
    ns_a.create(
        &PostParams::default(),
        &cm("tm", &[("app", "x"), ("component", "taskmanager")]),
    )
    .await
    .unwrap();
    ns_b.create(&PostParams::default(), &cm("other", &[("app", "y")]))
        .await
        .unwrap();

    let names = |list: kube::core::ObjectList<ConfigMap>| -> Vec<String> {
        list.items.iter().map(|c| c.name_any()).collect()
    };
    let all: Api<ConfigMap> = Api::all(client);
    assert_eq!(
        names(all.list(&ListParams::default()).await.unwrap()),
        ["jm", "tm", "other"]
    );
    assert_eq!(
        names(
            all.list(&ListParams::default().labels("app=x"))
                .await
                .unwrap()
        ),
        ["jm", "tm"]
    );
    let set_based = ListParams::default().labels("component in (jobmanager),app notin (y)");
    assert_eq!(names(all.list(&set_based).await.unwrap()), ["jm"]);
    assert_eq!(
        names(
            all.list(&ListParams::default().labels("!component"))
                .await
                .unwrap()
        ),
        ["other"]
    );
    assert_eq!(
        names(
            ns_a.list(&ListParams::default().fields("metadata.name=tm"))
                .await
                .unwrap()
        ),
        ["tm"]
    );
    let by_ns = ListParams::default().fields("metadata.namespace!=a");
    assert_eq!(names(all.list(&by_ns).await.unwrap()), ["other"]);
    let err = api_error(
        all.list(&ListParams::default().fields("data.k=v"))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 400);
}

#[tokio::test]
async fn paginated_list_serves_one_consistent_snapshot() {
    let server = fake().await;
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "ns");
    for i in 0..5 {
        api.create(&PostParams::default(), &cm(&format!("cm-{i}"), &[]))
            .await
            .unwrap();
    }
    let first = api.list(&ListParams::default().limit(2)).await.unwrap();
    assert_eq!(first.items.len(), 2);
    let token = first.metadata.continue_.clone().expect("a continue token");
    api.create(&PostParams::default(), &cm("cm-late", &[]))
        .await
        .unwrap();
    let rest = api
        .list(&ListParams::default().limit(10).continue_token(&token))
        .await
        .unwrap();
    assert_eq!(
        rest.items.len(),
        3,
        "the late object is not in the snapshot"
    );
    assert_eq!(
        rest.metadata.resource_version,
        first.metadata.resource_version
    );
    assert!(rest.metadata.continue_.is_none());
}

#[tokio::test]
async fn discovery_serves_core_apps_and_flink_types() {
    let server = fake().await;
    let client = server.client();
    let info = client.apiserver_version().await.unwrap();
    assert_eq!(info.major, "1");

    for discovery in [
        Discovery::new(client.clone()).run().await.unwrap(),
        Discovery::new(client.clone())
            .run_aggregated()
            .await
            .unwrap(),
    ] {
        let gvk = GroupVersionKind::gvk("flink.apache.org", "v1beta1", "FlinkDeployment");
        let (ar, caps) = discovery
            .resolve_gvk(&gvk)
            .expect("FlinkDeployment discovered");
        assert_eq!(ar.plural, "flinkdeployments");
        assert_eq!(caps.scope, Scope::Namespaced);
        let subresources: Vec<&str> = caps
            .subresources
            .iter()
            .map(|(ar, _)| ar.plural.as_str())
            .collect();
        assert!(
            subresources.contains(&"status") && subresources.contains(&"scale"),
            "{subresources:?}"
        );
        for (group, version, kind) in [
            ("", "v1", "Secret"),
            ("apps", "v1", "Deployment"),
            ("networking.k8s.io", "v1", "Ingress"),
            ("coordination.k8s.io", "v1", "Lease"),
            ("events.k8s.io", "v1", "Event"),
            ("flink.apache.org", "v1beta1", "FlinkStateSnapshot"),
        ] {
            let gvk = GroupVersionKind::gvk(group, version, kind);
            assert!(discovery.resolve_gvk(&gvk).is_some(), "{kind} discovered");
        }
        let ns = discovery
            .resolve_gvk(&GroupVersionKind::gvk("", "v1", "Namespace"))
            .unwrap();
        assert_eq!(ns.1.scope, Scope::Cluster);
    }
}

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, JsonSchema)]
#[kube(
    group = "example.com",
    version = "v1",
    kind = "Widget",
    namespaced,
    status = "WidgetStatus"
)]
struct WidgetSpec {
    size: i32,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema)]
struct WidgetStatus {
    ready: bool,
}

#[tokio::test]
async fn applying_a_crd_serves_the_new_type_and_deleting_it_removes_instances() {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let server = fake().await;
    let client = server.client();
    let widgets: Api<Widget> = Api::namespaced(client.clone(), "ns");
    let err = api_error(widgets.list(&ListParams::default()).await.unwrap_err());
    assert_eq!(err.code, 404, "not served before the CRD exists");

    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &Widget::crd())
        .await
        .unwrap();
    widgets
        .create(
            &PostParams::default(),
            &Widget::new("w", WidgetSpec { size: 3 }),
        )
        .await
        .unwrap();
    let status = json!({"status": {"ready": true}});
    let w = widgets
        .patch_status("w", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    assert!(
        w.status.unwrap().ready,
        "the CRD's status subresource is served"
    );

    crds.delete("widgets.example.com", &DeleteParams::default())
        .await
        .unwrap();
    assert!(server.list("example.com/v1", "widgets", None).is_empty());
    assert_eq!(api_error(widgets.get("w").await.unwrap_err()).code, 404);
}

#[tokio::test]
async fn metadata_only_requests_return_partial_object_metadata() {
    let server = fake().await;
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "ns");
    api.create(&PostParams::default(), &cm("a", &[("app", "x")]))
        .await
        .unwrap();
    let meta = api.get_metadata("a").await.unwrap();
    assert_eq!(meta.metadata.labels.unwrap()["app"], "x");
    let list = api.list_metadata(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
}

#[tokio::test]
async fn dynamic_objects_work_for_cluster_scoped_and_namespaced_types() {
    let server = fake().await;
    let client = server.client();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some("team".into()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    assert!(server.get("v1", "namespaces", "", "team").is_some());

    let gvk = GroupVersionKind::gvk("flink.apache.org", "v1beta1", "FlinkSessionJob");
    let ar = ApiResource::from_gvk_with_plural(&gvk, "flinksessionjobs");
    let jobs: Api<DynamicObject> = Api::namespaced_with(client, "team", &ar);
    let mut job = DynamicObject::new("job", &ar);
    job.data = json!({"spec": {"deploymentName": "session"}});
    jobs.create(&PostParams::default(), &job).await.unwrap();
    let stored = server
        .get(
            "flink.apache.org/v1beta1",
            "flinksessionjobs",
            "team",
            "job",
        )
        .unwrap();
    assert_eq!(stored["spec"]["deploymentName"], "session");
    assert_eq!(stored["kind"], "FlinkSessionJob");
}

#[tokio::test]
async fn request_log_records_verb_patch_type_and_field_manager() {
    let server = fake().await;
    let api: Api<Deployment> = Api::namespaced(server.client(), "ns");
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "jm"},
                            "spec": {"replicas": 1}});
    api.patch(
        "jm",
        &PatchParams::apply("flinkpilot").force(),
        &Patch::Apply(&deployment),
    )
    .await
    .unwrap();
    api.get("jm").await.unwrap();
    let log = server.requests();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].verb, Verb::Patch);
    assert_eq!(log[0].patch_type.as_deref(), Some("apply"));
    assert_eq!(log[0].field_manager.as_deref(), Some("flinkpilot"));
    assert!(log[0].force);
    assert_eq!(
        (log[0].resource.as_str(), log[0].status),
        ("deployments", 201)
    );
    assert_eq!(
        (log[1].verb, log[1].name.as_deref()),
        (Verb::Get, Some("jm"))
    );
    server.clear_requests();
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn injected_status_conflicts_fail_exactly_the_next_n_status_writes() {
    let server = fake().await;
    let api: Api<FlinkDeployment> = Api::namespaced(server.client(), "ns");
    api.create(&PostParams::default(), &fd("a", "img"))
        .await
        .unwrap();
    server.inject(
        Fault::status(409)
            .verbs(&[Verb::Patch, Verb::Update])
            .resource("flinkdeployments")
            .object("ns", "a")
            .subresource("status")
            .times(2),
    );
    let status = json!({"status": {"lifecycleState": "DEPLOYED"}});
    let mut attempts = 0;
    let written = loop {
        attempts += 1;
        match api
            .patch_status("a", &PatchParams::default(), &Patch::Merge(&status))
            .await
        {
            Ok(obj) => break obj,
            Err(kube::Error::Api(s)) if s.code == 409 => assert!(attempts <= 3, "retry bound"),
            Err(other) => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(attempts, 3);
    assert_eq!(
        written.status.unwrap().lifecycle_state.as_deref(),
        Some("DEPLOYED")
    );
    let injected: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.injected)
        .collect();
    assert_eq!(injected.len(), 2);
    // spec writes were never affected
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(&json!({"spec": {"image": "x"}})),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn injected_server_errors_fail_a_whole_resource_type_until_cleared() {
    let server = fake().await;
    let deployments: Api<Deployment> = Api::namespaced(server.client(), "ns");
    let configmaps: Api<ConfigMap> = Api::namespaced(server.client(), "ns");
    server.inject(Fault::status(500).resource("deployments"));
    let err = api_error(deployments.list(&ListParams::default()).await.unwrap_err());
    assert_eq!((err.code, err.reason.as_str()), (500, "InternalError"));
    assert!(
        deployments
            .watch(&WatchParams::default(), "0")
            .await
            .is_err()
    );
    configmaps.list(&ListParams::default()).await.unwrap();
    server.clear_faults();
    deployments.list(&ListParams::default()).await.unwrap();
}

#[tokio::test]
async fn dry_run_create_stores_nothing() {
    let server = fake().await;
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "ns");
    let rv = server.resource_version();
    let pp = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let answered = api.create(&pp, &cm("a", &[])).await.unwrap();
    assert_eq!(answered.name_any(), "a");
    assert!(server.get("v1", "configmaps", "ns", "a").is_none());
    assert_eq!(server.resource_version(), rv);
}

#[tokio::test]
async fn server_stops_answering_when_dropped() {
    let server = fake().await;
    let client = server.client();
    let api: Api<ConfigMap> = Api::namespaced(client, "ns");
    api.list(&ListParams::default()).await.unwrap();
    drop(server);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match api.list(&ListParams::default()).await {
            Err(kube::Error::Api(s)) => panic!("a dropped server answered {s:?}"),
            Err(_) => break,
            Ok(_) => assert!(
                tokio::time::Instant::now() < deadline,
                "server still answering"
            ),
        }
        tokio::task::yield_now().await;
    }
}
