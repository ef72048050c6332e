//! How the operator reaches a cluster's JobManager REST API.
//!
//! - In the cluster: the REST Service's DNS name, `http://<name>-rest.<namespace>.svc:<port>`.
//! - From outside (`--rest-via-apiserver`, an operator on a laptop): the API server's service
//!   proxy, `<api server>/api/v1/namespaces/<ns>/services/<name>-rest:<port>/proxy/`, with the
//!   kubeconfig's credentials — a bearer token (inline, from a token file, or from an `exec`
//!   plugin such as `aws eks get-token`), a client certificate, and the cluster CA. Credentials
//!   never show in logs: the Flink client redacts its token and keeps certificates out of
//!   `Debug`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use engine::ResourceKey;
use flink::{BearerToken, ClientConfig, ClientIdentity, TlsConfig};
use serde_json::Value;
use url::Url;

/// How long a client built from [`RestUrls`] is used before the URL is looked up again.
const FIXED_URL_REFRESH: Duration = Duration::from_secs(1);
/// How often a token file is read again (Kubernetes rotates projected tokens hourly).
const TOKEN_FILE_REFRESH: Duration = Duration::from_secs(60);
/// How long an `exec` credential without an expiry is used before the plugin runs again.
const EXEC_DEFAULT_LIFETIME: Duration = Duration::from_secs(5 * 60);
/// An `exec` credential is renewed this long before it expires.
const EXEC_RENEW_MARGIN: Duration = Duration::from_secs(60);

/// The kubeconfig's credentials cannot be used to reach JobManagers through the API server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--rest-via-apiserver: {0}")]
pub struct RestAccessError(pub String);

/// Where JobManager REST calls go.
#[derive(Debug)]
pub enum RestAccess {
    /// The REST Service's cluster DNS name (the operator runs in the cluster).
    InCluster,
    /// The API server's service proxy, with the kubeconfig's credentials.
    ApiServerProxy(Box<ProxyAccess>),
    /// Explicit JobManager URLs per resource (a `kubectl port-forward`, a test's local Flink);
    /// resources without one are reached in the cluster.
    Fixed(RestUrls),
}

/// JobManager URLs by resource, shared: entries added later are used by the next client the
/// backend builds.
#[derive(Clone, Debug, Default)]
pub struct RestUrls(Arc<RwLock<HashMap<ResourceKey, String>>>);

impl RestUrls {
    /// No explicit URLs yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sends REST calls for `key` to `url` (e.g. `http://127.0.0.1:8081/`).
    pub fn set(&self, key: &ResourceKey, url: &str) {
        self.0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key.clone(), url.to_string());
    }

    /// Forgets the URL of `key`.
    pub fn remove(&self, key: &ResourceKey) {
        self.0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key);
    }

    fn get(&self, key: &ResourceKey) -> Option<String> {
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(key)
            .cloned()
    }
}

impl RestAccess {
    /// The client settings for the JobManager of `key`, whose REST Service listens on `port`,
    /// and until when they are good (`None`: for ever).
    pub fn client_config(
        &self,
        key: &ResourceKey,
        port: u16,
    ) -> Result<(ClientConfig, Option<Instant>), RestAccessError> {
        let in_cluster = || {
            let url = format!("http://{}-rest.{}.svc:{port}/", key.name, key.namespace);
            ClientConfig::new(&url).map_err(|e| RestAccessError(e.to_string()))
        };
        match self {
            RestAccess::InCluster => Ok((in_cluster()?, None)),
            RestAccess::ApiServerProxy(proxy) => proxy.client_config(key, port),
            // a URL set later must be picked up: cached clients are built again soon
            RestAccess::Fixed(urls) => match urls.get(key) {
                Some(url) => Ok((
                    ClientConfig::new(&url).map_err(|e| RestAccessError(e.to_string()))?,
                    Some(Instant::now() + FIXED_URL_REFRESH),
                )),
                None => Ok((in_cluster()?, Some(Instant::now() + FIXED_URL_REFRESH))),
            },
        }
    }
}

/// Reaching JobManagers through the API server's service proxy.
pub struct ProxyAccess {
    base: Url,
    tls: TlsConfig,
    auth: Auth,
    exec_cache: Mutex<Option<(ExecCredential, Instant)>>,
}

impl std::fmt::Debug for ProxyAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyAccess")
            .field("base", &self.base.as_str())
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

/// How requests authenticate.
enum Auth {
    None,
    Token(BearerToken),
    TokenFile(PathBuf),
    Exec(Box<kube::config::ExecConfig>),
}

#[derive(Clone)]
struct ExecCredential {
    token: Option<BearerToken>,
    identity: Option<ClientIdentity>,
}

impl ProxyAccess {
    /// From the kube client's configuration (kubeconfig, context or in-cluster).
    pub fn from_kube_config(config: &kube::Config) -> Result<Self, RestAccessError> {
        let base = Url::parse(&config.cluster_url.to_string()).map_err(|e| {
            RestAccessError(format!(
                "the API server URL `{}` is not usable: {e}",
                config.cluster_url
            ))
        })?;
        // `AuthInfo` serializes the secrets it holds (as a kubeconfig file does); reading them
        // that way needs no second secrets library.
        let info = serde_json::to_value(&config.auth_info)
            .map_err(|e| RestAccessError(format!("cannot read the credentials: {e}")))?;
        let text = |k: &str| info.get(k).and_then(Value::as_str).map(str::to_string);
        if text("username").is_some() || text("password").is_some() {
            return Err(RestAccessError(
                "the kubeconfig uses basic authentication (username/password), which the Flink \
                 REST client cannot send; use a token or a client certificate"
                    .into(),
            ));
        }
        if info.get("auth-provider").is_some_and(|v| !v.is_null()) {
            return Err(RestAccessError(
                "the kubeconfig uses a legacy auth-provider; use an exec plugin, a token or a \
                 client certificate"
                    .into(),
            ));
        }
        let auth = if let Some(token) = text("token") {
            Auth::Token(BearerToken::new(token))
        } else if let Some(file) = text("tokenFile") {
            Auth::TokenFile(PathBuf::from(file))
        } else if let Some(exec) = config.auth_info.exec.clone() {
            Auth::Exec(Box::new(exec))
        } else {
            Auth::None
        };
        let identity = client_identity(
            text("client-certificate-data"),
            text("client-certificate"),
            text("client-key-data"),
            text("client-key"),
        )?;
        let ca_pem = config.root_cert.as_ref().map(|certs| {
            certs
                .iter()
                .map(|der| pem_certificate(der))
                .collect::<String>()
                .into_bytes()
        });
        Ok(ProxyAccess {
            base,
            tls: TlsConfig {
                ca_pem,
                client_identity: identity,
                insecure_skip_verify: config.accept_invalid_certs,
            },
            auth,
            exec_cache: Mutex::new(None),
        })
    }

    /// The proxy URL of the REST Service of `key`.
    pub fn url(&self, key: &ResourceKey, port: u16) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend([
                "api",
                "v1",
                "namespaces",
                key.namespace.as_str(),
                "services",
                &format!("{}-rest:{port}", key.name),
                "proxy",
                "",
            ]);
        }
        url
    }

    fn client_config(
        &self,
        key: &ResourceKey,
        port: u16,
    ) -> Result<(ClientConfig, Option<Instant>), RestAccessError> {
        let mut config = ClientConfig::new(self.url(key, port).as_str())
            .map_err(|e| RestAccessError(e.to_string()))?;
        let mut tls = self.tls.clone();
        let good_until = match &self.auth {
            Auth::None => None,
            Auth::Token(token) => {
                config.bearer_token = Some(token.clone());
                None
            }
            Auth::TokenFile(path) => {
                let token = std::fs::read_to_string(path).map_err(|e| {
                    RestAccessError(format!(
                        "cannot read the token file {}: {e}",
                        path.display()
                    ))
                })?;
                config.bearer_token = Some(BearerToken::new(token.trim()));
                Some(Instant::now() + TOKEN_FILE_REFRESH)
            }
            Auth::Exec(exec) => {
                let (credential, until) = self.exec_credential(exec)?;
                config.bearer_token = credential.token;
                if credential.identity.is_some() {
                    tls.client_identity = credential.identity;
                }
                Some(until)
            }
        };
        config.tls = tls;
        Ok((config, good_until))
    }

    /// The `exec` plugin's credential, run again shortly before it expires.
    fn exec_credential(
        &self,
        exec: &kube::config::ExecConfig,
    ) -> Result<(ExecCredential, Instant), RestAccessError> {
        let mut cache = self
            .exec_cache
            .lock()
            .map_err(|_| RestAccessError("the credential cache is poisoned".into()))?;
        if let Some((credential, until)) = cache.as_ref()
            && Instant::now() < *until
        {
            return Ok((credential.clone(), *until));
        }
        let (credential, lifetime) = run_exec(exec)?;
        let until = Instant::now()
            + lifetime
                .saturating_sub(EXEC_RENEW_MARGIN)
                .max(Duration::from_secs(10));
        *cache = Some((credential.clone(), until));
        Ok((credential, until))
    }
}

/// Runs a kubeconfig `exec` plugin (client-go's credential plugin protocol) and reads its
/// `ExecCredential`. Blocking: it runs once per credential lifetime.
fn run_exec(
    exec: &kube::config::ExecConfig,
) -> Result<(ExecCredential, Duration), RestAccessError> {
    let command = exec
        .command
        .as_deref()
        .ok_or_else(|| RestAccessError("the kubeconfig's exec plugin names no command".into()))?;
    let api_version = exec
        .api_version
        .clone()
        .unwrap_or_else(|| "client.authentication.k8s.io/v1".into());
    let mut cmd = std::process::Command::new(command);
    cmd.args(exec.args.iter().flatten());
    let mut env: HashMap<String, String> = HashMap::new();
    for pair in exec.env.iter().flatten() {
        if let (Some(name), Some(value)) = (pair.get("name"), pair.get("value")) {
            env.insert(name.clone(), value.clone());
        }
    }
    cmd.envs(env);
    let info = serde_json::json!({
        "apiVersion": api_version,
        "kind": "ExecCredential",
        "spec": {"interactive": false}
    });
    cmd.env("KUBERNETES_EXEC_INFO", info.to_string());
    let out = cmd.output().map_err(|e| {
        RestAccessError(format!(
            "cannot run the kubeconfig's exec plugin `{command}`: {e}{}",
            exec.install_hint
                .as_deref()
                .map(|h| format!(" ({h})"))
                .unwrap_or_default()
        ))
    })?;
    if !out.status.success() {
        // stderr of credential plugins describes the failure; it holds no credential
        return Err(RestAccessError(format!(
            "the kubeconfig's exec plugin `{command}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let value: Value = serde_json::from_slice(&out.stdout).map_err(|e| {
        RestAccessError(format!(
            "the kubeconfig's exec plugin `{command}` did not print an ExecCredential: {e}"
        ))
    })?;
    let status = &value["status"];
    let field = |k: &str| status.get(k).and_then(Value::as_str).map(str::to_string);
    let identity = match (field("clientCertificateData"), field("clientKeyData")) {
        (Some(cert), Some(key)) => Some(ClientIdentity {
            cert_pem: cert.into_bytes(),
            key_pem: key.into_bytes(),
        }),
        _ => None,
    };
    let token = field("token").map(BearerToken::new);
    if token.is_none() && identity.is_none() {
        return Err(RestAccessError(format!(
            "the kubeconfig's exec plugin `{command}` returned neither a token nor a client \
             certificate"
        )));
    }
    let lifetime = field("expirationTimestamp")
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .map(|t| {
            let left = t.duration_since(jiff::Timestamp::now());
            Duration::try_from(left).unwrap_or(Duration::ZERO)
        })
        .unwrap_or(EXEC_DEFAULT_LIFETIME);
    Ok((ExecCredential { token, identity }, lifetime))
}

/// The client certificate and key from inline data (base64 of PEM) or files.
fn client_identity(
    cert_data: Option<String>,
    cert_file: Option<String>,
    key_data: Option<String>,
    key_file: Option<String>,
) -> Result<Option<ClientIdentity>, RestAccessError> {
    let load = |data: Option<String>,
                file: Option<String>,
                what: &str|
     -> Result<Option<Vec<u8>>, RestAccessError> {
        if let Some(data) = data {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(data.trim())
                .map_err(|e| {
                    RestAccessError(format!("the kubeconfig's {what} data is not base64: {e}"))
                })?;
            return Ok(Some(bytes));
        }
        match file {
            Some(path) => std::fs::read(&path)
                .map(Some)
                .map_err(|e| RestAccessError(format!("cannot read the {what} file {path}: {e}"))),
            None => Ok(None),
        }
    };
    let cert = load(cert_data, cert_file, "client certificate")?;
    let key = load(key_data, key_file, "client key")?;
    match (cert, key) {
        (Some(cert_pem), Some(key_pem)) => Ok(Some(ClientIdentity { cert_pem, key_pem })),
        (None, None) => Ok(None),
        _ => Err(RestAccessError(
            "the kubeconfig has a client certificate without its key (or the other way round)"
                .into(),
        )),
    }
}

/// One DER certificate as PEM.
fn pem_certificate(der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ResourceKey {
        ResourceKey::new("team-a", "basic")
    }

    fn kube_config(url: &str) -> kube::Config {
        kube::Config::new(url.parse().unwrap())
    }

    #[test]
    fn in_cluster_calls_go_to_the_rest_service_dns_name() {
        let (config, until) = RestAccess::InCluster.client_config(&key(), 8081).unwrap();
        assert_eq!(
            config.base_url.as_str(),
            "http://basic-rest.team-a.svc:8081/"
        );
        assert!(config.bearer_token.is_none());
        assert!(until.is_none());
    }

    #[test]
    fn proxy_urls_keep_the_api_servers_path_prefix() {
        let plain = ProxyAccess::from_kube_config(&kube_config("https://10.0.0.1:6443")).unwrap();
        assert_eq!(
            plain.url(&key(), 8081).as_str(),
            "https://10.0.0.1:6443/api/v1/namespaces/team-a/services/basic-rest:8081/proxy/"
        );
        let prefixed =
            ProxyAccess::from_kube_config(&kube_config("https://rancher.example/k8s/clusters/c-1"))
                .unwrap();
        assert_eq!(
            prefixed.url(&key(), 8081).as_str(),
            "https://rancher.example/k8s/clusters/c-1/api/v1/namespaces/team-a/services/basic-rest:8081/proxy/"
        );
    }

    #[test]
    fn the_kubeconfig_token_client_certificate_and_ca_are_used_and_never_shown() {
        let mut config = kube_config("https://10.0.0.1:6443");
        config.auth_info = serde_json::from_value(serde_json::json!({
            "token": "s3cr3t-token",
            "client-certificate-data": base64::engine::general_purpose::STANDARD.encode("CERT PEM"),
            "client-key-data": base64::engine::general_purpose::STANDARD.encode("KEY PEM"),
        }))
        .unwrap();
        config.root_cert = Some(vec![vec![1, 2, 3]]);
        let access =
            RestAccess::ApiServerProxy(Box::new(ProxyAccess::from_kube_config(&config).unwrap()));
        let (client, _) = access.client_config(&key(), 8081).unwrap();
        assert_eq!(
            client.bearer_token.as_ref().unwrap().expose(),
            "s3cr3t-token"
        );
        let identity = client.tls.client_identity.as_ref().unwrap();
        assert_eq!(identity.cert_pem, b"CERT PEM");
        assert_eq!(identity.key_pem, b"KEY PEM");
        let ca = String::from_utf8(client.tls.ca_pem.clone().unwrap()).unwrap();
        assert_eq!(
            ca,
            "-----BEGIN CERTIFICATE-----\nAQID\n-----END CERTIFICATE-----\n"
        );
        let shown = format!("{access:?} {client:?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(!shown.contains("KEY PEM"), "{shown}");
    }

    #[test]
    fn token_files_are_read_and_read_again_later() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "first\n").unwrap();
        let mut config = kube_config("https://10.0.0.1:6443");
        config.auth_info.token_file = Some(file.display().to_string());
        let access = ProxyAccess::from_kube_config(&config).unwrap();
        let (client, until) = access.client_config(&key(), 8081).unwrap();
        assert_eq!(client.bearer_token.unwrap().expose(), "first");
        assert!(until.is_some(), "a token file is read again");
        std::fs::write(&file, "second").unwrap();
        let (client, _) = access.client_config(&key(), 8081).unwrap();
        assert_eq!(client.bearer_token.unwrap().expose(), "second");
    }

    #[test]
    fn exec_plugins_provide_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let plugin = dir.path().join("plugin.sh");
        std::fs::write(
            &plugin,
            "#!/bin/sh\necho '{\"apiVersion\":\"client.authentication.k8s.io/v1\",\
             \"kind\":\"ExecCredential\",\"status\":{\"token\":\"from-exec-'$FLAVOUR'\",\
             \"expirationTimestamp\":\"2099-01-01T00:00:00Z\"}}'\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut config = kube_config("https://10.0.0.1:6443");
        config.auth_info = serde_json::from_value(serde_json::json!({
            "exec": {
                "apiVersion": "client.authentication.k8s.io/v1",
                "command": plugin.display().to_string(),
                "env": [{"name": "FLAVOUR", "value": "mint"}]
            }
        }))
        .unwrap();
        let access = ProxyAccess::from_kube_config(&config).unwrap();
        let (client, until) = access.client_config(&key(), 8081).unwrap();
        assert_eq!(client.bearer_token.unwrap().expose(), "from-exec-mint");
        assert!(until.is_some_and(|u| u > Instant::now() + Duration::from_secs(3600)));
    }

    #[test]
    fn basic_authentication_is_refused_with_a_clear_message() {
        let mut config = kube_config("https://10.0.0.1:6443");
        config.auth_info = serde_json::from_value(serde_json::json!({
            "username": "admin", "password": "hunter2"
        }))
        .unwrap();
        let err = ProxyAccess::from_kube_config(&config).unwrap_err();
        assert!(err.to_string().contains("basic authentication"), "{err}");
        assert!(!err.to_string().contains("hunter2"));
    }
}
