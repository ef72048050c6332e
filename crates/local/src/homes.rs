//! Which Flink distribution (`FLINK_HOME`) runs a cluster of a given `flinkVersion`.
//!
//! In order: an explicit home (`--flink-home`), `$FLINK_HOME` when it holds the wanted
//! version, the shared cache `${FLINKPILOT_CACHE:-$HOME/.cache/flinkpilot}/flink-<release>/pyflink`
//! (where `scripts/setup-flink` installs too), and, when allowed, a fresh install into that
//! cache (see [`crate::provision`]).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use api::FlinkVersion;

use crate::provision;

/// Environment variable of the shared download cache.
pub const CACHE_ENV: &str = "FLINKPILOT_CACHE";

/// The Flink release installed for each `flinkVersion`: the newest patch release on PyPI.
/// `None` for versions flinkpilot does not run locally.
pub fn release_for(version: FlinkVersion) -> Option<&'static str> {
    Some(match version {
        FlinkVersion::v1_16 => "1.16.3",
        FlinkVersion::v1_17 => "1.17.2",
        FlinkVersion::v1_18 => "1.18.1",
        FlinkVersion::v1_19 => "1.19.3",
        FlinkVersion::v1_20 => "1.20.5",
        FlinkVersion::v2_0 => "2.0.2",
        FlinkVersion::v2_1 => "2.1.3",
        FlinkVersion::v2_2 => "2.2.1",
        FlinkVersion::v2_3 => "2.3.0",
        _ => return None,
    })
}

/// Why no Flink distribution could be found or installed. Every message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum HomeError {
    /// The version is not one flinkpilot can run locally.
    #[error(
        "Flink {version} cannot run locally: flinkpilot runs {}",
        supported_list()
    )]
    Unsupported {
        /// The version asked for.
        version: FlinkVersion,
    },
    /// The directory is not a Flink distribution.
    #[error("{} is not a Flink distribution ({why}); point it at a directory with bin/ and lib/flink-dist-*.jar", path.display())]
    NotADistribution {
        /// The directory.
        path: PathBuf,
        /// What is missing.
        why: String,
    },
    /// The explicit home holds another version.
    #[error(
        "--flink-home {} holds Flink {found}, but flinkVersion {wanted} is needed; use a matching \
         distribution or leave --flink-home out to use the cache",
        path.display()
    )]
    VersionMismatch {
        /// The directory.
        path: PathBuf,
        /// Its version.
        found: String,
        /// The version needed.
        wanted: FlinkVersion,
    },
    /// Not installed and provisioning is off.
    #[error(
        "Flink {release} is not installed in {}; run `flinkpilot local up` (it installs it), \
         `scripts/setup-flink {release}`, or pass --flink-home",
        cache.display()
    )]
    Missing {
        /// The release needed.
        release: String,
        /// Where it was looked for.
        cache: PathBuf,
    },
    /// Java, Python or pip is missing, or the installation failed.
    #[error(transparent)]
    Provision(#[from] provision::ProvisionError),
}

impl HomeError {
    /// `true` when trying again may succeed without a change by the user (e.g. a network
    /// failure while downloading).
    pub fn is_transient(&self) -> bool {
        matches!(self, HomeError::Provision(e) if e.is_transient())
    }
}

fn supported_list() -> String {
    FlinkVersion::ALL
        .iter()
        .filter_map(|v| release_for(*v).map(|r| format!("{v} ({r})")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A Flink distribution on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlinkHome {
    /// `FLINK_HOME`: holds `bin/`, `conf/`, `lib/`.
    pub path: PathBuf,
    /// The full version, from `lib/flink-dist-<version>.jar`, e.g. `2.3.0`.
    pub version: String,
}

impl FlinkHome {
    /// Checks that `path` is a Flink distribution and reads its version.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, HomeError> {
        let path = path.into();
        let not = |why: String| HomeError::NotADistribution {
            path: path.clone(),
            why,
        };
        for script in ["jobmanager.sh", "taskmanager.sh", "standalone-job.sh"] {
            if !path.join("bin").join(script).is_file() {
                return Err(not(format!("no bin/{script}")));
            }
        }
        let lib = path.join("lib");
        let entries = std::fs::read_dir(&lib).map_err(|e| not(format!("cannot list lib/: {e}")))?;
        let version = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .find_map(|name| {
                let v = name.strip_prefix("flink-dist-")?.strip_suffix(".jar")?;
                Some(v.to_string())
            })
            .ok_or_else(|| not("no lib/flink-dist-<version>.jar".to_string()))?;
        Ok(FlinkHome { path, version })
    }

    /// `(major, minor)` of the version, e.g. `(2, 3)`.
    pub fn major_minor(&self) -> Option<(u32, u32)> {
        let mut parts = self.version.split(['.', '-']);
        Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
    }

    /// Whether this distribution is the `flinkVersion` `version`.
    pub fn is(&self, version: FlinkVersion) -> bool {
        self.major_minor() == Some(version.major_minor())
    }

    /// A script under `bin/`.
    pub fn bin(&self, script: &str) -> PathBuf {
        self.path.join("bin").join(script)
    }

    /// `conf/`, the distribution's default configuration.
    pub fn conf_dir(&self) -> PathBuf {
        self.path.join("conf")
    }
}

/// Reports progress of a long step (a download) to the user.
pub type Progress = Arc<dyn Fn(&str) + Send + Sync>;

/// Finds (and, when allowed, installs) the Flink distribution for each version.
#[derive(Clone)]
pub struct FlinkHomes {
    explicit: Option<PathBuf>,
    env_home: Option<PathBuf>,
    cache: PathBuf,
    provision: bool,
    progress: Progress,
}

impl fmt::Debug for FlinkHomes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlinkHomes")
            .field("explicit", &self.explicit)
            .field("env_home", &self.env_home)
            .field("cache", &self.cache)
            .field("provision", &self.provision)
            .finish_non_exhaustive()
    }
}

impl FlinkHomes {
    /// Homes from the environment (`$FLINK_HOME`, `$FLINKPILOT_CACHE`, `$HOME`) and an optional
    /// explicit home (`--flink-home`). Provisioning is off; see [`FlinkHomes::provisioning`].
    pub fn from_env(explicit: Option<PathBuf>) -> Self {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        let cache = var(CACHE_ENV).map(PathBuf::from).unwrap_or_else(|| {
            var("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(std::env::temp_dir)
                .join(".cache/flinkpilot")
        });
        FlinkHomes {
            explicit,
            env_home: var("FLINK_HOME").map(PathBuf::from),
            cache,
            provision: false,
            progress: Arc::new(|message| tracing::info!("{message}")),
        }
    }

    /// Only `cache` (no explicit home, `$FLINK_HOME` ignored): for tests and tools that must not
    /// depend on the caller's environment.
    pub fn with_cache(cache: impl Into<PathBuf>) -> Self {
        FlinkHomes {
            explicit: None,
            env_home: None,
            ..Self::from_env(None)
        }
        .cache_dir(cache)
    }

    /// Uses `cache` as the download cache.
    #[must_use]
    pub fn cache_dir(mut self, cache: impl Into<PathBuf>) -> Self {
        self.cache = cache.into();
        self
    }

    /// Allows installing a missing version into the cache (`pip install` from PyPI).
    #[must_use]
    pub fn provisioning(mut self, allowed: bool) -> Self {
        self.provision = allowed;
        self
    }

    /// Where progress messages of an installation go (default: `tracing` at info level).
    #[must_use]
    pub fn on_progress(mut self, progress: Progress) -> Self {
        self.progress = progress;
        self
    }

    /// The download cache.
    pub fn cache(&self) -> &Path {
        &self.cache
    }

    /// Where the cache keeps `release` (whether or not it is installed).
    pub fn cached_home(&self, release: &str) -> PathBuf {
        self.cache.join(format!("flink-{release}")).join("pyflink")
    }

    /// The distribution for `version`, installing it first when it is missing and
    /// provisioning is allowed. Blocks (for minutes while installing).
    pub fn resolve(&self, version: FlinkVersion) -> Result<FlinkHome, HomeError> {
        let release = release_for(version).ok_or(HomeError::Unsupported { version })?;
        if let Some(path) = &self.explicit {
            let home = FlinkHome::open(path)?;
            if !home.is(version) {
                return Err(HomeError::VersionMismatch {
                    path: path.clone(),
                    found: home.version,
                    wanted: version,
                });
            }
            return Ok(home);
        }
        if let Some(path) = &self.env_home {
            match FlinkHome::open(path) {
                Ok(home) if home.is(version) => return Ok(home),
                Ok(home) => tracing::debug!(
                    flink_home = %path.display(),
                    found = %home.version,
                    wanted = %version,
                    "FLINK_HOME holds another version; looking in the cache"
                ),
                Err(e) => tracing::warn!("ignoring FLINK_HOME: {e}"),
            }
        }
        let cached = self.cached_home(release);
        if let Ok(home) = FlinkHome::open(&cached) {
            return Ok(home);
        }
        if !self.provision {
            return Err(HomeError::Missing {
                release: release.to_string(),
                cache: self.cache.clone(),
            });
        }
        provision::install(&self.cache, release, &*self.progress)?;
        FlinkHome::open(&cached)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_home(dir: &Path, version: &str) -> PathBuf {
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        std::fs::create_dir_all(dir.join("lib")).unwrap();
        for script in ["jobmanager.sh", "taskmanager.sh", "standalone-job.sh"] {
            std::fs::write(dir.join("bin").join(script), "").unwrap();
        }
        std::fs::write(dir.join(format!("lib/flink-dist-{version}.jar")), "").unwrap();
        dir.to_path_buf()
    }

    #[test]
    fn every_supported_api_version_has_a_release_and_old_ones_have_none() {
        assert_eq!(release_for(FlinkVersion::v2_3), Some("2.3.0"));
        assert_eq!(release_for(FlinkVersion::v1_20), Some("1.20.5"));
        assert_eq!(release_for(FlinkVersion::v1_15), None);
        for version in FlinkVersion::ALL {
            if let Some(release) = release_for(version) {
                let (major, minor) = version.major_minor();
                assert!(
                    release.starts_with(&format!("{major}.{minor}.")),
                    "{release}"
                );
            }
        }
    }

    #[test]
    fn the_cache_is_used_and_a_missing_version_says_how_to_get_it() {
        let cache = tempfile::tempdir().unwrap();
        fake_home(&cache.path().join("flink-2.3.0/pyflink"), "2.3.0");
        let homes = FlinkHomes::with_cache(cache.path());

        let home = homes.resolve(FlinkVersion::v2_3).unwrap();
        assert_eq!(home.version, "2.3.0");
        assert!(home.is(FlinkVersion::v2_3));

        let err = homes.resolve(FlinkVersion::v1_20).unwrap_err();
        assert!(matches!(err, HomeError::Missing { .. }), "{err}");
        assert!(
            err.to_string().contains("scripts/setup-flink 1.20.5"),
            "{err}"
        );
        let err = homes.resolve(FlinkVersion::v1_13).unwrap_err();
        assert!(err.to_string().contains("v2_3 (2.3.0)"), "{err}");
    }

    #[test]
    fn an_explicit_home_must_hold_the_wanted_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = fake_home(dir.path(), "1.20.5");
        let homes = FlinkHomes {
            explicit: Some(path),
            ..FlinkHomes::with_cache(dir.path().join("cache"))
        };
        assert_eq!(
            homes.resolve(FlinkVersion::v1_20).unwrap().version,
            "1.20.5"
        );
        let err = homes.resolve(FlinkVersion::v2_3).unwrap_err();
        assert!(matches!(err, HomeError::VersionMismatch { .. }), "{err}");
    }

    #[test]
    fn flink_home_from_the_environment_is_used_only_for_its_own_version() {
        let dir = tempfile::tempdir().unwrap();
        let env_home = fake_home(&dir.path().join("env"), "1.20.5");
        fake_home(&dir.path().join("cache/flink-2.3.0/pyflink"), "2.3.0");
        let homes = FlinkHomes {
            env_home: Some(env_home.clone()),
            ..FlinkHomes::with_cache(dir.path().join("cache"))
        };
        assert_eq!(homes.resolve(FlinkVersion::v1_20).unwrap().path, env_home);
        assert_eq!(homes.resolve(FlinkVersion::v2_3).unwrap().version, "2.3.0");
    }

    #[test]
    fn a_directory_without_flink_is_not_a_distribution() {
        let dir = tempfile::tempdir().unwrap();
        let err = FlinkHome::open(dir.path()).unwrap_err();
        assert!(err.to_string().contains("bin/jobmanager.sh"), "{err}");
    }
}
