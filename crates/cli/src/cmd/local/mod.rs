//! `flinkpilot local …`: the same manifests as on Kubernetes, with Flink as local processes.
//! Every subcommand works on one state dir (`--state-dir`); `up` runs the controller, the others
//! read or change resources in the store while it runs.

pub mod adapter;
pub mod apply;
pub mod delete;
pub mod describe;
pub mod get;
pub mod logs;
pub mod session_jobs;
pub mod snapshot;
pub mod suspend;
pub mod table;
pub mod up;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use api::FlinkDeployment;
use engine::ResourceKey;
use local::{FlinkHomes, LocalBackend, LocalStore, StateDir};

/// Arguments shared by every `local` subcommand.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where resources, cluster runtime files, logs and default state live
    /// [default: $XDG_STATE_HOME/flinkpilot, else ~/.local/state/flinkpilot]
    #[arg(long, global = true, env = "FLINKPILOT_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// The Flink distribution to run (FLINK_HOME); provisioned into the shared cache when not
    /// given
    #[arg(long, global = true, env = "FLINK_HOME", value_name = "DIR")]
    pub flink_home: Option<PathBuf>,
    /// Namespace of the resources named on the command line.
    #[arg(short = 'n', long, global = true, default_value = "default")]
    pub namespace: String,
    #[command(subcommand)]
    pub command: Command,
}

/// The `local` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Apply manifests and run the controller in the foreground with a live status table.
    Up(up::Args),
    /// Create or update resources from manifests (validated first).
    Apply(apply::Args),
    /// List deployments (or `get sessionjobs`, `get snapshots`), or show one.
    Get(get::Args),
    /// Show a deployment (or `describe sessionjob NAME`) in detail: spec, status, events, errors.
    Describe(describe::Args),
    /// Delete a deployment (its cluster is removed by the controller), or `delete sessionjob
    /// NAME` / `delete snapshot NAME`.
    Delete(delete::Args),
    /// Show the logs of a deployment's JobManager or a TaskManager.
    Logs(logs::Args),
    /// Suspend a deployment's job, or `suspend sessionjob NAME` (state kept per upgrade mode).
    Suspend(suspend::Args),
    /// Resume a suspended deployment's (or `sessionjob NAME`'s) job from its kept state.
    Resume(suspend::Args),
    /// Take a savepoint of a deployment's job now (creates a FlinkStateSnapshot).
    Savepoint(snapshot::SavepointArgs),
    /// Take a checkpoint of a deployment's job now (creates a FlinkStateSnapshot).
    Checkpoint(snapshot::CheckpointArgs),
}

/// What every subcommand works with.
pub struct Local {
    /// The state dir.
    pub state: StateDir,
    /// The store in it.
    pub store: LocalStore,
    /// `--flink-home`, if given.
    pub flink_home: Option<PathBuf>,
    /// `--namespace`.
    pub namespace: String,
}

impl Local {
    /// The key of a resource named on the command line.
    pub fn key(&self, name: &str) -> ResourceKey {
        ResourceKey::new(self.namespace.clone(), name)
    }

    /// The deployment `name`, or an error saying it does not exist.
    pub fn deployment(&self, name: &str) -> anyhow::Result<FlinkDeployment> {
        let key = self.key(name);
        self.store.get::<FlinkDeployment>(&key)?.with_context(|| {
            format!(
                "FlinkDeployment {key} not found in {}; see `flinkpilot local get`",
                self.state.root().display()
            )
        })
    }

    /// The local backend of this state dir. With `provision`, a missing Flink version is
    /// installed into the shared cache (reporting progress to `progress`).
    pub fn backend(
        &self,
        provision: bool,
        progress: local::homes::Progress,
    ) -> anyhow::Result<LocalBackend> {
        let homes = FlinkHomes::from_env(self.flink_home.clone())
            .provisioning(provision)
            .on_progress(progress);
        LocalBackend::new(self.state.clone(), homes)
            .with_context(|| format!("cannot use the state dir {}", self.state.root().display()))
    }

    /// Whether a controller (`flinkpilot local up`) runs on this state dir.
    pub fn controller_running(&self) -> bool {
        matches!(
            self.store.lock_controller(),
            Err(local::StoreError::ControllerRunning { .. })
        )
    }
}

/// Runs `flinkpilot local …`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let root = match args.state_dir {
        Some(dir) => dir,
        None => match StateDir::default_path() {
            Some(dir) => dir,
            None => bail!("no state dir: set --state-dir, FLINKPILOT_STATE_DIR or HOME"),
        },
    };
    let state = StateDir::new(root);
    let local = Local {
        store: LocalStore::new(state.clone()),
        state,
        flink_home: args.flink_home,
        namespace: args.namespace,
    };
    match args.command {
        Command::Up(a) => up::run(&local, a),
        Command::Apply(a) => apply::run(&local, a),
        Command::Get(a) => get::run(&local, a),
        Command::Describe(a) => describe::run(&local, a),
        Command::Delete(a) => delete::run(&local, a),
        Command::Logs(a) => logs::run(&local, a),
        Command::Suspend(a) => suspend::run(&local, a, api::JobState::Suspended),
        Command::Resume(a) => suspend::run(&local, a, api::JobState::Running),
        Command::Savepoint(a) => snapshot::savepoint(&local, a),
        Command::Checkpoint(a) => snapshot::checkpoint(&local, a),
    }
}

/// Validates `d` as it would be after a change, against the status it has in the store, and
/// fails with one line per problem.
pub fn validate_change(d: &FlinkDeployment) -> anyhow::Result<()> {
    let problems = api::validate::deployment(d);
    if problems.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = problems
        .iter()
        .map(|p| format!("FlinkDeployment/{}: {p}", d.name()))
        .collect();
    bail!("{}", lines.join("\n"));
}
