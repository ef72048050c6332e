//! Least-privilege RBAC: the one list of permissions the operator (and the Flink processes it
//! starts) need, each with its reason, and the Roles/ClusterRoles built from it.
//!
//! The lists here are the single source: [`operator_objects`] and [`flink_objects`] render them
//! as RBAC objects, and the tests check the rendered objects grant exactly these permissions.
//! Code that starts calling the API server with a new verb or resource adds it here, with why.

use std::collections::BTreeSet;

use api::{FlinkDeployment, FlinkSessionJob, FlinkStateSnapshot};
use k8s_openapi::Resource as _;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service, ServiceAccount};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use serde_json::Value;

use super::{InstallOptions, meta, to_value};

/// Name of the `Lease` the operator replicas elect their leader with (in the operator's
/// namespace). The controller must use this name: the Role grants the lease by name.
pub const LEASE_NAME: &str = "flinkpilot-operator-leader";

/// Name of the operator's ServiceAccount, (Cluster)Roles and bindings.
pub const OPERATOR_NAME: &str = "flinkpilot-operator";

/// Name of the ServiceAccount, Role and RoleBinding for Flink's own pods, in each watched
/// namespace (the `serviceAccount: flink` of the Apache examples).
pub const FLINK_ACCOUNT: &str = "flink";

/// Name of the ClusterRole with Flink's permissions when all namespaces are watched; bind it in
/// a namespace to run Flink there.
pub const FLINK_CLUSTER_ROLE: &str = "flinkpilot-flink";

/// Namespace that gets the `flink` ServiceAccount when all namespaces are watched: where
/// manifests without a namespace land.
pub const DEFAULT_JOB_NAMESPACE: &str = "default";

const GET: &str = "get";
const LIST: &str = "list";
const WATCH: &str = "watch";
const CREATE: &str = "create";
const UPDATE: &str = "update";
const PATCH: &str = "patch";
const DELETE: &str = "delete";

/// Where a permission is needed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// In every watched namespace (cluster-wide when all namespaces are watched).
    Watched,
    /// In the operator's own namespace only.
    OperatorNamespace,
}

/// One permission: verbs on resources of one API group, with the reason it is needed.
#[derive(Clone, Copy, Debug)]
pub struct Permission {
    /// API group (`""` for the core group).
    pub group: &'static str,
    /// Resources, each with its subresource if any (`flinkdeployments/status`).
    pub resources: &'static [Resource],
    /// Verbs.
    pub verbs: &'static [&'static str],
    /// Object names the permission is limited to; empty for all.
    pub names: &'static [&'static str],
    /// Where it is needed.
    pub scope: Scope,
    /// Why the operator needs it.
    pub why: &'static str,
}

/// A resource, or a subresource of one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resource {
    /// The plural name, e.g. `deployments`.
    pub plural: &'static str,
    /// The subresource, e.g. `status`.
    pub sub: Option<&'static str>,
}

impl Resource {
    const fn of(plural: &'static str) -> Self {
        Self { plural, sub: None }
    }

    const fn sub(plural: &'static str, sub: &'static str) -> Self {
        Self {
            plural,
            sub: Some(sub),
        }
    }

    /// As written in a `PolicyRule`: `plural` or `plural/sub`.
    pub fn rule_name(&self) -> String {
        match self.sub {
            Some(sub) => format!("{}/{sub}", self.plural),
            None => self.plural.to_string(),
        }
    }
}

const FLINK_GROUP: &str = api::resource::GROUP;
const DEPLOYMENTS: &str = FlinkDeployment::CRD_INFO.plural;
const SESSION_JOBS: &str = FlinkSessionJob::CRD_INFO.plural;
const SNAPSHOTS: &str = FlinkStateSnapshot::CRD_INFO.plural;

/// Everything the operator calls the API server for.
pub const OPERATOR_PERMISSIONS: &[Permission] = &[
    Permission {
        group: FLINK_GROUP,
        resources: &[Resource::of(DEPLOYMENTS), Resource::of(SESSION_JOBS)],
        verbs: &[GET, LIST, WATCH, PATCH, UPDATE],
        names: &[],
        scope: Scope::Watched,
        why: "watch the resources it manages (also the webhook's session cluster lookup); add \
              and remove its finalizer (patch; update for writes guarded by resourceVersion)",
    },
    Permission {
        group: FLINK_GROUP,
        resources: &[Resource::of(SNAPSHOTS)],
        verbs: &[GET, LIST, WATCH, CREATE, PATCH, UPDATE, DELETE],
        names: &[],
        scope: Scope::Watched,
        why: "as above, and snapshots are also created for upgrade and periodic savepoints \
              and deleted past their retention",
    },
    Permission {
        group: FLINK_GROUP,
        resources: &[
            Resource::sub(DEPLOYMENTS, "status"),
            Resource::sub(SESSION_JOBS, "status"),
            Resource::sub(SNAPSHOTS, "status"),
        ],
        verbs: &[GET, PATCH, UPDATE],
        names: &[],
        scope: Scope::Watched,
        why: "status is written through the status subresource (write-ahead, 409 → re-read \
              and retry)",
    },
    Permission {
        group: FLINK_GROUP,
        resources: &[
            Resource::sub(DEPLOYMENTS, "finalizers"),
            Resource::sub(SESSION_JOBS, "finalizers"),
            Resource::sub(SNAPSHOTS, "finalizers"),
        ],
        verbs: &[UPDATE],
        names: &[],
        scope: Scope::Watched,
        why: "children's ownerReferences set blockOwnerDeletion, which clusters with the \
              OwnerReferencesPermissionEnforcement admission plugin allow only to who may \
              update the owner's finalizers; granted for snapshots too, whose deletion the \
              operator's finalizer holds, as the Apache operator's role does",
    },
    Permission {
        group: Deployment::GROUP,
        resources: &[Resource::of(Deployment::URL_PATH_SEGMENT)],
        verbs: &[GET, LIST, WATCH, CREATE, PATCH, DELETE],
        names: &[],
        scope: Scope::Watched,
        why: "JobManager and standalone TaskManager Deployments: watched as owned children, \
              server-side applied (an apply that creates is authorized as create), deleted \
              when the plan no longer has them",
    },
    Permission {
        group: Service::GROUP,
        resources: &[
            Resource::of(Service::URL_PATH_SEGMENT),
            Resource::of(ConfigMap::URL_PATH_SEGMENT),
        ],
        verbs: &[GET, LIST, WATCH, CREATE, PATCH, DELETE],
        names: &[],
        scope: Scope::Watched,
        why: "the REST and internal Services and the Flink configuration ConfigMap: same \
              life cycle as the Deployments; HA ConfigMaps are deleted with their cluster",
    },
    Permission {
        group: Ingress::GROUP,
        resources: &[Resource::of(Ingress::URL_PATH_SEGMENT)],
        verbs: &[GET, LIST, WATCH, CREATE, PATCH, DELETE],
        names: &[],
        scope: Scope::Watched,
        why: "the Ingress of spec.ingress: same life cycle as the Deployments",
    },
    Permission {
        group: Pod::GROUP,
        resources: &[Resource::of(Pod::URL_PATH_SEGMENT)],
        verbs: &[GET, LIST, WATCH],
        names: &[],
        scope: Scope::Watched,
        why: "JobManager and TaskManager pod state (crash loops, image pull errors) for the \
              status; pods are never written: Flink creates native TaskManager pods itself",
    },
    Permission {
        group: Event::GROUP,
        resources: &[Resource::of(Event::URL_PATH_SEGMENT)],
        verbs: &[CREATE, PATCH],
        names: &[],
        scope: Scope::Watched,
        why: "an Event for every decision (kube's recorder creates events.k8s.io Events and \
              patches the series of a repeated one)",
    },
    Permission {
        group: Lease::GROUP,
        resources: &[Resource::of(Lease::URL_PATH_SEGMENT)],
        verbs: &[CREATE],
        names: &[],
        scope: Scope::OperatorNamespace,
        why: "leader election: the first replica creates the Lease (a create cannot be limited \
              by name)",
    },
    Permission {
        group: Lease::GROUP,
        resources: &[Resource::of(Lease::URL_PATH_SEGMENT)],
        verbs: &[GET, PATCH],
        names: &[LEASE_NAME],
        scope: Scope::OperatorNamespace,
        why: "leader election: read, renew and take over the operator's own Lease only",
    },
];

/// What Flink's JobManager needs in the namespace it runs in. Native mode: it starts and stops
/// its TaskManager pods; Kubernetes HA (either mode): leader election and checkpoint pointers
/// in ConfigMaps.
pub const FLINK_PERMISSIONS: &[Permission] = &[
    Permission {
        group: Pod::GROUP,
        resources: &[Resource::of(Pod::URL_PATH_SEGMENT)],
        verbs: &[GET, LIST, WATCH, CREATE, DELETE],
        names: &[],
        scope: Scope::Watched,
        why: "native mode: the JobManager creates, watches and deletes its TaskManager pods",
    },
    Permission {
        group: ConfigMap::GROUP,
        resources: &[Resource::of(ConfigMap::URL_PATH_SEGMENT)],
        verbs: &[GET, LIST, WATCH, CREATE, UPDATE, PATCH, DELETE],
        names: &[],
        scope: Scope::Watched,
        why: "Kubernetes HA: leader election (compare-and-swap updates) and checkpoint \
              pointers live in ConfigMaps the JobManager creates and cleans up",
    },
    Permission {
        group: Deployment::GROUP,
        resources: &[Resource::of(Deployment::URL_PATH_SEGMENT)],
        verbs: &[GET],
        names: &[],
        scope: Scope::Watched,
        why: "native mode: the JobManager reads its own Deployment to make it the owner of \
              the TaskManager pods",
    },
    Permission {
        group: Deployment::GROUP,
        resources: &[Resource::sub(Deployment::URL_PATH_SEGMENT, "finalizers")],
        verbs: &[UPDATE],
        names: &[],
        scope: Scope::Watched,
        why: "native mode: those owner references block owner deletion, which needs update on \
              the owner's finalizers where OwnerReferencesPermissionEnforcement is on",
    },
];

/// The rules of `permissions` that apply in `scope`, one rule per permission.
pub fn rules(permissions: &[Permission], scope: Scope) -> Vec<PolicyRule> {
    permissions
        .iter()
        .filter(|p| p.scope == scope)
        .map(|p| PolicyRule {
            api_groups: Some(vec![p.group.to_string()]),
            resources: Some(p.resources.iter().map(Resource::rule_name).collect()),
            verbs: p.verbs.iter().map(|v| v.to_string()).collect(),
            resource_names: (!p.names.is_empty())
                .then(|| p.names.iter().map(|n| n.to_string()).collect()),
            non_resource_urls: None,
        })
        .collect()
}

/// Whether `rules` allow `verb` on `resource` (`plural` or `plural/sub`) of `group`, for the
/// object `name` (`None`: a request without a name, like list or create), with the API
/// server's matching: `*` matches anything, resourceNames limit named requests only.
pub fn allows(
    rules: &[PolicyRule],
    group: &str,
    resource: &str,
    verb: &str,
    name: Option<&str>,
) -> bool {
    let has = |list: Option<&Vec<String>>, want: &str| {
        list.is_some_and(|l| l.iter().any(|x| x == "*" || x == want))
    };
    rules.iter().any(|r| {
        has(r.api_groups.as_ref(), group)
            && has(r.resources.as_ref(), resource)
            && r.verbs.iter().any(|v| v == "*" || v == verb)
            && match r.resource_names.as_deref() {
                None | Some([]) => true,
                Some(names) => name.is_some_and(|n| names.iter().any(|x| x == n)),
            }
    })
}

fn subject(opts: &InstallOptions) -> Subject {
    Subject {
        kind: "ServiceAccount".into(),
        name: OPERATOR_NAME.into(),
        namespace: Some(opts.namespace.clone()),
        api_group: None,
    }
}

fn role_ref(kind: &str, name: &str) -> RoleRef {
    RoleRef {
        api_group: Some("rbac.authorization.k8s.io".into()),
        kind: kind.into(),
        name: name.into(),
    }
}

/// The operator's RBAC: a ClusterRole and binding when all namespaces are watched, else a Role
/// and RoleBinding in each watched namespace; and the leader-election Role in its own namespace.
pub fn operator_objects(opts: &InstallOptions) -> Vec<Value> {
    let mut out = Vec::new();
    let watched = rules(OPERATOR_PERMISSIONS, Scope::Watched);
    if opts.watch_namespaces.is_empty() {
        out.push(to_value(&ClusterRole {
            metadata: meta(OPERATOR_NAME, None, "rbac"),
            rules: Some(watched),
            aggregation_rule: None,
        }));
        out.push(to_value(&ClusterRoleBinding {
            metadata: meta(OPERATOR_NAME, None, "rbac"),
            role_ref: role_ref("ClusterRole", OPERATOR_NAME),
            subjects: Some(vec![subject(opts)]),
        }));
    } else {
        for ns in &opts.watch_namespaces {
            out.push(to_value(&Role {
                metadata: meta(OPERATOR_NAME, Some(ns), "rbac"),
                rules: Some(watched.clone()),
            }));
            out.push(to_value(&RoleBinding {
                metadata: meta(OPERATOR_NAME, Some(ns), "rbac"),
                role_ref: role_ref("Role", OPERATOR_NAME),
                subjects: Some(vec![subject(opts)]),
            }));
        }
    }
    let leader = format!("{OPERATOR_NAME}-leader-election");
    out.push(to_value(&Role {
        metadata: meta(&leader, Some(&opts.namespace), "rbac"),
        rules: Some(rules(OPERATOR_PERMISSIONS, Scope::OperatorNamespace)),
    }));
    out.push(to_value(&RoleBinding {
        metadata: meta(&leader, Some(&opts.namespace), "rbac"),
        role_ref: role_ref("Role", &leader),
        subjects: Some(vec![subject(opts)]),
    }));
    out
}

/// The `flink` ServiceAccount and its permissions in each watched namespace; when all
/// namespaces are watched, a ClusterRole to bind per namespace and the account in `default`.
pub fn flink_objects(opts: &InstallOptions) -> Vec<Value> {
    let rules = rules(FLINK_PERMISSIONS, Scope::Watched);
    let mut out = Vec::new();
    let namespaces: Vec<&str> = if opts.watch_namespaces.is_empty() {
        out.push(to_value(&ClusterRole {
            metadata: meta(FLINK_CLUSTER_ROLE, None, "flink"),
            rules: Some(rules.clone()),
            aggregation_rule: None,
        }));
        vec![DEFAULT_JOB_NAMESPACE]
    } else {
        opts.watch_namespaces.iter().map(String::as_str).collect()
    };
    for ns in namespaces {
        out.push(to_value(&ServiceAccount {
            metadata: meta(FLINK_ACCOUNT, Some(ns), "flink"),
            ..Default::default()
        }));
        let role_ref = if opts.watch_namespaces.is_empty() {
            role_ref("ClusterRole", FLINK_CLUSTER_ROLE)
        } else {
            out.push(to_value(&Role {
                metadata: meta(FLINK_ACCOUNT, Some(ns), "flink"),
                rules: Some(rules.clone()),
            }));
            role_ref("Role", FLINK_ACCOUNT)
        };
        out.push(to_value(&RoleBinding {
            metadata: meta(FLINK_ACCOUNT, Some(ns), "flink"),
            role_ref,
            subjects: Some(vec![Subject {
                kind: "ServiceAccount".into(),
                name: FLINK_ACCOUNT.into(),
                namespace: Some(ns.to_string()),
                api_group: None,
            }]),
        }));
    }
    out
}

/// Every `(group, resource, verb, name)` a permission list grants, for comparisons.
pub fn grants(
    permissions: &[Permission],
    scope: Scope,
) -> BTreeSet<(String, String, String, Option<String>)> {
    let mut out = BTreeSet::new();
    for p in permissions.iter().filter(|p| p.scope == scope) {
        for r in p.resources {
            for v in p.verbs {
                if p.names.is_empty() {
                    out.insert((p.group.into(), r.rule_name(), v.to_string(), None));
                }
                for n in p.names {
                    out.insert((
                        p.group.into(),
                        r.rule_name(),
                        v.to_string(),
                        Some(n.to_string()),
                    ));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_follows_rbac_matching() {
        let r = rules(OPERATOR_PERMISSIONS, Scope::OperatorNamespace);
        assert!(allows(&r, "coordination.k8s.io", "leases", "create", None));
        assert!(allows(
            &r,
            "coordination.k8s.io",
            "leases",
            "patch",
            Some(LEASE_NAME)
        ));
        assert!(!allows(
            &r,
            "coordination.k8s.io",
            "leases",
            "patch",
            Some("other")
        ));
        assert!(!allows(&r, "coordination.k8s.io", "leases", "get", None));
        assert!(!allows(&r, "", "leases", "create", None));
        let star = vec![PolicyRule {
            api_groups: Some(vec!["*".into()]),
            resources: Some(vec!["*".into()]),
            verbs: vec!["*".into()],
            ..Default::default()
        }];
        assert!(allows(&star, "apps", "deployments", "delete", Some("x")));
    }

    #[test]
    fn every_permission_says_why_and_names_real_verbs() {
        let known = [GET, LIST, WATCH, CREATE, UPDATE, PATCH, DELETE];
        for p in OPERATOR_PERMISSIONS.iter().chain(FLINK_PERMISSIONS) {
            assert!(p.why.len() > 20, "{p:?}");
            assert!(p.verbs.iter().all(|v| known.contains(v)), "{p:?}");
            assert!(!p.resources.is_empty(), "{p:?}");
            for r in p.resources {
                assert!(
                    r.sub.is_none_or(|s| ["status", "finalizers"].contains(&s)),
                    "{p:?}"
                );
            }
        }
    }
}
