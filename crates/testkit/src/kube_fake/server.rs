//! The running fake: a loopback HTTP server per test, a real `kube::Client` pointed at it, and
//! helpers to inspect and steer it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use kube::Resource;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::{oneshot, watch};

use super::error::ApiError;
use super::observe::{Fault, RequestRecord};
use super::proxy::ServiceProxy;
use super::registry::{Registry, ResourceType, split_api_version};
use super::store::{Filter, ObjKey, State};
use super::write::WriteCtx;

/// Failures of the fake's own set-up and helpers.
#[derive(Debug, thiserror::Error)]
pub enum FakeApiError {
    /// The loopback listener could not be bound.
    #[error("fake API server: cannot listen on 127.0.0.1: {0}")]
    Bind(#[source] std::io::Error),
    /// The kube client could not be built for the fake's URL.
    #[error("fake API server: cannot build a kube client for {url}: {source}")]
    Client {
        url: String,
        #[source]
        source: kube::Error,
    },
    /// A seeded object was refused, as the API would refuse it.
    #[error("fake API server: object refused: {0}")]
    Refused(#[from] ApiError),
    /// The object names an apiVersion/kind the fake does not serve.
    #[error(
        "fake API server: no served type for apiVersion {api_version:?} kind {kind:?}; register it first"
    )]
    UnknownType { api_version: String, kind: String },
    /// A stored object did not deserialize into the requested Rust type.
    #[error("fake API server: stored object does not deserialize as the requested type: {0}")]
    Deserialize(#[from] serde_json::Error),
    /// [`FakeApiServer::wait_for`] ran out of time.
    #[error("fake API server: condition not met within {0:?}")]
    Timeout(Duration),
}

/// State shared by the HTTP handlers and the test-side handle.
#[derive(Debug)]
pub struct Shared {
    state: Mutex<State>,
    log: Mutex<Vec<RequestRecord>>,
    log_enabled: bool,
    faults: Mutex<Vec<Fault>>,
    /// Bumped to end every open watch (and on shutdown).
    pub disconnect: watch::Sender<u64>,
    pub bookmark_interval: Duration,
    pub server_address: String,
    /// The bearer token every request must carry; `None`: no authentication.
    pub token: Option<String>,
    /// Endpoints of Services, for the service proxy.
    pub proxy: ServiceProxy,
    /// The service proxy's client.
    pub http: reqwest::Client,
}

fn relock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // a panic in a handler must not wedge every later request of the test
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// The one store lock.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        relock(&self.state)
    }

    /// Injected faults.
    pub fn faults(&self) -> MutexGuard<'_, Vec<Fault>> {
        relock(&self.faults)
    }

    /// Appends to the request log.
    pub fn record(&self, rec: RequestRecord) {
        if self.log_enabled {
            relock(&self.log).push(rec);
        }
    }
}

/// Configures a [`FakeApiServer`].
#[derive(Debug, Clone)]
pub struct FakeApiServerBuilder {
    history: usize,
    bookmark_interval: Duration,
    request_log: bool,
    default_namespace: String,
    extra_types: Vec<ResourceType>,
    token: Option<String>,
}

impl Default for FakeApiServerBuilder {
    fn default() -> Self {
        Self {
            history: 10_000,
            bookmark_interval: Duration::from_secs(1),
            request_log: true,
            default_namespace: "default".to_string(),
            extra_types: Vec::new(),
            token: None,
        }
    }
}

impl FakeApiServerBuilder {
    /// Watch events kept per resource type (default 10,000); a watch resuming from before the
    /// oldest kept event gets `410 Gone`.
    pub fn history(mut self, events_per_type: usize) -> Self {
        self.history = events_per_type;
        self
    }

    /// How often watches with `allowWatchBookmarks=true` get a BOOKMARK (default 1 s; the real
    /// server sends one about every minute).
    pub fn bookmark_interval(mut self, every: Duration) -> Self {
        self.bookmark_interval = every;
        self
    }

    /// Turns the request log off (for benchmarks with many requests).
    pub fn request_log(mut self, on: bool) -> Self {
        self.request_log = on;
        self
    }

    /// The client's default namespace (default `default`).
    pub fn default_namespace(mut self, ns: &str) -> Self {
        self.default_namespace = ns.to_string();
        self
    }

    /// Serves one more resource type from the start.
    pub fn resource(mut self, rt: ResourceType) -> Self {
        self.extra_types.push(rt);
        self
    }

    /// Requires `Authorization: Bearer <token>` on every request (401 `Unauthorized` without
    /// it or with another token), as a real API server does with token authentication.
    /// [`FakeApiServer::client`] and [`FakeApiServer::config`] carry the token.
    pub fn bearer_token(mut self, token: &str) -> Self {
        self.token = Some(token.to_string());
        self
    }

    /// Binds 127.0.0.1 on a free port and starts serving. Must run inside a Tokio runtime.
    pub async fn start(self) -> Result<FakeApiServer, FakeApiError> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(FakeApiError::Bind)?;
        let addr = listener.local_addr().map_err(FakeApiError::Bind)?;
        let mut state = State::new(Registry::builtin(), self.history);
        for rt in self.extra_types {
            state.register(rt);
        }
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            log: Mutex::new(Vec::new()),
            log_enabled: self.request_log,
            faults: Mutex::new(Vec::new()),
            disconnect: watch::channel(0).0,
            bookmark_interval: self.bookmark_interval,
            server_address: addr.to_string(),
            token: self.token.clone(),
            proxy: ServiceProxy::default(),
            http: reqwest::Client::builder().no_proxy().build().map_err(|e| {
                FakeApiError::Client {
                    url: "service proxy".into(),
                    source: kube::Error::Service(Box::new(e)),
                }
            })?,
        });
        let url = format!("http://{addr}");
        let uri = url
            .parse()
            .map_err(|e: axum::http::uri::InvalidUri| FakeApiError::Client {
                url: url.clone(),
                source: kube::Error::Service(Box::new(e)),
            })?;
        let mut config = kube::Config::new(uri);
        config.default_namespace = self.default_namespace;
        if let Some(token) = &self.token {
            // `AuthInfo` holds the token as a secret; it reads from a kubeconfig's fields
            config.auth_info = serde_json::from_value(serde_json::json!({ "token": token }))
                .map_err(|e| FakeApiError::Client {
                    url: url.clone(),
                    source: kube::Error::Service(Box::new(e)),
                })?;
        }
        let client =
            kube::Client::try_from(config.clone()).map_err(|source| FakeApiError::Client {
                url: url.clone(),
                source,
            })?;

        let (stop, stopped) = oneshot::channel::<()>();
        let app = super::http::app(Arc::clone(&shared));
        tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            // the only failure is the accept loop dying with the runtime: nothing to report to
            let _ = serve.await;
        });
        Ok(FakeApiServer {
            shared,
            addr,
            url,
            config,
            client,
            stop: Some(stop),
        })
    }
}

/// A CRUD fake of the Kubernetes API server for tests (see the module docs for semantics).
/// Stops when dropped.
pub struct FakeApiServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    url: String,
    config: kube::Config,
    client: kube::Client,
    stop: Option<oneshot::Sender<()>>,
}

impl std::fmt::Debug for FakeApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeApiServer")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.shared.disconnect.send_modify(|epoch| *epoch += 1);
    }
}

fn key_for(state: &State, api_version: &str, plural: &str, ns: &str, name: &str) -> Option<ObjKey> {
    let (group, version) = split_api_version(api_version);
    let ty = state.find(group, version, plural)?;
    Some(ObjKey {
        ty,
        ns: ns.to_string(),
        name: name.to_string(),
    })
}

impl FakeApiServer {
    /// Starts a fake with default settings.
    pub async fn start() -> Result<Self, FakeApiError> {
        FakeApiServerBuilder::default().start().await
    }

    /// A builder for non-default settings.
    pub fn builder() -> FakeApiServerBuilder {
        FakeApiServerBuilder::default()
    }

    /// A real `kube::Client` talking to this server (plain HTTP on loopback).
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// The client configuration, to build a differently configured client. For example kube 5
    /// clients retry 429, 503 and 504 answers themselves (up to 15 times, with backoff); set
    /// `default_retry = false` to see those errors in a test.
    pub fn config(&self) -> kube::Config {
        self.config.clone()
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where the service proxy sends requests for each Service (see the `proxy` module).
    pub fn service_proxy(&self) -> ServiceProxy {
        self.shared.proxy.clone()
    }

    /// The stored object, read directly (`ns` is `""` for cluster-scoped types).
    pub fn get(&self, api_version: &str, plural: &str, ns: &str, name: &str) -> Option<Value> {
        let state = self.shared.lock();
        let key = key_for(&state, api_version, plural, ns, name)?;
        state.lookup(&key).map(|o| (*o).clone())
    }

    /// The stored object as a typed resource, e.g. `server.get_typed::<Deployment>("ns", "x")`.
    pub fn get_typed<K>(&self, ns: &str, name: &str) -> Result<Option<K>, FakeApiError>
    where
        K: Resource<DynamicType = ()> + DeserializeOwned,
    {
        self.get(&K::api_version(&()), &K::plural(&()), ns, name)
            .map(serde_json::from_value)
            .transpose()
            .map_err(FakeApiError::from)
    }

    /// All stored objects of a type, optionally in one namespace, ordered by namespace and name.
    pub fn list(&self, api_version: &str, plural: &str, ns: Option<&str>) -> Vec<Value> {
        let state = self.shared.lock();
        let (group, version) = split_api_version(api_version);
        let Some(ty) = state.find(group, version, plural) else {
            return Vec::new();
        };
        let filter = Filter {
            namespace: ns.map(str::to_string),
            ..Filter::default()
        };
        state
            .select(ty, &filter)
            .iter()
            .map(|o| (**o).clone())
            .collect()
    }

    /// Creates an object directly (no HTTP, no request log), as the field manager `testkit`.
    pub fn seed(&self, obj: Value) -> Result<Value, FakeApiError> {
        let api_version = obj["apiVersion"].as_str().unwrap_or_default().to_string();
        let kind = obj["kind"].as_str().unwrap_or_default().to_string();
        let ns = obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let mut state = self.shared.lock();
        let ty = state
            .registry
            .find_kind(&api_version, &kind)
            .ok_or(FakeApiError::UnknownType { api_version, kind })?;
        let ns = if state.rt(ty).namespaced && ns.is_empty() {
            "default".to_string()
        } else {
            ns
        };
        let ctx = WriteCtx {
            manager: "testkit".into(),
            dry_run: false,
            now: super::meta::now_timestamp(),
        };
        Ok((*state.create(ty, &ns, obj, &ctx, None)?).clone())
    }

    /// The current (latest) resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.lock().rv
    }

    /// Serves one more resource type (or redefines one).
    pub fn register(&self, rt: ResourceType) {
        self.shared.lock().register(rt);
    }

    /// Every request answered so far, in order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        relock(&self.shared.log).clone()
    }

    /// Forgets the request log.
    pub fn clear_requests(&self) {
        relock(&self.shared.log).clear();
    }

    /// Adds a fault rule; rules are tried in the order added.
    pub fn inject(&self, fault: Fault) {
        self.shared.faults().push(fault);
    }

    /// Removes all fault rules.
    pub fn clear_faults(&self) {
        self.shared.faults().clear();
    }

    /// Ends every open watch stream (clients see the stream close and re-watch).
    pub fn disconnect_watches(&self) {
        self.shared.disconnect.send_modify(|epoch| *epoch += 1);
    }

    /// Drops the watch history: a watch resuming from any earlier resourceVersion gets
    /// `410 Gone` (open watches behind the current version get it too).
    pub fn compact_history(&self) {
        self.shared.lock().compact();
    }

    /// Waits until `condition` holds, re-checking after every change to the store; fails after
    /// `timeout`.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        mut condition: impl FnMut(&FakeApiServer) -> bool,
    ) -> Result<(), FakeApiError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut changes = self.shared.lock().changed.subscribe();
        loop {
            changes.borrow_and_update();
            if condition(self) {
                return Ok(());
            }
            tokio::select! {
                _ = changes.changed() => {}
                _ = tokio::time::sleep_until(deadline) => {
                    return if condition(self) { Ok(()) } else { Err(FakeApiError::Timeout(timeout)) };
                }
            }
        }
    }
}
