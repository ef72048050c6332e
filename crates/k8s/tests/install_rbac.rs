//! The install manifest's RBAC grants exactly the permissions listed in `install::rbac`, where
//! they are needed: cluster-wide only when all namespaces are watched, the Lease by name in the
//! operator's namespace, and Flink's own account in each namespace Flink runs in.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;

use flinkpilot_k8s::install::InstallOptions;
use flinkpilot_k8s::install::rbac::{
    self, FLINK_PERMISSIONS, OPERATOR_PERMISSIONS, Scope, allows, grants,
};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use serde_json::Value;
use support::install::{find, listed, manifest, typed, variants};

/// Every grant the rules hold, expanded to single `(group, resource, verb, name)` entries.
fn granted(rules: &[PolicyRule]) -> BTreeSet<(String, String, String, Option<String>)> {
    let mut out = BTreeSet::new();
    for r in rules {
        for g in r.api_groups.iter().flatten() {
            for res in r.resources.iter().flatten() {
                for v in &r.verbs {
                    match r.resource_names.as_deref() {
                        None | Some([]) => {
                            out.insert((g.clone(), res.clone(), v.clone(), None));
                        }
                        Some(names) => {
                            for n in names {
                                out.insert((g.clone(), res.clone(), v.clone(), Some(n.clone())));
                            }
                        }
                    }
                }
            }
        }
    }
    out
}

fn assert_allows_all(rules: &[PolicyRule], permissions: &[rbac::Permission], scope: Scope) {
    for (group, resource, verb, name) in grants(permissions, scope) {
        assert!(
            allows(rules, &group, &resource, &verb, name.as_deref()),
            "{verb} {group}/{resource} {name:?} is not granted"
        );
    }
    assert!(
        rules.iter().all(|r| !r.verbs.contains(&"*".to_string())
            && !r.resources.iter().flatten().any(|x| x == "*")),
        "a wildcard crept in: {rules:?}"
    );
    assert_eq!(
        granted(rules),
        grants(permissions, scope),
        "the rules grant more or less than the list"
    );
}

fn binds_operator(subjects: &Option<Vec<k8s_openapi::api::rbac::v1::Subject>>, ns: &str) -> bool {
    subjects.iter().flatten().any(|s| {
        s.kind == "ServiceAccount"
            && s.name == rbac::OPERATOR_NAME
            && s.namespace.as_deref() == Some(ns)
    })
}

#[test]
fn watching_all_namespaces_grants_the_operator_permissions_cluster_wide() {
    let opts = InstallOptions::default();
    let docs = manifest(&opts);
    let role: ClusterRole = typed(find(&docs, "ClusterRole", rbac::OPERATOR_NAME, None).unwrap());
    assert_allows_all(
        role.rules.as_deref().unwrap(),
        OPERATOR_PERMISSIONS,
        Scope::Watched,
    );
    let binding: ClusterRoleBinding =
        typed(find(&docs, "ClusterRoleBinding", rbac::OPERATOR_NAME, None).unwrap());
    assert_eq!(binding.role_ref.kind, "ClusterRole");
    assert_eq!(binding.role_ref.name, rbac::OPERATOR_NAME);
    assert!(binds_operator(&binding.subjects, &opts.namespace));
    // no namespaced operator Roles besides leader election
    let roles: Vec<&str> = docs
        .iter()
        .filter(|d| d["kind"] == "Role" && d["metadata"]["name"] == rbac::OPERATOR_NAME)
        .map(|d| d["metadata"]["namespace"].as_str().unwrap())
        .collect();
    assert!(roles.is_empty(), "{roles:?}");
}

#[test]
fn listed_namespaces_get_roles_and_nothing_cluster_wide() {
    let opts = listed(&["team-a", "team-b"]);
    let docs = manifest(&opts);
    for kind in ["ClusterRole", "ClusterRoleBinding"] {
        let cluster: Vec<&Value> = docs.iter().filter(|d| d["kind"] == kind).collect();
        assert!(cluster.is_empty(), "{kind}: {cluster:?}");
    }
    for ns in ["team-a", "team-b"] {
        let role: Role = typed(find(&docs, "Role", rbac::OPERATOR_NAME, Some(ns)).unwrap());
        assert_allows_all(
            role.rules.as_deref().unwrap(),
            OPERATOR_PERMISSIONS,
            Scope::Watched,
        );
        let binding: RoleBinding =
            typed(find(&docs, "RoleBinding", rbac::OPERATOR_NAME, Some(ns)).unwrap());
        assert_eq!(
            (
                binding.role_ref.kind.as_str(),
                binding.role_ref.name.as_str()
            ),
            ("Role", rbac::OPERATOR_NAME)
        );
        assert!(binds_operator(&binding.subjects, &opts.namespace));
    }
    assert!(find(&docs, "Role", rbac::OPERATOR_NAME, Some(&opts.namespace)).is_none());
}

#[test]
fn leader_election_is_limited_to_the_operators_lease_in_its_namespace() {
    for opts in variants() {
        let docs = manifest(&opts);
        let name = format!("{}-leader-election", rbac::OPERATOR_NAME);
        let role: Role = typed(find(&docs, "Role", &name, Some(&opts.namespace)).unwrap());
        let rules = role.rules.unwrap();
        assert_allows_all(&rules, OPERATOR_PERMISSIONS, Scope::OperatorNamespace);
        assert!(allows(
            &rules,
            "coordination.k8s.io",
            "leases",
            "patch",
            Some(rbac::LEASE_NAME)
        ));
        assert!(!allows(
            &rules,
            "coordination.k8s.io",
            "leases",
            "patch",
            Some("someone-elses")
        ));
        let binding: RoleBinding =
            typed(find(&docs, "RoleBinding", &name, Some(&opts.namespace)).unwrap());
        assert_eq!(binding.role_ref.name, name);
        assert!(binds_operator(&binding.subjects, &opts.namespace));
    }
}

#[test]
fn flink_pods_get_their_service_account_where_they_run() {
    // listed namespaces: a Role per namespace
    let docs_listed = manifest(&listed(&["team-a", "team-b"]));
    for ns in ["team-a", "team-b"] {
        assert!(
            find(
                &docs_listed,
                "ServiceAccount",
                rbac::FLINK_ACCOUNT,
                Some(ns)
            )
            .is_some()
        );
        let role: Role = typed(find(&docs_listed, "Role", rbac::FLINK_ACCOUNT, Some(ns)).unwrap());
        let rules = role.rules.unwrap();
        assert_allows_all(&rules, FLINK_PERMISSIONS, Scope::Watched);
        // native mode: the JobManager starts and stops TaskManager pods
        assert!(allows(&rules, "", "pods", "create", None));
        assert!(allows(&rules, "", "pods", "delete", Some("tm-1")));
        let binding: RoleBinding =
            typed(find(&docs_listed, "RoleBinding", rbac::FLINK_ACCOUNT, Some(ns)).unwrap());
        let subject = &binding.subjects.unwrap()[0];
        assert_eq!(
            (subject.name.as_str(), subject.namespace.as_deref()),
            (rbac::FLINK_ACCOUNT, Some(ns))
        );
    }
    // all namespaces: a ClusterRole, bound in `default`
    let docs_all = manifest(&InstallOptions::default());
    let role: ClusterRole =
        typed(find(&docs_all, "ClusterRole", rbac::FLINK_CLUSTER_ROLE, None).unwrap());
    assert_allows_all(
        role.rules.as_deref().unwrap(),
        FLINK_PERMISSIONS,
        Scope::Watched,
    );
    let ns = Some(rbac::DEFAULT_JOB_NAMESPACE);
    assert!(find(&docs_all, "ServiceAccount", rbac::FLINK_ACCOUNT, ns).is_some());
    let binding: RoleBinding =
        typed(find(&docs_all, "RoleBinding", rbac::FLINK_ACCOUNT, ns).unwrap());
    assert_eq!(
        (
            binding.role_ref.kind.as_str(),
            binding.role_ref.name.as_str()
        ),
        ("ClusterRole", rbac::FLINK_CLUSTER_ROLE)
    );
}
