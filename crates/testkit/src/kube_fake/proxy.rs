//! The service proxy (`/api/v1/namespaces/{ns}/services/[scheme:]name[:port]/proxy/{path}`) and
//! bearer-token authentication.
//!
//! No pods run behind the fake's Services, so a test says where a Service's endpoints are:
//! [`ServiceProxy::set`] (e.g. a local JobManager). Then, like the real API server: an
//! unknown Service answers 404; a port the Service does not declare, a Service without
//! endpoints (nothing registered) or a backend that cannot be reached answers 503
//! (`ServiceUnavailable`); otherwise the request is forwarded — method, path below `proxy`,
//! query, body and headers — and the backend's answer returned as it is. The caller's
//! `Authorization` header is not forwarded (the real server drops it once it has authenticated
//! the request).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::error::ApiError;
use super::observe::{RequestRecord, Verb};
use super::server::Shared;
use super::store::ObjKey;

/// Where the endpoints of the fake's Services are, by (namespace, Service name). Cheap to
/// clone; clones share the table.
#[derive(Clone, Debug, Default)]
pub struct ServiceProxy(Arc<Mutex<HashMap<(String, String), String>>>);

impl ServiceProxy {
    /// Proxy requests to Service `name` in `namespace` go to `base_url` (e.g.
    /// `http://127.0.0.1:8081`), whatever port of the Service they name.
    pub fn set(&self, namespace: &str, name: &str, base_url: &str) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                (namespace.to_string(), name.to_string()),
                base_url.trim_end_matches('/').to_string(),
            );
    }

    /// The Service has no endpoints any more (503 again).
    pub fn remove(&self, namespace: &str, name: &str) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&(namespace.to_string(), name.to_string()));
    }

    fn target(&self, namespace: &str, name: &str) -> Option<String> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }
}

/// A service proxy request: namespace, the `[scheme:]name[:port]` segment and the path below
/// `proxy` (with its leading `/`, or empty).
pub(super) struct ProxyPath<'a> {
    namespace: &'a str,
    service: &'a str,
    rest: &'a str,
}

/// `Some` for a path of the service proxy.
pub(super) fn parse(path: &str) -> Option<ProxyPath<'_>> {
    let tail = path.strip_prefix("/api/v1/namespaces/")?;
    let (namespace, tail) = tail.split_once('/')?;
    let tail = tail.strip_prefix("services/")?;
    let (service, tail) = tail.split_once('/')?;
    let rest = tail.strip_prefix("proxy")?;
    if !(rest.is_empty() || rest.starts_with('/')) || namespace.is_empty() {
        return None;
    }
    Some(ProxyPath {
        namespace,
        service,
        rest,
    })
}

/// Splits `[scheme:]name[:port]` as the API server does.
fn split_service(id: &str) -> Option<(&str, &str, &str)> {
    let parts: Vec<&str> = id.split(':').collect();
    let (scheme, name, port) = match parts.as_slice() {
        [name] => ("", *name, ""),
        [name, port] => ("", *name, *port),
        [scheme, name, port] => (*scheme, *name, *port),
        _ => return None,
    };
    (!name.is_empty() && matches!(scheme, "" | "http" | "https")).then_some((scheme, name, port))
}

/// Whether `port` (a number or a port name; empty: any) is one the Service declares.
fn declares_port(service: &Value, port: &str) -> bool {
    if port.is_empty() {
        return true;
    }
    service["spec"]["ports"].as_array().is_some_and(|ports| {
        ports.iter().any(|p| {
            p["name"].as_str() == Some(port)
                || p["port"].as_u64().is_some_and(|n| n.to_string() == port)
        })
    })
}

/// The answer to the user's bearer token: `None` when the request may go on.
pub(super) fn unauthorized(shared: &Shared, headers: &HeaderMap) -> Option<ApiError> {
    let token = shared.token.as_deref()?;
    let sent = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    (sent != Some(token)).then(|| ApiError::new(401, "Unauthorized", "Unauthorized"))
}

/// A request to the service proxy.
pub(super) struct Forward<'a> {
    pub method: &'a Method,
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    pub body: Bytes,
}

/// Serves one service proxy request.
pub(super) async fn forward(
    shared: &Shared,
    path: &ProxyPath<'_>,
    req: Forward<'_>,
    rec: &mut RequestRecord,
) -> Result<Response, ApiError> {
    let (scheme, name, port) = split_service(path.service).ok_or_else(|| {
        ApiError::bad_request(format!("invalid service request {:?}", path.service))
    })?;
    rec.verb = match *req.method {
        Method::GET | Method::HEAD | Method::OPTIONS => Verb::Get,
        Method::POST => Verb::Create,
        Method::PUT => Verb::Update,
        Method::PATCH => Verb::Patch,
        Method::DELETE => Verb::Delete,
        _ => {
            return Err(ApiError::method_not_allowed(
                "not allowed on the service proxy",
            ));
        }
    };
    rec.api_version = "v1".into();
    rec.resource = "services".into();
    rec.subresource = Some("proxy".into());
    rec.namespace = Some(path.namespace.to_string());
    rec.name = Some(name.to_string());
    if let Some(err) = super::observe::take_fault(&mut shared.faults(), rec) {
        rec.injected = true;
        return Err(err);
    }
    let service = {
        let st = shared.lock();
        let ty = st
            .find("", "v1", "services")
            .ok_or_else(ApiError::no_route)?;
        st.get(&ObjKey {
            ty,
            ns: path.namespace.to_string(),
            name: name.to_string(),
        })?
    };
    let unavailable = |message: String| ApiError::new(503, "ServiceUnavailable", message);
    if !declares_port(&service, port) {
        return Err(unavailable(format!(
            "no service port {port:?} found for service {name:?}"
        )));
    }
    let target = shared
        .proxy
        .target(path.namespace, name)
        .ok_or_else(|| unavailable(format!("no endpoints available for service {name:?}")))?;
    let target = match scheme {
        "https" => target.replacen("http://", "https://", 1),
        _ => target,
    };
    let mut url = format!(
        "{target}{}",
        if path.rest.is_empty() { "/" } else { path.rest }
    );
    if let Some(query) = req.query.filter(|q| !q.is_empty()) {
        url.push('?');
        url.push_str(query);
    }
    let mut headers = req.headers.clone();
    for hop in [
        header::AUTHORIZATION,
        header::HOST,
        header::CONNECTION,
        header::TRANSFER_ENCODING,
        header::CONTENT_LENGTH,
    ] {
        headers.remove(hop);
    }
    let answer = shared
        .http
        .request(req.method.clone(), &url)
        .headers(headers)
        .body(req.body)
        .send()
        .await;
    let answer = match answer {
        Ok(answer) => answer,
        Err(e) => {
            return Err(unavailable(format!(
                "error trying to reach service: {}",
                error_chain(&e.without_url())
            )));
        }
    };
    let status =
        StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut out = HeaderMap::new();
    for (k, v) in answer.headers() {
        if k != header::TRANSFER_ENCODING && k != header::CONNECTION {
            out.append(k.clone(), v.clone());
        }
    }
    let body = answer.bytes().await.map_err(|e| {
        unavailable(format!(
            "error trying to reach service: {}",
            error_chain(&e.without_url())
        ))
    })?;
    let mut response = (status, body).into_response();
    *response.headers_mut() = out;
    Ok(response)
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_paths_and_service_ids_split_like_the_api_server() {
        let p = parse("/api/v1/namespaces/ns/services/https:jm-rest:8081/proxy/v1/jobs").unwrap();
        assert_eq!(
            (p.namespace, p.service, p.rest),
            ("ns", "https:jm-rest:8081", "/v1/jobs")
        );
        assert_eq!(
            parse("/api/v1/namespaces/ns/services/jm/proxy")
                .unwrap()
                .rest,
            ""
        );
        assert!(parse("/api/v1/namespaces/ns/services/jm").is_none());
        assert!(parse("/api/v1/namespaces/ns/services/jm/proxyx").is_none());
        assert_eq!(split_service("jm-rest"), Some(("", "jm-rest", "")));
        assert_eq!(split_service("jm-rest:rest"), Some(("", "jm-rest", "rest")));
        assert_eq!(
            split_service("http:jm-rest:8081"),
            Some(("http", "jm-rest", "8081"))
        );
        assert_eq!(split_service("ftp:jm-rest:8081"), None);
        assert_eq!(split_service(":8081"), None);
    }
}
