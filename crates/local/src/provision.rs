//! Installing a Flink distribution into the shared cache, for the product binary (which cannot
//! rely on the repository's `scripts/setup-flink`; both install the same layout, so either one
//! fills the cache for the other).
//!
//! Flink comes from PyPI: `apache-flink` and `apache-flink-libraries` hold a complete
//! distribution under `pyflink/`. They are installed with `pip install --no-deps --target`
//! into a temporary directory next to the final one and renamed into place, so a concurrent
//! run (another controller, a test) never sees half an install.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

use crate::homes::FlinkHome;

/// Why Flink could not be installed. Every message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// No usable Java.
    #[error(
        "Flink needs Java 11 or newer, but {found}; install it (e.g. `sudo apt-get install -y \
         openjdk-17-jre-headless`) or set JAVA_HOME"
    )]
    Java {
        /// What was found instead.
        found: String,
    },
    /// No `python3 -m pip`.
    #[error(
        "installing Flink {release} needs `python3 -m pip`, which is not available ({why}); \
         install it (e.g. `sudo apt-get install -y python3-pip`) or pass --flink-home"
    )]
    Pip {
        /// The release to install.
        release: String,
        /// What failed.
        why: String,
    },
    /// pip ran and failed (network, no such release).
    #[error(
        "pip could not install apache-flink=={release} and apache-flink-libraries=={release} \
         into {}: {output}",
        dir.display()
    )]
    Install {
        /// The release.
        release: String,
        /// The cache dir.
        dir: PathBuf,
        /// The end of pip's output.
        output: String,
    },
    /// The filesystem refused.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was attempted.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

impl ProvisionError {
    /// A failed download may work next time; missing tools will not.
    pub fn is_transient(&self) -> bool {
        matches!(self, ProvisionError::Install { .. })
    }
}

/// The `java` Flink's scripts will run: `$JAVA_HOME/bin/java`, else `java` on the `PATH`.
fn java_command() -> PathBuf {
    std::env::var_os("JAVA_HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join("bin/java"))
        .unwrap_or_else(|| PathBuf::from("java"))
}

/// Checks for Java 11+ once per process (Flink's scripts fail late and obscurely without it).
pub fn check_java() -> Result<(), ProvisionError> {
    static CHECKED: Mutex<Option<u32>> = Mutex::new(None);
    let mut checked = CHECKED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if checked.is_some() {
        return Ok(());
    }
    let java = java_command();
    let output = Command::new(&java).arg("-version").output();
    let major = match &output {
        Ok(out) if out.status.success() => java_major(&String::from_utf8_lossy(&out.stderr)),
        _ => None,
    };
    match major {
        Some(major) if major >= 11 => {
            *checked = Some(major);
            Ok(())
        }
        Some(major) => Err(ProvisionError::Java {
            found: format!("{} is Java {major}", java.display()),
        }),
        None => Err(ProvisionError::Java {
            found: format!("`{} -version` does not run", java.display()),
        }),
    }
}

/// The major version from `java -version` output: `"17.0.15"` → 17, `"1.8.0_292"` → 8.
fn java_major(text: &str) -> Option<u32> {
    let quoted = text.split('"').nth(1)?;
    let mut parts = quoted.split(['.', '_', '-', '+']);
    let first: u32 = parts.next()?.parse().ok()?;
    if first == 1 {
        parts.next()?.parse().ok()
    } else {
        Some(first)
    }
}

/// Installs Flink `release` into `<cache>/flink-<release>` (its `pyflink/` is `FLINK_HOME`)
/// unless it is there already. Blocks for as long as the download takes.
pub fn install(cache: &Path, release: &str, progress: &dyn Fn(&str)) -> Result<(), ProvisionError> {
    install_using(Path::new("python3"), cache, release, progress)
}

/// [`install`] with a given Python interpreter.
fn install_using(
    python: &Path,
    cache: &Path,
    release: &str,
    progress: &dyn Fn(&str),
) -> Result<(), ProvisionError> {
    // One install at a time in this process; other processes are handled by the rename.
    static INSTALLING: Mutex<()> = Mutex::new(());
    let _one = INSTALLING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    check_java()?;
    let dest = cache.join(format!("flink-{release}"));
    if FlinkHome::open(dest.join("pyflink")).is_ok() {
        return Ok(());
    }
    check_pip(python, release)?;
    let io = |action, path: &Path| {
        let path = path.to_path_buf();
        move |source| ProvisionError::Io {
            action,
            path,
            source,
        }
    };
    std::fs::create_dir_all(cache).map_err(io("create", cache))?;
    let temp = cache.join(format!(".flink-{release}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&temp);
    std::fs::create_dir_all(&temp).map_err(io("create", &temp))?;
    let result = (|| {
        progress(&format!(
            "installing Flink {release} from PyPI into {} (a few hundred MB, once)",
            dest.display()
        ));
        let output = pip_install(python, &temp, release).map_err(io("run pip for", &temp))?;
        if !output.status.success() {
            return Err(ProvisionError::Install {
                release: release.to_string(),
                dir: cache.to_path_buf(),
                output: tail(&output),
            });
        }
        make_scripts_executable(&temp.join("pyflink/bin")).map_err(io("chmod", &temp))?;
        FlinkHome::open(temp.join("pyflink")).map_err(|e| ProvisionError::Install {
            release: release.to_string(),
            dir: cache.to_path_buf(),
            output: format!("the packages do not hold a Flink distribution: {e}"),
        })?;
        // rename(2) refuses to replace a non-empty directory: if another process won the race,
        // its complete copy stays and ours is dropped below.
        if let Err(e) = std::fs::rename(&temp, &dest)
            && FlinkHome::open(dest.join("pyflink")).is_err()
        {
            return Err(io("move into place", &dest)(e));
        }
        progress(&format!("Flink {release} ready"));
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&temp);
    result
}

fn check_pip(python: &Path, release: &str) -> Result<(), ProvisionError> {
    let pip_error = |why: String| ProvisionError::Pip {
        release: release.to_string(),
        why,
    };
    match Command::new(python)
        .args(["-m", "pip", "--version"])
        .output()
    {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(pip_error(tail(&out))),
        Err(e) => Err(pip_error(format!("cannot run {}: {e}", python.display()))),
    }
}

fn pip_install(python: &Path, target: &Path, release: &str) -> std::io::Result<Output> {
    Command::new(python)
        .args([
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-input",
            "--disable-pip-version-check",
            "--quiet",
            "--target",
        ])
        .arg(target)
        .arg(format!("apache-flink=={release}"))
        .arg(format!("apache-flink-libraries=={release}"))
        // a pip run as root warns about it on every install; the target dir is ours
        .env("PIP_ROOT_USER_ACTION", "ignore")
        .output()
}

/// pip does not keep the scripts' executable bits.
fn make_scripts_executable(bin: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(bin)? {
        let path = entry?.path();
        if path.is_file() {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        }
    }
    Ok(())
}

/// The last lines of a command's output, for an error message.
fn tail(output: &Output) -> String {
    let mut text = String::from_utf8_lossy(&output.stderr).into_owned();
    if text.trim().is_empty() {
        text = String::from_utf8_lossy(&output.stdout).into_owned();
    }
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(5)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_java_major_version_of_old_and_new_formats() {
        assert_eq!(
            java_major("openjdk version \"17.0.15\" 2025-04-15\nOpenJDK Runtime"),
            Some(17)
        );
        assert_eq!(java_major("java version \"1.8.0_292\""), Some(8));
        assert_eq!(java_major("openjdk version \"21\" 2023-09-19"), Some(21));
        assert_eq!(java_major("no version here"), None);
    }

    /// A stand-in for `python3`: `-m pip --version` works; `-m pip install … --target DIR`
    /// logs its arguments and lays out a distribution like the PyPI packages do (scripts not
    /// executable), or fails like pip does for a release that does not exist.
    const FAKE_PYTHON: &str = r#"#!/bin/sh
[ "$3" = "--version" ] && { echo "pip 23.0"; exit 0; }
echo "$@" >> "$(dirname "$0")/calls"
while [ "$1" != "--target" ]; do shift; done
target=$2; release=${3#apache-flink==}
case $release in
  9.9.9) echo "ERROR: No matching distribution found for apache-flink==9.9.9" >&2; exit 1 ;;
esac
mkdir -p "$target/pyflink/bin" "$target/pyflink/lib" "$target/pyflink/conf"
for s in jobmanager.sh taskmanager.sh standalone-job.sh; do echo '#!/bin/sh' > "$target/pyflink/bin/$s"; chmod 644 "$target/pyflink/bin/$s"; done
touch "$target/pyflink/lib/flink-dist-$release.jar"
"#;

    fn fake_python(dir: &Path) -> PathBuf {
        let path = dir.join("python3");
        std::fs::write(&path, FAKE_PYTHON).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[test]
    fn installs_both_packages_without_dependencies_into_the_cache_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let python = fake_python(dir.path());
        let cache = dir.path().join("cache");
        let messages = std::sync::Mutex::new(Vec::new());
        let progress = |m: &str| messages.lock().unwrap().push(m.to_string());

        install_using(&python, &cache, "2.3.0", &progress).unwrap();

        let home = FlinkHome::open(cache.join("flink-2.3.0/pyflink")).unwrap();
        assert_eq!(home.version, "2.3.0");
        let mode = std::fs::metadata(home.bin("jobmanager.sh"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111, "scripts are made executable");
        let calls = std::fs::read_to_string(dir.path().join("calls")).unwrap();
        assert!(calls.starts_with("-m pip install --no-deps"), "{calls}");
        assert!(
            calls.contains("apache-flink==2.3.0 apache-flink-libraries==2.3.0"),
            "{calls}"
        );
        let leftovers: Vec<_> = std::fs::read_dir(&cache)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, vec!["flink-2.3.0"], "no temporary dir is left");
        assert!(messages.lock().unwrap().iter().any(|m| m.contains("ready")));

        // installed already: pip is not run again
        install_using(&python, &cache, "2.3.0", &|_| {}).unwrap();
        let calls = std::fs::read_to_string(dir.path().join("calls")).unwrap();
        assert_eq!(calls.lines().count(), 1);
    }

    #[test]
    fn a_failed_install_says_what_pip_said_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let python = fake_python(dir.path());
        let cache = dir.path().join("cache");

        let err = install_using(&python, &cache, "9.9.9", &|_| {}).unwrap_err();

        assert!(err.is_transient());
        let message = err.to_string();
        assert!(message.contains("No matching distribution"), "{message}");
        assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 0);
    }

    #[test]
    fn a_missing_python_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let err =
            install_using(&dir.path().join("no-python"), dir.path(), "2.3.0", &|_| {}).unwrap_err();
        assert!(matches!(err, ProvisionError::Pip { .. }), "{err}");
        assert!(
            err.to_string().contains("apt-get install -y python3-pip"),
            "{err}"
        );
        assert!(!err.is_transient());
    }

    #[test]
    fn the_java_on_this_machine_is_accepted() {
        check_java().unwrap();
    }
}
