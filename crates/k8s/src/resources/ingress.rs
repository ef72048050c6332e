//! The Ingress in front of the REST Service, from `spec.ingress` as the Apache operator's
//! `IngressUtils` builds it: the template (`{{name}}`, `{{namespace}}` replaced, case-insensitive)
//! is read as a URL (`http://` assumed); its host becomes the rule's host and its path the rule's
//! path (`ImplementationSpecific`, so regex paths like `/{{namespace}}/{{name}}(/|$)(.*)` work
//! with controllers that support them — rewrite annotations are the user's to add, as in Apache).

use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, IngressTLS, ServiceBackendPort,
};

use super::{Cluster, ResourceError};

/// The Ingress of `c`, `None` when the spec has none.
pub fn ingress(c: &Cluster<'_>) -> Result<Option<Ingress>, ResourceError> {
    let Some(spec) = &c.plan.spec.ingress else {
        return Ok(None);
    };
    let invalid = |message: String| ResourceError::Invalid {
        name: c.names.cluster_id().into(),
        field: "spec.ingress.template".into(),
        message,
    };
    let template = spec
        .template
        .as_deref()
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| {
            invalid("an ingress needs a template, e.g. `{{name}}.{{namespace}}.example.com`".into())
        })?;
    let (host, path) =
        host_and_path(template, c.names.cluster_id(), c.names.namespace()).map_err(|why| {
            invalid(format!(
                "`{template}` is not a valid ingress template: {why}"
            ))
        })?;

    let mut meta = c.meta(c.names.ingress(), &spec.labels.clone().unwrap_or_default());
    meta.annotations = spec.annotations.clone().filter(|a| !a.is_empty());
    let backend = IngressBackend {
        service: Some(IngressServiceBackend {
            name: c.names.rest_service(),
            port: Some(ServiceBackendPort {
                number: Some(i32::from(c.cfg.ports.rest)),
                ..Default::default()
            }),
        }),
        ..Default::default()
    };
    Ok(Some(Ingress {
        metadata: meta,
        spec: Some(IngressSpec {
            ingress_class_name: spec.class_name.clone(),
            rules: Some(vec![IngressRule {
                host,
                http: Some(HTTPIngressRuleValue {
                    paths: vec![HTTPIngressPath {
                        backend,
                        path,
                        path_type: "ImplementationSpecific".into(),
                    }],
                }),
            }]),
            tls: spec.tls.as_ref().map(|tls| {
                tls.iter()
                    .map(|t| IngressTLS {
                        hosts: t.hosts.clone(),
                        secret_name: t.secret_name.clone(),
                    })
                    .collect()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }))
}

/// The host (without port) and path of the ingress URL made from `template`; each `None` when
/// blank.
pub fn host_and_path(
    template: &str,
    name: &str,
    namespace: &str,
) -> Result<(Option<String>, Option<String>), String> {
    let url = replace_ci(
        &replace_ci(template.trim(), "{{name}}", name),
        "{{namespace}}",
        namespace,
    );
    let lower = url.to_ascii_lowercase();
    let rest = if lower.starts_with("http://") {
        &url[7..]
    } else if lower.starts_with("https://") {
        &url[8..]
    } else {
        &url[..]
    };
    if rest.contains("{{") {
        return Err("only {{name}} and {{namespace}} are replaced".into());
    }
    let (authority, path) = match rest.find(['/', '?', '#']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    // like java.net.URL: the path ends at a query or fragment
    let path = path.split(['?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => host,
    };
    if host.chars().any(|c| c.is_whitespace()) || path.chars().any(char::is_whitespace) {
        return Err("it must not contain whitespace".into());
    }
    let nonblank = |s: &str| (!s.is_empty()).then(|| s.to_string());
    Ok((nonblank(host), nonblank(path)))
}

/// Replaces every case-insensitive occurrence of `pattern` (ASCII) in `text`.
fn replace_ci(text: &str, pattern: &str, with: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::new();
    let mut last = 0;
    for (i, _) in lower.match_indices(pattern) {
        out.push_str(&text[last..i]);
        out.push_str(with);
        last = i + pattern.len();
    }
    out.push_str(&text[last..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_templates_give_a_host_rule_without_path() {
        assert_eq!(
            host_and_path("{{name}}.{{namespace}}.flink.k8s.io", "basic", "prod").unwrap(),
            (Some("basic.prod.flink.k8s.io".into()), None)
        );
    }

    #[test]
    fn path_templates_keep_their_regex_and_may_have_a_host() {
        assert_eq!(
            host_and_path("/{{namespace}}/{{name}}(/|$)(.*)", "x", "ns").unwrap(),
            (None, Some("/ns/x(/|$)(.*)".into()))
        );
        assert_eq!(
            host_and_path(
                "https://flink.k8s.io:8443/{{NAMESPACE}}/{{Name}}",
                "x",
                "ns"
            )
            .unwrap(),
            (Some("flink.k8s.io".into()), Some("/ns/x".into()))
        );
    }

    #[test]
    fn unknown_placeholders_are_refused() {
        assert!(host_and_path("{{cluster}}.example.com", "x", "ns").is_err());
    }
}
