//! File locks: the store lock around every read-modify-write, and the controller lock that
//! keeps a second controller off the same state dir.
//!
//! Both are `flock`s (`std::fs::File::lock`): held per open file description, so they exclude
//! other threads of this process as well as other processes, and the kernel releases them when
//! the holder dies; a crash never leaves a stale lock behind.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use super::StoreError;

/// The store lock, held while the guard lives.
#[derive(Debug)]
pub(crate) struct StoreLock {
    _file: File,
}

impl StoreLock {
    /// Blocks until the lock of the store in `dir` is ours.
    pub(crate) fn acquire(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.join(".lock");
        let file = open_lock_file(&path)?;
        file.lock().map_err(StoreError::io("lock", &path))?;
        Ok(StoreLock { _file: file })
    }
}

/// Proof that this process is the only controller on a state dir; dropping it lets another
/// controller start.
#[derive(Debug)]
pub struct ControllerLock {
    _file: File,
    path: PathBuf,
}

impl ControllerLock {
    pub(crate) fn acquire(root: &Path) -> Result<Self, StoreError> {
        let path = root.join("controller.lock");
        let mut file = open_lock_file(&path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Err(StoreError::ControllerRunning {
                    dir: root.to_path_buf(),
                    pid: text.trim().parse().ok(),
                });
            }
            Err(TryLockError::Error(e)) => return Err(StoreError::io("lock", &path)(e)),
        }
        // The pid is only shown in the message above; the lock itself is what counts.
        let write_pid = |file: &mut File| -> std::io::Result<()> {
            file.set_len(0)?;
            file.rewind()?;
            writeln!(file, "{}", std::process::id())
        };
        write_pid(&mut file).map_err(StoreError::io("write", &path))?;
        Ok(ControllerLock { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn open_lock_file(path: &Path) -> Result<File, StoreError> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(StoreError::io("create", dir))?;
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(StoreError::io("open", path))
}
