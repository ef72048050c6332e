//! Deletion through the real kube-rs client: finalizers and `deletionTimestamp`, the
//! `kube::runtime::finalizer` helper, owner-reference cascades (background, foreground,
//! orphan), preconditions, namespaces and deletecollection.

use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service};
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions, WatchEvent,
    WatchParams,
};
use kube::core::ObjectMeta;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::{CustomResource, Resource, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

mod kube_common;
use kube_common::{api_error, fake};

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, JsonSchema)]
#[kube(
    group = "flink.apache.org",
    version = "v1beta1",
    kind = "FlinkDeployment",
    namespaced
)]
struct FdSpec {
    image: String,
}

fn cm_with(name: &str, finalizers: &[&str], owner: Option<Value>) -> Value {
    let mut obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}});
    if !finalizers.is_empty() {
        obj["metadata"]["finalizers"] = json!(finalizers);
    }
    if let Some(owner) = owner {
        obj["metadata"]["ownerReferences"] = json!([owner]);
    }
    obj
}

async fn create_cm(api: &Api<ConfigMap>, obj: Value) -> ConfigMap {
    let cm: ConfigMap = serde_json::from_value(obj).expect("a ConfigMap");
    api.create(&PostParams::default(), &cm)
        .await
        .expect("created")
}

fn owner_ref(owner: &impl Resource<DynamicType = ()>, block: bool) -> Value {
    let oref = owner.controller_owner_ref(&()).expect("owner has a uid");
    let mut r = serde_json::to_value(oref).expect("serializable");
    r["blockOwnerDeletion"] = json!(block);
    r
}

async fn next_event(
    stream: &mut (impl futures::Stream<Item = kube::Result<WatchEvent<ConfigMap>>> + Unpin),
) -> (String, ConfigMap) {
    let ev = tokio::time::timeout(Duration::from_secs(10), stream.try_next())
        .await
        .expect("an event within 10 s")
        .expect("stream ok")
        .expect("stream open");
    match ev {
        WatchEvent::Added(o) => ("ADDED".into(), o),
        WatchEvent::Modified(o) => ("MODIFIED".into(), o),
        WatchEvent::Deleted(o) => ("DELETED".into(), o),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn finalizers_hold_deletion_until_the_last_one_is_removed() {
    let server = fake().await;
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "ns");
    let created = create_cm(&api, cm_with("a", &["a.io/one", "b.io/two"], None)).await;
    let mut events = api
        .watch(
            &WatchParams::default(),
            &created.resource_version().unwrap(),
        )
        .await
        .unwrap()
        .boxed();

    let pending = api.delete("a", &DeleteParams::default()).await.unwrap();
    let marked = pending
        .left()
        .expect("the object is returned while finalizers remain");
    assert!(marked.metadata.deletion_timestamp.is_some());
    assert_eq!(marked.metadata.deletion_grace_period_seconds, Some(0));
    assert_eq!(
        marked.metadata.generation,
        Some(2),
        "starting deletion bumps generation"
    );
    let (kind, obj) = next_event(&mut events).await;
    assert_eq!(kind, "MODIFIED");
    assert!(obj.metadata.deletion_timestamp.is_some());
    assert!(
        api.get("a").await.is_ok(),
        "still readable while finalizing"
    );

    // deleting again changes nothing
    let again = api
        .delete("a", &DeleteParams::default())
        .await
        .unwrap()
        .left()
        .unwrap();
    assert_eq!(again.resource_version(), marked.resource_version());

    let drop_one = json!({"metadata": {"finalizers": ["b.io/two"]}});
    api.patch("a", &PatchParams::default(), &Patch::Merge(&drop_one))
        .await
        .unwrap();
    assert_eq!(next_event(&mut events).await.0, "MODIFIED");
    let drop_all = json!({"metadata": {"finalizers": null}});
    api.patch("a", &PatchParams::default(), &Patch::Merge(&drop_all))
        .await
        .unwrap();
    let (kind, last) = next_event(&mut events).await;
    assert_eq!(kind, "DELETED");
    assert!(last.finalizers().is_empty());
    assert_eq!(api_error(api.get("a").await.unwrap_err()).code, 404);
}

#[tokio::test]
async fn no_new_finalizers_can_be_added_once_deletion_started() {
    let server = fake().await;
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "ns");
    create_cm(&api, cm_with("a", &["a.io/one"], None)).await;
    api.delete("a", &DeleteParams::default()).await.unwrap();
    let add = json!({"metadata": {"finalizers": ["a.io/one", "c.io/late"]}});
    let err = api_error(
        api.patch("a", &PatchParams::default(), &Patch::Merge(&add))
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    assert!(
        err.message.contains("metadata.finalizers"),
        "{}",
        err.message
    );
}

#[derive(Debug, thiserror::Error)]
#[error("cleanup failed")]
struct CleanupError;

#[tokio::test]
async fn runtime_finalizer_helper_runs_cleanup_before_the_object_goes() {
    let server = fake().await;
    let api: Api<FlinkDeployment> = Api::namespaced(server.client(), "ns");
    api.create(
        &PostParams::default(),
        &FlinkDeployment::new("basic", FdSpec { image: "x".into() }),
    )
    .await
    .unwrap();
    let cleaned = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let run = |obj: FlinkDeployment| {
        let api = api.clone();
        let cleaned = Arc::clone(&cleaned);
        async move {
            finalizer(
                &api,
                "flinkpilot.io/savepoint",
                Arc::new(obj),
                |event| async move {
                    if let Finalizer::Cleanup(_) = event {
                        cleaned.store(true, std::sync::atomic::Ordering::SeqCst);
                    }
                    Ok::<_, CleanupError>(Action::await_change())
                },
            )
            .await
        }
    };
    // first pass adds the finalizer (a JSON patch with a test op)
    run(api.get("basic").await.unwrap()).await.unwrap();
    assert_eq!(
        api.get("basic").await.unwrap().finalizers(),
        ["flinkpilot.io/savepoint"]
    );
    // subsequent passes leave it in place
    run(api.get("basic").await.unwrap()).await.unwrap();

    api.delete("basic", &DeleteParams::default()).await.unwrap();
    let deleting = api.get("basic").await.unwrap();
    assert!(deleting.meta().deletion_timestamp.is_some());
    assert!(!cleaned.load(std::sync::atomic::Ordering::SeqCst));
    run(deleting).await.unwrap();
    assert!(cleaned.load(std::sync::atomic::Ordering::SeqCst));
    assert!(
        api.get_opt("basic").await.unwrap().is_none(),
        "gone once cleanup removed the finalizer"
    );
}

#[tokio::test]
async fn deleting_an_owner_cascades_to_dependents_of_every_kind() {
    let server = fake().await;
    let client = server.client();
    let fds: Api<FlinkDeployment> = Api::namespaced(client.clone(), "ns");
    let owner = fds
        .create(
            &PostParams::default(),
            &FlinkDeployment::new("basic", FdSpec { image: "x".into() }),
        )
        .await
        .unwrap();
    let oref = owner_ref(&owner, true);
    let children = [
        ("apps/v1", "Deployment", "deployments", "basic"),
        ("v1", "Service", "services", "basic-rest"),
        ("v1", "ConfigMap", "configmaps", "flink-config-basic"),
    ];
    for (api_version, kind, _, name) in children {
        let obj = json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name, "ownerReferences": [oref]}});
        let pp = PatchParams::apply("flinkpilot");
        match kind {
            "Deployment" => drop(
                Api::<Deployment>::namespaced(client.clone(), "ns")
                    .patch(name, &pp, &Patch::Apply(&obj))
                    .await
                    .unwrap(),
            ),
            "Service" => drop(
                Api::<Service>::namespaced(client.clone(), "ns")
                    .patch(name, &pp, &Patch::Apply(&obj))
                    .await
                    .unwrap(),
            ),
            _ => drop(
                Api::<ConfigMap>::namespaced(client.clone(), "ns")
                    .patch(name, &pp, &Patch::Apply(&obj))
                    .await
                    .unwrap(),
            ),
        }
    }
    let unrelated = Api::<ConfigMap>::namespaced(client.clone(), "ns");
    create_cm(&unrelated, cm_with("unrelated", &[], None)).await;

    fds.delete("basic", &DeleteParams::default()).await.unwrap();
    for (api_version, _, plural, name) in children {
        assert!(
            server.get(api_version, plural, "ns", name).is_none(),
            "{plural}/{name} collected"
        );
    }
    assert!(server.get("v1", "configmaps", "ns", "unrelated").is_some());
}

#[tokio::test]
async fn foreground_deletion_waits_for_blocking_dependents() {
    let server = fake().await;
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "ns");
    let owner = create_cm(&api, cm_with("owner", &[], None)).await;
    create_cm(
        &api,
        cm_with("blocking", &["x.io/hold"], Some(owner_ref(&owner, true))),
    )
    .await;
    create_cm(
        &api,
        cm_with(
            "non-blocking",
            &["x.io/hold"],
            Some(owner_ref(&owner, false)),
        ),
    )
    .await;

    let pending = api
        .delete("owner", &DeleteParams::foreground())
        .await
        .unwrap()
        .left()
        .unwrap();
    assert!(
        pending
            .finalizers()
            .contains(&"foregroundDeletion".to_string())
    );
    let blocking = api.get("blocking").await.unwrap();
    assert!(
        blocking.meta().deletion_timestamp.is_some(),
        "dependents are being deleted"
    );

    let release = Patch::Merge(json!({"metadata": {"finalizers": null}}));
    api.patch("non-blocking", &PatchParams::default(), &release)
        .await
        .unwrap();
    assert!(
        api.get_opt("owner").await.unwrap().is_some(),
        "a non-blocking dependent does not hold the owner"
    );
    api.patch("blocking", &PatchParams::default(), &release)
        .await
        .unwrap();
    assert!(api.get_opt("blocking").await.unwrap().is_none());
    assert!(
        api.get_opt("owner").await.unwrap().is_none(),
        "owner removed after its blocking dependent"
    );
}

#[tokio::test]
async fn orphan_deletion_keeps_dependents_and_drops_their_reference() {
    let server = fake().await;
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "ns");
    let owner = create_cm(&api, cm_with("owner", &[], None)).await;
    create_cm(&api, cm_with("child", &[], Some(owner_ref(&owner, true)))).await;
    api.delete("owner", &DeleteParams::orphan()).await.unwrap();
    let child = api.get("child").await.unwrap();
    assert!(child.owner_references().is_empty());
}

#[tokio::test]
async fn a_dependent_with_another_live_owner_survives_and_loses_the_dead_reference() {
    let server = fake().await;
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "ns");
    let one = create_cm(&api, cm_with("one", &[], None)).await;
    let two = create_cm(&api, cm_with("two", &[], None)).await;
    let mut child = cm_with("child", &[], None);
    let mut second = serde_json::to_value(two.owner_ref(&()).unwrap()).unwrap();
    second["controller"] = json!(false);
    child["metadata"]["ownerReferences"] = json!([owner_ref(&one, false), second]);
    create_cm(&api, child).await;
    api.delete("one", &DeleteParams::default()).await.unwrap();
    let child = api.get("child").await.unwrap();
    let uids: Vec<&str> = child
        .owner_references()
        .iter()
        .map(|r| r.uid.as_str())
        .collect();
    assert_eq!(uids, [two.uid().unwrap().as_str()]);
}

#[tokio::test]
async fn delete_preconditions_are_enforced() {
    let server = fake().await;
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "ns");
    let created = create_cm(&api, cm_with("a", &[], None)).await;
    let wrong_uid = DeleteParams {
        preconditions: Some(Preconditions {
            uid: Some("not-the-uid".into()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    assert_eq!(
        api_error(api.delete("a", &wrong_uid).await.unwrap_err()).code,
        409
    );
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "v"}})),
    )
    .await
    .unwrap();
    let stale_rv = DeleteParams {
        preconditions: Some(Preconditions {
            uid: None,
            resource_version: created.resource_version(),
        }),
        ..DeleteParams::default()
    };
    assert_eq!(
        api_error(api.delete("a", &stale_rv).await.unwrap_err()).code,
        409
    );
    let right = DeleteParams {
        preconditions: Some(Preconditions {
            uid: created.uid(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    assert!(api.delete("a", &right).await.unwrap().is_right());
}

#[tokio::test]
async fn deleting_a_namespace_deletes_its_contents_and_refuses_new_ones_meanwhile() {
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
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "team");
    create_cm(&api, cm_with("plain", &[], None)).await;
    create_cm(&api, cm_with("held", &["x.io/hold"], None)).await;

    namespaces
        .delete("team", &DeleteParams::default())
        .await
        .unwrap();
    assert!(api.get_opt("plain").await.unwrap().is_none());
    let terminating = namespaces.get("team").await.unwrap();
    assert_eq!(
        terminating.status.unwrap().phase.as_deref(),
        Some("Terminating")
    );
    let cm: ConfigMap = serde_json::from_value(cm_with("new", &[], None)).unwrap();
    let err = api_error(api.create(&PostParams::default(), &cm).await.unwrap_err());
    assert_eq!((err.code, err.reason.as_str()), (403, "Forbidden"));

    api.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert!(
        namespaces.get_opt("team").await.unwrap().is_none(),
        "namespace goes once empty"
    );
}

#[tokio::test]
async fn delete_collection_deletes_what_the_selector_matches() {
    let server = fake().await;
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "ns");
    for (name, app) in [("a", "x"), ("b", "x"), ("c", "y")] {
        let mut obj = cm_with(name, &[], None);
        obj["metadata"]["labels"] = json!({"app": app});
        create_cm(&api, obj).await;
    }
    let deleted = api
        .delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels("app=x"),
        )
        .await
        .unwrap();
    let names: Vec<String> = deleted
        .left()
        .unwrap()
        .items
        .iter()
        .map(|c| c.name_any())
        .collect();
    assert_eq!(names, ["a", "b"]);
    let left: Vec<String> = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|c| c.name_any())
        .collect();
    assert_eq!(left, ["c"]);
}

#[tokio::test]
async fn a_child_created_for_an_owner_that_is_already_gone_is_collected() {
    let server = fake().await;
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "ns");
    let owner = create_cm(&api, cm_with("owner", &[], None)).await;
    let oref = owner_ref(&owner, true);
    api.delete("owner", &DeleteParams::default()).await.unwrap();
    // e.g. a reconcile that raced the owner's deletion re-applies its child
    let late = cm_with("late-child", &[], Some(oref));
    let pp = PatchParams::apply("flinkpilot");
    api.patch("late-child", &pp, &Patch::Apply(&late))
        .await
        .unwrap();
    assert!(api.get_opt("late-child").await.unwrap().is_none());
}
