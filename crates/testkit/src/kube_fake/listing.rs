//! Collection responses: lists (with paging), watches, deletecollection, and discovery.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde::Serialize;
use serde_json::{Value, json};

use super::delete::Deleted;
use super::discovery;
use super::error::ApiError;
use super::http::{Req, delete_opts, header_str, json_response};
use super::meta::now_timestamp;
use super::route::Target;
use super::server::Shared;
use super::store::{Filter, Obj, ObjKey};
use super::watch::{self, WatchSpec, partial_metadata};

#[derive(Serialize)]
struct ListOut<'a> {
    kind: String,
    #[serde(rename = "apiVersion")]
    api_version: String,
    metadata: Value,
    items: Vec<Cow<'a, Value>>,
}

pub(super) fn render_list(
    kind: &str,
    api_version: &str,
    metadata: Value,
    items: &[Obj],
    meta_only: bool,
) -> Response {
    let (kind, api_version) = if meta_only {
        (
            "PartialObjectMetadataList".to_string(),
            "meta.k8s.io/v1".to_string(),
        )
    } else {
        (format!("{kind}List"), api_version.to_string())
    };
    let items = items
        .iter()
        .map(|o| {
            if meta_only {
                Cow::Owned(partial_metadata(o))
            } else {
                Cow::Borrowed(&**o)
            }
        })
        .collect();
    json_response(
        StatusCode::OK,
        &ListOut {
            kind,
            api_version,
            metadata,
            items,
        },
    )
}

pub(super) fn parse_rv(s: Option<&str>) -> Result<Option<u64>, ApiError> {
    match s {
        None | Some("0") => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| {
            ApiError::bad_request(format!(
                "invalid resourceVersion {v:?}: the fake API server issues integers"
            ))
        }),
    }
}

pub(super) fn list_response(
    shared: &Arc<Shared>,
    ty: usize,
    kind: &str,
    api_version: &str,
    filter: Filter,
    req: &Req<'_>,
) -> Result<Response, ApiError> {
    let limit = req
        .q("limit")
        .map(|l| {
            l.parse::<usize>()
                .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))
        })
        .transpose()?;
    let exact = req.q("resourceVersionMatch") == Some("Exact");
    let min_rv = parse_rv(req.q("resourceVersion"))?.map(|rv| (rv, exact));
    let page = shared
        .lock()
        .list(ty, &filter, limit, req.q("continue"), min_rv)?;
    let mut metadata = json!({"resourceVersion": page.rv.to_string()});
    if let Some(token) = &page.continue_token {
        metadata["continue"] = json!(token);
        metadata["remainingItemCount"] = json!(page.remaining);
    }
    Ok(render_list(
        kind,
        api_version,
        metadata,
        &page.items,
        req.metadata_only(),
    ))
}

pub(super) fn delete_collection(
    shared: &Arc<Shared>,
    ty: usize,
    kind: &str,
    api_version: &str,
    filter: Filter,
    req: &Req<'_>,
) -> Result<Response, ApiError> {
    let opts = delete_opts(req)?;
    let now = now_timestamp();
    let (items, rv) = {
        let mut st = shared.lock();
        let keys: Vec<ObjKey> = st
            .select(ty, &filter)
            .iter()
            .map(|o| ObjKey {
                ty,
                ns: o["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                name: o["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            })
            .collect();
        let mut items = Vec::new();
        for k in keys {
            match st.delete(&k, &opts, &now) {
                Ok(Deleted::Gone(o) | Deleted::Pending(o)) => items.push(o),
                Err(e) if e.code == 404 => {} // collected with an earlier owner
                Err(e) => return Err(e),
            }
        }
        (items, st.rv)
    };
    let metadata = json!({"resourceVersion": rv.to_string()});
    Ok(render_list(
        kind,
        api_version,
        metadata,
        &items,
        req.metadata_only(),
    ))
}

pub(super) fn watch_response(
    shared: &Arc<Shared>,
    ty: usize,
    filter: Filter,
    req: &Req<'_>,
) -> Result<Response, ApiError> {
    let timeout = req
        .q("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(1800));
    let spec = WatchSpec {
        ty,
        filter,
        start: parse_rv(req.q("resourceVersion"))?,
        initial_events_end: req.flag("sendInitialEvents"),
        bookmarks: req.flag("allowWatchBookmarks"),
        timeout,
        metadata_only: req.metadata_only(),
    };
    let spec = if spec.initial_events_end {
        WatchSpec {
            start: None,
            ..spec
        }
    } else {
        spec
    };
    let stream = watch::open(Arc::clone(shared), spec)?;
    let mut resp = Response::new(Body::from_stream(stream));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

pub(super) fn discovery_response(
    shared: &Arc<Shared>,
    target: &Target,
    req: &Req<'_>,
) -> Result<Response, ApiError> {
    let st = shared.lock();
    let types: Vec<&super::registry::ResourceType> =
        st.registry.types().iter().filter(|t| t.served).collect();
    let aggregated = discovery::wants_aggregated(header_str(req.headers, header::ACCEPT));
    let body = match target {
        Target::Version => discovery::version(),
        Target::CoreRoot if aggregated => discovery::aggregated(&types, true),
        Target::ApisRoot if aggregated => discovery::aggregated(&types, false),
        Target::CoreRoot => discovery::core_versions(&shared.server_address),
        Target::ApisRoot => discovery::group_list(&types),
        Target::Group(g) => discovery::group(&types, g).ok_or_else(ApiError::no_route)?,
        Target::ResourceList { group, version } => {
            discovery::resource_list(&types, group, version).ok_or_else(ApiError::no_route)?
        }
        Target::Resource(_) => return Err(ApiError::no_route()),
    };
    drop(st);
    let mut resp = json_response(StatusCode::OK, &body);
    if aggregated && matches!(target, Target::CoreRoot | Target::ApisRoot) {
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(
                "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
            ),
        );
    }
    Ok(resp)
}
