//! Rules for a `FlinkDeployment` on its own.

use k8s_openapi::api::core::v1::ResourceRequirements;

use super::job::{Owner, check_config, check_job, ha_enabled};
use super::{Problem, config_path};
use crate::names::DeploymentName;
use crate::units::{parse_quantity, parse_resource_memory};
use crate::{FlinkDeployment, FlinkVersion, IngressSpec, Resource};

/// Keys the operator sets itself; a user value would point the cluster at the wrong place.
const FORBIDDEN_KEYS: &[(&str, &str)] = &[
    (
        "kubernetes.namespace",
        "the namespace is the resource's own (metadata.namespace)",
    ),
    (
        "kubernetes.cluster-id",
        "the cluster id is the resource's name (metadata.name)",
    ),
    (
        "high-availability.cluster-id",
        "the HA cluster id is derived from the resource's name",
    ),
];

/// Log configuration files the Flink images read.
const LOG_CONFIG_FILES: &[&str] = &["log4j-console.properties", "logback-console.xml"];

pub(super) fn validate(d: &FlinkDeployment) -> Vec<Problem> {
    let mut out = Vec::new();
    let spec = &d.spec;
    let config = spec.flink_config();

    match d.metadata.name.as_deref() {
        None => out.push(Problem::new("metadata.name", "the resource needs a name")),
        Some(name) => {
            if let Err(e) = DeploymentName::parse(name) {
                out.push(Problem::new("metadata.name", e.to_string()));
            }
        }
    }

    match spec.flink_version {
        None => out.push(Problem::new(
            "spec.flinkVersion",
            format!(
                "the Flink version of the image is required; set it, e.g. `{}`",
                FlinkVersion::v2_3
            ),
        )),
        Some(v) if !v.is_supported() => out.push(Problem::new(
            "spec.flinkVersion",
            format!(
                "Flink {v} is not supported; use {} or newer (and an image of that version)",
                FlinkVersion::OLDEST_SUPPORTED
            ),
        )),
        Some(_) => {}
    }

    if spec
        .service_account
        .as_deref()
        .is_none_or(|s| s.trim().is_empty())
    {
        out.push(Problem::new(
            "spec.serviceAccount",
            "the service account of the Flink pods is required; set it to one allowed to manage \
             the cluster's pods and config maps (the Helm chart creates `flink`)",
        ));
    }

    for (key, why) in FORBIDDEN_KEYS {
        if config.contains(key) {
            out.push(Problem::new(
                config_path(key),
                format!("remove this key: {why}"),
            ));
        }
    }
    // Rollbacks do not need high availability here (the Apache operator requires it): the
    // engine rolls back from the newest checkpoint or savepoint it can prove on storage.
    let health = "kubernetes.operator.cluster.health-check.enabled";
    let recovery = "kubernetes.operator.jm-deployment-recovery.enabled";
    if config.get_bool(health).ok().flatten() == Some(true)
        && config.get_bool(recovery).ok().flatten() == Some(false)
    {
        out.push(Problem::new(
            config_path(recovery),
            format!("the cluster health check ({health}) restarts clusters through deployment recovery; enable this key or disable the health check"),
        ));
    }
    check_config(config, &mut out);

    if let Some(ingress) = &spec.ingress {
        check_ingress(ingress, d, &mut out);
    }

    for file in spec.log_configuration.iter().flat_map(|m| m.keys()) {
        if !LOG_CONFIG_FILES.contains(&file.as_str()) {
            out.push(Problem::new(
                format!("spec.logConfiguration.{file}"),
                format!(
                    "unknown log configuration file; use one of: {}",
                    LOG_CONFIG_FILES.join(", ")
                ),
            ));
        }
    }

    let tm_replicas = spec.task_manager_replicas();
    if let Some(job) = &spec.job {
        check_job(job, Owner::Application, tm_replicas, Some(config), &mut out);
    }

    if let Some(jm) = &spec.job_manager {
        if let Some(r) = &jm.resource {
            check_resource("spec.jobManager.resource", r, &mut out);
        }
        if let Some(r) = &jm.resources {
            check_requirements("spec.jobManager.resources", r, &mut out);
        }
        match jm.replicas() {
            n if n < 1 => out.push(Problem::new(
                "spec.jobManager.replicas",
                format!("at least one JobManager is needed (it is {n}); set 1, or more with high availability"),
            )),
            n if n > 1 && !ha_enabled(config) => out.push(Problem::new(
                "spec.jobManager.replicas",
                format!("{n} JobManagers need high availability for the standbys to take over; set high-availability.type (e.g. `kubernetes`) and high-availability.storageDir, or use 1 replica"),
            )),
            _ => {}
        }
    }
    if let Some(tm) = &spec.task_manager {
        if let Some(r) = &tm.resource {
            check_resource("spec.taskManager.resource", r, &mut out);
        }
        if let Some(r) = &tm.resources {
            check_requirements("spec.taskManager.resources", r, &mut out);
        }
        if let Some(n) = tm.replicas.filter(|n| *n < 1) {
            out.push(Problem::new(
                "spec.taskManager.replicas",
                format!("at least one TaskManager is needed (it is {n}); set 1 or more, or leave it out to size by parallelism"),
            ));
        }
    }
    out
}

fn check_ingress(ingress: &IngressSpec, d: &FlinkDeployment, out: &mut Vec<Problem>) {
    let Some(template) = ingress.template.as_deref().filter(|t| !t.trim().is_empty()) else {
        out.push(Problem::new(
            "spec.ingress.template",
            "an ingress needs a template for its host and/or path, e.g. \
             `{{name}}.{{namespace}}.example.com` or `/{{namespace}}/{{name}}(/|$)(.*)`",
        ));
        return;
    };
    let url = template
        .replace("{{name}}", d.metadata.name.as_deref().unwrap_or("name"))
        .replace(
            "{{namespace}}",
            d.metadata.namespace.as_deref().unwrap_or("default"),
        );
    let host = url.split('/').next().unwrap_or("");
    let problem = if url.contains("{{") {
        Some(
            "only {{name}} and {{namespace}} are replaced in the template; remove other placeholders",
        )
    } else if url.chars().any(char::is_whitespace) {
        Some("the template must not contain whitespace")
    } else if !host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == ':' || c == '*')
    {
        Some(
            "the host part (before the first '/') may only hold letters, digits, '-', '.' and a ':port'",
        )
    } else {
        None
    };
    if let Some(why) = problem {
        out.push(Problem::new(
            "spec.ingress.template",
            format!("`{template}` is not a valid ingress template: {why}"),
        ));
    }
}

fn check_resource(path: &str, r: &Resource, out: &mut Vec<Problem>) {
    if let Some(memory) = &r.memory
        && let Err(e) = parse_resource_memory(memory)
    {
        out.push(Problem::new(format!("{path}.memory"), e.to_string()));
    }
    if let Some(storage) = &r.ephemeral_storage {
        match parse_quantity(storage) {
            Ok(v) if v >= 0.0 => {}
            Ok(_) => out.push(Problem::new(
                format!("{path}.ephemeralStorage"),
                "must not be negative",
            )),
            Err(e) => out.push(Problem::new(
                format!("{path}.ephemeralStorage"),
                e.to_string(),
            )),
        }
    }
    if let Some(cpu) = r.cpu
        && !(cpu > 0.0 && cpu.is_finite())
    {
        out.push(Problem::new(
            format!("{path}.cpu"),
            format!("CPU must be more than 0 (it is {cpu}); use e.g. 0.5 or 2"),
        ));
    }
}

fn check_requirements(path: &str, r: &ResourceRequirements, out: &mut Vec<Problem>) {
    for (kind, map) in [("limits", &r.limits), ("requests", &r.requests)] {
        for (name, q) in map.iter().flatten() {
            let p = format!("{path}.{kind}.{name}");
            match parse_quantity(&q.0) {
                Ok(v) if v >= 0.0 => {}
                Ok(_) => out.push(Problem::new(p, "a resource quantity must not be negative")),
                Err(e) => out.push(Problem::new(p, e.to_string())),
            }
        }
    }
}
