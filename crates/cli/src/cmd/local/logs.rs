//! `flinkpilot local logs NAME [--jm | --tm N] [-f]`: the console log of a deployment's
//! JobManager (default) or one TaskManager; `-f` keeps printing what is appended, and follows
//! the new log when the cluster is redeployed.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use local::Role;

use super::Local;

/// Arguments of `flinkpilot local logs`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The deployment.
    pub name: String,
    /// The JobManager's log (the default).
    #[arg(long, conflicts_with = "tm")]
    pub jm: bool,
    /// The log of TaskManager N (0, 1, …).
    #[arg(long, value_name = "N")]
    pub tm: Option<u32>,
    /// Keep printing new lines until interrupted.
    #[arg(short = 'f', long)]
    pub follow: bool,
}

/// Runs `flinkpilot local logs`.
pub fn run(local: &Local, args: Args) -> anyhow::Result<ExitCode> {
    let d = local.deployment(&args.name)?;
    let key = engine::decide::resource_key(&d);
    let backend = local.backend(false, Arc::new(|_: &str| {}))?;
    let (role, index) = match args.tm {
        Some(n) => (Role::TaskManager, n),
        None => (Role::JobManager, 0),
    };
    let path = backend.log_file(&key, role, index);
    if !path.exists() && !args.follow {
        let running = backend
            .cluster_info(&key)
            .ok()
            .flatten()
            .map(|c| c.taskmanagers);
        match (role, running) {
            (_, None) => bail!(
                "FlinkDeployment {key} has no cluster (it is not deployed, or it is suspended); \
                 no log at {}",
                path.display()
            ),
            (Role::TaskManager, Some(n)) => bail!(
                "FlinkDeployment {key} has no TaskManager {index} (it runs {n}: --tm 0 to --tm {})",
                n.saturating_sub(1)
            ),
            (Role::JobManager, Some(_)) => {
                bail!("no JobManager log of {key} at {}", path.display())
            }
        }
    }
    let mut offset = print_from(&path, 0)?;
    if !args.follow {
        return Ok(ExitCode::SUCCESS);
    }
    let mut identity = file_identity(&path);
    loop {
        std::thread::sleep(Duration::from_millis(250));
        let now = file_identity(&path);
        let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        if now != identity || len < offset {
            // a redeploy moved the old log away and started a new one
            identity = now;
            offset = 0;
        }
        offset = print_from(&path, offset)?;
    }
}

/// Prints `path` from `offset` on; returns the new offset. A missing file prints nothing.
fn print_from(path: &Path, offset: u64) -> anyhow::Result<u64> {
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(offset),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    file.seek(SeekFrom::Start(offset))
        .with_context(|| format!("cannot read {}", path.display()))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let mut out = std::io::stdout().lock();
    out.write_all(&bytes)?;
    out.flush()?;
    Ok(offset + bytes.len() as u64)
}

/// Device and inode, to notice a log replaced by a new file.
fn file_identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}
