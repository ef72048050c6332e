//! The fake API server's surroundings through the real kube-rs client: discovery, CRD
//! registration, metadata-only and dynamic access, the event recorder, the request log, fault
//! injection, dry runs, seeding and shutdown.

use flinkpilot_testkit::kube_fake::{Fault, Verb};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams, WatchParams,
};
use kube::core::{ApiResource, GroupVersionKind, ObjectMeta};
use kube::discovery::{Discovery, Scope};
use kube::{CustomResource, CustomResourceExt, Resource, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

mod kube_common;
use kube_common::*;

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

#[tokio::test]
async fn event_recorder_creates_an_event_and_counts_repeats_in_its_series() {
    use kube::runtime::events::{Event, EventType, Recorder, Reporter};
    let server = fake().await;
    let api: Api<FlinkDeployment> = Api::namespaced(server.client(), "ns");
    let fd = api
        .create(&PostParams::default(), &fd("basic", "img"))
        .await
        .unwrap();
    let recorder = Recorder::new(server.client(), Reporter::from("flinkpilot"));
    let event = Event {
        type_: EventType::Normal,
        reason: "Submit".into(),
        note: Some("Starting deployment".into()),
        action: "Deploy".into(),
        secondary: None,
    };
    recorder.publish(&event, &fd.object_ref(&())).await.unwrap();
    recorder.publish(&event, &fd.object_ref(&())).await.unwrap();
    let events = server.list("events.k8s.io/v1", "events", Some("ns"));
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["reason"], "Submit");
    assert_eq!(events[0]["regarding"]["name"], "basic");
    assert_eq!(events[0]["series"]["count"], 2);
}

#[tokio::test]
async fn seeded_objects_and_registered_types_are_served_to_clients() {
    use flinkpilot_testkit::kube_fake::ResourceType;
    let server = fake().await;
    server.register(ResourceType::namespaced("example.com/v1", "gadgets", "Gadget").with_status());
    let seeded = server
        .seed(json!({"apiVersion": "example.com/v1", "kind": "Gadget",
                     "metadata": {"name": "g", "namespace": "ns"}, "spec": {"n": 1}}))
        .unwrap();
    assert_eq!(seeded["metadata"]["generation"], 1);
    let gvk = GroupVersionKind::gvk("example.com", "v1", "Gadget");
    let ar = ApiResource::from_gvk_with_plural(&gvk, "gadgets");
    let gadgets: Api<DynamicObject> = Api::namespaced_with(server.client(), "ns", &ar);
    let got = gadgets.get("g").await.unwrap();
    assert_eq!(got.data["spec"]["n"], 1);
    assert_eq!(
        got.metadata.resource_version.as_deref(),
        seeded["metadata"]["resourceVersion"].as_str()
    );
    assert!(
        server.requests().iter().all(|r| r.verb == Verb::Get),
        "seeding is not an API request"
    );
    let typed = server.get_typed::<ConfigMap>("ns", "missing").unwrap();
    assert!(typed.is_none());
    let unknown =
        server.seed(json!({"apiVersion": "nope/v1", "kind": "Nope", "metadata": {"name": "x"}}));
    assert!(unknown.is_err());
}
