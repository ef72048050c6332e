//! What tests see of the traffic: a request log and fault injection.

use super::error::{ApiError, reason_for_code};

/// The API verb of a request, as Kubernetes audit logs name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verb {
    /// GET of one object (or its subresource).
    Get,
    /// GET of a collection.
    List,
    /// GET of a collection with `watch=true`.
    Watch,
    /// POST.
    Create,
    /// PUT.
    Update,
    /// PATCH (see [`RequestRecord::patch_type`]).
    Patch,
    /// DELETE of one object.
    Delete,
    /// DELETE of a collection.
    DeleteCollection,
    /// Discovery and version endpoints.
    Discovery,
}

/// One request the fake answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    /// HTTP method.
    pub method: String,
    /// Path without the query.
    pub path: String,
    /// Raw query string (empty when none).
    pub query: String,
    /// The API verb.
    pub verb: Verb,
    /// `group/version` (`v1` for core); empty for discovery.
    pub api_version: String,
    /// Plural resource name; empty for discovery.
    pub resource: String,
    /// Subresource (`status`, `scale`), if any.
    pub subresource: Option<String>,
    /// Namespace from the path, if any.
    pub namespace: Option<String>,
    /// Object name from the path, if any.
    pub name: Option<String>,
    /// `merge`, `json`, `strategic` or `apply` for PATCH.
    pub patch_type: Option<String>,
    /// The `fieldManager` query parameter.
    pub field_manager: Option<String>,
    /// The `force` query parameter of an apply.
    pub force: bool,
    /// `dryRun=All` was set.
    pub dry_run: bool,
    /// HTTP status code of the answer (200 for a watch that started streaming).
    pub status: u16,
    /// The answer came from an injected fault.
    pub injected: bool,
}

impl RequestRecord {
    /// True when this request wrote something (create, update, patch, delete).
    pub fn is_write(&self) -> bool {
        matches!(
            self.verb,
            Verb::Create | Verb::Update | Verb::Patch | Verb::Delete | Verb::DeleteCollection
        )
    }
}

/// A rule that makes matching requests fail. Unset criteria match anything.
///
/// ```no_run
/// # use flinkpilot_testkit::kube_fake::{FakeApiServer, Fault, Verb};
/// # fn demo(server: &FakeApiServer) {
/// // the next two status writes to `ns/basic` answer 409 Conflict
/// server.inject(
///     Fault::status(409)
///         .verbs(&[Verb::Update, Verb::Patch])
///         .resource("flinkdeployments")
///         .object("ns", "basic")
///         .subresource("status")
///         .times(2),
/// );
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    code: u16,
    message: Option<String>,
    verbs: Vec<Verb>,
    resource: Option<String>,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<Option<String>>,
    remaining: Option<u32>,
}

impl Fault {
    /// Fail with this HTTP code and the matching `Status.reason` (409 → Conflict,
    /// 500 → InternalError, 429 → TooManyRequests, …). Matches every request until narrowed.
    ///
    /// Note: kube 5's default client retries 429, 503 and 504 by itself before the caller sees
    /// an error; use [`FakeApiServer::config`](super::FakeApiServer::config) with
    /// `default_retry = false` to observe them directly.
    pub fn status(code: u16) -> Self {
        Self {
            code,
            message: None,
            verbs: Vec::new(),
            resource: None,
            namespace: None,
            name: None,
            subresource: None,
            remaining: None,
        }
    }

    /// Uses this message instead of the default one.
    pub fn message(mut self, message: &str) -> Self {
        self.message = Some(message.to_string());
        self
    }

    /// Only these verbs.
    pub fn verbs(mut self, verbs: &[Verb]) -> Self {
        self.verbs = verbs.to_vec();
        self
    }

    /// Only this plural resource name (e.g. `flinkdeployments`).
    pub fn resource(mut self, plural: &str) -> Self {
        self.resource = Some(plural.to_string());
        self
    }

    /// Only this object.
    pub fn object(mut self, namespace: &str, name: &str) -> Self {
        self.namespace = Some(namespace.to_string());
        self.name = Some(name.to_string());
        self
    }

    /// Only this namespace.
    pub fn namespace(mut self, namespace: &str) -> Self {
        self.namespace = Some(namespace.to_string());
        self
    }

    /// Only this subresource (`status`, `scale`).
    pub fn subresource(mut self, sub: &str) -> Self {
        self.subresource = Some(Some(sub.to_string()));
        self
    }

    /// Only the main resource (no subresource).
    pub fn main_resource(mut self) -> Self {
        self.subresource = Some(None);
        self
    }

    /// Only the next `n` matching requests (default: all of them until cleared).
    pub fn times(mut self, n: u32) -> Self {
        self.remaining = Some(n);
        self
    }

    fn matches(&self, r: &RequestRecord) -> bool {
        (self.verbs.is_empty() || self.verbs.contains(&r.verb))
            && self.resource.as_ref().is_none_or(|x| *x == r.resource)
            && self
                .namespace
                .as_ref()
                .is_none_or(|x| Some(x) == r.namespace.as_ref())
            && self
                .name
                .as_ref()
                .is_none_or(|x| Some(x) == r.name.as_ref())
            && self
                .subresource
                .as_ref()
                .is_none_or(|x| *x == r.subresource)
            && r.verb != Verb::Discovery
    }

    fn error(&self, r: &RequestRecord) -> ApiError {
        let reason = reason_for_code(self.code);
        let message = self.message.clone().unwrap_or_else(|| match self.code {
            409 => format!(
                "Operation cannot be fulfilled on {} \"{}\": the object has been modified; please apply your changes to the latest version and try again",
                r.resource,
                r.name.as_deref().unwrap_or_default()
            ),
            _ => format!("injected fault: {} {}", self.code, reason),
        });
        ApiError::new(self.code, reason, message)
    }
}

/// Consumes the first fault matching `r`, returning the error to answer with.
pub fn take_fault(faults: &mut Vec<Fault>, r: &RequestRecord) -> Option<ApiError> {
    let idx = faults.iter().position(|f| f.matches(r))?;
    let err = faults[idx].error(r);
    if let Some(n) = faults[idx].remaining.as_mut() {
        *n = n.saturating_sub(1);
        if *n == 0 {
            faults.remove(idx);
        }
    }
    Some(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(verb: Verb, sub: Option<&str>) -> RequestRecord {
        RequestRecord {
            method: "PATCH".into(),
            path: "/x".into(),
            query: String::new(),
            verb,
            api_version: "v1".into(),
            resource: "flinkdeployments".into(),
            subresource: sub.map(str::to_string),
            namespace: Some("ns".into()),
            name: Some("a".into()),
            patch_type: None,
            field_manager: None,
            force: false,
            dry_run: false,
            status: 0,
            injected: false,
        }
    }

    #[test]
    fn counted_faults_expire_and_match_narrowly() {
        let mut faults = vec![
            Fault::status(409)
                .verbs(&[Verb::Patch])
                .subresource("status")
                .times(2),
        ];
        assert!(take_fault(&mut faults, &record(Verb::Patch, None)).is_none());
        assert!(take_fault(&mut faults, &record(Verb::Get, Some("status"))).is_none());
        assert_eq!(
            take_fault(&mut faults, &record(Verb::Patch, Some("status")))
                .unwrap()
                .code,
            409
        );
        assert!(take_fault(&mut faults, &record(Verb::Patch, Some("status"))).is_some());
        assert!(take_fault(&mut faults, &record(Verb::Patch, Some("status"))).is_none());
    }
}
