//! `flinkpilot operator` against the testkit's fake API server: what the controller writes, in
//! which order, for the life of a FlinkDeployment. No JobManager answers here (the REST calls go
//! to `<name>-rest.<ns>.svc`, which does not resolve), so these scenarios cover what needs no
//! running job; `operator_flink.rs` runs the job scenarios on a real Flink.

#![allow(clippy::unwrap_used)]

mod support;

use api::FlinkDeployment;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::{Value, json};
use support::operator::{self as op, Options, deployment, events, requests, status_str, wait};
use testkit::kube_fake::{FakeApiServer, Fault, RequestRecord, Verb};

const NS: &str = "team-a";
const FINALIZER: &str = "flinkdeployments.flink.apache.org/finalizer";

async fn fake() -> FakeApiServer {
    FakeApiServer::start().await.unwrap()
}

fn seed(server: &FakeApiServer, d: &FlinkDeployment) -> Value {
    server.seed(serde_json::to_value(d).unwrap()).unwrap()
}

fn exists(server: &FakeApiServer, api_version: &str, plural: &str, name: &str) -> bool {
    server.get(api_version, plural, NS, name).is_some()
}

fn jm_exists(server: &FakeApiServer, name: &str) -> bool {
    exists(server, "apps/v1", "deployments", name)
}

fn recon_state(server: &FakeApiServer, name: &str) -> String {
    status_str(server, NS, name, "/reconciliationStatus/state")
}

/// Index of the first request matching `f`.
fn first(log: &[RequestRecord], f: impl Fn(&RequestRecord) -> bool) -> Option<usize> {
    log.iter().position(f)
}

fn is_status_write(r: &RequestRecord, name: &str) -> bool {
    r.resource == "flinkdeployments"
        && r.subresource.as_deref() == Some("status")
        && r.name.as_deref() == Some(name)
        && r.is_write()
        && r.status < 300
}

fn is_child_write(r: &RequestRecord) -> bool {
    matches!(
        r.resource.as_str(),
        "deployments" | "services" | "configmaps" | "ingresses"
    ) && r.is_write()
}

#[tokio::test]
async fn creating_a_deployment_records_the_deploy_then_applies_owned_children() {
    let server = fake().await;
    let d = FlinkDeployment::test("basic")
        .application()
        .in_namespace(NS);
    let stored = seed(&server, &d);
    let uid = stored["metadata"]["uid"].as_str().unwrap().to_string();
    let operator = op::start(&server, Options::new("op-0"));

    wait(&server, "the deploy is recorded as done", |s| {
        jm_exists(s, "basic") && recon_state(s, "basic") == "DEPLOYED"
    })
    .await;

    // every child is owned by the FlinkDeployment and was server-side applied by flinkpilot
    for (api_version, plural, name) in [
        ("apps/v1", "deployments", "basic"),
        ("v1", "configmaps", "flink-config-basic"),
        ("v1", "services", "basic-rest"),
    ] {
        let child = server.get(api_version, plural, NS, name).unwrap();
        let owner = &child["metadata"]["ownerReferences"][0];
        assert_eq!(owner["uid"], uid.as_str(), "{plural}/{name}");
        assert_eq!(owner["kind"], "FlinkDeployment");
        assert_eq!(owner["controller"], true);
        let managers = child["metadata"]["managedFields"].as_array().unwrap();
        assert!(
            managers
                .iter()
                .any(|m| m["manager"] == "flinkpilot" && m["operation"] == "Apply"),
            "{plural}/{name}: {managers:?}"
        );
    }
    // write-ahead: the job id and UPGRADING were persisted before the first child was applied
    let log = server.requests();
    let status_first = first(&log, |r| is_status_write(r, "basic")).unwrap();
    let child_first = first(&log, is_child_write).unwrap();
    assert!(
        status_first < child_first,
        "status {status_first}, child {child_first}"
    );
    assert!(
        log.iter()
            .filter(|r| is_child_write(r))
            .all(|r| r.patch_type.as_deref() == Some("apply")
                && r.field_manager.as_deref() == Some("flinkpilot")
                && r.force),
        "children are only written by forced server-side apply"
    );
    let job_id = status_str(&server, NS, "basic", "/jobStatus/jobId");
    assert_eq!(
        job_id.len(),
        32,
        "the job id is chosen and recorded: {job_id}"
    );
    let config = server
        .get("v1", "configmaps", NS, "flink-config-basic")
        .unwrap();
    assert!(
        config["data"]["config.yaml"]
            .as_str()
            .unwrap()
            .contains(&job_id),
        "the cluster runs the recorded job id"
    );
    assert_eq!(
        status_str(&server, NS, "basic", "/jobManagerDeploymentStatus"),
        "DEPLOYING"
    );
    assert!(
        events(&server, NS, "basic")
            .iter()
            .any(|(reason, _)| reason == "Submit"),
        "{:?}",
        events(&server, NS, "basic")
    );
    assert!(
        deployment(&server, NS, "basic")["metadata"]["finalizers"].is_null(),
        "no finalizer: the children go with their owner"
    );

    // the kubelet's part: the JobManager pod becomes ready; the owned Deployment's change wakes
    // the resource, whose JobManager now runs but does not answer REST calls
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(server.client(), NS);
    deployments
        .patch_status(
            "basic",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"replicas": 1, "readyReplicas": 1}})),
        )
        .await
        .unwrap();
    wait(&server, "the JobManager is seen running", |s| {
        status_str(s, NS, "basic", "/jobManagerDeploymentStatus") == "DEPLOYED_NOT_READY"
    })
    .await;
    operator.stop().await;
}

#[tokio::test]
async fn an_invalid_spec_gets_an_event_and_a_status_error_and_nothing_is_applied_until_fixed() {
    let server = fake().await;
    let mut d = FlinkDeployment::test("broken")
        .application()
        .in_namespace(NS);
    d.spec.service_account = None;
    seed(&server, &d);
    let operator = op::start(&server, Options::new("op-0"));

    wait(&server, "the error is in the status", |s| {
        !status_str(s, NS, "broken", "/error").is_empty()
    })
    .await;
    let error = status_str(&server, NS, "broken", "/error");
    assert!(
        error.starts_with("Invalid spec") && error.contains("spec.serviceAccount"),
        "{error}"
    );
    wait(&server, "the ValidationError event is recorded", |s| {
        events(s, NS, "broken")
            .iter()
            .any(|(r, note)| r == "ValidationError" && note.contains("spec.serviceAccount"))
    })
    .await;
    assert!(
        !server.requests().iter().any(is_child_write),
        "nothing is applied for an invalid spec"
    );

    // fixing the spec wakes the resource and deploys it
    let api: Api<FlinkDeployment> = Api::namespaced(server.client(), NS);
    api.patch(
        "broken",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"serviceAccount": "flink"}})),
    )
    .await
    .unwrap();
    wait(&server, "the fixed spec is deployed", |s| {
        jm_exists(s, "broken") && recon_state(s, "broken") == "DEPLOYED"
    })
    .await;
    assert_eq!(status_str(&server, NS, "broken", "/error"), "");
    operator.stop().await;
}

#[tokio::test]
async fn a_malformed_object_is_reported_and_does_not_stall_the_others() {
    let server = fake().await;
    let mut malformed = serde_json::to_value(
        FlinkDeployment::test("malformed")
            .application()
            .in_namespace(NS),
    )
    .unwrap();
    malformed["spec"]["job"]["parallelism"] = json!("many");
    server.seed(malformed).unwrap();
    seed(
        &server,
        &FlinkDeployment::test("fine").application().in_namespace(NS),
    );
    let operator = op::start(&server, Options::new("op-0"));

    wait(&server, "the readable deployment is deployed", |s| {
        jm_exists(s, "fine") && recon_state(s, "fine") == "DEPLOYED"
    })
    .await;
    wait(&server, "the malformed one is reported", |s| {
        status_str(s, NS, "malformed", "/error").contains("cannot be read")
            && events(s, NS, "malformed")
                .iter()
                .any(|(r, _)| r == "ValidationError")
    })
    .await;
    let error = status_str(&server, NS, "malformed", "/error");
    assert!(error.contains("parallelism"), "names the field: {error}");
    assert!(!jm_exists(&server, "malformed"));
    operator.stop().await;
}

#[tokio::test]
async fn a_status_write_that_conflicts_is_read_again_and_retried() {
    let server = fake().await;
    seed(
        &server,
        &FlinkDeployment::test("basic")
            .application()
            .in_namespace(NS),
    );
    server.inject(
        Fault::status(409)
            .verbs(&[Verb::Update, Verb::Patch])
            .resource("flinkdeployments")
            .object(NS, "basic")
            .subresource("status")
            .times(1),
    );
    let operator = op::start(&server, Options::new("op-0"));
    wait(&server, "deployed despite the conflict", |s| {
        jm_exists(s, "basic") && recon_state(s, "basic") == "DEPLOYED"
    })
    .await;
    let log = server.requests();
    let conflict = first(&log, |r| {
        r.resource == "flinkdeployments"
            && r.subresource.as_deref() == Some("status")
            && r.status == 409
    })
    .expect("the injected conflict was answered");
    let reread = first(&log[conflict..], |r| {
        r.resource == "flinkdeployments"
            && r.verb == Verb::Get
            && r.name.as_deref() == Some("basic")
    })
    .expect("the object is read again after the conflict");
    let retried = first(&log[conflict..], |r| is_status_write(r, "basic"))
        .expect("the status write is retried");
    assert!(reread < retried);
    let child = first(&log, is_child_write).unwrap();
    assert!(
        conflict + retried < child,
        "nothing was applied before the status was persisted"
    );
    operator.stop().await;
}

#[tokio::test]
async fn a_session_cluster_spec_change_records_the_target_deletes_the_old_cluster_then_applies_the_new()
 {
    let server = fake().await;
    seed(&server, &FlinkDeployment::test("session").in_namespace(NS));
    let operator = op::start(&server, Options::new("op-0"));
    wait(&server, "the session cluster is deployed", |s| {
        jm_exists(s, "session") && recon_state(s, "session") == "DEPLOYED"
    })
    .await;
    let old_uid =
        server.get("apps/v1", "deployments", NS, "session").unwrap()["metadata"]["uid"].clone();
    server.clear_requests();

    let api: Api<FlinkDeployment> = Api::namespaced(server.client(), NS);
    api.patch(
        "session",
        &PatchParams::default(),
        &Patch::Merge(
            json!({"spec": {"flinkConfiguration": {"taskmanager.numberOfTaskSlots": "4"}}}),
        ),
    )
    .await
    .unwrap();
    wait(&server, "the new cluster is deployed", |s| {
        s.get("apps/v1", "deployments", NS, "session")
            .is_some_and(|d| d["metadata"]["uid"] != old_uid)
            && recon_state(s, "session") == "DEPLOYED"
    })
    .await;

    let log = server.requests();
    let recorded = first(&log, |r| is_status_write(r, "session")).unwrap();
    let deleted = first(&log, |r| {
        r.resource == "deployments"
            && r.verb == Verb::Delete
            && r.name.as_deref() == Some("session")
    })
    .unwrap();
    let applied = first(&log, |r| {
        r.resource == "deployments"
            && r.verb == Verb::Patch
            && r.name.as_deref() == Some("session")
            && r.status < 300
    })
    .unwrap();
    assert!(
        recorded < deleted && deleted < applied,
        "status {recorded} < delete {deleted} < apply {applied}"
    );
    let config = server
        .get("v1", "configmaps", NS, "flink-config-session")
        .unwrap();
    let rendered = config["data"]["config.yaml"].as_str().unwrap();
    assert!(
        rendered.contains("taskmanager.numberOfTaskSlots: \"4\""),
        "{rendered}"
    );
    operator.stop().await;
}

#[tokio::test]
async fn a_suspended_deployment_runs_nothing_until_resumed() {
    let server = fake().await;
    seed(
        &server,
        &FlinkDeployment::test("paused")
            .application()
            .suspended()
            .in_namespace(NS),
    );
    let operator = op::start(&server, Options::new("op-0"));
    wait(&server, "the suspended spec is recorded", |s| {
        status_str(s, NS, "paused", "/lifecycleState") == "SUSPENDED"
    })
    .await;
    assert!(!server.requests().iter().any(is_child_write));

    let api: Api<FlinkDeployment> = Api::namespaced(server.client(), NS);
    api.patch(
        "paused",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"job": {"state": "running"}}})),
    )
    .await
    .unwrap();
    wait(&server, "the resumed job's cluster is applied", |s| {
        jm_exists(s, "paused") && recon_state(s, "paused") == "DEPLOYED"
    })
    .await;
    operator.stop().await;
}

#[tokio::test]
async fn deleting_a_deployment_with_a_finalizer_deletes_its_children_before_the_resource_goes() {
    let server = fake().await;
    seed(
        &server,
        &FlinkDeployment::test("basic")
            .application()
            .with_config("kubernetes.operator.job.savepoint-on-deletion", "true")
            .in_namespace(NS),
    );
    let operator = op::start(&server, Options::new("op-0"));
    wait(&server, "deployed", |s| {
        jm_exists(s, "basic") && recon_state(s, "basic") == "DEPLOYED"
    })
    .await;
    let finalizers = deployment(&server, NS, "basic")["metadata"]["finalizers"].clone();
    assert_eq!(
        finalizers,
        json!([FINALIZER]),
        "savepoint-on-deletion needs the operator at deletion"
    );
    let log = server.requests();
    let finalizer_added = first(&log, |r| {
        r.resource == "flinkdeployments" && r.subresource.is_none() && r.verb == Verb::Patch
    })
    .unwrap();
    assert!(finalizer_added < first(&log, is_child_write).unwrap());
    server.clear_requests();

    // no JobManager ever became ready: there is no job to take a savepoint of
    let api: Api<FlinkDeployment> = Api::namespaced(server.client(), NS);
    api.delete("basic", &DeleteParams::default()).await.unwrap();
    wait(&server, "the resource is gone", |s| {
        deployment(s, NS, "basic").is_null()
    })
    .await;
    assert!(!jm_exists(&server, "basic"));
    assert!(!exists(&server, "v1", "configmaps", "flink-config-basic"));
    let log = server.requests();
    let children_deleted = requests(&log, "deployments", Verb::Delete)
        .map(|(i, _)| i)
        .next()
        .expect("the operator deleted the JobManager Deployment");
    let released = first(&log, |r| {
        r.resource == "flinkdeployments"
            && r.subresource.is_none()
            && r.verb == Verb::Patch
            && r.field_manager.as_deref() == Some("flinkpilot")
    })
    .expect("the finalizer was removed");
    assert!(children_deleted < released);
    assert!(
        events(&server, NS, "basic")
            .iter()
            .any(|(r, _)| r == "Cleanup")
    );
    operator.stop().await;
}

#[tokio::test]
async fn an_application_without_cleanup_needs_is_deleted_by_the_garbage_collector() {
    let server = fake().await;
    seed(
        &server,
        &FlinkDeployment::test("basic")
            .application()
            .in_namespace(NS),
    );
    let operator = op::start(&server, Options::new("op-0"));
    wait(&server, "deployed", |s| {
        jm_exists(s, "basic") && recon_state(s, "basic") == "DEPLOYED"
    })
    .await;
    let api: Api<FlinkDeployment> = Api::namespaced(server.client(), NS);
    api.delete("basic", &DeleteParams::default()).await.unwrap();
    assert!(
        deployment(&server, NS, "basic").is_null(),
        "no finalizer held it"
    );
    assert!(
        !jm_exists(&server, "basic"),
        "owner references took the children along"
    );
    operator.stop().await;
}

fn lease_holder(server: &FakeApiServer) -> String {
    server
        .get(
            "coordination.k8s.io/v1",
            "leases",
            "flinkpilot",
            "flinkpilot-operator-leader",
        )
        .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Writes other than those to the Lease.
fn work_writes(replica: &op::Replica) -> Vec<(String, String)> {
    replica
        .writes()
        .into_iter()
        .filter(|(_, path)| !path.contains("/leases"))
        .collect()
}

#[tokio::test]
async fn with_two_replicas_only_the_lease_holder_writes_and_the_other_takes_over() {
    let server = fake().await;
    let a = op::start(&server, Options::new("op-a").with_leader_election());
    wait(&server, "op-a holds the lease", |s| {
        lease_holder(s) == "op-a"
    })
    .await;
    let b = op::start(&server, Options::new("op-b").with_leader_election());
    seed(
        &server,
        &FlinkDeployment::test("first")
            .application()
            .in_namespace(NS),
    );
    wait(&server, "the leader deploys", |s| {
        jm_exists(s, "first") && recon_state(s, "first") == "DEPLOYED"
    })
    .await;
    assert!(!work_writes(&a).is_empty());
    assert_eq!(
        work_writes(&b),
        Vec::<(String, String)>::new(),
        "the standby wrote nothing but its lease attempts"
    );

    // the leader stops and gives the lease back; the standby takes over and acts
    a.stop().await;
    wait(&server, "op-b holds the lease", |s| {
        lease_holder(s) == "op-b"
    })
    .await;
    seed(
        &server,
        &FlinkDeployment::test("second")
            .application()
            .in_namespace(NS),
    );
    wait(&server, "the new leader deploys", |s| {
        jm_exists(s, "second") && recon_state(s, "second") == "DEPLOYED"
    })
    .await;
    assert!(
        work_writes(&b)
            .iter()
            .any(|(m, p)| m == "PATCH" && p.ends_with("/deployments/second")),
        "{:?}",
        work_writes(&b)
    );
    b.stop().await;
}
