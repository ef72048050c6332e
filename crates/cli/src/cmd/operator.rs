//! `flinkpilot operator`: the Kubernetes operator. Connects with the in-cluster service account
//! or the kubeconfig (`KUBECONFIG`, current context) and runs `k8s::operator` until SIGTERM or
//! Ctrl-C. The flags the install manifest passes are `k8s::install::operator::args`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use k8s::backend::{BackendSettings, Propagation, ProxyAccess, RestAccess};
use k8s::controller::ControllerSettings;
use k8s::install::rbac::LEASE_NAME;
use k8s::leader::LeaderSettings;
use k8s::operator::OperatorConfig;

/// Arguments of `flinkpilot operator`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Namespaces to watch, comma-separated; all namespaces without it.
    #[arg(long, value_name = "NS,...", value_delimiter = ',')]
    pub namespaces: Vec<String>,
    /// Reconcile only FlinkDeployments matching this label selector (e.g. `team=data`).
    #[arg(long, value_name = "SELECTOR")]
    pub label_selector: Option<String>,
    /// Address of /healthz, /readyz and /metrics.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: SocketAddr,
    /// Address of the HTTPS admission webhook; no webhook without it.
    #[arg(long, value_name = "ADDR", requires = "webhook_cert_dir")]
    pub webhook_addr: Option<SocketAddr>,
    /// Directory holding the webhook's tls.crt and tls.key (reloaded when they change).
    #[arg(long, value_name = "DIR")]
    pub webhook_cert_dir: Option<PathBuf>,
    /// Reach JobManagers through the API server's service proxy with the kubeconfig's
    /// credentials (an operator running outside the cluster).
    #[arg(long)]
    pub rest_via_apiserver: bool,
    /// Act without leader election (only ever run one replica like this).
    #[arg(long)]
    pub no_leader_election: bool,
    /// Namespace of the leader Lease (the operator's own).
    #[arg(long, env = "POD_NAMESPACE", value_name = "NS")]
    pub lease_namespace: Option<String>,
    /// This replica's name: the Lease holder and the events' reporting instance.
    #[arg(long, env = "POD_NAME", value_name = "NAME")]
    pub identity: Option<String>,
    /// Reconciles running at once (per watched namespace).
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub concurrency: u16,
    /// Seconds between two observations of a steady deployment.
    #[arg(long, value_name = "SECONDS", default_value_t = 15.0)]
    pub observe_interval: f64,
    /// How children are deleted (Kubernetes propagationPolicy).
    #[arg(long, value_enum, default_value_t = DeletionPropagation::Foreground)]
    pub deletion_propagation: DeletionPropagation,
}

/// `propagationPolicy` of deletions.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum DeletionPropagation {
    /// Dependents first, then the owner.
    Foreground,
    /// The owner at once, dependents by the garbage collector.
    Background,
}

/// Runs `flinkpilot operator`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    init_logging();
    if args.webhook_cert_dir.is_some() && args.webhook_addr.is_none() {
        bail!("--webhook-cert-dir needs --webhook-addr (where the webhook listens)");
    }
    if args.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    if !(args.observe_interval.is_finite() && args.observe_interval > 0.0) {
        bail!("--observe-interval must be a positive number of seconds");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(operate(args))?;
    Ok(ExitCode::SUCCESS)
}

async fn operate(args: Args) -> anyhow::Result<()> {
    let kube_config = kube::Config::infer().await.context(
        "cannot find Kubernetes credentials: run in a pod with a service account, or set \
         KUBECONFIG / ~/.kube/config",
    )?;
    let rest = if args.rest_via_apiserver {
        RestAccess::ApiServerProxy(Box::new(ProxyAccess::from_kube_config(&kube_config)?))
    } else {
        RestAccess::InCluster
    };
    let default_namespace = kube_config.default_namespace.clone();
    let client =
        kube::Client::try_from(kube_config).context("cannot build the Kubernetes client")?;
    let identity = args.identity.clone().unwrap_or_else(default_identity);
    let leader = (!args.no_leader_election).then(|| {
        let namespace = args
            .lease_namespace
            .clone()
            .unwrap_or_else(|| default_namespace.clone());
        LeaderSettings::new(LEASE_NAME, &namespace, &identity)
    });
    let namespaces: Vec<String> = args
        .namespaces
        .iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let config = OperatorConfig {
        controller: ControllerSettings {
            namespaces,
            label_selector: args.label_selector.clone(),
            concurrency: args.concurrency,
            ..ControllerSettings::default()
        },
        engine: engine::Settings {
            observe_interval: Duration::from_secs_f64(args.observe_interval.clamp(0.1, 3600.0)),
            ..engine::Settings::default()
        },
        backend: BackendSettings {
            propagation: match args.deletion_propagation {
                DeletionPropagation::Foreground => Propagation::Foreground,
                DeletionPropagation::Background => Propagation::Background,
            },
            ..BackendSettings::default()
        },
        rest,
        http_addr: Some(args.http_addr),
        webhook: args.webhook_addr.zip(args.webhook_cert_dir.clone()),
        leader,
        identity: identity.clone(),
    };
    tracing::info!(
        %identity,
        namespaces = ?config.controller.namespaces,
        leader_election = config.leader.is_some(),
        "flinkpilot operator starting"
    );
    k8s::operator::run(client, config, shutdown_signal()).await?;
    tracing::info!("flinkpilot operator stopped");
    Ok(())
}

/// The host name (a pod's name) or, failing that, a name unique to this process.
fn default_identity() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| format!("flinkpilot-{}", std::process::id()))
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FLINKPILOT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

async fn shutdown_signal() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    tracing::info!("shutting down: finishing the reconciles in flight");
}
