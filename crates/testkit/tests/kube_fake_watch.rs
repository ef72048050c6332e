//! Watches through the real kube-rs client and `kube::runtime`: raw event sequences, resume,
//! 410 Gone, selectors, bookmarks, watcher + reflector convergence, and a Controller.

use std::sync::Arc;
use std::time::Duration;

use flinkpilot_testkit::kube_fake::{FakeApiServer, Fault, Verb};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::core::ObjectMeta;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{CustomResource, Resource, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

mod kube_common;
use kube_common::fake;

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
        ..ConfigMap::default()
    }
}

/// (type, name) of the next `n` non-bookmark events.
async fn next_events<S>(stream: &mut S, n: usize) -> Vec<(String, String)>
where
    S: futures::Stream<Item = kube::Result<WatchEvent<ConfigMap>>> + Unpin,
{
    let mut out = Vec::new();
    while out.len() < n {
        let ev = tokio::time::timeout(Duration::from_secs(10), stream.try_next())
            .await
            .expect("an event within 10 s")
            .expect("stream ok")
            .expect("stream open");
        match ev {
            WatchEvent::Added(o) => out.push(("ADDED".into(), o.name_any())),
            WatchEvent::Modified(o) => out.push(("MODIFIED".into(), o.name_any())),
            WatchEvent::Deleted(o) => out.push(("DELETED".into(), o.name_any())),
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(e) => out.push(("ERROR".into(), e.code.to_string())),
        }
    }
    out
}

fn ev(kind: &str, name: &str) -> (String, String) {
    (kind.to_string(), name.to_string())
}

#[tokio::test]
async fn watch_streams_added_modified_deleted_in_order() {
    let server = fake().await;
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "ns");
    let rv = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut stream = api
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    api.create(&PostParams::default(), &cm("a", &[]))
        .await
        .unwrap();
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "v"}})),
    )
    .await
    .unwrap();
    api.delete("a", &DeleteParams::default()).await.unwrap();
    assert_eq!(
        next_events(&mut stream, 3).await,
        [ev("ADDED", "a"), ev("MODIFIED", "a"), ev("DELETED", "a")]
    );
}

#[tokio::test]
async fn watch_resumes_after_a_resource_version_and_zero_means_current_state() {
    let server = fake().await;
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "ns");
    let a = api
        .create(&PostParams::default(), &cm("a", &[]))
        .await
        .unwrap();
    api.create(&PostParams::default(), &cm("b", &[]))
        .await
        .unwrap();
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "v"}})),
    )
    .await
    .unwrap();

    let mut resumed = api
        .watch(&WatchParams::default(), &a.resource_version().unwrap())
        .await
        .unwrap()
        .boxed();
    assert_eq!(
        next_events(&mut resumed, 2).await,
        [ev("ADDED", "b"), ev("MODIFIED", "a")]
    );

    let mut from_zero = api
        .watch(&WatchParams::default(), "0")
        .await
        .unwrap()
        .boxed();
    assert_eq!(
        next_events(&mut from_zero, 2).await,
        [ev("ADDED", "a"), ev("ADDED", "b")]
    );
}

#[tokio::test]
async fn watch_from_before_the_kept_history_gets_gone() {
    let server = FakeApiServer::builder().history(2).start().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "ns");
    let first = api
        .create(&PostParams::default(), &cm("a", &[]))
        .await
        .unwrap();
    for name in ["b", "c", "d"] {
        api.create(&PostParams::default(), &cm(name, &[]))
            .await
            .unwrap();
    }
    let mut stream = api
        .watch(&WatchParams::default(), &first.resource_version().unwrap())
        .await
        .unwrap()
        .boxed();
    assert_eq!(next_events(&mut stream, 1).await, [ev("ERROR", "410")]);

    // the last kept events still resume fine
    let rv = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut ok = api
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    server.compact_history();
    let mut compacted = api
        .watch(&WatchParams::default(), &first.resource_version().unwrap())
        .await
        .unwrap()
        .boxed();
    assert_eq!(next_events(&mut compacted, 1).await, [ev("ERROR", "410")]);
    api.create(&PostParams::default(), &cm("e", &[]))
        .await
        .unwrap();
    assert_eq!(next_events(&mut ok, 1).await, [ev("ADDED", "e")]);
}

#[tokio::test]
async fn label_selector_watch_sees_objects_enter_and_leave_the_selection() {
    let server = fake().await;
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "ns");
    let rv = server.resource_version().to_string();
    let mut stream = api
        .watch(&WatchParams::default().labels("app=x"), &rv)
        .await
        .unwrap()
        .boxed();
    api.create(&PostParams::default(), &cm("c", &[]))
        .await
        .unwrap();
    let label = |v: &str| Patch::Merge(json!({"metadata": {"labels": {"app": v}}}));
    api.patch("c", &PatchParams::default(), &label("x"))
        .await
        .unwrap();
    api.patch(
        "c",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "v"}})),
    )
    .await
    .unwrap();
    api.patch("c", &PatchParams::default(), &label("y"))
        .await
        .unwrap();
    api.delete("c", &DeleteParams::default()).await.unwrap();
    api.create(&PostParams::default(), &cm("d", &[("app", "x")]))
        .await
        .unwrap();
    assert_eq!(
        next_events(&mut stream, 4).await,
        [
            ev("ADDED", "c"),
            ev("MODIFIED", "c"),
            ev("DELETED", "c"),
            ev("ADDED", "d")
        ]
    );
}

#[tokio::test]
async fn cluster_wide_watch_sees_every_namespace_and_namespaced_watch_only_its_own() {
    let server = fake().await;
    let client = server.client();
    let rv = server.resource_version().to_string();
    let mut all = Api::<ConfigMap>::all(client.clone())
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    let mut only_b = Api::<ConfigMap>::namespaced(client.clone(), "b")
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    Api::<ConfigMap>::namespaced(client.clone(), "a")
        .create(&PostParams::default(), &cm("in-a", &[]))
        .await
        .unwrap();
    Api::<ConfigMap>::namespaced(client, "b")
        .create(&PostParams::default(), &cm("in-b", &[]))
        .await
        .unwrap();
    assert_eq!(
        next_events(&mut all, 2).await,
        [ev("ADDED", "in-a"), ev("ADDED", "in-b")]
    );
    assert_eq!(next_events(&mut only_b, 1).await, [ev("ADDED", "in-b")]);
}

#[tokio::test]
async fn bookmarks_carry_the_current_resource_version() {
    let server = FakeApiServer::builder()
        .bookmark_interval(Duration::from_millis(50))
        .start()
        .await
        .unwrap();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "ns");
    let start = server.resource_version().to_string();
    // a write elsewhere moves the global version; the bookmark must reflect it
    Api::<ConfigMap>::namespaced(server.client(), "other")
        .create(&PostParams::default(), &cm("x", &[]))
        .await
        .unwrap();
    let mut stream = api
        .watch(&WatchParams::default(), &start)
        .await
        .unwrap()
        .boxed();
    let bookmark = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let WatchEvent::Bookmark(b) = stream.try_next().await.unwrap().unwrap() {
                return b;
            }
        }
    })
    .await
    .expect("a bookmark arrives");
    assert_eq!(
        bookmark.metadata.resource_version,
        server.resource_version().to_string()
    );
    assert_eq!(bookmark.types.kind, "ConfigMap");
}

/// Waits until the reflector's store holds exactly the server's objects (names and versions).
async fn converge(server: &FakeApiServer, store: &reflector::Store<ConfigMap>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let mut want: Vec<(String, String)> = server
            .list("v1", "configmaps", Some("ns"))
            .iter()
            .map(|o| {
                (
                    o["metadata"]["name"].to_string(),
                    o["metadata"]["resourceVersion"].to_string(),
                )
            })
            .collect();
        let mut have: Vec<(String, String)> = store
            .state()
            .iter()
            .map(|c| {
                (
                    json!(c.name_any()).to_string(),
                    json!(c.resource_version()).to_string(),
                )
            })
            .collect();
        want.sort();
        have.sort();
        if want == have {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "reflector did not converge: want {want:?}, have {have:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn watcher_and_reflector_converge_through_disconnects_and_410() {
    let server = fake().await;
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "ns");
    for i in 0..10 {
        api.create(&PostParams::default(), &cm(&format!("pre-{i}"), &[]))
            .await
            .unwrap();
    }
    let (store, writer) = reflector::store();
    let cfg = watcher::Config::default().page_size(3);
    let task = tokio::spawn(
        reflector(writer, watcher(api.clone(), cfg).default_backoff())
            .applied_objects()
            .for_each(|_| async {}),
    );
    store.wait_until_ready().await.unwrap();
    converge(&server, &store).await;

    for i in 0..10 {
        api.patch(
            &format!("pre-{i}"),
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"i": i.to_string()}})),
        )
        .await
        .unwrap();
    }
    converge(&server, &store).await;

    server.disconnect_watches();
    for i in 0..5 {
        api.delete(&format!("pre-{i}"), &DeleteParams::default())
            .await
            .unwrap();
    }
    converge(&server, &store).await;

    // while the watcher cannot reconnect, objects change and the history is dropped: when it
    // comes back its resume answers 410, so it must re-list to notice the missed deletions
    server.inject(Fault::status(500).verbs(&[Verb::Watch]));
    server.disconnect_watches();
    for i in 5..8 {
        api.delete(&format!("pre-{i}"), &DeleteParams::default())
            .await
            .unwrap();
    }
    api.create(&PostParams::default(), &cm("post", &[]))
        .await
        .unwrap();
    server.compact_history();
    server.clear_requests();
    server.clear_faults();
    converge(&server, &store).await;
    let log = server.requests();
    assert!(
        log.iter().any(|r| r.verb == Verb::List),
        "re-listed after 410: {log:?}"
    );
    task.abort();
}

#[tokio::test]
async fn streaming_list_watcher_receives_initial_state_then_changes() {
    let server = fake().await;
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "ns");
    api.create(&PostParams::default(), &cm("a", &[]))
        .await
        .unwrap();
    let (store, writer) = reflector::store();
    let task = tokio::spawn(
        reflector(
            writer,
            watcher(api.clone(), watcher::Config::default().streaming_lists()),
        )
        .applied_objects()
        .for_each(|_| async {}),
    );
    store.wait_until_ready().await.unwrap();
    converge(&server, &store).await;
    api.create(&PostParams::default(), &cm("b", &[]))
        .await
        .unwrap();
    converge(&server, &store).await;
    let watch = server
        .requests()
        .into_iter()
        .find(|r| r.query.contains("sendInitialEvents=true"));
    assert!(watch.is_some(), "the streaming-list watch was used");
    task.abort();
}

// ---- a real Controller ----------------------------------------------------------------------

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, JsonSchema)]
#[kube(
    group = "flink.apache.org",
    version = "v1beta1",
    kind = "FlinkDeployment",
    namespaced,
    status = "FdStatus"
)]
struct FdSpec {
    image: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct FdStatus {
    observed_image: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[error(transparent)]
struct ReconcileError(#[from] kube::Error);

async fn reconcile(
    fd: Arc<FlinkDeployment>,
    client: Arc<kube::Client>,
) -> Result<Action, ReconcileError> {
    let ns = fd.namespace().unwrap_or_default();
    let name = fd.name_any();
    let owner = fd.controller_owner_ref(&()).expect("has uid");
    let child = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": format!("flink-config-{name}"), "ownerReferences": [owner]},
        "data": {"image": fd.spec.image},
    });
    let pp = PatchParams::apply("test-controller").force();
    Api::<ConfigMap>::namespaced((*client).clone(), &ns)
        .patch(&format!("flink-config-{name}"), &pp, &Patch::Apply(&child))
        .await?;
    let status = json!({"status": {"observedImage": fd.spec.image}});
    Api::<FlinkDeployment>::namespaced((*client).clone(), &ns)
        .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
        .await?;
    Ok(Action::await_change())
}

#[tokio::test]
async fn controller_reconciles_owned_children_and_reacts_to_their_deletion() {
    let server = fake().await;
    let client = server.client();
    let fds: Api<FlinkDeployment> = Api::namespaced(client.clone(), "ns");
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "ns");
    let controller = Controller::new(fds.clone(), watcher::Config::default())
        .owns(cms.clone(), watcher::Config::default())
        .run(
            reconcile,
            |_, _, _| Action::requeue(Duration::from_secs(1)),
            Arc::new(client.clone()),
        )
        .for_each(|_| async {});
    let task = tokio::spawn(controller);

    fds.create(
        &PostParams::default(),
        &FlinkDeployment::new(
            "basic",
            FdSpec {
                image: "flink:2.0".into(),
            },
        ),
    )
    .await
    .unwrap();
    let reconciled = |image: &'static str| {
        move |s: &FakeApiServer| {
            let cm = s.get("v1", "configmaps", "ns", "flink-config-basic");
            let fd = s.get(
                "flink.apache.org/v1beta1",
                "flinkdeployments",
                "ns",
                "basic",
            );
            cm.is_some_and(|c| c["data"]["image"] == image)
                && fd.is_some_and(|f| f["status"]["observedImage"] == image)
        }
    };
    server
        .wait_for(Duration::from_secs(20), reconciled("flink:2.0"))
        .await
        .unwrap();

    fds.patch(
        "basic",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"image": "flink:2.1"}})),
    )
    .await
    .unwrap();
    server
        .wait_for(Duration::from_secs(20), reconciled("flink:2.1"))
        .await
        .unwrap();

    // deleting the owned child triggers a reconcile that recreates it
    cms.delete("flink-config-basic", &DeleteParams::default())
        .await
        .unwrap();
    server
        .wait_for(Duration::from_secs(20), reconciled("flink:2.1"))
        .await
        .unwrap();

    // deleting the owner garbage-collects the child
    fds.delete("basic", &DeleteParams::default()).await.unwrap();
    server
        .wait_for(Duration::from_secs(20), |s| {
            s.get("v1", "configmaps", "ns", "flink-config-basic")
                .is_none()
        })
        .await
        .unwrap();
    task.abort();
}
