//! `flinkpilot install --print`: the manifest that installs the operator — CRDs, namespace,
//! least-privilege RBAC, the operator Deployment, metrics Service and admission webhook — as one
//! YAML stream for `kubectl apply --server-side -f -`. `deploy/install.yaml` is its output with
//! the defaults.

use std::process::ExitCode;

use k8s::install::{DEFAULT_IMAGE, DEFAULT_NAMESPACE, InstallOptions};

/// Arguments of `flinkpilot install`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the manifest on standard output (pipe it to `kubectl apply --server-side -f -`).
    #[arg(long)]
    pub print: bool,
    /// Namespace the operator runs in (the manifest creates it).
    #[arg(long, value_name = "NAMESPACE", default_value = DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// Namespaces to watch, comma-separated: the operator gets a Role in each. Without it the
    /// operator watches all namespaces with a ClusterRole.
    #[arg(long, value_name = "NS,...", value_delimiter = ',')]
    pub watch_namespaces: Vec<String>,
    /// Operator image.
    #[arg(long, value_name = "IMAGE", default_value = DEFAULT_IMAGE)]
    pub image: String,
    /// Install the validating admission webhook (the default).
    #[arg(long, overrides_with = "no_webhook")]
    pub webhook: bool,
    /// Leave the admission webhook out; invalid resources are then reported in their status.
    #[arg(long, overrides_with = "webhook")]
    pub no_webhook: bool,
    /// Have cert-manager issue the webhook's certificate and fill in its caBundle (the default;
    /// cert-manager must be installed).
    #[arg(long, overrides_with = "no_cert_manager")]
    pub cert_manager: bool,
    /// Provide the webhook's certificate Secret and caBundle yourself (the manifest's header
    /// says how).
    #[arg(long, overrides_with = "cert_manager")]
    pub no_cert_manager: bool,
}

impl Args {
    fn options(&self) -> InstallOptions {
        InstallOptions {
            namespace: self.namespace.clone(),
            watch_namespaces: self
                .watch_namespaces
                .iter()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            image: self.image.clone(),
            webhook: !self.no_webhook,
            cert_manager: !self.no_cert_manager,
        }
    }
}

/// Runs `flinkpilot install`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if !args.print {
        anyhow::bail!(
            "flinkpilot install does not talk to a cluster itself; print the manifest and apply \
             it: flinkpilot install --print | kubectl apply --server-side -f -"
        );
    }
    print!("{}", k8s::install::to_yaml(&args.options())?);
    Ok(ExitCode::SUCCESS)
}
