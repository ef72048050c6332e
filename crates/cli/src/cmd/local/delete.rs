//! `flinkpilot local delete NAME [--wait]`: delete a deployment the way Kubernetes does: it is
//! marked for deletion, the controller removes its cluster (with a savepoint first when
//! `kubernetes.operator.job.savepoint-on-deletion` is set), then the resource disappears.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::bail;
use api::FlinkDeployment;
use local::DeleteOutcome;

use super::Local;

/// Arguments of `flinkpilot local delete`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The deployment.
    pub name: String,
    /// Wait until the cluster and the resource are gone.
    #[arg(long)]
    pub wait: bool,
    /// Longest wait with --wait, in seconds.
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    pub timeout: u64,
}

/// Runs `flinkpilot local delete`.
pub fn run(local: &Local, args: Args) -> anyhow::Result<ExitCode> {
    let key = local.key(&args.name);
    match local.store.mark_deleted::<FlinkDeployment>(&key)? {
        DeleteOutcome::NotFound => bail!("FlinkDeployment {key} not found"),
        DeleteOutcome::Removed => {
            println!("flinkdeployment/{} deleted", args.name);
            return Ok(ExitCode::SUCCESS);
        }
        DeleteOutcome::Terminating(_) => {}
    }
    let running = local.controller_running();
    if !args.wait || !running {
        println!("flinkdeployment/{} marked for deletion", args.name);
        if !running {
            eprintln!(
                "note: no controller runs; its cluster is removed when `flinkpilot local up` runs"
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    while local.store.get::<FlinkDeployment>(&key)?.is_some() {
        if Instant::now() > deadline {
            bail!(
                "FlinkDeployment {key} is still being deleted after {}s; see `flinkpilot local \
                 describe {}`",
                args.timeout,
                args.name
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    println!("flinkdeployment/{} deleted", args.name);
    Ok(ExitCode::SUCCESS)
}
