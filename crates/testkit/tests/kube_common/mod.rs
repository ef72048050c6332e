//! Shared by the `kube_fake_*` test files: a fake API server per test, a stand-in
//! `FlinkDeployment` type (the tests exercise the fake, not the real CRD types), and helpers.
// each test file uses a different subset
#![allow(dead_code)]

use flinkpilot_testkit::kube_fake::FakeApiServer;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::CustomResource;
use kube::core::ObjectMeta;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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
pub struct FdSpec {
    pub image: Option<String>,
    pub task_manager: Option<TaskManager>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct TaskManager {
    pub replicas: Option<i32>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FdStatus {
    pub lifecycle_state: Option<String>,
}

pub async fn fake() -> FakeApiServer {
    FakeApiServer::start()
        .await
        .expect("fake API server starts")
}

pub fn cm(name: &str, labels: &[(&str, &str)]) -> ConfigMap {
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

pub fn fd(name: &str, image: &str) -> FlinkDeployment {
    FlinkDeployment::new(
        name,
        FdSpec {
            image: Some(image.to_string()),
            task_manager: Some(TaskManager { replicas: Some(1) }),
        },
    )
}

pub fn api_error(err: kube::Error) -> Box<kube::core::Status> {
    match err {
        kube::Error::Api(status) => status,
        other => panic!("expected an API error, got {other:?}"),
    }
}
