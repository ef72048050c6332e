//! Where everything lives under the state dir.
//!
//! ```text
//! <state-dir>/
//!   resources/<namespace>/<plural>/<name>.yaml   one object per file (LocalStore)
//!   resources/.lock  resources/.revision         store lock, store-wide change counter
//!   events/<namespace>/<plural>/<name>.jsonl     recent events of one object
//!   clusters/<namespace>/<name>/                 runtime of one cluster (LocalBackend)
//!     cluster.json  lock  conf/  log/  tmp/  pid/
//!   data/<namespace>/<name>/                     default checkpoint and savepoint dirs
//! ```

use std::path::{Path, PathBuf};

use engine::ResourceKey;

/// Environment variable naming the state dir (the CLI's `--state-dir` default).
pub const STATE_DIR_ENV: &str = "FLINKPILOT_STATE_DIR";

/// The root of everything `flinkpilot local` keeps on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// A state dir at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        StateDir { root: root.into() }
    }

    /// `$FLINKPILOT_STATE_DIR`, else `$XDG_STATE_HOME/flinkpilot`, else
    /// `$HOME/.local/state/flinkpilot` (the XDG default). `None` when none of these is set.
    pub fn default_path() -> Option<PathBuf> {
        let non_empty = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        if let Some(dir) = non_empty(STATE_DIR_ENV) {
            return Some(PathBuf::from(dir));
        }
        if let Some(xdg) = non_empty("XDG_STATE_HOME") {
            return Some(PathBuf::from(xdg).join("flinkpilot"));
        }
        non_empty("HOME").map(|home| PathBuf::from(home).join(".local/state/flinkpilot"))
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `resources/`: the store.
    pub fn resources(&self) -> PathBuf {
        self.root.join("resources")
    }

    /// `events/`: per-object event logs.
    pub fn events(&self) -> PathBuf {
        self.root.join("events")
    }

    /// `clusters/<namespace>/<name>/`: the runtime dir of one cluster.
    pub fn cluster(&self, key: &ResourceKey) -> PathBuf {
        self.root
            .join("clusters")
            .join(&key.namespace)
            .join(&key.name)
    }

    /// `data/<namespace>/<name>/`: default checkpoint and savepoint storage of one resource,
    /// kept when its cluster is deleted.
    pub fn data(&self, key: &ResourceKey) -> PathBuf {
        self.root.join("data").join(&key.namespace).join(&key.name)
    }
}

/// Whether `s` is safe as one path component and valid as a Kubernetes name: lowercase
/// letters, digits, `-` and `.`, starting and ending with a letter or digit, at most 253
/// characters. Keeps `..`, `/` and hidden files out of the state dir.
pub(crate) fn is_valid_name(s: &str) -> bool {
    let edge = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    !s.is_empty()
        && s.len() <= 253
        && s.starts_with(edge)
        && s.ends_with(edge)
        && s.chars().all(|c| edge(c) || c == '-' || c == '.')
        && !s.contains("..")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_escape_the_state_dir_are_invalid() {
        for bad in [
            "", "..", "a/b", ".hidden", "a..b", "Upper", "a_b", "-a", "a-",
        ] {
            assert!(!is_valid_name(bad), "{bad:?} must be invalid");
        }
        for good in ["a", "counter", "my-app.v2", "default", "0x"] {
            assert!(is_valid_name(good), "{good:?} must be valid");
        }
    }

    #[test]
    fn cluster_and_data_dirs_are_per_namespace_and_name() {
        let dir = StateDir::new("/s");
        let key = ResourceKey::new("ns", "app");
        assert_eq!(dir.cluster(&key), Path::new("/s/clusters/ns/app"));
        assert_eq!(dir.data(&key), Path::new("/s/data/ns/app"));
    }
}
