//! The ConfigMaps of a cluster: `flink-config-<name>` with the Flink configuration file and the
//! log configuration (Flink's `FlinkConfMountDecorator`), and in native mode
//! `pod-template-<name>` with the TaskManager pod template the JobManager creates TaskManager
//! pods from (Flink's `PodTemplateMountDecorator`), plus the volumes that mount them.

use std::collections::BTreeMap;

use api::FlinkVersion;
use flink::config::FlinkConfig;
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, KeyToPath, Volume, VolumeMount,
};

use super::ResourceError;
use super::options::Options;

/// Name of the config volume in pods (Flink's `FLINK_CONF_VOLUME`).
pub const CONFIG_VOLUME: &str = "flink-config-volume";
/// Where the configuration is mounted when `kubernetes.flink.conf.dir` is not set.
pub const DEFAULT_CONF_DIR: &str = "/opt/flink/conf";
/// Name of the pod template volume (Flink's `POD_TEMPLATE_VOLUME`).
pub const POD_TEMPLATE_VOLUME: &str = "pod-template-volume";
/// Where the JobManager reads the TaskManager pod template (a fixed path in Flink).
pub const POD_TEMPLATE_DIR: &str = "/opt/flink/pod-template";
/// The TaskManager pod template's file name (Flink's `TASK_MANAGER_POD_TEMPLATE_FILE_NAME`).
pub const TASK_MANAGER_POD_TEMPLATE_FILE: &str = "taskmanager-pod-template.yaml";

/// The configuration file Flink `version` reads: `config.yaml` (standard YAML) since Flink 1.19,
/// `flink-conf.yaml` (Flink's line-based `key: value` format) before.
pub fn config_file_name(version: FlinkVersion) -> &'static str {
    if version.is_at_least(FlinkVersion::v1_19) {
        "config.yaml"
    } else {
        "flink-conf.yaml"
    }
}

/// The configuration file's text in the syntax `version` reads.
///
/// `flink-conf.yaml` cannot hold a value with a line break or a `#` (Flink's old reader cuts
/// the line there), so such a value is refused, naming its key but never its value.
pub fn render_config(
    config: &FlinkConfig,
    version: FlinkVersion,
    name: &str,
) -> Result<String, ResourceError> {
    if version.is_at_least(FlinkVersion::v1_19) {
        return Ok(config.to_yaml());
    }
    let mut out = String::new();
    for (key, value) in config.iter() {
        if value.contains(['\n', '\r', '#']) || key.contains([':', '#', '\n']) {
            return Err(ResourceError::Invalid {
                name: name.to_string(),
                field: format!("spec.flinkConfiguration.{key}"),
                message: format!(
                    "Flink {version} reads flink-conf.yaml, which cannot hold a line break or \
                     `#` in a value; remove them or use Flink 1.19 or newer"
                ),
            });
        }
        out.push_str(key);
        out.push_str(": ");
        out.push_str(value.trim());
        out.push('\n');
    }
    Ok(out)
}

/// The data of `flink-config-<name>`: the log configuration files and the configuration file.
pub fn config_data(
    config_text: String,
    version: FlinkVersion,
    log_files: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut data = log_files.clone();
    data.insert(config_file_name(version).to_string(), config_text);
    data
}

/// A ConfigMap named `name` with `data`.
pub fn config_map(
    name: String,
    meta: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    data: BTreeMap<String, String>,
) -> ConfigMap {
    ConfigMap {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some(name),
            ..meta
        },
        data: Some(data),
        ..Default::default()
    }
}

/// The volume mounting the configuration and log files from `config_map`: only those keys,
/// log files first, as Flink lists them.
pub fn config_volume(
    config_map: &str,
    version: FlinkVersion,
    log_files: &BTreeMap<String, String>,
) -> Volume {
    let mut items: Vec<KeyToPath> = log_files
        .keys()
        .map(|k| KeyToPath {
            key: k.clone(),
            path: k.clone(),
            ..Default::default()
        })
        .collect();
    let file = config_file_name(version);
    items.push(KeyToPath {
        key: file.into(),
        path: file.into(),
        ..Default::default()
    });
    Volume {
        name: CONFIG_VOLUME.into(),
        config_map: Some(ConfigMapVolumeSource {
            name: config_map.to_string(),
            items: Some(items),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The mount of the config volume: `kubernetes.flink.conf.dir`, by default `/opt/flink/conf`.
pub fn config_mount(config: &FlinkConfig) -> VolumeMount {
    VolumeMount {
        name: CONFIG_VOLUME.into(),
        mount_path: Options(config)
            .string("kubernetes.flink.conf.dir")
            .unwrap_or(DEFAULT_CONF_DIR)
            .to_string(),
        ..Default::default()
    }
}

/// The volume with the TaskManager pod template from `config_map`.
pub fn pod_template_volume(config_map: &str) -> Volume {
    Volume {
        name: POD_TEMPLATE_VOLUME.into(),
        config_map: Some(ConfigMapVolumeSource {
            name: config_map.to_string(),
            items: Some(vec![KeyToPath {
                key: TASK_MANAGER_POD_TEMPLATE_FILE.into(),
                path: TASK_MANAGER_POD_TEMPLATE_FILE.into(),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The mount of the pod template volume, where Flink's JobManager looks for it.
pub fn pod_template_mount() -> VolumeMount {
    VolumeMount {
        name: POD_TEMPLATE_VOLUME.into(),
        mount_path: POD_TEMPLATE_DIR.into(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_yaml_from_flink_1_19_and_flink_conf_yaml_before() {
        assert_eq!(config_file_name(FlinkVersion::v1_18), "flink-conf.yaml");
        assert_eq!(config_file_name(FlinkVersion::v1_19), "config.yaml");
        assert_eq!(config_file_name(FlinkVersion::v2_3), "config.yaml");
    }

    #[test]
    fn each_file_is_rendered_in_the_syntax_its_reader_expects() {
        let c = FlinkConfig::new()
            .with("taskmanager.numberOfTaskSlots", "2")
            .with("$internal.application.program-args", "a;'b c'");
        assert_eq!(
            render_config(&c, FlinkVersion::v1_18, "x").unwrap(),
            "$internal.application.program-args: a;'b c'\ntaskmanager.numberOfTaskSlots: 2\n"
        );
        assert_eq!(
            render_config(&c, FlinkVersion::v1_20, "x").unwrap(),
            "\"$internal.application.program-args\": \"a;'b c'\"\ntaskmanager.numberOfTaskSlots: \"2\"\n"
        );
    }

    #[test]
    fn values_flink_conf_yaml_cannot_hold_are_refused_without_showing_them() {
        let c = FlinkConfig::new().with("s3.secret-key", "abc#def");
        let e = render_config(&c, FlinkVersion::v1_18, "x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("s3.secret-key"), "{e}");
        assert!(!e.contains("abc"), "{e}");
        assert!(render_config(&c, FlinkVersion::v1_19, "x").is_ok());
    }
}
