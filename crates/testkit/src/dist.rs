//! A Flink distribution, provisioned by `scripts/setup-flink` once per process and version.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, PoisonError};

use flink::config::FlinkConfig;
use serde_json::Value;

use crate::repo_root;

/// Flink 2.3, the default version.
pub const FLINK_2_3: &str = "2.3.0";
/// Flink 1.20, the other supported version.
pub const FLINK_1_20: &str = "1.20.5";
/// Every version flinkpilot supports; tests that must hold on all of them iterate over this.
pub const SUPPORTED_VERSIONS: [&str; 2] = [FLINK_2_3, FLINK_1_20];
/// Environment variable that picks the version [`FlinkDist::get_default`] returns.
pub const DEFAULT_VERSION_ENV: &str = "FLINKPILOT_FLINK_VERSION";

/// An installed Flink distribution (`FLINK_HOME` with `bin/`, `conf/`, `lib/`).
#[derive(Debug)]
pub struct FlinkDist {
    /// The full version, e.g. `2.3.0`, read from the distribution's `flink-dist` jar.
    pub version: String,
    /// `FLINK_HOME`.
    pub home: PathBuf,
}

impl FlinkDist {
    /// `$FLINKPILOT_FLINK_VERSION`, else [`FLINK_2_3`].
    pub fn default_version() -> String {
        std::env::var(DEFAULT_VERSION_ENV)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .unwrap_or_else(|| FLINK_2_3.to_string())
    }

    /// The distribution of [`FlinkDist::default_version`].
    pub fn get_default() -> &'static FlinkDist {
        Self::get(&Self::default_version())
    }

    /// The distribution of `version` (`2.3.0`, `1.20`, …), installed by `scripts/setup-flink`
    /// on first use in this process (a fast no-op when the shared cache already has it).
    ///
    /// # Panics
    /// When the script fails (no network, no Java and no way to install it, …), with its
    /// output: tests fail loudly instead of skipping.
    pub fn get(version: &str) -> &'static FlinkDist {
        static DISTS: Mutex<Option<HashMap<String, &'static FlinkDist>>> = Mutex::new(None);
        // A panic while provisioning poisons the lock; the map itself stays consistent.
        let mut dists = DISTS.lock().unwrap_or_else(PoisonError::into_inner);
        let dists = dists.get_or_insert_with(HashMap::new);
        if let Some(dist) = dists.get(version) {
            return dist;
        }
        let dist: &'static FlinkDist = Box::leak(Box::new(Self::provision(version)));
        dists.insert(version.to_string(), dist);
        dist
    }

    fn provision(version: &str) -> FlinkDist {
        let script = repo_root().join("scripts/setup-flink");
        let out = Command::new(&script)
            .arg(version)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "scripts/setup-flink {version} failed ({}); a Flink distribution is required for this \
             test:\n{stderr}",
            out.status
        );
        let home = PathBuf::from(stdout.trim());
        let actual = dist_version(&home);
        FlinkDist {
            version: actual,
            home,
        }
    }

    /// A script under `bin/`, e.g. `bin("jobmanager.sh")`.
    pub fn bin(&self, script: &str) -> PathBuf {
        self.home.join("bin").join(script)
    }

    /// `lib/`, the jars jobs are compiled against.
    pub fn lib_dir(&self) -> PathBuf {
        self.home.join("lib")
    }

    /// `conf/`, the distribution's default configuration.
    pub fn conf_dir(&self) -> PathBuf {
        self.home.join("conf")
    }

    /// The major version: 1 or 2.
    pub fn major(&self) -> u32 {
        self.version
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or_else(|| {
                panic!(
                    "Flink version {:?} does not start with a number",
                    self.version
                )
            })
    }

    /// The options of the distribution's own `conf/config.yaml`, flattened to dotted keys.
    /// They carry version-specific defaults (e.g. the `--add-opens` JVM flags Java 17 needs).
    pub fn default_config(&self) -> FlinkConfig {
        let path = self.conf_dir().join("config.yaml");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let value: Value = serde_saphyr::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()));
        let mut config = FlinkConfig::new();
        flatten("", &value, &mut config);
        config
    }
}

/// The version in the name of `lib/flink-dist-<version>.jar`.
fn dist_version(home: &Path) -> String {
    let lib = home.join("lib");
    let entries = std::fs::read_dir(&lib)
        .unwrap_or_else(|e| panic!("{} is not a Flink distribution: {e}", home.display()));
    entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .find_map(|name| {
            let version = name.strip_prefix("flink-dist-")?.strip_suffix(".jar")?;
            Some(version.to_string())
        })
        .unwrap_or_else(|| panic!("{} holds no flink-dist-<version>.jar", lib.display()))
}

/// Nested YAML maps become dotted keys, lists become Flink's `a;b` form.
fn flatten(prefix: &str, value: &Value, out: &mut FlinkConfig) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                let key = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(&key, value, out);
            }
        }
        Value::Null => {}
        Value::String(s) => {
            out.set(prefix, s.as_str());
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(scalar).collect();
            out.set(prefix, items.join(";"));
        }
        other => {
            out.set(prefix, scalar(other));
        }
    }
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flatten_turns_nested_maps_into_dotted_keys() {
        let value: Value = serde_saphyr::from_str(
            "jobmanager:\n  rpc:\n    port: 6123\n  bind-host: localhost\nflat.key: true\nlist: [a, b]\n",
        )
        .unwrap();
        let mut config = FlinkConfig::new();
        flatten("", &value, &mut config);
        assert_eq!(config.get("jobmanager.rpc.port"), Some("6123"));
        assert_eq!(config.get("jobmanager.bind-host"), Some("localhost"));
        assert_eq!(config.get("flat.key"), Some("true"));
        assert_eq!(config.get("list"), Some("a;b"));
        assert_eq!(config.len(), 4);
    }
}
