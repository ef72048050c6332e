//! A cluster's conf dir: the Flink configuration the plan asks for, on top of the
//! distribution's defaults, plus what only a local cluster needs (localhost addresses, its own
//! ports and temp dirs, small memory when the plan sets none).
//!
//! Layers, later wins:
//! 1. the distribution's `conf/config.yaml` (its JVM flags for Java 17, failover strategy, …),
//!    without its memory sizes;
//! 2. local defaults, each only when the plan's config does not set the option (or one of the
//!    options that replace it): memory, slots, parallelism, checkpoint and savepoint dirs;
//! 3. the plan's config — authoritative for everything Flink does;
//! 4. local necessities, always: bind to 127.0.0.1, the cluster's ports, its temp dirs, and
//!    the JVM flags (the distribution's, the plan's, then ours).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use engine::ClusterPlan;
use flink::config::FlinkConfig;

use crate::homes::FlinkHome;
use crate::ports::Ports;
use crate::runtime::ClusterPaths;

/// JobManager process size when the plan sets no JobManager memory. The smallest size whose
/// derived heap (≈192 MiB after metaspace, off-heap and JVM overhead minimums) runs a job's
/// `main()` and the scheduler reliably; the testkit's clusters use the same.
pub const DEFAULT_JOBMANAGER_MEMORY: &str = "768m";
/// TaskManager process size when the plan sets no TaskManager memory: the smallest size for
/// which Flink's minimum framework, network and managed memory still leave task heap.
pub const DEFAULT_TASKMANAGER_MEMORY: &str = "1024m";

/// Options any of which sizes the JobManager's memory.
const JOBMANAGER_MEMORY_KEYS: &[&str] = &[
    "jobmanager.memory.process.size",
    "jobmanager.memory.flink.size",
    "jobmanager.memory.heap.size",
];
/// Options any of which sizes the TaskManager's memory.
const TASKMANAGER_MEMORY_KEYS: &[&str] = &[
    "taskmanager.memory.process.size",
    "taskmanager.memory.flink.size",
    "taskmanager.memory.task.heap.size",
];
/// Where checkpoints go, newest key first.
const CHECKPOINT_DIR_KEYS: &[&str] = &["execution.checkpointing.dir", "state.checkpoints.dir"];
/// Where savepoints go, newest key first.
const SAVEPOINT_DIR_KEYS: &[&str] = &[
    "execution.checkpointing.savepoint-dir",
    "state.savepoints.dir",
];
/// Addresses a local cluster binds and announces: loopback only.
const ADDRESS_KEYS: &[&str] = &[
    "jobmanager.rpc.address",
    "jobmanager.bind-host",
    "taskmanager.host",
    "taskmanager.bind-host",
    "rest.address",
    "rest.bind-address",
];
const JVM_OPTS_KEY: &str = "env.java.opts.all";

/// The effective configuration of a local cluster.
pub(crate) fn render_config(
    plan: &ClusterPlan,
    home: &FlinkHome,
    paths: &ClusterPaths,
    data_dir: &Path,
    ports: Ports,
) -> Result<FlinkConfig, String> {
    let wanted = &plan.config;
    let mut config = distribution_config(home)?;
    let dist_jvm_opts = config.remove(JVM_OPTS_KEY).unwrap_or_default();
    for key in JOBMANAGER_MEMORY_KEYS.iter().chain(TASKMANAGER_MEMORY_KEYS) {
        config.remove(key);
    }

    let sets_any = |keys: &[&str]| keys.iter().any(|k| wanted.get(k).is_some());
    let mut default = |key: &str, value: String| {
        if wanted.get(key).is_none() {
            config.set(key, value);
        }
    };
    if !sets_any(JOBMANAGER_MEMORY_KEYS) {
        default(
            JOBMANAGER_MEMORY_KEYS[0],
            plan.jobmanager
                .memory_bytes
                .map_or_else(|| DEFAULT_JOBMANAGER_MEMORY.to_string(), memory_size),
        );
    }
    if !sets_any(TASKMANAGER_MEMORY_KEYS) {
        default(
            TASKMANAGER_MEMORY_KEYS[0],
            plan.taskmanager
                .memory_bytes
                .map_or_else(|| DEFAULT_TASKMANAGER_MEMORY.to_string(), memory_size),
        );
    }
    default(
        "taskmanager.numberOfTaskSlots",
        plan.task_slots.max(1).to_string(),
    );
    if let Some(job) = &plan.job {
        default("parallelism.default", job.parallelism.max(1).to_string());
    }
    // Flink before 1.20 reads only the `state.*` keys.
    let new_keys = home.major_minor().is_none_or(|v| v >= (1, 20));
    let pick = |keys: &'static [&'static str]| if new_keys { keys[0] } else { keys[1] };
    if !sets_any(CHECKPOINT_DIR_KEYS) {
        default(
            pick(CHECKPOINT_DIR_KEYS),
            file_uri(&data_dir.join("checkpoints")),
        );
    }
    if !sets_any(SAVEPOINT_DIR_KEYS) {
        default(
            pick(SAVEPOINT_DIR_KEYS),
            file_uri(&data_dir.join("savepoints")),
        );
    }

    config.extend(wanted.iter());
    drop_kubernetes_ha(&mut config, &plan.key);

    for key in ADDRESS_KEYS {
        config.set(*key, "127.0.0.1");
    }
    config.set("rest.port", ports.rest.to_string());
    config.set("rest.bind-port", ports.rest.to_string());
    config.set("jobmanager.rpc.port", ports.rpc.to_string());
    config.set("blob.server.port", ports.blob.to_string());
    let tmp = paths.tmp();
    config.set("io.tmp.dirs", tmp.display().to_string());
    config.set("web.tmpdir", tmp.join("web").display().to_string());
    // The JVM keeps its temp files in the cluster's dir and writes no hsperfdata (which a
    // SIGKILL would leave behind in /tmp).
    let jvm_opts = [
        dist_jvm_opts.as_str(),
        wanted.get(JVM_OPTS_KEY).unwrap_or_default(),
        &format!("-XX:-UsePerfData -Djava.io.tmpdir={}", tmp.display()),
    ]
    .iter()
    .filter(|s| !s.trim().is_empty())
    .map(|s| s.trim())
    .collect::<Vec<_>>()
    .join(" ");
    config.set(JVM_OPTS_KEY, jvm_opts);
    Ok(config)
}

/// Kubernetes HA services need a Kubernetes API; a local cluster runs without HA instead
/// (last-state upgrades then use the retained checkpoints on disk), so manifests written for
/// Kubernetes run here unchanged.
fn drop_kubernetes_ha(config: &mut FlinkConfig, key: &engine::ResourceKey) {
    let kubernetes = ["high-availability.type", "high-availability"]
        .iter()
        .filter_map(|k| config.get(k))
        .any(|v| {
            let v = v.trim().to_ascii_lowercase();
            v == "kubernetes" || v.contains("kuberneteshaservicesfactory")
        });
    if !kubernetes {
        return;
    }
    let ha_keys: Vec<String> = config
        .iter()
        .map(|(k, _)| k.to_string())
        .filter(|k| k == "high-availability" || k.starts_with("high-availability."))
        .collect();
    for key in &ha_keys {
        config.remove(key);
    }
    tracing::warn!(
        cluster = %key,
        "Kubernetes high availability cannot run locally; the local cluster runs without HA"
    );
}

/// Writes the conf dir: the distribution's log configurations, the plan's own log
/// configuration files over them, and the Flink configuration. Private to the user (it may
/// hold credentials).
pub(crate) fn write_conf_dir(
    plan: &ClusterPlan,
    home: &FlinkHome,
    conf: &Path,
    config: &FlinkConfig,
) -> Result<(), String> {
    let io = |what: &str, path: &Path| {
        let what = format!("cannot {what} {}", path.display());
        move |e: std::io::Error| format!("{what}: {e}")
    };
    if conf.exists() {
        std::fs::remove_dir_all(conf).map_err(io("clear", conf))?;
    }
    std::fs::create_dir_all(conf).map_err(io("create", conf))?;
    std::fs::set_permissions(conf, std::fs::Permissions::from_mode(0o700))
        .map_err(io("restrict", conf))?;
    let dist_conf = home.conf_dir();
    for entry in std::fs::read_dir(&dist_conf).map_err(io("list", &dist_conf))? {
        let entry = entry.map_err(io("list", &dist_conf))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_log_config = (name.starts_with("log4j") && name.ends_with(".properties"))
            || (name.starts_with("logback") && name.ends_with(".xml"));
        if is_log_config {
            std::fs::copy(entry.path(), conf.join(&name)).map_err(io("copy", &entry.path()))?;
        }
    }
    for (name, content) in &plan.log_configuration {
        if !is_plain_file_name(name) {
            return Err(format!(
                "spec.logConfiguration key {name:?} is not a plain file name"
            ));
        }
        let path = conf.join(name);
        std::fs::write(&path, content).map_err(io("write", &path))?;
    }
    let legacy = home.major_minor().is_some_and(|v| v < (1, 19));
    let (file, text) = if legacy {
        ("flink-conf.yaml", legacy_yaml(config))
    } else {
        ("config.yaml", config.to_yaml())
    };
    let path = conf.join(file);
    std::fs::write(&path, text).map_err(io("write", &path))?;
    Ok(())
}

/// The distribution's default options, flattened (`a: {b: 1}` → `a.b = 1`).
fn distribution_config(home: &FlinkHome) -> Result<FlinkConfig, String> {
    read_conf_dir(&home.conf_dir())
}

/// The options of a conf dir we rendered, or none when it cannot be read (for masking
/// secrets in its logs).
pub(crate) fn read_config(conf: &Path) -> FlinkConfig {
    read_conf_dir(conf).unwrap_or_default()
}

/// The options of `config.yaml` (or the legacy `flink-conf.yaml`) in `conf`, flattened.
fn read_conf_dir(conf: &Path) -> Result<FlinkConfig, String> {
    let (path, text) = ["config.yaml", "flink-conf.yaml"]
        .iter()
        .find_map(|f| {
            let p = conf.join(f);
            std::fs::read_to_string(&p).ok().map(|t| (p, t))
        })
        .ok_or_else(|| format!("{} holds no config.yaml or flink-conf.yaml", conf.display()))?;
    if path.ends_with("flink-conf.yaml") {
        return Ok(parse_legacy_yaml(&text));
    }
    let value: serde_json::Value = serde_saphyr::from_str(&text)
        .map_err(|e| format!("{} is not valid YAML: {e}", path.display()))?;
    let value = if value.is_null() {
        serde_json::Value::Object(Default::default())
    } else {
        value
    };
    let options: api::FlinkConfiguration = serde_json::from_value(value)
        .map_err(|e| format!("{} is not a map of options: {e}", path.display()))?;
    Ok(options.flatten().into_iter().collect())
}

/// `flink-conf.yaml` of Flink before 1.19: one `key: value` per line, read verbatim (no YAML
/// quoting or escapes).
fn parse_legacy_yaml(text: &str) -> FlinkConfig {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.trim(), v.trim()))
        .filter(|(k, _)| !k.is_empty())
        .collect()
}

fn legacy_yaml(config: &FlinkConfig) -> String {
    config
        .iter()
        .map(|(k, v)| format!("{k}: {}\n", v.replace('\n', " ")))
        .collect()
}

fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty() && !name.starts_with('.') && !name.contains('/') && !name.contains('\0')
}

/// A byte count in Flink's memory syntax, in MiB when it is a whole number of them.
fn memory_size(bytes: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if bytes.is_multiple_of(MIB) {
        format!("{}m", bytes / MIB)
    } else {
        format!("{bytes}b")
    }
}

pub(crate) fn file_uri(path: &Path) -> String {
    format!("file://{}", path.display())
}

#[cfg(test)]
mod tests;
