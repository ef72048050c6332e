//! The admission decision for one request: which checks run, and how their problems become an
//! `AdmissionResponse`. No HTTP here.

use api::validate::{self, Problem};
use api::{FlinkDeployment, FlinkSessionJob, FlinkStateSnapshot};
use kube::core::admission::{AdmissionRequest, AdmissionResponse, Operation};
use kube::core::response::{StatusCause, StatusDetails, StatusSummary};
use kube::core::{DynamicObject, Status};
use serde::de::DeserializeOwned;

use super::lookup::DeploymentLookup;

/// The outcome before it is written as a response.
#[derive(Debug, PartialEq)]
enum Verdict {
    /// Allowed, with warnings for the client (`kubectl` prints them).
    Allow(Vec<String>),
    /// Denied.
    Deny(Denial),
}

#[derive(Debug, PartialEq)]
struct Denial {
    /// HTTP code the API server passes on to the client.
    code: u16,
    /// Machine-readable reason (`metav1.StatusReason`).
    reason: &'static str,
    /// Problems to list, one per line, each also a `StatusCause` naming its field.
    problems: Vec<Problem>,
}

impl Denial {
    fn invalid(problems: Vec<Problem>) -> Self {
        Self {
            code: 422,
            reason: "Invalid",
            problems,
        }
    }
}

/// Decides `req` and writes the response. Never fails: whatever goes wrong becomes a denial
/// that says what to do.
pub(crate) async fn review<L: DeploymentLookup>(
    lookup: &L,
    req: &AdmissionRequest<DynamicObject>,
) -> AdmissionResponse {
    let verdict = decide(lookup, req).await;
    let mut resp = AdmissionResponse::from(req);
    let namespace = req.namespace.as_deref().unwrap_or("");
    match verdict {
        Verdict::Allow(warnings) => {
            tracing::debug!(
                uid = %req.uid, kind = %req.kind.kind, namespace, name = %req.name,
                operation = ?req.operation, "admission allowed"
            );
            if !warnings.is_empty() {
                resp.warnings = Some(warnings);
            }
        }
        Verdict::Deny(denial) => {
            // Paths only: messages are safe by design, but logs do not need them.
            let fields: Vec<&str> = denial.problems.iter().map(|p| p.path.as_str()).collect();
            tracing::info!(
                uid = %req.uid, kind = %req.kind.kind, namespace, name = %req.name,
                operation = ?req.operation, reason = denial.reason, ?fields, "admission denied"
            );
            resp.allowed = false;
            resp.result = status(req, denial);
        }
    }
    resp
}

fn status(req: &AdmissionRequest<DynamicObject>, denial: Denial) -> Status {
    let message = denial
        .problems
        .iter()
        .map(Problem::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    let causes = denial
        .problems
        .into_iter()
        .map(|p| StatusCause {
            reason: "FieldValueInvalid".into(),
            message: p.message,
            field: p.path,
        })
        .collect();
    Status {
        status: Some(StatusSummary::Failure),
        code: denial.code,
        message,
        metadata: None,
        reason: denial.reason.into(),
        details: Some(StatusDetails {
            name: req.name.clone(),
            group: req.kind.group.clone(),
            kind: req.kind.kind.clone(),
            uid: String::new(),
            causes,
            retry_after_seconds: 0,
        }),
    }
}

async fn decide<L: DeploymentLookup>(lookup: &L, req: &AdmissionRequest<DynamicObject>) -> Verdict {
    // Deleting is never blocked (a bad spec must stay deletable), and status/scale writes are
    // the operator's own or checked when the next reconcile reads the spec.
    let is_write = matches!(req.operation, Operation::Create | Operation::Update);
    if !is_write || req.sub_resource.as_deref().is_some_and(|s| !s.is_empty()) {
        return Verdict::Allow(Vec::new());
    }
    let Some(object) = &req.object else {
        return Verdict::Deny(Denial {
            code: 400,
            reason: "BadRequest",
            problems: vec![Problem::new(
                "request.object",
                "the admission request carries no object",
            )],
        });
    };
    let old = req
        .old_object
        .as_ref()
        .filter(|_| req.operation == Operation::Update);
    // An update that leaves the spec alone (labels, annotations, finalizers) changes nothing
    // validation looks at; checking it again would only block the operator from removing its
    // finalizer from an object that was created invalid before the webhook existed.
    if let Some(old) = old
        && old.data.get("spec") == object.data.get("spec")
    {
        return Verdict::Allow(Vec::new());
    }
    if req.kind.group != api::resource::GROUP {
        return unexpected_kind(req);
    }
    match req.kind.kind.as_str() {
        "FlinkDeployment" => {
            let new: FlinkDeployment = match parse(object) {
                Ok(d) => d,
                Err(p) => return Verdict::Deny(Denial::invalid(vec![p])),
            };
            let mut problems = validate::deployment(&new);
            if let Some(old) = old.and_then(|o| parse_old::<FlinkDeployment>(o, req)) {
                problems.extend(validate::deployment_change(&old.spec, &new.spec));
            }
            verdict(problems, Vec::new())
        }
        "FlinkSessionJob" => {
            let new: FlinkSessionJob = match parse(object) {
                Ok(j) => j,
                Err(p) => return Verdict::Deny(Denial::invalid(vec![p])),
            };
            let namespace = req
                .namespace
                .clone()
                .or_else(|| new.metadata.namespace.clone())
                .unwrap_or_else(|| "default".into());
            let mut warnings = Vec::new();
            let session = match new.spec.deployment_name.as_deref() {
                Some(name) if !name.is_empty() => match lookup.get(&namespace, name).await {
                    Ok(Some(d)) => Some(d),
                    Ok(None) => {
                        warnings.push(format!(
                            "FlinkDeployment {name} does not exist in namespace {namespace} yet; \
                             the checks that need it run when the job is reconciled"
                        ));
                        None
                    }
                    Err(e) => {
                        tracing::warn!(uid = %req.uid, error = %e, "session cluster lookup failed");
                        return Verdict::Deny(Denial {
                            code: 503,
                            reason: "ServiceUnavailable",
                            problems: vec![Problem::new(
                                "spec.deploymentName",
                                format!(
                                    "could not look up FlinkDeployment {name} to check this job \
                                     against it; try again (the operator's log has the cause)"
                                ),
                            )],
                        });
                    }
                },
                _ => None,
            };
            let mut problems = validate::session_job(&new, session.as_ref());
            if let Some(old) = old.and_then(|o| parse_old::<FlinkSessionJob>(o, req)) {
                problems.extend(validate::session_job_change(&old.spec, &new.spec));
            }
            verdict(problems, warnings)
        }
        "FlinkStateSnapshot" => match parse::<FlinkStateSnapshot>(object) {
            Ok(s) => verdict(validate::snapshot(&s), Vec::new()),
            Err(p) => Verdict::Deny(Denial::invalid(vec![p])),
        },
        _ => unexpected_kind(req),
    }
}

fn unexpected_kind(req: &AdmissionRequest<DynamicObject>) -> Verdict {
    let gvk = &req.kind;
    Verdict::Deny(Denial {
        code: 400,
        reason: "BadRequest",
        problems: vec![Problem::new(
            "kind",
            format!(
                "the flinkpilot webhook validates FlinkDeployment, FlinkSessionJob and \
                 FlinkStateSnapshot of {}, not {}/{} {}; fix the rules of its \
                 ValidatingWebhookConfiguration",
                api::resource::GROUP,
                gvk.group,
                gvk.version,
                gvk.kind
            ),
        )],
    })
}

fn verdict(mut problems: Vec<Problem>, warnings: Vec<String>) -> Verdict {
    // The change from the old spec and the change from the last reconciled spec (checked by
    // `validate::deployment`) are often the same change: say it once.
    let mut seen = std::collections::HashSet::new();
    problems.retain(|p| seen.insert(p.clone()));
    if problems.is_empty() {
        Verdict::Allow(warnings)
    } else {
        Verdict::Deny(Denial::invalid(problems))
    }
}

/// Reads the stored object of an update. One that no longer reads (written by an older schema)
/// cannot be compared; the new object is still checked on its own.
fn parse_old<T: DeserializeOwned>(
    old: &DynamicObject,
    req: &AdmissionRequest<DynamicObject>,
) -> Option<T> {
    match parse(old) {
        Ok(t) => Some(t),
        Err(p) => {
            tracing::debug!(uid = %req.uid, field = %p.path, "old object does not read; change checks skipped");
            None
        }
    }
}

/// Reads the typed resource, naming the field that does not fit.
fn parse<T: DeserializeOwned>(object: &DynamicObject) -> Result<T, Problem> {
    let value = serde_json::to_value(object)
        .map_err(|e| Problem::new("", format!("the object could not be read: {e}")))?;
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        Problem::new(path, explain(&e.into_inner().to_string()))
    })
}

/// Rewrites serde's messages into a sentence, without echoing the value that was given: a
/// value in the wrong place may be a secret (a password pasted into a number field).
fn explain(message: &str) -> String {
    if let Some(rest) = message.strip_prefix("unknown variant ")
        && let Some((value, expected)) = rest.split_once(", expected ")
    {
        let expected = expected.trim_start_matches("one of ");
        return format!("{value} is not a valid value; use one of: {expected}");
    }
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(prefix)
            && let Some((found, expected)) = rest.rsplit_once(", expected ")
        {
            // `string "x"`, `integer `5``, `floating point `1.5``: keep the type only
            let found = found.split(['"', '`']).next().unwrap_or(found).trim_end();
            return format!("expected {expected}, found {found}");
        }
    }
    message.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explain_never_echoes_the_given_value() {
        assert_eq!(
            explain("invalid type: string \"hunter2\", expected i32"),
            "expected i32, found string"
        );
        assert_eq!(
            explain("invalid value: integer `-4`, expected u32"),
            "expected u32, found integer"
        );
        assert_eq!(
            explain("invalid type: floating point `1.5`, expected a string"),
            "expected a string, found floating point"
        );
        assert_eq!(
            explain("unknown variant `sometimes`, expected one of `stateless`, `savepoint`"),
            "`sometimes` is not a valid value; use one of: `stateless`, `savepoint`"
        );
        assert_eq!(explain("missing field `x`"), "missing field `x`");
    }
}
