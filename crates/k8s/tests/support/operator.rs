//! Runs `flinkpilot operator` (the library entry point, as the CLI does) against the testkit's
//! fake API server, with a client that records the requests this replica sent.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use engine::ResourceKey;
use flinkpilot_k8s::backend::{BackendSettings, ProxyAccess, RestAccess, RestUrls};
use flinkpilot_k8s::controller::ControllerSettings;
use flinkpilot_k8s::leader::LeaderSettings;
use flinkpilot_k8s::operator::{self, OperatorConfig};
use kube::Client;
use serde_json::Value;
use testkit::kube_fake::{FakeApiServer, RequestRecord, Verb};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// `(method, path)` of every request one replica sent.
pub type Sent = Arc<Mutex<Vec<(String, String)>>>;

/// A running operator replica.
pub struct Replica {
    pub sent: Sent,
    pub rest: RestUrls,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Replica {
    /// Stops the replica (gracefully: the lease is given back) and waits until it has.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .expect("the operator stops within 30 s")
                .unwrap();
        }
    }

    /// Writes (POST, PUT, PATCH, DELETE) this replica sent, as `(method, path)`.
    pub fn writes(&self) -> Vec<(String, String)> {
        self.sent
            .lock()
            .unwrap()
            .iter()
            .filter(|(m, _)| m != "GET")
            .cloned()
            .collect()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// A client of `server` that records what it sends into `sent`.
pub fn recording_client(server: &FakeApiServer, sent: Sent) -> Client {
    let layer =
        tower::util::MapRequestLayer::new(move |req: axum::http::Request<kube::client::Body>| {
            sent.lock()
                .unwrap()
                .push((req.method().to_string(), req.uri().path().to_string()));
            req
        });
    kube::client::ClientBuilder::try_from(server.config())
        .unwrap()
        .with_layer(&layer)
        .build()
}

/// Engine timing for tests: observe every second.
pub fn engine_settings() -> engine::Settings {
    engine::Settings {
        observe_interval: Duration::from_secs(1),
        retry_interval: Duration::from_secs(2),
        ..engine::Settings::default()
    }
}

/// Options of a test replica.
pub struct Options {
    pub identity: String,
    pub leader: bool,
    pub namespaces: Vec<String>,
    pub engine: engine::Settings,
    /// Reach JobManagers through the API server's service proxy (`--rest-via-apiserver`)
    /// with the fake's credentials, instead of [`Replica::rest`].
    pub rest_via_apiserver: bool,
    /// Serve `/healthz`, `/readyz` and `/metrics` here.
    pub http_addr: Option<std::net::SocketAddr>,
}

impl Options {
    pub fn new(identity: &str) -> Self {
        Options {
            identity: identity.into(),
            leader: false,
            namespaces: Vec::new(),
            engine: engine_settings(),
            rest_via_apiserver: false,
            http_addr: None,
        }
    }

    pub fn with_rest_via_apiserver(mut self) -> Self {
        self.rest_via_apiserver = true;
        self
    }

    pub fn with_http(mut self, addr: std::net::SocketAddr) -> Self {
        self.http_addr = Some(addr);
        self
    }

    pub fn with_leader_election(mut self) -> Self {
        self.leader = true;
        self
    }
}

/// Starts a replica.
pub fn start(server: &FakeApiServer, options: Options) -> Replica {
    let sent: Sent = Arc::default();
    let client = recording_client(server, sent.clone());
    let rest = RestUrls::new();
    let leader = options.leader.then(|| LeaderSettings {
        duration_secs: 3,
        grace_secs: 1,
        check_interval: Duration::from_millis(200),
        ..LeaderSettings::new(
            "flinkpilot-operator-leader",
            "flinkpilot",
            &options.identity,
        )
    });
    let config = OperatorConfig {
        controller: ControllerSettings {
            namespaces: options.namespaces,
            backoff_start: Duration::from_millis(200),
            backoff_max: Duration::from_secs(2),
            ..ControllerSettings::default()
        },
        engine: options.engine,
        backend: BackendSettings {
            delete_timeout: Duration::from_secs(20),
            rest_timeout: Duration::from_secs(5),
            ..BackendSettings::default()
        },
        rest: if options.rest_via_apiserver {
            RestAccess::ApiServerProxy(Box::new(
                ProxyAccess::from_kube_config(&server.config()).unwrap(),
            ))
        } else {
            RestAccess::Fixed(rest.clone())
        },
        http_addr: options.http_addr,
        webhook: None,
        leader,
        identity: options.identity,
    };
    let (stop_tx, stop_rx) = oneshot::channel();
    let task = tokio::spawn(async move {
        operator::run(client, config, async {
            let _ = stop_rx.await;
        })
        .await
        .expect("the operator runs");
    });
    Replica {
        sent,
        rest,
        stop: Some(stop_tx),
        task: Some(task),
    }
}

/// The key of `namespace/name`.
pub fn key(namespace: &str, name: &str) -> ResourceKey {
    ResourceKey::new(namespace, name)
}

/// The stored FlinkDeployment, or `Null`.
pub fn deployment(server: &FakeApiServer, ns: &str, name: &str) -> Value {
    server
        .get("flink.apache.org/v1beta1", "flinkdeployments", ns, name)
        .unwrap_or(Value::Null)
}

/// `status.<path>` of the stored FlinkDeployment as a string ("" when absent).
pub fn status_str(server: &FakeApiServer, ns: &str, name: &str, pointer: &str) -> String {
    deployment(server, ns, name)["status"]
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// Waits until `condition` holds (re-checked on every change of the fake's store).
pub async fn wait(
    server: &FakeApiServer,
    what: &str,
    condition: impl FnMut(&FakeApiServer) -> bool,
) {
    if server
        .wait_for(Duration::from_secs(60), condition)
        .await
        .is_err()
    {
        panic!("timed out waiting until {what}");
    }
}

/// Events recorded about `name` in `ns`: `(reason, note)`.
pub fn events(server: &FakeApiServer, ns: &str, name: &str) -> Vec<(String, String)> {
    server
        .list("events.k8s.io/v1", "events", Some(ns))
        .into_iter()
        .filter(|e| e["regarding"]["name"] == name)
        .map(|e| {
            (
                e["reason"].as_str().unwrap_or_default().to_string(),
                e["note"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Requests to `resource` (plural) in `ns` for object `name` (or any, if `None`) with `verb`.
pub fn requests<'a>(
    log: &'a [RequestRecord],
    resource: &'a str,
    verb: Verb,
) -> impl Iterator<Item = (usize, &'a RequestRecord)> + 'a {
    log.iter()
        .enumerate()
        .filter(move |(_, r)| r.resource == resource && r.verb == verb)
}
