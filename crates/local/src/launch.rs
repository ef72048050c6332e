//! The command lines of a cluster's processes.

use std::path::{Path, PathBuf};
use std::process::Command;

use engine::{ClusterMode, ClusterPlan};

use crate::homes::FlinkHome;
use crate::runtime::ClusterPaths;

/// The jar of `jarURI`: `local:///path` and `file:///path` (also `file:/path`) are files on
/// this machine. Anything else cannot be fetched locally.
pub(crate) fn jar_path(jar_uri: &str) -> Result<PathBuf, String> {
    let supported = "supported here: local:///path/to/job.jar or file:///path/to/job.jar";
    let rest = jar_uri
        .strip_prefix("local:")
        .or_else(|| jar_uri.strip_prefix("file:"))
        .ok_or_else(|| {
            format!("spec.job.jarURI {jar_uri:?} cannot be used by a local cluster ({supported})")
        })?;
    // `//host/path` names a host; only the empty host (`///path`) is this machine.
    let path = match rest.strip_prefix("//") {
        Some(after) if after.starts_with('/') => after,
        Some(_) => {
            return Err(format!(
                "spec.job.jarURI {jar_uri:?} names a host; a local cluster reads jars from this \
                 machine only ({supported})"
            ));
        }
        None => rest,
    };
    if !path.starts_with('/') {
        return Err(format!(
            "spec.job.jarURI {jar_uri:?} is not an absolute path ({supported})"
        ));
    }
    Ok(PathBuf::from(decode_percent(path)))
}

/// `%20` and friends, as URIs write them; anything malformed is kept as written.
fn decode_percent(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `bin/<script> start-foreground <args>` with the cluster's own conf, log and pid dirs.
fn flink_command(home: &FlinkHome, paths: &ClusterPaths, script: &str) -> Command {
    let mut command = Command::new(home.bin(script));
    command
        .arg("start-foreground")
        .current_dir(&paths.root)
        .env("FLINK_HOME", &home.path)
        .env("FLINK_CONF_DIR", paths.conf())
        .env("FLINK_LOG_DIR", paths.flink_logs())
        .env("FLINK_PID_DIR", paths.pid())
        // Inherited settings of another Flink setup must not leak into ours.
        .env_remove("FLINK_ENV_JAVA_OPTS")
        .env_remove("FLINK_LIB_DIR")
        .env_remove("FLINK_OPT_DIR")
        .env_remove("FLINK_PLUGINS_DIR")
        .env_remove("FLINK_BIN_DIR");
    command
}

/// The JobManager: `standalone-job.sh` running the plan's job (application mode), or
/// `jobmanager.sh` (session mode). The job id, restore path and program arguments go on the
/// command line; program arguments follow `--`, so none is ever read as an entry-point option.
pub(crate) fn jobmanager(
    home: &FlinkHome,
    paths: &ClusterPaths,
    plan: &ClusterPlan,
    jar: Option<&Path>,
) -> Command {
    match (&plan.mode, &plan.job, jar) {
        (ClusterMode::Application, Some(job), Some(jar)) => {
            let mut command = flink_command(home, paths, "standalone-job.sh");
            if let Some(class) = job.entry_class.as_deref().filter(|c| !c.is_empty()) {
                command.args(["--job-classname", class]);
            }
            command.arg("--jars").arg(jar);
            command.args(["--job-id", &job.job_id]);
            if let Some(restore) = &job.restore {
                command.args(["--fromSavepoint", &restore.path]);
                if restore.allow_non_restored_state {
                    command.arg("--allowNonRestoredState");
                }
            }
            command.arg("--").args(&job.args);
            command
        }
        _ => flink_command(home, paths, "jobmanager.sh"),
    }
}

/// TaskManager `index`, registered under the resource id `<name>-taskmanager-<index>` so the
/// REST API's TaskManagers map to our processes and logs.
pub(crate) fn taskmanager(
    home: &FlinkHome,
    paths: &ClusterPaths,
    cluster_name: &str,
    index: u32,
) -> Command {
    let mut command = flink_command(home, paths, "taskmanager.sh");
    command.args([
        "-D".to_string(),
        format!("taskmanager.resource-id={cluster_name}-taskmanager-{index}"),
    ]);
    command
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_and_file_uris_are_local_paths() {
        for uri in [
            "local:///opt/jobs/a.jar",
            "file:///opt/jobs/a.jar",
            "file:/opt/jobs/a.jar",
        ] {
            assert_eq!(
                jar_path(uri).unwrap(),
                Path::new("/opt/jobs/a.jar"),
                "{uri}"
            );
        }
        assert_eq!(
            jar_path("file:///opt/my%20jobs/a.jar").unwrap(),
            Path::new("/opt/my jobs/a.jar")
        );
    }

    #[test]
    fn other_uris_are_refused_naming_the_field_and_what_works() {
        for uri in [
            "https://example.com/a.jar",
            "s3://bucket/a.jar",
            "/opt/a.jar",
            "file://host/opt/a.jar",
            "local:relative.jar",
        ] {
            let err = jar_path(uri).unwrap_err();
            assert!(err.contains("spec.job.jarURI"), "{err}");
            assert!(err.contains("local:///"), "{err}");
        }
    }
}
