//! The fake API server through the real kube-rs client: CRUD, optimistic concurrency, the
//! status and scale subresources, patches, selectors and paging.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

mod kube_common;
use kube_common::*;

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
async fn list_resource_version_semantics_follow_the_api() {
    use kube::api::VersionMatch;
    let server = fake().await;
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "ns");
    let first = api
        .create(&PostParams::default(), &cm("a", &[]))
        .await
        .unwrap();
    let old = first.resource_version().unwrap();
    api.create(&PostParams::default(), &cm("b", &[]))
        .await
        .unwrap();
    // not older than an old version: the latest state
    let lp = ListParams::default()
        .at(&old)
        .matching(VersionMatch::NotOlderThan);
    assert_eq!(api.list(&lp).await.unwrap().items.len(), 2);
    // exactly an old version: the fake keeps no snapshots, so it answers 410 Gone
    let lp = ListParams::default().at(&old).matching(VersionMatch::Exact);
    let err = api_error(api.list(&lp).await.unwrap_err());
    assert_eq!((err.code, err.reason.as_str()), (410, "Expired"));
    // a version from the future is refused like the real server does (504, which the default
    // kube client would retry, so ask with retries off)
    let mut config = server.config();
    config.default_retry = false;
    let no_retry: Api<ConfigMap> = Api::namespaced(kube::Client::try_from(config).unwrap(), "ns");
    let future = (server.resource_version() + 100).to_string();
    let lp = ListParams::default()
        .at(&future)
        .matching(VersionMatch::NotOlderThan);
    let err = api_error(no_retry.list(&lp).await.unwrap_err());
    assert_eq!((err.code, err.reason.as_str()), (504, "Timeout"));
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
