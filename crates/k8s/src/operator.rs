//! `flinkpilot operator`: the controller, leader election, the admission webhook and the
//! health/metrics server, wired together.
//!
//! With leader election every replica serves health, metrics and the webhook; only the one
//! holding the Lease runs the controller. A replica that becomes leader starts a fresh
//! controller term (new watch caches, a fresh store); one that loses the lease stops its term
//! (passes in flight finish, but every write is refused by the fence from the moment the lease
//! is no longer certainly ours).

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use api::FlinkDeployment;
use futures::future::{BoxFuture, FutureExt, Shared};
use kube::{Api, Client};
use prometheus_client::registry::Registry;
use tokio::sync::watch;

use crate::backend::{BackendSettings, K8sBackend, RestAccess};
use crate::controller::{self, ControllerSettings, Parts};
use crate::events::EventPublisher;
use crate::http::{self, HttpState, Readiness};
use crate::leader::{Fence, LeaderError, LeaderSettings, Leadership};
use crate::metrics::Metrics;
use crate::webhook::tls::{self, TlsFiles, WebhookTls};
use crate::webhook::{self, DeploymentLookup, LookupError, WebhookState};

/// Everything `flinkpilot operator` is configured with.
#[derive(Debug)]
pub struct OperatorConfig {
    /// The controller's settings (namespaces, selector, concurrency, backoff).
    pub controller: ControllerSettings,
    /// The engine's timing and defaults.
    pub engine: engine::Settings,
    /// The Kubernetes backend's settings.
    pub backend: BackendSettings,
    /// How JobManagers are reached.
    pub rest: RestAccess,
    /// Where `/healthz`, `/readyz` and `/metrics` are served; `None`: not at all.
    pub http_addr: Option<SocketAddr>,
    /// The admission webhook's address and certificate directory; `None`: no webhook.
    pub webhook: Option<(SocketAddr, PathBuf)>,
    /// Leader election; `None`: this replica always acts (one replica only).
    pub leader: Option<LeaderSettings>,
    /// This replica's name (events' `reportingInstance`, the Lease holder).
    pub identity: String,
}

/// The operator could not start or one of its servers failed.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    /// An address could not be bound.
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What was to be served there.
        what: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The webhook certificate could not be loaded.
    #[error(transparent)]
    WebhookTls(#[from] tls::TlsError),
    /// The webhook server failed.
    #[error(transparent)]
    Webhook(#[from] tls::ServeError),
    /// The health and metrics server failed.
    #[error(transparent)]
    Http(#[from] http::ServeError),
    /// Leader election could not start.
    #[error(transparent)]
    Leader(#[from] LeaderError),
}

/// Finds session clusters for the webhook by asking the API server (always current, and it
/// needs no cache on standby replicas).
#[derive(Clone)]
pub struct ApiLookup(pub Client);

impl DeploymentLookup for ApiLookup {
    async fn get(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<FlinkDeployment>, LookupError> {
        let api: Api<FlinkDeployment> = Api::namespaced(self.0.clone(), namespace);
        api.get_opt(name).await.map_err(|e| LookupError {
            namespace: namespace.to_string(),
            name: name.to_string(),
            source: Box::new(e),
        })
    }
}

type Stop = Shared<BoxFuture<'static, ()>>;

async fn bind(
    addr: SocketAddr,
    what: &'static str,
) -> Result<tokio::net::TcpListener, OperatorError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| OperatorError::Bind { addr, what, source })
}

/// Runs the operator until `shutdown` resolves; then stops reconciling (passes in flight
/// finish), gives the lease back and stops serving.
pub async fn run(
    client: Client,
    config: OperatorConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), OperatorError> {
    let stop: Stop = shutdown.boxed().shared();
    let mut registry = Registry::default();
    let metrics = Metrics::new(&mut registry);
    let readiness = Readiness::new();

    let mut servers = tokio::task::JoinSet::new();
    if let Some(addr) = config.http_addr {
        let listener = bind(addr, "health and metrics").await?;
        let state = HttpState::new(registry, readiness.clone());
        let stop = stop.clone();
        servers.spawn(async move {
            http::serve(listener, state, stop)
                .await
                .map_err(OperatorError::from)
        });
    }
    if let Some((addr, dir)) = &config.webhook {
        let tls = Arc::new(WebhookTls::load(TlsFiles::in_dir(dir)).await?);
        let listener = bind(*addr, "admission webhook").await?;
        let router = webhook::app(WebhookState::new(ApiLookup(client.clone())));
        let stop = stop.clone();
        servers.spawn(async move {
            tls::serve(listener, tls, router, tls::DEFAULT_RELOAD_INTERVAL, stop)
                .await
                .map_err(OperatorError::from)
        });
    }

    let fence = if config.leader.is_some() {
        Fence::closed()
    } else {
        Fence::open()
    };
    let backend = K8sBackend::new(
        client.clone(),
        config.backend,
        config.rest,
        Some(Arc::new(metrics.clone())),
        fence.clone(),
    );
    let parts = Parts {
        client: client.clone(),
        backend,
        events: EventPublisher::new(client.clone(), &config.identity, fence.clone()),
        fence: fence.clone(),
        metrics,
        engine: Arc::new(config.engine),
        settings: config.controller,
    };

    let reconciling = async {
        match config.leader {
            None => {
                let ready = readiness.clone();
                controller::run(&parts, stop.clone(), move || ready.set_ready(true)).await;
                Ok::<(), OperatorError>(())
            }
            Some(settings) => {
                let leadership = Leadership::start(client.clone(), settings, fence).await?;
                // a standby is ready: it serves the webhook and metrics, and takes over at once
                readiness.set_ready(true);
                terms(&parts, leadership.watch(), stop.clone()).await;
                leadership.release().await;
                Ok(())
            }
        }
    };
    let serving = async {
        while let Some(done) = servers.join_next().await {
            match done {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(e),
                Err(e) => tracing::error!(error = %e, "a server task ended abnormally"),
            }
        }
        // every server ended (shutdown): wait for the reconciling side
        std::future::pending::<()>().await;
        Ok(())
    };
    tokio::select! {
        result = reconciling => {
            result?;
            // let the servers finish their requests
            while let Some(done) = servers.join_next().await {
                if let Ok(Err(e)) = done {
                    return Err(e);
                }
            }
            Ok(())
        }
        result = serving => result,
    }
}

/// Runs one controller term per period of leadership, until `stop`.
async fn terms(parts: &Parts, mut leading: watch::Receiver<bool>, stop: Stop) {
    loop {
        tokio::select! {
            () = stop.clone() => return,
            changed = leading.wait_for(|l| *l) => if changed.is_err() { return },
        }
        tracing::info!("starting the controller");
        let mut lost = leading.clone();
        let term_end = {
            let stop = stop.clone();
            async move {
                tokio::select! {
                    () = stop => {},
                    _ = lost.wait_for(|l| !*l) => {},
                }
            }
        };
        controller::run(parts, term_end, || {}).await;
        tracing::info!("controller stopped");
        if stop.peek().is_some() {
            return;
        }
    }
}
