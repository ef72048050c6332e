//! What `flinkpilot install --print` emits: one `kubectl apply --server-side`-able YAML stream
//! with the CRDs, the operator's namespace, ServiceAccount and least-privilege RBAC, the `flink`
//! ServiceAccount Flink's own pods run as, the operator Deployment, its metrics Service, and the
//! admission webhook (Service, `ValidatingWebhookConfiguration`, cert-manager Issuer and
//! Certificate). `deploy/install.yaml` is this output for [`InstallOptions::default`].

pub mod operator;
pub mod rbac;
pub mod webhook;

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;
use serde_json::Value;

/// Image of the operator unless `--image` says otherwise.
pub const DEFAULT_IMAGE: &str =
    concat!("ghcr.io/flinkpilot/flinkpilot:", env!("CARGO_PKG_VERSION"));

/// Namespace of the operator unless `--namespace` says otherwise.
pub const DEFAULT_NAMESPACE: &str = "flinkpilot";

/// How to regenerate `deploy/install.yaml`.
pub const REGENERATE: &str = "cargo run -p flinkpilot-cli -- install --print > deploy/install.yaml";

/// What to install.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstallOptions {
    /// Namespace of the operator (created).
    pub namespace: String,
    /// Namespaces to watch; empty for all namespaces (then the operator gets a ClusterRole).
    pub watch_namespaces: Vec<String>,
    /// Operator image.
    pub image: String,
    /// Install the validating admission webhook.
    pub webhook: bool,
    /// Issue the webhook's certificate with cert-manager (which must be installed); without it
    /// the `flinkpilot-webhook-cert` Secret and the `caBundle` are provided by hand.
    pub cert_manager: bool,
}

impl Default for InstallOptions {
    fn default() -> Self {
        Self {
            namespace: DEFAULT_NAMESPACE.into(),
            watch_namespaces: Vec::new(),
            image: DEFAULT_IMAGE.into(),
            webhook: true,
            cert_manager: true,
        }
    }
}

/// The options cannot be installed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// A namespace name is not a DNS label.
    #[error(
        "`{name}` is not a valid namespace name ({reason}); use up to 63 lower-case letters, \
         digits or '-', starting and ending with a letter or digit"
    )]
    Namespace {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A namespace is listed twice in `--watch-namespaces`.
    #[error("namespace `{0}` is listed twice in --watch-namespaces")]
    DuplicateNamespace(String),
    /// The image is empty.
    #[error("the operator image is empty; pass --image REGISTRY/NAME:TAG")]
    EmptyImage,
    /// An object could not be written as YAML.
    #[error("could not write the install manifest as YAML: {0}")]
    Render(String),
}

fn check_namespace(name: &str) -> Result<(), InstallError> {
    let err = |reason: &str| InstallError::Namespace {
        name: name.into(),
        reason: reason.into(),
    };
    let bytes = name.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return Err(err("it is empty"));
    };
    if name.len() > 63 {
        return Err(err("it is longer than 63 characters"));
    }
    if !(first.is_ascii_lowercase() || first.is_ascii_digit())
        || !(last.is_ascii_lowercase() || last.is_ascii_digit())
    {
        return Err(err(
            "it must start and end with a lower-case letter or digit",
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(err(&format!("it contains '{bad}'")));
    }
    Ok(())
}

impl InstallOptions {
    /// Checks the names and the image.
    pub fn check(&self) -> Result<(), InstallError> {
        check_namespace(&self.namespace)?;
        for (i, ns) in self.watch_namespaces.iter().enumerate() {
            check_namespace(ns)?;
            if self.watch_namespaces[..i].contains(ns) {
                return Err(InstallError::DuplicateNamespace(ns.clone()));
            }
        }
        if self.image.trim().is_empty() {
            return Err(InstallError::EmptyImage);
        }
        Ok(())
    }

    /// The `flinkpilot install` command line that produces this output.
    pub fn command_line(&self) -> String {
        let defaults = Self::default();
        let mut cmd = "flinkpilot install --print".to_string();
        if self.namespace != defaults.namespace {
            cmd.push_str(&format!(" --namespace {}", self.namespace));
        }
        if !self.watch_namespaces.is_empty() {
            cmd.push_str(&format!(
                " --watch-namespaces {}",
                self.watch_namespaces.join(",")
            ));
        }
        if self.image != defaults.image {
            cmd.push_str(&format!(" --image {}", self.image));
        }
        if !self.webhook {
            cmd.push_str(" --no-webhook");
        } else if !self.cert_manager {
            cmd.push_str(" --no-cert-manager");
        }
        cmd
    }
}

/// Labels on every object: `app.kubernetes.io/name: flinkpilot` and the part it belongs to.
pub fn labels(component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "app.kubernetes.io/name".to_string(),
            "flinkpilot".to_string(),
        ),
        (
            "app.kubernetes.io/component".to_string(),
            component.to_string(),
        ),
        (
            "app.kubernetes.io/managed-by".to_string(),
            "flinkpilot-install".to_string(),
        ),
    ])
}

pub(crate) fn meta(name: &str, namespace: Option<&str>, component: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: namespace.map(str::to_string),
        labels: Some(labels(component)),
        ..Default::default()
    }
}

/// Serializes an object built here; k8s-openapi types and JSON values always serialize.
pub(crate) fn to_value<T: Serialize>(object: &T) -> Value {
    serde_json::to_value(object).unwrap_or(Value::Null)
}

/// Every object except the CRDs, in the order they are applied: namespace and accounts first,
/// the workload next, the webhook configuration last (it fails closed, so it should only start
/// calling the webhook once the operator exists).
pub fn objects(opts: &InstallOptions) -> Result<Vec<Value>, InstallError> {
    opts.check()?;
    let mut out = vec![operator::namespace(opts), operator::service_account(opts)];
    out.extend(rbac::operator_objects(opts));
    out.extend(rbac::flink_objects(opts));
    out.push(operator::metrics_service(opts));
    if opts.webhook {
        out.push(webhook::service(opts));
        if opts.cert_manager {
            out.push(webhook::issuer(opts));
            out.push(webhook::certificate(opts));
        }
    }
    out.push(operator::deployment(opts));
    out.push(operator::disruption_budget(opts));
    if opts.webhook {
        out.push(webhook::configuration(opts));
    }
    Ok(out)
}

fn header(opts: &InstallOptions) -> String {
    let scope = if opts.watch_namespaces.is_empty() {
        "all namespaces".to_string()
    } else {
        format!("namespaces {}", opts.watch_namespaces.join(", "))
    };
    let mut h = format!(
        "# flinkpilot {version}: CRDs, operator (namespace {ns}, watching {scope}) and RBAC{hook}.\n\
         # Generated by `{cmd}`; do not edit.\n\
         #\n\
         # Apply with server-side apply (the FlinkDeployment CRD is larger than client-side\n\
         # apply's last-applied annotation allows):\n\
         #   kubectl apply --server-side -f install.yaml\n",
        version = env!("CARGO_PKG_VERSION"),
        ns = opts.namespace,
        hook = if opts.webhook {
            ", admission webhook"
        } else {
            ""
        },
        cmd = opts.command_line(),
    );
    if opts.webhook && opts.cert_manager {
        h.push_str(
            "#\n\
             # The webhook's certificate is issued by cert-manager (https://cert-manager.io),\n\
             # which must be installed first; its CA injector fills in the webhook's caBundle.\n\
             # Without cert-manager: `flinkpilot install --print --no-cert-manager`.\n",
        );
    } else if opts.webhook {
        h.push_str(&format!(
            "#\n\
             # The webhook's certificate is yours to provide: a kubernetes.io/tls Secret for the\n\
             # DNS name {svc}.{ns}.svc, and its CA in the webhook's caBundle:\n\
             #   kubectl -n {ns} create secret tls {secret} --cert=tls.crt --key=tls.key\n\
             #   kubectl patch validatingwebhookconfiguration {vwc} --type=json -p \\\n\
             #     '[{{\"op\":\"add\",\"path\":\"/webhooks/0/clientConfig/caBundle\",\"value\":\"'$(base64 -w0 ca.crt)'\"}}]'\n\
             # Until both exist the operator pods wait for the Secret and, as the webhook fails\n\
             # closed, creating or changing Flink resources fails.\n",
            svc = webhook::SERVICE,
            ns = opts.namespace,
            secret = webhook::CERT_SECRET,
            vwc = webhook::configuration_name(opts),
        ));
    }
    if opts.watch_namespaces.is_empty() {
        h.push_str(&format!(
            "#\n\
             # Flink's pods run as ServiceAccount `{sa}`, created here in namespace `{default}`.\n\
             # To run Flink in namespace NS too:\n\
             #   kubectl -n NS create serviceaccount {sa}\n\
             #   kubectl -n NS create rolebinding {sa} --clusterrole={role} --serviceaccount=NS:{sa}\n",
            sa = rbac::FLINK_ACCOUNT,
            default = rbac::DEFAULT_JOB_NAMESPACE,
            role = rbac::FLINK_CLUSTER_ROLE,
        ));
    }
    h
}

/// The whole install manifest as one multi-document YAML stream, with a header saying how it
/// was made and how to apply it.
pub fn to_yaml(opts: &InstallOptions) -> Result<String, InstallError> {
    let objects = objects(opts)?;
    let mut out = header(opts);
    out.push_str(&api::crd::all_to_yaml().map_err(|e| InstallError::Render(e.to_string()))?);
    for object in &objects {
        let yaml =
            serde_saphyr::to_string(object).map_err(|e| InstallError::Render(e.to_string()))?;
        out.push_str("---\n");
        out.push_str(&yaml);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_must_be_dns_labels_and_listed_once() {
        let with = |ns: &str, watch: &[&str]| InstallOptions {
            namespace: ns.into(),
            watch_namespaces: watch.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        assert!(with("flinkpilot", &["a", "team-2"]).check().is_ok());
        for bad in ["", "Flink", "-a", "a-", "a_b", &"x".repeat(64)] {
            let err = with(bad, &[]).check().unwrap_err();
            assert!(
                matches!(err, InstallError::Namespace { .. }),
                "{bad}: {err}"
            );
        }
        let err = with("ops", &["a", "b", "a"]).check().unwrap_err();
        assert_eq!(
            err.to_string(),
            "namespace `a` is listed twice in --watch-namespaces"
        );
    }

    #[test]
    fn command_line_reproduces_the_options() {
        assert_eq!(
            InstallOptions::default().command_line(),
            "flinkpilot install --print"
        );
        let opts = InstallOptions {
            namespace: "ops".into(),
            watch_namespaces: vec!["a".into(), "b".into()],
            image: "registry.local/fp:dev".into(),
            webhook: true,
            cert_manager: false,
        };
        assert_eq!(
            opts.command_line(),
            "flinkpilot install --print --namespace ops --watch-namespaces a,b \
             --image registry.local/fp:dev --no-cert-manager"
        );
    }
}
