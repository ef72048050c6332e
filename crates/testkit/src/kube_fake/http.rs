//! The HTTP surface: one axum fallback handler that parses Kubernetes API paths and dispatches
//! to the store. Responses are real API objects or `Status` errors.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State as AxState};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

use super::delete::{DeleteOpts, Deleted};
use super::error::ApiError;
use super::listing::{delete_collection, discovery_response, list_response, watch_response};
use super::meta::now_timestamp;
use super::observe::{RequestRecord, Verb, take_fault};
use super::patch::{PatchType, apply_patch, parse_body};
use super::route::{Target, parse_path};
use super::selector::{FieldSelector, LabelSelector};
use super::server::Shared;
use super::store::{Filter, ObjKey};
use super::watch::partial_metadata;
use super::write::{Sub, WriteCtx};

/// The fake's router: one fallback handler for every path.
pub fn app(shared: Arc<Shared>) -> Router {
    // the real API server accepts request bodies up to 3 MiB (axum's default is 2 MiB, too
    // small for large CRDs)
    Router::new()
        .fallback(handle)
        .layer(DefaultBodyLimit::max(3 * 1024 * 1024))
        .with_state(shared)
}

fn query_map(uri: &Uri) -> HashMap<String, String> {
    url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

pub(super) fn header_str(headers: &HeaderMap, name: header::HeaderName) -> &str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

async fn handle(
    AxState(shared): AxState<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query = query_map(&uri);
    let mut rec = RequestRecord {
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().unwrap_or_default().to_string(),
        verb: Verb::Discovery,
        api_version: String::new(),
        resource: String::new(),
        subresource: None,
        namespace: None,
        name: None,
        patch_type: None,
        field_manager: query.get("fieldManager").cloned(),
        force: query.get("force").is_some_and(|f| f == "true"),
        dry_run: query.get("dryRun").is_some_and(|d| d == "All"),
        status: 0,
        injected: false,
    };
    if let Some(err) = super::proxy::unauthorized(&shared, &headers) {
        let response = err.into_response();
        rec.status = response.status().as_u16();
        shared.record(rec);
        return response;
    }
    if let Some(path) = super::proxy::parse(uri.path()) {
        let forward = super::proxy::Forward {
            method: &method,
            query: uri.query(),
            headers: &headers,
            body,
        };
        let response = match super::proxy::forward(&shared, &path, forward, &mut rec).await {
            Ok(resp) => resp,
            Err(err) => err.into_response(),
        };
        rec.status = response.status().as_u16();
        shared.record(rec);
        return response;
    }
    let req = Req {
        method: &method,
        query: &query,
        headers: &headers,
        body: &body,
    };
    let response = match dispatch(&shared, uri.path(), &req, &mut rec) {
        Ok(resp) => resp,
        Err(err) => err.into_response(),
    };
    rec.status = response.status().as_u16();
    shared.record(rec);
    response
}

pub(super) struct Req<'a> {
    method: &'a Method,
    query: &'a HashMap<String, String>,
    pub(super) headers: &'a HeaderMap,
    body: &'a Bytes,
}

impl Req<'_> {
    pub(super) fn q(&self, key: &str) -> Option<&str> {
        self.query
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub(super) fn flag(&self, key: &str) -> bool {
        matches!(self.q(key), Some("true" | "1"))
    }

    pub(super) fn metadata_only(&self) -> bool {
        header_str(self.headers, header::ACCEPT).contains("as=PartialObjectMetadata")
    }

    fn json_body(&self) -> Result<Value, ApiError> {
        if self.body.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(self.body)
            .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))
    }

    fn write_ctx(&self) -> WriteCtx {
        let manager = self
            .q("fieldManager")
            .map(str::to_string)
            .unwrap_or_else(|| {
                // like the real server: the user agent up to the first '/'
                let ua = header_str(self.headers, header::USER_AGENT);
                let prefix = ua.split('/').next().unwrap_or_default();
                if prefix.is_empty() {
                    "unknown".to_string()
                } else {
                    prefix.to_string()
                }
            });
        WriteCtx {
            manager,
            dry_run: self.q("dryRun") == Some("All"),
            now: now_timestamp(),
        }
    }
}

pub(super) fn json_response(code: StatusCode, body: &impl Serialize) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut resp = (code, bytes).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn object_response(code: StatusCode, obj: &Value, metadata_only: bool) -> Response {
    if metadata_only {
        json_response(code, &partial_metadata(obj))
    } else {
        json_response(code, obj)
    }
}

fn dispatch(
    shared: &Arc<Shared>,
    path: &str,
    req: &Req<'_>,
    rec: &mut RequestRecord,
) -> Result<Response, ApiError> {
    let target = parse_path(path).ok_or_else(ApiError::no_route)?;
    let Target::Resource(rp) = target else {
        if req.method != Method::GET {
            return Err(ApiError::method_not_allowed(
                "discovery endpoints only serve GET",
            ));
        }
        return discovery_response(shared, &target, req);
    };
    rec.api_version = if rp.group.is_empty() {
        rp.version.clone()
    } else {
        format!("{}/{}", rp.group, rp.version)
    };
    rec.resource = rp.plural.clone();
    rec.namespace = rp.namespace.clone();
    rec.name = rp.name.clone();
    rec.subresource = rp.sub.clone();
    rec.verb = match (req.method.as_str(), rp.name.is_some()) {
        ("GET", true) => Verb::Get,
        ("GET", false) if req.flag("watch") => Verb::Watch,
        ("GET", false) => Verb::List,
        ("POST", false) => Verb::Create,
        ("PUT", true) => Verb::Update,
        ("PATCH", true) => Verb::Patch,
        ("DELETE", true) => Verb::Delete,
        ("DELETE", false) => Verb::DeleteCollection,
        _ => {
            return Err(ApiError::method_not_allowed(format!(
                "{} is not allowed on {path}",
                req.method
            )));
        }
    };
    let patch_type = header_str(req.headers, header::CONTENT_TYPE);
    if rec.verb == Verb::Patch {
        rec.patch_type = PatchType::from_content_type(patch_type).map(|p| p.as_str().to_string());
    }

    let (ty, rt) = {
        let st = shared.lock();
        let ty = st
            .find(&rp.group, &rp.version, &rp.plural)
            .ok_or_else(ApiError::no_route)?;
        (ty, st.rt(ty))
    };
    let scope_ok = match (&rp.namespace, &rp.name) {
        (Some(_), _) => rt.namespaced,
        (None, Some(_)) => !rt.namespaced,
        (None, None) => rec.verb == Verb::List || rec.verb == Verb::Watch || !rt.namespaced,
    };
    let sub = match rp.sub.as_deref() {
        None => Sub::Main,
        Some("status") if rt.status => Sub::Status,
        Some("scale") if rt.scale.is_some() => Sub::Scale,
        Some(_) => return Err(ApiError::no_route()),
    };
    if !scope_ok {
        return Err(ApiError::no_route());
    }
    if let Some(err) = take_fault(&mut shared.faults(), rec) {
        rec.injected = true;
        return Err(err);
    }

    let ns = rp.namespace.clone().unwrap_or_default();
    let key = |name: &str| ObjKey {
        ty,
        ns: ns.clone(),
        name: name.to_string(),
    };
    let meta_only = req.metadata_only();
    match rec.verb {
        Verb::List | Verb::Watch | Verb::DeleteCollection => {
            let filter = Filter {
                namespace: rp.namespace.clone(),
                labels: LabelSelector::parse(req.q("labelSelector").unwrap_or_default())
                    .map_err(ApiError::bad_request)?,
                fields: FieldSelector::parse(
                    req.q("fieldSelector").unwrap_or_default(),
                    &rt.selectable_fields,
                )
                .map_err(ApiError::bad_request)?,
            };
            match rec.verb {
                Verb::Watch => watch_response(shared, ty, filter, req),
                Verb::List => list_response(shared, ty, &rt.kind, &rt.api_version(), filter, req),
                _ => delete_collection(shared, ty, &rt.kind, &rt.api_version(), filter, req),
            }
        }
        Verb::Create => {
            let body = req.json_body()?;
            let created = shared
                .lock()
                .create(ty, &ns, body, &req.write_ctx(), None)?;
            Ok(object_response(StatusCode::CREATED, &created, meta_only))
        }
        Verb::Get => {
            let name = rp.name.as_deref().unwrap_or_default();
            let st = shared.lock();
            if sub == Sub::Scale {
                return Ok(json_response(StatusCode::OK, &st.scale_of(&key(name))?));
            }
            let obj = st.get(&key(name))?;
            drop(st);
            Ok(object_response(StatusCode::OK, &obj, meta_only))
        }
        Verb::Update => {
            let name = rp.name.as_deref().unwrap_or_default();
            let body = req.json_body()?;
            let ctx = req.write_ctx();
            let mut st = shared.lock();
            if sub == Sub::Scale {
                return Ok(json_response(
                    StatusCode::OK,
                    &st.write_scale(&key(name), &body, &ctx)?,
                ));
            }
            let obj = st.update(&key(name), body, sub, &ctx)?;
            drop(st);
            Ok(object_response(StatusCode::OK, &obj, meta_only))
        }
        Verb::Patch => {
            let name = rp.name.as_deref().unwrap_or_default();
            let kind = PatchType::from_content_type(patch_type)
                .ok_or_else(|| ApiError::unsupported_media(patch_type))?;
            let patch = parse_body(kind, req.body)?;
            patch_response(shared, &key(name), sub, kind, patch, req)
        }
        Verb::Delete => {
            let name = rp.name.as_deref().unwrap_or_default();
            let opts = delete_opts(req)?;
            let outcome = shared.lock().delete(&key(name), &opts, &now_timestamp())?;
            Ok(match outcome {
                Deleted::Gone(obj) => {
                    json_response(StatusCode::OK, &success_status(&rt.group, &rt.plural, &obj))
                }
                Deleted::Pending(obj) => object_response(StatusCode::ACCEPTED, &obj, meta_only),
            })
        }
        Verb::Discovery => Err(ApiError::no_route()),
    }
}

fn success_status(group: &str, plural: &str, obj: &Value) -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
        "details": {"name": obj["metadata"]["name"], "group": group, "kind": plural,
                    "uid": obj["metadata"]["uid"]},
    })
}

pub(super) fn delete_opts(req: &Req<'_>) -> Result<DeleteOpts, ApiError> {
    let body = req.json_body()?;
    let mut opts = DeleteOpts::from_body(&body)?;
    if let Some(p) = req.q("propagationPolicy") {
        opts.propagation = DeleteOpts::from_body(&json!({"propagationPolicy": p}))?.propagation;
    }
    if req.q("dryRun") == Some("All") {
        opts.dry_run = true;
    }
    Ok(opts)
}

fn patch_response(
    shared: &Arc<Shared>,
    key: &ObjKey,
    sub: Sub,
    kind: PatchType,
    patch: Value,
    req: &Req<'_>,
) -> Result<Response, ApiError> {
    let ctx = req.write_ctx();
    let meta_only = req.metadata_only();
    let mut st = shared.lock();
    if kind == PatchType::Apply {
        if req.q("fieldManager").is_none() {
            return Err(ApiError::new(
                422,
                "Invalid",
                "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
            ));
        }
        if sub == Sub::Scale {
            return Err(ApiError::method_not_allowed(
                "the fake API server does not support server-side apply on the scale subresource; use a merge patch",
            ));
        }
        let (obj, created) = st.apply(key, patch, sub, req.flag("force"), &ctx)?;
        drop(st);
        let code = if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        return Ok(object_response(code, &obj, meta_only));
    }
    if sub == Sub::Scale {
        let current = st.scale_of(key)?;
        let patched = apply_patch(kind, &current, &patch)?;
        return Ok(json_response(
            StatusCode::OK,
            &st.write_scale(key, &patched, &ctx)?,
        ));
    }
    let obj = st.patch_with(key, sub, &ctx, |old| apply_patch(kind, old, &patch))?;
    drop(st);
    Ok(object_response(StatusCode::OK, &obj, meta_only))
}
