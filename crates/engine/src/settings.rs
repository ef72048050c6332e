//! Settings of the engine that do not come from a resource: timing, and how paths written for a
//! container image map onto the machine the clusters run on.

use std::collections::BTreeMap;
use std::time::Duration;

/// Engine-wide settings, the same for every resource a controller reconciles.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// How often a steady resource is observed (job state, JobManager health).
    pub observe_interval: Duration,
    /// How soon the next pass runs while a transition is in flight (deploying, stopping,
    /// a savepoint running).
    pub transition_interval: Duration,
    /// How long to wait before retrying a step that failed or was refused (a failed savepoint,
    /// a last-state upgrade without a provable checkpoint).
    pub retry_interval: Duration,
    /// Path prefixes rewritten in `jarURI`, `initialSavepointPath` and configuration values.
    pub paths: PathMap,
    /// Base URI under which a deployment without checkpoint/savepoint directories gets its own
    /// (`<base>/<namespace>/<name>/checkpoints`, `…/savepoints`); `None` leaves them unset.
    pub default_state_dir: Option<String>,
    /// Flink options every cluster gets unless its spec sets them (backend-specific tuning).
    pub default_config: BTreeMap<String, String>,
    /// Whether the engine starts TaskManagers that died (`scale` to the planned count): true
    /// where nothing else restarts them (local processes); Kubernetes restarts pods itself.
    pub restart_lost_taskmanagers: bool,
}

impl Default for Settings {
    /// The Kubernetes defaults: observe every 15 s, no path mapping, no default directories.
    fn default() -> Self {
        Settings {
            observe_interval: Duration::from_secs(15),
            transition_interval: Duration::from_millis(250),
            retry_interval: Duration::from_secs(10),
            paths: PathMap::default(),
            default_state_dir: None,
            default_config: BTreeMap::new(),
            restart_lost_taskmanagers: false,
        }
    }
}

impl Settings {
    /// Settings for `flinkpilot local`: observe every 2 s, start TaskManagers that died.
    pub fn local() -> Self {
        Settings {
            observe_interval: Duration::from_secs(2),
            restart_lost_taskmanagers: true,
            ..Settings::default()
        }
    }
}

/// Rewrites path prefixes, so a manifest written for a container image (jar under
/// `/opt/flink/usrlib`, state under `/flink-data`) runs unchanged where those paths do not
/// exist. Each rule maps a directory prefix (`/flink-data`) to another (`/home/me/.local/…`);
/// the first rule that matches wins. Values are matched as plain paths and as `file://` and
/// `local://` URIs; a rule matches whole path components only (`/flink-data` does not match
/// `/flink-database`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PathMap {
    rules: Vec<(String, String)>,
}

impl PathMap {
    /// No rewriting.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a rule mapping the directory `from` to `to` (both absolute paths).
    #[must_use]
    pub fn with(mut self, from: impl Into<String>, to: impl Into<String>) -> Self {
        let trim = |s: String| s.trim_end_matches('/').to_string();
        self.rules.push((trim(from.into()), trim(to.into())));
        self
    }

    /// The rules, in order.
    pub fn rules(&self) -> &[(String, String)] {
        &self.rules
    }

    /// `value` with its path prefix rewritten, or unchanged when no rule matches.
    pub fn apply(&self, value: &str) -> String {
        let (scheme, path) = split_scheme(value);
        for (from, to) in &self.rules {
            if let Some(rest) = path.strip_prefix(from.as_str())
                && (rest.is_empty() || rest.starts_with('/'))
            {
                return format!("{scheme}{to}{rest}");
            }
        }
        value.to_string()
    }
}

/// `file:///a/b` → (`file://`, `/a/b`); `file:/a/b` → (`file:`, `/a/b`); `/a/b` → (``, `/a/b`).
fn split_scheme(value: &str) -> (&str, &str) {
    for scheme in ["file://", "local://", "file:"] {
        if let Some(path) = value.strip_prefix(scheme)
            && path.starts_with('/')
        {
            return (&value[..scheme.len()], path);
        }
    }
    ("", value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_map_rewrites_whole_components_in_paths_and_uris() {
        let map = PathMap::new()
            .with("/flink-data/", "/home/me/state/flink-data")
            .with("/opt/flink/usrlib", "/home/me/state/usrlib");
        assert_eq!(
            map.apply("file:///flink-data/checkpoints"),
            "file:///home/me/state/flink-data/checkpoints"
        );
        assert_eq!(
            map.apply("local:///opt/flink/usrlib/counter.jar"),
            "local:///home/me/state/usrlib/counter.jar"
        );
        assert_eq!(map.apply("/flink-data"), "/home/me/state/flink-data");
        assert_eq!(
            map.apply("file:/flink-data/x"),
            "file:/home/me/state/flink-data/x"
        );
        assert_eq!(map.apply("/flink-database/x"), "/flink-database/x");
        assert_eq!(map.apply("s3://flink-data/x"), "s3://flink-data/x");
        assert_eq!(map.apply("2"), "2");
    }
}
