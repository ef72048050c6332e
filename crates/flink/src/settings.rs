//! What a [`crate::FlinkClient`] is built from: the JobManager URL, credentials, TLS,
//! timeouts and the retry policy. Secrets (token, private key) never show in `Debug`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use url::Url;

use crate::error::{Error, Result, error_chain};
use crate::observe::{CallObserver, Observer};
use crate::retry::RetryPolicy;

/// A bearer token for the JobManager or the Kubernetes API-server proxy in front of it.
/// Its `Debug` output is redacted and it has no `Display`, so it cannot end up in a log line
/// by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct BearerToken(String);

impl BearerToken {
    /// Wraps a token.
    pub fn new(token: impl Into<String>) -> Self {
        BearerToken(token.into())
    }

    /// The token itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}

/// A client certificate and its private key, both PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    /// Certificate chain, PEM.
    pub cert_pem: Vec<u8>,
    /// Private key (PKCS#8, PKCS#1 or SEC1), PEM.
    pub key_pem: Vec<u8>,
}

impl fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientIdentity")
            .field("cert_pem", &format_args!("<{} bytes>", self.cert_pem.len()))
            .field("key_pem", &format_args!("<redacted>"))
            .finish()
    }
}

/// TLS settings for `https` JobManager URLs.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TlsConfig {
    /// CA certificates (PEM bundle) to trust instead of the platform's roots, e.g. the
    /// Kubernetes cluster CA or the CA that signed Flink's REST certificate.
    pub ca_pem: Option<Vec<u8>>,
    /// Client certificate for mutual TLS.
    pub client_identity: Option<ClientIdentity>,
    /// Accept any server certificate. For development clusters only: it allows anyone on
    /// the path to read the traffic, bearer token included.
    pub insecure_skip_verify: bool,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field(
                "ca_pem",
                &self.ca_pem.as_ref().map(|p| format!("<{} bytes>", p.len())),
            )
            .field("client_identity", &self.client_identity)
            .field("insecure_skip_verify", &self.insecure_skip_verify)
            .finish()
    }
}

/// Everything a [`crate::FlinkClient`] needs to reach one JobManager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// Base URL of the REST API, with any path prefix, e.g. `http://localhost:8081` or
    /// `https://host/api/v1/namespaces/ns/services/name-rest:8081/proxy/`. Endpoints are
    /// appended below it as `v1/...`.
    pub base_url: Url,
    /// Sent as `Authorization: Bearer …` on every call.
    pub bearer_token: Option<BearerToken>,
    /// TLS settings.
    pub tls: TlsConfig,
    /// Limit for one call, connect included.
    pub timeout: Duration,
    /// Limit for a jar upload, which sends the whole jar.
    pub upload_timeout: Duration,
    /// Retries of idempotent reads.
    pub retry: RetryPolicy,
    /// Sees every HTTP call (endpoint template, method, outcome, duration).
    pub observer: Option<Observer>,
}

impl ClientConfig {
    /// Defaults for `base_url`: 10 s per call, 120 s per jar upload, the default
    /// [`RetryPolicy`], platform TLS roots, no token, no observer.
    pub fn new(base_url: &str) -> Result<Self> {
        let base_url = Url::parse(base_url).map_err(|e| Error::Config {
            field: "base_url",
            message: format!("`{base_url}` is not a URL: {e}"),
        })?;
        Ok(ClientConfig {
            base_url,
            bearer_token: None,
            tls: TlsConfig::default(),
            timeout: Duration::from_secs(10),
            upload_timeout: Duration::from_secs(120),
            retry: RetryPolicy::default(),
            observer: None,
        })
    }

    /// Sets the bearer token.
    pub fn with_bearer_token(mut self, token: impl Into<String>) -> Self {
        self.bearer_token = Some(BearerToken::new(token));
        self
    }

    /// Sets the per-call timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the retry policy for reads.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Reports every HTTP call to `observer`.
    pub fn with_observer(mut self, observer: Arc<dyn CallObserver>) -> Self {
        self.observer = Some(Observer(observer));
        self
    }

    /// Sets the TLS settings.
    pub fn with_tls(mut self, tls: TlsConfig) -> Self {
        self.tls = tls;
        self
    }
}

pub(crate) fn apply_tls(
    mut builder: reqwest::ClientBuilder,
    tls: &TlsConfig,
) -> Result<reqwest::ClientBuilder> {
    if let Some(pem) = &tls.ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| Error::Config {
            field: "tls.ca_pem",
            message: format!("not a PEM certificate bundle: {}", error_chain(&e)),
        })?;
        if certs.is_empty() {
            return Err(Error::Config {
                field: "tls.ca_pem",
                message: "contains no certificate".into(),
            });
        }
        builder = builder.tls_certs_only(certs);
    }
    if let Some(id) = &tls.client_identity {
        let mut pem = id.cert_pem.clone();
        pem.push(b'\n');
        pem.extend_from_slice(&id.key_pem);
        let identity = reqwest::Identity::from_pem(&pem).map_err(|e| Error::Config {
            field: "tls.client_identity",
            message: format!("not a PEM certificate and private key: {}", error_chain(&e)),
        })?;
        builder = builder.identity(identity);
    }
    if tls.insecure_skip_verify {
        tracing::warn!("TLS certificate verification of the Flink REST API is disabled");
        builder = builder.tls_danger_accept_invalid_certs(true);
    }
    Ok(builder)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FlinkClient;

    #[test]
    fn bearer_token_is_redacted_in_debug_output() {
        let config = ClientConfig::new("https://jm:8081")
            .unwrap()
            .with_bearer_token("s3cr3t-token")
            .with_tls(TlsConfig {
                ca_pem: None,
                client_identity: Some(ClientIdentity {
                    cert_pem: b"cert".to_vec(),
                    key_pem: b"PRIVATE KEY MATERIAL".to_vec(),
                }),
                insecure_skip_verify: false,
            });
        let shown = format!("{config:?}");
        assert!(!shown.contains("s3cr3t-token"), "{shown}");
        assert!(!shown.contains("PRIVATE KEY MATERIAL"), "{shown}");
        assert!(shown.contains("<redacted>"));
        let client = FlinkClient::new(config.with_tls(TlsConfig::default())).unwrap();
        assert!(!format!("{client:?}").contains("s3cr3t-token"));
    }
}
