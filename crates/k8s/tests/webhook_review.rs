//! The admission webhook's answers, through its router (no socket): allowed and denied
//! creates, change rules on updates, malformed objects, session jobs and their clusters,
//! deletes and subresources.

#![allow(clippy::unwrap_used)]

mod support;

use api::{DeploymentMode, FlinkDeployment, FlinkSessionJob, FlinkStateSnapshot, JobKind};
use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode};
use flinkpilot_k8s::webhook::{DeploymentLookup, WebhookState, app};
use serde_json::{Value, json};
use support::{Clusters, Unreachable, cause_fields, response, review, to_json};
use tower::ServiceExt;

async fn post<L: DeploymentLookup>(lookup: L, body: &Value) -> (StatusCode, Value) {
    let resp = app(WebhookState::new(lookup))
        .oneshot(
            Request::post("/validate")
                .header("content-type", "application/json")
                .body(Body::from(serde_json::to_vec(body).unwrap()))
                .unwrap(),
        )
        .await
        .unwrap();
    let status = resp.status();
    let bytes = to_bytes(resp.into_body(), 1 << 24).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap())
}

/// Posts a review and returns its `response`, checking the uid is echoed.
async fn answer<L: DeploymentLookup>(lookup: L, request: Value) -> Value {
    let (status, answer) = post(lookup, &request).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let resp = response(&answer).clone();
    assert_eq!(resp["uid"], request["request"]["uid"], "{answer}");
    resp
}

fn application(name: &str) -> FlinkDeployment {
    FlinkDeployment::test(name).application()
}

#[tokio::test]
async fn valid_deployment_create_is_allowed() {
    let resp = answer(
        Clusters::default(),
        review("CREATE", &to_json(&application("counter")), None),
    )
    .await;
    assert_eq!(resp["allowed"], true, "{resp}");
    assert!(resp.get("warnings").is_none(), "{resp}");
}

#[tokio::test]
async fn invalid_deployment_create_is_denied_with_every_problem_as_a_field_line() {
    let mut d = application("counter");
    d.spec.service_account = None;
    d.spec.job.as_mut().unwrap().jar_uri = None;
    let resp = answer(Clusters::default(), review("CREATE", &to_json(&d), None)).await;

    assert_eq!(resp["allowed"], false, "{resp}");
    let status = &resp["status"];
    assert_eq!(status["code"], 422, "{resp}");
    assert_eq!(status["reason"], "Invalid", "{resp}");
    assert_eq!(status["details"]["kind"], "FlinkDeployment", "{resp}");
    assert_eq!(status["details"]["name"], "counter", "{resp}");
    let message = status["message"].as_str().unwrap();
    let lines: Vec<&str> = message.lines().collect();
    let fields = cause_fields(&resp);
    assert_eq!(lines.len(), fields.len(), "{message}");
    for (line, field) in lines.iter().zip(&fields) {
        assert!(line.starts_with(&format!("{field}: ")), "{line}");
    }
    assert!(
        fields.contains(&"spec.serviceAccount".to_string()),
        "{fields:?}"
    );
    assert!(
        fields.contains(&"spec.job.jarURI".to_string()),
        "{fields:?}"
    );
}

#[tokio::test]
async fn changing_mode_from_native_to_standalone_is_denied() {
    let old = application("counter");
    let new = old.clone().with_mode(DeploymentMode::Standalone);
    let resp = answer(
        Clusters::default(),
        review("UPDATE", &to_json(&new), Some(&to_json(&old))),
    )
    .await;
    assert_eq!(resp["allowed"], false, "{resp}");
    assert_eq!(cause_fields(&resp), ["spec.mode"], "{resp}");
    assert!(
        resp["status"]["message"]
            .as_str()
            .unwrap()
            .starts_with("spec.mode: the deployment mode cannot change from native to standalone"),
        "{resp}"
    );
}

#[tokio::test]
async fn turning_a_session_cluster_into_an_application_is_denied() {
    let old = FlinkDeployment::test("session");
    let new = application("session");
    let resp = answer(
        Clusters::default(),
        review("UPDATE", &to_json(&new), Some(&to_json(&old))),
    )
    .await;
    assert_eq!(resp["allowed"], false, "{resp}");
    assert_eq!(cause_fields(&resp), ["spec.job"], "{resp}");
}

#[tokio::test]
async fn a_change_also_recorded_in_the_status_is_reported_once() {
    // The old object was reconciled: the status' last reconciled spec and the old spec are the
    // same, so both checks find the same mode change.
    let old = application("counter").deployed();
    let mut new = old.clone().with_mode(DeploymentMode::Standalone);
    new.status = old.status.clone();
    let resp = answer(
        Clusters::default(),
        review("UPDATE", &to_json(&new), Some(&to_json(&old))),
    )
    .await;
    assert_eq!(cause_fields(&resp), ["spec.mode"], "{resp}");
}

#[tokio::test]
async fn an_allowed_change_is_allowed() {
    let old = application("counter");
    let new = old.clone().with_parallelism(4);
    let resp = answer(
        Clusters::default(),
        review("UPDATE", &to_json(&new), Some(&to_json(&old))),
    )
    .await;
    assert_eq!(resp["allowed"], true, "{resp}");
}

#[tokio::test]
async fn an_update_that_leaves_the_spec_alone_is_allowed_even_for_an_invalid_spec() {
    // e.g. the operator removing its finalizer from an object created before the webhook
    let mut old = application("counter");
    old.spec.service_account = None;
    let mut new = old.clone();
    new.metadata.finalizers = Some(vec![]);
    new.metadata.labels = Some([("team".to_string(), "a".to_string())].into());
    let resp = answer(
        Clusters::default(),
        review("UPDATE", &to_json(&new), Some(&to_json(&old))),
    )
    .await;
    assert_eq!(resp["allowed"], true, "{resp}");
}

#[tokio::test]
async fn a_malformed_object_is_denied_with_the_field_path() {
    let mut d = to_json(&application("counter"));
    d["spec"]["job"]["upgradeMode"] = json!("sometimes");
    let resp = answer(Clusters::default(), review("CREATE", &d, None)).await;
    assert_eq!(resp["allowed"], false, "{resp}");
    assert_eq!(cause_fields(&resp), ["spec.job.upgradeMode"], "{resp}");
    let message = resp["status"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("spec.job.upgradeMode: `sometimes` is not a valid value; use one of:"),
        "{message}"
    );
    assert!(message.contains("last-state"), "{message}");
}

#[tokio::test]
async fn a_malformed_value_is_not_echoed_back() {
    let mut d = to_json(&application("counter"));
    d["spec"]["taskManager"]["replicas"] = json!("hunter2-p4ssw0rd");
    let resp = answer(Clusters::default(), review("CREATE", &d, None)).await;
    assert_eq!(resp["allowed"], false, "{resp}");
    assert_eq!(cause_fields(&resp), ["spec.taskManager.replicas"], "{resp}");
    assert!(!resp.to_string().contains("hunter2"), "{resp}");
}

#[tokio::test]
async fn a_session_job_on_a_session_cluster_is_allowed_without_warnings() {
    let clusters = Clusters::default().with(FlinkDeployment::test("session"));
    let job = FlinkSessionJob::test("job", "session");
    let resp = answer(clusters, review("CREATE", &to_json(&job), None)).await;
    assert_eq!(resp["allowed"], true, "{resp}");
    assert!(resp.get("warnings").is_none(), "{resp}");
}

#[tokio::test]
async fn a_session_job_whose_cluster_is_missing_is_allowed_with_a_warning() {
    let job = FlinkSessionJob::test("job", "session");
    let resp = answer(Clusters::default(), review("CREATE", &to_json(&job), None)).await;
    assert_eq!(resp["allowed"], true, "{resp}");
    let warnings = resp["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{resp}");
    let w = warnings[0].as_str().unwrap();
    assert!(
        w.starts_with("FlinkDeployment session does not exist in namespace default"),
        "{w}"
    );
}

#[tokio::test]
async fn a_session_job_is_looked_up_in_its_own_namespace() {
    // a cluster of that name in another namespace does not count
    let clusters = Clusters::default().with(application("session").in_namespace("other"));
    let job = FlinkSessionJob::test("job", "session");
    let resp = answer(clusters, review("CREATE", &to_json(&job), None)).await;
    assert_eq!(resp["allowed"], true, "{resp}");
    assert!(resp["warnings"].is_array(), "{resp}");
}

#[tokio::test]
async fn a_session_job_on_an_application_cluster_is_denied() {
    let clusters = Clusters::default().with(application("session"));
    let job = FlinkSessionJob::test("job", "session");
    let resp = answer(clusters, review("CREATE", &to_json(&job), None)).await;
    assert_eq!(resp["allowed"], false, "{resp}");
    assert_eq!(cause_fields(&resp), ["spec.deploymentName"], "{resp}");
    assert!(
        resp["status"]["message"]
            .as_str()
            .unwrap()
            .contains("is an application cluster"),
        "{resp}"
    );
}

#[tokio::test]
async fn moving_a_session_job_to_another_cluster_is_denied() {
    let clusters = Clusters::default()
        .with(FlinkDeployment::test("a"))
        .with(FlinkDeployment::test("b"));
    let old = FlinkSessionJob::test("job", "a");
    let new = FlinkSessionJob::test("job", "b");
    let resp = answer(
        clusters,
        review("UPDATE", &to_json(&new), Some(&to_json(&old))),
    )
    .await;
    assert_eq!(resp["allowed"], false, "{resp}");
    assert_eq!(cause_fields(&resp), ["spec.deploymentName"], "{resp}");
}

#[tokio::test]
async fn a_failed_cluster_lookup_denies_as_unavailable_without_internal_details() {
    let job = FlinkSessionJob::test("job", "session");
    let resp = answer(Unreachable, review("CREATE", &to_json(&job), None)).await;
    assert_eq!(resp["allowed"], false, "{resp}");
    assert_eq!(resp["status"]["code"], 503, "{resp}");
    assert_eq!(resp["status"]["reason"], "ServiceUnavailable", "{resp}");
    assert!(
        resp["status"]["message"]
            .as_str()
            .unwrap()
            .contains("try again"),
        "{resp}"
    );
    assert!(
        !resp.to_string().contains(support::INTERNAL_DETAIL),
        "{resp}"
    );
}

#[tokio::test]
async fn snapshots_are_validated() {
    let good = FlinkStateSnapshot::test_savepoint("sp", JobKind::FlinkDeployment, "counter");
    let resp = answer(Clusters::default(), review("CREATE", &to_json(&good), None)).await;
    assert_eq!(resp["allowed"], true, "{resp}");

    let mut bad = good.clone();
    bad.spec.savepoint = None;
    let resp = answer(Clusters::default(), review("CREATE", &to_json(&bad), None)).await;
    assert_eq!(resp["allowed"], false, "{resp}");
    assert_eq!(cause_fields(&resp), ["spec"], "{resp}");
}

#[tokio::test]
async fn delete_is_allowed_even_for_an_invalid_object() {
    let mut old = application("counter");
    old.spec.service_account = None;
    let resp = answer(
        Clusters::default(),
        review("DELETE", &Value::Null, Some(&to_json(&old))),
    )
    .await;
    assert_eq!(resp["allowed"], true, "{resp}");
}

#[tokio::test]
async fn status_and_scale_subresource_writes_are_allowed() {
    let old = application("counter");
    let mut new = old.clone().with_mode(DeploymentMode::Standalone);
    new.spec.service_account = None;
    for sub in ["status", "scale"] {
        let mut request = review("UPDATE", &to_json(&new), Some(&to_json(&old)));
        request["request"]["subResource"] = json!(sub);
        let resp = answer(Clusters::default(), request).await;
        assert_eq!(resp["allowed"], true, "{sub}: {resp}");
    }
}

#[tokio::test]
async fn kinds_outside_flink_apache_org_are_denied_with_advice() {
    let cm = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "x", "namespace": "default"}, "data": {"a": "b"}
    });
    let resp = answer(Clusters::default(), review("CREATE", &cm, None)).await;
    assert_eq!(resp["allowed"], false, "{resp}");
    assert!(
        resp["status"]["message"]
            .as_str()
            .unwrap()
            .contains("ValidatingWebhookConfiguration"),
        "{resp}"
    );
}

#[tokio::test]
async fn a_body_that_is_not_an_admission_review_is_a_bad_request() {
    let (status, answer) = post(Clusters::default(), &json!({"hello": "world"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["response"]["allowed"], false, "{answer}");
    assert_eq!(
        answer["response"]["status"]["reason"], "InvalidRequest",
        "{answer}"
    );
}
