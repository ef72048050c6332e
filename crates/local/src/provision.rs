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
    check_pip(release)?;
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
        let output = pip_install(&temp, release).map_err(io("run pip for", &temp))?;
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

fn check_pip(release: &str) -> Result<(), ProvisionError> {
    let pip_error = |why: String| ProvisionError::Pip {
        release: release.to_string(),
        why,
    };
    match Command::new("python3")
        .args(["-m", "pip", "--version"])
        .output()
    {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(pip_error(tail(&out))),
        Err(e) => Err(pip_error(format!("cannot run python3: {e}"))),
    }
}

fn pip_install(target: &Path, release: &str) -> std::io::Result<Output> {
    Command::new("python3")
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

    #[test]
    fn the_java_on_this_machine_is_accepted() {
        check_java().unwrap();
    }
}
