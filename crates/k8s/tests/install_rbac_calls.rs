//! The generated RBAC authorizes the API calls the operator's code actually makes. Real client
//! code runs against the testkit's fake API server — watch caches, finalizer and status writes,
//! server-side apply and deletion of the children `resources` builds (native and standalone),
//! kube-runtime's event recorder, the Lease manager, snapshot creation, session job finalizer
//! and status writes — and every request the server logged is checked against the install
//! manifest's Roles and bindings the way the API server's RBAC authorizer would, for both
//! all-namespace and listed-namespace installs.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use api::{
    DeploymentMode, FlinkDeployment, FlinkSessionJob, FlinkStateSnapshot, IngressSpec, JobKind,
};
use flinkpilot_k8s::install::rbac::{self, allows};
use flinkpilot_k8s::install::{InstallOptions, objects};
use flinkpilot_k8s::resources::testing::plan_for;
use flinkpilot_k8s::resources::{ResourceSettings, native, standalone};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use kube::Api;
use kube::api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::watcher;
use kube_lease_manager::LeaseManagerBuilder;
use serde_json::{Value, json};
use support::install::typed;
use testkit::kube_fake::{FakeApiServer, RequestRecord, Verb};

const WATCHED: &str = "team-a";
const OPERATOR_NS: &str = "flinkpilot";

/// Runs what the operator does against the API server and returns the requests it made.
async fn operator_requests() -> Vec<RequestRecord> {
    let server = FakeApiServer::start().await.unwrap();
    let client = server.client();

    // a user's resources, created directly in the store (not the operator's requests)
    let mut d = FlinkDeployment::test("counter")
        .application()
        .in_namespace(WATCHED);
    d.spec.ingress = Some(IngressSpec {
        template: Some("{{name}}.{{namespace}}.example.com".into()),
        ..Default::default()
    });
    let stored: FlinkDeployment =
        serde_json::from_value(server.seed(serde_json::to_value(&d).unwrap()).unwrap()).unwrap();
    let mut session = FlinkSessionJob::test("job", "session");
    session.metadata.namespace = Some(WATCHED.into());
    server
        .seed(serde_json::to_value(&session).unwrap())
        .unwrap();

    // watch caches of the three kinds (controller, webhook lookup)
    let deployments: Api<FlinkDeployment> = Api::namespaced(client.clone(), WATCHED);
    let mut deployment_events =
        std::pin::pin!(watcher(deployments.clone(), watcher::Config::default()));
    until_synced(deployment_events.as_mut()).await;
    let jobs: Api<FlinkSessionJob> = Api::namespaced(client.clone(), WATCHED);
    until_synced(watcher(jobs.clone(), watcher::Config::default())).await;
    let snapshots: Api<FlinkStateSnapshot> = Api::namespaced(client.clone(), WATCHED);
    until_synced(watcher(snapshots.clone(), watcher::Config::default())).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), WATCHED);
    pods.list(&ListParams::default().labels("app=counter"))
        .await
        .unwrap();

    // finalizer, then status (merge patch, and a replace guarded by resourceVersion)
    let finalizer = json!({"metadata": {"finalizers": ["flinks.flink.apache.org/finalizer"]}});
    deployments
        .patch(
            "counter",
            &PatchParams::default(),
            &Patch::Merge(&finalizer),
        )
        .await
        .unwrap();
    // the change arrives through the watch (so the watch request was made)
    tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(event) = deployment_events.next().await {
            if let watcher::Event::Apply(d) = event.unwrap()
                && d.metadata.finalizers.is_some()
            {
                return;
            }
        }
    })
    .await
    .unwrap();
    deployments
        .patch_status(
            "counter",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"lifecycleState": "DEPLOYED"}})),
        )
        .await
        .unwrap();
    let current = deployments.get_status("counter").await.unwrap();
    deployments
        .replace_status("counter", &PostParams::default(), &current)
        .await
        .unwrap();

    // a session job: its finalizer, its status (replace guarded by resourceVersion, and the
    // merge patch that reports a malformed one), the finalizer removed again
    let job_finalizer =
        json!({"metadata": {"finalizers": ["flinksessionjobs.flink.apache.org/finalizer"]}});
    jobs.patch(
        "job",
        &PatchParams::default(),
        &Patch::Merge(&job_finalizer),
    )
    .await
    .unwrap();
    jobs.patch_status(
        "job",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"error": "Invalid spec"}})),
    )
    .await
    .unwrap();
    let current = jobs.get_status("job").await.unwrap();
    jobs.replace_status("job", &PostParams::default(), &current)
        .await
        .unwrap();
    jobs.patch(
        "job",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": []}})),
    )
    .await
    .unwrap();

    // children: server-side applied (first apply creates, second updates), then deleted
    for mode in [DeploymentMode::Native, DeploymentMode::Standalone] {
        let mut d = stored.clone();
        d.spec.mode = Some(mode);
        let plan = plan_for(&d);
        let settings = ResourceSettings::default();
        let children = match mode {
            DeploymentMode::Native => native(&d, &plan, &settings),
            DeploymentMode::Standalone => standalone(&d, &plan, &settings),
        }
        .unwrap();
        let apply = PatchParams::apply("flinkpilot").force();
        for _ in 0..2 {
            for child in children.iter() {
                let id = child.id();
                let api: Api<DynamicObject> =
                    Api::namespaced_with(client.clone(), WATCHED, &id.resource);
                api.patch(&id.name, &apply, &Patch::Apply(child.to_value()))
                    .await
                    .unwrap();
            }
        }
        for child in children.iter() {
            let id = child.id();
            let api: Api<DynamicObject> =
                Api::namespaced_with(client.clone(), WATCHED, &id.resource);
            api.delete(&id.name, &DeleteParams::default())
                .await
                .unwrap();
        }
    }

    // an Event, twice: created, then its series patched
    let recorder = Recorder::new(client.clone(), Reporter::from("flinkpilot"));
    let reference = ObjectReference {
        api_version: Some("flink.apache.org/v1beta1".into()),
        kind: Some("FlinkDeployment".into()),
        name: Some("counter".into()),
        namespace: Some(WATCHED.into()),
        uid: stored.metadata.uid.clone(),
        ..Default::default()
    };
    let event = Event {
        type_: EventType::Normal,
        reason: "Submit".into(),
        note: Some("Starting deployment".into()),
        action: "Deploy".into(),
        secondary: None,
    };
    recorder.publish(&event, &reference).await.unwrap();
    recorder.publish(&event, &reference).await.unwrap();

    // a snapshot for an upgrade savepoint, and its removal past retention
    let mut snapshot = FlinkStateSnapshot::test_savepoint(
        "counter-upgrade-1",
        JobKind::FlinkDeployment,
        "counter",
    );
    snapshot.metadata.namespace = Some(WATCHED.into());
    snapshots
        .create(&PostParams::default(), &snapshot)
        .await
        .unwrap();
    snapshots
        .delete("counter-upgrade-1", &DeleteParams::default())
        .await
        .unwrap();

    // leader election: acquire, then release
    let lease = LeaseManagerBuilder::new(client.clone(), rbac::LEASE_NAME)
        .with_namespace(OPERATOR_NS)
        .with_identity("flinkpilot-operator-0")
        .with_duration(5)
        .with_grace(1)
        .build()
        .await
        .unwrap();
    let leader = tokio::time::timeout(Duration::from_secs(20), lease.changed())
        .await
        .unwrap()
        .unwrap();
    assert!(leader, "the only candidate becomes leader");
    lease.release().await.unwrap();

    let requests: Vec<RequestRecord> = server
        .requests()
        .into_iter()
        .filter(|r| r.verb != Verb::Discovery)
        .collect();
    for r in &requests {
        assert!(r.status < 400 || r.status == 404, "{r:?}");
    }
    requests
}

async fn until_synced<K, S>(stream: S)
where
    S: futures::Stream<Item = watcher::Result<watcher::Event<K>>>,
{
    let mut stream = std::pin::pin!(stream);
    tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(event) = stream.next().await {
            if matches!(event.unwrap(), watcher::Event::InitDone) {
                return;
            }
        }
    })
    .await
    .unwrap();
}

/// The rules that apply to the operator's ServiceAccount in `namespace`: from RoleBindings there
/// (to a Role there or a ClusterRole) and from ClusterRoleBindings.
fn operator_rules(docs: &[Value], namespace: &str) -> Vec<PolicyRule> {
    let binds_operator = |subjects: &Value| {
        subjects.as_array().into_iter().flatten().any(|s| {
            s["kind"] == "ServiceAccount"
                && s["name"] == rbac::OPERATOR_NAME
                && s["namespace"] == OPERATOR_NS
        })
    };
    let role = |kind: &str, name: &str, ns: Option<&str>| -> Vec<PolicyRule> {
        let doc = docs.iter().find(|d| {
            d["kind"] == kind
                && d["metadata"]["name"] == name
                && d["metadata"]["namespace"].as_str() == ns
        });
        match (kind, doc) {
            ("Role", Some(d)) => typed::<Role>(d).rules.unwrap_or_default(),
            ("ClusterRole", Some(d)) => typed::<ClusterRole>(d).rules.unwrap_or_default(),
            _ => Vec::new(),
        }
    };
    let mut rules = Vec::new();
    for d in docs {
        let kind = d["kind"].as_str().unwrap();
        let bound = match kind {
            "RoleBinding" if d["metadata"]["namespace"] == namespace => {
                typed::<RoleBinding>(d).role_ref
            }
            "ClusterRoleBinding" => typed::<ClusterRoleBinding>(d).role_ref,
            _ => continue,
        };
        if !binds_operator(&d["subjects"]) {
            continue;
        }
        let ns = (bound.kind == "Role").then_some(namespace);
        rules.extend(role(&bound.kind, &bound.name, ns));
    }
    rules
}

fn verb(v: &Verb) -> &'static str {
    match v {
        Verb::Get => "get",
        Verb::List => "list",
        Verb::Watch => "watch",
        Verb::Create => "create",
        Verb::Update => "update",
        Verb::Patch => "patch",
        Verb::Delete => "delete",
        Verb::DeleteCollection => "deletecollection",
        Verb::Discovery => "get",
    }
}

/// Whether the operator's RBAC in `docs` allows request `r`, and if not, what it refuses.
fn check(docs: &[Value], r: &RequestRecord) -> Result<(), String> {
    let ns = r.namespace.as_deref().unwrap_or("");
    let rules = operator_rules(docs, ns);
    let group = r.api_version.rsplit_once('/').map_or("", |(g, _)| g);
    let resource = match &r.subresource {
        Some(sub) => format!("{}/{sub}", r.resource),
        None => r.resource.clone(),
    };
    let mut verbs = vec![verb(&r.verb)];
    // an apply that creates its object is authorized as create too
    if r.patch_type.as_deref() == Some("apply") && r.status == 201 {
        verbs.push("create");
    }
    for v in verbs {
        if !allows(&rules, group, &resource, v, r.name.as_deref()) {
            return Err(format!(
                "{v} {group}/{resource} {ns}/{}",
                r.name.as_deref().unwrap_or("")
            ));
        }
    }
    Ok(())
}

fn rendered(opts: &InstallOptions) -> Vec<Value> {
    objects(opts).unwrap()
}

#[tokio::test]
async fn the_operator_rbac_allows_every_call_the_operator_makes() {
    let requests = operator_requests().await;
    // the scenario reached every kind of call it is meant to cover
    for (what, seen) in [
        ("watch", requests.iter().any(|r| r.verb == Verb::Watch)),
        (
            "apply that creates",
            requests
                .iter()
                .any(|r| r.patch_type.as_deref() == Some("apply") && r.status == 201),
        ),
        (
            "status update",
            requests
                .iter()
                .any(|r| r.verb == Verb::Update && r.subresource.as_deref() == Some("status")),
        ),
        ("events", requests.iter().any(|r| r.resource == "events")),
        (
            "ingresses",
            requests.iter().any(|r| r.resource == "ingresses"),
        ),
        ("leases", requests.iter().any(|r| r.resource == "leases")),
    ] {
        assert!(seen, "the scenario made no {what} request");
    }

    let operator_namespace_only = InstallOptions {
        namespace: OPERATOR_NS.into(),
        ..Default::default()
    };
    let listed = InstallOptions {
        watch_namespaces: vec![WATCHED.into()],
        ..operator_namespace_only.clone()
    };
    for opts in [operator_namespace_only, listed] {
        let docs = rendered(&opts);
        let refused: Vec<String> = requests
            .iter()
            .filter_map(|r| check(&docs, r).err())
            .collect();
        assert!(
            refused.is_empty(),
            "the RBAC of {:?} refuses:\n  {}",
            opts.command_line(),
            refused.join("\n  ")
        );
    }
}

#[tokio::test]
async fn a_namespace_that_is_not_watched_grants_the_operator_nothing() {
    // the check above is not vacuous: with team-a unwatched, every call there is refused,
    // while the Lease in the operator's namespace stays allowed
    let requests = operator_requests().await;
    let opts = InstallOptions {
        namespace: OPERATOR_NS.into(),
        watch_namespaces: vec!["team-b".into()],
        ..Default::default()
    };
    let docs = rendered(&opts);
    for r in &requests {
        let verdict = check(&docs, r);
        match r.namespace.as_deref() {
            Some(WATCHED) => assert!(verdict.is_err(), "allowed: {r:?}"),
            Some(OPERATOR_NS) => assert_eq!(verdict, Ok(()), "{r:?}"),
            other => panic!("a request outside both namespaces ({other:?}): {r:?}"),
        }
    }
}

/// The requests the running operator (controller, store, backend, event recorder, leader
/// election) makes over the life of two FlinkDeployments in `team-a`: an application with an
/// ingress is created and deleted through the finalizer (savepoint on deletion); a session
/// cluster is created and changed (its cluster replaced); a FlinkStateSnapshot of the
/// application is reconciled (finalizer, labels, status, events) and deleted through its
/// finalizer.
async fn running_operator_requests(namespaces: Vec<String>) -> Vec<RequestRecord> {
    use support::operator::{self as op, Options, status_str};
    let server = FakeApiServer::start().await.unwrap();
    let mut app = FlinkDeployment::test("counter")
        .application()
        .with_config("kubernetes.operator.job.savepoint-on-deletion", "true")
        .in_namespace(WATCHED);
    app.spec.ingress = Some(IngressSpec {
        template: Some("{{name}}.{{namespace}}.example.com".into()),
        ..Default::default()
    });
    let session = FlinkDeployment::test("session").in_namespace(WATCHED);
    for d in [&app, &session] {
        server.seed(serde_json::to_value(d).unwrap()).unwrap();
    }
    let mut snapshot =
        FlinkStateSnapshot::test_savepoint("counter-manual", JobKind::FlinkDeployment, "counter");
    snapshot.metadata.namespace = Some(WATCHED.into());
    server
        .seed(serde_json::to_value(&snapshot).unwrap())
        .unwrap();
    let mut session_job = FlinkSessionJob::test("job", "session")
        .with_job(api::JobSpec::test("file:///jobs/counter.jar"));
    session_job.metadata.namespace = Some(WATCHED.into());
    server
        .seed(serde_json::to_value(&session_job).unwrap())
        .unwrap();
    let operator = op::start(
        &server,
        Options {
            namespaces,
            ..Options::new("op-0").with_leader_election()
        },
    );
    let deployed = |s: &FakeApiServer, name: &str| {
        s.get("apps/v1", "deployments", WATCHED, name).is_some()
            && status_str(s, WATCHED, name, "/reconciliationStatus/state") == "DEPLOYED"
    };
    server
        .wait_for(Duration::from_secs(60), |s| {
            deployed(s, "counter") && deployed(s, "session")
        })
        .await
        .unwrap();
    // the snapshot is reconciled (the job does not run here: abandoned), then deleted by the
    // user and let go through its finalizer
    let snapshot_state = |s: &FakeApiServer| {
        s.get(
            "flink.apache.org/v1beta1",
            "flinkstatesnapshots",
            WATCHED,
            "counter-manual",
        )
        .map(|o| {
            o["status"]["state"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
    };
    server
        .wait_for(Duration::from_secs(60), |s| {
            snapshot_state(s).as_deref() == Some("ABANDONED")
        })
        .await
        .unwrap();
    let snapshots: Api<FlinkStateSnapshot> = Api::namespaced(server.client(), WATCHED);
    snapshots
        .delete("counter-manual", &DeleteParams::default())
        .await
        .unwrap();
    server
        .wait_for(Duration::from_secs(60), |s| snapshot_state(s).is_none())
        .await
        .unwrap();
    // the session job is reconciled (finalizer, status), then deleted and let go
    let session_job = |s: &FakeApiServer| {
        s.get(
            "flink.apache.org/v1beta1",
            "flinksessionjobs",
            WATCHED,
            "job",
        )
    };
    server
        .wait_for(Duration::from_secs(60), |s| {
            session_job(s).is_some_and(|j| j["status"]["error"].is_string())
        })
        .await
        .unwrap();
    let jobs: Api<FlinkSessionJob> = Api::namespaced(server.client(), WATCHED);
    jobs.delete("job", &DeleteParams::default()).await.unwrap();
    server
        .wait_for(Duration::from_secs(60), |s| session_job(s).is_none())
        .await
        .unwrap();
    let old = server
        .get("apps/v1", "deployments", WATCHED, "session")
        .unwrap()["metadata"]["uid"]
        .clone();
    let api: Api<FlinkDeployment> = Api::namespaced(server.client(), WATCHED);
    api.patch(
        "session",
        &PatchParams::default(),
        &Patch::Merge(
            json!({"spec": {"flinkConfiguration": {"taskmanager.numberOfTaskSlots": "3"}}}),
        ),
    )
    .await
    .unwrap();
    server
        .wait_for(Duration::from_secs(60), |s| {
            s.get("apps/v1", "deployments", WATCHED, "session")
                .is_some_and(|d| d["metadata"]["uid"] != old)
                && deployed(s, "session")
        })
        .await
        .unwrap();
    api.delete("counter", &DeleteParams::default())
        .await
        .unwrap();
    server
        .wait_for(Duration::from_secs(60), |s| {
            s.get(
                "flink.apache.org/v1beta1",
                "flinkdeployments",
                WATCHED,
                "counter",
            )
            .is_none()
        })
        .await
        .unwrap();
    operator.stop().await;
    // the user's change and deletion above are not the operator's
    server
        .requests()
        .into_iter()
        .filter(|r| {
            let users = matches!(
                r.resource.as_str(),
                "flinkdeployments" | "flinkstatesnapshots" | "flinksessionjobs"
            ) && r.subresource.is_none()
                && (r.verb == Verb::Delete || (r.verb == Verb::Patch && r.field_manager.is_none()));
            !users
        })
        .collect()
}

#[tokio::test]
async fn the_operator_rbac_allows_every_call_the_running_operator_makes() {
    let all = InstallOptions {
        namespace: OPERATOR_NS.into(),
        ..Default::default()
    };
    let listed = InstallOptions {
        watch_namespaces: vec![WATCHED.into()],
        ..all.clone()
    };
    for opts in [all, listed] {
        let requests = running_operator_requests(opts.watch_namespaces.clone()).await;
        for (what, seen) in [
            (
                "apply",
                requests
                    .iter()
                    .any(|r| r.patch_type.as_deref() == Some("apply")),
            ),
            (
                "finalizer patch",
                requests.iter().any(|r| {
                    r.resource == "flinkdeployments"
                        && r.subresource.is_none()
                        && r.verb == Verb::Patch
                }),
            ),
            ("delete", requests.iter().any(|r| r.verb == Verb::Delete)),
            (
                "events",
                requests
                    .iter()
                    .any(|r| r.resource == "events" && r.is_write()),
            ),
            (
                "leases",
                requests
                    .iter()
                    .any(|r| r.resource == "leases" && r.is_write()),
            ),
            (
                "ingresses",
                requests.iter().any(|r| r.resource == "ingresses"),
            ),
            (
                "snapshot watch",
                requests
                    .iter()
                    .any(|r| r.resource == "flinkstatesnapshots" && r.verb == Verb::Watch),
            ),
            (
                "session job watch",
                requests
                    .iter()
                    .any(|r| r.resource == "flinksessionjobs" && r.verb == Verb::Watch),
            ),
            (
                "session job finalizer patch",
                requests.iter().any(|r| {
                    r.resource == "flinksessionjobs"
                        && r.subresource.is_none()
                        && r.verb == Verb::Patch
                }),
            ),
            (
                "session job status update",
                requests.iter().any(|r| {
                    r.resource == "flinksessionjobs"
                        && r.subresource.as_deref() == Some("status")
                        && r.verb == Verb::Update
                }),
            ),
            (
                "snapshot finalizer and label patches",
                requests.iter().any(|r| {
                    r.resource == "flinkstatesnapshots"
                        && r.subresource.is_none()
                        && r.verb == Verb::Patch
                }),
            ),
            (
                "snapshot status update",
                requests.iter().any(|r| {
                    r.resource == "flinkstatesnapshots"
                        && r.subresource.as_deref() == Some("status")
                        && r.verb == Verb::Update
                }),
            ),
        ] {
            assert!(seen, "the scenario made no {what} request");
        }
        let docs = rendered(&opts);
        let refused: Vec<String> = requests
            .iter()
            .filter_map(|r| check(&docs, r).err())
            .collect();
        assert!(
            refused.is_empty(),
            "the RBAC of {:?} refuses:\n  {}",
            opts.command_line(),
            refused.join("\n  ")
        );
    }
}
