//! Kubernetes API paths: discovery endpoints and resource paths with optional namespace, name
//! and subresource.

/// A parsed resource path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResPath {
    pub group: String,
    pub version: String,
    pub namespace: Option<String>,
    pub plural: String,
    pub name: Option<String>,
    pub sub: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Version,
    CoreRoot,
    ApisRoot,
    Group(String),
    ResourceList { group: String, version: String },
    Resource(ResPath),
}

pub fn parse_path(path: &str) -> Option<Target> {
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let (group, version, rest) = match segs.as_slice() {
        ["version"] => return Some(Target::Version),
        ["api"] => return Some(Target::CoreRoot),
        ["apis"] => return Some(Target::ApisRoot),
        ["apis", g] => return Some(Target::Group(g.to_string())),
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return None,
    };
    let res = |namespace: Option<&str>, plural: &str, name: Option<&&str>, sub: Option<&&str>| {
        Target::Resource(ResPath {
            group: group.to_string(),
            version: version.to_string(),
            namespace: namespace.map(str::to_string),
            plural: plural.to_string(),
            name: name.map(|s| s.to_string()),
            sub: sub.map(|s| s.to_string()),
        })
    };
    match rest {
        [] => Some(Target::ResourceList {
            group: group.to_string(),
            version: version.to_string(),
        }),
        ["namespaces", ns, plural, tail @ ..] if *plural != "status" && *plural != "finalize" => {
            (tail.len() <= 2).then(|| res(Some(ns), plural, tail.first(), tail.get(1)))
        }
        [plural, tail @ ..] if tail.len() <= 2 => {
            Some(res(None, plural, tail.first(), tail.get(1)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_like_the_api_server() {
        let r = |p| match parse_path(p) {
            Some(Target::Resource(r)) => r,
            other => panic!("{p}: {other:?}"),
        };
        let fd = r("/apis/flink.apache.org/v1beta1/namespaces/ns/flinkdeployments/a/status");
        assert_eq!(
            (
                fd.group.as_str(),
                fd.namespace.as_deref(),
                fd.plural.as_str(),
                fd.name.as_deref(),
                fd.sub.as_deref()
            ),
            (
                "flink.apache.org",
                Some("ns"),
                "flinkdeployments",
                Some("a"),
                Some("status")
            )
        );
        let ns = r("/api/v1/namespaces/ns");
        assert_eq!(
            (ns.plural.as_str(), ns.name.as_deref(), ns.namespace),
            ("namespaces", Some("ns"), None)
        );
        let ns_status = r("/api/v1/namespaces/ns/status");
        assert_eq!(ns_status.sub.as_deref(), Some("status"));
        let all = r("/apis/apps/v1/deployments");
        assert_eq!((all.namespace, all.name), (None, None));
        assert_eq!(
            parse_path("/apis/apps/v1"),
            Some(Target::ResourceList {
                group: "apps".into(),
                version: "v1".into()
            })
        );
        assert_eq!(parse_path("/api/v1/namespaces/a/pods/b/c/d"), None);
    }
}
