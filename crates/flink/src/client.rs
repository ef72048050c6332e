//! The HTTP transport every endpoint goes through: URL building under a path prefix,
//! authentication, timeouts, retries of reads, and turning HTTP answers into typed errors.
//! What a client is built from lives in [`crate::settings`].

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use serde::Serialize;
use serde::de::{DeserializeOwned, IgnoredAny};
use url::Url;

pub(crate) use crate::call::Call;
use crate::compat::FlinkVersion;
use crate::error::{CallSite, Error, Result, clean_flink_errors, error_chain, snippet};
use crate::observe::{CallOutcome, ObservedCall, Observer};
use crate::retry::RetryPolicy;
use crate::settings::apply_tls;
pub use crate::settings::{BearerToken, ClientConfig, ClientIdentity, TlsConfig};

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
    observer: Option<Observer>,
    version: Mutex<Option<FlinkVersion>>,
}

impl fmt::Debug for FlinkClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlinkClient")
            .field("jobmanager", &self.inner.shown)
            .finish_non_exhaustive()
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
                observer: config.observer,
                version: Mutex::new(None),
            }),
        })
    }

    /// A client of `base_url` with the default settings (see [`ClientConfig::new`]).
    pub fn from_url(base_url: &str) -> Result<Self> {
        FlinkClient::new(ClientConfig::new(base_url)?)
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
            let err = match self.exchange(&call, Body::Empty).await {
                Ok(value) => return Ok(value),
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
        self.exchange(&call, body).await
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
        self.exchange(&call, Body::Jar { file_name, bytes }).await
    }

    /// One HTTP exchange: sends `call`, reads the answer, maps an error status to a typed error
    /// and decodes a success; reports it to the observer.
    async fn exchange<T: DeserializeOwned>(&self, call: &Call, body: Body<'_>) -> Result<T> {
        let at = self.call_site(call);
        let (request, timeout) = self.request(call, body)?;
        tracing::debug!(endpoint = %at.endpoint, jobmanager = %at.jobmanager, "calling Flink");
        let started = Instant::now();
        let answer = async {
            let response = request.send().await?;
            let status = response.status();
            let bytes = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, bytes))
        }
        .await;
        let elapsed = started.elapsed();
        let (status, bytes) = match answer {
            Ok(answer) => answer,
            Err(e) => {
                let err = transport_error(e, &at, timeout);
                if let Some(outcome) = CallOutcome::of_transport(&err) {
                    self.report(call, outcome, elapsed);
                }
                return Err(err);
            }
        };
        if !status.is_success() {
            self.report(call, CallOutcome::of_status(status), elapsed);
            let err = self.http_error(at, status, &bytes);
            return Err(self.name_version(call, err).await);
        }
        let decoded = self.decode(call, &bytes);
        let outcome = match decoded {
            Ok(_) => CallOutcome::Ok,
            Err(_) => CallOutcome::Decode,
        };
        self.report(call, outcome, elapsed);
        decoded
    }

    fn report(&self, call: &Call, outcome: CallOutcome, duration: Duration) {
        if let Some(Observer(observer)) = &self.inner.observer {
            observer.observe(&ObservedCall {
                endpoint: &call.template,
                method: call.method_name(),
                outcome,
                duration,
            });
        }
    }

    /// The request of `call`, and the timeout it runs under.
    fn request(&self, call: &Call, body: Body<'_>) -> Result<(reqwest::RequestBuilder, Duration)> {
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
        Ok((request.timeout(timeout), timeout))
    }

    /// An `Unsupported` error names the Flink version; when it is not known yet, it is read
    /// from `/config` (boxed: that read goes through `execute` again).
    async fn name_version(&self, call: &Call, err: Error) -> Error {
        match err {
            Error::Unsupported { at, reason, .. }
                if self.cached_version().is_none() && call.segments != ["config"] =>
            {
                let version = match Box::pin(self.flink_version()).await {
                    Ok(v) => v.to_string(),
                    Err(_) => "this Flink version".into(),
                };
                Error::Unsupported {
                    at,
                    version,
                    reason,
                }
            }
            other => other,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::segs;

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
        let site = c.call_site(&Call::get(&segs!["jobs"]));
        assert_eq!(site.endpoint, "GET /v1/jobs");
        assert!(!site.to_string().contains("pw"));
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
        let at = c.call_site(&Call::get(&segs!["jobs"]));
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
        let at = c.call_site(&Call::get(&segs!["jobs", "x", "rescales", "overview"]));
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
