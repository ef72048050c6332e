//! Snapshots on local disks: whether a savepoint or checkpoint exists, and the newest retained
//! checkpoint of a job when its JobManager is gone.

use std::path::{Path, PathBuf};

/// The local path of `uri`: `file:///p`, `file:/p` or an absolute path. `None` for any other
/// scheme (`s3://`, `hdfs://`, …), which this machine cannot look into.
fn local_path(uri: &str) -> Option<PathBuf> {
    let path = match uri.strip_prefix("file:") {
        Some(rest) => match rest.strip_prefix("//") {
            Some(after) if after.starts_with('/') => after,
            Some(_) => return None,
            None => rest,
        },
        None => uri,
    };
    path.starts_with('/').then(|| PathBuf::from(path))
}

/// Whether the snapshot at `uri` (a savepoint dir or a `chk-N` dir) is complete: it holds
/// `_metadata`, which Flink writes last. `uri` may also name the `_metadata` file itself.
/// `None` when `uri` is not on this machine.
pub(crate) fn snapshot_exists(uri: &str) -> Option<bool> {
    let path = local_path(uri)?;
    if path.file_name().is_some_and(|n| n == "_metadata") {
        return Some(path.is_file());
    }
    Some(path.join("_metadata").is_file())
}

/// The newest complete checkpoint of `job_id` under the checkpoint dir `dir`:
/// `<dir>/<job_id>/chk-<N>` with the highest `N` that holds `_metadata`, written in the style
/// of `dir` (a `file://` URI stays one). `None` when there is none or `dir` is not local.
pub(crate) fn latest_checkpoint(dir: &str, job_id: &str) -> Option<String> {
    if job_id.is_empty() || job_id.contains('/') {
        return None;
    }
    let job_dir = local_path(dir)?.join(job_id);
    let newest = std::fs::read_dir(&job_dir)
        .ok()?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|name| name.strip_prefix("chk-")?.parse::<u64>().ok())
        .filter(|n| is_complete(&job_dir.join(format!("chk-{n}"))))
        .max()?;
    Some(format!(
        "{}/{job_id}/chk-{newest}",
        dir.trim_end_matches('/')
    ))
}

/// Deletes the snapshot directory at `uri` (a savepoint dir or a `chk-N` dir, or its
/// `_metadata`). Only a directory that is recognisably a snapshot is deleted: one holding
/// `_metadata`, or named like Flink names them (`savepoint-…`, `chk-N`), or empty — never an
/// arbitrary directory a mistyped path names. A missing one is `Ok`. `None` when `uri` is not
/// on this machine.
pub(crate) fn dispose(uri: &str) -> Option<std::io::Result<()>> {
    let mut path = local_path(uri)?;
    if path.file_name().is_some_and(|n| n == "_metadata") {
        path.pop();
    }
    if !path.exists() {
        return Some(Ok(()));
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let flink_named = name.starts_with("savepoint-")
        || name
            .strip_prefix("chk-")
            .is_some_and(|n| n.parse::<u64>().is_ok());
    let empty = std::fs::read_dir(&path).is_ok_and(|mut d| d.next().is_none());
    if !(is_complete(&path) || flink_named || empty) {
        return Some(Err(std::io::Error::other(format!(
            "{} does not look like a savepoint or checkpoint (no _metadata, not named \
             savepoint-… or chk-N); not deleting it",
            path.display()
        ))));
    }
    Some(std::fs::remove_dir_all(&path))
}

/// When the snapshot at `uri` was completed: the modification time of its `_metadata` (Flink
/// writes it last), epoch milliseconds. `None` when it is not on this machine or not there.
pub(crate) fn snapshot_time(uri: &str) -> Option<i64> {
    let modified = std::fs::metadata(local_path(uri)?.join("_metadata"))
        .ok()?
        .modified()
        .ok()?;
    let since = modified.duration_since(std::time::UNIX_EPOCH).ok()?;
    i64::try_from(since.as_millis()).ok()
}

fn is_complete(dir: &Path) -> bool {
    dir.join("_metadata").is_file()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint(root: &Path, job: &str, n: u64, complete: bool) {
        let dir = root.join(job).join(format!("chk-{n}"));
        std::fs::create_dir_all(&dir).unwrap();
        if complete {
            std::fs::write(dir.join("_metadata"), b"x").unwrap();
        }
    }

    #[test]
    fn a_snapshot_exists_when_its_metadata_does() {
        let dir = tempfile::tempdir().unwrap();
        let sp = dir.path().join("savepoint-1");
        std::fs::create_dir_all(&sp).unwrap();
        let uri = format!("file://{}", sp.display());
        assert_eq!(snapshot_exists(&uri), Some(false));
        std::fs::write(sp.join("_metadata"), b"x").unwrap();
        assert_eq!(snapshot_exists(&uri), Some(true));
        assert_eq!(
            snapshot_exists(&format!("file:{}", sp.display())),
            Some(true)
        );
        assert_eq!(snapshot_exists(&sp.display().to_string()), Some(true));
        assert_eq!(
            snapshot_exists(&format!("{}/_metadata", sp.display())),
            Some(true)
        );
        assert_eq!(
            snapshot_exists("file:///nonexistent/flinkpilot/sp"),
            Some(false)
        );
    }

    #[test]
    fn a_snapshot_is_as_old_as_its_metadata() {
        let dir = tempfile::tempdir().unwrap();
        checkpoint(dir.path(), "job", 1, true);
        let uri = format!("file://{}/job/chk-1", dir.path().display());
        let t = snapshot_time(&uri).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        assert!(t > 0 && t <= now + 1000, "{t} vs {now}");
        assert_eq!(
            snapshot_time(&format!("file://{}/job/chk-9", dir.path().display())),
            None
        );
        assert_eq!(snapshot_time("s3://bucket/chk-1"), None);
    }

    #[test]
    fn remote_snapshots_cannot_be_checked_here() {
        assert_eq!(snapshot_exists("s3://bucket/savepoints/sp-1"), None);
        assert_eq!(snapshot_exists("relative/path"), None);
        assert_eq!(snapshot_exists("file://host/x"), None);
        assert_eq!(latest_checkpoint("s3://bucket/chk", "abc"), None);
    }

    #[test]
    fn disposal_removes_snapshot_directories_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let sp = dir.path().join("savepoint-0a1b2c-d3e4f5");
        std::fs::create_dir_all(&sp).unwrap();
        std::fs::write(sp.join("_metadata"), b"x").unwrap();
        std::fs::write(sp.join("state"), b"x").unwrap();
        let uri = format!("file://{}", sp.display());
        assert!(dispose(&uri).unwrap().is_ok());
        assert!(!sp.exists());
        assert!(dispose(&uri).unwrap().is_ok(), "already gone is fine");

        // a half-disposed checkpoint (no _metadata) named like one goes too
        let chk = dir.path().join("job").join("chk-7");
        std::fs::create_dir_all(&chk).unwrap();
        std::fs::write(chk.join("data"), b"x").unwrap();
        assert!(dispose(&chk.display().to_string()).unwrap().is_ok());
        assert!(!chk.exists());

        // anything else is refused and kept
        let other = dir.path().join("important");
        std::fs::create_dir_all(&other).unwrap();
        std::fs::write(other.join("file"), b"x").unwrap();
        assert!(dispose(&other.display().to_string()).unwrap().is_err());
        assert!(other.join("file").exists());
        assert!(dispose("s3://bucket/savepoint-1").is_none());
    }

    #[test]
    fn the_newest_complete_checkpoint_wins() {
        let dir = tempfile::tempdir().unwrap();
        let job = "0123456789abcdef0123456789abcdef";
        checkpoint(dir.path(), job, 2, true);
        checkpoint(dir.path(), job, 10, true);
        checkpoint(dir.path(), job, 11, false); // in progress: no _metadata yet
        checkpoint(dir.path(), "other", 50, true);
        std::fs::create_dir_all(dir.path().join(job).join("shared")).unwrap();
        let uri = format!("file://{}/", dir.path().display());

        assert_eq!(
            latest_checkpoint(&uri, job),
            Some(format!("file://{}/{job}/chk-10", dir.path().display()))
        );
        assert_eq!(
            latest_checkpoint(&dir.path().display().to_string(), job),
            Some(format!("{}/{job}/chk-10", dir.path().display()))
        );
        assert_eq!(latest_checkpoint(&uri, "nojob"), None);
        assert_eq!(latest_checkpoint(&uri, "../x"), None);
    }
}
