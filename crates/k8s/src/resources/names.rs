//! Names of a cluster's Kubernetes objects, derived from the `FlinkDeployment` name once it has
//! been checked, so every derived name is known to be DNS-safe and within Kubernetes' limits.

use api::names::DeploymentName;

use super::ResourceError;

/// The checked names of one cluster's objects.
///
/// The resource name is at most 45 characters (Flink's own limit for a cluster id), so the
/// longest derived name, `flink-config-<name>`, stays within the 63 characters a Service or
/// label value may have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterNames {
    name: DeploymentName,
    namespace: String,
}

impl ClusterNames {
    /// Checks the resource's name and namespace.
    pub fn new(name: &str, namespace: &str) -> Result<Self, ResourceError> {
        let name = DeploymentName::parse(name).map_err(|e| ResourceError::Invalid {
            name: name.to_string(),
            field: "metadata.name".into(),
            message: e.to_string(),
        })?;
        if !is_dns_label(namespace) {
            return Err(ResourceError::Invalid {
                name: name.to_string(),
                field: "metadata.namespace".into(),
                message: format!("`{namespace}` is not a valid namespace name"),
            });
        }
        Ok(Self {
            name,
            namespace: namespace.to_string(),
        })
    }

    /// The cluster id: the resource's name, also the JobManager Deployment's name.
    pub fn cluster_id(&self) -> &str {
        self.name.as_str()
    }

    /// The namespace of the resource and of every child.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The JobManager Deployment, and the internal (headless) Service: `<name>`.
    pub fn jobmanager(&self) -> String {
        self.cluster_id().to_string()
    }

    /// The TaskManager Deployment of a standalone cluster: `<name>-taskmanager`.
    pub fn taskmanager(&self) -> String {
        format!("{}-taskmanager", self.cluster_id())
    }

    /// The REST Service: `<name>-rest`.
    pub fn rest_service(&self) -> String {
        format!("{}-rest", self.cluster_id())
    }

    /// The Flink configuration ConfigMap: `flink-config-<name>`.
    pub fn config_map(&self) -> String {
        format!("flink-config-{}", self.cluster_id())
    }

    /// The ConfigMap holding the TaskManager pod template (native mode): `pod-template-<name>`.
    pub fn pod_template_config_map(&self) -> String {
        format!("pod-template-{}", self.cluster_id())
    }

    /// The Ingress: `<name>`.
    pub fn ingress(&self) -> String {
        self.cluster_id().to_string()
    }

    /// The in-cluster address of the JobManager's internal Service, `<name>.<namespace>`.
    pub fn internal_address(&self) -> String {
        format!("{}.{}", self.cluster_id(), self.namespace)
    }
}

/// An RFC 1123 label: 1–63 lower-case letters, digits and `-`, alphanumeric at both ends.
fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_names_follow_flink_and_the_apache_operator() {
        let n = ClusterNames::new("basic-example", "prod").unwrap();
        assert_eq!(n.jobmanager(), "basic-example");
        assert_eq!(n.taskmanager(), "basic-example-taskmanager");
        assert_eq!(n.rest_service(), "basic-example-rest");
        assert_eq!(n.config_map(), "flink-config-basic-example");
        assert_eq!(n.pod_template_config_map(), "pod-template-basic-example");
        assert_eq!(n.internal_address(), "basic-example.prod");
    }

    #[test]
    fn the_longest_name_keeps_every_derived_name_within_63_characters() {
        let name = "a".repeat(api::names::MAX_DEPLOYMENT_NAME_LEN);
        let n = ClusterNames::new(&name, "default").unwrap();
        for derived in [
            n.taskmanager(),
            n.rest_service(),
            n.config_map(),
            n.pod_template_config_map(),
        ] {
            assert!(derived.len() <= 63, "{derived}");
        }
    }

    #[test]
    fn names_that_are_not_dns_safe_are_rejected_with_the_field() {
        let e = ClusterNames::new("My_Job", "default").unwrap_err();
        assert!(e.to_string().contains("metadata.name"), "{e}");
        let e = ClusterNames::new(&"a".repeat(46), "default").unwrap_err();
        assert!(e.to_string().contains("46 characters"), "{e}");
        let e = ClusterNames::new("ok", "Bad.NS").unwrap_err();
        assert!(e.to_string().contains("metadata.namespace"), "{e}");
    }
}
