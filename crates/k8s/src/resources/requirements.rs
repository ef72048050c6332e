//! CPU and memory of the JobManager and TaskManager containers: decided once here, then written
//! both into the container's requests/limits and into the Flink configuration, so Kubernetes
//! and Flink (which sizes its heap from the same numbers, and in native mode creates the
//! TaskManager pods itself) always agree.
//!
//! Precedence, as in the Apache operator: `resources.requests` (the Kubernetes form) when
//! `resources` is set, else `resource` (the operator's short form), else the plan, else the
//! Flink configuration, else Flink's defaults. Limit factors come from `resources.limits`
//! divided by `resources.requests` (Apache), else the Flink options, else 1.

use std::collections::BTreeMap;

use api::units::{MemorySize, parse_memory, parse_quantity, parse_resource_memory};
use api::{FlinkDeploymentSpec, FlinkVersion};
use engine::ClusterPlan;
use flink::config::FlinkConfig;
use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::ResourceError;
use super::labels::Component;
use super::options::Options;

/// Process memory of a JobManager when nothing sets it: the `jobmanager.memory.process.size`
/// of the `config.yaml` shipped with Flink.
const DEFAULT_JM_MEMORY: u64 = 1600 << 20;
/// Process memory of a TaskManager when nothing sets it (Flink's shipped `config.yaml`).
const DEFAULT_TM_MEMORY: u64 = 1728 << 20;

/// The size of one Flink process's container.
#[derive(Clone, Debug, PartialEq)]
pub struct ProcessResources {
    /// Which process.
    pub component: Component,
    /// Total process memory.
    pub memory: MemorySize,
    /// CPU cores requested.
    pub cpu: f64,
    /// `limits.cpu = cpu × cpu_limit_factor`.
    pub cpu_limit_factor: f64,
    /// `limits.memory = memory × memory_limit_factor`.
    pub memory_limit_factor: f64,
}

struct Keys {
    memory: &'static str,
    memory_fallbacks: [&'static str; 2],
    cpu: &'static str,
    cpu_legacy: &'static str,
    cpu_limit_factor: &'static str,
    memory_limit_factor: &'static str,
    spec_path: &'static str,
}

fn keys(component: Component) -> Keys {
    match component {
        Component::JobManager => Keys {
            memory: "jobmanager.memory.process.size",
            memory_fallbacks: [
                "jobmanager.memory.flink.size",
                "jobmanager.memory.heap.size",
            ],
            cpu: "kubernetes.jobmanager.cpu.amount",
            cpu_legacy: "kubernetes.jobmanager.cpu",
            cpu_limit_factor: "kubernetes.jobmanager.cpu.limit-factor",
            memory_limit_factor: "kubernetes.jobmanager.memory.limit-factor",
            spec_path: "spec.jobManager",
        },
        Component::TaskManager => Keys {
            memory: "taskmanager.memory.process.size",
            memory_fallbacks: [
                "taskmanager.memory.flink.size",
                "taskmanager.memory.task.heap.size",
            ],
            cpu: "kubernetes.taskmanager.cpu.amount",
            cpu_legacy: "kubernetes.taskmanager.cpu",
            cpu_limit_factor: "kubernetes.taskmanager.cpu.limit-factor",
            memory_limit_factor: "kubernetes.taskmanager.memory.limit-factor",
            spec_path: "spec.taskManager",
        },
    }
}

impl ProcessResources {
    /// Decides the size of `component` from the spec, the plan and the configuration.
    pub fn decide(
        component: Component,
        spec: &FlinkDeploymentSpec,
        plan: &ClusterPlan,
        config: &FlinkConfig,
        name: &str,
    ) -> Result<Self, ResourceError> {
        let k = keys(component);
        let options = Options(config);
        let invalid = |field: String, message: String| ResourceError::Invalid {
            name: name.to_string(),
            field,
            message,
        };
        let (resource, resources, process) = match component {
            Component::JobManager => {
                let jm = spec.job_manager.as_ref();
                (
                    jm.and_then(|j| j.resource.as_ref()),
                    jm.and_then(|j| j.resources.as_ref()),
                    &plan.jobmanager,
                )
            }
            Component::TaskManager => {
                let tm = spec.task_manager.as_ref();
                (
                    tm.and_then(|t| t.resource.as_ref()),
                    tm.and_then(|t| t.resources.as_ref()),
                    &plan.taskmanager,
                )
            }
        };
        let request = |kind: &str| {
            resources
                .and_then(|r| r.requests.as_ref())
                .and_then(|m| m.get(kind))
                .map(|q| q.0.clone())
        };
        let limit = |kind: &str| {
            resources
                .and_then(|r| r.limits.as_ref())
                .and_then(|m| m.get(kind))
                .map(|q| q.0.clone())
        };

        // memory: spec (resources wins over resource), plan, configuration, default
        let spec_memory = match resources {
            Some(_) => {
                request("memory").map(|m| (m, format!("{}.resources.requests.memory", k.spec_path)))
            }
            None => resource
                .and_then(|r| r.memory.clone())
                .map(|m| (m, format!("{}.resource.memory", k.spec_path))),
        };
        let memory = match spec_memory {
            Some((text, field)) => {
                parse_resource_memory(&text).map_err(|e| invalid(field, e.to_string()))?
            }
            None => match (process.memory_bytes, options.string(k.memory)) {
                (Some(bytes), _) => MemorySize::from_bytes(bytes),
                (None, Some(text)) => parse_memory(text).map_err(|e| {
                    invalid(
                        format!("spec.flinkConfiguration.{}", k.memory),
                        e.to_string(),
                    )
                })?,
                (None, None) => {
                    if let Some(other) = k
                        .memory_fallbacks
                        .iter()
                        .find(|f| options.string(f).is_some())
                    {
                        return Err(invalid(
                            format!("spec.flinkConfiguration.{other}"),
                            format!(
                                "the container is sized from the total process memory; set \
                                 {}.resource.memory (or {}) instead of only {other}",
                                k.spec_path, k.memory
                            ),
                        ));
                    }
                    MemorySize::from_bytes(match component {
                        Component::JobManager => DEFAULT_JM_MEMORY,
                        Component::TaskManager => DEFAULT_TM_MEMORY,
                    })
                }
            },
        };

        // CPU: spec, plan, configuration, default (JM: 1; TM: one per slot, as Flink does)
        let spec_cpu = match resources {
            Some(_) => match request("cpu") {
                Some(text) => Some(parse_quantity(&text).map_err(|e| {
                    invalid(
                        format!("{}.resources.requests.cpu", k.spec_path),
                        e.to_string(),
                    )
                })?),
                None => None,
            },
            None => resource.and_then(|r| r.cpu),
        };
        let cpu = spec_cpu
            .or(process.cpu)
            .or_else(|| options.f64(k.cpu).filter(|c| *c > 0.0))
            .or_else(|| options.f64(k.cpu_legacy).filter(|c| *c > 0.0))
            .unwrap_or(match component {
                Component::JobManager => 1.0,
                Component::TaskManager => f64::from(plan.task_slots.max(1)),
            });

        // limit factors: resources.limits / resources.requests, else the Flink options
        let factor = |kind: &str, key: &str| -> Result<f64, ResourceError> {
            if let (Some(req), Some(lim)) = (request(kind), limit(kind)) {
                let field = format!("{}.resources.limits.{kind}", k.spec_path);
                let (req, lim) = if kind == "memory" {
                    (
                        parse_resource_memory(&req).map(|m| m.bytes() as f64),
                        parse_resource_memory(&lim).map(|m| m.bytes() as f64),
                    )
                } else {
                    (parse_quantity(&req), parse_quantity(&lim))
                };
                let (req, lim) = (
                    req.map_err(|e| invalid(field.clone(), e.to_string()))?,
                    lim.map_err(|e| invalid(field.clone(), e.to_string()))?,
                );
                if req > 0.0 {
                    if lim < req {
                        return Err(invalid(
                            field,
                            format!("the limit must not be below the request ({kind})"),
                        ));
                    }
                    return Ok(lim / req);
                }
            }
            Ok(options.f64(key).filter(|f| *f >= 1.0).unwrap_or(1.0))
        };
        Ok(Self {
            component,
            memory,
            cpu,
            cpu_limit_factor: factor("cpu", k.cpu_limit_factor)?,
            memory_limit_factor: factor("memory", k.memory_limit_factor)?,
        })
    }

    /// The Flink options that carry these numbers, so Flink sizes the process as the container.
    pub fn config_entries(&self, version: FlinkVersion) -> Vec<(String, String)> {
        let k = keys(self.component);
        let mut out = vec![
            (k.memory.to_string(), self.memory.to_string()),
            (k.cpu.to_string(), java_double(self.cpu)),
        ];
        // Flink before 1.17 reads the CPU from the older key only
        if !version.is_at_least(FlinkVersion::v1_17) {
            out.push((k.cpu_legacy.to_string(), java_double(self.cpu)));
        }
        if self.cpu_limit_factor != 1.0 {
            out.push((
                k.cpu_limit_factor.to_string(),
                java_double(self.cpu_limit_factor),
            ));
        }
        if self.memory_limit_factor != 1.0 {
            out.push((
                k.memory_limit_factor.to_string(),
                java_double(self.memory_limit_factor),
            ));
        }
        out
    }

    /// `base` (the template's requirements: ephemeral storage, GPUs, … pass through) with CPU
    /// and memory requests and limits set from these numbers, as Flink's
    /// `KubernetesUtils.getResourceRequirements` writes them (`2048Mi`, `1.0`).
    pub fn requirements(&self, base: Option<ResourceRequirements>) -> ResourceRequirements {
        let mut r = base.unwrap_or_default();
        let memory_mb = self.memory.mebibytes();
        // truncation is what Flink does (`(int) (mb * factor)`)
        let memory_limit_mb = (memory_mb as f64 * self.memory_limit_factor) as u64;
        let requests = r.requests.get_or_insert_with(BTreeMap::new);
        requests.insert("cpu".into(), Quantity(java_double(self.cpu)));
        requests.insert("memory".into(), Quantity(format!("{memory_mb}Mi")));
        let limits = r.limits.get_or_insert_with(BTreeMap::new);
        limits.insert(
            "cpu".into(),
            Quantity(java_double(self.cpu * self.cpu_limit_factor)),
        );
        limits.insert("memory".into(), Quantity(format!("{memory_limit_mb}Mi")));
        r
    }
}

/// A number as Java's `Double.toString` writes it for ordinary values (`1.0`, `0.5`), which is
/// how Flink writes CPU quantities and factors.
fn java_double(v: f64) -> String {
    format!("{v:?}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::testing::plan_for;
    use api::FlinkDeployment;
    use api::{JobManagerSpec, Resource};

    fn jm(d: &FlinkDeployment) -> ProcessResources {
        let plan = plan_for(d);
        ProcessResources::decide(Component::JobManager, &plan.spec, &plan, &plan.config, "t")
            .unwrap()
    }

    fn requirements(json: serde_json::Value) -> ResourceRequirements {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn resources_requests_win_and_flink_memory_syntax_is_read_as_flink_does() {
        let mut d = FlinkDeployment::test("t");
        d.spec.job_manager = Some(JobManagerSpec {
            // `2048m` is 2048 MiB to Flink (Apache reads it so), not 2.048 bytes
            resources: Some(requirements(
                serde_json::json!({"requests": {"memory": "2048m", "cpu": "500m"}}),
            )),
            resource: Some(Resource {
                cpu: Some(4.0),
                memory: Some("1g".into()),
                ephemeral_storage: None,
            }),
            ..Default::default()
        });
        let r = jm(&d);
        assert_eq!(r.memory.mebibytes(), 2048);
        assert_eq!(r.cpu, 0.5);
        let req = r.requirements(None);
        assert_eq!(req.requests.as_ref().unwrap()["memory"].0, "2048Mi");
        assert_eq!(req.requests.as_ref().unwrap()["cpu"].0, "0.5");
        assert_eq!(req.limits.as_ref().unwrap()["memory"].0, "2048Mi");
    }

    #[test]
    fn limits_over_requests_become_limit_factors_in_config_and_container() {
        let mut d = FlinkDeployment::test("t");
        d.spec.job_manager = Some(JobManagerSpec {
            resources: Some(requirements(serde_json::json!({
                "requests": {"memory": "1Gi", "cpu": "1"},
                "limits": {"memory": "2Gi", "cpu": "2", "nvidia.com/gpu": "1"}}))),
            ..Default::default()
        });
        let r = jm(&d);
        assert_eq!(r.cpu_limit_factor, 2.0);
        assert_eq!(r.memory_limit_factor, 2.0);
        let entries: BTreeMap<_, _> = r.config_entries(FlinkVersion::v2_3).into_iter().collect();
        assert_eq!(entries["jobmanager.memory.process.size"], "1 gb");
        assert_eq!(entries["kubernetes.jobmanager.cpu.amount"], "1.0");
        assert_eq!(entries["kubernetes.jobmanager.cpu.limit-factor"], "2.0");
        let base = requirements(
            serde_json::json!({"limits": {"nvidia.com/gpu": "1"}, "requests": {"ephemeral-storage": "1Gi", "cpu": "7"}}),
        );
        let req = r.requirements(Some(base));
        assert_eq!(req.limits.as_ref().unwrap()["memory"].0, "2048Mi");
        assert_eq!(req.limits.as_ref().unwrap()["cpu"].0, "2.0");
        assert_eq!(
            req.limits.as_ref().unwrap()["nvidia.com/gpu"].0,
            "1",
            "other resources pass through"
        );
        assert_eq!(req.requests.as_ref().unwrap()["ephemeral-storage"].0, "1Gi");
        assert_eq!(
            req.requests.as_ref().unwrap()["cpu"].0,
            "1.0",
            "CPU is Flink's, not the template's"
        );
    }

    #[test]
    fn flink_before_1_17_also_gets_the_old_cpu_key() {
        let d = FlinkDeployment::test("t");
        let keys: Vec<String> = jm(&d)
            .config_entries(FlinkVersion::v1_16)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert!(
            keys.contains(&"kubernetes.jobmanager.cpu".to_string()),
            "{keys:?}"
        );
    }

    #[test]
    fn heap_only_memory_settings_are_refused_with_the_key_named() {
        let mut d = FlinkDeployment::test("t").with_config("jobmanager.memory.heap.size", "1g");
        d.spec.job_manager = None;
        let plan = plan_for(&d);
        let e =
            ProcessResources::decide(Component::JobManager, &plan.spec, &plan, &plan.config, "t")
                .unwrap_err();
        assert!(e.to_string().contains("jobmanager.memory.heap.size"), "{e}");
    }
}
