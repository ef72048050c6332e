//! `flinkpilot local savepoint NAME` / `checkpoint NAME`: create a `FlinkStateSnapshot` of the
//! deployment's job (trigger type `MANUAL`, so retention never deletes it), then wait for it to
//! end and print its path — or its error, with a non-zero exit.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::bail;
use api::{FlinkStateSnapshot, FlinkStateSnapshotState, SavepointFormatType, SnapshotTriggerType};
use engine::controller::now_ms;
use engine::snapshot::{Generated, SnapshotKind};

use super::{Local, up};

/// Arguments of `flinkpilot local savepoint`.
#[derive(Debug, clap::Args)]
pub struct SavepointArgs {
    /// The deployment.
    pub name: String,
    /// Directory to write the savepoint to [default: the deployment's savepoint directory]
    #[arg(long, value_name = "DIR")]
    pub path: Option<String>,
    /// Savepoint format.
    #[arg(long, value_enum, default_value = "canonical")]
    pub format: Format,
    /// Delete the savepoint's files when the FlinkStateSnapshot is deleted.
    #[arg(long)]
    pub dispose_on_delete: bool,
    #[command(flatten)]
    pub common: Common,
}

/// Arguments of `flinkpilot local checkpoint`.
#[derive(Debug, clap::Args)]
pub struct CheckpointArgs {
    /// The deployment.
    pub name: String,
    #[command(flatten)]
    pub common: Common,
}

/// What both commands take.
#[derive(Debug, clap::Args)]
pub struct Common {
    /// Failed attempts retried before the snapshot counts as FAILED (-1: forever).
    #[arg(
        long,
        default_value_t = 0,
        allow_negative_numbers = true,
        value_name = "N"
    )]
    pub backoff_limit: i32,
    /// Return once the FlinkStateSnapshot is created instead of waiting for it.
    #[arg(long)]
    pub no_wait: bool,
    /// Longest wait, in seconds.
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    pub timeout: u64,
}

/// Savepoint formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Flink's canonical format (portable between state backends).
    Canonical,
    /// The state backend's native format (faster).
    Native,
}

/// Runs `flinkpilot local savepoint`.
pub fn savepoint(local: &Local, args: SavepointArgs) -> anyhow::Result<ExitCode> {
    let d = local.deployment(&args.name)?;
    let key = local.key(&args.name);
    if d.spec.job.is_none() {
        bail!("FlinkDeployment {key}: spec.job is not set; a session cluster has no job to save");
    }
    // An invalid --path is reported by the snapshot's validation (spec.savepoint.path).
    let path = args.path.filter(|p| !p.trim().is_empty());
    // Like the savepoints the operator takes itself, a manual one needs a directory chosen on
    // purpose: without one it would land in flinkpilot's state dir, which `local` users delete.
    let settings = engine::Settings {
        default_state_dir: None,
        ..up::settings(local.state.root(), Duration::from_secs(2))
    };
    let configured = engine::plan_builder::savepoint_dir(&key, &d.spec, &settings);
    if path.is_none() && configured.is_none() {
        bail!(
            "FlinkDeployment {key}: spec.flinkConfiguration has no savepoint directory; set \
             execution.checkpointing.savepoint-dir (state.savepoints.dir), or pass --path DIR"
        );
    }
    let generated = Generated {
        kind: SnapshotKind::Savepoint,
        trigger: SnapshotTriggerType::Manual,
        at_ms: now_ms(),
        path,
        format: match args.format {
            Format::Canonical => SavepointFormatType::Canonical,
            Format::Native => SavepointFormatType::Native,
        },
        dispose_on_delete: args.dispose_on_delete,
    };
    create_and_wait(local, generated.resource(&d), &args.common)
}

/// Runs `flinkpilot local checkpoint`.
pub fn checkpoint(local: &Local, args: CheckpointArgs) -> anyhow::Result<ExitCode> {
    let d = local.deployment(&args.name)?;
    let key = local.key(&args.name);
    if d.spec.job.is_none() {
        bail!("FlinkDeployment {key}: spec.job is not set; a session cluster has no job to save");
    }
    let generated = Generated {
        kind: SnapshotKind::Checkpoint,
        trigger: SnapshotTriggerType::Manual,
        at_ms: now_ms(),
        path: None,
        format: SavepointFormatType::Canonical,
        dispose_on_delete: false,
    };
    create_and_wait(local, generated.resource(&d), &args.common)
}

fn create_and_wait(
    local: &Local,
    mut snapshot: FlinkStateSnapshot,
    common: &Common,
) -> anyhow::Result<ExitCode> {
    snapshot.spec.backoff_limit = Some(common.backoff_limit);
    let problems = api::validate::snapshot(&snapshot);
    let name = snapshot.metadata.name.clone().unwrap_or_default();
    if let Some(p) = problems.first() {
        bail!("FlinkStateSnapshot/{name}: {p}");
    }
    local.store.create(snapshot)?;
    println!("flinkstatesnapshot/{name} created");
    if common.no_wait {
        return Ok(ExitCode::SUCCESS);
    }
    if !local.controller_running() {
        eprintln!("note: no controller runs; it is taken when `flinkpilot local up` runs");
        return Ok(ExitCode::SUCCESS);
    }
    let key = local.key(&name);
    let deadline = Instant::now() + Duration::from_secs(common.timeout);
    let mut reported_failures = 0;
    loop {
        let Some(s) = local.store.get::<FlinkStateSnapshot>(&key)? else {
            bail!("FlinkStateSnapshot {key} was deleted while waiting for it");
        };
        let status = s.status.clone().unwrap_or_default();
        let failures = status.failures.unwrap_or(0);
        match status.state {
            Some(FlinkStateSnapshotState::Completed) => {
                println!("{}", status.path.unwrap_or_default());
                return Ok(ExitCode::SUCCESS);
            }
            Some(FlinkStateSnapshotState::Failed | FlinkStateSnapshotState::Abandoned) => {
                let state = status.state.map_or("FAILED", |s| s.as_str());
                bail!(
                    "FlinkStateSnapshot {key} {state}: {}",
                    status.error.unwrap_or_else(|| "no reason recorded".into())
                );
            }
            _ if failures > reported_failures => {
                reported_failures = failures;
                eprintln!(
                    "attempt {failures} failed: {}; retrying (backoffLimit {})",
                    status.error.unwrap_or_default(),
                    common.backoff_limit
                );
            }
            _ => {}
        }
        if Instant::now() > deadline {
            bail!(
                "FlinkStateSnapshot {key} did not end within {}s; see `flinkpilot local get \
                 snapshots {name} -o yaml`",
                common.timeout
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
