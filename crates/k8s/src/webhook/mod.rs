//! The validating admission webhook: `POST /validate` answers `admission.k8s.io/v1`
//! `AdmissionReview`s for `FlinkDeployment`, `FlinkSessionJob` and `FlinkStateSnapshot`, so
//! `kubectl apply` of a bad manifest fails at once with the field named.
//!
//! - CREATE: the resource's own checks ([`api::validate`]); a session job is also checked against
//!   the `FlinkDeployment` it names, found through a [`DeploymentLookup`]. A job whose cluster
//!   does not exist yet is allowed with a warning (manifests are often applied in any order),
//!   and its cluster checks run when it is reconciled.
//! - UPDATE: the same, plus the change rules from the old spec to the new one (a session
//!   cluster cannot become an application cluster, `mode` is fixed, …). An update that leaves
//!   `spec` untouched (labels, finalizers) is allowed without checks.
//! - DELETE, CONNECT and subresource writes (`status`, `scale`) are allowed.
//!
//! A denial lists every problem as one `field.path: message` line in `status.message`, with
//! reason `Invalid` (HTTP 422) and one `StatusCause` per problem. An object that does not read
//! as its type is denied with the path of the offending field. Messages never echo values that
//! may be secret.
//!
//! Served over HTTPS by [`tls::serve`], with the certificate reloaded when its files change.

mod lookup;
mod review;
pub mod tls;

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};

pub use lookup::{DeploymentLookup, LookupError};

/// Path the API server posts `AdmissionReview`s to.
pub const VALIDATE_PATH: &str = "/validate";

/// Largest request body read: an update carries the old and the new object, and a
/// `FlinkDeployment` with pod templates can approach etcd's 1.5 MiB object limit.
const MAX_BODY_BYTES: usize = 8 << 20;

/// What the webhook's handler needs.
#[derive(Debug)]
pub struct WebhookState<L> {
    lookup: L,
}

impl<L: DeploymentLookup> WebhookState<L> {
    /// State that finds session clusters through `lookup`.
    pub fn new(lookup: L) -> Self {
        Self { lookup }
    }
}

/// The router: `POST /validate`.
pub fn app<L: DeploymentLookup>(state: WebhookState<L>) -> Router {
    Router::new()
        .route(VALIDATE_PATH, post(validate::<L>))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(Arc::new(state))
}

async fn validate<L: DeploymentLookup>(
    State(state): State<Arc<WebhookState<L>>>,
    body: Bytes,
) -> Response {
    let review: AdmissionReview<DynamicObject> = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return bad_request(format!("the body is not an AdmissionReview: {e}"));
        }
    };
    let request: AdmissionRequest<DynamicObject> = match review.try_into() {
        Ok(r) => r,
        Err(_) => return bad_request("the AdmissionReview carries no request".into()),
    };
    let response = review::review(&state.lookup, &request).await;
    Json(response.into_review()).into_response()
}

fn bad_request(message: String) -> Response {
    tracing::warn!(%message, "unreadable admission request");
    (
        StatusCode::BAD_REQUEST,
        Json(AdmissionResponse::invalid(message).into_review()),
    )
        .into_response()
}
