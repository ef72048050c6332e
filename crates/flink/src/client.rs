//! Client configuration and the HTTP transport every endpoint goes through: URL building
//! under a path prefix, authentication, TLS, timeouts, retries of reads, and turning HTTP
//! answers into typed errors.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::{DeserializeOwned, IgnoredAny};
use url::Url;

use crate::compat::FlinkVersion;
use crate::error::{CallSite, Error, Result, clean_flink_errors, truncate};
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

/// Everything a [`FlinkClient`] needs to reach one JobManager.
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
}

impl ClientConfig {
    /// Defaults for `base_url`: 10 s per call, 120 s per jar upload, the default
    /// [`RetryPolicy`], platform TLS roots, no token.
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

    /// Sets the TLS settings.
    pub fn with_tls(mut self, tls: TlsConfig) -> Self {
        self.tls = tls;
        self
    }
}

/// Typed async client of one JobManager's REST API (v1). Cheap to clone; clones share the
/// connection pool.
#[derive(Clone)]
pub struct FlinkClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base: Url,
    shown: String,
    timeout: Duration,
    upload_timeout: Duration,
    retry: RetryPolicy,
    version: Mutex<Option<FlinkVersion>>,
}

impl fmt::Debug for FlinkClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlinkClient")
            .field("jobmanager", &self.inner.shown)
            .finish_non_exhaustive()
    }
}

/// One request: method, path segments below `v1/`, query parameters.
pub(crate) struct Call {
    pub(crate) method: Method,
    segments: Vec<String>,
    query: Vec<(&'static str, String)>,
}

impl Call {
    pub(crate) fn new<S: AsRef<str>>(method: Method, segments: &[S]) -> Self {
        Call {
            method,
            segments: segments.iter().map(|s| s.as_ref().to_string()).collect(),
            query: Vec::new(),
        }
    }

    pub(crate) fn get<S: AsRef<str>>(segments: &[S]) -> Self {
        Call::new(Method::GET, segments)
    }

    pub(crate) fn query(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.query.push((key, value.into()));
        self
    }
}

/// What a call sends.
enum Body<'a> {
    Empty,
    Json(&'a serde_json::Value),
    Jar { file_name: String, bytes: Vec<u8> },
}

impl FlinkClient {
    /// Builds a client. Fails on a URL that is not `http(s)` or on unreadable TLS material;
    /// it does not contact the JobManager (see [`FlinkClient::health`]).
    pub fn new(config: ClientConfig) -> Result<Self> {
        let mut base = config.base_url;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(Error::Config {
                field: "base_url",
                message: format!("`{base}` must be an http:// or https:// URL"),
            });
        }
        base.set_query(None);
        base.set_fragment(None);
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let mut shown = base.clone();
        // Best effort: both only fail for URLs that cannot carry user info.
        let _ = shown.set_username("");
        let _ = shown.set_password(None);

        let mut headers = HeaderMap::new();
        if let Some(token) = &config.bearer_token {
            let mut value =
                HeaderValue::from_str(&format!("Bearer {}", token.expose())).map_err(|_| {
                    Error::Config {
                        field: "bearer_token",
                        message: "the token contains characters not allowed in an HTTP header"
                            .into(),
                    }
                })?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        let mut builder = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .user_agent(concat!("flinkpilot/", env!("CARGO_PKG_VERSION")));
        builder = apply_tls(builder, &config.tls)?;
        let http = builder.build().map_err(|e| Error::Config {
            field: "tls",
            message: format!("cannot build the HTTP client: {}", error_chain(&e)),
        })?;
        Ok(FlinkClient {
            inner: Arc::new(Inner {
                http,
                base,
                shown: shown.to_string(),
                timeout: config.timeout,
                upload_timeout: config.upload_timeout,
                retry: config.retry,
                version: Mutex::new(None),
            }),
        })
    }

    /// Base URL of the JobManager, without credentials; safe to log and show.
    pub fn jobmanager_url(&self) -> &str {
        &self.inner.shown
    }

    /// The full URL of an endpoint below the base URL, e.g. `["jobs", id]` →
    /// `<base>/v1/jobs/<id>`. Each segment is percent-encoded on its own, so an id can never
    /// escape its segment.
    pub fn endpoint_url<S: AsRef<str>>(&self, segments: &[S]) -> Url {
        let mut url = self.inner.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().push("v1");
            path.extend(segments.iter().map(AsRef::as_ref));
        }
        url
    }

    pub(crate) fn call_site(&self, call: &Call) -> CallSite {
        CallSite {
            endpoint: format!("{} /v1/{}", call.method, call.segments.join("/")),
            jobmanager: self.inner.shown.clone(),
        }
    }

    /// The Flink version last seen by [`FlinkClient::health`] or [`FlinkClient::flink_version`].
    pub fn cached_version(&self) -> Option<FlinkVersion> {
        self.inner.version.lock().ok().and_then(|v| v.clone())
    }

    pub(crate) fn remember_version(&self, version: FlinkVersion) {
        if let Ok(mut slot) = self.inner.version.lock() {
            *slot = Some(version);
        }
    }

    /// `Unsupported` for a call that this Flink version cannot serve.
    pub(crate) fn unsupported(&self, call: &Call, reason: impl Into<String>) -> Error {
        Error::Unsupported {
            at: self.call_site(call),
            version: self
                .cached_version()
                .map(|v| v.to_string())
                .unwrap_or_else(|| "this Flink version".into()),
            reason: reason.into(),
        }
    }

    /// A read: `GET`, retried per the policy on transient failures.
    pub(crate) async fn get<T: DeserializeOwned>(&self, call: Call) -> Result<T> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let result = self.execute(&call, Body::Empty).await;
            let err = match result {
                Ok(bytes) => return self.decode(&call, &bytes),
                Err(err) => err,
            };
            match self
                .inner
                .retry
                .delay_before_retry(&call.method, &err, attempts)
            {
                Some(delay) => {
                    tracing::debug!(
                        endpoint = %self.call_site(&call).endpoint,
                        attempt = attempts,
                        error = %err,
                        "retrying an idempotent Flink read"
                    );
                    tokio::time::sleep(delay).await;
                }
                None => return Err(err),
            }
        }
    }

    /// A write or trigger: sent exactly once, never retried.
    pub(crate) async fn send<T: DeserializeOwned>(
        &self,
        call: Call,
        body: Option<&impl Serialize>,
    ) -> Result<T> {
        let json = match body {
            Some(b) => Some(serde_json::to_value(b).map_err(|source| Error::Decode {
                at: self.call_site(&call),
                source,
            })?),
            None => None,
        };
        let body = json.as_ref().map(Body::Json).unwrap_or(Body::Empty);
        let bytes = self.execute(&call, body).await?;
        self.decode(&call, &bytes)
    }

    /// A write whose answer carries nothing of interest (e.g. `{}`).
    pub(crate) async fn send_ignore(
        &self,
        call: Call,
        body: Option<&impl Serialize>,
    ) -> Result<()> {
        self.send::<IgnoredAny>(call, body).await.map(|_| ())
    }

    /// Uploads a jar as `multipart/form-data` (field `jarfile`); never retried.
    pub(crate) async fn upload<T: DeserializeOwned>(
        &self,
        call: Call,
        file_name: String,
        bytes: Vec<u8>,
    ) -> Result<T> {
        let bytes = self.execute(&call, Body::Jar { file_name, bytes }).await?;
        self.decode(&call, &bytes)
    }

    async fn execute(&self, call: &Call, body: Body<'_>) -> Result<Vec<u8>> {
        let at = self.call_site(call);
        let mut url = self.endpoint_url(&call.segments);
        if !call.query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(call.query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        let mut timeout = self.inner.timeout;
        let mut request = self.inner.http.request(call.method.clone(), url);
        request = match body {
            Body::Empty => request,
            Body::Json(value) => request.json(value),
            Body::Jar { file_name, bytes } => {
                timeout = self.inner.upload_timeout;
                let part = reqwest::multipart::Part::bytes(bytes)
                    .file_name(file_name)
                    .mime_str("application/x-java-archive")
                    .map_err(|e| Error::Config {
                        field: "jar",
                        message: error_chain(&e),
                    })?;
                request.multipart(reqwest::multipart::Form::new().part("jarfile", part))
            }
        };
        tracing::debug!(endpoint = %at.endpoint, jobmanager = %at.jobmanager, "calling Flink");
        let response = request
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| transport_error(e, &at, timeout))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| transport_error(e, &at, timeout))?;
        if status.is_success() {
            Ok(bytes.to_vec())
        } else {
            Err(self.http_error(at, status, &bytes))
        }
    }

    fn decode<T: DeserializeOwned>(&self, call: &Call, bytes: &[u8]) -> Result<T> {
        serde_json::from_slice(bytes).map_err(|source| {
            let at = self.call_site(call);
            if serde_json::from_slice::<IgnoredAny>(bytes).is_err() {
                Error::NotFlink {
                    at,
                    detail: format!("the answer is not JSON: {}", snippet(bytes)),
                }
            } else {
                Error::Decode { at, source }
            }
        })
    }

    /// Maps a non-2xx answer to an error. Flink always answers `{"errors": [...]}`; a
    /// Kubernetes API-server proxy answers with a `Status` object; anything else did not
    /// come from a JobManager.
    fn http_error(&self, at: CallSite, status: StatusCode, bytes: &[u8]) -> Error {
        #[derive(serde::Deserialize)]
        struct FlinkErrors {
            errors: Vec<String>,
        }
        #[derive(serde::Deserialize)]
        struct KubeStatus {
            kind: String,
            #[serde(default)]
            message: String,
        }
        let code = status.as_u16();
        if let Ok(FlinkErrors { errors }) = serde_json::from_slice(bytes) {
            if code == 404
                && errors
                    .iter()
                    .any(|e| e.starts_with("Unable to load requested file"))
            {
                return Error::Unsupported {
                    at,
                    version: self
                        .cached_version()
                        .map(|v| v.to_string())
                        .unwrap_or_else(|| "this Flink version".into()),
                    reason: "the JobManager has no such REST endpoint".into(),
                };
            }
            let cleaned = clean_flink_errors(&errors);
            let job_missing = errors
                .iter()
                .any(|e| e.contains("FlinkJobNotFoundException"));
            return match code {
                404 => Error::NotFound {
                    at,
                    message: cleaned.join("; "),
                },
                _ if job_missing => Error::NotFound {
                    at,
                    message: cleaned.join("; "),
                },
                401 | 403 => Error::Unauthorized {
                    at,
                    status: code,
                    message: cleaned.join("; "),
                },
                _ => Error::Flink {
                    at,
                    status: code,
                    errors: cleaned,
                },
            };
        }
        if let Ok(kube) = serde_json::from_slice::<KubeStatus>(bytes)
            && kube.kind == "Status"
        {
            return match code {
                401 | 403 => Error::Unauthorized {
                    at,
                    status: code,
                    message: kube.message,
                },
                _ => Error::Unreachable {
                    at,
                    detail: format!(
                        "HTTP {code} from the Kubernetes API server: {}",
                        kube.message
                    ),
                },
            };
        }
        match code {
            401 | 403 => Error::Unauthorized {
                at,
                status: code,
                message: snippet(bytes),
            },
            502..=504 => Error::Unreachable {
                at,
                detail: format!("HTTP {code} from a gateway: {}", snippet(bytes)),
            },
            _ => Error::NotFlink {
                at,
                detail: format!(
                    "HTTP {code} with a body that is not a Flink answer: {}",
                    snippet(bytes)
                ),
            },
        }
    }
}

fn apply_tls(
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

fn transport_error(e: reqwest::Error, at: &CallSite, timeout: Duration) -> Error {
    if e.is_timeout() {
        Error::Timeout {
            at: at.clone(),
            after: timeout,
        }
    } else {
        Error::Unreachable {
            at: at.clone(),
            detail: error_chain(&e.without_url()),
        }
    }
}

/// The error and its sources on one line, skipping repeats.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if parts.last().is_none_or(|last| !last.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

fn snippet(bytes: &[u8]) -> String {
    let mut s = String::from_utf8_lossy(bytes).trim().replace('\n', " ");
    truncate(&mut s, 200);
    if s.is_empty() { "(empty)".into() } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(base: &str) -> FlinkClient {
        FlinkClient::new(ClientConfig::new(base).unwrap()).unwrap()
    }

    #[test]
    fn endpoints_are_joined_below_a_plain_base_url() {
        let c = client("http://localhost:8081");
        assert_eq!(
            c.endpoint_url(&["jobs", "overview"]).as_str(),
            "http://localhost:8081/v1/jobs/overview"
        );
    }

    #[test]
    fn endpoints_keep_the_kubernetes_service_proxy_prefix() {
        let base = "https://api.example:6443/api/v1/namespaces/ns/services/name-rest:8081/proxy/";
        let c = client(base);
        assert_eq!(
            c.endpoint_url(&["jobs", "0123"]).as_str(),
            "https://api.example:6443/api/v1/namespaces/ns/services/name-rest:8081/proxy/v1/jobs/0123"
        );
        // Without the trailing slash the last segment must not be replaced.
        let c = client(base.trim_end_matches('/'));
        assert_eq!(
            c.endpoint_url(&["config"]).as_str(),
            "https://api.example:6443/api/v1/namespaces/ns/services/name-rest:8081/proxy/v1/config"
        );
    }

    #[test]
    fn segments_are_percent_encoded_and_cannot_escape() {
        let c = client("http://jm:8081/prefix/");
        assert_eq!(
            c.endpoint_url(&["jars", "../x y?z"]).as_str(),
            "http://jm:8081/prefix/v1/jars/..%2Fx%20y%3Fz"
        );
    }

    #[test]
    fn shown_url_has_no_credentials() {
        let c = client("https://user:pw@jm:8081/base");
        assert_eq!(c.jobmanager_url(), "https://jm:8081/base/");
        let site = c.call_site(&Call::get(&["jobs"]));
        assert_eq!(site.endpoint, "GET /v1/jobs");
        assert!(!site.to_string().contains("pw"));
    }

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

    #[test]
    fn non_http_urls_and_bad_pem_are_config_errors() {
        let err = FlinkClient::new(ClientConfig::new("ftp://jm").unwrap()).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Config {
                    field: "base_url",
                    ..
                }
            ),
            "{err}"
        );
        let tls = TlsConfig {
            ca_pem: Some(b"not a certificate".to_vec()),
            ..TlsConfig::default()
        };
        let err =
            FlinkClient::new(ClientConfig::new("https://jm").unwrap().with_tls(tls)).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Config {
                    field: "tls.ca_pem",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn kubernetes_proxy_errors_are_not_mistaken_for_flink_answers() {
        let c = client("https://api:6443/api/v1/namespaces/ns/services/jm-rest:8081/proxy/");
        let at = c.call_site(&Call::get(&["jobs"]));
        let body = br#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"no endpoints available for service \"jm-rest:8081\"","reason":"ServiceUnavailable","code":503}"#;
        let err = c.http_error(at.clone(), StatusCode::SERVICE_UNAVAILABLE, body);
        assert!(matches!(err, Error::Unreachable { .. }), "{err}");
        let body = br#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"services \"jm-rest\" is forbidden: User \"x\" cannot get resource \"services/proxy\"","reason":"Forbidden","code":403}"#;
        let err = c.http_error(at, StatusCode::FORBIDDEN, body);
        assert!(
            matches!(err, Error::Unauthorized { status: 403, .. }),
            "{err}"
        );
    }

    #[test]
    fn flink_route_miss_is_unsupported_and_job_miss_is_not_found() {
        let c = client("http://jm:8081");
        let at = c.call_site(&Call::get(&["jobs", "x", "rescales", "overview"]));
        let err = c.http_error(
            at.clone(),
            StatusCode::NOT_FOUND,
            br#"{"errors":["Unable to load requested file /v1/jobs/x/rescales/overview."]}"#,
        );
        assert!(matches!(err, Error::Unsupported { .. }), "{err}");
        let err = c.http_error(
            at.clone(),
            StatusCode::INTERNAL_SERVER_ERROR,
            br#"{"errors":["Internal server error.","<Exception on server side:\norg.apache.flink.runtime.messages.FlinkJobNotFoundException: Could not find Flink job (x)\n\tat a.b(C.java:1)\n\nEnd of exception on server side>"]}"#,
        );
        assert!(matches!(err, Error::NotFound { .. }), "{err}");
        let err = c.http_error(at, StatusCode::NOT_FOUND, b"<html>nope</html>");
        assert!(matches!(err, Error::NotFlink { .. }), "{err}");
    }
}
